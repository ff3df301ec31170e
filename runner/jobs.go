package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan"
)

// runJob creates one hub job of a step over condition, follows it to its
// end and adds its devices and statistics to sr.
func (r *Runner) runJob(ctx context.Context, p *plan.Plan, s *plan.Step, condition string, start time.Time, sr *StepReport) (*hub.Job, error) {
	j := r.jobFor(p, s, start)
	j.QueryCondition = condition
	return r.execJob(ctx, s, j, sr)
}

// execJob creates j, follows it to its end and adds its devices and
// statistics to sr. A hub that restarts meanwhile costs nothing: the
// runner waits for it (outage) and goes on.
func (r *Runner) execJob(ctx context.Context, s *plan.Step, j *hub.Job, sr *StepReport) (*hub.Job, error) {
	var job *hub.Job
	err := r.outage(ctx, func() error {
		var err error
		job, err = r.Hub.CreateJob(ctx, j)
		if err != nil && errors.Is(err, &hub.Error{Code: hub.CodeJobAlreadyExists}) {
			// An answer lost to the outage: the job is ours (its id is
			// new), created before the hub went away.
			job, err = r.Hub.GetJob(ctx, j.JobID)
		}
		return err
	})
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
	var devs []DeviceResult
	err = r.outage(ctx, func() error {
		var err error
		devs, err = r.deviceResults(ctx, job.JobID)
		return err
	})
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
		var next *hub.Job
		err := r.outage(ctx, func() error {
			var err error
			next, err = r.Hub.WatchJob(ctx, job.JobID, job)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				err := r.interrupted(sr, job.JobID, ctx.Err())
				r.salvage(sr, job)
				return job, err
			}
			return job, fmt.Errorf("step %s: follow job %s: %w", s.Name, job.JobID, err)
		}
		job = next
		if r.Observer != nil {
			r.Observer.JobChanged(s, job)
			r.jobProgress(s, sr, job)
		}
	}
	return job, nil
}

// interrupted records an interrupted step, cancelling its running hub job
// if there is one, and returns err.
func (r *Runner) interrupted(sr *StepReport, jobID string, err error) error {
	sr.Status = StepCancelled
	sr.Reason = "interrupted"
	if jobID != "" {
		r.cancel(jobID)
		sr.Reason = "interrupted; the hub job was cancelled"
	}
	return err
}

// salvage adds to sr the devices of an interrupted step's cancelled job
// that had ended (completed or failed) by the time it was cancelled: the
// report of an interrupted run holds every result the hub has. Devices
// that had not ended are the summary's skipped.
func (r *Runner) salvage(sr *StepReport, job *hub.Job) {
	ctx, cancel := r.Clock.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	devs, err := r.deviceResults(ctx, job.JobID)
	if err != nil {
		sr.Reason += fmt.Sprintf("; its devices' results could not be read (%v): the hub holds them under job %s", err, job.JobID)
		return
	}
	for _, d := range devs {
		if d.Status == string(hub.DeviceJobCompleted) || d.Status == string(hub.DeviceJobFailed) {
			sr.Devices = append(sr.Devices, d)
		}
	}
	if st := job.DeviceJobStatistics; st != nil {
		sr.DeviceJobStatistics.DeviceCount = max(sr.DeviceJobStatistics.DeviceCount, st.DeviceCount)
	}
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

// outageLimit is how long the runner waits for a hub that went away (a
// restart, a failover) before it gives up.
const outageLimit = 2 * time.Minute

// outage runs call, and again while the hub is unreachable, waiting 1 s,
// 2 s, 4 s … (at most 10 s) between tries, for up to outageLimit. The
// calls it wraps are reads, or creations the caller makes idempotent. A
// hub this runner never reached is not waited for: it is down or
// misnamed, not restarting, and the operator hears so at once.
func (r *Runner) outage(ctx context.Context, call func() error) error {
	deadline := r.Clock.Now().Add(outageLimit)
	wait := time.Second
	for {
		err := call()
		if err == nil {
			r.reached.Store(true)
		}
		if err == nil || hub.ErrorCode(err) != hub.CodeUnreachable || ctx.Err() != nil || !r.Clock.Now().Before(deadline) || !r.reached.Load() {
			return err
		}
		if err := r.sleepUntil(ctx, r.Clock.Now().Add(wait)); err != nil {
			return err
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// Device lists as jobs: a controlled step runs its devices as hub jobs
// over explicit lists.

const (
	// maxConditionLen bounds the queryCondition of one job; the hub's query
	// language takes at most 8,192 characters.
	maxConditionLen = 7000
)

// devicesOf returns the ids of the devices a step's query selects now.
func (r *Runner) devicesOf(ctx context.Context, query string) ([]string, error) {
	var ids []string
	err := eachRow(ctx, r.Hub, deviceQuery("deviceId", query), func(row *idRow) error {
		ids = append(ids, row.DeviceID)
		return nil
	})
	return ids, err
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

// inCondition is the job condition selecting exactly ids.
func inCondition(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "'" + quote(id) + "'"
	}
	return "deviceId IN [" + strings.Join(q, ", ") + "]"
}
