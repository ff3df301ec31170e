package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Audit operations: what an [AuditEntry] records.
const (
	AuditDeviceCreate = "device.create"
	AuditDeviceUpdate = "device.update"
	AuditDeviceDelete = "device.delete"
	AuditModuleCreate = "module.create"
	AuditModuleUpdate = "module.update"
	AuditModuleDelete = "module.delete"
	AuditTwinPatch    = "twin.patch"
	AuditTwinReplace  = "twin.replace"
	AuditTwinReported = "twin.reported"
	AuditMethodInvoke = "method.invoke"
	AuditJobCreate    = "job.create"
	AuditJobCancel    = "job.cancel"
	AuditJobEnd       = "job.end"

	AuditCertificatePut    = "certificate.put"
	AuditCertificateDelete = "certificate.delete"
)

// ActorEngine is the actor of the device operations the jobs engine
// performs for a job (the job's id is in [AuditEntry.Job]), and of a
// job's end.
const ActorEngine = "engine"

// ActorLocal is the actor of calls made in-process, by the program that
// opened the hub's store itself (the CLI's embedded hub): nobody had to
// authenticate.
const ActorLocal = "local"

// AuditEntry is one row of the hub's audit log: a mutating operation,
// who made it and how it ended. Entries form a hash chain: each carries
// the hash of the one before it (Prev) and its own (Hash), the SHA-256 of
// [AuditEntry.Canonical], so that an entry changed, removed or moved
// breaks the chain (see [VerifyAudit]).
type AuditEntry struct {
	// Seq is the entry's position in the log, from 1, without gaps.
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	// Actor is who asked: a shared access policy's name (iothubowner),
	// "device:ID" for a device's own key, [ActorEngine] or [ActorLocal].
	Actor string `json:"actor"`
	// Operation is one of the Audit* constants.
	Operation string `json:"operation"`
	// Target is the device or job operated on.
	Target string `json:"target"`
	// Job is the job the operation is part of, if any.
	Job string `json:"job,omitempty"`
	// Devices are the devices of a job's operation recorded as one entry
	// (one per store write: a twin job's group commit, a batch of method
	// results).
	Devices []string `json:"devices,omitempty"`
	// Result is the outcome: an HTTP-like status ("200"), an error code,
	// or for a batch or a job's end, counts.
	Result string `json:"result"`
	// Plan and PlanSHA256 name the plan a job was created for, when the
	// creator said (iotjobs apply does).
	Plan       string `json:"plan,omitempty"`
	PlanSHA256 string `json:"planSha256,omitempty"`
	Prev       string `json:"prev"`
	Hash       string `json:"hash"`
}

// Canonical is the encoding the entry's hash is taken over: every field
// but Seq and Hash, in a fixed order, the time in UTC to the microsecond
// (what every store keeps). Seq is left out on purpose: an entry's place
// is what Prev links, so that rows renumbered to hide a removal or a
// reordering show as such rather than as changed content.
func (e *AuditEntry) Canonical() []byte {
	devices := e.Devices
	if devices == nil {
		devices = []string{}
	}
	b, _ := json.Marshal([]any{1, e.Time.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano), e.Actor, e.Operation,
		e.Target, e.Job, devices, e.Result, e.Plan, e.PlanSHA256, e.Prev})
	return b
}

// Sum is the hash of the entry as it should be stored in Hash.
func (e *AuditEntry) Sum() string {
	h := sha256.Sum256(e.Canonical())
	return hex.EncodeToString(h[:])
}

// Chain gives entries their places after the entry seq with hash prev
// (0 and "" for an empty log): their Seq, Prev and Hash. It returns the
// new head's seq and hash.
func Chain(seq int64, prev string, entries []*AuditEntry) (int64, string) {
	for _, e := range entries {
		seq++
		e.Seq, e.Prev = seq, prev
		e.Time = e.Time.UTC().Truncate(time.Microsecond)
		e.Hash = e.Sum()
		prev = e.Hash
	}
	return seq, prev
}

// AuditFilter selects audit entries; zero fields select all.
type AuditFilter struct {
	Since  time.Time
	Device string // the entry's target, or one of its devices
	Job    string // the entry's target or job
}

