package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store on a PostgreSQL database, safe for concurrent
// use.
type Store struct {
	pool *pgxpool.Pool
	// afterFence, set by tests, runs inside a fenced write's transaction
	// once it holds its leases' row locks.
	afterFence func()
}

// IdleInTransactionTimeout is how long the server lets a session of the
// store sit in an open transaction: a hub that stops mid-transaction (its
// host lost, its link cut, the process frozen) would otherwise hold the
// row locks of its job leases until the server's TCP keep-alive gives up,
// hours later, and no replica could take its jobs over. The store's
// transactions never wait on anything but the server. A URL may set
// idle_in_transaction_session_timeout itself.
const IdleInTransactionTimeout = 5 * time.Second

// Open connects to the database at url, a postgres:// URL in pgx's syntax
// (runtime parameters such as search_path may be given in the query
// string; the store's tables live in the first schema of the search
// path), and brings its schema up to date.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w (want a URL such as postgres://user@host:5432/db?search_path=iotjobs)", err)
	}
	where := fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	// A cancelled call asks the server to stop (an update waiting for a
	// row lock, a long query) instead of only dropping the connection,
	// which leaves the server working until it next writes to it.
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 5 * time.Second}
	}
	if _, set := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(IdleInTransactionTimeout.Milliseconds(), 10)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: %w (is the server running, and may this user connect to this database?)", where, ctxErr(ctx, err))
	}
	if err := checkServer(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: %w", where, ctxErr(ctx, err))
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: %w", where, ctxErr(ctx, err))
	}
	return &Store{pool: pool}, nil
}

