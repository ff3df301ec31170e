package store

import (
	"context"

	"github.com/iotjobs/iotjobs/hub"
)

// The audit log is written together with what it records: the engine
// puts a change's entries in the context of the write that makes the
// change (WithAudit), and an Auditor store appends them in that write's
// transaction, so that neither can be stored without the other. The
// store gives them their places in the chain (seq, prev, hash) inside
// the transaction, under a lock on the chain's head, so that the log is
// one total order even when several replicas share the store.

type auditKey struct{}

// WithAudit returns ctx carrying audit entries for the next write made
// with it. The store reads them when it appends them, after the write's
// update functions ran, so that those may still fill them in (a group
// commit's entry lists the devices it did change).
func WithAudit(ctx context.Context, entries ...*hub.AuditEntry) context.Context {
	if len(entries) == 0 {
		return ctx
	}
	return context.WithValue(ctx, auditKey{}, entries)
}

// AuditOf returns the entries ctx carries for a write, those of its
// entries that are to be stored: an entry without an Operation (one that
// an update function left empty) is dropped.
func AuditOf(ctx context.Context) []*hub.AuditEntry {
	all, _ := ctx.Value(auditKey{}).([]*hub.AuditEntry)
	var out []*hub.AuditEntry
	for _, e := range all {
		if e.Operation != "" {
			out = append(out, e)
		}
	}
	return out
}

// Auditor is implemented by stores that keep the audit log. Every write
// of such a store appends the entries of its context (WithAudit) in the
// same transaction, and stores nothing of either when it fails.
type Auditor interface {
	// AppendAudit stores entries that go with no other write (a direct
	// method call changes nothing in the store).
	AppendAudit(ctx context.Context, entries ...*hub.AuditEntry) error
	// AuditLog returns up to limit entries after seq after that f
	// selects, in seq order.
	AuditLog(ctx context.Context, f hub.AuditFilter, after int64, limit int) ([]*hub.AuditEntry, error)
}
