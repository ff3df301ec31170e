package runner

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan"
)

// A step with a rollout or abort thresholds is run by the runner itself
// rather than by one hub job, so that it works on any hub that speaks the
// contract (Azure IoT Hub has neither): the runner fixes the step's
// devices with one query, then runs them in batches, each batch as hub
// jobs over an explicit device list (deviceId IN [...]), one job at a time,
// and judges the abort thresholds after every job.

// controlled reports whether a step is run by the runner over explicit
// device lists rather than as one hub job over its query.
func controlled(s *plan.Step) bool {
	return s.Rollout != nil || s.Abort != nil || s.Retry != nil || s.Verify != nil || s.OnlyPassed || s.Window != nil || s.Devices != nil ||
		s.Analysis != nil || s.Rollback != nil ||
		s.Twin != nil // to skip the twins that comply already
}

// BatchReport is one rollout batch of a step.
type BatchReport struct {
	// Target is the cumulative number of devices the batch brings the step
	// to; Devices how many it ran itself.
	Target    int        `json:"target"`
	Devices   int        `json:"devices"`
	JobIDs    []string   `json:"jobIds"`
	StartTime *time.Time `json:"startTime,omitempty"`
	EndTime   *time.Time `json:"endTime,omitempty"`
}

// AbortReport is how a step measured against its abort thresholds.
type AbortReport struct {
	FailureRate float64  `json:"failureRate"`        // the threshold, as a share
	Failures    int      `json:"failures,omitempty"` // the threshold, as a number
	On          []string `json:"on"`                 // the failure classes counted
	MinExecuted int      `json:"minExecuted"`
	Executed    int      `json:"executed"`
	Failed      int      `json:"failed"`
	// ByClass counts Failed by failure class.
	ByClass map[string]int `json:"byClass"`
	Tripped bool           `json:"tripped"`
}

// batchTargets turns a rollout's batches into cumulative device counts
// over n devices: percentages round up (1% of 20 devices is 1), counts are
// capped at n, and a batch that adds nobody is dropped. Without a rollout
// there is one batch of everything.
// BatchTargets is batchTargets for checks outside the runner (a policy's
// share of a tag group per batch), so that they split as the runner does.
func BatchTargets(ro *plan.Rollout, n int) []int { return batchTargets(ro, n) }

func batchTargets(ro *plan.Rollout, n int) []int {
	if ro == nil || len(ro.Batches) == 0 {
		return []int{n}
	}
	var out []int
	prev := 0
	for _, b := range ro.Batches {
		t := b.Count
		if b.Percent > 0 {
			t = int(math.Ceil(b.Percent / 100 * float64(n)))
		}
		t = min(t, n)
		if t > prev {
			out = append(out, t)
			prev = t
		}
	}
	return out
}