// checkServer refuses a server the store would misread: text must be
// UTF-8 (ids sort by their UTF-8 bytes, and queries compare strings as
// Go does), and the SQL here needs PostgreSQL 11 (jsonb casts,
// starts_with, hashtextextended; tested on 15).
func checkServer(ctx context.Context, pool *pgxpool.Pool) error {
	var version int
	var encoding string
	if err := pool.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_setting('server_encoding')`).Scan(&version, &encoding); err != nil {
		return fmt.Errorf("read the server's version: %w", err)
	}
	if version < 110000 {
		return fmt.Errorf("PostgreSQL %d.%d is too old: iotjobs needs 11 or newer", version/10000, version%10000)
	}
	if encoding != "UTF8" {
		return fmt.Errorf("the database's encoding is %s: iotjobs needs a UTF8 database (CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)", encoding)
	}
	return nil
}

// Close closes the store's connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// ctxErr is err, made to wrap ctx's error when ctx has ended: pgx reports
// a statement the server cancelled for it as the server's error, and
// callers test for context.Canceled and DeadlineExceeded.
func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// isUnique reports whether err is a duplicate key of the write's own
// table: one in the audit log (its head set back by hand) is not a
// conflict of the caller's.
func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.TableName != "audit"
}

// rollback ends tx if it is still open. It does not use the caller's
// context, which may have ended (the reason to roll back), so that the
// connection goes back to the pool clean instead of being dropped.
func rollback(ctx context.Context, tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// storable reports whether s can be a key: PostgreSQL text holds valid
// UTF-8 without NUL. The hub's ids are ASCII; others can never be stored,
// so no row has them.
func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

func checkKey(what, s string) error {
	if !storable(s) {
		return fmt.Errorf("%s %q cannot be stored in PostgreSQL: text must be valid UTF-8 without NUL characters (the hub's id checks refuse such ids)", what, s)
	}
	return nil
}

// keyCond is the SQL condition "the key columns are after the key after"
// in byte order, with after's values bound at $first... A key that text
// cannot hold is compared as bytes (no index; only a hostile caller sends
// one).
func keyCond(cols []string, after []string, first int) (string, []any) {
	ok := true
	for _, a := range after {
		ok = ok && storable(a)
	}
	l, r := make([]string, len(cols)), make([]string, len(cols))
	args := make([]any, len(cols))
	for i, c := range cols {
		if ok {
			l[i], r[i], args[i] = c, fmt.Sprintf("$%d::text", first+i), after[i]
		} else {
			l[i], r[i], args[i] = "convert_to("+c+", 'UTF8')", fmt.Sprintf("$%d::bytea", first+i), []byte(after[i])
		}
	}
	if len(cols) == 1 {
		return l[0] + " > " + r[0], args
	}
	return "(" + strings.Join(l, ", ") + ") > (" + strings.Join(r, ", ") + ")", args
}

// sqlLimit is limit as LIMIT takes it: a negative limit, none (as in
// SQLite).
func sqlLimit(limit int) any {
	if limit < 0 {
		return nil
	}
	return int64(limit)
}

// deviceRow is a device as stored: its identity (JSON of hub.Device), its
// twin version and its query document, which also holds the twin's
// sections (tags, desired and reported with their $version and $metadata)
// so that they are kept once. twin is the jsonb's text; raw the
// document's JSON where jsonb cannot hold it (a NUL character).
type deviceRow struct {
	identity string
	version  int64
	twin     []byte
	raw      *string
}

func (r *deviceRow) doc() []byte {
	if r.twin != nil {
		return r.twin
	}
	if r.raw != nil {
		return []byte(*r.raw)
	}
	return nil
}

const deviceCols = `identity, version, twin, raw`

func (r *deviceRow) dest() []any { return []any{&r.identity, &r.version, &r.twin, &r.raw} }

// encodeDevice encodes d's row; with unchanged set, identity is d's
// identity as stored, kept as it is.
func encodeDevice(d *store.Device, unchanged bool, identity string) (deviceRow, error) {
	r := deviceRow{identity: identity, version: d.Version}
	if !unchanged {
		b, err := json.Marshal(d.Device)
		if err != nil {
			return r, fmt.Errorf("encode device %q: %w", d.DeviceID, err)
		}
		r.identity = string(b)
	}
	doc, nul, err := encodeDoc(store.TwinDoc(d))
	if err != nil {
		return r, fmt.Errorf("encode the twin of %q: %w", d.DeviceID, err)
	}
	if nul {
		r.raw = &doc
	} else {
		r.twin = []byte(doc)
	}
	return r, nil
}

// twinArg and rawArg are the values of the twin and raw columns.
func (r *deviceRow) twinArg() any {
	if r.twin == nil {
		return nil
	}
	return string(r.twin)
}

func (r *deviceRow) rawArg() any {
	if r.raw == nil {
		return nil
	}
	return *r.raw
}

// encodeDoc is the JSON of a query document as the store keeps it, and
// whether it holds a NUL character (and so cannot be jsonb). Its numbers
// are float64s in Go's shortest form, so that PostgreSQL's numeric
// equality and order of the jsonb values are those of the float64s the
// reference evaluator compares (an int64 such as 1<<60 written as an
// integer would be a different numeric than its float64).
func encodeDoc(doc map[string]any) (string, bool, error) {
	v, err := normalize(doc)
	if err != nil {
		return "", false, err
	}
	b, err := store.AppendJSON(make([]byte, 0, 1024), v)
	if err != nil {
		return "", false, err
	}
	return string(b), hasNUL(b), nil
}

// normalize is v as its JSON round trip (store.Doc) decodes it: numbers
// float64, other Go types as encoding/json writes them. Only the maps and
// slices on the way to a value it changes are copied: a twin's metadata
// holds int64 versions (hub.MergeSection), and a round trip of the whole
// document cost a twin update more than the rest of its encoding.
func normalize(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, float64:
		return v, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			if out == nil && !same(n, e) {
				out = make(map[string]any, len(x))
				for k2, e2 := range x {
					out[k2] = e2
				}
			}
			if out != nil {
				out[k] = n
			}
		}
		if out == nil {
			return x, nil
		}
		return out, nil
	case []any:
		var out []any
		for i, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			if out == nil && !same(n, e) {
				out = append([]any(nil), x...)
			}
			if out != nil {
				out[i] = n
			}
		}
		if out == nil {
			return x, nil
		}
		return out, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var n any
	return n, json.Unmarshal(b, &n)
}

// same reports whether normalize returned its argument itself.
func same(n, v any) bool {
	switch v.(type) {
	case nil, bool, string, float64:
		return true
	case map[string]any:
		m, ok := n.(map[string]any)
		return ok && reflect.ValueOf(m).UnsafePointer() == reflect.ValueOf(v).UnsafePointer()
	case []any:
		s, ok := n.([]any)
		vs := v.([]any)
		return ok && len(s) == len(vs) && (len(s) == 0 || &s[0] == &vs[0])
	}
	return false
}

// hasNUL reports whether JSON text b holds the escape of a NUL character
// (the encoders here write NUL only as \u0000): a \u0000 after an even
// number of backslashes, not the text "\u0000" written as \\u0000.
func hasNUL(b []byte) bool {
	for i := 0; ; {
		j := strings.Index(string(b[i:]), `\u0000`)
		if j < 0 {
			return false
		}
		j += i
		n := 0
		for k := j - 1; k >= 0 && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return true
		}
		i = j + 1
	}
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func decodeDevice(r *deviceRow) (*store.Device, error) {
	d := &store.Device{Version: r.version}
	if err := json.Unmarshal([]byte(r.identity), &d.Device); err != nil {
		return nil, fmt.Errorf("decode stored device: %w", err)
	}
	var t struct {
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired  map[string]any `json:"desired"`
			Reported map[string]any `json:"reported"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(r.doc(), &t); err != nil {
		return nil, fmt.Errorf("decode stored twin of %q: %w", d.DeviceID, err)
	}
	d.Tags, d.Desired, d.Reported = orEmpty(t.Tags), orEmpty(t.Properties.Desired), orEmpty(t.Properties.Reported)
	return d, nil
}

