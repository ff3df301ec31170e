package runner

import (
	"fmt"
	"io"
	"sync"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan"
)

// TextObserver prints one line per progress event, for logs and terminals.
type TextObserver struct {
	W  io.Writer
	mu sync.Mutex
}

var _ Observer = (*TextObserver)(nil)

// StepStarted implements Observer.
func (o *TextObserver) StepStarted(s *plan.Step, jobID string) {
	o.printf("%s: job %s created (%s on %s)\n", s.Name, jobID, jobType(s), s.Query)
}

// JobChanged implements Observer.
func (o *TextObserver) JobChanged(s *plan.Step, j *hub.Job) {
	st := j.DeviceJobStatistics
	if st == nil {
		st = &hub.DeviceJobStatistics{}
	}
	o.printf("%s: %s, %d devices: %d succeeded, %d failed, %d running, %d pending\n",
		s.Name, j.Status, st.DeviceCount, st.SucceededCount, st.FailedCount, st.RunningCount, st.PendingCount)
}

// StepFinished implements Observer.
func (o *TextObserver) StepFinished(sr *StepReport) {
	line := fmt.Sprintf("%s: %s", sr.Name, sr.Status)
	if sr.Reason != "" {
		line += " — " + sr.Reason
	}
	o.printf("%s\n", line)
	for _, d := range sr.Devices {
		if !d.Succeeded {
			msg := d.Status
			if d.Error != nil {
				msg += ": " + d.Error.Code + " " + d.Error.Description
			} else if d.Outcome != nil && d.Outcome.DeviceMethodResponse != nil {
				msg += fmt.Sprintf(": device answered %d", d.Outcome.DeviceMethodResponse.Status)
			}
			o.printf("  %s %s\n", d.DeviceID, msg)
		}
	}
}

func (o *TextObserver) printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.W, format, args...)
}
