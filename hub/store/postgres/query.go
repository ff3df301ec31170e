package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

// plan is a compiled query: one SQL statement but for its key condition,
// which each batch of rows binds anew (keyCond), and its arguments.
//
// The statement reads, in key order after the key and at most limit rows
// (none when grouped), the rows whose condition holds, and the rows whose
// document is not jsonb (doc.go) that the key columns do not rule out.
// Its columns are the key columns, the raw JSON of such a row (NULL
// otherwise), and then either the jsonb document (star, or inexact: the
// row is decided in Go) or the jsonb of each of paths.
type plan struct {
	t   *target
	sel string // the select list
	// The condition of the rows wanted ("" for none): keyWhere on the
	// key columns, where on the jsonb document (see compiler.where).
	keyWhere, where string
	args            []any // $1..$k are the key, $k+1 the limit
	exact           bool
	grouped         bool
	counted         bool       // grouped by SQL (countedSQL)
	star            bool       // SELECT *
	paths           [][]string // the projected (or, grouped, fetched) paths, canonical, one column each
	names           []string   // output keys of the projected paths (not grouped)
	// groupVals are the SQL of the fetched paths' values (counted).
	groupVals []string
	// lastKeys is the key of the last row read (scan).
	lastKeys []string
}

// compileQuery compiles q for target t.
func compileQuery(t *target, q *query.Query) *plan {
	nk := len(t.keys)
	c := newCompiler(t, nk+1)
	p := &plan{t: t, grouped: q.Grouped(), star: q.Select == nil, exact: true}
	if _, all := q.Where.(query.All); q.Where != nil && !all {
		k, d := c.where(q.Where)
		p.keyWhere, p.where, p.exact = k.sql, d.sql, k.exact && d.exact
	}
	cols := append([]string(nil), t.keys...)
	cols = append(cols, t.raw)
	switch {
	case p.star && !p.grouped, !p.exact:
		// The document: SELECT * rows are its JSON, and an inexact
		// condition is decided with it.
		cols = append(cols, t.doc)
	case !p.grouped:
		qkeys := q.Keys()
		for i, pr := range q.Select {
			canon, ok := canonical(pr.Path.Segments)
			if !ok {
				continue // never defined in a jsonb document
			}
			p.paths = append(p.paths, canon)
			p.names = append(p.names, qkeys[i])
			cols = append(cols, c.jsonbAt(canon))
		}
	default:
		// Grouped rows are folded in Go by query.Eval over documents
		// that hold only the paths it reads (see fetchPaths).
		for _, canon := range fetchPaths(q) {
			p.paths = append(p.paths, canon)
			cols = append(cols, c.jsonbAt(canon))
		}
		p.counted = p.exact && countOnly(q) && nk == 1
	}
	p.sel = strings.Join(cols, ", ")
	if p.counted {
		for _, canon := range p.paths {
			p.groupVals = append(p.groupVals, c.jsonbAt(canon))
		}
	}
	p.args = c.args
	return p
}

// countedSQL is the statement of a grouped query whose only aggregate is
// COUNT(), after the key after: PostgreSQL groups the jsonb rows (by the
// jsonb values of the fetched paths, NULL where undefined; jsonb equality
// is Eval's for the documents' values, whose numbers are float64s) and
// gives each group's least key and size; the rows whose documents are not
// jsonb follow one by one, for Go. query.EvalCounts then merges what Eval
// would merge, in order of first appearance. A hash aggregate needs no
// sort of the rows.
func (p *plan) countedSQL(after []string) (string, []any) {
	t := p.t
	key := t.keys[0]
	kc, kargs := keyCond(t.keys, after, 1)
	args := slices.Clone(p.args)
	copy(args, kargs)
	if t.rows != "" {
		kc += " AND " + t.rows
	}
	if p.keyWhere != "" {
		kc += " AND " + p.keyWhere
	}
	where := t.doc + " IS NOT NULL AND " + kc
	if p.where != "" {
		where += " AND " + p.where
	}
	groups := "SELECT min(" + key + "), count(*), NULL::text"
	raws := "SELECT " + key + ", 1, " + t.raw
	for _, v := range p.groupVals {
		groups += ", " + v
		raws += ", NULL::jsonb"
	}
	groups += " FROM " + t.table + " WHERE " + where
	if len(p.groupVals) > 0 {
		groups += " GROUP BY " + strings.Join(p.groupVals, ", ")
	}
	raws += " FROM " + t.table + " WHERE " + t.doc + " IS NULL AND " + kc
	return bind("("+groups+") UNION ALL ("+raws+")", args)
}