// CreateDevice implements store.Store.
func (s *Store) CreateDevice(ctx context.Context, d *store.Device) error {
	if err := checkKey("device id", d.DeviceID); err != nil {
		return err
	}
	r, err := encodeDevice(d, false, "")
	if err != nil {
		return err
	}
	err = s.write(ctx, func(q execer) error {
		_, err := q.Exec(ctx, `INSERT INTO devices (id, `+deviceCols+`) VALUES ($1, $2, $3, $4, $5)`,
			d.DeviceID, r.identity, r.version, r.twinArg(), r.rawArg())
		return err
	})
	if isUnique(err) {
		return store.ErrConflict
	}
	return ctxErr(ctx, err)
}

// GetDevice implements store.Store.
func (s *Store) GetDevice(ctx context.Context, id string) (*store.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !storable(id) {
		return nil, store.ErrNotFound
	}
	var r deviceRow
	err := s.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	return decodeDevice(&r)
}

// UpdateDevice implements store.Store.
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(*store.Device) error, recs ...*hub.DeviceJob) (*store.Device, error) {
	// A group of one: the same transaction, locking and encoding. fn's
	// error aborts the transaction, so that the audit entries of ctx are
	// not stored either.
	devs, errs, err := s.updateDevices(ctx, []store.DeviceUpdate{{ID: id, Fn: fn, Recs: recs}}, true)
	if err != nil {
		return nil, err
	}
	return devs[0], errs[0]
}

// UpdateDevices implements store.Store: one transaction that locks the
// group's devices (in id order, so that concurrent groups cannot
// deadlock), runs the update functions in Go and writes the changed rows
// and the records with one statement each.
func (s *Store) UpdateDevices(ctx context.Context, ups []store.DeviceUpdate) ([]*store.Device, []error, error) {
	return s.updateDevices(ctx, ups, false)
}

