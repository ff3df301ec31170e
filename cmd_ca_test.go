package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// writePEMCert writes a self-signed ECDSA certificate (a CA when ca) as
// PEM to dir/name and returns the path.
func writePEMCert(t *testing.T, dir, name string, ca bool) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: ca, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCAAddRefusesBadFiles: hub ca add refuses a missing file, text that
// is not PEM, a key and a certificate that is no CA (exit 2) before it
// opens a hub.
func TestCAAddRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "notes.txt")
	key := filepath.Join(dir, "key.pem")
	for f, text := range map[string]string{notPEM: "hello", key: "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"} {
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	leaf := writePEMCert(t, dir, "device.pem", false)
	ca := writePEMCert(t, dir, "root.pem", true)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"hub", "ca", "add"}, "name exactly one PEM file"},
		{[]string{"hub", "ca", "add", filepath.Join(dir, "missing.pem")}, "missing.pem: no such file"},
		{[]string{"hub", "ca", "add", notPEM}, "is not PEM"},
		{[]string{"hub", "ca", "add", key}, "holds a EC PRIVATE KEY, not a CERTIFICATE"},
		{[]string{"hub", "ca", "add", leaf}, "is not a CA certificate"},
		{[]string{"hub", "ca", "add", ca, "--name", "bad name"}, "use --name"},
		{[]string{"hub", "ca", "remove"}, "name exactly one certificate name"},
		{[]string{"hub", "ca", "list", "extra"}, "takes no arguments"},
	} {
		t.Run(strings.Join(tt.args[2:], " "), func(t *testing.T) { checkedFirst(t, tt.args, tt.want) })
	}
}

// TestCACommands: add, list and remove a CA on the embedded hub.
func TestCACommands(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ca := writePEMCert(t, t.TempDir(), "plant-a.pem", true)
	code, stdout, stderr := runCLI(t, t.Context(), "hub", "ca", "add", "--data", data, ca)
	if code != 0 || !strings.Contains(stdout, "registered CA certificate plant-a: CN=plant-a.pem") {
		t.Fatalf("add: exit %d, %q %q", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, t.Context(), "hub", "ca", "add", "--data", data, ca)
	if code == 0 || !strings.Contains(stderr, "already exists") || !strings.Contains(stderr, "remove it first") {
		t.Errorf("second add: exit %d, %q; want a refusal saying what to do", code, stderr)
	}
	code, stdout, stderr = runCLI(t, t.Context(), "hub", "ca", "list", "--data", data, "-o", "json")
	var l []*hub.Certificate
	if code != 0 || json.Unmarshal([]byte(stdout), &l) != nil || len(l) != 1 || l[0].Name != "plant-a" || !l[0].Properties.IsVerified {
		t.Fatalf("list: exit %d, %q %q", code, stdout, stderr)
	}
	if code, _, stderr = runCLI(t, t.Context(), "hub", "ca", "remove", "--data", data, "plant-a"); code != 0 {
		t.Fatalf("remove: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, t.Context(), "hub", "ca", "remove", "--data", data, "plant-a")
	if code == 0 || !strings.Contains(stderr, "not found") {
		t.Errorf("remove again: exit %d, %q; want not found", code, stderr)
	}
}
