package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/iotjobs/iotjobs/hub"
)

// Certifier is implemented by stores that keep the hub's CA certificates
// (hub.Certificates). A write appends its context's audit entries in the
// same transaction, as every write of an Auditor does.
type Certifier interface {
	// PutCertificate inserts or replaces certificate c.Name.
	PutCertificate(ctx context.Context, c *hub.Certificate) error
	// GetCertificate returns a certificate. Errors: ErrNotFound.
	GetCertificate(ctx context.Context, name string) (*hub.Certificate, error)
	// ListCertificates returns every certificate, by name.
	ListCertificates(ctx context.Context) ([]*hub.Certificate, error)
	// DeleteCertificate removes a certificate. Errors: ErrNotFound.
	DeleteCertificate(ctx context.Context, name string) error
}

// DecodeCertificate reads a certificate as the SQL stores keep it (its
// JSON document).
func DecodeCertificate(doc string) (*hub.Certificate, error) {
	c := new(hub.Certificate)
	if err := json.Unmarshal([]byte(doc), c); err != nil {
		return nil, fmt.Errorf("decode stored certificate: %w", err)
	}
	return c, nil
}
