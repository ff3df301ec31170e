package hubd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLS file names under DATA/tls.
const (
	caFile      = "ca.pem"
	caKeyFile   = "ca-key.pem"
	certFile    = "server.pem"
	certKeyFile = "server-key.pem"
)

// loadOrCreateTLS returns the server certificate under dir/tls, creating a
// CA and a certificate for localhost, 127.0.0.1, ::1, the machine's host
// name and extra names on first use. The CA is what clients pass as --ca.
func loadOrCreateTLS(dir string, extra []string) (tls.Certificate, string, error) {
	tdir := filepath.Join(dir, "tls")
	ca := filepath.Join(tdir, caFile)
	cert, key := filepath.Join(tdir, certFile), filepath.Join(tdir, certKeyFile)
	if _, err := os.Stat(cert); errors.Is(err, os.ErrNotExist) {
		if err := createTLS(tdir, extra); err != nil {
			return tls.Certificate{}, "", fmt.Errorf("create TLS certificates in %s: %w", tdir, err)
		}
	}
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("load TLS certificate %s: %w (delete %s to generate new ones)", cert, err, tdir)
	}
	return c, ca, nil
}

func createTLS(dir string, extra []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "iotjobs hub CA", Organization: []string{"iotjobs"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"iotjobs"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	names := extra
	if h, err := os.Hostname(); err == nil {
		names = append(names, h)
	}
	for _, n := range names {
		if host, _, err := net.SplitHostPort(n); err == nil {
			n = host
		}
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" && n != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	files := []struct {
		name, typ string
		der       []byte
		mode      os.FileMode
	}{
		{caFile, "CERTIFICATE", caDER, 0o644},
		{certFile, "CERTIFICATE", der, 0o644},
	}
	for _, k := range []struct {
		name string
		key  *ecdsa.PrivateKey
	}{{caKeyFile, caKey}, {certKeyFile, key}} {
		b, err := x509.MarshalECPrivateKey(k.key)
		if err != nil {
			return err
		}
		files = append(files, struct {
			name, typ string
			der       []byte
			mode      os.FileMode
		}{k.name, "EC PRIVATE KEY", b, 0o600})
	}
	for _, f := range files {
		b := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(filepath.Join(dir, f.name), b, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// LoadCA returns a pool with the PEM certificates in file, for clients that
// trust a hub's generated CA.
func LoadCA(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}
