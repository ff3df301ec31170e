package engine

import (
	"context"
	"errors"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// Replicas: several engines (hub processes) on one shared store, which
// implements store.Leaser. Each job runs on the replica that holds its
// lease; the claimer of every replica, once a tick:
//
//   - reports the replica alive (Heartbeat) and shares the hub's rate
//     (OpsPerSecond) equally among the live replicas;
//   - renews the lease of every job it runs; a renewal that fails with
//     ErrLeaseLost, or none succeeding for a whole LeaseTTL, abandons the
//     run where it stands (the store refuses its writes from then on
//     anyway: every write carries the lease, see store.WithLease);
//   - cancels the jobs whose lease says a cancel was asked for through
//     another replica;
//   - claims every unfinished job nobody holds (never started, or its
//     replica's lease expired) and resumes it from its stored records,
//     with the same guarantees as a restart: no twin patched twice, no
//     method called twice (devices that may have been called end
//     DeviceMethodOutcomeUnknown).

// DefaultLeaseTTL is a job lease's lifetime unrenewed: a job whose
// replica died resumes elsewhere within about this long.
const DefaultLeaseTTL = 15 * time.Second

// errLeaseLost ends a run whose lease another replica holds now.
var errLeaseLost = errors.New("the job's lease was lost to another replica")

// tick is the claimer's period: a third of the lease, at most a second
// (a cancel through another replica takes effect within it).
func (e *Engine) tick() time.Duration { return min(time.Second, e.LeaseTTL/3) }

// claimer runs claimRound every tick until the engine closes.
func (e *Engine) claimer() {
	defer e.wg.Done()
	t := e.clock.NewTimer(e.tick())
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C():
			e.claimRound(e.ctx)
			t.Reset(e.tick())
		}
	}
}

// claim claims or renews job id's lease for this replica. The store
// judges expiry by its own clock; the replica judges by its own, so the
// returned lease's Expires is the local time it surely ends by: the
// lease was granted no earlier than the request went out.
func (e *Engine) claim(ctx context.Context, id string) (store.Lease, error) {
	asked := e.clock.Now()
	l, err := e.leaser.ClaimJob(ctx, id, e.Replica, e.LeaseTTL)
	if err == nil {
		l.Expires = asked.Add(e.LeaseTTL)
	}
	return l, err
}

// leaseHeld says run r may still act for its job: it runs alone, or its
// lease has not run out by this replica's clock. A method request goes
// out only while it holds: a replica cut off from the store keeps going
// until it notices, and the store's fencing refuses its writes, but the
// request itself is no write.
func (e *Engine) leaseHeld(r *run) bool {
	e.mu.Lock()
	l := r.lease
	e.mu.Unlock()
	return l.JobID == "" || e.clock.Now().Before(l.Expires)
}

// bounded is ctx for one call of the claimer to the store: a call that
// hangs (the server or the link lost) must not keep the claimer from
// seeing this replica's leases run out.
func (e *Engine) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return e.clock.WithTimeout(ctx, max(e.LeaseTTL/3, time.Second))
}

// claimRound is one tick of the claimer.
func (e *Engine) claimRound(ctx context.Context) {
	hctx, cancel := e.bounded(ctx)
	if live, err := e.leaser.Heartbeat(hctx, e.Replica, e.Endpoint, e.LeaseTTL); err == nil && len(live) > 0 && e.OpsPerSecond > 0 {
		e.pace.setRate(e.OpsPerSecond / float64(len(live)))
	}
	cancel()
	e.renew(ctx)
	lctx, cancel := e.bounded(ctx)
	jobs, err := e.store.ListJobs(lctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			e.Logger.Warn("list jobs to claim", "err", err)
		}
		return
	}
	for _, j := range jobs {
		if !unfinished(j) {
			continue
		}
		e.mu.Lock()
		mine := e.runs[j.JobID] != nil
		e.mu.Unlock()
		if mine {
			continue
		}
		cctx, cancel := e.bounded(ctx)
		l, err := e.claim(cctx, j.JobID)
		cancel()
		if err != nil {
			continue // another replica runs it, or the store is away
		}
		// Read again under the lease: the previous holder's last writes
		// are in, and no later one can be.
		if j, err = e.store.GetJob(ctx, j.JobID); err != nil || !unfinished(j) {
			e.release(l)
			continue
		}
		e.Logger.Info("job adopted", "job", j.JobID, "epoch", l.Epoch)
		if err := e.adopt(ctx, j, l); err != nil {
			e.Logger.Warn("adopt job", "job", j.JobID, "err", err)
			e.release(l)
		}
	}
}