// runControlled runs a step over its devices in waves: for each rollout
// batch (one batch of every device without a rollout), after the pause,
//
//  1. its devices start as hub jobs, at the rollout's rate (pace.go), cut
//     smaller where abort thresholds apply (jobSize); after every job the
//     abort thresholds are judged on the failures that are final already,
//     so a bad start stops the step early;
//  2. its failed devices are retried (retry);
//  3. its succeeded devices must pass verify (the step's no-ops too, with
//     the first batch);
//  4. its health is analysed (analysis: bake, then the condition over the
//     batch and a control cohort);
//  5. abort is judged over every failure class it counts.
//
// Only then does the next batch's pause begin: each signal gates the next
// batch. An abort (thresholds or analysis) ends the step "aborted" and, if
// the step asks for it, rolls it back. aborted is true when it did.
//
// only, when not nil, limits the step to those devices (onlyPassed).
func (r *Runner) runControlled(ctx context.Context, p *plan.Plan, s *plan.Step, planStart time.Time, only map[string]bool, sr *StepReport) (aborted bool, err error) {
	start, err := startTime(s, planStart, r.Clock.Now())
	if err != nil {
		return false, err
	}
	if start.After(r.Clock.Now()) {
		r.phase(s, sr, Progress{Phase: PhaseWaiting, Until: start, Cron: s.Cron})
	}
	if err := r.sleepUntil(ctx, start); err != nil {
		return false, r.interrupted(sr, "", err)
	}
	began := r.Clock.Now()
	ids, err := r.stepDevices(ctx, s, only, sr)
	if err != nil || ids == nil {
		return false, err
	}
	defer sr.finish(len(ids))
	w := &wave{r: r, p: p, s: s, sr: sr, pace: newPacer(s.Rollout)}
	if err := w.prepare(ctx, ids); err != nil {
		return false, err
	}
	done := 0
	targets := batchTargets(s.Rollout, len(w.ids))
	batches := 0
	if s.Rollout != nil && len(s.Rollout.Batches) > 0 {
		batches = len(targets)
	}
	r.phase(s, sr, Progress{Phase: PhaseRunning, Total: len(w.ids) + w.noops, Batch: min(1, batches), Batches: batches})
	for bi, target := range targets {
		if bi > 0 && s.Rollout.Pause > 0 {
			until := r.Clock.Now().Add(s.Rollout.Pause)
			r.phase(s, sr, Progress{Phase: PhasePaused, Until: until, Batch: bi + 1, Batches: batches})
			if err := r.sleepUntil(ctx, until); err != nil {
				return false, r.interrupted(sr, "", err)
			}
		}
		if bi > 0 {
			r.phase(s, sr, Progress{Phase: PhaseRunning, Batch: bi + 1, Batches: batches})
		}
		aborted, err := w.batch(ctx, bi, done, target)
		if err != nil || aborted {
			if aborted && err == nil {
				err = r.rollbackOnAbort(ctx, p, s, sr)
			}
			return aborted, err
		}
		if sr.Status != "" {
			// A job of the batch ended failed or cancelled (someone
			// cancelled it on the hub): the step ends with it, its
			// devices not started skipped; no later batch starts.
			return false, nil
		}
		done = target
	}
	if len(sr.Batches) == 0 {
		// Nothing to start (every device a no-op): the no-ops still pass
		// verify or fail it.
		if err := w.verify(ctx, nil); err != nil {
			return false, err
		}
	}
	if now := r.Clock.Now(); sr.StartTime == nil { // no job: no-ops only
		sr.StartTime, sr.EndTime = &began, &now
	}
	w.conclude(done)
	return false, nil
}

// stepDevices are the devices a controlled step acts on: a saved plan's,
// or its query's now, limited to only when not nil (onlyPassed). When
// only leaves none of them, the step is done (nothing to do) and ids is
// nil.
func (r *Runner) stepDevices(ctx context.Context, s *plan.Step, only map[string]bool, sr *StepReport) ([]string, error) {
	ids := s.Devices // a saved plan's
	if ids == nil {
		var err error
		if ids, err = r.devicesOf(ctx, s.Query); err != nil {
			return nil, fmt.Errorf("step %s: resolve its devices: %w", s.Name, err)
		}
	}
	if only == nil {
		return nonNil(ids), nil
	}
	kept := ids[:0:0]
	for _, id := range ids {
		if only[id] {
			kept = append(kept, id)
		}
	}
	if len(kept) == 0 && len(ids) > 0 {
		// Not a query that matches nothing (a typo, most often): the
		// steps before left nothing for this one to do.
		sr.Status = StepCompleted
		sr.Reason = fmt.Sprintf("none of the %d devices the query matches was acted on and passed %s (onlyPassed): nothing to do", len(ids), strings.Join(s.After, ", "))
		sr.finish(0)
		return nil, nil
	}
	return nonNil(kept), nil
}

// nonNil is ids, or an empty list: nil means "nothing to do" to
// runControlled.
func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

