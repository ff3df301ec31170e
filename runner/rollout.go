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

const (
	// maxConditionLen bounds the queryCondition of one job; the hub's query
	// language takes at most 8,192 characters.
	maxConditionLen = 7000
)

// controlled reports whether a step is run by the runner over explicit
// device lists rather than as one hub job over its query.
func controlled(s *plan.Step) bool {
	return s.Rollout != nil || s.Abort != nil || s.Retry != nil || s.Verify != nil || s.OnlyPassed || s.Window != nil || s.Devices != nil ||
		s.Twin != nil // to skip the twins that comply already
}

// Step statuses of controlled steps.
const (
	StepAborted = "aborted"
)

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
	Tripped     bool     `json:"tripped"`
}

// devicesOf returns the ids of the devices a step's query selects now.
func (r *Runner) devicesOf(ctx context.Context, query string) ([]string, error) {
	var ids []string
	err := eachRow(ctx, r.Hub, deviceQuery("deviceId", query), func(row *idRow) error {
		ids = append(ids, row.DeviceID)
		return nil
	})
	return ids, err
}

// batchTargets turns a rollout's batches into cumulative device counts
// over n devices: percentages round up (1% of 20 devices is 1), counts are
// capped at n, and a batch that adds nobody is dropped. Without a rollout
// there is one batch of everything.
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

// take returns the first devices of ids for one job: at most size (0: no
// bound) and few enough that the job's condition fits the query language.
func take(ids []string, size int) []string {
	length := 0
	for i, id := range ids {
		length += len(quote(id)) + 4 // 'id', plus ", "
		if i > 0 && (length > maxConditionLen || (size > 0 && i >= size)) {
			return ids[:i]
		}
	}
	return ids
}

// jobSize is how many devices the next job of a step takes, executed
// having run so far out of n: with abort thresholds, first just enough to
// reach minExecuted, where they start to apply, then about 5% of the
// step's devices (at least 10), so that an abort stops the step soon;
// with maxPerMinute, at most that many (one such job a minute).
func jobSize(s *plan.Step, executed, n int) int {
	size := 0
	if a := s.Abort; a != nil {
		size = max(10, (n+19)/20)
		if executed < a.MinExecuted {
			size = a.MinExecuted - executed
		}
	}
	if s.Rollout != nil && s.Rollout.MaxPerMinute > 0 {
		size = minPositive(size, s.Rollout.MaxPerMinute)
	}
	return size
}

// inCondition is the job condition selecting exactly ids.
func inCondition(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "'" + quote(id) + "'"
	}
	return "deviceId IN [" + strings.Join(q, ", ") + "]"
}