// updateDevices is UpdateDevices; with whole set, the first update that
// fails stores nothing of the group (an error in errs, err nil).
func (s *Store) updateDevices(ctx context.Context, ups []store.DeviceUpdate, whole bool) ([]*store.Device, []error, error) {
	devs, errs := make([]*store.Device, len(ups)), make([]error, len(ups))
	if len(ups) == 0 {
		return devs, errs, ctx.Err()
	}
	ids := make([]string, 0, len(ups))
	for _, u := range ups {
		if storable(u.ID) {
			ids = append(ids, u.ID)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, nil, ctxErr(ctx, err)
	}
	defer rollback(ctx, tx)
	rows := make(map[string]*deviceRow, len(ids))
	if len(ids) > 0 {
		res, err := tx.Query(ctx, `SELECT id, `+deviceCols+` FROM devices WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
		if err != nil {
			return nil, nil, ctxErr(ctx, err)
		}
		for res.Next() {
			var id string
			r := new(deviceRow)
			if err := res.Scan(append([]any{&id}, r.dest()...)...); err != nil {
				res.Close()
				return nil, nil, ctxErr(ctx, err)
			}
			rows[id] = r
		}
		res.Close()
		if err := res.Err(); err != nil {
			return nil, nil, ctxErr(ctx, err)
		}
	}
	// Updates whose records are for a job whose lease ctx carries and
	// that is no longer current are left out: their replica lost the job.
	var all []string
	for _, u := range ups {
		all = append(all, recJobs(u.Recs)...)
	}
	lost, err := fence(ctx, tx, all)
	if err != nil {
		return nil, nil, ctxErr(ctx, err)
	}
	if s.afterFence != nil {
		s.afterFence()
	}
	// An id updated twice in the group is decoded again from the first
	// update's row: a failed update in between changed only its own copy.
	changed := map[string]*deviceRow{}
	var recs []*hub.DeviceJob
	for i, u := range ups {
		if id := lostJob(lost, u.Recs); id != "" {
			errs[i] = lostErr(id)
			continue
		}
		r, ok := rows[u.ID]
		if !ok {
			errs[i] = store.ErrNotFound
			continue
		}
		d, err := decodeDevice(r)
		if err != nil {
			return nil, nil, err
		}
		before := store.SnapshotIdentity(d)
		if err := u.Fn(d); err != nil {
			errs[i] = err
			continue
		}
		next, err := encodeDevice(d, before.Same(d), r.identity)
		if err != nil {
			errs[i] = err
			continue
		}
		rows[u.ID], changed[u.ID] = &next, &next
		recs = append(recs, u.Recs...)
		devs[i] = d
	}
	if whole {
		for _, err := range errs {
			if err != nil {
				return devs, errs, nil
			}
		}
	}
	if err := writeDevices(ctx, tx, changed, recs); err != nil {
		return nil, nil, ctxErr(ctx, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, ctxErr(ctx, err)
	}
	return devs, errs, nil
}

// writeDevices stores the changed device rows and the records in one
// round trip, and ctx's audit entries (lockHead) in a second.
func writeDevices(ctx context.Context, tx pgx.Tx, changed map[string]*deviceRow, recs []*hub.DeviceJob) error {
	var b pgx.Batch
	if len(changed) > 0 {
		n := len(changed)
		ids, identities, twins, raws := make([]string, 0, n), make([]string, 0, n), make([]*string, 0, n), make([]*string, 0, n)
		versions := make([]int64, 0, n)
		for id, r := range changed {
			ids, identities, versions, raws = append(ids, id), append(identities, r.identity), append(versions, r.version), append(raws, r.raw)
			var t *string
			if r.twin != nil {
				s := string(r.twin)
				t = &s
			}
			twins = append(twins, t)
		}
		b.Queue(`UPDATE devices AS d SET identity = u.identity, version = u.version, twin = u.twin::jsonb, raw = u.raw
			FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[]) AS u(id, identity, version, twin, raw)
			WHERE d.id = u.id COLLATE "C"`, ids, identities, versions, twins, raws)
	}
	if err := queueDeviceJobs(&b, recs); err != nil {
		return err
	}
	a := lockHead(ctx, &b)
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return err
	}
	return a.store(ctx, tx)
}

// DeleteDevice implements store.Store.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !storable(id) {
		return store.ErrNotFound
	}
	return s.write(ctx, func(q execer) error {
		tag, err := q.Exec(ctx, `DELETE FROM devices WHERE id = $1`, id)
		if err != nil {
			return ctxErr(ctx, err)
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// ScanDevices implements store.Store.
func (s *Store) ScanDevices(ctx context.Context, afterID string, limit int) ([]*store.Device, error) {
	cond, args := keyCond([]string{"id"}, []string{afterID}, 1)
	rows, err := s.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE `+cond+` ORDER BY id LIMIT $2`, append(args, sqlLimit(limit))...)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	defer rows.Close()
	var out []*store.Device
	for rows.Next() {
		var r deviceRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, ctxErr(ctx, err)
		}
		d, err := decodeDevice(&r)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, ctxErr(ctx, rows.Err())
}

// CreateJob implements store.Store.
func (s *Store) CreateJob(ctx context.Context, j *hub.Job) error {
	if err := checkKey("job id", j.JobID); err != nil {
		return err
	}
	doc, err := encodeJob(j)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(q execer) error {
		_, err := q.Exec(ctx, `INSERT INTO jobs (id, created, doc, started) VALUES ($1, $2, $3, $4)`,
			j.JobID, createdKey(j), doc, j.StartedThrough)
		return err
	})
	if isUnique(err) {
		return store.ErrConflict
	}
	return ctxErr(ctx, err)
}

