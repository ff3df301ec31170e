package runner

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/plan"
)

// TextObserver prints progress for people: a line per event in logs, and
// on a terminal (TTY) a status line redrawn in place with every running
// step's progress (devices done of total, succeeded, failed, rate, ETA).
// With a Clock, plain progress lines come at most once a second per step
// (a status change always prints).
type TextObserver struct {
	W     io.Writer
	TTY   bool
	Clock clock.Clock

	mu      sync.Mutex
	running map[string]*stepProgress
	order   []string // running steps, in start order
	status  bool     // a status line is on screen
}

// stepProgress is what the status line shows of one running step.
type stepProgress struct {
	started   time.Time
	stats     hub.DeviceJobStatistics
	jobStatus hub.JobStatus
	message   string    // the job's statusMessage (waiting for the broker)
	printed   time.Time // the last plain progress line
}

var _ Observer = (*TextObserver)(nil)

// StepStarted implements Observer.
func (o *TextObserver) StepStarted(s *plan.Step, jobID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.running == nil {
		o.running = map[string]*stepProgress{}
	}
	if _, ok := o.running[s.Name]; !ok {
		o.running[s.Name] = &stepProgress{started: o.now()}
		o.order = append(o.order, s.Name)
	}
	o.line("%s: job %s created (%s on %s)\n", s.Name, jobID, jobType(s), s.Query)
}

// JobChanged implements Observer.
func (o *TextObserver) JobChanged(s *plan.Step, j *hub.Job) {
	st := j.DeviceJobStatistics
	if st == nil {
		st = &hub.DeviceJobStatistics{}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.running[s.Name]
	if p == nil {
		p = &stepProgress{started: o.now()}
	}
	changed := p.jobStatus != j.Status || p.message != j.StatusMessage
	p.stats, p.jobStatus, p.message = *st, j.Status, j.StatusMessage
	if o.TTY {
		o.redraw()
		return
	}
	now := o.now()
	if !changed && o.Clock != nil && now.Sub(p.printed) < time.Second {
		return
	}
	p.printed = now
	msg := ""
	if j.StatusMessage != "" {
		msg = " — " + j.StatusMessage
	}
	if st.WaitingForBrokerCount > 0 {
		msg += fmt.Sprintf(" (%d waiting for the broker)", st.WaitingForBrokerCount)
	}
	o.line("%s: %s, %d devices: %d succeeded, %d failed, %d running, %d pending%s\n",
		s.Name, j.Status, st.DeviceCount, st.SucceededCount, st.FailedCount, st.RunningCount, st.PendingCount, msg)
}

// StepFinished implements Observer: the step's verdict, its devices as
// the report counts them, and the first few failures (the report has
// them all).
func (o *TextObserver) StepFinished(sr *StepReport) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.running, sr.Name)
	for i, n := range o.order {
		if n == sr.Name {
			o.order = append(o.order[:i], o.order[i+1:]...)
			break
		}
	}
	o.line("%s\n", stepLine(sr))
	shown := 0
	for _, d := range sr.Devices {
		if d.Succeeded {
			continue
		}
		if shown == maxFailuresShown {
			o.line("  … and %d more failed devices (see the report)\n", sr.Summary.Failed-shown)
			break
		}
		o.line("  %s %s\n", d.DeviceID, deviceFailure(d))
		shown++
	}
}

// Finish implements Observer: it clears the status line and writes the
// run's summary.
func (o *TextObserver) Finish(rep *Report) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.status {
		fmt.Fprint(o.W, "\r\033[K")
		o.status = false
	}
	return rep.WriteSummary(o.W)
}

// maxFailuresShown is how many failed devices progress names per step.
const maxFailuresShown = 10

// stepLine is a step's verdict in one line: status, its devices as the
// summary counts them, why, and its rollback.
func stepLine(sr *StepReport) string {
	line := fmt.Sprintf("%s: %s — %s", sr.Name, sr.Status, sr.Summary)
	if sr.Reason != "" {
		line += " — " + sr.Reason
	}
	if rb := sr.Rollback; rb != nil && rb.Trigger != "" {
		line += fmt.Sprintf("; rolled back (%s): %d restored, %d conflicts, %d failed", rb.Trigger, rb.Restored, rb.Conflicts, rb.Failed)
	}
	return line
}

func (o *TextObserver) now() time.Time {
	if o.Clock == nil {
		return time.Time{}
	}
	return o.Clock.Now()
}

// line prints a line of its own, above the status line on a terminal.
func (o *TextObserver) line(format string, args ...any) {
	if o.status {
		fmt.Fprint(o.W, "\r\033[K")
		o.status = false
	}
	fmt.Fprintf(o.W, format, args...)
	if o.TTY {
		o.redraw()
	}
}

// redraw rewrites the status line: per running step, devices done of
// total, succeeded and failed, rate and time left.
func (o *TextObserver) redraw() {
	var parts []string
	now := o.now()
	for _, name := range o.order {
		p := o.running[name]
		st := p.stats
		done := st.SucceededCount + st.FailedCount
		part := fmt.Sprintf("%s %s %d/%d ✓%d ✗%d", name, bar(done, st.DeviceCount), done, st.DeviceCount, st.SucceededCount, st.FailedCount)
		if el := now.Sub(p.started); o.Clock != nil && el > 0 && done > 0 {
			rate := float64(done) / el.Seconds()
			part += fmt.Sprintf(" %.0f/s", rate)
			if left := st.DeviceCount - done; left > 0 {
				part += " ETA " + time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second).String()
			}
		}
		if st.WaitingForBrokerCount > 0 {
			part += fmt.Sprintf(" (%d waiting for the broker)", st.WaitingForBrokerCount)
		}
		parts = append(parts, part)
	}
	fmt.Fprint(o.W, "\r\033[K"+strings.Join(parts, " | "))
	o.status = len(parts) > 0
}

// bar is a 10-character progress bar.
func bar(done, total int) string {
	n := 0
	if total > 0 {
		n = min(10, done*10/total)
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", 10-n) + "]"
}

// WriteSummary writes the human summary of a run: its status, then one
// line per step with its status, its devices as the report counts them,
// why it did not succeed, and its rollback. A dry-run's says what it was
// played against and what it assumed first.
func (r *Report) WriteSummary(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "plan %s", r.Plan.Name)
	if sim := r.Simulation; sim != nil {
		fmt.Fprintf(&b, " (dry run against %s)", sim.Against)
	}
	fmt.Fprintf(&b, ": %s", r.Status)
	if r.Error != "" {
		fmt.Fprintf(&b, " — %s", r.Error)
	}
	b.WriteString("\n")
	if sim := r.Simulation; sim != nil {
		for _, a := range sim.Assumptions {
			fmt.Fprintf(&b, "  assumed: %s\n", a)
		}
	}
	for _, s := range r.Steps {
		b.WriteString("  " + stepLine(s) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