// runControlled runs a step with a rollout or abort thresholds. It fills
// sr; aborted is true when the abort thresholds stopped it.
//
// only, when not nil, limits the step to those devices (onlyPassed).
func (r *Runner) runControlled(ctx context.Context, p *plan.Plan, s *plan.Step, planStart time.Time, only map[string]bool, sr *StepReport) (aborted bool, err error) {
	start, err := startTime(s, planStart, r.Clock.Now())
	if err != nil {
		return false, err
	}
	if err := r.sleepUntil(ctx, start); err != nil {
		return false, r.interrupted(sr, "", err)
	}
	ids := s.Devices // a saved plan's
	if ids == nil {
		ids, err = r.devicesOf(ctx, s.Query)
		if err != nil {
			return false, fmt.Errorf("step %s: resolve its devices: %w", s.Name, err)
		}
	}
	if only != nil {
		kept := ids[:0:0]
		for _, id := range ids {
			if only[id] {
				kept = append(kept, id)
			}
		}
		ids = kept
	}
	// A twin that holds what the step sets already is not patched: it is
	// a no-op, and succeeds.
	if s.Twin != nil {
		if ids, err = r.skipCompliant(ctx, s, ids, sr); err != nil {
			return false, err
		}
	}
	// Maintenance windows: the step's own, or one per device from a tag
	// (devices grouped by window, in the order their windows open; a
	// device whose tag holds no window fails at once).
	win, err := stepWindow(s)
	if err != nil {
		return false, fmt.Errorf("step %s: window: %w", s.Name, err)
	}
	var windows map[string]*window
	if s.Window != nil && s.Window.FromTag != "" {
		var bad map[string]string
		windows, bad, err = r.deviceWindows(ctx, s.Window.FromTag, ids)
		if err != nil {
			return false, fmt.Errorf("step %s: read device windows: %w", s.Name, err)
		}
		kept := ids[:0:0]
		for _, id := range ids {
			if reason, isBad := bad[id]; isBad {
				sr.Devices = append(sr.Devices, DeviceResult{DeviceID: id, Status: string(hub.DeviceJobFailed),
					Error: &hub.DeviceJobError{Code: "NoMaintenanceWindow", Description: reason}})
				continue
			}
			kept = append(kept, id)
		}
		ids = kept
		orderByWindow(ids, windows, r.Clock.Now())
	}
	if a := s.Abort; a != nil {
		sr.Abort = &AbortReport{FailureRate: a.FailureRate, Failures: a.Failures, MinExecuted: a.MinExecuted, On: a.On}
	}
	rate := newRate(s.Rollout)
	sr.Batches = []BatchReport{}
	stats := &sr.DeviceJobStatistics
	done := 0
	for bi, target := range batchTargets(s.Rollout, len(ids)) {
		if bi > 0 && s.Rollout.Pause > 0 {
			if err := r.sleepUntil(ctx, r.Clock.Now().Add(s.Rollout.Pause)); err != nil {
				return false, r.interrupted(sr, "", err)
			}
		}
		br := BatchReport{Target: target, Devices: target - done, JobIDs: []string{}}
		for next := done; next < target; {
			group := sameWindow(take(ids[next:target], minPositive(jobSize(s, len(sr.Devices), len(ids)), rate.size())), windows)
			next += len(group)
			w := win
			if windows != nil {
				w = windows[group[0]]
			}
			if err := r.waitWindow(ctx, w); err != nil {
				sr.Batches = append(sr.Batches, br)
				return false, r.interrupted(sr, "", err)
			}
			// maxPerMinute: a job of at most that many devices starts no
			// sooner than a minute after the previous one.
			jobStart := r.Clock.Now()
			job, err := r.runJob(ctx, p, s, inCondition(group), jobStart, sr)
			if job != nil {
				br.JobIDs = append(br.JobIDs, job.JobID)
				if br.StartTime == nil && job.StartTime != nil {
					t := job.StartTime.Time
					br.StartTime = &t
				}
				if job.EndTime != nil {
					t := job.EndTime.Time
					br.EndTime = &t
				}
			}
			if err != nil {
				sr.Batches = append(sr.Batches, br)
				return false, err
			}
			if job.Status != hub.JobCompleted {
				sr.Batches = append(sr.Batches, br)
				sr.Status = string(job.Status)
				sr.Reason = fmt.Sprintf("job %s ended %s: %s", job.JobID, job.Status, job.FailureReason)
				return false, nil
			}
			if s.Abort != nil && r.tripped(s.Abort, sr) {
				sr.Batches = append(sr.Batches, br)
				sr.Status = StepAborted
				threshold := fmt.Sprintf("%d failed devices", s.Abort.Failures)
				if s.Abort.HasRate {
					threshold = fmt.Sprintf("%.1f%%", 100*s.Abort.FailureRate)
				}
				sr.Reason = fmt.Sprintf("%d of %d devices failed (%.1f%%), over the abort threshold of %s (checked from %d devices on); %d devices were not started",
					sr.Abort.Failed, sr.Abort.Executed, 100*float64(sr.Abort.Failed)/float64(sr.Abort.Executed),
					threshold, s.Abort.MinExecuted, len(ids)-sr.Abort.Executed)
				return true, nil
			}
			rate.started(len(group), len(sr.Devices), succeeded(sr.Devices))
			if (s.Rollout != nil && s.Rollout.MaxPerMinute > 0) || rate != nil {
				if err := r.sleepUntil(ctx, jobStart.Add(time.Minute)); err != nil {
					sr.Batches = append(sr.Batches, br)
					return false, r.interrupted(sr, "", err)
				}
			}
		}
		sr.Batches = append(sr.Batches, br)
		done = target
	}
	if s.Retry != nil {
		if err := r.retry(ctx, p, s, sr); err != nil {
			return false, err
		}
	}
	if s.Verify != nil {
		if err := r.verify(ctx, s, sr); err != nil {
			return false, err
		}
	}
	// The statistics are the hub's view: the devices its jobs had (no-ops
	// had none).
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
	sr.Status = string(hub.JobCompleted)
	if done < len(ids) {
		sr.Reason = fmt.Sprintf("the rollout's last batch ends at %d of the %d matched devices", done, len(ids))
	}
	judge(s, sr)
	return false, nil
}

// exponentialRate is the start rate of an exponential rollout: the most
// devices started in a minute, grown by the factor each time the criteria
// are met since the last increase.
type exponentialRate struct {
	e                   *plan.Exponential
	perMinute           int
	notified, succeeded int // at the last increase
}

// newRate is a rollout's exponential rate, or nil.
func newRate(ro *plan.Rollout) *exponentialRate {
	if ro == nil || ro.Exponential == nil {
		return nil
	}
	return &exponentialRate{e: ro.Exponential, perMinute: ro.Exponential.BaseRatePerMinute}
}

// size is how many devices the next minute starts (0: no bound).
func (x *exponentialRate) size() int {
	if x == nil {
		return 0
	}
	return x.perMinute
}

