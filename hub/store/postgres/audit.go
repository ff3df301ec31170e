package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

var _ store.Auditor = (*Store)(nil)

// The audit log (store.Auditor) is appended in the transaction of the
// write it records. Replicas sharing the database append in one total
// order: each append locks audit_head, the chain's head (one row), with
// SELECT … FOR UPDATE, chains its entries from it and moves it; a
// concurrent append waits for the lock, then reads the head the first
// one committed (READ COMMITTED re-reads a row it waited for). The head
// is the last lock of every write: it is queued after the statements
// that lock the write's rows (devices, records, jobs, leases), and only
// the new audit rows follow it, so that it adds no deadlock (a write
// that locked a job's row after the head could wait on one holding that
// row and waiting for the head). It is held for one round trip and the
// commit.

// lockHeadSQL reads the chain's head, locked until the transaction ends.
const lockHeadSQL = `SELECT seq, hash FROM audit_head FOR UPDATE`

// insertAuditSQL appends entries given as arrays; devices as JSON arrays.
const insertAuditSQL = `INSERT INTO audit (seq, time, actor, operation, target, job, devices, result, plan, plan_sha256, prev, hash)
	SELECT seq, time, actor, operation, target, job, ARRAY(SELECT jsonb_array_elements_text(devices::jsonb)), result, plan, plan_sha256, prev, hash
	FROM unnest($1::int8[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
		AS u(seq, time, actor, operation, target, job, devices, result, plan, plan_sha256, prev, hash)`

// auditAppend is a write's audit entries on their way into the log.
type auditAppend struct {
	entries []*hub.AuditEntry
	seq     int64
	prev    string
}

// lockHead queues in b, last, the lock of the chain's head, when ctx
// carries entries (nil when it carries none). The update functions of
// the write have run: they may have filled the entries in.
func lockHead(ctx context.Context, b *pgx.Batch) *auditAppend {
	entries := store.AuditOf(ctx)
	if len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		// Before the hash is taken, so that the stored entry matches it.
		for _, f := range []*string{&e.Actor, &e.Operation, &e.Target, &e.Job, &e.Result, &e.Plan, &e.PlanSHA256} {
			*f = textOf(*f)
		}
		for i := range e.Devices {
			e.Devices[i] = textOf(e.Devices[i])
		}
	}
	a := &auditAppend{entries: entries}
	b.Queue(lockHeadSQL).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&a.seq, &a.prev)
		if errors.Is(err, pgx.ErrNoRows) {
			return errors.New("the audit log's head (table audit_head) has no row: it was deleted by hand; put back a row holding the seq and hash of the log's last entry")
		}
		if err != nil {
			return fmt.Errorf("lock the audit log's head: %w", err)
		}
		return nil
	})
	return a
}

// store gives the entries their places after the head lockHead read
// (hub.Chain), inserts them in tx and moves the head. A nil a stores
// nothing.
func (a *auditAppend) store(ctx context.Context, tx pgx.Tx) error {
	if a == nil {
		return nil
	}
	head, hash := hub.Chain(a.seq, a.prev, a.entries)
	n := len(a.entries)
	seqs, times := make([]int64, n), make([]time.Time, n)
	actors, ops, targets, jobs, devices := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	results, plans, sums, prevs, hashes := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, e := range a.entries {
		list, err := json.Marshal(orNone(e.Devices))
		if err != nil {
			return err
		}
		seqs[i], times[i], actors[i], ops[i], targets[i], jobs[i], devices[i] = e.Seq, e.Time, e.Actor, e.Operation, e.Target, e.Job, string(list)
		results[i], plans[i], sums[i], prevs[i], hashes[i] = e.Result, e.Plan, e.PlanSHA256, e.Prev, e.Hash
	}
	var b pgx.Batch
	b.Queue(insertAuditSQL, seqs, times, actors, ops, targets, jobs, devices, results, plans, sums, prevs, hashes)
	b.Queue(`UPDATE audit_head SET seq = $1, hash = $2`, head, hash)
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("append to the audit log: %w", err)
	}
	return nil
}

// textOf is s as PostgreSQL text can hold it: an id the hub refused (a
// refused call is recorded too) may be invalid UTF-8 or hold NUL
// characters, which are recorded as U+FFFD rather than losing the entry.
func textOf(s string) string {
	if storable(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func orNone(devices []string) []string {
	if devices == nil {
		return []string{}
	}
	return devices
}

// execer is what a write runs its statements on: the pool, or a
// transaction when the write carries audit entries.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// write runs fn, a write of one statement, on the pool, or, when ctx
// carries audit entries, in a transaction that appends them.
func (s *Store) write(ctx context.Context, fn func(q execer) error) error {
	if len(store.AuditOf(ctx)) == 0 {
		return fn(s.pool)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return ctxErr(ctx, err)
	}
	defer rollback(ctx, tx)
	if err := fn(tx); err != nil {
		return err
	}
	var b pgx.Batch
	return commitAudited(ctx, tx, &b)
}

// commitAudited ends a write's transaction: its last batch b, with the
// chain's head locked last (so that writes never wait on each other in
// a circle), then its entries chained from that head, then the commit.
func commitAudited(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	a := lockHead(ctx, b)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return ctxErr(ctx, err)
	}
	if err := a.store(ctx, tx); err != nil {
		return ctxErr(ctx, err)
	}
	return ctxErr(ctx, tx.Commit(ctx))
}

// AppendAudit implements store.Auditor: a transaction of its own.
func (s *Store) AppendAudit(ctx context.Context, entries ...*hub.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	return s.write(store.WithAudit(ctx, entries...), func(execer) error { return nil })
}

// AuditLog implements store.Auditor. The filter runs in Go, as
// hub.AuditFilter.Match says, rather than in SQL: the log is read by
// people and by verify, not by jobs.
func (s *Store) AuditLog(ctx context.Context, f hub.AuditFilter, after int64, limit int) ([]*hub.AuditEntry, error) {
	out := []*hub.AuditEntry{}
	for len(out) < limit {
		rows, err := s.pool.Query(ctx, `SELECT seq, time, actor, operation, target, job, devices, result, plan, plan_sha256, prev, hash
			FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		n := 0
		for rows.Next() {
			n++
			e := &hub.AuditEntry{}
			if err := rows.Scan(&e.Seq, &e.Time, &e.Actor, &e.Operation, &e.Target, &e.Job, &e.Devices, &e.Result,
				&e.Plan, &e.PlanSHA256, &e.Prev, &e.Hash); err != nil {
				rows.Close()
				return nil, ctxErr(ctx, err)
			}
			e.Time = e.Time.UTC()
			if len(e.Devices) == 0 {
				e.Devices = nil
			}
			after = e.Seq
			if f.Match(e) && len(out) < limit {
				out = append(out, e)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, ctxErr(ctx, err)
		}
		if n < limit {
			break
		}
	}
	return out, nil
}