func encodeJob(j *hub.Job) (string, error) {
	if err := checkKey("job "+j.JobID+": startedThrough", j.StartedThrough); err != nil {
		return "", err
	}
	doc, err := json.Marshal(j)
	if err != nil {
		return "", fmt.Errorf("encode job %q: %w", j.JobID, err)
	}
	return string(doc), nil
}

// createdKey is the sort key of a job's createdTime: fixed-width UTC, so
// that text order (COLLATE "C") is time order whatever zone the caller's
// time is in, to the nanosecond (timestamptz keeps microseconds).
func createdKey(j *hub.Job) string {
	if j.CreatedTime == nil {
		return ""
	}
	return j.CreatedTime.UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// GetJob implements store.Store.
func (s *Store) GetJob(ctx context.Context, id string) (*hub.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !storable(id) {
		return nil, store.ErrNotFound
	}
	var doc, started string
	err := s.pool.QueryRow(ctx, `SELECT doc, started FROM jobs WHERE id = $1`, id).Scan(&doc, &started)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	return decodeJob(doc, started)
}

func decodeJob(doc, started string) (*hub.Job, error) {
	j := new(hub.Job)
	if err := json.Unmarshal([]byte(doc), j); err != nil {
		return nil, fmt.Errorf("decode stored job: %w", err)
	}
	j.StartedThrough = started
	return j, nil
}

const putJobSQL = `UPDATE jobs SET created = $2, doc = $3, started = $4 WHERE id = $1`

// PutJob implements store.Store.
func (s *Store) PutJob(ctx context.Context, j *hub.Job) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, fenced := store.LeaseOf(ctx, j.JobID); fenced {
		return s.PutDeviceJobs(ctx, nil, j) // the lease is checked in its transaction
	}
	if !storable(j.JobID) {
		return fmt.Errorf("job %q: %w", j.JobID, store.ErrNotFound)
	}
	doc, err := encodeJob(j)
	if err != nil {
		return err
	}
	return s.write(ctx, func(q execer) error {
		tag, err := q.Exec(ctx, putJobSQL, j.JobID, createdKey(j), doc, j.StartedThrough)
		if err != nil {
			return ctxErr(ctx, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("job %q: %w", j.JobID, store.ErrNotFound)
		}
		return nil
	})
}

// ListJobs implements store.Store.
func (s *Store) ListJobs(ctx context.Context) ([]*hub.Job, error) {
	rows, err := s.pool.Query(ctx, `SELECT doc, started FROM jobs ORDER BY created DESC, id`)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	defer rows.Close()
	var out []*hub.Job
	for rows.Next() {
		var doc, started string
		if err := rows.Scan(&doc, &started); err != nil {
			return nil, ctxErr(ctx, err)
		}
		j, err := decodeJob(doc, started)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, ctxErr(ctx, rows.Err())
}

// PutDeviceJobs implements store.Store.
func (s *Store) PutDeviceJobs(ctx context.Context, djs []*hub.DeviceJob, jobs ...*hub.Job) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	type put struct {
		id, doc, started string
		created          string
	}
	puts := make([]put, 0, len(jobs))
	for _, j := range jobs {
		if !storable(j.JobID) {
			return fmt.Errorf("job %q: %w", j.JobID, store.ErrNotFound)
		}
		doc, err := encodeJob(j)
		if err != nil {
			return err
		}
		puts = append(puts, put{j.JobID, doc, j.StartedThrough, createdKey(j)})
	}
	// Jobs are locked in id order, after the records, as everywhere.
	slices.SortStableFunc(puts, func(a, b put) int { return strings.Compare(a.id, b.id) })
	var b pgx.Batch
	if err := queueDeviceJobs(&b, djs); err != nil {
		return err
	}
	for _, p := range puts {
		b.Queue(putJobSQL, p.id, p.created, p.doc, p.started).Exec(func(tag pgconn.CommandTag) error {
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("job %q: %w", p.id, store.ErrNotFound)
			}
			return nil
		})
	}
	if b.Len() == 0 && len(store.AuditOf(ctx)) == 0 {
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return ctxErr(ctx, err)
	}
	defer rollback(ctx, tx)
	ids := recJobs(djs)
	for _, j := range jobs {
		ids = append(ids, j.JobID)
	}
	lost, err := fence(ctx, tx, ids)
	if err != nil {
		return ctxErr(ctx, err)
	}
	if s.afterFence != nil {
		s.afterFence()
	}
	for _, id := range ids {
		if lost[id] {
			return lostErr(id)
		}
	}
	return commitAudited(ctx, tx, &b)
}

