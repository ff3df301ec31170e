package extbrokertest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/mqttproto"
)

// URL is the machine's Mosquitto (IOTJOBS_MOSQUITTO overrides
// mqtt://127.0.0.1:1883) under a topic root of the test's own, so runs
// and tests sharing the broker never see each other's devices. Without a
// reachable broker the test is skipped, unless IOTJOBS_REQUIRE_MOSQUITTO
// is set (CI sets it).
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("IOTJOBS_MOSQUITTO")
	if u == "" {
		u = "mqtt://127.0.0.1:1883"
	}
	b, err := mqttproto.ParseBrokerURL(u)
	if err != nil {
		t.Fatalf("IOTJOBS_MOSQUITTO: %v", err)
	}
	c, err := net.DialTimeout("tcp", b.Host, 2*time.Second)
	if err != nil {
		if os.Getenv("IOTJOBS_REQUIRE_MOSQUITTO") != "" {
			t.Fatalf("Mosquitto at %s is required (IOTJOBS_REQUIRE_MOSQUITTO): %v", b.Host, err)
		}
		t.Skipf("no MQTT broker at %s: %v", b.Host, err)
	}
	c.Close()
	var r [6]byte
	_, _ = rand.Read(r[:])
	return strings.TrimSuffix(u, "/") + "/iotjobs-test-" + hex.EncodeToString(r[:])
}
