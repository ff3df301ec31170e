package engine

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
)

// run is a job that has not reached a terminal status: its current
// snapshot, how to cancel it, and a channel closed on every change so
// watchers wake without polling.
type run struct {
	job     *hub.Job // guarded by Engine.mu; replaced, never mutated in place
	cancel  context.CancelCauseFunc
	changed chan struct{}
	done    chan struct{}
}

var errCancelled = errors.New("job cancelled")

// CreateJob implements hub.Client.
func (e *Engine) CreateJob(ctx context.Context, in *hub.Job) (*hub.Job, error) {
	j, cond, err := e.checkJob(in)
	if err != nil {
		return nil, err
	}
	if err := e.store.CreateJob(ctx, j); err != nil {
		return nil, storeErr(err, hub.CodeJobAlreadyExists, "job", j.JobID)
	}
	e.start(j, cond)
	return cloneJob(j), nil
}

// checkJob validates a create request and returns the job as stored.
func (e *Engine) checkJob(in *hub.Job) (*hub.Job, query.Expr, error) {
	if in == nil {
		return nil, nil, hub.Errorf(hub.CodeArgumentInvalid, "job is missing")
	}
	j := cloneJob(in)
	if j.JobID == "" || len(j.JobID) > 128 || strings.ContainsAny(j.JobID, "/?#") {
		return nil, nil, hub.Errorf(hub.CodeArgumentInvalid, "jobId %q must be 1 to 128 characters without / ? #", j.JobID)
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
		if u == nil || (len(u.Tags) == 0 && (u.Properties == nil || len(u.Properties.Desired) == 0)) {
			return nil, nil, hub.Errorf(hub.CodeArgumentInvalid, "updateTwin must change tags or properties.desired")
		}
		if u.Properties != nil {
			u.Properties = &hub.Properties{Desired: u.Properties.Desired} // reported is the device's
		}
		if u.ETag == "" {
			u.ETag = "*"
		}
		j.CloudToDeviceMethod = nil
	default:
		return nil, nil, hub.Errorf(hub.CodeGenericBadRequest, "BadRequest: job type %q is not supported; use scheduleDeviceMethod or scheduleUpdateTwin", j.Type)
	}
	if j.MaxExecutionTimeInSeconds == 0 {
		j.MaxExecutionTimeInSeconds = hub.DefaultMaxExecutionTime
	}
	if j.MaxExecutionTimeInSeconds < 0 {
		return nil, nil, hub.Errorf(hub.CodeArgumentInvalid, "maxExecutionTimeInSeconds must be positive")
	}
	now := e.clock.Now().UTC()
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
		}
		e.mu.Unlock()
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

