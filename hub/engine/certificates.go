package engine

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

var _ hub.Certificates = (*Engine)(nil)

// certifier is the store's CA certificate table, or an error saying that
// this store has none.
func (e *Engine) certifier() (store.Certifier, error) {
	c, ok := e.store.(store.Certifier)
	if !ok {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "this hub's store keeps no CA certificates")
	}
	return c, nil
}

// PutCertificate implements hub.Certificates. The certificate is parsed
// and checked (a CA, not expired) and described as Azure does (subject,
// SHA-1 thumbprint, expiry). Proof of possession is not asked for: a
// certificate uploaded with isVerified true is verified at once (Azure's
// "verify on upload"); one uploaded without stays unverified, and devices
// cannot chain to it, until it is put again with isVerified true. The
// etag check and the write are two store calls: two concurrent puts of
// one name may both pass it, and the last write wins, which for an
// administrator's upload is harmless.
func (e *Engine) PutCertificate(ctx context.Context, name string, c *hub.Certificate, et string) (*hub.Certificate, error) {
	if err := hub.CheckCertificateName(name); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "certificate is missing: send {\"properties\":{\"certificate\":\"<PEM>\",\"isVerified\":true}}")
	}
	et, err := hub.ParseOptionalETag(et)
	if err != nil {
		return nil, err
	}
	now := e.clock.Now()
	x, err := hub.ParseCACertificate(c.Properties.Certificate, now)
	if err != nil {
		return nil, err
	}
	cs, err := e.certifier()
	if err != nil {
		return nil, err
	}
	stamp := now.UTC().Format(hub.CertificateTime)
	nc := &hub.Certificate{Name: name, Type: hub.CertificateType, ETag: deviceETag(1), Properties: hub.CertificateProperties{
		Subject:     x.Subject.String(),
		Expiry:      x.NotAfter.UTC().Format(hub.CertificateTime),
		IsVerified:  c.Properties.IsVerified,
		Created:     stamp,
		Updated:     stamp,
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})),
	}}
	nc.Properties.Thumbprint, _ = hub.Thumbprints(x.Raw)
	err = e.audited(ctx, hub.AuditCertificatePut, name, func(ctx context.Context) error {
		cur, err := cs.GetCertificate(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if et != "" && et != "*" {
				return hub.Errorf(hub.CodePreconditionFailed, "certificate '%s' does not exist: create it without If-Match", name)
			}
		case err != nil:
			return storeErr(err, hub.CodeCertificateNotFound, "certificate", name)
		case et == "":
			return hub.Errorf(hub.CodePreconditionFailed, "certificate '%s' already exists: send If-Match: * (or its etag) to replace it, or delete it first", name)
		case et != "*" && et != cur.ETag:
			return hub.Errorf(hub.CodePreconditionFailed, "etag %q does not match certificate '%s' (%q)", et, name, cur.ETag)
		default:
			nc.ETag = nextDeviceETag(cur.ETag)
			nc.Properties.Created = cur.Properties.Created
		}
		return storeErr(cs.PutCertificate(ctx, nc), hub.CodeCertificateNotFound, "certificate", name)
	})
	if err != nil {
		return nil, err
	}
	return nc, nil
}

// GetCertificate implements hub.Certificates.
func (e *Engine) GetCertificate(ctx context.Context, name string) (*hub.Certificate, error) {
	if err := hub.CheckCertificateName(name); err != nil {
		return nil, err
	}
	cs, err := e.certifier()
	if err != nil {
		return nil, err
	}
	c, err := cs.GetCertificate(ctx, name)
	return c, storeErr(err, hub.CodeCertificateNotFound, "certificate", name)
}

// ListCertificates implements hub.Certificates.
func (e *Engine) ListCertificates(ctx context.Context) ([]*hub.Certificate, error) {
	cs, err := e.certifier()
	if err != nil {
		return nil, err
	}
	l, err := cs.ListCertificates(ctx)
	return l, storeErr(err, hub.CodeServerError, "certificates", "")
}

// DeleteCertificate implements hub.Certificates. Devices already connected
// through the CA stay connected, as on Azure; their next connect fails.
func (e *Engine) DeleteCertificate(ctx context.Context, name, et string) error {
	if err := hub.CheckCertificateName(name); err != nil {
		return err
	}
	et, err := hub.ParseOptionalETag(et)
	if err != nil {
		return err
	}
	cs, err := e.certifier()
	if err != nil {
		return err
	}
	return e.audited(ctx, hub.AuditCertificateDelete, name, func(ctx context.Context) error {
		cur, err := cs.GetCertificate(ctx, name)
		if err != nil {
			return storeErr(err, hub.CodeCertificateNotFound, "certificate", name)
		}
		if et != "" && et != "*" && et != cur.ETag {
			return hub.Errorf(hub.CodePreconditionFailed, "etag %q does not match certificate '%s' (%q)", et, name, cur.ETag)
		}
		return storeErr(cs.DeleteCertificate(ctx, name), hub.CodeCertificateNotFound, "certificate", name)
	})
}

// VerifiedCAs returns the pool of the hub's verified CA certificates that
// CA-authenticated devices chain to, read from the store at each call so
// that a CA added or removed counts at the next connect; nil when there
// is none.
func (e *Engine) VerifiedCAs(ctx context.Context) (*x509.CertPool, error) {
	cs, err := e.certifier()
	if err != nil {
		return nil, err
	}
	l, err := cs.ListCertificates(ctx)
	if err != nil {
		return nil, storeErr(err, hub.CodeServerError, "certificates", "")
	}
	var pool *x509.CertPool
	for _, c := range l {
		if !c.Properties.IsVerified {
			continue
		}
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(c.Properties.Certificate)) {
			e.Logger.Warn("stored CA certificate does not parse", "certificate", c.Name, "pem", strings.SplitN(c.Properties.Certificate, "\n", 2)[0])
		}
	}
	return pool, nil
}
