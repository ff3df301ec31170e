package runner

import (
	"fmt"
	"strings"
)

// StepFailedError says the plan ran and at least one step failed, was
// skipped or missed its success criteria (exit code 1); of a dry-run,
// that it predicts so.
type StepFailedError struct {
	Steps []string
	// Predicted marks a dry-run's verdict: the steps would not succeed.
	Predicted bool
	// See says where the details are; "the report" when empty. A command
	// that wrote no report names what it showed instead.
	See string
}

func (e *StepFailedError) Error() string {
	verb, see := "did not succeed", e.See
	if e.Predicted {
		verb = "would not succeed"
	}
	if see == "" {
		see = "the report"
	}
	return fmt.Sprintf("step(s) %s: %s (see %s)", verb, strings.Join(e.Steps, ", "), see)
}
