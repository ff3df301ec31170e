package runner_test

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestJUnitGolden: a report with a completed, an aborted and a skipped
// step, written as JUnit XML, is testdata/junit.golden (-update rewrites
// it), and it parses as XML.
func TestJUnitGolden(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	at := func(s int) *time.Time { x := t0.Add(time.Duration(s) * time.Second); return &x }
	ok := &hub.DeviceJobOutcome{DeviceMethodResponse: &hub.MethodResponse{Status: 200}}
	rep := &runner.Report{
		ReportVersion: runner.ReportVersion, Plan: runner.PlanRef{Name: "firmware", File: "firmware.yaml"},
		Hub: "embedded", Status: runner.StatusFailed, StartedAt: t0, FinishedAt: t0.Add(95 * time.Second),
		Steps: []*runner.StepReport{
			{Name: "canary", Type: "scheduleDeviceMethod", JobIDs: []string{"firmware-canary-1"}, Status: "completed", StartTime: at(0), EndTime: at(30),
				DeviceJobStatistics: hub.DeviceJobStatistics{DeviceCount: 2, SucceededCount: 2},
				Summary:             runner.Summary{Matched: 2, Succeeded: 2},
				Devices:             []runner.DeviceResult{{DeviceID: "d1", Status: "completed", Succeeded: true, Outcome: ok}, {DeviceID: "d2", Status: "completed", Succeeded: true, Outcome: ok}}},
			{Name: "fleet", Type: "scheduleDeviceMethod", JobIDs: []string{"firmware-fleet-1"}, Status: runner.StepAborted, Reason: "2 of 3 devices failed (66.7%), over the abort threshold of 5.0% (checked from 3 devices on); 7 devices were not started",
				StartTime: at(31), EndTime: at(90), DeviceJobStatistics: hub.DeviceJobStatistics{DeviceCount: 3, SucceededCount: 2, FailedCount: 1},
				Abort: &runner.AbortReport{FailureRate: 0.05, On: []string{"failed", "timedOut", "offline"}, MinExecuted: 3, Executed: 3, Failed: 2,
					ByClass: map[string]int{"failed": 1, "offline": 1}, Tripped: true},
				Summary: runner.Summary{Matched: 10, Succeeded: 1, Failed: 2, Skipped: 7, FailedByClass: map[string]int{"failed": 1, "offline": 1}},
				Devices: []runner.DeviceResult{
					{DeviceID: "d3", Status: "completed", Succeeded: true, Outcome: ok},
					{DeviceID: "d4 <&>", Status: "completed", Outcome: &hub.DeviceJobOutcome{DeviceMethodResponse: &hub.MethodResponse{Status: 500}}},
					{DeviceID: "d5", Status: "failed", Error: &hub.DeviceJobError{Code: "DeviceNotOnline", Description: "Timed out waiting for device to connect."}},
				}},
			{Name: "verify", Type: "scheduleUpdateTwin", JobIDs: []string{}, Status: runner.StepSkipped, Reason: "the plan was aborted at step fleet", Devices: []runner.DeviceResult{}},
		},
	}
	checkSchema(t, rep)
	var got bytes.Buffer
	if err := rep.WriteJUnit(&got); err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
	}
	if err := xml.Unmarshal(got.Bytes(), &parsed); err != nil {
		t.Fatalf("JUnit output is not XML: %v\n%s", err, got.Bytes())
	}
	// 3 step cases + 5 device cases; the aborted step and 2 devices failed.
	if parsed.Tests != 8 || parsed.Failures != 3 || parsed.Skipped != 1 {
		t.Errorf("totals: tests %d failures %d skipped %d, want 8, 3, 1", parsed.Tests, parsed.Failures, parsed.Skipped)
	}
	path := filepath.Join("testdata", "junit.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./runner -run TestJUnitGolden -update writes it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("JUnit differs from %s:\n%s", path, got.Bytes())
	}
}

