package mqtttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Mosquitto is a broker process of the test's own.
type Mosquitto struct {
	tb   testing.TB
	bin  string
	conf string
	// Addr is its host:port on loopback.
	Addr string
	cmd  *exec.Cmd
}

// Start runs a Mosquitto for tb, ended when tb ends.
func Start(tb testing.TB) *Mosquitto {
	tb.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if os.Getenv("IOTJOBS_REQUIRE_MOSQUITTO") != "" {
			tb.Fatalf("mosquitto is required (IOTJOBS_REQUIRE_MOSQUITTO): %v", err)
		}
		tb.Skip("no mosquitto binary")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(tb.TempDir(), "mosquitto.conf")
	// No persistence: a restarted broker has forgotten every retained
	// presence and session, so devices must announce themselves again.
	// No queue limit: a hub subscribed to every device's topics must
	// not lose messages to a burst.
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nlog_type none\n", port)), 0o644); err != nil {
		tb.Fatal(err)
	}
	m := &Mosquitto{tb: tb, bin: bin, conf: conf, Addr: addr}
	m.Start()
	tb.Cleanup(m.Kill)
	return m
}

// URL is the broker's mqtt:// URL.
func (m *Mosquitto) URL() string { return "mqtt://" + m.Addr }

// PID is the broker process's id.
func (m *Mosquitto) PID() int { return m.cmd.Process.Pid }

// Start runs the broker (again) and waits until it accepts connections.
func (m *Mosquitto) Start() {
	m.tb.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	if err := m.cmd.Start(); err != nil {
		m.tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			m.tb.Fatalf("mosquitto on %s did not start: %v", m.Addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a port that is not there yet
	}
}

// Kill ends the broker at once (SIGKILL: no Will, no clean goodbye).
func (m *Mosquitto) Kill() {
	if m.cmd != nil && m.cmd.Process != nil && m.cmd.ProcessState == nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
	}
}
