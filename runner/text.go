package runner

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/plan"
)

// TextObserver prints progress for people: one line per running step
// over all of its devices, with what it is doing (running, paused,
// verifying, waiting for its window, ...). On a terminal (TTY) those
// lines are redrawn in place, a block of one line per running step; in
// a log, a step's line is printed when its state changes, and while it
// runs at most every LogEvery. A finished step prints its verdict and its
// failures by class, with a few device ids each (the report has every
// device). Hub job ids appear only when Verbose.
type TextObserver struct {
	W       io.Writer
	TTY     bool
	Clock   clock.Clock
	Verbose bool
	// Width truncates the lines drawn on a terminal (0: 100), so that a
	// line never wraps and the block redraws in place.
	Width int
	// LogEvery is how often a running step's line repeats in a log
	// (0: 10 s).
	LogEvery time.Duration

	mu      sync.Mutex
	running map[string]*stepState
	order   []string // running steps, in start order
	drawn   int      // lines of the status block on screen
	drawnAt time.Time
	stop    chan struct{} // ends the terminal's redraw ticker
}

// stepState is what a running step's line shows.
type stepState struct {
	started time.Time
	p       Progress
	message string // the hub job's statusMessage (waiting for the broker)
	broker  int    // devices waiting for the broker
	printed time.Time
}

var (
	_ Observer         = (*TextObserver)(nil)
	_ ProgressObserver = (*TextObserver)(nil)
)

// StepStarted implements Observer: a hub job of the step was created.
func (o *TextObserver) StepStarted(s *plan.Step, jobID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.state(s.Name)
	if o.Verbose {
		o.line("%s: job %s created (%s on %s)\n", s.Name, jobID, jobType(s), s.Query)
	}
}

// JobChanged implements Observer: the hub's word on a job (its progress
// comes with StepProgress, over the whole step).
func (o *TextObserver) JobChanged(s *plan.Step, j *hub.Job) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.state(s.Name)
	changed := st.message != j.StatusMessage
	st.message = j.StatusMessage
	if j.DeviceJobStatistics != nil {
		st.broker = j.DeviceJobStatistics.WaitingForBrokerCount
	}
	if o.Verbose && (changed || j.Status.Terminal()) {
		msg := ""
		if j.StatusMessage != "" {
			msg = " — " + j.StatusMessage
		}
		o.line("%s: job %s %s%s\n", s.Name, j.JobID, j.Status, msg)
	}
}

// StepProgress implements ProgressObserver.
func (o *TextObserver) StepProgress(s *plan.Step, p Progress) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.state(s.Name)
	changed := st.p.Phase != p.Phase || st.p.Batch != p.Batch || st.p.Round != p.Round
	st.p = p
	now := o.now()
	if o.TTY {
		if changed || now.Sub(o.drawnAt) >= 200*time.Millisecond || o.Clock == nil {
			o.redraw()
		}
		return
	}
	every := o.LogEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	if !changed && o.Clock != nil && now.Sub(st.printed) < every {
		return
	}
	st.printed = now
	fmt.Fprintf(o.W, "%s\n", o.progressLine(s.Name, st, now))
}

// StepFinished implements Observer: the step's verdict, its devices as
// the report counts them, and its failures by class.
func (o *TextObserver) StepFinished(sr *StepReport) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.running, sr.Name)
	if i := slices.Index(o.order, sr.Name); i >= 0 {
		o.order = slices.Delete(o.order, i, i+1)
	}
	o.line("%s\n", stepLine(sr))
	for _, l := range failureLines(sr) {
		o.line("  %s\n", l)
	}
}

// Finish implements Observer: it clears the status block and writes the
// run's summary.
func (o *TextObserver) Finish(rep *Report) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stop != nil {
		close(o.stop)
		o.stop = nil
	}
	o.clear()
	return rep.WriteSummary(o.W)
}

// state is the running step's state, new when it has none.
func (o *TextObserver) state(name string) *stepState {
	if o.running == nil {
		o.running = map[string]*stepState{}
	}
	st := o.running[name]
	if st == nil {
		st = &stepState{started: o.now()}
		o.running[name] = st
		o.order = append(o.order, name)
		o.tick()
	}
	return st
}

// tick starts the terminal's redraw every second, so that countdowns
// move while nothing else happens.
func (o *TextObserver) tick() {
	if !o.TTY || o.Clock == nil || o.stop != nil {
		return
	}
	stop := make(chan struct{})
	o.stop = stop
	go func() {
		for {
			t := o.Clock.NewTimer(time.Second)
			select {
			case <-stop:
				t.Stop()
				return
			case <-t.C():
			}
			o.mu.Lock()
			if o.stop == stop {
				o.redraw()
			}
			o.mu.Unlock()
		}
	}()
}

func (o *TextObserver) now() time.Time {
	if o.Clock == nil {
		return time.Time{}
	}
	return o.Clock.Now()
}