// rowsSQL is the statement of a batch of at most limit rows (all when
// negative) after the key after.
func (p *plan) rowsSQL(after []string, limit int) (string, []any) {
	kc, kargs := keyCond(p.t.keys, after, 1)
	args := slices.Clone(p.args)
	copy(args, kargs)
	args[len(p.t.keys)] = sqlLimit(limit)
	w := kc
	if p.t.rows != "" {
		w += " AND " + p.t.rows
	}
	if p.keyWhere != "" {
		w += " AND " + p.keyWhere
	}
	if p.where != "" {
		w += " AND (" + p.t.doc + " IS NULL OR " + p.where + ")"
	}
	sql := "SELECT " + p.sel + " FROM " + p.t.table + " WHERE " + w + " ORDER BY " + strings.Join(p.t.keys, ", ") +
		fmt.Sprintf(" LIMIT $%d", len(p.t.keys)+1)
	return bind(sql, args)
}

var paramRE = regexp.MustCompile(`\$[0-9]+`)

// bind renumbers the parameters sql refers to in order of first
// appearance and leaves out the others: compiling binds values that the
// statement may not use in the end (operands of a folded constant, the
// constant of a comparison that became containment), and PostgreSQL
// refuses a parameter it cannot type.
func bind(sql string, args []any) (string, []any) {
	num := map[string]string{}
	var out []any
	sql = paramRE.ReplaceAllStringFunc(sql, func(p string) string {
		if n, ok := num[p]; ok {
			return n
		}
		i, _ := strconv.Atoi(p[1:])
		out = append(out, args[i-1])
		num[p] = "$" + strconv.Itoa(len(out))
		return num[p]
	})
	return sql, out
}

// QueryDevices implements store.Store: the query is compiled to SQL over
// devices.twin (see compile.go).
func (s *Store) QueryDevices(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
	if q == nil || q.From != query.Devices && q.From != query.DevicesModules {
		return store.EvalDevices(ctx, s, q, after, limit)
	}
	t := devicesTarget
	if q.From == query.DevicesModules {
		t = modulesTarget
	}
	page, err := s.run(ctx, compileQuery(t, q), q, []string{after}, limit, func(k []string) string { return k[0] })
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
	k0, k1, _ := strings.Cut(after, "\x00")
	page, err := s.run(ctx, compileQuery(deviceJobsTarget, q), q, []string{k0, k1}, limit, func(k []string) string { return store.DeviceJobKey(k[0], k[1]) })
	if err != nil {
		return nil, fmt.Errorf("query device jobs: %w", err)
	}
	return page, nil
}

// ExplainQuery returns the SQL a query compiles to, and whether the SQL
// decides its rows alone (false: they are decided in Go with query.Match,
// see compile.go). The storetest suite prints it for failing queries.
func (s *Store) ExplainQuery(q *query.Query) (string, bool) {
	t, after := devicesTarget, []string{""}
	switch q.From {
	case query.Devices:
	case query.DevicesModules:
		t = modulesTarget
	case query.DevicesJobs:
		t, after = deviceJobsTarget, []string{"", ""}
	default:
		return "FROM " + string(q.From) + ": answered by the reference evaluator", false
	}
	p := compileQuery(t, q)
	sql, args := p.rowsSQL(after, 1001)
	if p.counted {
		sql, args = p.countedSQL(after)
	}
	note := ""
	if !p.exact {
		note = " -- the condition is a filter; rows are decided in Go"
	}
	return fmt.Sprintf("%s -- args %q%s", sql, args, note), p.exact
}

// row is one row a plan's statement reads.
type row struct {
	keys []string
	raw  []byte   // the JSON of a document that is not jsonb
	vals [][]byte // the jsonb columns
}

