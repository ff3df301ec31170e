package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

// This file runs jobs, durably. What is stored when:
//
//   - the device set and the job's "running" status: one write, before any
//     device is touched;
//   - before a method request is sent: the job's StartedThrough, the
//     greatest device id that may have started (devices start in id
//     order; one write covers every device handed out by then, see
//     startMarks);
//   - a twin update and its device's "completed" record: one write;
//   - a method's result: after the device answered.
//
// A hub killed at any moment resumes each unfinished job from its device
// records (resume): devices still "pending" run; a twin device still
// pending was not patched (the patch and its record are one write) and
// runs again, so no patch is applied twice; a method device up to
// StartedThrough without a result (or still "running", as older hubs
// stored it) may or may not have been called. Methods run at most once:
// the hub does not call it again and records it failed with
// CodeMethodOutcomeUnknown, which says exactly that.

// CodeMethodOutcomeUnknown is the device error of a method call that was
// in flight when the hub stopped.
const CodeMethodOutcomeUnknown = "DeviceMethodOutcomeUnknown"

// run is a job that has not finished: its current snapshot, how to stop
// it, and a channel closed on every change so watchers wake without
// polling.
type run struct {
	id  string   // the job's id, which never changes
	job *hub.Job // guarded by Engine.mu; readers take copies
	// life ends when the engine closes or, among replicas, when the job's
	// lease is lost: the run is then abandoned where it stands (it
	// resumes on the next Open, or on the replica that takes it over),
	// and stores nothing more.
	life    context.Context
	endLife context.CancelCauseFunc
	// lease is the job's lease when replicas share the store (else the
	// zero Lease); guarded by Engine.mu.
	lease   store.Lease
	cancel  context.CancelCauseFunc
	changed chan struct{} // closed on a change once someone waits on it
	watched bool          // someone took changed since it was made
	stopped chan struct{} // closed when no device will start any more
	done    chan struct{} // closed when the job's goroutine returned
}

// start registers a job and runs it in its own goroutine, under lease l
// among replicas. recs are the stored device records when resumed is
// true. It returns false, and does nothing, when the job runs here
// already.
func (e *Engine) start(j *hub.Job, cond query.Expr, recs []*hub.DeviceJob, resumed bool, l store.Lease) bool {
	life, endLife := context.WithCancelCause(e.ctx)
	ctx, cancel := context.WithCancelCause(life)
	r := &run{id: j.JobID, job: cloneJob(j), life: life, endLife: endLife, lease: l, cancel: cancel,
		changed: make(chan struct{}), stopped: make(chan struct{}), done: make(chan struct{})}
	if j.Status == hub.JobCancelled || l.Cancel {
		r.job.Status = hub.JobCancelled
		cancel(errCancelled) // cancelled before the hub stopped, or through another replica
	}
	e.mu.Lock()
	if e.runs[j.JobID] != nil {
		e.mu.Unlock()
		endLife(nil)
		return false
	}
	e.runs[j.JobID] = r
	e.mu.Unlock()
	go func() {
		defer endLife(nil)
		var once sync.Once
		stop := func() { once.Do(func() { close(r.stopped) }) }
		defer close(r.done)
		defer stop()
		defer cancel(nil)
		e.execute(ctx, r, cond, recs, resumed, stop)
	}()
	return true
}

// abandoned says the run stops where it stands: the engine closes, or
// the job's lease was lost.
func (r *run) abandoned() bool { return r.life.Err() != nil }

