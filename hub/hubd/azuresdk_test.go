package hubd_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/hubd"
)

// TestAzureNodeSDK is the outside check of the contract: the official
// Azure IoT Node SDKs (azure-iothub, azure-iot-device, azure-iot-device-mqtt)
// register a device, connect it over MQTT/TLS (and another over MQTT over
// WebSocket on the HTTPS port), call a direct method, update
// the twin and see the desired notification, page a query, and run, list,
// query and cancel jobs against our hub. .ci/run installs the SDKs
// (testdata/azuresdk) and sets IOTJOBS_AZURE_SDK=1; elsewhere the test is
// skipped unless they are installed.
func TestAzureNodeSDK(t *testing.T) {
	runNodeCheck(t, "check.js", hubd.Config{})
}

// TestAzureNodeSDKModules is the outside check of module identities
// (issue 19, item 5): azure-iothub's Registry and Client and
// azure-iot-device's ModuleClient over MQTT create a module, see its twin
// updates both ways, call a method on it, query devices.modules and
// delete it and its device (testdata/azuresdk/check-modules.js).
func TestAzureNodeSDKModules(t *testing.T) {
	runNodeCheck(t, "check-modules.js", hubd.Config{})
}

// runNodeCheck runs one script of testdata/azuresdk against a fresh hub
// opened with cfg (its addresses and data directory filled in here), with
// the hub's connection string, MQTT and HTTPS addresses and CA in the
// environment, plus env. It skips when the SDKs are not installed, unless
// IOTJOBS_AZURE_SDK is set.
func runNodeCheck(t *testing.T, script string, cfg hubd.Config, env ...string) *hubd.Hub {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("testdata", "azuresdk"))
	_, err := os.Stat(filepath.Join(dir, "node_modules", "azure-iothub"))
	node, nerr := exec.LookPath("node")
	if err != nil || nerr != nil {
		if os.Getenv("IOTJOBS_AZURE_SDK") != "" {
			t.Fatalf("IOTJOBS_AZURE_SDK is set but the SDKs or node are missing (npm ci in %s): %v %v", dir, err, nerr)
		}
		t.Skipf("Azure Node SDKs not installed: run `npm ci` in %s", dir)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.HTTPAddr, cfg.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0"
	h, err := hubd.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	_, port, _ := net.SplitHostPort(h.MQTTAddr())
	_, httpsPort, _ := net.SplitHostPort(h.HTTPAddr())
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"IOTHUB_CONNECTION_STRING="+h.ConnectionString(),
		"MQTT_HOST=localhost:"+port,
		"HTTPS_HOST=localhost:"+httpsPort, // MQTT over WebSocket
		"NODE_EXTRA_CA_CERTS="+h.CAFile(),
		"NODE_OPTIONS=--require "+filepath.Join(dir, "shim.js"),
	)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the Azure SDK check %s failed: %v", script, err)
	}
	return h
}

// TestAzureNodeSDKX509 is the outside check of X.509 devices
// (check-x509.js): the Node SDKs register a self-signed and a
// CA-authenticated device, connect them with client certificates over
// MQTT/TLS (and MQTT over WebSocket), call a direct method on each, and
// see wrong certificates refused. The certificates are made here, and the
// CA registered through the REST API, before the script runs.
func TestAzureNodeSDKX509(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca := makeCert(t, "node check CA", nil, true, now.Add(-time.Hour), now.Add(24*time.Hour))
	for name, c := range map[string]testCert{
		"self":     makeCert(t, "self", nil, false, now.Add(-time.Hour), now.Add(24*time.Hour)),
		"ca-dev":   makeCert(t, "ca-dev", &ca, false, now.Add(-time.Hour), now.Add(24*time.Hour)),
		"stranger": makeCert(t, "ca-dev", nil, false, now.Add(-time.Hour), now.Add(24*time.Hour)),
	} {
		writeCert(t, dir, name, c)
	}
	// The hub is opened by runNodeCheck; the CA goes into its data
	// directory's store before, through a hub of its own on the same
	// directory, closed before the check opens it again.
	data := t.TempDir()
	h := openHub(t, data, "127.0.0.1:0")
	rc := restClient(t, h, caPool(t, h), "")
	if _, err := rc.PutCertificate(t.Context(), "node-check-ca", &hub.Certificate{Properties: hub.CertificateProperties{Certificate: ca.pem(), IsVerified: true}}, ""); err != nil {
		t.Fatal(err)
	}
	h.Close()
	runNodeCheck(t, "check-x509.js", hubd.Config{DataDir: data}, "X509_DIR="+dir)
}

// writeCert writes c and its key as dir/name.pem and dir/name-key.pem.
func writeCert(t *testing.T, dir, name string, c testCert) {
	t.Helper()
	key, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	for file, text := range map[string][]byte{
		name + ".pem":     []byte(c.pem()),
		name + "-key.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}),
	} {
		if err := os.WriteFile(filepath.Join(dir, file), text, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
