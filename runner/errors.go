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
