package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

// migrate brings a database written by an older version up to date:
//   - devices kept tags, desired and reported in columns of their own;
//     they now live in the query document (devices.twin) only, so the
//     document is filled in from them and the columns are dropped;
//   - device_jobs.qdoc is added if missing and filled in where it lacks;
//   - jobs.started is added if missing (NULL: no method device started).
func (s *Store) migrate(ctx context.Context) error {
	oldDevices, err := s.hasColumn(ctx, "devices", "tags")
	if err != nil {
		return err
	}
	if oldDevices {
		if err := s.addColumn(ctx, "devices", "twin"); err != nil {
			return err
		}
		if err := s.backfillDevices(ctx); err != nil {
			return fmt.Errorf("backfill devices.twin: %w", err)
		}
		for _, c := range []string{"tags", "desired", "reported"} {
			// Column names are constants of this file.
			if _, err := s.db.ExecContext(ctx, `ALTER TABLE devices DROP COLUMN `+c); err != nil {
				return fmt.Errorf("drop devices.%s: %w", c, err)
			}
		}
	}
	if err := s.addColumn(ctx, "device_jobs", "qdoc"); err != nil {
		return err
	}
	if err := s.addColumn(ctx, "jobs", "started"); err != nil {
		return err
	}
	if err := s.backfillDeviceJobs(ctx); err != nil {
		return fmt.Errorf("backfill device_jobs.qdoc: %w", err)
	}
	return nil
}

func (s *Store) hasColumn(ctx context.Context, table, column string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx,
		`SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, table, column).Scan(&n); err != nil {
		return false, fmt.Errorf("inspect %s: %w", table, err)
	}
	return n > 0, nil
}

// addColumn adds a BLOB column unless the table has it.
func (s *Store) addColumn(ctx context.Context, table, column string) error {
	has, err := s.hasColumn(ctx, table, column)
	if err != nil || has {
		return err
	}
	// Table and column names are constants of this file.
	if _, err := s.db.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN `+column+` BLOB`); err != nil {
		return fmt.Errorf("add %s.%s: %w", table, column, err)
	}
	return nil
}

const backfillBatch = 500

// backfillDevices fills in the query document of the devices of the old
// layout from their tags, desired and reported columns.
func (s *Store) backfillDevices(ctx context.Context) error {
	for {
		rows, err := s.db.QueryContext(ctx,
			`SELECT id, identity, tags, desired, reported, version FROM devices WHERE twin IS NULL ORDER BY id LIMIT ?`, backfillBatch)
		if err != nil {
			return err
		}
		var ids, twins []string
		for rows.Next() {
			var id, identity, tags, desired, reported string
			d := &store.Device{}
			err := rows.Scan(&id, &identity, &tags, &desired, &reported, &d.Version)
			for _, p := range []struct {
				src string
				dst any
			}{{identity, &d.Device}, {tags, &d.Tags}, {desired, &d.Desired}, {reported, &d.Reported}} {
				if err == nil {
					err = json.Unmarshal([]byte(p.src), p.dst)
				}
			}
			var r deviceRow
			if err == nil {
				r, err = encodeDevice(d, false, "")
			}
			if err != nil {
				rows.Close()
				return fmt.Errorf("device %q: %w", id, err)
			}
			ids, twins = append(ids, id), append(twins, r.twin)
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
			q, err := store.DeviceJobDoc(dj)
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
	if p.counted {
		return s.runCounted(ctx, q, p)
	}
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
			d, err := fetchedDoc(p, vals)
			if err != nil {
				return nil, err
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
	return marshalRows(out)
}

// fetchedDoc is the document of the fetched paths of one row.
func fetchedDoc(p *plan, vals []*string) (map[string]any, error) {
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
	return d, nil
}

func marshalRows(rows []map[string]any) (*store.Page, error) {
	items, err := store.EncodeRows(rows)
	if err != nil {
		return nil, err
	}
	return &store.Page{Items: items}, nil
}

// runCounted executes a plan whose groups SQLite counted (fnGroups).
func (s *Store) runCounted(ctx context.Context, q *query.Query, p *plan) (*store.Page, error) {
	var res sql.NullString
	if err := s.db.QueryRowContext(ctx, p.sql, p.args...).Scan(&res); err != nil {
		return nil, err
	}
	var groups []countedGroup
	if res.Valid {
		if err := json.Unmarshal([]byte(res.String), &groups); err != nil {
			return nil, fmt.Errorf("decode groups: %w", err)
		}
	}
	docs := make([]map[string]any, len(groups))
	counts := make([]int, len(groups))
	for i, g := range groups {
		d, err := fetchedDoc(p, g.Vals)
		if err != nil {
			return nil, err
		}
		docs[i], counts[i] = d, g.N
	}
	all := *q
	all.Top = -1
	out, err := query.EvalCounts(&all, docs, counts)
	if err != nil {
		return nil, err
	}
	return marshalRows(out)
}
