package engine

import (
	"context"
	"errors"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

var errCancelled = errors.New("job cancelled")

// CreateJob implements hub.Client.
func (e *Engine) CreateJob(ctx context.Context, in *hub.Job) (*hub.Job, error) {
	j, cond, err := e.checkJob(in)
	if err != nil {
		return nil, err
	}
	// Creates are serialised so that two cannot both take the last of
	// MaxActiveJobs.
	e.createMu.Lock()
	defer e.createMu.Unlock()
	n, err := e.activeJobs(ctx)
	if err != nil {
		return nil, storeErr(err, hub.CodeServerError, "", "")
	}
	if e.MaxActiveJobs > 0 && n >= e.MaxActiveJobs {
		return nil, hub.Errorf(hub.CodeTooManyJobs, "429: %d jobs are queued, scheduled or running, the most this hub runs at once; wait for one to finish or cancel one", n)
	}
	err = e.audited(ctx, hub.AuditJobCreate, j.JobID, func(ctx context.Context) error {
		return storeErr(e.store.CreateJob(ctx, j), hub.CodeJobAlreadyExists, "job", j.JobID)
	})
	if err != nil {
		return nil, err
	}
	var l store.Lease
	if e.leaser != nil {
		// The replica that creates a job runs it, unless the claimer
		// of another was quicker.
		if l, err = e.claim(ctx, j.JobID); err != nil {
			return cloneJob(j), nil
		}
	}
	e.start(j, cond, nil, false, l)
	return cloneJob(j), nil
}

// activeJobs counts the jobs not yet finished: among replicas, the whole
// hub's, from the store.
func (e *Engine) activeJobs(ctx context.Context) (int, error) {
	if e.leaser != nil {
		jobs, err := e.store.ListJobs(ctx)
		n := 0
		for _, j := range jobs {
			if unfinished(j) {
				n++
			}
		}
		return n, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.runs), nil
}

// checkJob validates a create request and returns the job as stored. A
// job is refused here for everything that would make it fail on every
// device or at once (a twin patch PATCH /twins would refuse, a deadline
// already passed or out of range), rather than accepted and failed at run
// time.
func (e *Engine) checkJob(in *hub.Job) (*hub.Job, query.Expr, error) {
	if in == nil {
		return nil, nil, hub.Errorf(hub.CodeArgumentInvalid, "job is missing")
	}
	j := cloneJob(in)
	if err := hub.CheckJobID(j.JobID); err != nil {
		return nil, nil, err
	}
	if strings.TrimSpace(j.QueryCondition) == "" {
		return nil, nil, hub.Errorf(hub.CodeArgumentInvalid, "queryCondition is required (\"*\" selects every device)")
	}
	cond, err := query.ParseCondition(j.QueryCondition)
	if err != nil {
		return nil, nil, queryErr(err)
	}
	switch j.Type {
	case hub.JobDeviceMethod:
		m, err := checkMethod(j.CloudToDeviceMethod)
		if err != nil {
			return nil, nil, err
		}
		j.CloudToDeviceMethod, j.UpdateTwin = m, nil
	case hub.JobUpdateTwin:
		u := j.UpdateTwin
		// Azure takes empty sections ({"tags": {}, "properties":
		// {"desired": {}}}: a job that changes nothing, as its SDK's
		// tests create); it refuses a body with neither section.
		if u == nil || (u.Tags == nil && !u.ClearTags && !u.ClearDesired && (u.Properties == nil || u.Properties.Desired == nil)) {
			return nil, nil, hub.Errorf(hub.CodeArgumentInvalid,
				`updateTwin must set tags or properties.desired (desired properties go under "properties": {"updateTwin": {"properties": {"desired": {...}}}})`)
		}
		if u.Properties != nil {
			u.Properties = &hub.Properties{Desired: u.Properties.Desired} // reported is the device's
		}
		// The checks of PATCH /twins (twinChange), which would otherwise
		// refuse the patch on each device in turn.
		if err := checkTwinPatch(u); err != nil {
			return nil, nil, hub.Errorf(hub.ErrorCode(err), "updateTwin: %s", hub.ErrorMessage(err))
		}
		et, err := hub.ParseOptionalETag(u.ETag)
		if err != nil {
			return nil, nil, hub.Errorf(hub.CodeArgumentInvalid, "updateTwin.etag: %s", hub.ErrorMessage(err))
		}
		if et == "" {
			et = "*"
		}
		u.ETag = et
		j.CloudToDeviceMethod = nil
	default:
		return nil, nil, hub.Errorf(hub.CodeGenericBadRequest, "BadRequest: job type %q is not supported; use scheduleDeviceMethod or scheduleUpdateTwin", j.Type)
	}
	now := e.clock.Now().UTC()
	// Before the deadline start+max is computed as a time.Duration, where
	// an unchecked maximum overflows into a deadline already passed.
	if err := hub.CheckJobTiming(j.StartTime, j.MaxExecutionTimeInSeconds, now); err != nil {
		return nil, nil, err
	}
	if j.MaxExecutionTimeInSeconds == 0 {
		j.MaxExecutionTimeInSeconds = hub.DefaultMaxExecutionTime
	}
	j.CreatedTime = &hub.Time{Time: now}
	if j.StartTime == nil || j.StartTime.IsZero() {
		j.StartTime = &hub.Time{Time: now}
	}
	j.EndTime, j.FailureReason, j.StatusMessage = nil, "", ""
	j.Status = hub.JobQueued
	j.DeviceJobStatistics = &hub.DeviceJobStatistics{}
	return j, cond, nil
}

func cloneJob(j *hub.Job) *hub.Job {
	c := *j
	if j.DeviceJobStatistics != nil {
		s := *j.DeviceJobStatistics
		c.DeviceJobStatistics = &s
	}
	if j.CloudToDeviceMethod != nil {
		m := *j.CloudToDeviceMethod
		c.CloudToDeviceMethod = &m
	}
	if j.UpdateTwin != nil {
		u := *j.UpdateTwin
		c.UpdateTwin = &u
	}
	return &c
}

// GetJob implements hub.Client.
func (e *Engine) GetJob(ctx context.Context, id string) (*hub.Job, error) {
	if err := hub.CheckJobID(id); err != nil {
		return nil, err
	}
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		return cloneJob(r.job), nil
	}
	j, err := e.store.GetJob(ctx, id)
	if err != nil {
		return nil, storeErr(err, hub.CodeJobNotFound, "job", id)
	}
	return j, nil
}

