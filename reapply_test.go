package main

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
	"github.com/iotjobs/iotjobs/simulate"
)

// TestTutorialEcho: the tutorial run over and over, each on a fresh
// embedded hub: the device's echo of the desired patch is on its twin
// every time (the fleet settles before it closes). 20 runs; 5 under the
// race detector, whose runs take several times as long.
func TestTutorialEcho(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the tutorial 20 times")
	}
	runs := 20
	if raceEnabled {
		runs = 5
	}
	for i := range runs {
		data := filepath.Join(t.TempDir(), "data")
		if code, _, stderr := runCLI(t, t.Context(), "apply", "--data", data, "--fleet", "examples/fleet.yaml", "--report", filepath.Join(data, "..", "r.json"), "examples/lock-door.yaml"); code != 0 {
			t.Fatalf("run %d: apply exit %d\n%s", i+1, code, stderr)
		}
		code, stdout, stderr := runCLI(t, t.Context(), "query", "--data", data, "-o", "jsonl", "SELECT properties.reported.building AS building, properties.reported.floor AS floor FROM devices WHERE deviceId = 'myDeviceId'")
		if code != 0 || stdout != `{"building":"43","floor":3}`+"\n" {
			t.Fatalf("run %d: the device's reported properties %q (exit %d %s); want the echo of building 43, floor 3", i+1, stdout, code, stderr)
		}
	}
}

// TestFirmwareRolloutReappliedLive: the firmware example applied on the
// embedded hub with its fleet over MQTT, then again with the same
// simulator, then again after the simulator restarted: the devices that
// run the firmware keep reporting it (a simulated device reconnects as one
// that rebooted, not one reflashed), so the later runs leave their twins
// alone (no-ops) and verify passes them at once; only the three devices
// whose update never lands fail verify, every time. A clock 200 times as
// fast as the real one plays the rollout's 26 minutes.
func TestFirmwareRolloutReappliedLive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the firmware rollout three times over MQTT")
	}
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	clk := clock.Scaled(time.Now(), 200)
	h, err := hubd.Open(ctx, hubd.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fl, ds := simulate.Load("examples/firmware-fleet.yaml")
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	devs := fl.Devices()
	keys, err := simulate.Register(ctx, h.Client(), devs)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := hubd.LoadCA(h.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	connect := func() *simulate.Sim {
		// A twin GET's 30 s are 150 ms on this clock: too little for a
		// loaded machine, and a device not answered reports its fleet
		// file's firmware (2.3.9), which verify then rightly fails.
		sim, err := simulate.Connect(ctx, devs, keys, simulate.Options{Addr: h.MQTTAddr(), HostName: h.HostName(), RootCAs: pool, Clock: clk, Logger: quiet,
			TwinTimeout: 30 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.WaitConnected(ctx, h.Client()); err != nil {
			t.Fatal(err)
		}
		return sim
	}
	p, pds := plan.Load("examples/firmware-rollout.yaml")
	if pds.HasErrors() {
		t.Fatal(pds)
	}
	apply := func(run string) *runner.Report {
		t.Helper()
		rep, _ := (&runner.Runner{Hub: h.Client(), Clock: clk, HubName: "embedded"}).Apply(ctx, p)
		if rep == nil {
			t.Fatalf("%s: no report", run)
		}
		checkReport(t, rep)
		return rep
	}
	sim := connect()
	first := apply("first run")
	if s := first.Steps[0].Summary; s.Succeeded != 60 || s.FailedByClass["verify"] != 3 {
		t.Fatalf("first run: %s", s)
	}
	for _, again := range []string{"again, same simulator", "again, simulator restarted"} {
		if again == "again, simulator restarted" {
			sim.Close()
			sim = connect()
		}
		rep := apply(again)
		fw, rb := rep.Steps[0], rep.Steps[1]
		for _, d := range fw.Devices {
			stuck := len(d.DeviceID) > 10 && d.DeviceID[:10] == "door-stuck"
			switch {
			case stuck && (d.Error == nil || d.Error.Code != runner.CodeVerifyTimeout):
				t.Errorf("%s: %s: %+v; its update never lands, verify must fail it", again, d.DeviceID, d)
			case !stuck && (d.Status != runner.DeviceNoop || !d.Succeeded || d.Error != nil):
				t.Errorf("%s: %s runs the firmware but ended %s %v", again, d.DeviceID, d.Status, d.Error)
			}
		}
		if s := fw.Summary; s.Noop != 60 || s.Failed != 3 || len(fw.JobIDs) != 0 {
			t.Errorf("%s: set-firmware %s, %d jobs", again, s, len(fw.JobIDs))
		}
		if len(rb.JobIDs) != 0 || rep.Status != runner.StatusSucceeded {
			t.Errorf("%s: %s; reboot %s %q with %d jobs", again, rep.Status, rb.Status, rb.Reason, len(rb.JobIDs))
		}
		t.Logf("%s: %s", again, fw.Summary)
	}
	sim.Close()
}
