package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/sas"
)

const (
	sha1Lower   = "0123456789abcdef0123456789abcdef01234567"
	sha1Upper   = "0123456789ABCDEF0123456789ABCDEF01234567"
	sha256Upper = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
)

// TestCreateDeviceAuthentication: the authentication rules of a new
// device, for each type, as create and bulk import apply them.
func TestCreateDeviceAuthentication(t *testing.T) {
	key := sas.GenerateKey()
	thumbs := func(p, s *string) hub.X509Thumbprint {
		return hub.X509Thumbprint{PrimaryThumbprint: p, SecondaryThumbprint: s}
	}
	cases := []struct {
		name string
		auth hub.Authentication
		code string // "" for success
		msg  string
		want func(t *testing.T, a hub.Authentication)
	}{
		{name: "default is sas with keys generated", want: func(t *testing.T, a hub.Authentication) {
			if a.Type != hub.AuthSAS || a.SymmetricKey.PrimaryKey == "" || a.SymmetricKey.SecondaryKey == "" || a.X509Thumbprint.PrimaryThumbprint != nil {
				t.Errorf("auth %+v, want sas with two keys", a)
			}
		}},
		{name: "selfSigned normalises thumbprints", auth: hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: thumbs(ptr(sha1Lower), ptr(strings.ToLower(sha256Upper)))},
			want: func(t *testing.T, a hub.Authentication) {
				if *a.X509Thumbprint.PrimaryThumbprint != sha1Upper || *a.X509Thumbprint.SecondaryThumbprint != sha256Upper || a.SymmetricKey != (hub.SymmetricKey{}) {
					t.Errorf("auth %+v, want upper-case thumbprints and no keys", a)
				}
			}},
		{name: "thumbprint without type is selfSigned (as the Node SDK infers)", auth: hub.Authentication{X509Thumbprint: thumbs(ptr(sha1Upper), nil)},
			want: func(t *testing.T, a hub.Authentication) {
				if a.Type != hub.AuthSelfSigned || a.X509Thumbprint.SecondaryThumbprint != nil {
					t.Errorf("auth %+v, want selfSigned", a)
				}
			}},
		{name: "certificateAuthority has no credentials", auth: hub.Authentication{Type: hub.AuthCertificateAuthority},
			want: func(t *testing.T, a hub.Authentication) {
				if a.Type != hub.AuthCertificateAuthority || a.SymmetricKey != (hub.SymmetricKey{}) || a.X509Thumbprint.PrimaryThumbprint != nil {
					t.Errorf("auth %+v, want certificateAuthority alone", a)
				}
			}},
		{name: "selfSigned without primary", auth: hub.Authentication{Type: hub.AuthSelfSigned}, code: hub.CodeArgumentInvalid, msg: "primaryThumbprint"},
		{name: "selfSigned with only a secondary", auth: hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: thumbs(nil, ptr(sha1Upper))}, code: hub.CodeArgumentInvalid, msg: "primaryThumbprint"},
		{name: "bad thumbprint", auth: hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: thumbs(ptr("abc"), nil)}, code: hub.CodeArgumentInvalid, msg: "40 (SHA-1) or 64 (SHA-256) hex digits"},
		{name: "non-hex thumbprint", auth: hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: thumbs(ptr(strings.Repeat("g", 40)), nil)}, code: hub.CodeArgumentInvalid, msg: "hex digits"},
		{name: "selfSigned with keys", auth: hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: thumbs(ptr(sha1Upper), nil), SymmetricKey: hub.SymmetricKey{PrimaryKey: key}}, code: hub.CodeArgumentInvalid, msg: "no symmetricKey"},
		{name: "certificateAuthority with thumbprint", auth: hub.Authentication{Type: hub.AuthCertificateAuthority, X509Thumbprint: thumbs(ptr(sha1Upper), nil)}, code: hub.CodeArgumentInvalid, msg: "no x509Thumbprint"},
		{name: "sas with thumbprint", auth: hub.Authentication{Type: hub.AuthSAS, X509Thumbprint: thumbs(ptr(sha1Upper), nil)}, code: hub.CodeArgumentInvalid, msg: "selfSigned"},
		{name: "none", auth: hub.Authentication{Type: hub.AuthNone}, code: hub.CodeArgumentInvalid, msg: "none is not supported"},
		{name: "unknown", auth: hub.Authentication{Type: "x509"}, code: hub.CodeArgumentInvalid, msg: "not one of"},
	}
	e := newEngine(t, newTestBus(), clock.NewVirtual(t0))
	ctx := context.Background()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")[:min(len(tc.name), 30)] + "-" + string(rune('a'+i))
			id = strings.NewReplacer("(", "", ")", "").Replace(id)
			in := tc.auth
			d, err := e.CreateDevice(ctx, &hub.Device{DeviceID: id, Authentication: in})
			imp, ierr := e.ImportDevices(ctx, []*hub.ImportDevice{{ID: id + "-bulk", ImportMode: hub.ImportCreate, Authentication: &in}})
			if tc.code != "" {
				wantCode(t, err, tc.code)
				if !strings.Contains(hub.ErrorMessage(err), tc.msg) {
					t.Errorf("create: %v, want it to say %q", err, tc.msg)
				}
				// Refused whole when the entry is wrong by itself; a
				// missing thumbprint depends on the stored device (an
				// update keeps it), so that entry fails alone.
				if ierr != nil {
					wantCode(t, ierr, tc.code)
				} else if imp.IsSuccessful || imp.Errors[0].ErrorCode != tc.code {
					t.Errorf("bulk create: %+v; want %s", imp, tc.code)
				}
				return
			}
			if err != nil || ierr != nil || !imp.IsSuccessful {
				t.Fatalf("create: %v; bulk: %+v %v", err, imp, ierr)
			}
			tc.want(t, d.Authentication)
			got, err := e.GetDevice(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			tc.want(t, got.Authentication)
			bulk, err := e.GetDevice(ctx, id+"-bulk")
			if err != nil {
				t.Fatal(err)
			}
			tc.want(t, bulk.Authentication)
			tw, err := e.GetTwin(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if tw.AuthenticationType != got.Authentication.Type || tw.X509Thumbprint.PrimaryThumbprint != nil && *tw.X509Thumbprint.PrimaryThumbprint != *got.Authentication.X509Thumbprint.PrimaryThumbprint {
				t.Errorf("twin authenticationType %q x509Thumbprint %+v, want the device's %+v", tw.AuthenticationType, tw.X509Thumbprint, got.Authentication)
			}
		})
	}
}

