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
// is taken last in every write, after the devices, records and leases it
// locks, and nothing else is locked after it, so it adds no deadlock; it
// is held for the write's last round trip and its commit.

// lockHeadSQL reads the chain's head, locked until the transaction ends.
const lockHeadSQL = `SELECT seq, hash FROM audit_head FOR UPDATE`

// insertAuditSQL appends entries given as arrays; devices as JSON arrays.
const insertAuditSQL = `INSERT INTO audit (seq, time, actor, operation, target, job, devices, result, plan, plan_sha256, prev, hash)
	SELECT seq, time, actor, operation, target, job, ARRAY(SELECT jsonb_array_elements_text(devices::jsonb)), result, plan, plan_sha256, prev, hash
	FROM unnest($1::int8[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
		AS u(seq, time, actor, operation, target, job, devices, result, plan, plan_sha256, prev, hash)`

// queueAudit locks the chain's head in tx, gives ctx's entries their
// places after it (hub.Chain) and queues their insert and the head's move
// in b, which the caller sends in tx. It locks nothing when ctx carries
// no entries.
func queueAudit(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
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
	var seq int64
	var prev string
	err := tx.QueryRow(ctx, lockHeadSQL).Scan(&seq, &prev)
	if errors.Is(err, pgx.ErrNoRows) {
		return errors.New("the audit log's head (table audit_head) has no row: it was deleted by hand; put back a row holding the seq and hash of the log's last entry")
	}
	if err != nil {
		return fmt.Errorf("lock the audit log's head: %w", err)
	}
	head, hash := hub.Chain(seq, prev, entries)
	n := len(entries)
	seqs, times := make([]int64, n), make([]time.Time, n)
	actors, ops, targets, jobs, devices := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	results, plans, sums, prevs, hashes := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, e := range entries {
		list, err := json.Marshal(orNone(e.Devices))
		if err != nil {
			return err
		}
		seqs[i], times[i], actors[i], ops[i], targets[i], jobs[i], devices[i] = e.Seq, e.Time, e.Actor, e.Operation, e.Target, e.Job, string(list)
		results[i], plans[i], sums[i], prevs[i], hashes[i] = e.Result, e.Plan, e.PlanSHA256, e.Prev, e.Hash
	}
	b.Queue(insertAuditSQL, seqs, times, actors, ops, targets, jobs, devices, results, plans, sums, prevs, hashes)
	b.Queue(`UPDATE audit_head SET seq = $1, hash = $2`, head, hash).Exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("move the audit log's head: %d rows of audit_head, want 1 (was the table edited by hand?)", tag.RowsAffected())
		}
		return nil
	})
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
	if err := queueAudit(ctx, tx, &b); err != nil {
		return ctxErr(ctx, err)
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
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
