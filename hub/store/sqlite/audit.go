package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

var _ store.Auditor = (*Store)(nil)

// auditSchema is the audit log (store.Auditor): append-only by this code,
// one row per entry, every field of the entry's hash a column of its own
// so that a row edited by hand no longer matches its hash.
const auditSchema = `
CREATE TABLE IF NOT EXISTS audit (
	seq         INTEGER PRIMARY KEY,
	time        TEXT NOT NULL,
	actor       TEXT NOT NULL,
	operation   TEXT NOT NULL,
	target      TEXT NOT NULL,
	job         TEXT NOT NULL,
	devices     TEXT NOT NULL, -- JSON array
	result      TEXT NOT NULL,
	plan        TEXT NOT NULL,
	plan_sha256 TEXT NOT NULL,
	prev        TEXT NOT NULL,
	hash        TEXT NOT NULL
);
`

const putAuditSQL = `INSERT INTO audit (seq, time, actor, operation, target, job, devices, result, plan, plan_sha256, prev, hash)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const auditTime = "2006-01-02T15:04:05.000000Z"

// appendAudit appends ctx's audit entries in tx. The file has one writer
// (one connection), so the head read in tx stays the head until commit.
func appendAudit(ctx context.Context, tx *sql.Tx, put *sql.Stmt) error {
	entries := store.AuditOf(ctx)
	if len(entries) == 0 {
		return nil
	}
	var seq int64
	var prev string
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("read the audit log's head: %w", err)
	}
	hub.Chain(seq, prev, entries)
	stmt := tx.StmtContext(ctx, put)
	for _, e := range entries {
		devices := e.Devices
		if devices == nil {
			devices = []string{}
		}
		list, err := json.Marshal(devices)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, e.Seq, e.Time.Format(auditTime), e.Actor, e.Operation, e.Target, e.Job,
			string(list), e.Result, e.Plan, e.PlanSHA256, e.Prev, e.Hash); err != nil {
			return fmt.Errorf("append to the audit log: %w", err)
		}
	}
	return nil
}

// inTx runs fn in a transaction and appends ctx's audit entries in it.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := appendAudit(ctx, tx, s.putAudit); err != nil {
		return err
	}
	return tx.Commit()
}

// AppendAudit implements store.Auditor.
func (s *Store) AppendAudit(ctx context.Context, entries ...*hub.AuditEntry) error {
	return s.inTx(store.WithAudit(ctx, entries...), func(*sql.Tx) error { return nil })
}

// AuditLog implements store.Auditor. The filter runs here rather than in
// SQL: the log is read by people and by verify, not by jobs.
func (s *Store) AuditLog(ctx context.Context, f hub.AuditFilter, after int64, limit int) ([]*hub.AuditEntry, error) {
	out := []*hub.AuditEntry{}
	for len(out) < limit {
		rows, err := s.db.QueryContext(ctx, `SELECT seq, time, actor, operation, target, job, devices, result, plan, plan_sha256, prev, hash
			FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
		if err != nil {
			return nil, err
		}
		n := 0
		for rows.Next() {
			n++
			e, err := scanAudit(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			after = e.Seq
			if f.Match(e) && len(out) < limit {
				out = append(out, e)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if n < limit {
			break
		}
	}
	return out, nil
}

func scanAudit(rows *sql.Rows) (*hub.AuditEntry, error) {
	e := &hub.AuditEntry{}
	var t, devices string
	if err := rows.Scan(&e.Seq, &t, &e.Actor, &e.Operation, &e.Target, &e.Job, &devices, &e.Result, &e.Plan, &e.PlanSHA256, &e.Prev, &e.Hash); err != nil {
		return nil, err
	}
	// A field that no longer decodes was changed by hand: it is kept as
	// read (the hash then fails to match) rather than refused, so that
	// verify can name the entry.
	e.Time, _ = time.Parse(time.RFC3339Nano, t)
	if err := json.Unmarshal([]byte(devices), &e.Devices); err != nil {
		e.Devices = []string{devices}
	}
	if len(e.Devices) == 0 {
		e.Devices = nil
	}
	return e, nil
}
