package engine

import (
	"context"
	"errors"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/store"
)

// The store writer: the engine's one path to the store for job results.
// Its pipeline, one verb a step: enqueue (snapshot the records) → queue →
// collect a group (whatever has queued up meanwhile) → storeGroup (one
// transaction; among replicas split by job when a lease was lost) →
// answer those who wait.

// writeReq is one unit for the store writer: device-job records, the
// current snapshot of a run, or a final job state, with an optional
// channel to report when it and everything queued before it are stored.
type writeReq struct {
	djs   []*hub.DeviceJob
	job   *run
	final *hub.Job
	lease store.Lease // final's, among replicas
	done  chan error
}

// enqueue queues w for the writer, with a snapshot of its records: the
// executor keeps using them.
func (e *Engine) enqueue(w *writeReq) {
	djs := make([]*hub.DeviceJob, len(w.djs))
	for i, dj := range w.djs {
		djs[i] = cloneRecord(dj)
	}
	w.djs = djs
	e.queue(w)
}

// errEngineClosed answers a write that came after Close.
var errEngineClosed = errors.New("the engine is closed")

// queue hands w to the writer, or answers it errEngineClosed after
// Close.
func (e *Engine) queue(w *writeReq) {
	e.writesMu.RLock()
	defer e.writesMu.RUnlock()
	if e.writesClosed {
		if w.done != nil {
			w.done <- errEngineClosed
		}
		return
	}
	e.writes <- w
}

// runWriter stores results in groups: whatever has queued up while the
// previous transaction ran goes into the next one, so a burst of results
// costs a few transactions instead of one each. Each group is one
// transaction: records and job snapshots together.
func (e *Engine) runWriter() {
	defer e.wg.Done()
	linger := e.clock.NewTimer(time.Hour)
	linger.Stop()
	for w := range e.writes {
		group := e.collect(w, linger)
		errs := e.storeGroup(group)
		for i, w := range group {
			if w.done != nil {
				w.done <- errs[i]
			}
		}
	}
}

// collect is first and what has queued up behind it (at most 1,024):
// when nobody waits on any of them (a job's results), it lingers a little
// for more (see WriteLinger).
func (e *Engine) collect(first *writeReq, linger clock.Timer) []*writeReq {
	group := []*writeReq{first}
	waited := first.done != nil
	lingering := false
drain:
	for len(group) < 1024 {
		var w *writeReq
		var ok bool
		select {
		case w, ok = <-e.writes:
		default:
			if waited || e.WriteLinger <= 0 {
				break drain
			}
			if !lingering {
				lingering = true
				linger.Reset(e.WriteLinger)
			}
			select {
			case w, ok = <-e.writes:
			case <-linger.C():
				lingering = false
				break drain
			}
		}
		if !ok {
			break drain
		}
		group = append(group, w)
		waited = waited || w.done != nil
	}
	if lingering && !linger.Stop() {
		select {
		case <-linger.C():
		default:
		}
	}
	return group
}

// storeGroup stores a writer's group in one transaction, and returns each
// request's error. Among replicas, the transaction carries the lease of
// every job in it; when one was lost, the jobs are stored one by one, so
// that only the lost job's writes fail.
func (e *Engine) storeGroup(batch []*writeReq) []error {
	errs := make([]error, len(batch))
	err := e.putGroup(batch)
	if errors.Is(err, store.ErrLeaseLost) {
		byJob := map[string][]int{}
		var order []string
		for i, w := range batch {
			id := w.jobID()
			if _, ok := byJob[id]; !ok {
				order = append(order, id)
			}
			byJob[id] = append(byJob[id], i)
		}
		if len(order) > 1 {
			for _, id := range order {
				var part []*writeReq
				for _, i := range byJob[id] {
					part = append(part, batch[i])
				}
				perr := e.putGroup(part)
				for _, i := range byJob[id] {
					errs[i] = perr
				}
				if errors.Is(perr, store.ErrLeaseLost) {
					e.abandonJob(id)
				}
			}
			return errs
		}
		e.abandonJob(order[0])
	}
	if err != nil {
		e.Logger.Error("store job results", "err", err)
	}
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// jobID is the job a request is for.
func (w *writeReq) jobID() string {
	switch {
	case w.final != nil:
		return w.final.JobID
	case w.job != nil:
		return w.job.id
	case len(w.djs) > 0:
		return w.djs[0].JobID
	}
	return ""
}

// putGroup stores requests in one transaction: every record, and each
// job once, its final state or else its run's snapshot, taken now.
func (e *Engine) putGroup(batch []*writeReq) error {
	var djs []*hub.DeviceJob
	type latest struct {
		r     *run
		final *hub.Job
	}
	jobs := map[string]latest{}
	var order []string
	var leases []store.Lease
	var ends []*hub.AuditEntry
	for _, w := range batch {
		djs = append(djs, w.djs...)
		var l latest
		var id string
		switch {
		case w.final != nil:
			l, id = latest{final: w.final}, w.final.JobID
			if ent := e.endEntry(w.final); ent != nil {
				ends = append(ends, ent)
			}
			if w.lease.JobID != "" {
				leases = append(leases, w.lease)
			}
		case w.job != nil:
			l, id = latest{r: w.job}, w.job.id
		default:
			continue
		}
		if _, ok := jobs[id]; !ok {
			order = append(order, id)
		}
		jobs[id] = l
	}
	list := make([]*hub.Job, 0, len(order))
	for _, id := range order {
		l := jobs[id]
		e.mu.Lock()
		if l.final == nil {
			l.final = cloneJob(l.r.job)
		}
		if l.r != nil && l.r.lease.JobID != "" {
			leases = append(leases, l.r.lease)
		}
		e.mu.Unlock()
		list = append(list, l.final)
	}
	ctx := context.Background()
	if len(leases) > 0 {
		ctx = store.WithLease(ctx, leases...)
	}
	// The results' entries and then the ends', stored with them.
	ctx = store.WithAudit(ctx, append(e.resultEntries(djs), ends...)...)
	return e.store.PutDeviceJobs(ctx, djs, list...)
}