// execute runs a job to its end: it waits for the start time, fixes the
// device set (or takes the stored one when resuming), starts the devices
// through the window at the hub's rate, and records one final status per
// device. ctx ends on cancel (cause errCancelled) and when the engine
// closes; stop is called once no device will start any more.
func (e *Engine) execute(ctx context.Context, r *run, cond query.Expr, recs []*hub.DeviceJob, resumed bool, stop func()) {
	e.mu.Lock()
	j := cloneJob(r.job) // the operation itself never changes
	e.mu.Unlock()
	if !resumed {
		if wait := j.StartTime.Sub(e.clock.Now()); wait > 0 && ctx.Err() == nil {
			// Armed before "scheduled" is published, so whoever sees that
			// status and moves a virtual clock on cannot outrun the timer.
			t := e.clock.NewTimer(wait)
			e.update(r, func(j *hub.Job) { j.Status = hub.JobScheduled })
			e.persist(r)
			select {
			case <-t.C():
			case <-ctx.Done():
				t.Stop()
			}
		}
		if ctx.Err() != nil {
			e.finish(ctx, r, nil)
			return
		}
	}
	// Device operations run until the job's deadline; a cancel does not
	// stop those in flight (only the engine closing does).
	// Bounded again here: a job stored before creation checked the range
	// must not overflow into a deadline in the past.
	deadline := j.StartTime.Add(time.Duration(min(j.MaxExecutionTimeInSeconds, hub.MaxJobExecutionTime)) * time.Second)
	opctx, cancelOps := e.clock.WithDeadline(r.life, deadline)
	defer cancelOps()

	var changed []*hub.DeviceJob // records to store with the running status
	if resumed {
		changed = e.recoverRecords(j, recs)
	} else {
		ids, err := e.resolve(opctx, cond)
		if err != nil {
			if r.abandoned() {
				return // the job resumes on the next Open, or on another replica
			}
			e.update(r, func(j *hub.Job) {
				j.Status, j.FailureReason = hub.JobFailed, "resolving the query condition: "+hub.ErrorMessage(err)
			})
			e.finish(ctx, r, nil)
			return
		}
		now := &hub.Time{Time: e.clock.Now().UTC()}
		recs = make([]*hub.DeviceJob, len(ids))
		for i, id := range ids {
			recs[i] = &hub.DeviceJob{DeviceID: id, JobID: j.JobID, JobType: j.Type, Status: hub.DeviceJobPending,
				CreatedDateTimeUtc: now, LastUpdatedDateTimeUtc: now}
		}
		changed = recs
	}
	e.update(r, func(j *hub.Job) {
		if j.Status != hub.JobCancelled {
			j.Status = hub.JobRunning
		}
		j.DeviceJobStatistics = statsOf(recs)
	})
	if err := e.commit(changed, r); err != nil {
		if r.abandoned() || errors.Is(err, store.ErrLeaseLost) {
			return
		}
		e.update(r, func(j *hub.Job) {
			j.Status, j.FailureReason = hub.JobFailed, "storing the job's devices: "+err.Error()
		})
		e.finish(ctx, r, nil)
		return
	}

	var pending []*hub.DeviceJob
	for _, dj := range recs {
		if dj.Status == hub.DeviceJobPending {
			pending = append(pending, dj)
		}
	}
	// Devices start in id order (startMarks).
	slices.SortFunc(pending, func(a, b *hub.DeviceJob) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	started, inflight, collected := e.dispatch(ctx, opctx, r, j, pending)
	rest := pending[started:]
	if r.abandoned() {
		inflight.Wait() // the job resumes on the next Open, or on another replica
		<-collected
		return
	}
	cancelled := errors.Is(context.Cause(ctx), errCancelled)
	if cancelled {
		// Devices never started end now, before the cancel is answered.
		e.end(r, rest, true)
		rest = nil
	}
	stop()
	inflight.Wait()
	<-collected
	if r.abandoned() {
		return
	}
	e.end(r, rest, cancelled) // the deadline passed before they started
	e.finish(ctx, r, opctx)
}

// dispatch starts the pending devices in order, each in a slot of the
// window and at the hub's rate, until all have started, ctx ends (cancel,
// engine closing) or opctx does (deadline). It returns how many started,
// a group to wait for those in flight, and a channel closed when their
// results are recorded.
func (e *Engine) dispatch(ctx, opctx context.Context, r *run, j *hub.Job, pending []*hub.DeviceJob) (int, *sync.WaitGroup, <-chan struct{}) {
	results := make(chan result, e.Window)
	collected := make(chan struct{})
	var inflight sync.WaitGroup
	go func() {
		defer close(collected)
		for res := range results {
			switch {
			case r.abandoned():
			case res.stored:
				e.count(r, res.dj, res.from)
			default:
				e.record(r, res.dj, res.from)
			}
		}
	}()
	marks := e.newStartMarks(r, pending)
	// A window of workers, not a goroutine per device: each worker's stack
	// grows once to the depth of a call into the broker, not once per
	// device.
	work := make(chan int)
	for range min(e.Window, len(pending)) {
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			for k := range work {
				results <- e.runDevice(opctx, r, j, pending[k], func() error { return marks.mark(k) })
			}
		}()
	}
	started := 0
feed:
	for started < len(pending) {
		if err := e.waitBus(ctx, opctx, r); err != nil {
			break
		}
		if err := e.pace.wait(ctx, opctx); err != nil {
			break
		}
		select {
		case work <- started:
			marks.hand(started)
			started++
		case <-ctx.Done():
			break feed
		case <-opctx.Done():
			break feed
		}
	}
	close(work)
	go func() {
		inflight.Wait()
		close(results)
	}()
	return started, &inflight, collected
}

