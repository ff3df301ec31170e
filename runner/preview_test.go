package runner_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/runner"
)

// readOnly is a hub.Client that lets reads through and fails the test on
// anything that would change the hub or touch a device.
type readOnly struct {
	hub.Client
	t *testing.T
}

func (c readOnly) deny(what string) error {
	c.t.Errorf("the dry-run called %s", what)
	return errors.New("denied")
}
func (c readOnly) CreateDevice(context.Context, *hub.Device) (*hub.Device, error) {
	return nil, c.deny("CreateDevice")
}
func (c readOnly) DeleteDevice(context.Context, string, string) error { return c.deny("DeleteDevice") }
func (c readOnly) UpdateDevice(context.Context, *hub.Device, string) (*hub.Device, error) {
	return nil, c.deny("UpdateDevice")
}
func (c readOnly) ImportDevices(context.Context, []*hub.ImportDevice) (*hub.BulkResult, error) {
	return nil, c.deny("ImportDevices")
}
func (c readOnly) UpdateTwin(context.Context, string, *hub.TwinPatch, string) (*hub.Twin, error) {
	return nil, c.deny("UpdateTwin")
}
func (c readOnly) ReplaceTwin(context.Context, string, *hub.TwinPatch, string) (*hub.Twin, error) {
	return nil, c.deny("ReplaceTwin")
}
func (c readOnly) InvokeMethod(context.Context, string, *hub.MethodRequest) (*hub.MethodResponse, error) {
	return nil, c.deny("InvokeMethod")
}
func (c readOnly) CreateJob(context.Context, *hub.Job) (*hub.Job, error) {
	return nil, c.deny("CreateJob")
}
func (c readOnly) CancelJob(context.Context, string) (*hub.Job, error) {
	return nil, c.deny("CancelJob")
}

// TestPreview: matched devices, the twin diff, the timeline of a rollout
// and of a cron step, and a pre-flight that fails with its numbers — all
// read from the hub without changing it.
func TestPreview(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := newFleetHub(t, clk, rolloutFleet)
	ctx := context.Background()
	// 3 twins comply already, 2 hold another version, the rest none.
	for i, id := range []string{"dev-001", "dev-002", "dev-003", "dev-004", "dev-005"} {
		fw := "2.4.1"
		if i >= 3 {
			fw = "2.3.0"
		}
		if _, err := h.UpdateTwin(ctx, id, &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"firmware": fw}}}, "*"); err != nil {
			t.Fatal(err)
		}
	}
	p := parse(t, header+`  - name: firmware
    query: "deviceId IN ['dev-001', 'dev-002', 'dev-003', 'dev-004', 'dev-005', 'dev-006', 'dev-007', 'dev-008', 'dev-009', 'dev-01-x']"
    twin: {desired: {firmware: "2.4.1"}}
    rollout: {batches: ["50%", "100%"], pause: 1h}
  - name: reboot
    query: "tags.ring = 'broad'"
    method: {name: reboot}
    maxExecutionTime: 10s
  - name: nightly
    after: []
    query: "deviceId = 'dev-001'"
    method: {name: reboot}
    cron: "0 2 * * *"
`)
	r := &runner.Runner{Hub: readOnly{h, t}, Clock: clk}
	rep, err := r.Preview(ctx, p, runner.PreviewOptions{OpsPerSecond: 5})
	checkSchema(t, rep)
	var failed *runner.StepFailedError
	if !errors.As(err, &failed) || len(failed.Steps) != 1 || failed.Steps[0] != "reboot" || !rep.DryRun {
		t.Fatalf("Preview: %v (report %s, dryRun %v), want reboot failing its pre-flight", err, rep.Status, rep.DryRun)
	}
	fw, rb, nightly := rep.Steps[0].Preview, rep.Steps[1].Preview, rep.Steps[2].Preview
	if fw.Matched != 10 || len(fw.Sample) != 5 || fw.Sample[0] != "dev-001" || fw.Noop != 3 || len(fw.TwinDiff) != 1 {
		t.Fatalf("firmware preview %+v", fw)
	}
	d := fw.TwinDiff[0]
	if d.Path != "properties.desired.firmware" || d.To != "2.4.1" || d.Comply != 3 || d.Change != 7 || len(d.From) != 2 ||
		d.From[0].Value != "undefined" || d.From[0].Count != 5 || d.From[1].Value != "2.3.0" || d.From[1].Count != 2 {
		t.Errorf("twin diff %+v", d)
	}
	if b := fw.Timeline.Batches; len(b) != 2 || b[0].Devices != 5 || b[1].Devices != 5 || !b[1].Start.Equal(t0.Add(time.Hour)) {
		t.Errorf("batches %+v", b)
	}
	pf := rb.Preflight
	if rb.Matched != 100 || pf == nil || pf.OK || pf.Needed != 20*time.Second || pf.Available != 10*time.Second ||
		!strings.Contains(pf.Message, "100 devices at 5 operations/s take 20s, longer than the maxExecutionTime of 10s") {
		t.Errorf("reboot pre-flight %+v (matched %d)", pf, rb.Matched)
	}
	if rep.Steps[1].Status != runner.StepFailed || rep.Steps[1].Reason != pf.Message {
		t.Errorf("reboot step %s %q", rep.Steps[1].Status, rep.Steps[1].Reason)
	}
	if occ := nightly.Timeline.Occurrences; len(occ) != 7 || !occ[0].Equal(time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)) || !nightly.Timeline.Start.Equal(occ[0]) {
		t.Errorf("nightly occurrences %v", occ)
	}
}