// TestTextObserverTTY: on a terminal, progress is one status line redrawn
// in place, and event lines are printed above it.
func TestTextObserverTTY(t *testing.T) {
	clk := clock.NewVirtual(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	var out bytes.Buffer
	o := &runner.TextObserver{W: &out, TTY: true, Clock: clk}
	s := &plan.Step{Name: "wave", Query: "*", Method: &plan.Method{Name: "reboot"}}
	o.StepStarted(s, "job-1")
	clk.Advance(10 * time.Second)
	o.JobChanged(s, &hub.Job{JobID: "job-1", Status: hub.JobRunning,
		DeviceJobStatistics: &hub.DeviceJobStatistics{DeviceCount: 100, SucceededCount: 45, FailedCount: 5, RunningCount: 10, PendingCount: 40}})
	got := out.String()
	for _, want := range []string{"wave: job job-1 created", "\\r\\033[Kwave [#####.....] 50/100 ✓45 ✗5 5/s ETA 10s"} {
		if !strings.Contains(got, strings.NewReplacer(`\r`, "\r", `\033`, "\033").Replace(want)) {
			t.Errorf("output lacks %q:\n%q", want, got)
		}
	}
	o.StepFinished(&runner.StepReport{Name: "wave", Status: "completed", Summary: runner.Summary{Matched: 100, Succeeded: 95, Failed: 5, FailedByClass: map[string]int{"failed": 5}}})
	if tail := out.String()[len(got):]; !strings.HasPrefix(tail, "\r\033[Kwave: completed — 95 succeeded, 5 failed (5 failed), 0 no-op, 0 skipped of 100 devices\n") {
		t.Errorf("finished line does not replace the status line: %q", tail)
	}
}

func TestWriteSummary(t *testing.T) {
	rep := &runner.Report{Plan: runner.PlanRef{Name: "fw"}, Status: runner.StatusFailed, Steps: []*runner.StepReport{
		{Name: "set", Status: "completed", Summary: runner.Summary{Matched: 2, Succeeded: 2}},
		{Name: "reboot", Status: runner.StepAborted, Reason: "3 of 5 devices failed", Summary: runner.Summary{Matched: 4, Succeeded: 1, Failed: 1, Skipped: 2, FailedByClass: map[string]int{"verify": 1}},
			Rollback: &runner.RollbackReport{Trigger: "abort", Restored: 2}},
	}}
	var b bytes.Buffer
	if err := rep.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	want := "plan fw: failed\n" +
		"  set: completed — 2 succeeded, 0 failed, 0 no-op, 0 skipped of 2 devices\n" +
		"  reboot: aborted — 1 succeeded, 1 failed (1 verify), 0 no-op, 2 skipped of 4 devices — 3 of 5 devices failed; rolled back (abort): 2 restored, 0 conflicts, 0 failed\n"
	if b.String() != want {
		t.Errorf("summary:\n%s\nwant:\n%s", b.String(), want)
	}

	// A dry-run's (apply --dry-run) says what it was played against and
	// what it assumed.
	rep.Simulation = &runner.Simulation{Against: "hub embedded", Simulated: true, Assumptions: []string{"devices online on hub embedded (2) stay online"}}
	b.Reset()
	if err := rep.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	if head := "plan fw (dry run against hub embedded): failed\n  assumed: devices online on hub embedded (2) stay online\n  set: completed"; !strings.HasPrefix(b.String(), head) {
		t.Errorf("dry-run summary:\n%s\nwant it to begin:\n%s", b.String(), head)
	}
}

// TestStepFailedError: the message says whether the failure happened or
// is predicted, and where to read why.
func TestStepFailedError(t *testing.T) {
	for _, tc := range []struct {
		err  *runner.StepFailedError
		want string
	}{
		{&runner.StepFailedError{Steps: []string{"a", "b"}}, "step(s) did not succeed: a, b (see the report)"},
		{&runner.StepFailedError{Steps: []string{"a"}, Predicted: true, See: "the dry-run's output"}, "step(s) would not succeed: a (see the dry-run's output)"},
		{&runner.StepFailedError{Steps: []string{"a"}, Predicted: true, See: "dry.json"}, "step(s) would not succeed: a (see dry.json)"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.err, got, tc.want)
		}
	}
}
