package simulate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// X.509 devices of a fleet (auth: selfSigned or certificateAuthority):
// Register makes each one a key and a certificate (CN = device id, ECDSA
// P-256, valid from 2000 to 2100, so that a hub on any clock, virtual
// ones included, finds it valid) and registers it with the
// hub: a self-signed device with its certificate's SHA-256 thumbprint, a
// CA device as certificateAuthority, its certificate signed by a CA made
// for the run and registered (verified) with the hub under the name
// simulate-{8 hex digits}. The certificates live only in memory: every
// run makes new ones (and registers a new CA; `iotjobs hub ca remove`
// removes those of past runs).

// The validity period of the simulator's certificates.
var (
	certNotBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// runCA is the CA of one Register call's certificateAuthority devices,
// made and registered at the first such device.
type runCA struct {
	once sync.Once
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	err  error
}

// get makes the CA and registers it with hub c.
func (ca *runCA) get(ctx context.Context, c hub.Client) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	ca.once.Do(func() {
		certs, ok := c.(hub.Certificates)
		if !ok {
			ca.err = errors.New("certificateAuthority devices need a hub that keeps CA certificates (an iotjobs hub)")
			return
		}
		var id [4]byte
		_, _ = rand.Read(id[:])
		name := "simulate-" + hex.EncodeToString(id[:])
		ca.cert, ca.key, ca.err = makeCert("iotjobs simulate CA "+name, nil, nil, true)
		if ca.err != nil {
			return
		}
		text := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
		if _, err := certs.PutCertificate(ctx, name, &hub.Certificate{Properties: hub.CertificateProperties{Certificate: text, IsVerified: true}}, ""); err != nil {
			ca.err = fmt.Errorf("register the simulator's CA %s: %w", name, err)
		}
	})
	return ca.cert, ca.key, ca.err
}

// makeCert makes an ECDSA P-256 certificate for cn, signed by parent
// (self-signed when nil); a CA when isCA.
func makeCert(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"iotjobs simulate"}},
		NotBefore: certNotBefore, NotAfter: certNotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageCertSign, nil
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("make certificate for %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// x509Auth makes device d's certificate (kept in d.cert, which Connect
// presents) and returns the authentication to register it with.
func x509Auth(ctx context.Context, c hub.Client, d *Device, ca *runCA) (hub.Authentication, error) {
	var (
		cert *x509.Certificate
		key  *ecdsa.PrivateKey
		err  error
		auth = hub.Authentication{Type: d.Auth}
	)
	switch d.Auth {
	case hub.AuthSelfSigned:
		if cert, key, err = makeCert(d.ID, nil, nil, false); err != nil {
			return auth, err
		}
		_, tp := hub.Thumbprints(cert.Raw)
		auth.X509Thumbprint.PrimaryThumbprint = &tp
	case hub.AuthCertificateAuthority:
		caCert, caKey, err := ca.get(ctx, c)
		if err != nil {
			return auth, err
		}
		if cert, key, err = makeCert(d.ID, caCert, caKey, false); err != nil {
			return auth, err
		}
	default:
		return auth, fmt.Errorf("device %s: unknown authentication kind %q", d.ID, d.Auth)
	}
	d.cert = &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	return auth, nil
}