// prepare readies the wave over ids: twins that comply already become
// no-ops (and the others' values are kept for a rollback); maintenance
// windows order the devices (the step's own, or one per device from a
// tag: devices grouped by window, in the order their windows open; a
// device whose tag holds no window fails at once); the abort report
// starts.
func (w *wave) prepare(ctx context.Context, ids []string) error {
	r, s, sr := w.r, w.s, w.sr
	var err error
	if s.Twin != nil {
		var before map[string]*hub.Twin
		if ids, before, err = r.skipCompliant(ctx, s, ids, sr); err != nil {
			return err
		}
		w.saved = newSaver(s.Twin, before)
	}
	w.noops = len(sr.Devices)
	if w.win, err = stepWindow(s); err != nil {
		return fmt.Errorf("step %s: window: %w", s.Name, err)
	}
	if s.Window != nil && s.Window.FromTag != "" {
		var bad map[string]string
		w.windows, bad, err = r.deviceWindows(ctx, s.Window.FromTag, ids)
		if err != nil {
			return fmt.Errorf("step %s: read device windows: %w", s.Name, err)
		}
		kept := ids[:0:0]
		for _, id := range ids {
			if reason, isBad := bad[id]; isBad {
				sr.Devices = append(sr.Devices, DeviceResult{DeviceID: id, Status: string(hub.DeviceJobFailed),
					Error: &hub.DeviceJobError{Code: CodeNoMaintenanceWindow, Description: reason}})
				continue
			}
			kept = append(kept, id)
		}
		ids = kept
		orderByWindow(ids, w.windows, r.Clock.Now())
	}
	w.ids = ids
	if a := s.Abort; a != nil {
		sr.Abort = &AbortReport{FailureRate: a.FailureRate, Failures: a.Failures, MinExecuted: a.MinExecuted, On: a.On, ByClass: map[string]int{}}
	}
	sr.Batches = []BatchReport{}
	return nil
}

// conclude gives a step that was not aborted its statistics and verdict,
// its batches having started done devices. The statistics are the hub's
// view: the devices its jobs had (no-ops had none), completed or not; the
// runner's verdict is the summary.
func (w *wave) conclude(done int) {
	sr := w.sr
	stats := &sr.DeviceJobStatistics
	stats.DeviceCount, stats.SucceededCount, stats.FailedCount = 0, 0, 0
	for _, d := range sr.Devices {
		switch d.Status {
		case DeviceNoop:
			continue
		case string(hub.DeviceJobCompleted):
			stats.SucceededCount++
		default:
			stats.FailedCount++
		}
		stats.DeviceCount++
	}
	sr.Status = StepCompleted
	if done < len(w.ids) {
		sr.Reason = fmt.Sprintf("the rollout's last batch ends at %d of the %d matched devices", done, len(w.ids))
	}
	judge(w.s, sr)
}

// wave is a controlled step under way.
type wave struct {
	r   *Runner
	p   *plan.Plan
	s   *plan.Step
	sr  *StepReport
	ids []string // the devices to start, in order
	// noops is how many of sr.Devices, at their start, are no-ops.
	noops   int
	win     *window
	windows map[string]*window
	pace    *pacer
	saved   *saver // a twin step's values before its patch
}