// waitingForBus is a job's statusMessage while the device bus is down.
const waitingForBus = "waiting for the device broker: the hub lost its connection to it; devices start again when it is back"

// waitBus waits, when the device bus is down (an external broker the hub
// lost), until it is back: no device operation starts into an outage,
// which would only drain the pending devices into timeouts. The job says
// so in its statusMessage meanwhile. It returns ctx's or opctx's error
// when either ends first.
func (e *Engine) waitBus(ctx, opctx context.Context, r *run) error {
	bs, ok := e.bus.(hub.BusState)
	if !ok || bs.Up() {
		return nil
	}
	e.Logger.Warn("device bus down: job waits", "job", r.id)
	e.update(r, func(j *hub.Job) {
		j.StatusMessage = waitingForBus
		if s := j.DeviceJobStatistics; s != nil {
			s.WaitingForBrokerCount = s.PendingCount
		}
	})
	defer e.update(r, func(j *hub.Job) {
		if j.StatusMessage == waitingForBus {
			j.StatusMessage = ""
		}
		if s := j.DeviceJobStatistics; s != nil {
			s.WaitingForBrokerCount = 0
		}
	})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(opctx, cancel)
	defer stop()
	if err := bs.WaitUp(wctx); err != nil {
		return err
	}
	return nil
}

// recoverRecords prepares stored records for a resumed job: a method
// device that may have started (up to StartedThrough, or left "running")
// ends failed with CodeMethodOutcomeUnknown (methods run at most once), a
// twin device left "running" was not patched and is pending again. It
// returns the records it changed.
func (e *Engine) recoverRecords(j *hub.Job, recs []*hub.DeviceJob) []*hub.DeviceJob {
	now := &hub.Time{Time: e.clock.Now().UTC()}
	var changed []*hub.DeviceJob
	for _, dj := range recs {
		unfinished := dj.Status == hub.DeviceJobRunning || dj.Status == hub.DeviceJobScheduled
		started := dj.Status == hub.DeviceJobRunning || (dj.Status == hub.DeviceJobPending && dj.DeviceID <= j.StartedThrough)
		switch {
		case j.Type == hub.JobDeviceMethod && started:
			dj.Status = hub.DeviceJobFailed
			dj.EndTimeUtc, dj.LastUpdatedDateTimeUtc = now, now
			dj.Outcome = &hub.DeviceJobOutcome{}
			dj.Error = &hub.DeviceJobError{Code: CodeMethodOutcomeUnknown,
				Description: "The hub stopped while this method call was in flight: the device may or may not have run it. Methods run at most once, so it was not called again."}
		case unfinished:
			dj.Status, dj.StartTimeUtc, dj.LastUpdatedDateTimeUtc = hub.DeviceJobPending, nil, now
		default:
			continue
		}
		changed = append(changed, dj)
	}
	return changed
}

