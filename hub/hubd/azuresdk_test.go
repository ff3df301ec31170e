package hubd_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

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
