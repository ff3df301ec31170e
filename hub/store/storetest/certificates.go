package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// testCertificates: CA certificates round-trip, are replaced by name,
// listed by name and deleted; a missing one is ErrNotFound.
func testCertificates(t *testing.T, s store.Store) {
	cs, ok := s.(store.Certifier)
	if !ok {
		t.Fatalf("%T does not keep CA certificates (store.Certifier)", s)
	}
	ctx := context.Background()
	mk := func(name, etag string, verified bool) *hub.Certificate {
		return &hub.Certificate{Name: name, ETag: etag, Type: hub.CertificateType, Properties: hub.CertificateProperties{
			Subject: "CN=" + name, Expiry: "Sun, 01 Jan 2034 00:00:00 GMT", Thumbprint: "ABCDEF", IsVerified: verified,
			Created: "Mon, 06 May 2024 07:08:09 GMT", Updated: "Mon, 06 May 2024 07:08:09 GMT",
			Certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}
	}
	if _, err := cs.GetCertificate(ctx, "root"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get of a missing certificate: %v, want ErrNotFound", err)
	}
	if err := cs.DeleteCertificate(ctx, "root"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete of a missing certificate: %v, want ErrNotFound", err)
	}
	for _, c := range []*hub.Certificate{mk("zeta", "e1", true), mk("root", "e1", false), mk("root", "e2", true)} {
		if err := cs.PutCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := cs.GetCertificate(ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	if want := mk("root", "e2", true); *got != *want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	got.Name = "changed" // a copy: the store's is not
	list, err := cs.ListCertificates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "root" || list[1].Name != "zeta" {
		t.Fatalf("list: %+v, want root then zeta", list)
	}
	if err := cs.DeleteCertificate(ctx, "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.GetCertificate(ctx, "root"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	if list, err = cs.ListCertificates(ctx); err != nil || len(list) != 1 {
		t.Fatalf("list after delete: %+v, %v; want zeta alone", list, err)
	}
}
