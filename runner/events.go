package runner

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/plan"
)

// Event is one line of apply --output json: what happened, when, to which
// step. Kind is "stepStarted" (a hub job was created for the step),
// "jobChanged" (its status or statistics changed), "stepProgress" (the
// step's state over all of its devices changed), "stepFinished" (with
// the step's status and reason) or "report" (the run's report, last).
type Event struct {
	Kind   string    `json:"event"`
	Time   time.Time `json:"time"`
	Step   string    `json:"step,omitempty"`
	JobID  string    `json:"jobId,omitempty"`
	Status string    `json:"status,omitempty"`
	// Message is the hub job's statusMessage (e.g. that it waits for
	// the device broker).
	Message string                   `json:"statusMessage,omitempty"`
	Reason  string                   `json:"reason,omitempty"`
	Stats   *hub.DeviceJobStatistics `json:"deviceJobStatistics,omitempty"`
	// Progress is a stepProgress event's: the step's state over all of
	// its devices.
	Progress *Progress `json:"progress,omitempty"`
	Report   *Report   `json:"report,omitempty"`
}

// JSONObserver writes every progress event as a JSON line (NDJSON).
type JSONObserver struct {
	W     io.Writer
	Clock clock.Clock
	mu    sync.Mutex
	err   error
}

var _ Observer = (*JSONObserver)(nil)

// StepStarted implements Observer.
func (o *JSONObserver) StepStarted(s *plan.Step, jobID string) {
	o.emit(Event{Kind: "stepStarted", Step: s.Name, JobID: jobID})
}

// JobChanged implements Observer.
func (o *JSONObserver) JobChanged(s *plan.Step, j *hub.Job) {
	o.emit(Event{Kind: "jobChanged", Step: s.Name, JobID: j.JobID, Status: string(j.Status), Message: j.StatusMessage, Stats: j.DeviceJobStatistics})
}

// StepProgress implements ProgressObserver.
func (o *JSONObserver) StepProgress(s *plan.Step, p Progress) {
	o.emit(Event{Kind: "stepProgress", Step: s.Name, Progress: &p})
}

// StepFinished implements Observer.
func (o *JSONObserver) StepFinished(sr *StepReport) {
	st := sr.DeviceJobStatistics
	o.emit(Event{Kind: "stepFinished", Step: sr.Name, Status: string(sr.Status), Reason: sr.Reason, Stats: &st})
}

// Finish implements Observer: it writes the run's report as the last
// event, and returns the first error any write had.
func (o *JSONObserver) Finish(r *Report) error {
	o.emit(Event{Kind: "report", Report: r})
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

func (o *JSONObserver) emit(e Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return
	}
	e.Time = o.Clock.Now().UTC()
	b, err := json.Marshal(e)
	if err == nil {
		b = append(b, '\n')
		_, err = o.W.Write(b)
	}
	o.err = err
}