// line prints a line of its own, above the status block on a terminal.
func (o *TextObserver) line(format string, args ...any) {
	o.clear()
	fmt.Fprintf(o.W, format, args...)
	if o.TTY {
		o.redraw()
	}
}

// clear erases the status block (the cursor is on the line below it).
func (o *TextObserver) clear() {
	if o.drawn > 0 {
		fmt.Fprintf(o.W, "\033[%dA\r\033[J", o.drawn)
		o.drawn = 0
	}
}

// redraw rewrites the status block: one line per running step.
func (o *TextObserver) redraw() {
	width := o.Width
	if width <= 0 {
		width = 100
	}
	now := o.now()
	var b strings.Builder
	if o.drawn > 0 {
		fmt.Fprintf(&b, "\033[%dA\r\033[J", o.drawn)
	}
	n := 0
	for _, name := range o.order {
		l := []rune(o.progressLine(name, o.running[name], now))
		if len(l) > width-1 {
			l = append(l[:width-2], '…')
		}
		b.WriteString(string(l) + "\n")
		n++
	}
	fmt.Fprint(o.W, b.String())
	o.drawn, o.drawnAt = n, now
}

// progressLine is a running step in one line: its state, its devices
// done of its total, succeeded and failed (by class), and the state's
// detail (time left, batch, round, rate and ETA).
func (o *TextObserver) progressLine(name string, st *stepState, now time.Time) string {
	p := st.p
	var b strings.Builder
	b.WriteString(name + ": ")
	if p.Phase == "" {
		b.WriteString("starting")
		return b.String()
	}
	b.WriteString(phaseText(p, now))
	done := p.Succeeded + p.Failed + p.Noop
	if p.Total > 0 || done > 0 {
		fmt.Fprintf(&b, " — %d/%d done, %d succeeded", done, p.Total, p.Succeeded)
		if p.Failed > 0 {
			fmt.Fprintf(&b, ", %d failed%s", p.Failed, classList(p.FailedByClass))
		}
		if p.Noop > 0 {
			fmt.Fprintf(&b, ", %d no-op", p.Noop)
		}
	}
	if p.Phase == PhaseRunning && o.Clock != nil {
		if el := now.Sub(st.started); el >= time.Second && done > 0 && p.Total > done {
			rate := float64(done) / el.Seconds()
			left := time.Duration(float64(p.Total-done) / rate * float64(time.Second))
			fmt.Fprintf(&b, ", %.0f/s, ETA %s", rate, left.Round(time.Second))
		}
	}
	if st.broker > 0 {
		fmt.Fprintf(&b, " (%d waiting for the broker)", st.broker)
	} else if st.message != "" && p.Phase == PhaseRunning {
		b.WriteString(" (" + st.message + ")")
	}
	return b.String()
}

// phaseText is a step's state in words.
func phaseText(p Progress, now time.Time) string {
	batch := ""
	if p.Batches > 0 {
		batch = fmt.Sprintf("batch %d/%d", p.Batch, p.Batches)
	}
	left := func() string {
		if p.Until.IsZero() || now.IsZero() {
			return ""
		}
		return humanDuration(p.Until.Sub(now))
	}
	switch p.Phase {
	case PhaseRunning:
		if batch != "" {
			return "running " + batch
		}
		return "running"
	case PhasePaused:
		return fmt.Sprintf("paused, %s starts in %s", batch, left())
	case PhaseWindow:
		return fmt.Sprintf("waiting for the window that opens at %s (in %s)", clockTime(p.Until, now), left())
	case PhaseWaiting:
		if p.Cron != "" {
			return fmt.Sprintf("waiting for the occurrence of cron %q at %s (in %s)", p.Cron, clockTime(p.Until, now), left())
		}
		return fmt.Sprintf("waiting to start at %s (in %s)", clockTime(p.Until, now), left())
	case PhaseRateLimited:
		return fmt.Sprintf("rate-limited, next devices in %s", left())
	case PhaseRetrying:
		s := fmt.Sprintf("retry round %d of %d", p.Round, p.Rounds)
		if batch != "" {
			s = batch + ", " + s
		}
		if p.Until.After(now) {
			s += " in " + left()
		}
		return s
	case PhaseVerifying:
		s := fmt.Sprintf("verifying %d/%d", p.Verified, p.ToVerify)
		if batch != "" {
			s = fmt.Sprintf("verifying %s: %d/%d", batch, p.Verified, p.ToVerify)
		}
		if p.Until.After(now) {
			s += fmt.Sprintf(" (gives up in %s)", left())
		}
		return s
	case PhaseAnalysing:
		s := "analysing"
		if batch != "" {
			s += " " + batch
		}
		if p.Until.After(now) {
			s += ", baking for " + left()
		}
		return s
	}
	return string(p.Phase)
}

