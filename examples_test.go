package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/internal/reportcheck"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
)

// virtualHub is an in-memory hub with a fleet file's devices as
// in-process devices, all on the clock clk (what plan --fleet uses).
func virtualHub(t *testing.T, clk clock.Clock, fleetFile string) *engine.Engine {
	t.Helper()
	e, closeHub, err := fleetHub(context.Background(), io.Discard, fleetFile, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeHub)
	return e
}

// applyVirtual loads a plan and applies it on h in virtual time, the
// clock moved by RunUntil (only when nothing is left to do at the
// current instant), and checks the report's one truth.
func applyVirtual(t *testing.T, h hub.Client, clk *clock.Virtual, planFile string) *runner.Report {
	t.Helper()
	p, ds := plan.Load(planFile)
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	rep, err := (&runner.Runner{Hub: h, Clock: clk}).ApplyVirtual(ctx, p, time.Time{})
	if rep == nil {
		t.Fatalf("ApplyVirtual: %v", err)
	}
	checkReport(t, rep)
	return rep
}

// TestFirmwareRolloutExample runs examples/firmware-rollout.yaml on its
// fleet in virtual time, the clock moved by RunUntil (only when nothing is
// left to do at the current instant): batches of the declared sizes, each
// gated by verify (its devices report the firmware 20 s after the patch,
// which verify sees at its next look, 30 s in) and then the 5-minute
// pause; the last batch holds the three stuck devices, which verify waits
// 15 minutes for in vain; then the reboot on exactly the 60 devices that
// got it.
func TestFirmwareRolloutExample(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := virtualHub(t, clk, "examples/firmware-fleet.yaml")
	rep := applyVirtual(t, h, clk, "examples/firmware-rollout.yaml")
	fw, rb := rep.Steps[0], rep.Steps[1]
	var targets []int
	var starts []time.Duration
	for _, b := range fw.Batches {
		targets = append(targets, b.Target)
		starts = append(starts, b.StartTime.Sub(t0))
	}
	if len(targets) != 3 || targets[0] != 7 || targets[1] != 32 || targets[2] != 63 {
		t.Errorf("batch targets %v, want 7, 32, 63 (10%%, 50%%, 100%% of 63)", targets)
	}
	if len(starts) != 3 || starts[0] != 0 || starts[1] != 5*time.Minute+30*time.Second || starts[2] != 11*time.Minute {
		t.Errorf("batch starts %v, want 0, 5m30s, 11m", starts)
	}
	passed := map[string]bool{}
	for _, d := range fw.Devices {
		if d.Succeeded {
			passed[d.DeviceID] = true
		}
	}
	if len(passed) != 60 || passed["door-stuck-1"] || fw.Status != runner.StepCompleted || fw.Abort.Tripped {
		t.Errorf("set-firmware: %s %q, %d passed, abort %+v", fw.Status, fw.Reason, len(passed), fw.Abort)
	}
	if len(rb.Devices) != 60 || rb.Status != runner.StepCompleted || !rb.EndTime.Equal(t0.Add(26*time.Minute)) {
		t.Fatalf("reboot: %s %q on %d devices ending %v, want the 60 that passed at 22:26", rb.Status, rb.Reason, len(rb.Devices), rb.EndTime)
	}
	for _, d := range rb.Devices {
		if !passed[d.DeviceID] || !d.Succeeded {
			t.Errorf("reboot on %s: passed set-firmware %v, result %+v", d.DeviceID, passed[d.DeviceID], d)
		}
	}
	if rep.Status != runner.StatusSucceeded {
		t.Errorf("report status %s", rep.Status)
	}
}

