package engine

import (
	"context"
	"fmt"
	"strconv"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// The audit log (README "Audit trail"): every mutating call through the
// engine, and every device operation of its jobs, is recorded in the
// store's audit log, in the same transaction as the change. Granularity:
// one entry per call; for a job, one entry per store write of its device
// operations (a twin job's group commit, a batch of method results,
// listing the devices) and one at its end with its counts. An entry per
// device operation would be a row and a hash per device on a twin job's
// single writer; one per group costs a row per few hundred devices.

var _ hub.AuditLog = (*Engine)(nil)

// auditor is the store's audit log, nil when it keeps none or NoAudit is
// set.
func (e *Engine) auditor() store.Auditor {
	if e.NoAudit {
		return nil
	}
	a, _ := e.store.(store.Auditor)
	return a
}

// entry is a new audit entry by ctx's actor, or nil when nothing is
// recorded.
func (e *Engine) entry(ctx context.Context, op, target string) *hub.AuditEntry {
	if e.auditor() == nil {
		return nil
	}
	ent := &hub.AuditEntry{Time: e.clock.Now(), Actor: hub.ActorOf(ctx), Operation: op, Target: target}
	if op == hub.AuditJobCreate {
		ent.Job = target
		if p, ok := hub.PlanOf(ctx); ok {
			ent.Plan, ent.PlanSHA256 = p.Name, p.SHA256
		}
	}
	return ent
}

type quietKey struct{}

// quietFailures marks ctx's calls as probes whose failure is part of
// another operation (import's createOrUpdate tries an update first), so
// that it is not recorded.
func quietFailures(ctx context.Context) context.Context {
	return context.WithValue(ctx, quietKey{}, true)
}

// audited runs a mutating call for op on target. fn makes the call's
// write with the context it is given, which carries the entry (result
// "200"), so that the change and its entry are stored together. A call
// that fails is recorded on its own, with its error code: refused
// attempts are part of the trail.
func (e *Engine) audited(ctx context.Context, op, target string, fn func(ctx context.Context) error) error {
	ent := e.entry(ctx, op, target)
	if ent == nil {
		return fn(ctx)
	}
	ent.Result = "200"
	err := fn(store.WithAudit(ctx, ent))
	if err != nil && ctx.Value(quietKey{}) == nil && ctx.Err() == nil {
		ent = e.entry(ctx, op, target)
		ent.Result = hub.ErrorCode(err)
		if aerr := e.auditor().AppendAudit(context.WithoutCancel(ctx), ent); aerr != nil {
			e.Logger.Error("append to the audit log", "operation", op, "target", target, "err", aerr)
		}
	}
	return err
}

// appendAudit stores entries that go with no store write.
func (e *Engine) appendAudit(ctx context.Context, entries ...*hub.AuditEntry) {
	a := e.auditor()
	if a == nil || len(entries) == 0 {
		return
	}
	if err := a.AppendAudit(context.WithoutCancel(ctx), entries...); err != nil {
		e.Logger.Error("append to the audit log", "err", err)
	}
}

// groupEntry is the entry of a twin job's devices in one group commit:
// ups' update functions are wrapped to list the devices they changed.
func (e *Engine) groupEntry(jobID string, ups []store.DeviceUpdate) *hub.AuditEntry {
	if e.auditor() == nil {
		return nil
	}
	// Operation stays "" until a device is changed: an entry of none is
	// not stored (store.AuditOf).
	ent := &hub.AuditEntry{Time: e.clock.Now(), Actor: hub.ActorEngine, Target: jobID, Job: jobID}
	for i := range ups {
		fn := ups[i].Fn
		ups[i].Fn = func(d *store.Device) error {
			if err := fn(d); err != nil {
				return err
			}
			ent.Operation = hub.AuditTwinPatch
			ent.Devices = append(ent.Devices, d.DeviceID)
			ent.Result = strconv.Itoa(len(ent.Devices)) + " applied"
			return nil
		}
	}
	return ent
}

// resultEntries are the entries of method jobs' device results stored in
// one write: one per job, listing the devices that were called (a device
// never started was not).
func (e *Engine) resultEntries(djs []*hub.DeviceJob) []*hub.AuditEntry {
	if e.auditor() == nil {
		return nil
	}
	byJob := map[string]*hub.AuditEntry{}
	counts := map[string]*[2]int{}
	var out []*hub.AuditEntry
	for _, dj := range djs {
		if dj.JobType != hub.JobDeviceMethod || dj.StartTimeUtc == nil ||
			(dj.Status != hub.DeviceJobCompleted && dj.Status != hub.DeviceJobFailed) {
			continue
		}
		ent := byJob[dj.JobID]
		if ent == nil {
			ent = &hub.AuditEntry{Time: e.clock.Now(), Actor: hub.ActorEngine, Operation: hub.AuditMethodInvoke, Target: dj.JobID, Job: dj.JobID}
			byJob[dj.JobID], counts[dj.JobID] = ent, &[2]int{}
			out = append(out, ent)
		}
		ent.Devices = append(ent.Devices, dj.DeviceID)
		if dj.Status == hub.DeviceJobCompleted {
			counts[dj.JobID][0]++
		} else {
			counts[dj.JobID][1]++
		}
	}
	for _, ent := range out {
		c := counts[ent.Target]
		ent.Result = fmt.Sprintf("%d completed, %d failed", c[0], c[1])
	}
	return out
}

// endEntry is the entry of a job's end.
func (e *Engine) endEntry(j *hub.Job) *hub.AuditEntry {
	if e.auditor() == nil {
		return nil
	}
	res := string(j.Status)
	if s := j.DeviceJobStatistics; s != nil {
		res += fmt.Sprintf(": %d succeeded, %d failed", s.SucceededCount, s.FailedCount)
	}
	return &hub.AuditEntry{Time: e.clock.Now(), Actor: hub.ActorEngine, Operation: hub.AuditJobEnd, Target: j.JobID, Job: j.JobID, Result: res}
}

// auditPage is how many entries AuditEntries returns at most.
const auditPage = 1000

// AuditEntries implements hub.AuditLog; the continuation token is the
// seq of the page's last entry.
func (e *Engine) AuditEntries(ctx context.Context, f hub.AuditFilter, continuation string) (*hub.AuditPage, error) {
	a, _ := e.store.(store.Auditor)
	if a == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "this hub's store (%T) keeps no audit log", e.store)
	}
	var after int64
	if continuation != "" {
		n, err := strconv.ParseInt(continuation, 10, 64)
		if err != nil || n < 0 {
			return nil, hub.Errorf(hub.CodeArgumentInvalid, "continuation token %q is not one this hub gave", continuation)
		}
		after = n
	}
	entries, err := a.AuditLog(ctx, f, after, auditPage)
	if err != nil {
		return nil, storeErr(err, hub.CodeServerError, "", "")
	}
	page := &hub.AuditPage{Entries: entries}
	if len(entries) == auditPage {
		page.Continuation = strconv.FormatInt(entries[len(entries)-1].Seq, 10)
	}
	return page, nil
}
