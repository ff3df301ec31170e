package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/hub/extbroker/extbrokertest"
)

// TestTutorialMultiplexed: the tutorial's fleet played over a few shared
// connections (gateways of the embedded broker).
func TestTutorialMultiplexed(t *testing.T) {
	dir := t.TempDir()
	rep := filepath.Join(dir, "report.json")
	code, stdout, stderr := runCLI(t, t.Context(), "apply", "--data", filepath.Join(dir, "data"), "--connections", "3",
		"--fleet", "examples/fleet.yaml", "examples/lock-door.yaml", "--report", rep)
	if code != 0 {
		t.Fatalf("apply exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "301 connected to ") || !strings.Contains(stderr, "over 3 multiplexed connections") {
		t.Errorf("fleet not reported multiplexed:\n%s", stderr)
	}
	checkTutorialReport(t, readReport(t, rep))
}

// TestTutorialOnMosquitto: the tutorial with the hub on the machine's
// Mosquitto, embedded in the CLI (apply --broker) and as a served hub
// whose simulated fleet finds the broker by asking the hub.
func TestTutorialOnMosquitto(t *testing.T) {
	broker := extbrokertest.URL(t)
	dir := t.TempDir()
	t.Run("embedded", func(t *testing.T) {
		rep := filepath.Join(dir, "embedded.json")
		code, stdout, stderr := runCLI(t, t.Context(), "apply", "--data", filepath.Join(dir, "embedded"), "--broker", broker,
			"--fleet", "examples/fleet.yaml", "examples/lock-door.yaml", "--report", rep)
		if code != 0 {
			t.Fatalf("apply exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stderr, "301 connected to "+broker) {
			t.Errorf("fleet not reported connected to %s:\n%s", broker, stderr)
		}
		checkTutorialReport(t, readReport(t, rep))
	})
	t.Run("served", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		data := filepath.Join(dir, "hub")
		hubOut, _ := background(t, ctx, "hub", "serve", "--data", data, "--https", "127.0.0.1:0", "--broker", broker)
		waitLine(t, hubOut, regexp.MustCompile(`MQTT\s+`+regexp.QuoteMeta(broker)+` \(external broker`))
		cs := servedConnectionString(t, hubOut)
		go func() {
			for range hubOut {
			}
		}()
		ca := filepath.Join(data, "tls", "ca.pem")
		simCtx, stopSim := context.WithCancel(ctx)
		defer stopSim()
		simOut, simDone := background(t, simCtx, "simulate", "--hub", cs, "--ca", ca, "--fleet", "examples/fleet.yaml")
		waitLine(t, simOut, regexp.MustCompile(`301 connected to `+regexp.QuoteMeta(broker)))
		go func() {
			for range simOut {
			}
		}()
		rep := filepath.Join(dir, "served.json")
		code, stdout, stderr := runCLI(t, ctx, "apply", "--hub", cs, "--ca", ca, "--report", rep, "examples/lock-door.yaml")
		if code != 0 {
			t.Fatalf("apply exit %d\n%s\n%s", code, stdout, stderr)
		}
		checkTutorialReport(t, readReport(t, rep))
		stopSim()
		if code := <-simDone; code != 0 {
			t.Errorf("simulate exit %d", code)
		}
	})
}
