package reportcheck

import (
	"fmt"
	"slices"
	"strings"

	"github.com/iotjobs/iotjobs/runner"
)

// Check returns every way rep disagrees with itself (nil when none).
func Check(rep *runner.Report) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var summary, junit strings.Builder
	if err := rep.WriteSummary(&summary); err != nil {
		fail("summary: %v", err)
	}
	if err := rep.WriteJUnit(&junit); err != nil {
		fail("JUnit: %v", err)
	}
	for _, s := range rep.Steps {
		sum := s.Summary
		if sum.Succeeded+sum.Failed+sum.Noop+sum.Skipped != sum.Matched {
			fail("step %s: %d succeeded + %d failed + %d no-op + %d skipped != %d matched", s.Name, sum.Succeeded, sum.Failed, sum.Noop, sum.Skipped, sum.Matched)
		}
		ok, failed, noop := 0, 0, 0
		for _, d := range s.Devices {
			switch {
			case !d.Succeeded:
				failed++
			case d.Status == runner.DeviceNoop:
				noop++
			default:
				ok++
			}
		}
		byClass := 0
		for _, n := range sum.FailedByClass {
			byClass += n
		}
		if ok != sum.Succeeded || failed != sum.Failed || noop != sum.Noop || byClass != failed || len(s.Devices) > sum.Matched {
			fail("step %s: summary %s, but its devices: %d succeeded, %d failed (%d by class), %d no-op of %d listed", s.Name, sum, ok, failed, byClass, noop, len(s.Devices))
		}
		if s.Noop != sum.Noop {
			fail("step %s: noop %d, summary %d", s.Name, s.Noop, sum.Noop)
		}
		if a := s.Abort; a != nil {
			all := slices.Contains(a.On, "all")
			counted, total := map[string]int{}, 0
			for _, d := range s.Devices {
				if d.Succeeded || d.Status == runner.DeviceNoop {
					continue
				}
				c := runner.FailureClass(d)
				if all || slices.Contains(a.On, c) {
					counted[c]++
					total++
				}
			}
			if a.Failed != total || fmt.Sprint(a.ByClass) != fmt.Sprint(counted) {
				fail("step %s: abort counts %d failed %v, its devices %d %v", s.Name, a.Failed, a.ByClass, total, counted)
			}
		}
		if !strings.Contains(summary.String(), sum.String()) {
			fail("step %s: the human summary lacks %q", s.Name, sum.String())
		}
		if s.Status != runner.StepCompleted && s.Status != runner.StepSkipped && s.Status != runner.StepPlanned && !strings.Contains(junit.String(), sum.String()) {
			fail("step %s: JUnit's (step) case lacks %q", s.Name, sum.String())
		}
		if rb := s.Rollback; rb != nil && rb.Trigger != "" {
			restored, conflicts, failedRB := 0, 0, 0
			for _, d := range rb.Devices {
				switch d.Status {
				case runner.RolledBack:
					restored++
				case runner.RollbackConflicted:
					conflicts++
				default:
					failedRB++
				}
			}
			if restored != rb.Restored || conflicts != rb.Conflicts || failedRB != rb.Failed {
				fail("step %s: rollback says %d/%d/%d, its devices %d/%d/%d", s.Name, rb.Restored, rb.Conflicts, rb.Failed, restored, conflicts, failedRB)
			}
		}
	}
	return errs
}
