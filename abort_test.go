package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/runner"
)

// TestAbortEndToEnd: on the embedded hub, with a fleet in which 10% of the
// devices answer the method with 500, a step with abort at 5% after 50
// devices stops, the next step does not run, the report and the JUnit
// file say why, and apply exits 1.
func TestAbortEndToEnd(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile := "testdata/reboot-fleet.yaml", filepath.Join(dir, "plan.yaml")
	writeTestFile(t, planFile, `version: 1
name: reboot-fleet
steps:
  - name: reboot
    query: "tags.ring = 'broad'"
    method: {name: reboot}
    abort: {failureRate: 5%, minExecuted: 50}
  - name: mark-rebooted
    query: "tags.ring = 'broad'"
    twin: {desired: {rebooted: true}}
`)
	rep, junit := filepath.Join(dir, "report.json"), filepath.Join(dir, "junit.xml")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// --skip-dry-run: the live run itself must stop (the dry-run would
	// stop apply before it, see TestApplyStopsOnPredictedAbort).
	code, _, stderr := runCLI(t, ctx, "apply", "--skip-dry-run", "--data", filepath.Join(dir, "data"), "--fleet", fleet,
		"--report", rep, "--junit", junit, planFile)
	if code != 1 {
		t.Fatalf("apply exit %d, want 1\n%s", code, stderr)
	}
	r := readReport(t, rep)
	s := step(t, r, "reboot")
	if s.Status != runner.StepAborted || s.Abort == nil || !s.Abort.Tripped || len(s.Devices) != 50 {
		t.Fatalf("reboot step: %s %q abort %+v, %d devices", s.Status, s.Reason, s.Abort, len(s.Devices))
	}
	if next := step(t, r, "mark-rebooted"); next.Status != runner.StepSkipped || len(next.JobIDs) != 0 {
		t.Errorf("mark-rebooted: %s %q", next.Status, next.Reason)
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`type="aborted"`, "over the abort threshold", `<skipped message="the plan was aborted at step reboot">`, `name="dev-01-x"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JUnit lacks %q:\n%s", want, b)
		}
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOccurrencePath(t *testing.T) {
	at := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		base string
		o    *runner.OccurrenceReport
		want string
	}{
		{"out/report.json", nil, "out/report.json"},
		{"out/report.json", &runner.OccurrenceReport{Step: "nightly", ScheduledAt: at}, "out/report-nightly-20261125T020000Z.json"},
		{"report", &runner.OccurrenceReport{Step: "s", ScheduledAt: at.In(time.FixedZone("X", 3600))}, "report-s-20261125T020000Z"},
	} {
		if got := occurrencePath(tc.base, tc.o); got != tc.want {
			t.Errorf("occurrencePath(%q, %+v) = %q, want %q", tc.base, tc.o, got, tc.want)
		}
	}
}

// TestApplyJSONEvents: apply --output json streams progress as JSON lines
// on stdout, the report last.
func TestApplyJSONEvents(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	code, stdout, stderr := runCLI(t, ctx, "apply", "--data", data, "--fleet", "examples/fleet.yaml", "-o", "json", "examples/lock-door.yaml")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	kinds := map[string]int{}
	var last runner.Event
	for i, line := range lines {
		var e runner.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d is not a JSON event: %v\n%s", i+1, err, line)
		}
		if e.Time.IsZero() {
			t.Errorf("line %d has no time: %s", i+1, line)
		}
		kinds[e.Kind]++
		last = e
	}
	if kinds["stepStarted"] != 2 || kinds["stepFinished"] != 2 || kinds["jobChanged"] == 0 || kinds["report"] != 1 {
		t.Errorf("events %v, want 2 stepStarted, 2 stepFinished, some jobChanged, 1 report", kinds)
	}
	if last.Kind != "report" || last.Report == nil || last.Report.Status != runner.StatusSucceeded {
		t.Errorf("last event %+v, want the succeeded report", last)
	}
}

// TestApplyStopsOnPredictedAbort: apply dry-runs first; when the dry-run
// predicts an abort, apply stops before touching the hub (no job), exits
// 1 and writes the dry-run's report; --yes applies anyway.
func TestApplyStopsOnPredictedAbort(t *testing.T) {
	dir := t.TempDir()
	data, planFile, rep := filepath.Join(dir, "data"), filepath.Join(dir, "plan.yaml"), filepath.Join(dir, "report.json")
	writeTestFile(t, planFile, "version: 1\nname: gate\nsteps:\n  - name: reboot\n    query: \"tags.ring = 'broad'\"\n    method: {name: reboot}\n    abort: {failureRate: 5%, minExecuted: 50}\n")
	code, _, stderr := runCLI(t, t.Context(), "apply", "--data", data, "--fleet", "testdata/reboot-fleet.yaml", "--report", rep, planFile)
	if code != 1 || !strings.Contains(stderr, "the dry-run predicts that step reboot aborts: 4 of 50 devices failed") || !strings.Contains(stderr, "; nothing was applied") {
		t.Fatalf("exit %d, want 1 with the reason\n%s", code, stderr)
	}
	r := readReport(t, rep)
	if !r.DryRun || r.Steps[0].Status != runner.StepAborted {
		t.Errorf("report: dryRun %v, step %s", r.DryRun, r.Steps[0].Status)
	}
	code, stdout, _ := runCLI(t, t.Context(), "jobs", "list", "--data", data)
	if code != 0 || strings.Contains(stdout, "gate-reboot") {
		t.Errorf("jobs on the hub after a stopped apply (exit %d):\n%s", code, stdout)
	}
	code, _, stderr = runCLI(t, t.Context(), "apply", "--yes", "--data", data, "--fleet", "testdata/reboot-fleet.yaml", "--report", rep, planFile)
	if r := readReport(t, rep); code != 1 || r.DryRun || r.Steps[0].Status != runner.StepAborted || len(r.Steps[0].JobIDs) == 0 {
		t.Errorf("--yes: exit %d, dryRun %v, step %s with jobs %v\n%s", code, r.DryRun, r.Steps[0].Status, r.Steps[0].JobIDs, stderr)
	}
}
