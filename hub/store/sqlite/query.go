package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

// migrate brings a database written by an older version up to date: the
// query document columns (devices.twin, device_jobs.qdoc) are added if
// missing and filled in for every row that lacks one.
func (s *Store) migrate(ctx context.Context) error {
	for _, m := range []struct{ table, column string }{{"devices", "twin"}, {"device_jobs", "qdoc"}} {
		var n int
		if err := s.db.QueryRowContext(ctx,
			`SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, m.table, m.column).Scan(&n); err != nil {
			return fmt.Errorf("inspect %s: %w", m.table, err)
		}
		if n == 0 {
			// Table and column names are constants of this file.
			if _, err := s.db.ExecContext(ctx, `ALTER TABLE `+m.table+` ADD COLUMN `+m.column+` BLOB`); err != nil {
				return fmt.Errorf("add %s.%s: %w", m.table, m.column, err)
			}
		}
	}
	if err := s.backfillDevices(ctx); err != nil {
		return fmt.Errorf("backfill devices.twin: %w", err)
	}
	if err := s.backfillDeviceJobs(ctx); err != nil {
		return fmt.Errorf("backfill device_jobs.qdoc: %w", err)
	}
	return nil
}

const backfillBatch = 500

func (s *Store) backfillDevices(ctx context.Context) error {
	for {
		rows, err := s.db.QueryContext(ctx,
			`SELECT id, identity, tags, desired, reported, version FROM devices WHERE twin IS NULL ORDER BY id LIMIT ?`, backfillBatch)
		if err != nil {
			return err
		}
		var ids, twins []string
		for rows.Next() {
			var id string
			var r deviceRow
			if err := rows.Scan(&id, &r.identity, &r.tags, &r.desired, &r.reported, &r.version); err != nil {
				rows.Close()
				return err
			}
			d, err := decodeDevice(r)
			if err != nil {
				rows.Close()
				return err
			}
			twin, err := queryDoc(d.Twin())
			if err != nil {
				rows.Close()
				return err
			}
			ids, twins = append(ids, id), append(twins, twin)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		if err := s.fill(ctx, `UPDATE devices SET twin = jsonb(?) WHERE id = ?`, twins, ids); err != nil {
			return err
		}
	}
}

func (s *Store) backfillDeviceJobs(ctx context.Context) error {
	for {
		rows, err := s.db.QueryContext(ctx,
			`SELECT rowid, doc FROM device_jobs WHERE qdoc IS NULL LIMIT ?`, backfillBatch)
		if err != nil {
			return err
		}
		var ids []int64
		var docs []string
		for rows.Next() {
			var id int64
			var doc string
			if err := rows.Scan(&id, &doc); err != nil {
				rows.Close()
				return err
			}
			dj := new(hub.DeviceJob)
			if err := json.Unmarshal([]byte(doc), dj); err != nil {
				rows.Close()
				return fmt.Errorf("decode stored device job: %w", err)
			}
			q, err := queryDoc(dj)
			if err != nil {
				rows.Close()
				return err
			}
			ids, docs = append(ids, id), append(docs, q)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		if err := s.fill(ctx, `UPDATE device_jobs SET qdoc = jsonb(?) WHERE rowid = ?`, docs, ids); err != nil {
			return err
		}
	}
}

// fill runs stmt with (vals[i], keys[i]) for every i in one transaction.
func (s *Store) fill(ctx context.Context, stmt string, vals []string, keys any) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i, v := range vals {
		var k any
		switch ks := keys.(type) {
		case []string:
			k = ks[i]
		case []int64:
			k = ks[i]
		}
		if _, err := tx.ExecContext(ctx, stmt, v, k); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// QueryDevices implements store.Store: the query is compiled to one SQL
// statement over devices.twin (see compile.go), or, when the compiler
// declines it, answered by store.EvalDevices.
func (s *Store) QueryDevices(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
	if q == nil || q.From != query.Devices {
		return store.EvalDevices(ctx, s, q, after, limit)
	}
	if limit < 1 {
		return nil, fmt.Errorf("query devices: page limit %d must be at least 1", limit)
	}
	p, err := compileQuery(devicesTarget, q, []string{after}, limit)
	if errors.Is(err, errUnsupported) {
		return store.EvalDevices(ctx, s, q, after, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("query devices: %w", err)
	}
	page, err := s.run(ctx, devicesTarget, q, p, limit, func(k []string) string { return k[0] })
	if err != nil {
		return nil, fmt.Errorf("query devices: %w", err)
	}
	return page, nil
}

// QueryDeviceJobs implements store.Store, as QueryDevices does, over
// device_jobs.qdoc in (jobId, deviceId) order.
func (s *Store) QueryDeviceJobs(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
	if q == nil || q.From != query.DevicesJobs {
		return store.EvalDeviceJobs(ctx, s, q, after, limit)
	}
	if limit < 1 {
		return nil, fmt.Errorf("query device jobs: page limit %d must be at least 1", limit)
	}
	k0, k1, _ := strings.Cut(after, "\x00")
	p, err := compileQuery(deviceJobsTarget, q, []string{k0, k1}, limit)
	if errors.Is(err, errUnsupported) {
		return store.EvalDeviceJobs(ctx, s, q, after, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("query device jobs: %w", err)
	}
	page, err := s.run(ctx, deviceJobsTarget, q, p, limit, func(k []string) string { return store.DeviceJobKey(k[0], k[1]) })
	if err != nil {
		return nil, fmt.Errorf("query device jobs: %w", err)
	}
	return page, nil
}

// ExplainQuery returns the SQL a query compiles to and whether it
// compiles at all (false: the store answers it with the reference
// evaluator). Tests print it for failing queries.
func (s *Store) ExplainQuery(q *query.Query) (string, bool) {
	t := devicesTarget
	after := []string{""}
	if q.From == query.DevicesJobs {
		t, after = deviceJobsTarget, []string{"", ""}
	}
	p, err := compileQuery(t, q, after, 100)
	if err != nil {
		return err.Error(), false
	}
	return fmt.Sprintf("%s -- args %q", p.sql, p.args), true
}

// run executes a plan and builds the page: the stored documents (SELECT
// *), rows assembled from the fetched JSON values (projections), or groups
// folded by query.Eval over documents that hold only the fetched paths
// (aggregates: Eval's left-to-right float64 sums, first-appearance group
// order and MIN/MAX rules are the definition, and SQLite's sum() is
// compensated and its group order unspecified).
func (s *Store) run(ctx context.Context, t *target, q *query.Query, p *plan, limit int, key func([]string) string) (*store.Page, error) {
	rows, err := s.db.QueryContext(ctx, p.sql, p.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	nk := len(t.keys)
	keys := make([]string, nk)
	var doc string
	vals := make([]*string, len(p.paths))
	dest := make([]any, 0, nk+1+len(vals))
	for i := range keys {
		dest = append(dest, &keys[i])
	}
	if p.star {
		dest = append(dest, &doc)
	}
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	page := &store.Page{Items: []json.RawMessage{}}
	var docs []map[string]any
	var lastKeys []string
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if !p.grouped && len(page.Items) == limit {
			// The extra row of LIMIT limit+1: there is a next page.
			page.After = key(lastKeys)
			break
		}
		switch {
		case p.star:
			page.Items = append(page.Items, json.RawMessage(doc))
		case !p.grouped:
			row := make(map[string]any, len(vals))
			for i, v := range vals {
				if v == nil {
					continue
				}
				var x any
				if err := json.Unmarshal([]byte(*v), &x); err != nil {
					return nil, fmt.Errorf("decode %s: %w", strings.Join(p.paths[i], "."), err)
				}
				row[p.keys[i]] = x
			}
			b, err := json.Marshal(row)
			if err != nil {
				return nil, err
			}
			page.Items = append(page.Items, b)
		default:
			d := map[string]any{}
			for i, v := range vals {
				if v == nil {
					continue
				}
				var x any
				if err := json.Unmarshal([]byte(*v), &x); err != nil {
					return nil, fmt.Errorf("decode %s: %w", strings.Join(p.paths[i], "."), err)
				}
				setPath(d, p.paths[i], x)
			}
			docs = append(docs, d)
		}
		lastKeys = append(lastKeys[:0], keys...)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !p.grouped {
		return page, nil
	}
	all := *q
	all.Top, all.Where = -1, nil
	out, err := query.Eval(&all, docs)
	if err != nil {
		return nil, err
	}
	for _, r := range out {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		page.Items = append(page.Items, b)
	}
	return page, nil
}