// upsertDeviceJobsSQL inserts or replaces records given as arrays.
const upsertDeviceJobsSQL = `INSERT INTO device_jobs (job_id, device_id, doc, qdoc)
	SELECT j, d, doc, q::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(j, d, doc, q)
	ON CONFLICT (job_id, device_id) DO UPDATE SET doc = excluded.doc, qdoc = excluded.qdoc`

// upsertAlikeSQL stores records alike but for their device id: their
// encodings are a template around the id, which PostgreSQL fills in.
const upsertAlikeSQL = `INSERT INTO device_jobs (job_id, device_id, doc, qdoc)
	SELECT $1, d, $2 || d || $3, ($4 || d || $5)::jsonb FROM unnest($6::text[]) AS u(d)
	ON CONFLICT (job_id, device_id) DO UPDATE SET doc = excluded.doc, qdoc = excluded.qdoc`

// bulkMin is the shortest run of records alike but for their device (a
// new job's "pending" records: one per device of the fleet) stored with
// upsertAlikeSQL; chunk bounds the records of one statement.
const (
	bulkMin = 64
	chunk   = 10_000
)

// queueDeviceJobs queues the upserts of records: the last of each key
// wins (one statement may not change a row twice), in key order, so that
// concurrent writers lock rows in one order and cannot deadlock.
func queueDeviceJobs(b *pgx.Batch, djs []*hub.DeviceJob) error {
	if len(djs) == 0 {
		return nil
	}
	for _, dj := range djs {
		if err := checkKey("device job: job id", dj.JobID); err != nil {
			return err
		}
		if err := checkKey("device job: device id", dj.DeviceID); err != nil {
			return err
		}
	}
	sorted := slices.Clone(djs)
	slices.SortStableFunc(sorted, func(a, b *hub.DeviceJob) int {
		return cmp.Or(strings.Compare(a.JobID, b.JobID), strings.Compare(a.DeviceID, b.DeviceID))
	})
	out := sorted[:0]
	for i, dj := range sorted {
		if i+1 < len(sorted) && sorted[i+1].JobID == dj.JobID && sorted[i+1].DeviceID == dj.DeviceID {
			continue // a later record of the same key follows
		}
		out = append(out, dj)
	}
	var jobIDs, devIDs, docs []string
	var qdocs []*string
	flush := func() {
		if len(jobIDs) > 0 {
			b.Queue(upsertDeviceJobsSQL, jobIDs, devIDs, docs, qdocs)
			jobIDs, devIDs, docs, qdocs = nil, nil, nil, nil
		}
	}
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && j-i < chunk && plainJSON(out[i].DeviceID) && alike(out[i], out[j]) && plainJSON(out[j].DeviceID) {
			j++
		}
		if j-i >= bulkMin {
			ok, err := queueAlike(b, out[i:j], flush)
			if err != nil {
				return err
			}
			if ok {
				i = j
				continue
			}
		}
		for _, dj := range out[i:j] {
			doc, err := store.DeviceJobJSON(dj)
			if err != nil {
				return err
			}
			qdoc, err := store.DeviceJobDoc(dj)
			if err != nil {
				return err
			}
			var q *string
			if !hasNUL([]byte(qdoc)) {
				q = &qdoc
			}
			jobIDs, devIDs, docs, qdocs = append(jobIDs, dj.JobID), append(devIDs, dj.DeviceID), append(docs, string(doc)), append(qdocs, q)
			if len(jobIDs) == chunk {
				flush()
			}
		}
		i = j
	}
	flush()
	return nil
}

