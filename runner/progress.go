package runner

import (
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan"
)

// Phase is what a running step is doing, for the views of progress: a
// step spends most of a careful rollout not running jobs but waiting
// (pauses, windows, rate, verify, bake), and a view that shows only
// its jobs looks frozen then.
type Phase string

// Phases of a running step.
const (
	PhaseWaiting     Phase = "waiting"      // for its start time (Until)
	PhaseWindow      Phase = "window"       // for its maintenance window, which opens at Until
	PhaseRunning     Phase = "running"      // hub jobs are running its devices
	PhasePaused      Phase = "paused"       // between rollout batches, until Until
	PhaseRateLimited Phase = "rate-limited" // its rollout's rate holds the next job until Until
	PhaseRetrying    Phase = "retrying"     // retry round Round of Rounds
	PhaseVerifying   Phase = "verifying"    // Verified of ToVerify devices satisfy verify so far
	PhaseAnalysing   Phase = "analysing"    // baking until Until, then the health query
	PhaseRollingBack Phase = "rolling back"
)

// Progress is a running step's state over all of its devices (every
// batch and job of it, not one hub job).
type Progress struct {
	Phase Phase     `json:"phase"`
	Until time.Time `json:"until,omitzero"`
	// Batch of Batches is the rollout batch under way (1-based; 0
	// without a rollout).
	Batch   int `json:"batch,omitempty"`
	Batches int `json:"batches,omitempty"`
	// Round of Rounds is the retry round under way.
	Round  int `json:"round,omitempty"`
	Rounds int `json:"rounds,omitempty"`
	// Cron is the cron expression whose next occurrence a waiting step
	// waits for.
	Cron string `json:"cron,omitempty"`
	// Verified of ToVerify devices satisfied verify so far.
	Verified int `json:"verified,omitempty"`
	ToVerify int `json:"toVerify,omitempty"`
	// Total is the step's devices; Succeeded, Failed and Noop count
	// them as the report will (the verdict so far), Running the devices
	// a hub job is working on now.
	Total         int            `json:"total"`
	Succeeded     int            `json:"succeeded"`
	Failed        int            `json:"failed"`
	Noop          int            `json:"noop"`
	Running       int            `json:"running"`
	FailedByClass map[string]int `json:"failedByClass,omitempty"`
	// Failing are a few failed devices of each class (the report has
	// them all).
	Failing map[string][]string `json:"failing,omitempty"`
}

// ProgressObserver is an Observer that also follows a step's state
// (Runner.Observer may implement it).
type ProgressObserver interface {
	StepProgress(step *plan.Step, p Progress)
}

// failingShown is how many failed devices of each class progress names.
const failingShown = 3

// progress tells the observer the step's state: p's phase and details,
// with the step's devices counted from sr (and the running job's, when
// job is not nil).
func (r *Runner) progress(s *plan.Step, sr *StepReport, p Progress, job *hub.Job) {
	po, ok := r.Observer.(ProgressObserver)
	if !ok {
		return
	}
	if sr.live == nil {
		sr.live = &Progress{}
	}
	if p.Total == 0 {
		p.Total = sr.live.Total
	}
	if p.Batches == 0 {
		p.Batch, p.Batches = sr.live.Batch, sr.live.Batches
	}
	sum := tally(sr.Devices, 0)
	p.Succeeded, p.Failed, p.Noop = sum.Succeeded, sum.Failed, sum.Noop
	p.FailedByClass = sum.FailedByClass
	p.Failing = map[string][]string{}
	for _, d := range sr.Devices {
		if c := FailureClass(d); !d.Succeeded && len(p.Failing[c]) < failingShown {
			p.Failing[c] = append(p.Failing[c], d.DeviceID)
		}
	}
	if job != nil && job.DeviceJobStatistics != nil && !job.Status.Terminal() {
		st := job.DeviceJobStatistics
		p.Succeeded += st.SucceededCount
		p.Failed += st.FailedCount
		p.Running = st.RunningCount + st.PendingCount + st.WaitingForBrokerCount
		if p.Total == 0 { // one hub job over the step's query
			p.Total = st.DeviceCount
		}
	}
	sr.live.Total, sr.live.Batch, sr.live.Batches = p.Total, p.Batch, p.Batches
	if job == nil || !job.Status.Terminal() {
		sr.live.Phase = p.Phase
	}
	po.StepProgress(s, p)
}

// phase tells the observer the step's state has become p (its devices
// counted from sr), unless a job's progress says more.
func (r *Runner) phase(s *plan.Step, sr *StepReport, p Progress) {
	r.progress(s, sr, p, nil)
}

// jobProgress tells the observer how the step stands while job runs. A
// job of a report of its own (a retry round's, a rollback's) says
// nothing: its step's phase says it all.
func (r *Runner) jobProgress(s *plan.Step, sr *StepReport, job *hub.Job) {
	if sr.live == nil {
		return
	}
	if st := job.StartTime; job.Status == hub.JobScheduled && st != nil && st.After(r.Clock.Now()) {
		// the hub holds the job until its start (a cron occurrence)
		r.progress(s, sr, Progress{Phase: PhaseWaiting, Until: st.Time, Cron: s.Cron}, nil)
		return
	}
	r.progress(s, sr, Progress{Phase: PhaseRunning}, job)
}
