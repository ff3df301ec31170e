package runner

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan"
)

// One truth in every view: a device's outcome and failure class are
// decided here, and the report's summary, the human summary, the progress
// lines and JUnit all count with these functions.

// Device error codes the runner itself gives (the hub gives Azure's).
const (
	CodeVerifyTimeout       = "VerifyTimeout"
	CodeAnalysisFailed      = "AnalysisFailed"
	CodeNoMaintenanceWindow = "NoMaintenanceWindow"
	CodeRollbackConflict    = "RollbackConflict"
)

// Summary is a step's devices by outcome. Matched is every device the
// step was to act on; each of them is counted once, as succeeded, failed,
// noop (a twin that complied already) or skipped (never started: the step
// aborted, was interrupted or missed its window first, or its rollout's
// last batch stops short of 100%).
type Summary struct {
	Matched   int `json:"matched"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Noop      int `json:"noop"`
	Skipped   int `json:"skipped"`
	// FailedByClass counts the failed devices by failure class (failed,
	// timedOut, offline, verify, analysis).
	FailedByClass map[string]int `json:"failedByClass"`
}

// Outcomes of a device in a summary.
const (
	outcomeSucceeded = "succeeded"
	outcomeFailed    = "failed"
	outcomeNoop      = "noop"
)

// outcome is how a device result counts: a no-op that later failed verify
// is a failure, not a no-op.
func outcome(d DeviceResult) string {
	switch {
	case !d.Succeeded:
		return outcomeFailed
	case d.Status == DeviceNoop:
		return outcomeNoop
	}
	return outcomeSucceeded
}

// FailureClass sorts a device that did not succeed into its failure class
// (plan.FailedClass, TimedOutClass, OfflineClass, VerifyClass,
// AnalysisClass).
func FailureClass(d DeviceResult) string {
	if d.Error != nil {
		switch d.Error.Code {
		case hub.CodeDeviceNotOnline:
			return plan.OfflineClass
		case hub.CodeGatewayTimeout, "JobMaxExecutionTimeExceeded":
			return plan.TimedOutClass
		case CodeVerifyTimeout:
			return plan.VerifyClass
		case CodeAnalysisFailed:
			return plan.AnalysisClass
		}
	}
	return plan.FailedClass
}

// tally counts a step's device results against matched devices.
func tally(ds []DeviceResult, matched int) Summary {
	s := Summary{Matched: matched, FailedByClass: map[string]int{}}
	for _, d := range ds {
		switch outcome(d) {
		case outcomeSucceeded:
			s.Succeeded++
		case outcomeNoop:
			s.Noop++
		default:
			s.Failed++
			s.FailedByClass[FailureClass(d)]++
		}
	}
	s.Skipped = max(0, matched-len(ds))
	return s
}

// finish sums the step's devices up (matched is how many it was to act
// on) and keeps the report's other counts in step with that sum.
func (sr *StepReport) finish(matched int) {
	sr.Summary = tally(sr.Devices, matched)
	sr.Noop = sr.Summary.Noop
}

// String is the summary in the words of every human view: "5 succeeded,
// 5 failed (5 verify), 0 no-op, 90 skipped of 100 devices".
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d succeeded, %d failed", s.Succeeded, s.Failed)
	if s.Failed > 0 {
		var parts []string
		for _, c := range plan.AbortClasses {
			if n := s.FailedByClass[c]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, c))
			}
		}
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	fmt.Fprintf(&b, ", %d no-op, %d skipped of %d devices", s.Noop, s.Skipped, s.Matched)
	return b.String()
}

// MarshalJSON writes FailedByClass as an object even when empty (arrays
// and objects in the report are never null).
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary
	if s.FailedByClass == nil {
		s.FailedByClass = map[string]int{}
	}
	return json.Marshal(plain(s))
}