// CancelJob implements hub.Client. In-flight device operations are
// cancelled at once, so it waits for the job to unwind and answers with
// its final state: "cancelled", with every device's final status already
// recorded.
func (e *Engine) CancelJob(ctx context.Context, id string) (*hub.Job, error) {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r == nil {
		return e.GetJob(ctx, id) // finished: cancelling is a no-op, as in Azure
	}
	r.cancel(errCancelled)
	select {
	case <-r.done:
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
	if len(out) > size {
		return out[:size], encodeToken(token{After: out[size-1].JobID, Left: -1}), nil
	}
	return out, "", nil
}

// update applies fn to a run's job snapshot, wakes its watchers and queues
// the snapshot for the store.
func (e *Engine) update(r *run, fn func(*hub.Job)) *hub.Job {
	e.mu.Lock()
	j := cloneJob(r.job)
	fn(j)
	r.job = j
	close(r.changed)
	r.changed = make(chan struct{})
	e.mu.Unlock()
	return j
}

// start registers a job and runs it in its own goroutine.
func (e *Engine) start(j *hub.Job, cond query.Expr) {
	ctx, cancel := context.WithCancelCause(e.ctx)
	r := &run{job: j, cancel: cancel, changed: make(chan struct{}), done: make(chan struct{})}
	e.mu.Lock()
	e.runs[j.JobID] = r
	e.mu.Unlock()
	go func() {
		defer close(r.done)
		defer cancel(nil)
		e.execute(ctx, r, cond)
	}()
}

// execute waits for the start time, resolves the devices, fans the
// operation out through a bounded window and records exactly one final
// status per device.
func (e *Engine) execute(ctx context.Context, r *run, cond query.Expr) {
	e.mu.Lock()
	j := cloneJob(r.job) // the operation itself never changes
	e.mu.Unlock()
	if wait := j.StartTime.Sub(e.clock.Now()); wait > 0 {
		// Armed before "scheduled" is published, so whoever sees that
		// status and moves a virtual clock on cannot outrun the timer.
		t := e.clock.NewTimer(wait)
		e.update(r, func(j *hub.Job) { j.Status = hub.JobScheduled })
		e.persist(r)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			e.finish(ctx, r, nil)
			return
		}
	}
	deadline := j.StartTime.Add(time.Duration(j.MaxExecutionTimeInSeconds) * time.Second)
	jctx, cancel := e.clock.WithDeadline(ctx, deadline)
	defer cancel()

	ids, err := e.resolve(jctx, cond)
	if err != nil {
		e.update(r, func(j *hub.Job) {
			j.Status, j.FailureReason = hub.JobFailed, "resolving the query condition: "+hub.ErrorMessage(err)
		})
		e.finish(ctx, r, nil)
		return
	}
	now := &hub.Time{Time: e.clock.Now().UTC()}
	djs := make(map[string]*hub.DeviceJob, len(ids))
	pending := make([]*hub.DeviceJob, 0, len(ids))
	for _, id := range ids {
		dj := &hub.DeviceJob{DeviceID: id, JobID: j.JobID, JobType: j.Type, Status: hub.DeviceJobPending,
			CreatedDateTimeUtc: now, LastUpdatedDateTimeUtc: now}
		djs[id] = dj
		pending = append(pending, dj)
	}
	e.update(r, func(j *hub.Job) {
		if j.Status != hub.JobCancelled {
			j.Status = hub.JobRunning
		}
		j.DeviceJobStatistics = &hub.DeviceJobStatistics{DeviceCount: len(ids), PendingCount: len(ids)}
	})
	e.write(&write{djs: pending, job: r})

	// Cancellation is read from the run's own context: jctx comes from the
	// clock, whose contexts need not carry the parent's cause.
	cancelled := func() bool { return errors.Is(context.Cause(ctx), errCancelled) }
	sem := make(chan struct{}, e.Window)
	results := make(chan *hub.DeviceJob, e.Window)
	started := 0
	go func() {
		defer close(results)
		done := make(chan struct{})
		inflight := 0
		for _, id := range ids {
			select {
			case sem <- struct{}{}:
			case <-jctx.Done():
			}
			if jctx.Err() != nil {
				break
			}
			inflight++
			started++
			dj := djs[id]
			e.update(r, func(j *hub.Job) {
				j.DeviceJobStatistics.PendingCount--
				j.DeviceJobStatistics.RunningCount++
			})
			go func() {
				results <- e.runDevice(jctx, j, dj, cancelled)
				<-sem
				done <- struct{}{}
			}()
		}
		for ; inflight > 0; inflight-- {
			<-done
		}
	}()
	for dj := range results {
		if e.ctx.Err() != nil {
			continue // the engine is closing: the job resumes on the next Open
		}
		e.record(r, dj, hub.DeviceJobRunning)
	}
	if e.ctx.Err() != nil {
		return
	}
	// Devices never started end with one final status too.
	for _, id := range ids[started:] {
		dj := djs[id]
		e.stopDevice(dj, cancelled())
		e.record(r, dj, hub.DeviceJobPending)
	}
	e.finish(ctx, r, jctx)
}

// stopDevice gives a device job that could not run its final status.
func (e *Engine) stopDevice(dj *hub.DeviceJob, cancelled bool) {
	now := &hub.Time{Time: e.clock.Now().UTC()}
	dj.EndTimeUtc, dj.LastUpdatedDateTimeUtc = now, now
	if cancelled {
		dj.Status = hub.DeviceJobCanceled
		return
	}
	dj.Status = hub.DeviceJobFailed
	dj.Error = &hub.DeviceJobError{Code: "JobMaxExecutionTimeExceeded",
		Description: "The job's maxExecutionTimeInSeconds passed before this device was reached."}
}