// statsOf counts records by status.
func statsOf(recs []*hub.DeviceJob) *hub.DeviceJobStatistics {
	s := &hub.DeviceJobStatistics{DeviceCount: len(recs)}
	for _, dj := range recs {
		switch dj.Status {
		case hub.DeviceJobPending, hub.DeviceJobScheduled:
			s.PendingCount++
		case hub.DeviceJobRunning:
			s.RunningCount++
		case hub.DeviceJobCompleted:
			s.SucceededCount++
		default:
			s.FailedCount++
		}
	}
	return s
}

// end gives devices that never started their final status (canceled, or
// failed because the deadline passed) and stores them before returning.
func (e *Engine) end(r *run, djs []*hub.DeviceJob, cancelled bool) {
	if len(djs) == 0 {
		return
	}
	for _, dj := range djs {
		e.stopDevice(dj, cancelled)
		e.count(r, dj, hub.DeviceJobPending)
	}
	if err := e.commit(djs, r); err != nil && !r.abandoned() {
		e.Logger.Error("store final device statuses", "job", r.job.JobID, "err", err)
	}
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
		Description: "The job's maxExecutionTimeInSeconds passed before this device was done."}
}

// record counts a device's final status and queues it for the store. dj
// is the store's from now on: nobody changes a final record.
func (e *Engine) record(r *run, dj *hub.DeviceJob, from hub.DeviceJobStatus) {
	e.count(r, dj, from)
	e.queue(&writeReq{djs: []*hub.DeviceJob{dj}, job: r})
}

// count moves a device from status from to its final status in the job's
// statistics.
func (e *Engine) count(r *run, dj *hub.DeviceJob, from hub.DeviceJobStatus) {
	if e.Metrics != nil {
		e.Metrics.DeviceOperation(dj.JobType, dj.Status)
	}
	e.update(r, func(j *hub.Job) {
		s := j.DeviceJobStatistics
		if from == hub.DeviceJobRunning {
			s.RunningCount--
		} else {
			s.PendingCount--
			s.WaitingForBrokerCount = min(s.WaitingForBrokerCount, s.PendingCount)
		}
		switch dj.Status {
		case hub.DeviceJobCompleted:
			s.SucceededCount++
		case hub.DeviceJobFailed, hub.DeviceJobCanceled:
			s.FailedCount++
		}
	})
}

// result is a device's final record and the status it had before it
// (pending when the operation never started); stored says the record is
// already in the store (a twin job writes it with the twin).
type result struct {
	dj     *hub.DeviceJob
	from   hub.DeviceJobStatus
	stored bool
}

