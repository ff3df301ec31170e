package reportcheck

import (
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/runner"
)

// TestCheckCatches: each way a report can disagree with itself is found.
func TestCheckCatches(t *testing.T) {
	verifyFailed := runner.DeviceResult{DeviceID: "b", Status: "completed", Error: &hub.DeviceJobError{Code: runner.CodeVerifyTimeout}}
	good := func() *runner.StepReport {
		return &runner.StepReport{Name: "s", Status: runner.StepAborted,
			Devices: []runner.DeviceResult{{DeviceID: "a", Status: "completed", Succeeded: true}, verifyFailed},
			Summary: runner.Summary{Matched: 10, Succeeded: 1, Failed: 1, Skipped: 8, FailedByClass: map[string]int{"verify": 1}},
			Abort:   &runner.AbortReport{On: []string{"all"}, Executed: 2, Failed: 1, ByClass: map[string]int{"verify": 1}, Tripped: true}}
	}
	rep := func(s *runner.StepReport) *runner.Report { return &runner.Report{Steps: []*runner.StepReport{s}} }
	if errs := Check(rep(good())); len(errs) > 0 {
		t.Fatalf("a consistent report: %v", errs)
	}
	for name, tc := range map[string]struct {
		spoil func(*runner.StepReport)
		want  string
	}{
		"counts do not add up":    {func(s *runner.StepReport) { s.Summary.Skipped = 7 }, "!= 10 matched"},
		"summary against devices": {func(s *runner.StepReport) { s.Summary.Succeeded, s.Summary.Failed = 2, 0 }, "its devices"},
		"abort misses a verify":   {func(s *runner.StepReport) { s.Abort.Failed, s.Abort.ByClass = 0, map[string]int{} }, "abort counts"},
		"rollback counts":         {func(s *runner.StepReport) { s.Rollback = &runner.RollbackReport{Trigger: "abort", Restored: 3} }, "rollback says"},
		"no-op field against sum": {func(s *runner.StepReport) { s.Noop = 1 }, "noop 1"},
	} {
		t.Run(name, func(t *testing.T) {
			s := good()
			tc.spoil(s)
			errs := Check(rep(s))
			if len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.want) {
				t.Errorf("errors %v, want one saying %q", errs, tc.want)
			}
		})
	}
}