// record counts a device's final status (it was in state from before).
func (e *Engine) record(r *run, dj *hub.DeviceJob, from hub.DeviceJobStatus) {
	if e.Metrics != nil {
		e.Metrics.DeviceOperation(dj.JobType, dj.Status)
	}
	e.update(r, func(j *hub.Job) {
		s := j.DeviceJobStatistics
		if from == hub.DeviceJobRunning {
			s.RunningCount--
		} else {
			s.PendingCount--
		}
		switch dj.Status {
		case hub.DeviceJobCompleted:
			s.SucceededCount++
		case hub.DeviceJobFailed, hub.DeviceJobCanceled:
			s.FailedCount++
		}
	})
	e.write(&write{djs: []*hub.DeviceJob{dj}, job: r})
}

// runDevice performs the job's operation on one device.
func (e *Engine) runDevice(ctx context.Context, j *hub.Job, dj *hub.DeviceJob, cancelled func() bool) *hub.DeviceJob {
	start := &hub.Time{Time: e.clock.Now().UTC()}
	dj.StartTimeUtc = start
	var err error
	switch j.Type {
	case hub.JobDeviceMethod:
		var resp *hub.MethodResponse
		resp, err = e.jobInvoke(ctx, dj.DeviceID, j.CloudToDeviceMethod)
		if err == nil {
			dj.Outcome = &hub.DeviceJobOutcome{DeviceMethodResponse: resp}
		}
	case hub.JobUpdateTwin:
		_, err = e.UpdateTwin(ctx, dj.DeviceID, j.UpdateTwin, j.UpdateTwin.ETag)
		if err == nil {
			dj.Outcome = &hub.DeviceJobOutcome{}
		}
	}
	end := &hub.Time{Time: e.clock.Now().UTC()}
	dj.EndTimeUtc, dj.LastUpdatedDateTimeUtc = end, end
	switch {
	case err == nil:
		dj.Status = hub.DeviceJobCompleted
	case ctx.Err() != nil:
		// The job stopped (cancel or maxExecutionTime) while this device
		// was in progress; whatever failed, that is why.
		e.stopDevice(dj, cancelled())
		dj.EndTimeUtc, dj.LastUpdatedDateTimeUtc = end, end
	default:
		dj.Status = hub.DeviceJobFailed
		dj.Error = &hub.DeviceJobError{Code: hub.ErrorCode(err), Description: hub.ErrorMessage(err)}
		if j.Type == hub.JobDeviceMethod {
			dj.Outcome = &hub.DeviceJobOutcome{}
		}
	}
	return dj
}

func (e *Engine) jobInvoke(ctx context.Context, id string, m *hub.MethodRequest) (*hub.MethodResponse, error) {
	d, err := e.store.GetDevice(ctx, id)
	if err != nil {
		return nil, storeErr(err, hub.CodeDeviceNotFound, "device", id)
	}
	if d.Status == hub.StatusDisabled {
		return nil, notOnline(0)
	}
	return e.invoke(ctx, id, m)
}

// resolve returns the ids of the devices matching a job's condition, as
// the store answers SELECT deviceId FROM devices WHERE condition.
func (e *Engine) resolve(ctx context.Context, cond query.Expr) ([]string, error) {
	q := &query.Query{Top: -1, From: query.Devices, Where: cond,
		Select: []query.Projection{{Path: query.Path{Segments: []string{"deviceId"}}}}}
	var ids []string
	after := ""
	for {
		page, err := e.store.QueryDevices(ctx, q, after, scanBatch)
		if err != nil {
			return nil, err
		}
		for _, item := range page.Items {
			var row struct {
				DeviceID string `json:"deviceId"`
			}
			if err := json.Unmarshal(item, &row); err != nil {
				return nil, err
			}
			ids = append(ids, row.DeviceID)
		}
		if page.After == "" {
			return ids, nil
		}
		after = page.After
	}
}

