package runner_test

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
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