// TestUpdateDeviceAuthentication: steps on one device switching between
// authentication types, each keeping or dropping credentials as it should.
func TestUpdateDeviceAuthentication(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.NewVirtual(t0))
	ctx := context.Background()
	mustCreate(t, e, "dev1")
	orig, err := e.GetDevice(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		auth hub.Authentication
		code string
		want func(t *testing.T, a hub.Authentication)
	}{
		{name: "sas with no keys keeps them", want: func(t *testing.T, a hub.Authentication) {
			if a != orig.Authentication {
				t.Errorf("auth %+v, want unchanged %+v", a, orig.Authentication)
			}
		}},
		{name: "keys on a sas device cannot come with a thumbprint", auth: hub.Authentication{Type: hub.AuthSAS, X509Thumbprint: hub.X509Thumbprint{PrimaryThumbprint: ptr(sha1Upper)}}, code: hub.CodeArgumentInvalid},
		{name: "to selfSigned drops the keys", auth: hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: hub.X509Thumbprint{PrimaryThumbprint: ptr(sha1Lower)}},
			want: func(t *testing.T, a hub.Authentication) {
				if a.Type != hub.AuthSelfSigned || a.SymmetricKey != (hub.SymmetricKey{}) || *a.X509Thumbprint.PrimaryThumbprint != sha1Upper {
					t.Errorf("auth %+v", a)
				}
			}},
		{name: "status-only update keeps the thumbprints", want: func(t *testing.T, a hub.Authentication) {
			if a.Type != hub.AuthSelfSigned || a.X509Thumbprint.PrimaryThumbprint == nil || *a.X509Thumbprint.PrimaryThumbprint != sha1Upper {
				t.Errorf("auth %+v, want the thumbprint kept", a)
			}
		}},
		{name: "keys for a selfSigned device", auth: hub.Authentication{SymmetricKey: hub.SymmetricKey{PrimaryKey: sas.GenerateKey()}}, code: hub.CodeArgumentInvalid},
		{name: "to certificateAuthority drops the thumbprints", auth: hub.Authentication{Type: hub.AuthCertificateAuthority},
			want: func(t *testing.T, a hub.Authentication) {
				if a.Type != hub.AuthCertificateAuthority || a.X509Thumbprint.PrimaryThumbprint != nil || a.SymmetricKey != (hub.SymmetricKey{}) {
					t.Errorf("auth %+v", a)
				}
			}},
		{name: "certificateAuthority to selfSigned needs a thumbprint", auth: hub.Authentication{Type: hub.AuthSelfSigned}, code: hub.CodeArgumentInvalid},
		{name: "back to sas generates keys", auth: hub.Authentication{Type: hub.AuthSAS},
			want: func(t *testing.T, a hub.Authentication) {
				k := a.SymmetricKey
				if a.Type != hub.AuthSAS || k.PrimaryKey == "" || k.SecondaryKey == "" || k == orig.Authentication.SymmetricKey {
					t.Errorf("auth %+v, want new keys", a)
				}
			}},
	}
	for _, st := range steps {
		d, err := e.UpdateDevice(ctx, &hub.Device{DeviceID: "dev1", Authentication: st.auth}, "*")
		if st.code != "" {
			wantCode(t, err, st.code)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		t.Run(st.name, func(t *testing.T) { st.want(t, d.Authentication) })
	}
}

// TestQueryAuthenticationType: queries see a device's authentication
// type and thumbprint, and see them change.
func TestQueryAuthenticationType(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.NewVirtual(t0))
	ctx := context.Background()
	mustCreate(t, e, "s1")
	if _, err := e.CreateDevice(ctx, &hub.Device{DeviceID: "x1", Authentication: hub.Authentication{X509Thumbprint: hub.X509Thumbprint{PrimaryThumbprint: ptr(sha1Lower)}}}); err != nil {
		t.Fatal(err)
	}
	count := func(q string) int {
		t.Helper()
		r, err := e.Query(ctx, q, hub.QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Items)
	}
	if n := count("SELECT * FROM devices WHERE authenticationType = 'selfSigned' AND x509Thumbprint.primaryThumbprint = '" + sha1Upper + "'"); n != 1 {
		t.Errorf("selfSigned devices with the thumbprint: %d, want 1", n)
	}
	if n := count("SELECT * FROM devices WHERE authenticationType = 'sas'"); n != 1 {
		t.Errorf("sas devices: %d, want 1", n)
	}
	if _, err := e.UpdateDevice(ctx, &hub.Device{DeviceID: "x1", Authentication: hub.Authentication{Type: hub.AuthSAS}}, "*"); err != nil {
		t.Fatal(err)
	}
	if n := count("SELECT * FROM devices WHERE authenticationType = 'sas' AND IS_DEFINED(x509Thumbprint) AND x509Thumbprint.primaryThumbprint = null"); n != 2 {
		t.Errorf("sas devices after the switch: %d, want 2", n)
	}
}