// finish decides the job's final status, makes sure every result is
// stored, and only then publishes the terminal status, so a client that
// sees it can read every device's result.
func (e *Engine) finish(ctx context.Context, r *run, jctx context.Context) {
	e.mu.Lock()
	j := cloneJob(r.job)
	e.mu.Unlock()
	switch {
	case j.Status == hub.JobCancelled || errors.Is(context.Cause(ctx), errCancelled):
		j.Status = hub.JobCancelled
	case ctx.Err() != nil:
		return // the engine is closing: the job resumes on the next Open
	case j.Status == hub.JobFailed:
	case jctx != nil && jctx.Err() != nil && j.DeviceJobStatistics.FailedCount > 0:
		j.Status = hub.JobFailed
		j.FailureReason = "maxExecutionTimeInSeconds elapsed before every device was done"
	default:
		j.Status = hub.JobCompleted
	}
	j.EndTime = &hub.Time{Time: e.clock.Now().UTC()}
	done := make(chan error, 1)
	e.write(&write{final: j, done: done})
	if err := <-done; err != nil {
		e.Logger.Error("store final job state", "job", j.JobID, "err", err)
	}
	e.mu.Lock()
	r.job = j
	close(r.changed)
	r.changed = make(chan struct{})
	delete(e.runs, j.JobID)
	e.mu.Unlock()
}

// persist queues the run's current snapshot for the store.
func (e *Engine) persist(r *run) { e.write(&write{job: r}) }

// resume restarts jobs that a previous run left unfinished: jobs that had
// not started run from the beginning; started ones re-run the devices
// without a final status.
func (e *Engine) resume(ctx context.Context) error {
	jobs, err := e.store.ListJobs(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Status.Terminal() {
			continue
		}
		cond, err := query.ParseCondition(j.QueryCondition)
		if err != nil {
			j.Status, j.FailureReason = hub.JobFailed, "invalid queryCondition: "+err.Error()
			if err := e.store.PutJob(ctx, j); err != nil {
				return err
			}
			continue
		}
		// TODO(issue 4): resume started jobs from their device records
		// instead of starting over; today a restart re-runs the job.
		j.Status = hub.JobQueued
		j.DeviceJobStatistics = &hub.DeviceJobStatistics{}
		e.start(j, cond)
	}
	return nil
}

// write is one unit for the store writer: device-job records, the current
// snapshot of a run, or a final job state with a channel to report when
// it and everything queued before it are stored.
type write struct {
	djs   []*hub.DeviceJob
	job   *run
	final *hub.Job
	done  chan error
}

func (e *Engine) write(w *write) {
	// Snapshot the device records now: the executor keeps using them.
	for i, dj := range w.djs {
		c := *dj
		w.djs[i] = &c
	}
	e.writes <- w
}

// writer stores results in groups: whatever has queued up while the
// previous transaction ran goes into the next one, so a burst of results
// costs a few transactions instead of one each.
func (e *Engine) writer() {
	defer e.wg.Done()
	ctx := context.Background()
	for w := range e.writes {
		batch := []*write{w}
	drain:
		for len(batch) < 1024 {
			select {
			case w, ok := <-e.writes:
				if !ok {
					break drain
				}
				batch = append(batch, w)
			default:
				break drain
			}
		}
		var djs []*hub.DeviceJob
		jobs := map[string]*hub.Job{}
		for _, w := range batch {
			djs = append(djs, w.djs...)
			if w.job != nil {
				e.mu.Lock()
				jobs[w.job.job.JobID] = cloneJob(w.job.job)
				e.mu.Unlock()
			}
			if w.final != nil {
				jobs[w.final.JobID] = w.final
			}
		}
		var err error
		if len(djs) > 0 {
			err = e.store.PutDeviceJobs(ctx, djs)
		}
		for _, j := range jobs {
			if perr := e.store.PutJob(ctx, j); perr != nil && err == nil {
				err = perr
			}
		}
		if err != nil {
			e.Logger.Error("store job results", "err", err)
		}
		for _, w := range batch {
			if w.done != nil {
				w.done <- err
			}
		}
	}
}
