package runner

import (
	"fmt"
	"strings"
)

// StepFailedError says the plan ran and at least one step failed, was
// skipped or missed its success criteria (exit code 1).
type StepFailedError struct {
	Steps []string
}

func (e *StepFailedError) Error() string {
	return fmt.Sprintf("step(s) did not succeed: %s (see the report)", strings.Join(e.Steps, ", "))
}

// UnsupportedError says the plan uses a feature this runner does not
// execute yet; nothing was run (exit code 2).
type UnsupportedError struct {
	Step, Feature string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("step %q uses %s, which apply does not execute yet; nothing was run", e.Step, e.Feature)
}
