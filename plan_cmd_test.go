package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/runner"
)

// TestPlanCommand: iotjobs plan against a fleet file prints what each step
// would do; --report writes the dry-run report; a pre-flight that fails
// exits 1 with its numbers.
func TestPlanCommand(t *testing.T) {
	rep := filepath.Join(t.TempDir(), "dry.json")
	code, stdout, stderr := runCLI(t, t.Context(), "plan", "--fleet", "examples/firmware-fleet.yaml", "--rate", "10", "--report", rep, "examples/firmware-rollout.yaml")
	if code != 0 {
		t.Fatalf("plan exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"step set-firmware (scheduleUpdateTwin): 63 devices match",
		`properties.desired.firmware → "2.4.1": 63 change (63 from undefined), 0 comply`,
		"batch 1: 7 devices", "batch 2: 25 devices", "batch 3: 31 devices",
		"step reboot (scheduleDeviceMethod): 63 devices match", "starts after set-firmware",
		"only on the devices that pass set-firmware",
		"pre-flight ok: 31 devices at 10 operations/s take 3.1s",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	r := readReport(t, rep)
	if !r.DryRun || r.Steps[0].Preview == nil || r.Steps[0].Preview.Matched != 63 {
		t.Errorf("report: dryRun %v, first step %+v", r.DryRun, r.Steps[0])
	}

	// 63 devices at 0.01 a second need 6,300 s > the hour of maxExecutionTime.
	code, stdout, _ = runCLI(t, t.Context(), "plan", "--fleet", "examples/firmware-fleet.yaml", "--rate", "0.01", "-o", "json", "examples/firmware-rollout.yaml")
	if code != 1 {
		t.Fatalf("plan with a failing pre-flight: exit %d, want 1", code)
	}
	var jr runner.Report
	if err := json.Unmarshal([]byte(stdout), &jr); err != nil {
		t.Fatalf("-o json: %v\n%s", err, stdout)
	}
	rb := jr.Steps[1]
	if jr.Status != runner.StatusFailed || rb.Status != runner.StepFailed || !strings.Contains(rb.Reason, "63 devices at 0.01 operations/s take 1h45m0s, longer than the maxExecutionTime of 1h0m0s") {
		t.Errorf("report %s, reboot %s %q", jr.Status, rb.Status, rb.Reason)
	}
}

// TestPreflight100k: a method step over 100,000 devices cannot finish in
// its hour at 10 operations a second; plan says so with the numbers and
// exits 1.
func TestPreflight100k(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile := filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "plan.yaml")
	writeTestFile(t, fleet, "version: 1\ngroups:\n  - ids: \"d-{n:06}\"\n    count: 100000\n    tags: {site: big}\n    methods:\n      ping: {status: 200}\n")
	writeTestFile(t, planFile, "version: 1\nname: big\nsteps:\n  - name: ping-all\n    query: \"tags.site = 'big'\"\n    method: {name: ping}\n    maxExecutionTime: 1h\n")
	code, stdout, stderr := runCLI(t, t.Context(), "plan", "--fleet", fleet, "--rate", "10", planFile)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"100000 devices match", "pre-flight FAILS: 100000 devices at 10 operations/s take 2h46m40s, longer than the maxExecutionTime of 1h0m0s"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}
