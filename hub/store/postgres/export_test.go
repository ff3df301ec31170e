package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

// LatestSchema is the schema version this code writes.
var LatestSchema = latest

// SetMigrateHooks installs hooks into Open's migration (see testHooks)
// until restore is called. Not safe while Opens run.
func SetMigrateHooks(beforeLock func(), locked func(version int)) (restore func()) {
	old := testHooks
	testHooks.beforeLock, testHooks.locked = beforeLock, locked
	return func() { testHooks = old }
}

// LoadDevices stores many devices with COPY, the fast way to fill a large
// fleet for tests.
func (s *Store) LoadDevices(ctx context.Context, ds []*store.Device) error {
	rows := make([][]any, len(ds))
	for i, d := range ds {
		r, err := encodeDevice(d, false, "")
		if err != nil {
			return err
		}
		rows[i] = []any{d.DeviceID, r.identity, r.version, r.twinArg(), r.rawArg()}
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"devices"}, []string{"id", "identity", "version", "twin", "raw"}, pgx.CopyFromRows(rows))
	return err
}

// Pool is the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Exec runs a statement on the store's database.
func (s *Store) Exec(ctx context.Context, sql string) error {
	_, err := s.pool.Exec(ctx, sql)
	return err
}

// ExplainPlan is PostgreSQL's plan (EXPLAIN (FORMAT JSON)) of the
// statement of the first page of q.
func (s *Store) ExplainPlan(ctx context.Context, q *query.Query) (json.RawMessage, error) {
	t, after := devicesTarget, []string{""}
	if q.From == query.DevicesJobs {
		t, after = deviceJobsTarget, []string{"", ""}
	}
	p := compileQuery(t, q)
	sql, args := p.rowsSQL(after, 1001)
	if p.counted {
		sql, args = p.countedSQL(after)
	}
	var plan []byte
	if err := s.pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&plan); err != nil {
		return nil, fmt.Errorf("explain %s: %w", sql, err)
	}
	return plan, nil
}

// SetAfterFence makes s run fn inside each fenced write's transaction,
// once it holds its leases' row locks.
func (s *Store) SetAfterFence(fn func()) { s.afterFence = fn }
