package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/runner"
)

// TestRollbackCommand: iotjobs rollback REPORT.json restores a finished
// run on the embedded hub from its report alone; a twin changed since is
// left alone (exit 1, RollbackConflict); running it again is harmless;
// bad arguments are usage errors (exit 2) that touch nothing.
func TestRollbackCommand(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	planFile := filepath.Join(dir, "eco.yaml")
	os.WriteFile(planFile, []byte(`version: 1
name: eco
steps:
  - name: eco
    query: "tags.ring = 'broad'"
    twin: {desired: {mode: eco}, tags: {eco: true}}
    rollout: {batches: ["10%", "100%"]}
`), 0o644)
	rep := filepath.Join(dir, "r.json")
	if code, _, stderr := runCLI(t, t.Context(), "apply", "--data", data, "--fleet", "testdata/reboot-fleet.yaml", "--report", rep, planFile); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runCLI(t, t.Context(), "twin", "patch", "--data", data, "dev-007", "--tags", `{"eco": "pinned"}`); code != 0 {
		t.Fatalf("twin patch: exit %d\n%s", code, stderr)
	}
	for round := 1; round <= 2; round++ {
		out := filepath.Join(dir, "rb.json")
		code, _, stderr := runCLI(t, t.Context(), "rollback", "--data", data, "--report", out, rep)
		if code != 1 || !strings.Contains(stderr, "did not restore every device") {
			t.Fatalf("round %d: rollback exit %d, want 1 (a conflict)\n%s", round, code, stderr)
		}
		rb := readReport(t, out).Steps[0].Rollback
		if rb.Trigger != runner.RollbackManual || rb.Restored != 99 || rb.Conflicts != 1 {
			t.Errorf("round %d: %d restored, %d conflicts (trigger %q); want 99 and 1", round, rb.Restored, rb.Conflicts, rb.Trigger)
		}
	}
	code, stdout, stderr := runCLI(t, t.Context(), "query", "--data", data, "-o", "json", "SELECT deviceId, tags, properties.desired FROM devices WHERE tags.ring = 'broad'")
	if code != 0 {
		t.Fatalf("query: exit %d\n%s", code, stderr)
	}
	var rows []struct {
		DeviceID string         `json:"deviceId"`
		Tags     map[string]any `json:"tags"`
		Desired  map[string]any `json:"desired"`
	}
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) != 100 {
		t.Fatalf("query rows: %v (%d)\n%s", err, len(rows), stdout)
	}
	for _, r := range rows {
		switch {
		case r.DeviceID == "dev-007":
			if r.Tags["eco"] != "pinned" || r.Desired["mode"] != "eco" {
				t.Errorf("dev-007 changed since the run and must be left alone: %v %v", r.Tags, r.Desired)
			}
		case r.Tags["eco"] != nil || r.Desired["mode"] != nil:
			t.Errorf("%s not restored: %v %v", r.DeviceID, r.Tags, r.Desired)
		}
	}

	dry := filepath.Join(dir, "dry.json")
	if code, _, stderr := runCLI(t, t.Context(), "plan", "--fleet", "testdata/reboot-fleet.yaml", "--report", dry, planFile); code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{rep, "extra"}, "exactly one report"},
		{[]string{"--step", "nope", rep}, `no such step`},
		{[]string{dry}, "dry-run"},
		{[]string{planFile}, "not an iotjobs JSON report"},
	} {
		code, _, stderr := runCLI(t, t.Context(), append([]string{"rollback", "--data", data}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("rollback %v: exit %d, want 2 saying %q\n%s", tc.args, code, tc.want, stderr)
		}
	}
}

// TestRollbackReportSize: what a report keeps to undo a twin step over
// 10,000 devices, grouped by identical values and etags, stays small (the
// README quotes the figure this logs).
func TestRollbackReportSize(t *testing.T) {
	clk := clock.NewVirtual(time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC))
	h := virtualHub(t, clk, "testdata/bench/fleet-10k.yaml")
	planFile := filepath.Join(t.TempDir(), "fw.yaml")
	os.WriteFile(planFile, []byte(`version: 1
name: fw
steps:
  - name: fw
    query: "tags.model = 'door-ctl'"
    twin: {desired: {firmware: "2.4.1", channel: stable}}
`), 0o644)
	rep := applyVirtual(t, h, clk, planFile)
	rb := rep.Steps[0].Rollback
	n := 0
	for _, sv := range rb.Saved {
		for _, ids := range sv.ETags {
			n += len(ids)
		}
	}
	b, err := json.Marshal(rb)
	if err != nil {
		t.Fatal(err)
	}
	perDevice := float64(len(b)) / float64(n)
	t.Logf("rollback section: %d bytes for %d devices (%.1f bytes a device) in %d groups", len(b), n, perDevice, len(rb.Saved))
	if n != 10000 || perDevice > 20 {
		t.Errorf("%d devices saved in %d bytes (%.1f a device); want all 10,000 at 20 bytes a device at most", n, len(b), perDevice)
	}
}
