package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NormalizeThumbprint checks a certificate thumbprint, the hex SHA-1 (40
// digits) or SHA-256 (64 digits) of a certificate's DER as Azure accepts
// both, and returns it in upper case. Colons and spaces between digit
// pairs, as some tools print them, are dropped.
func NormalizeThumbprint(name, s string) (string, error) {
	t := strings.ToUpper(strings.NewReplacer(":", "", " ", "").Replace(s))
	if _, err := hex.DecodeString(t); err != nil || (len(t) != 40 && len(t) != 64) {
		return "", Errorf(CodeArgumentInvalid, "%s %q must be 40 (SHA-1) or 64 (SHA-256) hex digits", name, s)
	}
	return t, nil
}

// Thumbprints returns the SHA-1 and SHA-256 thumbprints of a certificate
// (of its DER), in upper-case hex.
func Thumbprints(der []byte) (sha1Hex, sha256Hex string) {
	a, b := sha1.Sum(der), sha256.Sum256(der)
	return strings.ToUpper(hex.EncodeToString(a[:])), strings.ToUpper(hex.EncodeToString(b[:]))
}

// CheckDeviceCertificate decides whether the certificate chain a client
// presented over TLS (leaf first, then the intermediates it sent)
// authenticates X.509 device d at time now. A self-signed device's leaf
// must have the SHA-1 or SHA-256 thumbprint of its primary or secondary
// thumbprint; a CA device's chain must verify to one of roots (the
// hub's verified CA certificates) and its leaf's subject CN must be the
// device id. Either way the leaf must be within its validity period: the
// TLS handshake does not check client certificates (the listener only
// requests them, so that SAS devices need none), this does.
func CheckDeviceCertificate(d *Device, chain []*x509.Certificate, roots *x509.CertPool, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("no client certificate: an X.509 device must present its certificate in the TLS handshake")
	}
	leaf := chain[0]
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("certificate %q is not valid before %s", leaf.Subject.CommonName, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("certificate %q expired at %s", leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	switch d.Authentication.Type {
	case AuthSelfSigned:
		s1, s256 := Thumbprints(leaf.Raw)
		for _, p := range []*string{d.Authentication.X509Thumbprint.PrimaryThumbprint, d.Authentication.X509Thumbprint.SecondaryThumbprint} {
			if p != nil && *p != "" && (strings.EqualFold(*p, s1) || strings.EqualFold(*p, s256)) {
				return nil
			}
		}
		return fmt.Errorf("certificate thumbprint %s (SHA-256 %s) is not one registered for device %q", s1, s256, d.DeviceID)
	case AuthCertificateAuthority:
		if leaf.Subject.CommonName != d.DeviceID {
			return fmt.Errorf("certificate subject CN %q is not the device id %q", leaf.Subject.CommonName, d.DeviceID)
		}
		if roots == nil {
			return errors.New("the hub holds no verified CA certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return fmt.Errorf("certificate %q does not verify to a CA registered with the hub: %w", leaf.Subject.CommonName, err)
		}
		return nil
	}
	return fmt.Errorf("device %q authenticates with %q, not a certificate", d.DeviceID, d.Authentication.Type)
}

// Certificate is a CA certificate registered with the hub, in the shape of
// Azure's CertificateDescription. Devices of type certificateAuthority
// connect with certificates that chain to a verified one.
type Certificate struct {
	Name       string                `json:"name"`
	ETag       string                `json:"etag,omitempty"`
	Type       string                `json:"type,omitempty"`
	Properties CertificateProperties `json:"properties"`
}

// CertificateType is Certificate.Type, Azure's resource type.
const CertificateType = "Microsoft.Devices/IotHubs/Certificates"

// CertificateProperties describe a CA certificate. A request sets
// Certificate (PEM) and IsVerified; the hub fills in the rest. Expiry,
// Created and Updated are RFC 1123 dates, as Azure writes them.
type CertificateProperties struct {
	Subject     string `json:"subject,omitempty"`
	Expiry      string `json:"expiry,omitempty"`
	Thumbprint  string `json:"thumbprint,omitempty"`
	IsVerified  bool   `json:"isVerified"`
	Created     string `json:"created,omitempty"`
	Updated     string `json:"updated,omitempty"`
	Certificate string `json:"certificate"`
}

// CertificateTime is the layout of Certificate dates (RFC 1123, GMT).
const CertificateTime = "Mon, 02 Jan 2006 15:04:05 GMT"

// ParseCACertificate reads the one PEM certificate of text and checks that
// it can sign device certificates at time now: a CA (basic constraints),
// within its validity period.
func ParseCACertificate(text string, now time.Time) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(text))
	if block == nil {
		return nil, Errorf(CodeArgumentInvalid, "the certificate is not PEM: expected -----BEGIN CERTIFICATE-----")
	}
	if block.Type != "CERTIFICATE" {
		return nil, Errorf(CodeArgumentInvalid, "the PEM block is a %q, not a CERTIFICATE (give the CA's certificate, not its key)", block.Type)
	}
	if more, _ := pem.Decode(rest); more != nil {
		return nil, Errorf(CodeArgumentInvalid, "the PEM text holds more than one block: register one CA certificate at a time")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, Errorf(CodeArgumentInvalid, "the certificate cannot be parsed: %v", err)
	}
	if !c.BasicConstraintsValid || !c.IsCA {
		return nil, Errorf(CodeArgumentInvalid, "certificate %q is not a CA certificate (its basic constraints do not say CA:TRUE): register the CA that signs the device certificates", c.Subject.CommonName)
	}
	if now.After(c.NotAfter) {
		return nil, Errorf(CodeArgumentInvalid, "certificate %q expired at %s", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(c.NotBefore) {
		return nil, Errorf(CodeArgumentInvalid, "certificate %q is not valid before %s", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return c, nil
}

// CheckCertificateName checks a CA certificate's name: 1 to 64 ASCII
// letters, digits, '-', '_' and '.', as Azure allows.
func CheckCertificateName(name string) error {
	ok := name != "" && len(name) <= 64
	for _, c := range name {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
	}
	if !ok {
		return Errorf(CodeArgumentInvalid, "certificate name %q must be 1 to 64 letters, digits, '-', '_' or '.'", name)
	}
	return nil
}

// Certificates is the CA certificate registry of a hub (Azure's
// certificates API), implemented by the engine and the REST client. It is
// apart from Client: the dry-run's simulated hub has no devices that
// present certificates.
type Certificates interface {
	// PutCertificate registers CA certificate name from
	// c.Properties.Certificate (PEM) and c.Properties.IsVerified; etag ""
	// creates it, "*" or its etag replaces it (as Azure, which wants
	// If-Match to update). Errors: ArgumentInvalid (not PEM, not a CA,
	// expired, bad name), PreconditionFailed (exists and etag is "", or
	// another etag).
	PutCertificate(ctx context.Context, name string, c *Certificate, etag string) (*Certificate, error)
	// GetCertificate returns a registered CA certificate. Errors:
	// CertificateNotFound.
	GetCertificate(ctx context.Context, name string) (*Certificate, error)
	// ListCertificates returns every registered CA certificate, by name.
	ListCertificates(ctx context.Context) ([]*Certificate, error)
	// DeleteCertificate removes a CA certificate when etag is "*" or its
	// etag. Errors: CertificateNotFound, PreconditionFailed.
	DeleteCertificate(ctx context.Context, name, etag string) error
}
