package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
)

const windowFleet = `
version: 1
groups:
  - ids: "early-{n}"
    count: 3
    tags: {ring: w, maintenance: {cron: "0 1 * * *", duration: "1h"}}
    methods:
      reboot: {status: 200}
  - ids: "berlin-{n}"
    count: 2
    tags: {ring: w, maintenance: {cron: "0 3 * * *", duration: "30m", timezone: Europe/Berlin}}
    methods:
      reboot: {status: 200}
  - ids: [nowindow]
    tags: {ring: w}
    methods:
      reboot: {status: 200}
`

// TestStepWindow: a step with a maintenance window waits for it to open.
func TestStepWindow(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := newFleetHub(t, clk, windowFleet)
	p := parse(t, header+`  - name: nightly
    query: "tags.ring = 'w'"
    method: {name: reboot}
    window: {cron: "0 22 * * *", duration: 2h}
`)
	done := applying(t, &runner.Runner{Hub: h, Clock: clk}, p)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	opens := t0.Add(12 * time.Hour)
	if err := clk.WaitTimer(ctx, opens); err != nil {
		t.Fatalf("the step did not wait for its window: %v", err)
	}
	clk.AdvanceTo(opens)
	rep := awaitReport(t, t.Context(), done)
	s := rep.Steps[0]
	if rep.Status != runner.StatusSucceeded || s.StartTime == nil || !s.StartTime.Equal(opens) || len(s.Devices) != 6 {
		t.Fatalf("report %s, step %s %q starting %v with %d devices; want all 6 at %v", rep.Status, s.Status, s.Reason, s.StartTime, len(s.Devices), opens)
	}
}

// TestDeviceWindows: with window.fromTag, each device runs in its own
// window (read in its time zone); a device without one fails.
func TestDeviceWindows(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := newFleetHub(t, clk, windowFleet)
	p := parse(t, header+`  - name: per-device
    query: "tags.ring = 'w'"
    method: {name: reboot}
    window: {fromTag: tags.maintenance}
    success: {minSuccessRate: 80%}
`)
	ended := make(chan string, 4)
	done := applying(t, &runner.Runner{Hub: h, Clock: clk, Observer: jobEndObserver(ended)}, p)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// 01:00 UTC for early-*, 03:00 in Berlin (02:00 UTC in November) for
	// berlin-*. The first window's job must end before the clock moves on
	// (it would pass its deadline).
	for i, at := range []time.Time{t0.Add(time.Hour), t0.Add(2 * time.Hour)} {
		if i > 0 {
			select {
			case <-ended:
			case <-ctx.Done():
				t.Fatal("the first window's job did not end")
			}
		}
		if err := clk.WaitTimer(ctx, at); err != nil {
			t.Fatalf("no window opening at %v: %v", at, err)
		}
		clk.AdvanceTo(at)
	}
	rep := awaitReport(t, t.Context(), done)
	s := rep.Steps[0]
	if len(s.JobIDs) != 2 || len(s.Devices) != 6 {
		t.Fatalf("%d jobs, %d devices; want 2 jobs (one per window), 6 devices; %s %q %+v", len(s.JobIDs), len(s.Devices), s.Status, s.Reason, s.Devices)
	}
	for i, want := range []time.Time{t0.Add(time.Hour), t0.Add(2 * time.Hour)} {
		j, err := h.GetJob(ctx, s.JobIDs[i])
		if err != nil || !j.StartTime.Equal(want) {
			t.Errorf("job %d started %v, want %v (%v)", i, j.StartTime, want, err)
		}
	}
	for _, d := range s.Devices {
		if d.DeviceID == "nowindow" {
			if d.Succeeded || d.Error == nil || d.Error.Code != "NoMaintenanceWindow" {
				t.Errorf("nowindow: %+v", d)
			}
		} else if !d.Succeeded {
			t.Errorf("%s: %+v", d.DeviceID, d)
		}
	}
	if rep.Status != runner.StatusSucceeded {
		t.Errorf("report %s: %s", rep.Status, s.Reason)
	}
}

// jobEndObserver sends the id of every job that ends.
type jobEndObserver chan string

func (jobEndObserver) StepStarted(*plan.Step, string) {}
func (o jobEndObserver) JobChanged(_ *plan.Step, j *hub.Job) {
	if j.EndTime != nil {
		o <- j.JobID
	}
}
func (jobEndObserver) StepFinished(*runner.StepReport) {}
func (jobEndObserver) Finish(*runner.Report) error     { return nil }