// runDevice performs the job's operation on one device. ctx ends at the
// job's deadline. Just before a method request is sent, durable makes it
// known in the store that the device may have started (startMarks).
func (e *Engine) runDevice(ctx context.Context, r *run, j *hub.Job, dj *hub.DeviceJob, durable func() error) result {
	dj = cloneRecord(dj)
	from := hub.DeviceJobPending
	// A device handed over just before the bus went down waits with the
	// others (a deadline that passes meanwhile ends it below).
	if bs, ok := e.bus.(hub.BusState); ok && !bs.Up() {
		_ = bs.WaitUp(ctx)
	}
	// start marks the device running (in the job's statistics).
	start := func() {
		now := &hub.Time{Time: e.clock.Now().UTC()}
		dj.Status, dj.StartTimeUtc, dj.LastUpdatedDateTimeUtc = hub.DeviceJobRunning, now, now
		from = hub.DeviceJobRunning
		e.update(r, func(j *hub.Job) {
			j.DeviceJobStatistics.PendingCount--
			j.DeviceJobStatistics.RunningCount++
		})
	}
	var err error
	switch j.Type {
	case hub.JobDeviceMethod:
		marked := false // mark runs again before each try (invoke)
		mark := func() error {
			// A worker that saw the device online just before the bus
			// went down waits for the bus (invoke tries again) instead of
			// starting the device: nothing starts while the bus is down.
			if bs, ok := e.bus.(hub.BusState); ok && !bs.Up() {
				return hub.ErrNotSent
			}
			if !marked {
				start()
				if err := durable(); err != nil {
					return hub.Errorf(hub.CodeServerError, "store that the device is running: %v", err)
				}
				marked = true
			}
			if !e.leaseHeld(r) {
				e.abandon(r)
				return errLeaseLost
			}
			return nil
		}
		var resp *hub.MethodResponse
		resp, err = e.jobInvoke(ctx, dj.DeviceID, j.CloudToDeviceMethod, mark)
		if err == nil {
			dj.Outcome = &hub.DeviceJobOutcome{DeviceMethodResponse: resp}
		}
	case hub.JobUpdateTwin:
		// No durable mark first: the patch and the record that says it
		// was applied are one write, so a crash before it leaves the
		// device pending (and the patch unapplied), to be done once on
		// resume.
		start()
		// The record that says "done" is written with the twin.
		done := cloneRecord(dj)
		end := &hub.Time{Time: e.clock.Now().UTC()}
		done.Status, done.EndTimeUtc, done.LastUpdatedDateTimeUtc = hub.DeviceJobCompleted, end, end
		done.Outcome = &hub.DeviceJobOutcome{}
		e.mu.Lock()
		l := r.lease
		e.mu.Unlock()
		if err = e.jobTwin(ctx, dj.DeviceID, j.UpdateTwin, j.UpdateTwin.ETag, done, l); err == nil {
			return result{done, from, true}
		}
	}
	end := &hub.Time{Time: e.clock.Now().UTC()}
	dj.EndTimeUtc, dj.LastUpdatedDateTimeUtc = end, end
	switch {
	case err == nil:
		dj.Status = hub.DeviceJobCompleted
	case ctx.Err() != nil:
		// The deadline passed while this device was in progress.
		e.stopDevice(dj, false)
		dj.EndTimeUtc, dj.LastUpdatedDateTimeUtc = end, end
	default:
		dj.Status = hub.DeviceJobFailed
		dj.Error = &hub.DeviceJobError{Code: hub.ErrorCode(err), Description: hub.ErrorMessage(err)}
		if j.Type == hub.JobDeviceMethod {
			dj.Outcome = &hub.DeviceJobOutcome{}
		}
	}
	return result{dj: dj, from: from}
}

func cloneRecord(dj *hub.DeviceJob) *hub.DeviceJob {
	c := *dj
	return &c
}