// renew renews the lease of every job running here, abandons those whose
// lease is lost, and cancels those cancelled through another replica.
func (e *Engine) renew(ctx context.Context) {
	e.mu.Lock()
	runs := make([]*run, 0, len(e.runs))
	for _, r := range e.runs {
		if r.lease.JobID != "" {
			runs = append(runs, r)
		}
	}
	e.mu.Unlock()
	for _, r := range runs {
		cctx, cancel := e.bounded(ctx)
		l, err := e.claim(cctx, r.id)
		cancel()
		switch {
		case err == nil && l.Epoch != r.lease.Epoch:
			// It had expired: writes made meanwhile were refused, so
			// the run no longer matches the store. Start over from
			// what was stored, under the new lease, at the next round.
			e.abandon(r)
			e.release(l)
		case err == nil:
			e.mu.Lock()
			r.lease = l
			cancelled := r.job.Status == hub.JobCancelled
			e.mu.Unlock()
			if l.Cancel && !cancelled {
				e.cancelRun(r)
			}
		case errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrNotFound):
			e.abandon(r)
		default:
			// The store is away: the lease runs out by itself, and the
			// store refuses writes under it from then on.
			e.mu.Lock()
			expired := e.clock.Now().After(r.lease.Expires)
			e.mu.Unlock()
			if expired {
				e.abandon(r)
			}
		}
	}
}

// abandonJob abandons the run of job id, if it runs here.
func (e *Engine) abandonJob(id string) {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r != nil {
		e.abandon(r)
	}
}

// abandon stops a run whose lease is lost, where it stands: another
// replica resumes the job from what was stored.
func (e *Engine) abandon(r *run) {
	if r.abandoned() {
		return
	}
	e.Logger.Warn("job lease lost: the job continues on another replica", "job", r.id)
	r.endLife(errLeaseLost)
	go func() {
		<-r.done
		e.mu.Lock()
		if e.runs[r.id] == r {
			delete(e.runs, r.id)
		}
		e.mu.Unlock()
	}()
}

// cancelRun cancels a job running here: it stops starting devices, and
// its cancelled status is stored.
func (e *Engine) cancelRun(r *run) error {
	e.update(r, func(j *hub.Job) { j.Status = hub.JobCancelled })
	// Stored before the answer: a hub that crashes now resumes the job as
	// cancelled, not as running.
	err := e.commit(nil, r)
	r.cancel(errCancelled)
	if err != nil && !r.abandoned() {
		return hub.Errorf(hub.CodeServerError, "store the cancel of job '%s': %v", r.id, err)
	}
	return nil
}

// release gives up lease l (a zero Lease: nothing), so that nobody waits
// for it to expire.
func (e *Engine) release(l store.Lease) {
	if e.leaser == nil || l.JobID == "" {
		return
	}
	ctx, cancel := e.clock.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.leaser.ReleaseJob(ctx, l); err != nil {
		e.Logger.Warn("release job lease", "job", l.JobID, "err", err)
	}
}

// remoteCancel cancels a job that runs on another replica, or on none
// yet: the holder (or the next) cancels it at its next tick. The answer
// says cancelled at once, as Azure's does.
func (e *Engine) remoteCancel(ctx context.Context, id string) (*hub.Job, error) {
	j, err := e.store.GetJob(ctx, id)
	if err != nil {
		return nil, storeErr(err, hub.CodeJobNotFound, "job", id)
	}
	if !unfinished(j) {
		return j, nil // finished: cancelling is a no-op, as in Azure
	}
	if err := e.leaser.RequestCancel(ctx, id); err != nil {
		return nil, storeErr(err, hub.CodeJobNotFound, "job", id)
	}
	j.Status = hub.JobCancelled
	return j, nil
}

// watchRemote is WatchJob for a job this replica does not run: it polls
// the store until the job differs from last.
func (e *Engine) watchRemote(ctx context.Context, id string, last *hub.Job) (*hub.Job, error) {
	for {
		j, err := e.GetJob(ctx, id)
		if err != nil || last == nil || !hub.SameJobState(j, last) {
			return j, err
		}
		e.mu.Lock()
		local := e.runs[id] != nil
		e.mu.Unlock()
		if local {
			return e.WatchJob(ctx, id, last) // adopted here meanwhile
		}
		t := e.clock.NewTimer(250 * time.Millisecond) // polling the shared store
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}
