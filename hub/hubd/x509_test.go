package hubd_test

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/simulate"
)

// testCert is a certificate with its key, as a TLS client presents it.
type testCert struct {
	x   *x509.Certificate
	key crypto.Signer
}

func (c testCert) tls() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.x.Raw}, PrivateKey: c.key, Leaf: c.x}
}

func (c testCert) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.x.Raw}))
}

// makeCert makes an ECDSA P-256 certificate for cn valid from nb to na,
// signed by parent (self-signed when parent is nil), a CA when ca.
func makeCert(t *testing.T, cn string, parent *testCert, ca bool, nb, na time.Time) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	}
	signer, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signer, signerKey = parent.x, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{x, key}
}

// TestX509Connect connects devices over MQTT/TLS and MQTT over WebSocket
// with client certificates, and checks the CONNACK each gets: the
// certificate (or its absence) decides, as the device's registered
// authentication type says.
func TestX509Connect(t *testing.T) {
	t.Parallel()
	h := openHub(t, t.TempDir(), "127.0.0.1:0")
	pool := caPool(t, h)
	ctx := context.Background()
	now := time.Now()
	valid := func(cn string, parent *testCert) testCert {
		return makeCert(t, cn, parent, false, now.Add(-time.Hour), now.Add(time.Hour))
	}
	ca := makeCert(t, "test root CA", nil, true, now.Add(-time.Hour), now.Add(24*time.Hour))
	lateCA := makeCert(t, "late CA", nil, true, now.Add(-time.Hour), now.Add(24*time.Hour))
	unverifiedCA := makeCert(t, "unverified CA", nil, true, now.Add(-time.Hour), now.Add(24*time.Hour))
	strangerCA := makeCert(t, "stranger CA", nil, true, now.Add(-time.Hour), now.Add(24*time.Hour))
	self := valid("self1", nil)
	self256 := valid("self2", nil)
	expired := makeCert(t, "old", nil, false, now.Add(-48*time.Hour), now.Add(-time.Hour))
	other := valid("other", nil)

	sha1Of := func(c testCert) *string { s, _ := hub.Thumbprints(c.x.Raw); return &s }
	sha256Of := func(c testCert) *string { _, s := hub.Thumbprints(c.x.Raw); return &s }
	for _, d := range []*hub.Device{
		{DeviceID: "self1", Authentication: hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: hub.X509Thumbprint{PrimaryThumbprint: sha1Of(self)}}},
		{DeviceID: "self2", Authentication: hub.Authentication{X509Thumbprint: hub.X509Thumbprint{PrimaryThumbprint: sha1Of(other), SecondaryThumbprint: sha256Of(self256)}}},
		{DeviceID: "old", Authentication: hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: hub.X509Thumbprint{PrimaryThumbprint: sha1Of(expired)}}},
		{DeviceID: "ca1", Authentication: hub.Authentication{Type: hub.AuthCertificateAuthority}},
		{DeviceID: "ca2", Authentication: hub.Authentication{Type: hub.AuthCertificateAuthority}},
		{DeviceID: "sas1"},
	} {
		if _, err := h.Client().CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	rc := restClient(t, h, pool, "")
	for _, c := range []struct {
		name     string
		cert     testCert
		verified bool
	}{{"root", ca, true}, {"unverified", unverifiedCA, false}} {
		if _, err := rc.PutCertificate(ctx, c.name, &hub.Certificate{Properties: hub.CertificateProperties{Certificate: c.cert.pem(), IsVerified: c.verified}}, ""); err != nil {
			t.Fatal(err)
		}
	}

	inter := makeCert(t, "intermediate", &ca, true, now.Add(-time.Hour), now.Add(24*time.Hour))
	cases := []struct {
		name, id string
		chain    []testCert // leaf first; none: no certificate
		password string
		want     byte
	}{
		{"self-signed, SHA-1 primary", "self1", []testCert{self}, "", 0},
		{"self-signed, SHA-256 secondary", "self2", []testCert{self256}, "", 0},
		{"self-signed, wrong certificate", "self1", []testCert{other}, "", 5},
		{"self-signed, expired", "old", []testCert{expired}, "", 5},
		{"self-signed, no certificate", "self1", nil, "", 5},
		{"self-signed, password as well", "self1", []testCert{self}, "SharedAccessSignature sr=x&sig=y&se=1", 5},
		{"CA-signed", "ca1", []testCert{valid("ca1", &ca)}, "", 0},
		{"CA-signed through an intermediate", "ca2", []testCert{valid("ca2", &inter), inter}, "", 0},
		{"CA-signed, intermediate not sent", "ca2", []testCert{valid("ca2", &inter)}, "", 5},
		{"CA-signed, wrong CN", "ca1", []testCert{valid("ca2", &ca)}, "", 5},
		{"CA-signed, expired", "ca1", []testCert{makeCert(t, "ca1", &ca, false, now.Add(-48*time.Hour), now.Add(-time.Hour))}, "", 5},
		{"CA-signed, unregistered CA", "ca1", []testCert{valid("ca1", &strangerCA)}, "", 5},
		{"CA-signed, unverified CA", "ca1", []testCert{valid("ca1", &unverifiedCA)}, "", 5},
		{"CA-signed, self-signed leaf", "ca1", []testCert{valid("ca1", nil)}, "", 5},
		{"sas device with a certificate only", "sas1", []testCert{valid("sas1", &ca)}, "", 5},
	}
	for _, tc := range cases {
		for _, ws := range []bool{false, true} {
			name := tc.name
			if ws {
				name += " (WebSocket)"
			}
			t.Run(name, func(t *testing.T) {
				if got := x509Connect(t, h.MQTTAddr(), h.HTTPAddr(), ws, pool, tc.id, tc.password, tc.chain); got != tc.want {
					t.Errorf("CONNACK %d, want %d", got, tc.want)
				}
			})
		}
	}

	// A CA registered now counts at the next CONNECT, and one removed no
	// longer does.
	late := []testCert{valid("ca1", &lateCA)}
	if got := x509Connect(t, h.MQTTAddr(), "", false, pool, "ca1", "", late); got != 5 {
		t.Fatalf("before the CA is registered: CONNACK %d, want 5", got)
	}
	if _, err := rc.PutCertificate(ctx, "late", &hub.Certificate{Properties: hub.CertificateProperties{Certificate: lateCA.pem(), IsVerified: true}}, ""); err != nil {
		t.Fatal(err)
	}
	if got := x509Connect(t, h.MQTTAddr(), "", false, pool, "ca1", "", late); got != 0 {
		t.Fatalf("after the CA is registered: CONNACK %d, want 0", got)
	}
	if err := rc.DeleteCertificate(ctx, "late", ""); err != nil {
		t.Fatal(err)
	}
	if got := x509Connect(t, h.MQTTAddr(), "", false, pool, "ca1", "", late); got != 5 {
		t.Fatalf("after the CA is removed: CONNACK %d, want 5", got)
	}
}