// alike reports whether two records encode the same but for their
// device id.
func alike(a, b *hub.DeviceJob) bool {
	sameTime := func(x, y *hub.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(y.Time)) }
	return a.JobID == b.JobID && a.JobType == b.JobType && a.Status == b.Status &&
		a.Outcome == nil && b.Outcome == nil && a.Error == nil && b.Error == nil &&
		sameTime(a.StartTimeUtc, b.StartTimeUtc) && sameTime(a.EndTimeUtc, b.EndTimeUtc) &&
		sameTime(a.CreatedDateTimeUtc, b.CreatedDateTimeUtc) && sameTime(a.LastUpdatedDateTimeUtc, b.LastUpdatedDateTimeUtc)
}

// idMark stands for the device id in the templates of queueAlike.
const idMark = "iotjobs-device-id-mark"

// queueAlike queues one upsertAlikeSQL for records alike but for their
// device ids, whose JSON needs no escaping (plainJSON). It reports false,
// queueing nothing, when a template does not hold the id exactly once or
// the query document holds a NUL character.
func queueAlike(b *pgx.Batch, djs []*hub.DeviceJob, flush func()) (bool, error) {
	t := *djs[0]
	t.DeviceID = idMark
	doc, err := store.DeviceJobJSON(&t)
	if err != nil {
		return false, err
	}
	qdoc, err := store.DeviceJobDoc(&t)
	if err != nil {
		return false, err
	}
	if strings.Count(string(doc), idMark) != 1 || strings.Count(qdoc, idMark) != 1 || hasNUL([]byte(qdoc)) {
		return false, nil
	}
	docPre, docPost, _ := strings.Cut(string(doc), idMark)
	qPre, qPost, _ := strings.Cut(qdoc, idMark)
	ids := make([]string, len(djs))
	for i, dj := range djs {
		ids[i] = dj.DeviceID
	}
	flush()
	b.Queue(upsertAlikeSQL, t.JobID, docPre, docPost, qPre, qPost, ids)
	return true, nil
}

// plainJSON reports whether s is written as itself inside a JSON string
// by every encoder here: printable ASCII without ", \, <, > and &.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// ScanDeviceJobs implements store.Store.
func (s *Store) ScanDeviceJobs(ctx context.Context, jobID string, after [2]string, limit int) ([]*hub.DeviceJob, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cond, args := keyCond([]string{"job_id", "device_id"}, after[:], 1)
	args = append(args, sqlLimit(limit))
	if jobID != "" {
		if !storable(jobID) {
			return nil, nil
		}
		cond += " AND job_id = $4"
		args = append(args, jobID)
	}
	rows, err := s.pool.Query(ctx, `SELECT doc FROM device_jobs WHERE `+cond+` ORDER BY job_id, device_id LIMIT $3`, args...)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	defer rows.Close()
	var out []*hub.DeviceJob
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, ctxErr(ctx, err)
		}
		dj := new(hub.DeviceJob)
		if err := json.Unmarshal(doc, dj); err != nil {
			return nil, fmt.Errorf("decode stored device job: %w", err)
		}
		out = append(out, dj)
	}
	return out, ctxErr(ctx, rows.Err())
}