// started notes that n devices were started, notified in all so far and
// succeeded of them, and grows the rate when the criteria are met.
func (x *exponentialRate) started(n, notified, succeeded int) {
	if x == nil {
		return
	}
	e := x.e
	if (e.NotifiedDevices > 0 && notified-x.notified >= e.NotifiedDevices) ||
		(e.SucceededDevices > 0 && succeeded-x.succeeded >= e.SucceededDevices) {
		x.perMinute = int(math.Ceil(float64(x.perMinute) * e.IncrementFactor))
		x.notified, x.succeeded = notified, succeeded
	}
}

func succeeded(ds []DeviceResult) int {
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
// patch as no-ops and returns the others, in order.
func (r *Runner) skipCompliant(ctx context.Context, s *plan.Step, ids []string, sr *StepReport) ([]string, error) {
	twins := map[string]*hub.Twin{}
	for rest := ids; len(rest) > 0; {
		group := take(rest, 0)
		rest = rest[len(group):]
		ts, err := r.patchedSections(ctx, inCondition(group))
		if err != nil {
			return nil, fmt.Errorf("step %s: read its twins: %w", s.Name, err)
		}
		for _, t := range ts {
			twins[t.DeviceID] = t
		}
	}
	keep := ids[:0:0]
	for _, id := range ids {
		if t := twins[id]; t != nil && len(divergent(s.Twin, t)) == 0 {
			sr.Devices = append(sr.Devices, DeviceResult{DeviceID: id, Status: DeviceNoop, Succeeded: true})
			sr.Noop++
			continue
		}
		keep = append(keep, id)
	}
	return keep, nil
}

// RetryReport is one retry round of a step.
type RetryReport struct {
	Attempt int      `json:"attempt"`
	Devices int      `json:"devices"`
	JobIDs  []string `json:"jobIds"`
}

// failureClass sorts a device that did not succeed into a retry class.
func failureClass(d DeviceResult) string {
	if d.Error != nil {
		switch d.Error.Code {
		case hub.CodeDeviceNotOnline:
			return plan.OfflineClass
		case hub.CodeGatewayTimeout, "JobMaxExecutionTimeExceeded":
			return plan.TimedOutClass
		}
	}
	return plan.FailedClass
}

// retry runs the step's failed devices of the retried classes again, as
// new jobs over them, up to the attempts allowed, waiting the backoff
// before each round; a device's latest result replaces its earlier one.
func (r *Runner) retry(ctx context.Context, p *plan.Plan, s *plan.Step, sr *StepReport) error {
	rt := s.Retry
	for attempt := 1; attempt <= rt.Attempts; attempt++ {
		at := map[string]int{}
		var ids []string
		for i, d := range sr.Devices {
			if !d.Succeeded && slices.Contains(rt.On, failureClass(d)) {
				at[d.DeviceID] = i
				ids = append(ids, d.DeviceID)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		if err := r.sleepUntil(ctx, r.Clock.Now().Add(rt.Backoff)); err != nil {
			return r.interrupted(sr, "", err)
		}
		round := RetryReport{Attempt: attempt, Devices: len(ids), JobIDs: []string{}}
		for len(ids) > 0 {
			group := take(ids, 0)
			ids = ids[len(group):]
			res := &StepReport{}
			_, err := r.runJob(ctx, p, s, inCondition(group), r.Clock.Now(), res)
			sr.JobIDs = append(sr.JobIDs, res.JobIDs...)
			round.JobIDs = append(round.JobIDs, res.JobIDs...)
			if err != nil {
				sr.Retries = append(sr.Retries, round)
				return err
			}
			for _, d := range res.Devices {
				if i, ok := at[d.DeviceID]; ok {
					sr.Devices[i] = d
				}
			}
			if res.EndTime != nil {
				sr.EndTime = res.EndTime
			}
		}
		sr.Retries = append(sr.Retries, round)
	}
	return nil
}

// verify waits, up to the step's verify timeout, for every device the
// step succeeded on to satisfy the verify condition, asking the hub every
// twentieth of the timeout (1 to 30 s); devices that never do fail.
func (r *Runner) verify(ctx context.Context, s *plan.Step, sr *StepReport) error {
	v := s.Verify
	deadline := r.Clock.Now().Add(v.Timeout)
	interval := min(max(v.Timeout/20, time.Second), 30*time.Second)
	waiting := map[string]int{}
	for i, d := range sr.Devices {
		if d.Succeeded {
			waiting[d.DeviceID] = i
		}
	}
	for {
		var ids []string
		for _, d := range sr.Devices {
			if _, ok := waiting[d.DeviceID]; ok {
				ids = append(ids, d.DeviceID)
			}
		}
		for len(ids) > 0 {
			group := take(ids, 0)
			ids = ids[len(group):]
			ok, err := r.devicesOf(ctx, "("+v.Query+") AND "+inCondition(group))
			if err != nil {
				return fmt.Errorf("step %s: verify: %w", s.Name, err)
			}
			for _, id := range ok {
				if i, found := waiting[id]; found {
					t := true
					sr.Devices[i].Verified = &t
					delete(waiting, id)
				}
			}
		}
		if len(waiting) == 0 || !r.Clock.Now().Before(deadline) {
			break
		}
		next := r.Clock.Now().Add(interval)
		if next.After(deadline) {
			next = deadline
		}
		if err := r.sleepUntil(ctx, next); err != nil {
			return r.interrupted(sr, "", err)
		}
	}
	for _, i := range waiting {
		f := false
		d := &sr.Devices[i]
		d.Verified, d.Succeeded = &f, false
		d.Error = &hub.DeviceJobError{Code: "VerifyTimeout",
			Description: fmt.Sprintf("the twin did not satisfy %q within %s", v.Query, v.Timeout)}
	}
	return nil
}

func minPositive(a, b int) int {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

// tripped counts the step's results so far against its abort thresholds:
// the devices that did not succeed in one of the counted classes.
func (r *Runner) tripped(a *plan.Abort, sr *StepReport) bool {
	ar := sr.Abort
	ar.Executed, ar.Failed = len(sr.Devices), 0
	all := slices.Contains(a.On, "all")
	for _, d := range sr.Devices {
		if !d.Succeeded && (all || slices.Contains(a.On, failureClass(d))) {
			ar.Failed++
		}
	}
	enough := ar.Executed >= a.MinExecuted && ar.Executed > 0
	if a.HasRate {
		ar.Tripped = enough && float64(ar.Failed)/float64(ar.Executed) > a.FailureRate
	} else {
		ar.Tripped = enough && ar.Failed >= a.Failures
	}
	return ar.Tripped
}

// runJob creates one hub job of a step over condition, follows it to its
// end and adds its devices and statistics to sr.
func (r *Runner) runJob(ctx context.Context, p *plan.Plan, s *plan.Step, condition string, start time.Time, sr *StepReport) (*hub.Job, error) {
	j := r.jobFor(p, s, start)
	j.QueryCondition = condition
	job, err := r.Hub.CreateJob(ctx, j)
	if err != nil {
		return nil, fmt.Errorf("step %s: create job: %w", s.Name, err)
	}
	sr.JobIDs = append(sr.JobIDs, job.JobID)
	if r.Observer != nil {
		r.Observer.StepStarted(s, job.JobID)
	}
	job, err = r.follow(ctx, s, job, sr)
	if err != nil {
		return job, err
	}
	if sr.StartTime == nil && job.StartTime != nil {
		t := job.StartTime.Time
		sr.StartTime = &t
	}
	if job.EndTime != nil {
		t := job.EndTime.Time
		sr.EndTime = &t
	}
	if st := job.DeviceJobStatistics; st != nil {
		sr.DeviceJobStatistics.SucceededCount += st.SucceededCount
		sr.DeviceJobStatistics.FailedCount += st.FailedCount
	}
	devs, err := r.deviceResults(ctx, job.JobID)
	if err != nil {
		return job, fmt.Errorf("step %s: read device results of job %s: %w", s.Name, job.JobID, err)
	}
	sr.Devices = append(sr.Devices, devs...)
	return job, nil
}

// follow watches a job until it has ended. When ctx ends first, the job is
// cancelled and sr says so.
func (r *Runner) follow(ctx context.Context, s *plan.Step, job *hub.Job, sr *StepReport) (*hub.Job, error) {
	for !job.Status.Terminal() || (job.EndTime == nil && job.Status == hub.JobCancelled) {
		next, err := r.Hub.WatchJob(ctx, job.JobID, job)
		if err != nil {
			if ctx.Err() != nil {
				return job, r.interrupted(sr, job.JobID, ctx.Err())
			}
			return job, fmt.Errorf("step %s: follow job %s: %w", s.Name, job.JobID, err)
		}
		job = next
		if r.Observer != nil {
			r.Observer.JobChanged(s, job)
		}
	}
	return job, nil
}

// interrupted records an interrupted step, cancelling its running hub job
// if there is one, and returns err.
func (r *Runner) interrupted(sr *StepReport, jobID string, err error) error {
	sr.Status = string(hub.JobCancelled)
	sr.Reason = "interrupted"
	if jobID != "" {
		r.cancel(jobID)
		sr.Reason = "interrupted; the hub job was cancelled"
	}
	return err
}

// sleepUntil waits on the runner's clock until t, or until ctx ends.
func (r *Runner) sleepUntil(ctx context.Context, t time.Time) error {
	d := t.Sub(r.Clock.Now())
	if d <= 0 {
		return ctx.Err()
	}
	tm := r.Clock.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