// x509Connect sends one CONNECT as device id with the certificate chain
// (and password, if any) and returns the CONNACK code; over MQTT over
// WebSocket on the HTTPS port when ws.
func x509Connect(t *testing.T, mqttAddr, httpAddr string, ws bool, pool *x509.CertPool, id, password string, chain []testCert) byte {
	t.Helper()
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if len(chain) > 0 {
		c := chain[0].tls()
		for _, ic := range chain[1:] {
			c.Certificate = append(c.Certificate, ic.x.Raw)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	url := "tls://" + mqttAddr
	if ws {
		url = "wss://" + httpAddr + "/$iothub/websocket"
	}
	o := paho.NewClientOptions().AddBroker(url).
		SetClientID(id).SetUsername("localhost/" + id + "/?api-version=2021-04-12").
		SetProtocolVersion(4).SetCleanSession(false).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(wait).
		SetTLSConfig(cfg)
	if password != "" {
		o.SetPassword(password)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatalf("%s: CONNECT not answered in %v", id, wait)
	}
	code := tok.(*paho.ConnectToken).ReturnCode()
	if tok.Error() == nil {
		c.Disconnect(0)
	}
	return code
}

// TestCertificatesREST: the certificates API registers, describes, lists
// and removes CA certificates, and refuses what cannot be a CA, with
// Azure's shapes and clear reasons.
func TestCertificatesREST(t *testing.T) {
	t.Parallel()
	h := openHub(t, t.TempDir(), "127.0.0.1:0")
	pool := caPool(t, h)
	rc := restClient(t, h, pool, "")
	ctx := context.Background()
	now := time.Now()
	ca := makeCert(t, "test root CA", nil, true, now.Add(-time.Hour), now.Add(24*time.Hour))
	put := func(name, text, etag string) (*hub.Certificate, error) {
		return rc.PutCertificate(ctx, name, &hub.Certificate{Properties: hub.CertificateProperties{Certificate: text, IsVerified: true}}, etag)
	}
	refused := []struct {
		name, cert, etag, code, msg string
	}{
		{"not PEM", "hello", "", hub.CodeArgumentInvalid, "not PEM"},
		{"a key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}})), "", hub.CodeArgumentInvalid, "not a CERTIFICATE"},
		{"not a CA", makeCert(t, "leaf", &ca, false, now.Add(-time.Hour), now.Add(time.Hour)).pem(), "", hub.CodeArgumentInvalid, "not a CA certificate"},
		{"expired", makeCert(t, "old CA", nil, true, now.Add(-48*time.Hour), now.Add(-time.Hour)).pem(), "", hub.CodeArgumentInvalid, "expired"},
		{"garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "", hub.CodeArgumentInvalid, "cannot be parsed"},
		{"missing", "", "", hub.CodeArgumentInvalid, "properties.certificate is missing"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := put("refused", tc.cert, tc.etag)
			if hub.ErrorCode(err) != tc.code || !strings.Contains(hub.ErrorMessage(err), tc.msg) {
				t.Errorf("put: %v, want %s saying %q", err, tc.code, tc.msg)
			}
		})
	}
	if _, err := put("bad name!", ca.pem(), ""); hub.ErrorCode(err) != hub.CodeArgumentInvalid {
		t.Errorf("put with a bad name: %v, want ArgumentInvalid", err)
	}
	got, err := put("root", ca.pem(), "")
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := hub.Thumbprints(ca.x.Raw)
	p := got.Properties
	if got.Name != "root" || got.ETag == "" || p.Thumbprint != s1 || p.Subject != "CN=test root CA" || !p.IsVerified ||
		p.Expiry != ca.x.NotAfter.UTC().Format(hub.CertificateTime) || p.Created == "" || p.Certificate != ca.pem() {
		t.Errorf("put answered %+v", got)
	}
	if _, err := put("root", ca.pem(), ""); hub.ErrorCode(err) != hub.CodePreconditionFailed {
		t.Errorf("second put without If-Match: %v, want PreconditionFailed", err)
	}
	if _, err := put("root", ca.pem(), "AAAA"); hub.ErrorCode(err) != hub.CodePreconditionFailed {
		t.Errorf("put with another etag: %v, want PreconditionFailed", err)
	}
	again, err := put("root", ca.pem(), got.ETag)
	if err != nil || again.ETag == got.ETag || again.Properties.Created != got.Properties.Created {
		t.Errorf("replace with its etag: %+v, %v; want a new etag, the same created", again, err)
	}
	l, err := rc.ListCertificates(ctx)
	if err != nil || len(l) != 1 || l[0].Name != "root" {
		t.Errorf("list: %+v, %v", l, err)
	}
	if err := rc.DeleteCertificate(ctx, "root", got.ETag); hub.ErrorCode(err) != hub.CodePreconditionFailed {
		t.Errorf("delete with an old etag: %v, want PreconditionFailed", err)
	}
	if err := rc.DeleteCertificate(ctx, "root", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.GetCertificate(ctx, "root"); hub.ErrorCode(err) != hub.CodeCertificateNotFound {
		t.Errorf("get after delete: %v, want CertificateNotFound", err)
	}
	if l, err := rc.ListCertificates(ctx); err != nil || len(l) != 0 {
		t.Errorf("list after delete: %+v, %v; want empty", l, err)
	}
}

// TestSimulateX509Fleet: a fleet file's groups of each authentication
// kind are registered by the simulator (which makes their certificates,
// and a CA it registers), connect, and answer direct methods; run again,
// the simulator makes new certificates and updates the registry.
func TestSimulateX509Fleet(t *testing.T) {
	t.Parallel()
	h := openHub(t, t.TempDir(), "127.0.0.1:0")
	pool := caPool(t, h)
	f, ds := simulate.Parse("x509.yaml", []byte(`
version: 1
groups:
  - ids: [s1]
    methods: {ping: {payload: {ok: true}}}
  - ids: "self-{n}"
    count: 2
    auth: selfSigned
    methods: {ping: {payload: {ok: true}}}
  - ids: "ca-{n}"
    count: 2
    auth: certificateAuthority
    methods: {ping: {payload: {ok: true}}}
`))
	if ds.HasErrors() {
		t.Fatalf("fleet: %v", ds)
	}
	for run := range 2 {
		devs := f.Devices()
		ctx := testCtx(t, time.Minute)
		keys, err := simulate.Register(ctx, h.Client(), devs)
		if err != nil {
			t.Fatalf("run %d: register: %v", run, err)
		}
		sim := connectFleet(ctx, t, h, pool, devs, keys)
		for _, d := range devs {
			got, err := h.Client().GetDevice(ctx, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if want := cmp.Or(d.Auth, hub.AuthSAS); got.Authentication.Type != want {
				t.Errorf("run %d: %s registered as %q, want %q", run, d.ID, got.Authentication.Type, want)
			}
			r, err := h.Client().InvokeMethod(ctx, d.ID, &hub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 10})
			if err != nil || r.Status != 200 {
				t.Errorf("run %d: ping %s: %+v, %v", run, d.ID, r, err)
			}
		}
		sim.Close()
	}
	l, err := h.Client().(hub.Certificates).ListCertificates(testCtx(t, time.Minute))
	if err != nil || len(l) != 2 {
		t.Errorf("CAs registered by two runs: %d, %v; want 2", len(l), err)
	}
}

// TestX509ConnectionEndsWithCertificate: an X.509 device's connection is
// closed when its certificate expires, as a SAS device's when its token
// does.
func TestX509ConnectionEndsWithCertificate(t *testing.T) {
	t.Parallel()
	h := openHub(t, t.TempDir(), "127.0.0.1:0")
	now := time.Now()
	cert := makeCert(t, "brief", nil, false, now.Add(-time.Hour), now.Add(2*time.Second))
	tp, _ := hub.Thumbprints(cert.x.Raw)
	if _, err := h.Client().CreateDevice(t.Context(), &hub.Device{DeviceID: "brief",
		Authentication: hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: hub.X509Thumbprint{PrimaryThumbprint: &tp}}}); err != nil {
		t.Fatal(err)
	}
	lost := make(chan struct{})
	o := paho.NewClientOptions().AddBroker("tls://" + h.MQTTAddr()).
		SetClientID("brief").SetUsername("localhost/brief/?api-version=2021-04-12").
		SetProtocolVersion(4).SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).
		SetTLSConfig(&tls.Config{RootCAs: caPool(t, h), ServerName: "localhost", Certificates: []tls.Certificate{cert.tls()}}).
		SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	select {
	case <-lost:
		if time.Now().Before(cert.x.NotAfter) {
			t.Errorf("closed at %v, before the certificate expired (%v)", time.Now(), cert.x.NotAfter)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the connection outlived its certificate by 15 s")
	}
}