// Match reports whether e passes f.
func (f AuditFilter) Match(e *AuditEntry) bool {
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if f.Job != "" && e.Job != f.Job && !(e.Target == f.Job && strings.HasPrefix(e.Operation, "job.")) {
		return false
	}
	if f.Device != "" && !(e.Target == f.Device && !strings.HasPrefix(e.Operation, "job.")) {
		found := false
		for _, d := range e.Devices {
			if d == f.Device {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// AuditPage is a page of the audit log: entries in Seq order, and the
// token of the next page ("" on the last).
type AuditPage struct {
	Entries      []*AuditEntry `json:"entries"`
	Continuation string        `json:"continuation,omitempty"`
}

// AuditLog is implemented by hubs that keep an audit log (ours, not
// Azure's): the engine in-process, rest.Client over the API.
type AuditLog interface {
	// AuditEntries returns a page of the entries f selects, after the
	// page whose token is continuation ("" for the first). Errors:
	// ArgumentInvalid for a bad token, Unauthorized over the API for a
	// caller that is not the owner.
	AuditEntries(ctx context.Context, f AuditFilter, continuation string) (*AuditPage, error)
}

// AuditBreak is where a chain of entries stops holding.
type AuditBreak struct {
	Seq int64
	// How is "changed" (the entry's hash does not match its content),
	// "removed" (an entry is missing: a gap in the sequence, or a link
	// to an entry not in the log) or "out of order" (its predecessor is
	// in the log, elsewhere).
	How string
}

func (b *AuditBreak) Error() string {
	return fmt.Sprintf("entry #%d was %s", b.Seq, b.How)
}

// VerifyAudit walks a whole log in Seq order (all of it, from the start)
// and returns the first break, or nil when the chain holds.
func VerifyAudit(entries []*AuditEntry) *AuditBreak {
	hashes := make(map[string]bool, len(entries))
	for _, e := range entries {
		hashes[e.Hash] = true
	}
	var seq int64
	prev := ""
	for _, e := range entries {
		switch {
		case e.Sum() != e.Hash:
			return &AuditBreak{Seq: e.Seq, How: "changed"}
		case e.Seq > seq+1:
			return &AuditBreak{Seq: seq + 1, How: "removed"}
		case e.Seq != seq+1:
			return &AuditBreak{Seq: e.Seq, How: "out of order"}
		case e.Prev != prev && hashes[e.Prev]:
			return &AuditBreak{Seq: e.Seq, How: "out of order"}
		case e.Prev != prev && seq == 0:
			// The first entry links to one that is gone: the log's
			// start was cut off.
			return &AuditBreak{Seq: e.Seq, How: "removed"}
		case e.Prev != prev:
			// The entry before this one is not in the log: it was
			// removed and the rows after it renumbered into its place.
			return &AuditBreak{Seq: e.Seq, How: "removed"}
		}
		seq, prev = e.Seq, e.Hash
	}
	return nil
}

type actorKey struct{}

// WithActor returns ctx saying who makes the calls made with it, for the
// audit log: the REST API sets the caller's policy or device.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorOf is the actor ctx carries, [ActorLocal] when none.
func ActorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return ActorLocal
}

// PlanRef names the plan a call is made for, by its name and the SHA-256
// of its content.
type PlanRef struct {
	Name   string
	SHA256 string
}

type planKey struct{}

// WithPlan returns ctx saying that the jobs created with it are for plan
// p: the hub records it in the audit log (over the API, the client sends
// it in the [PlanHeader] header, which Azure ignores).
func WithPlan(ctx context.Context, p PlanRef) context.Context {
	return context.WithValue(ctx, planKey{}, p)
}

// PlanOf is the plan ctx carries.
func PlanOf(ctx context.Context) (PlanRef, bool) {
	p, ok := ctx.Value(planKey{}).(PlanRef)
	return p, ok && p.Name != ""
}

// PlanHeader carries a job's plan on job creation over the API:
// "NAME; sha256=DIGEST".
const PlanHeader = "X-Iotjobs-Plan"

// String is p as PlanHeader carries it.
func (p PlanRef) String() string {
	if p.SHA256 == "" {
		return p.Name
	}
	return p.Name + "; sha256=" + p.SHA256
}

// ParsePlanRef reads a PlanHeader value.
func ParsePlanRef(s string) PlanRef {
	name, rest, _ := strings.Cut(s, ";")
	p := PlanRef{Name: strings.TrimSpace(name)}
	if d, ok := strings.CutPrefix(strings.TrimSpace(rest), "sha256="); ok {
		p.SHA256 = strings.TrimSpace(d)
	}
	return p
}