// batch runs one rollout batch, devices ids[from:to], through every
// signal. aborted is true when it ended the step.
func (w *wave) batch(ctx context.Context, bi, from, to int) (aborted bool, err error) {
	r, s, sr := w.r, w.s, w.sr
	br := BatchReport{Target: to, Devices: to - from, JobIDs: []string{}}
	first := len(sr.Devices) // the batch's first result
	defer func() { sr.Batches = append(sr.Batches, br) }()
	for next := from; next < to; {
		group, err := w.nextGroup(ctx, w.ids[next:to])
		if err != nil {
			return false, r.interrupted(sr, "", err)
		}
		next += len(group)
		jobStart, results := r.Clock.Now(), len(sr.Devices)
		w.pace.record(jobStart, len(group))
		job, err := r.runJob(ctx, w.p, s, inCondition(group), jobStart, sr)
		if job != nil {
			br.JobIDs = append(br.JobIDs, job.JobID)
			if br.StartTime == nil && job.StartTime != nil {
				t := job.StartTime.Time
				br.StartTime = &t
			}
		}
		if err != nil {
			return false, err
		}
		if w.saved != nil { // what its patch replaced, even if the job then failed
			if err := w.keepETags(ctx, sr.Devices[results:]); err != nil {
				return false, err
			}
		}
		if job.Status != hub.JobCompleted {
			sr.Status = StepStatus(job.Status)
			sr.Reason = fmt.Sprintf("job %s ended %s: %s", job.JobID, job.Status, job.FailureReason)
			return false, nil
		}
		w.pace.grow(r.Clock.Now(), succeededIn(sr.Devices[w.noops:]))
		if s.Abort != nil && w.tripped(false) {
			w.setAborted()
			return true, nil
		}
	}
	if s.Retry != nil {
		if err := r.retry(ctx, w.p, s, sr, first); err != nil {
			return false, err
		}
	}
	var batchIdx []int
	if bi == 0 {
		batchIdx = indexes(0, w.noops) // the no-ops pass verify with the first batch
	}
	batchIdx = append(batchIdx, indexes(first, len(sr.Devices))...)
	if err := w.verify(ctx, batchIdx); err != nil {
		return false, err
	}
	ar, err := w.analyse(ctx, bi, first, to)
	if err != nil {
		return false, err
	}
	now := r.Clock.Now()
	br.EndTime, sr.EndTime = &now, &now // the step's end includes verify and analysis
	switch {
	case ar != nil && !ar.Pass:
		if s.Abort != nil {
			w.tripped(true)
		}
		sr.Status = StepAborted
		sr.Reason = fmt.Sprintf("%s; %d devices were not started", ar.Reason, len(w.ids)-to)
		return true, nil
	case s.Abort != nil && w.tripped(true):
		w.setAborted()
		return true, nil
	}
	return false, nil
}

// nextGroup waits until the rollout's rate lets the next job start and
// its maintenance window is open, and returns the job's devices, the first
// of ids: as many as the rate, the abort thresholds' job size and the
// query's length allow, of one window.
func (w *wave) nextGroup(ctx context.Context, ids []string) ([]string, error) {
	r := w.r
	at, n := w.pace.next(r.Clock.Now(), w.jobSize())
	if at.After(r.Clock.Now()) {
		r.phase(w.s, w.sr, Progress{Phase: PhaseRateLimited, Until: at})
	}
	if err := r.sleepUntil(ctx, at); err != nil {
		return nil, err
	}
	group := sameWindow(take(ids, n), w.windows)
	win := w.win
	if w.windows != nil {
		win = w.windows[group[0]]
	}
	if win != nil {
		if open, opens := win.at(r.Clock.Now()); !open {
			r.phase(w.s, w.sr, Progress{Phase: PhaseWindow, Until: opens})
		}
	}
	if err := r.waitWindow(ctx, win); err != nil {
		return nil, err
	}
	r.phase(w.s, w.sr, Progress{Phase: PhaseRunning})
	return group, nil
}

// jobSize is how many devices the next job takes: with abort thresholds,
// first just enough to reach minExecuted, where they start to apply, then
// about 5% of the step's devices (at least 10), so that an abort stops
// the step soon; otherwise no bound.
func (w *wave) jobSize() int {
	return jobSize(w.s.Abort, len(w.sr.Devices)-w.noops, len(w.ids))
}

// jobSize is the rule of (*wave).jobSize: executed devices have started
// so far, of the step's total.
func jobSize(a *plan.Abort, executed, total int) int {
	if a == nil {
		return 0
	}
	if executed < a.MinExecuted {
		return a.MinExecuted - executed
	}
	return max(10, (total+19)/20)
}

