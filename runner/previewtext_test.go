package runner_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/runner"
)

// timelineFleet has four devices that answer reboot and echo desired
// properties.
const timelineFleet = `version: 1
groups:
  - ids: "d-{n}"
    count: 4
    tags: {ring: w}
    desired: {report: true}
    methods:
      reboot: {status: 200}
`

// timelinePlan has a step of each way to start: now (a rollout), after
// another step and in a window, at a fixed time, and by cron.
const timelinePlan = header + `  - name: stamp
    query: "tags.ring = 'w'"
    twin: {desired: {stamp: 1}}
    rollout: {batches: ["50%", "100%"], pause: 10m}
  - name: reboot
    query: "tags.ring = 'w'"
    method: {name: reboot}
    window: {cron: "0 3 * * *", duration: 2h}
  - name: later
    after: []
    query: "tags.ring = 'w'"
    method: {name: reboot}
    start: 2026-11-25T12:00:00Z
  - name: nightly
    after: []
    query: "deviceId = 'd-1'"
    method: {name: reboot}
    cron: "30 4 * * *"
`

// TestPreviewTimelineGolden: plan's text puts each step at its real
// start: a step after another at the time the simulation started it, in
// its window (03:00 the next day, not now), a fixed start at its time, a
// cron step at its next occurrence; without a simulation, at the
// earliest its timeline allows, and the verdict is "not simulated".
// testdata/preview-timeline.golden is the output (-update rewrites it).
func TestPreviewTimelineGolden(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	p := parse(t, timelinePlan)
	ctx := context.Background()

	read := clock.NewVirtual(t0)
	preview, err := (&runner.Runner{Hub: newFleetHub(t, read, timelineFleet), Clock: read, HubName: "fleet f.yaml"}).Preview(ctx, p, runner.PreviewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkSchema(t, preview)
	if preview.Status != runner.StatusPlanned {
		t.Errorf("a preview without a simulation says %s, want %s", preview.Status, runner.StatusPlanned)
	}
	var got bytes.Buffer
	got.WriteString("-- not simulated --\n")
	preview.Simulation = &runner.Simulation{Against: "fleet f.yaml", Assumptions: []string{}}
	preview.WritePreview(&got)

	vclk := clock.NewVirtual(t0)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	sim, err := (&runner.Runner{Hub: newFleetHub(t, vclk, timelineFleet), Clock: vclk, HubName: "fleet f.yaml", JobIDPrefix: runner.SimulatedJobPrefix}).
		ApplyVirtual(ctx, p, t0.Add(runner.DefaultHorizon))
	if err != nil {
		t.Fatal(err)
	}
	sim.Simulation = &runner.Simulation{Against: "fleet f.yaml", Simulated: true, Assumptions: []string{"played against fleet f.yaml: its devices behave as the file says"}}
	again, err := (&runner.Runner{Hub: newFleetHub(t, read, timelineFleet), Clock: read, HubName: "fleet f.yaml"}).Preview(ctx, p, runner.PreviewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runner.MergeDryRun(again, sim)
	if err != nil {
		t.Fatal(err)
	}
	checkSchema(t, rep)
	for _, s := range rep.Steps {
		for _, id := range s.JobIDs {
			if len(id) < 4 || id[:4] != runner.SimulatedJobPrefix {
				t.Errorf("step %s: job id %s does not say it is simulated", s.Name, id)
			}
		}
	}
	if s := rep.Steps[1]; s.StartTime == nil || !s.StartTime.Equal(time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)) {
		t.Errorf("reboot started %v, want when its window opens, 2026-11-26 03:00", s.StartTime)
	}
	got.WriteString("-- simulated --\n")
	rep.WritePreview(&got)

	path := filepath.Join("testdata", "preview-timeline.golden")
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./runner -run TestPreviewTimelineGolden -update writes it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("plan's text differs from %s:\n%s", path, got.Bytes())
	}
}