// jobInvoke calls a job's method on a device. The registry is read only
// when the device is not online, to tell a device deleted since the job
// started (DeviceNotFound) from one offline or disabled (DeviceNotOnline:
// the broker refuses disabled devices): a read per device would cost the
// store as much as the job's own writes.
func (e *Engine) jobInvoke(ctx context.Context, id string, m *hub.MethodRequest, sending func() error) (*hub.MethodResponse, error) {
	resp, err := e.invoke(ctx, id, m, sending)
	if hub.ErrorCode(err) == hub.CodeDeviceNotOnline {
		if _, gerr := e.store.GetDevice(ctx, id); errors.Is(gerr, store.ErrNotFound) {
			return nil, storeErr(gerr, hub.CodeDeviceNotFound, "device", id)
		}
	}
	return resp, err
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
// stored, and only then publishes the terminal status and endTime, so a
// client that sees them can read every device's result.
func (e *Engine) finish(ctx context.Context, r *run, opctx context.Context) {
	e.mu.Lock()
	j := cloneJob(r.job)
	e.mu.Unlock()
	switch {
	case r.abandoned():
		return // the job resumes on the next Open, or on another replica
	case j.Status == hub.JobCancelled || errors.Is(context.Cause(ctx), errCancelled):
		j.Status = hub.JobCancelled
	case j.Status == hub.JobFailed:
	case opctx != nil && opctx.Err() != nil && j.DeviceJobStatistics.FailedCount > 0:
		j.Status = hub.JobFailed
		j.FailureReason = "maxExecutionTimeInSeconds elapsed before every device was done"
	default:
		j.Status = hub.JobCompleted
	}
	j.EndTime = &hub.Time{Time: e.clock.Now().UTC()}
	done := make(chan error, 1)
	e.mu.Lock()
	l := r.lease
	e.mu.Unlock()
	e.enqueue(&writeReq{final: j, lease: l, done: done})
	if err := <-done; err != nil {
		e.Logger.Error("store final job state", "job", j.JobID, "err", err)
	}
	e.mu.Lock()
	r.job = j
	e.notify(r)
	delete(e.runs, j.JobID)
	e.mu.Unlock()
	e.release(l)
}

// update applies fn to a run's job and wakes its watchers. It changes the
// job in place (a job gets two updates per device) under Engine.mu, under
// which every reader copies it.
func (e *Engine) update(r *run, fn func(*hub.Job)) {
	e.mu.Lock()
	fn(r.job)
	e.notify(r)
	e.mu.Unlock()
}

// notify wakes whoever waits on r.changed; a new channel is made only
// when someone took the old one. Engine.mu is held.
func (e *Engine) notify(r *run) {
	if r.watched {
		close(r.changed)
		r.changed = make(chan struct{})
		r.watched = false
	}
}

// persist queues the run's current snapshot for the store.
func (e *Engine) persist(r *run) { e.enqueue(&writeReq{job: r}) }

// commit stores records and the run's current snapshot, after everything
// queued before, and waits until they are stored.
func (e *Engine) commit(djs []*hub.DeviceJob, r *run) error {
	done := make(chan error, 1)
	e.enqueue(&writeReq{djs: djs, job: r, done: done})
	return <-done
}

// resume restarts the jobs a previous run left unfinished, from their
// stored device records (see the top of this file). Among replicas, the
// claimer adopts them instead, under leases (cluster.go).
func (e *Engine) resume(ctx context.Context) error {
	if e.leaser != nil {
		return nil
	}
	jobs, err := e.store.ListJobs(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if unfinished(j) {
			if err := e.adopt(ctx, j, store.Lease{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// unfinished says a stored job still has to be run (or finished).
func unfinished(j *hub.Job) bool { return !j.Status.Terminal() || j.EndTime == nil }

// adopt runs a stored, unfinished job here from its stored records, under
// lease l among replicas.
func (e *Engine) adopt(ctx context.Context, j *hub.Job, l store.Lease) error {
	if l.JobID != "" {
		ctx = store.WithLease(ctx, l)
	}
	cond, err := query.ParseCondition(j.QueryCondition)
	if err != nil {
		j.Status, j.FailureReason = hub.JobFailed, "invalid queryCondition: "+err.Error()
		j.EndTime = &hub.Time{Time: e.clock.Now().UTC()}
		if err := e.store.PutJob(ctx, j); err != nil {
			return err
		}
		e.release(l)
		return nil
	}
	var recs []*hub.DeviceJob
	after := [2]string{}
	for {
		batch, err := e.store.ScanDeviceJobs(ctx, j.JobID, after, scanBatch)
		if err != nil {
			return fmt.Errorf("resume job %s: %w", j.JobID, err)
		}
		recs = append(recs, batch...)
		if len(batch) < scanBatch {
			break
		}
		last := batch[len(batch)-1]
		after = [2]string{last.JobID, last.DeviceID}
	}
	// The device set and "running" are stored together: a job that
	// never reached "running" has no records and starts afresh.
	resumed := j.Status == hub.JobRunning || j.Status.Terminal() || len(recs) > 0
	if !resumed {
		j.Status = hub.JobQueued
	}
	if j.DeviceJobStatistics == nil {
		j.DeviceJobStatistics = &hub.DeviceJobStatistics{}
	}
	e.start(j, cond, recs, resumed, l)
	return nil
}