// WatchJob implements hub.Client without polling: it waits on the job's
// change channel.
func (e *Engine) WatchJob(ctx context.Context, id string, last *hub.Job) (*hub.Job, error) {
	for {
		e.mu.Lock()
		r := e.runs[id]
		var cur *hub.Job
		var changed chan struct{}
		if r != nil {
			cur, changed = cloneJob(r.job), r.changed
			r.watched = true
		}
		e.mu.Unlock()
		if r == nil && e.leaser != nil {
			return e.watchRemote(ctx, id, last)
		}
		if r == nil {
			j, err := e.GetJob(ctx, id)
			if err != nil || last == nil || !hub.SameJobState(j, last) {
				return j, err
			}
			// A finished job never changes again.
			<-ctx.Done()
			return nil, ctx.Err()
		}
		if last == nil || !hub.SameJobState(cur, last) {
			return cur, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// CancelJob implements hub.Client. The job stops starting devices at
// once and answers "cancelled" as Azure does, with the devices it had not
// started recorded canceled; devices in flight finish or time out, and the
// job's endTime is set when the last of them has.
func (e *Engine) CancelJob(ctx context.Context, id string) (*hub.Job, error) {
	if err := hub.CheckJobID(id); err != nil {
		return nil, err
	}
	j, err := e.cancelJob(ctx, id)
	if ent := e.entry(ctx, hub.AuditJobCancel, id); ent != nil {
		ent.Job, ent.Result = id, hub.ErrorCode(err)
		if err == nil {
			ent.Result = string(j.Status)
		}
		e.appendAudit(ctx, ent)
	}
	return j, err
}

// cancelJob is CancelJob after the id's check.
func (e *Engine) cancelJob(ctx context.Context, id string) (*hub.Job, error) {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r == nil && e.leaser != nil {
		return e.remoteCancel(ctx, id) // it runs on another replica, or on none yet
	}
	if r == nil {
		return e.GetJob(ctx, id) // finished: cancelling is a no-op, as in Azure
	}
	if err := e.cancelRun(r); err != nil {
		return nil, err
	}
	select {
	case <-r.stopped:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return e.GetJob(ctx, id)
}

// QueryJobs implements hub.Client.
func (e *Engine) QueryJobs(ctx context.Context, q hub.JobQuery) ([]*hub.Job, string, error) {
	all, err := e.store.ListJobs(ctx)
	if err != nil {
		return nil, "", storeErr(err, hub.CodeServerError, "", "")
	}
	var out []*hub.Job
	for _, j := range all {
		if cur, err := e.GetJob(ctx, j.JobID); err == nil {
			j = cur
		}
		if (q.Type == "" || j.Type == q.Type) && (q.Status == "" || j.Status == q.Status) {
			out = append(out, j)
		}
	}
	start := 0
	if q.Continuation != "" {
		k, err := decodeToken(q.Continuation)
		if err != nil {
			return nil, "", err
		}
		for i, j := range out {
			if j.JobID == k.After {
				start = i + 1
			}
		}
	}
	out = out[start:]
	size := q.PageSize
	if size <= 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	if len(out) > size {
		return out[:size], encodeToken(token{After: out[size-1].JobID, Left: -1}), nil
	}
	return out, "", nil
}
