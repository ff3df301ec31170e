package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

// QueryDevices implements store.Store: the query is compiled to one SQL
// statement over devices.twin (see compile.go), or, when the compiler
// declines it, answered by store.EvalDevices.
func (s *Store) QueryDevices(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
	if q == nil || q.From != query.Devices && q.From != query.DevicesModules {
		return store.EvalDevices(ctx, s, q, after, limit)
	}
	if limit < 1 {
		return nil, fmt.Errorf("query devices: page limit %d must be at least 1", limit)
	}
	t := devicesTarget
	if q.From == query.DevicesModules {
		t = modulesTarget
	}
	p, err := compileQuery(t, q, []string{after}, limit)
	if errors.Is(err, errUnsupported) {
		return store.EvalDevices(ctx, s, q, after, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("query devices: %w", err)
	}
	page, err := s.run(ctx, t, q, p, limit, func(k []string) string { return k[0] })
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
	switch q.From {
	case query.DevicesJobs:
		t, after = deviceJobsTarget, []string{"", ""}
	case query.DevicesModules:
		t = modulesTarget
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