// setAborted sets the step aborted by its thresholds, saying why.
func (w *wave) setAborted() {
	s, sr, ar := w.s, w.sr, w.sr.Abort
	sr.Status = StepAborted
	threshold := fmt.Sprintf("%d failed devices", s.Abort.Failures)
	if s.Abort.HasRate {
		threshold = fmt.Sprintf("%.1f%%", 100*s.Abort.FailureRate)
	}
	started := len(sr.Devices) - w.noops
	sr.Reason = fmt.Sprintf("%d of %d devices failed (%.1f%%%s), over the abort threshold of %s (checked from %d devices on); %d devices were not started",
		ar.Failed, ar.Executed, 100*float64(ar.Failed)/float64(max(ar.Executed, 1)), classList(ar.ByClass),
		threshold, s.Abort.MinExecuted, len(w.ids)-started)
}

// classList is ": 3 verify, 1 failed" for failures by class ("" for none).
func classList(by map[string]int) string {
	var parts []string
	for _, c := range plan.AbortClasses {
		if n := by[c]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, c))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ", ")
}

// tripped counts the step's results so far against its abort thresholds:
// the devices it started (no-ops are not part of the rollout) that did
// not succeed, in one of the counted classes. Before the batch is final
// (retry and verify still to come), it decides on the failures that are
// final already: a lower bound, so a step it stops would have stopped
// anyway. The report always holds every failure counted.
func (w *wave) tripped(final bool) bool {
	judgeAbort(w.s.Abort, w.s.Retry, w.sr.Devices[w.noops:], final, w.sr.Abort)
	return w.sr.Abort.Tripped
}

// judgeAbort is the rule of (*wave).tripped: it counts devices (the
// step's results, no-ops aside) against a's thresholds into ar, the
// failures retry may still turn around left undecided unless final.
func judgeAbort(a *plan.Abort, retry *plan.Retry, devices []DeviceResult, final bool, ar *AbortReport) {
	all := slices.Contains(a.On, "all")
	ar.Executed, ar.Failed, ar.ByClass = 0, 0, map[string]int{}
	decided := 0
	for _, d := range devices {
		if d.Status == DeviceNoop {
			continue
		}
		ar.Executed++
		if d.Succeeded {
			continue
		}
		c := FailureClass(d)
		if !all && !slices.Contains(a.On, c) {
			continue
		}
		ar.Failed++
		ar.ByClass[c]++
		if final || retry == nil || !slices.Contains(retry.On, c) {
			decided++
		}
	}
	enough := ar.Executed >= a.MinExecuted && ar.Executed > 0
	if a.HasRate {
		ar.Tripped = enough && float64(decided)/float64(ar.Executed) > a.FailureRate
	} else {
		ar.Tripped = enough && decided >= a.Failures
	}
}

// indexes is [from, to).
func indexes(from, to int) []int {
	out := make([]int, 0, max(to-from, 0))
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func succeededIn(ds []DeviceResult) int {
	n := 0
	for _, d := range ds {
		if d.Succeeded {
			n++
		}
	}
	return n
}

// DeviceNoop is the status of a device a twin step left alone because its
// twin complies already.
const DeviceNoop = "noop"

// skipCompliant records the devices whose twins comply with the step's
// patch as no-ops and returns the others, in order, with the sections of
// their twins a patch can change (what a rollback restores).
func (r *Runner) skipCompliant(ctx context.Context, s *plan.Step, ids []string, sr *StepReport) ([]string, map[string]*hub.Twin, error) {
	twins := map[string]*hub.Twin{}
	for rest := ids; len(rest) > 0; {
		group := take(rest, 0)
		rest = rest[len(group):]
		ts, err := r.patchedSections(ctx, inCondition(group))
		if err != nil {
			return nil, nil, fmt.Errorf("step %s: read its twins: %w", s.Name, err)
		}
		for _, t := range ts {
			twins[t.DeviceID] = t
		}
	}
	keep := ids[:0:0]
	for _, id := range ids {
		if t := twins[id]; t != nil && len(divergent(s.Twin, t)) == 0 {
			sr.Devices = append(sr.Devices, DeviceResult{DeviceID: id, Status: DeviceNoop, Succeeded: true})
			delete(twins, id)
			continue
		}
		keep = append(keep, id)
	}
	return keep, twins, nil
}