// TestNightlySyncExample plays one night of examples/nightly-sync.yaml
// under --watch in virtual time: the 00:30 occurrence runs each sensor in
// its own maintenance window (01:00 UTC, and 03:00 Berlin = 02:00 UTC).
func TestNightlySyncExample(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := virtualHub(t, clk, "examples/nightly-fleet.yaml")
	p, ds := plan.Load("examples/nightly-sync.yaml")
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	reports := make(chan *runner.Report, 4)
	ended := make(chan struct{}, 4)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	go (&runner.Runner{Hub: h, Clock: clk, Observer: endObserver(ended)}).Watch(ctx, p, func(r *runner.Report) { reports <- r })
	deadline, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i, at := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		if i == 2 { // the 01:00 window's job ends before the clock moves on
			select {
			case <-ended:
			case <-deadline.Done():
				t.Fatal("the first window's job did not end")
			}
		}
		if err := clk.WaitTimer(deadline, t0.Add(at)); err != nil {
			t.Fatalf("nothing waits for %v: %v", at, err)
		}
		clk.AdvanceTo(t0.Add(at))
	}
	var rep *runner.Report
	select {
	case rep = <-reports:
	case <-deadline.Done():
		t.Fatal("no report for the night")
	}
	s := rep.Steps[0]
	if rep.Status != runner.StatusSucceeded || rep.Occurrence == nil || !rep.Occurrence.ScheduledAt.Equal(t0.Add(30*time.Minute)) ||
		len(s.Devices) != 40 || len(s.JobIDs) != 2 {
		t.Fatalf("report %s for %+v: step %s %q, %d devices in %d jobs", rep.Status, rep.Occurrence, s.Status, s.Reason, len(s.Devices), len(s.JobIDs))
	}
}

// endObserver signals every hub job that ends.
type endObserver chan struct{}

func (endObserver) StepStarted(*plan.Step, string) {}
func (o endObserver) JobChanged(_ *plan.Step, j *hub.Job) {
	if j.EndTime != nil {
		o <- struct{}{}
	}
}
func (endObserver) StepFinished(*runner.StepReport) {}
func (endObserver) Finish(*runner.Report) error     { return nil }

// TestFirmwareRolloutReapplied: applying the firmware rollout a second
// time changes nothing: every twin holds the firmware already (no-ops),
// the 60 devices that run it pass verify at once, the 3 stuck ones still
// fail it, and nobody is rebooted again.
func TestFirmwareRolloutReapplied(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := virtualHub(t, clk, "examples/firmware-fleet.yaml")
	var reps []*runner.Report
	for range 2 {
		reps = append(reps, applyVirtual(t, h, clk, "examples/firmware-rollout.yaml"))
	}
	fw, rb := reps[1].Steps[0], reps[1].Steps[1]
	if s := fw.Summary; s.Noop != 60 || s.Failed != 3 || s.FailedByClass["verify"] != 3 || s.Succeeded != 0 || len(fw.JobIDs) != 0 {
		t.Errorf("set-firmware again: %s, %d jobs", s, len(fw.JobIDs))
	}
	if rb.Status != runner.StepCompleted || len(rb.JobIDs) != 0 || len(rb.Devices) != 0 {
		t.Errorf("reboot again: %s %q, %d jobs, %d devices", rb.Status, rb.Reason, len(rb.JobIDs), len(rb.Devices))
	}
	if reps[1].Status != runner.StatusSucceeded {
		t.Errorf("the second run: %s", reps[1].Status)
	}
}

// checkReport holds a report to the one truth of every view
// (internal/reportcheck).
func checkReport(t *testing.T, rep *runner.Report) {
	t.Helper()
	for _, err := range reportcheck.Check(rep) {
		t.Error(err)
	}
}

// TestFleetHubFromCurrentTwins: apply's dry-run starts the fleet's devices
// from their twins on the hub, as they will when they connect: the
// hub's desired properties and reported values, the fleet file's only
// where the twin lacks one.
func TestFleetHubFromCurrentTwins(t *testing.T) {
	ctx := t.Context()
	clk := clock.NewVirtual(time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC))
	cur := virtualHub(t, clk, "examples/firmware-fleet.yaml")
	if _, err := cur.UpdateTwin(ctx, "door-001", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"firmware": "2.4.1"}}}, "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := cur.ReportedPatch(ctx, "door-001", []byte(`{"firmware": "2.4.1"}`)); err != nil {
		t.Fatal(err)
	}
	e, closeHub, err := fleetHub(ctx, io.Discard, "examples/firmware-fleet.yaml", clk, cur)
	if err != nil {
		t.Fatal(err)
	}
	defer closeHub()
	for id, want := range map[string]string{"door-001": "2.4.1", "door-002": "2.3.9"} {
		tw, err := e.GetTwin(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if tw.Properties.Reported["firmware"] != want || (id == "door-001") != (tw.Properties.Desired["firmware"] == "2.4.1") {
			t.Errorf("%s: reported %v desired %v; want reported %s", id, tw.Properties.Reported["firmware"], tw.Properties.Desired["firmware"], want)
		}
	}
}