// run executes a plan and builds the page: the documents (SELECT *), rows
// assembled from the fetched values (projections), or groups folded by
// query.Eval over documents that hold only the fetched paths (aggregates:
// Eval's left-to-right float64 sums, first-appearance group order and
// MIN/MAX rules are the definition; PostgreSQL's sum(float8) raises an
// error on overflow and its group order is unspecified).
func (s *Store) run(ctx context.Context, p *plan, q *query.Query, after []string, limit int, key func([]string) string) (*store.Page, error) {
	if limit <= 0 {
		// As store.EvalDevices: a page holds at least one row.
		limit = 1
	}
	all := *q
	all.Top, all.Where = -1, nil
	if p.counted {
		return s.runCounted(ctx, p, q, &all, after)
	}
	if p.grouped {
		var docs []map[string]any
		err := s.scan(ctx, p, q, after, -1, func(r *row, doc map[string]any) (bool, error) {
			if doc == nil {
				var err error
				if doc, err = p.fetchedDoc(r.vals); err != nil {
					return false, err
				}
			}
			docs = append(docs, doc)
			return true, nil
		})
		if err != nil {
			return nil, err
		}
		out, err := query.Eval(&all, docs)
		if err != nil {
			return nil, err
		}
		items, err := store.EncodeRows(out)
		return &store.Page{Items: items}, err
	}
	page := &store.Page{Items: []json.RawMessage{}}
	var last []string
	err := s.scan(ctx, p, q, after, limit+1, func(r *row, doc map[string]any) (bool, error) {
		if len(page.Items) == limit {
			// A row after a full page: there is a next page.
			page.After = key(last)
			return false, nil
		}
		item, err := p.item(&all, r, doc)
		if err != nil {
			return false, err
		}
		page.Items = append(page.Items, item)
		last = r.keys
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// scan reads the plan's rows after the key after, in batches of batch
// rows (all at once when batch is negative), and calls fn with each row
// that matches, until fn returns false. A row decided in Go (its document
// is not jsonb, or the condition is inexact) comes with its document.
func (s *Store) scan(ctx context.Context, p *plan, q *query.Query, after []string, batch int, fn func(*row, map[string]any) (bool, error)) error {
	if !p.exact && batch >= 0 {
		// Go rejects some of the rows: fewer, larger batches.
		batch = max(batch, 500)
	}
	for {
		sql, args := p.rowsSQL(after, batch)
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return ctxErr(ctx, err)
		}
		n, more, err := p.readRows(rows, q, fn)
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return ctxErr(ctx, err)
		}
		if !more || batch < 0 || n < batch {
			return nil
		}
		after = p.lastKeys
	}
}

// readRows calls fn for the matching rows of one batch. It returns how
// many rows it read, and false when fn asked to stop.
func (p *plan) readRows(rows pgx.Rows, q *query.Query, fn func(*row, map[string]any) (bool, error)) (int, bool, error) {
	nk := len(p.t.keys)
	n := 0
	for rows.Next() {
		r := &row{keys: make([]string, nk), vals: make([][]byte, len(rows.FieldDescriptions())-nk-1)}
		dest := make([]any, 0, nk+1+len(r.vals))
		for i := range r.keys {
			dest = append(dest, &r.keys[i])
		}
		dest = append(dest, &r.raw)
		for i := range r.vals {
			dest = append(dest, &r.vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return n, false, err
		}
		n++
		p.lastKeys = r.keys
		var doc map[string]any
		if r.raw != nil || !p.exact {
			var err error
			if r.raw != nil {
				doc, err = p.t.rawDoc(r.raw)
			} else {
				doc, err = decodeDoc(r.vals[0])
			}
			if err != nil {
				return n, false, err
			}
			if !query.Match(q.Where, doc) {
				continue
			}
		}
		more, err := fn(r, doc)
		if err != nil || !more {
			return n, false, err
		}
	}
	return n, true, nil
}

// item is the page row of a query that does not aggregate: doc, when the
// row was decided in Go, or the fetched jsonb.
func (p *plan) item(all *query.Query, r *row, doc map[string]any) (json.RawMessage, error) {
	if doc != nil {
		if p.star {
			return store.AppendJSON(nil, doc)
		}
		out, err := query.Eval(all, []map[string]any{doc})
		if err != nil {
			return nil, err
		}
		return store.AppendJSON(nil, out[0])
	}
	if p.star {
		d, err := decodeDoc(r.vals[0])
		if err != nil {
			return nil, err
		}
		return store.AppendJSON(nil, d)
	}
	out := make(map[string]any, len(r.vals))
	for i, v := range r.vals {
		if v == nil {
			continue
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return nil, fmt.Errorf("decode %s: %w", strings.Join(p.paths[i], "."), err)
		}
		out[p.names[i]] = x
	}
	return store.AppendJSON(nil, out)
}

// fetchedDoc is the document of the fetched paths of one row.
func (p *plan) fetchedDoc(vals [][]byte) (map[string]any, error) {
	d := map[string]any{}
	for i, v := range vals {
		if v == nil {
			continue
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return nil, fmt.Errorf("decode %s: %w", strings.Join(p.paths[i], "."), err)
		}
		setPath(d, p.paths[i], x)
	}
	return d, nil
}

// runCounted executes a plan whose groups PostgreSQL counts (countedSQL).
func (s *Store) runCounted(ctx context.Context, p *plan, q, all *query.Query, after []string) (*store.Page, error) {
	sql, args := p.countedSQL(after)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	defer rows.Close()
	type group struct {
		first string
		n     int
		doc   map[string]any
	}
	var groups []group
	for rows.Next() {
		var g group
		var first *string
		var n int64
		var raw []byte
		vals := make([][]byte, len(p.paths))
		dest := []any{&first, &n, &raw}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, ctxErr(ctx, err)
		}
		if first == nil {
			continue // no GROUP BY, and no jsonb row matched
		}
		g.first, g.n = *first, int(n)
		if raw != nil {
			if g.doc, err = p.t.rawDoc(raw); err != nil {
				return nil, err
			}
			if !query.Match(q.Where, g.doc) {
				continue
			}
		} else if g.doc, err = p.fetchedDoc(vals); err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	if err := rows.Err(); err != nil {
		return nil, ctxErr(ctx, err)
	}
	slices.SortFunc(groups, func(a, b group) int { return strings.Compare(a.first, b.first) })
	docs, counts := make([]map[string]any, len(groups)), make([]int, len(groups))
	for i, g := range groups {
		docs[i], counts[i] = g.doc, g.n
	}
	out, err := query.EvalCounts(all, docs, counts)
	if err != nil {
		return nil, err
	}
	items, err := store.EncodeRows(out)
	return &store.Page{Items: items}, err
}

// decodeDoc is a query document from its JSON (numbers float64).
func decodeDoc(b []byte) (map[string]any, error) {
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode stored document: %w", err)
	}
	return d, nil
}

// deviceJobDoc is the query document of a record from its wire JSON.
func deviceJobDoc(b []byte) (map[string]any, error) {
	dj := new(hub.DeviceJob)
	if err := json.Unmarshal(b, dj); err != nil {
		return nil, fmt.Errorf("decode stored device job: %w", err)
	}
	return store.Doc(dj)
}

// countOnly reports whether COUNT() is q's only aggregate.
func countOnly(q *query.Query) bool {
	for _, pr := range q.Select {
		if pr.Agg != "" && pr.Agg != query.AggCount {
			return false
		}
	}
	return true
}

// fetchPaths lists the paths a grouped query reads (GROUP BY paths,
// projected paths and aggregate arguments) that can resolve, leaving out
// those inside another listed path, whose value already holds them.
func fetchPaths(q *query.Query) [][]string {
	var all [][]string
	add := func(segs []string) {
		if canon, ok := canonical(segs); ok {
			all = append(all, canon)
		}
	}
	for _, g := range q.GroupBy {
		add(g.Segments)
	}
	for _, pr := range q.Select {
		add(pr.Path.Segments)
	}
	return store.OutermostPaths(all)
}

// setPath stores v at segs in doc, creating objects on the way.
func setPath(doc map[string]any, segs []string, v any) {
	m := doc
	for _, s := range segs[:len(segs)-1] {
		next, ok := m[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[s] = next
		}
		m = next
	}
	m[segs[len(segs)-1]] = v
}