// humanDuration is d rounded for people: 4m12s, 2h5m, 0s.
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// clockTime is t as a person reads it next to now: the time of day, with
// the date when it is not today.
func clockTime(t, now time.Time) string {
	if y, m, d := t.Date(); !now.IsZero() {
		if ny, nm, nd := now.In(t.Location()).Date(); y == ny && m == nm && d == nd {
			return t.Format("15:04:05 MST")
		}
	}
	return t.Format("2006-01-02 15:04 MST")
}

// failureLines are a step's failures by class, each with a few device
// ids and why the first failed; the report has every device.
func failureLines(sr *StepReport) []string {
	byClass := map[string][]DeviceResult{}
	for _, d := range sr.Devices {
		if !d.Succeeded {
			c := FailureClass(d)
			byClass[c] = append(byClass[c], d)
		}
	}
	var out []string
	for _, c := range slices.Sorted(maps.Keys(byClass)) {
		ds := byClass[c]
		ids := make([]string, 0, failingShown)
		for _, d := range ds[:min(len(ds), failingShown)] {
			ids = append(ids, d.DeviceID)
		}
		more := ""
		if len(ds) > failingShown {
			more = fmt.Sprintf(" and %d more", len(ds)-failingShown)
		}
		out = append(out, fmt.Sprintf("%d %s: %s%s — %s", len(ds), c, strings.Join(ids, ", "), more, deviceFailure(ds[0])))
	}
	return out
}

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

// WriteSummary writes the human summary of a run: its status and
// duration, then per step its verdict, its devices as the report counts
// them (succeeded, failed by class, no-op, skipped), its duration, why
// it did not succeed, and, wherever the hub's count differs from the
// verdict, why. A dry-run's says what it was played against and what it
// assumed first.
func (r *Report) WriteSummary(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "plan %s", r.Plan.Name)
	if sim := r.Simulation; sim != nil {
		fmt.Fprintf(&b, " (dry run against %s)", sim.Against)
	}
	fmt.Fprintf(&b, ": %s", r.Status)
	if d := r.FinishedAt.Sub(r.StartedAt); !r.StartedAt.IsZero() && d >= 0 && !r.DryRun {
		fmt.Fprintf(&b, " in %s", humanDuration(d))
	}
	if r.Error != "" {
		fmt.Fprintf(&b, " — %s", r.Error)
	}
	b.WriteString("\n")
	if r.DryRun {
		b.WriteString("  dry run: nothing was applied\n")
	}
	if sim := r.Simulation; sim != nil {
		for _, a := range sim.Assumptions {
			fmt.Fprintf(&b, "  assumed: %s\n", a)
		}
	}
	for _, s := range r.Steps {
		b.WriteString("  " + stepLine(s))
		if s.StartTime != nil && s.EndTime != nil {
			fmt.Fprintf(&b, " (%s)", humanDuration(s.EndTime.Sub(*s.StartTime)))
		}
		b.WriteString("\n")
		if why := hubDiffers(s); why != "" {
			b.WriteString("    " + why + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// hubDiffers says why the hub's count of a step's devices differs from
// the runner's verdict ("" when they agree): the hub counts a device job
// completed once the device answered (any status) or the patch was
// stored; the verdict also wants a 2xx answer, verify and analysis.
func hubDiffers(s *StepReport) string {
	hubOK := s.DeviceJobStatistics.SucceededCount
	if hubOK == s.Summary.Succeeded || len(s.Devices) == 0 {
		return ""
	}
	statuses := map[int]int{}
	verify, analysis := 0, 0
	for _, d := range s.Devices {
		if d.Succeeded || d.Status != string(hub.DeviceJobCompleted) {
			continue
		}
		switch FailureClass(d) {
		case plan.VerifyClass:
			verify++
		case plan.AnalysisClass:
			analysis++
		default:
			if d.Outcome != nil && d.Outcome.DeviceMethodResponse != nil {
				statuses[d.Outcome.DeviceMethodResponse.Status]++
			}
		}
	}
	var parts []string
	if n := sumValues(statuses); n > 0 {
		var codes []string
		for _, st := range slices.Sorted(maps.Keys(statuses)) {
			codes = append(codes, fmt.Sprintf("%d ×%d", st, statuses[st]))
		}
		parts = append(parts, fmt.Sprintf("%d answered the method with a status outside 2xx (%s)", n, strings.Join(codes, ", ")))
	}
	if verify > 0 {
		parts = append(parts, fmt.Sprintf("%d then failed verify", verify))
	}
	if analysis > 0 {
		parts = append(parts, fmt.Sprintf("%d then failed the health analysis", analysis))
	}
	if len(parts) == 0 {
		if len(s.Retries) > 0 {
			return fmt.Sprintf("the hub counts %d device jobs completed of the step's first jobs; retries count in the verdict, which takes each device's latest result", hubOK)
		}
		return ""
	}
	return fmt.Sprintf("the hub counts %d device jobs completed; the verdict differs: %s", hubOK, strings.Join(parts, "; "))
}

func sumValues(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
