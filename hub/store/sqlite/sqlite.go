package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var _ store.Store = (*Store)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS devices (
	id       TEXT PRIMARY KEY,
	identity TEXT NOT NULL,
	version  INTEGER NOT NULL,
	twin     BLOB NOT NULL -- JSONB of the query document, see queryDoc
);
CREATE TABLE IF NOT EXISTS jobs (
	id      TEXT PRIMARY KEY,
	created TEXT NOT NULL,
	doc     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS device_jobs (
	job_id    TEXT NOT NULL,
	device_id TEXT NOT NULL,
	doc       TEXT NOT NULL,
	qdoc      BLOB, -- JSONB of the query document, see queryDoc
	PRIMARY KEY (job_id, device_id)
);
`

// Store is a store.Store on one SQLite file.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the SQLite database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	// The path goes into a URI: escape what a URI would read as syntax.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	dsn := "file:" + esc + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=mmap_size(17179869184)&_pragma=temp_store(MEMORY)&_pragma=cache_size(-131072)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and it keeps
	// read-modify-write transactions simple and free of SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate sqlite %q: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate sqlite %q: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// deviceRow is a device as stored: its identity, its twin version and the
// query document, which also holds the twin's sections (tags, desired and
// reported with their $version and $metadata) so that they are kept once.
type deviceRow struct {
	identity string
	version  int64
	twin     string // the query document as JSON text, see queryDoc
}

func encodeDevice(d *store.Device) (deviceRow, error) {
	var r deviceRow
	var err error
	enc := func(v any) string {
		if err != nil {
			return ""
		}
		var b []byte
		b, err = json.Marshal(v)
		return string(b)
	}
	r.identity = enc(d.Device)
	r.version = d.Version
	if err != nil {
		return r, err
	}
	t := d.Twin()
	t.Tags = orEmpty(t.Tags)
	t.Properties.Desired = orEmpty(t.Properties.Desired)
	t.Properties.Reported = orEmpty(t.Properties.Reported)
	r.twin, err = queryDoc(t)
	return r, err
}

// queryDoc is the JSON of the document queries evaluate for v: what
// store.Doc gives (numbers float64, as encoding/json decodes them),
// encoded again. Its numbers are Go's shortest float64 forms, which
// SQLite reads back exactly; and its encoding is the byte-for-byte row of
// SELECT * that store.EvalDevices and EvalDeviceJobs give. The store keeps
// it as JSONB, SQLite's parsed binary form, so that the many json_extract
// and json_type calls of a compiled query do not parse text per call; the
// JSONB keeps number and string texts as they were, so json() gives the
// same text back.
func queryDoc(v any) (string, error) {
	doc, err := store.Doc(v)
	if err != nil {
		return "", fmt.Errorf("encode query document: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("encode query document: %w", err)
	}
	return string(b), nil
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func decodeDevice(r deviceRow) (*store.Device, error) {
	d := &store.Device{Version: r.version}
	var t struct {
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired  map[string]any `json:"desired"`
			Reported map[string]any `json:"reported"`
		} `json:"properties"`
	}
	if err := json.Unmarshal([]byte(r.identity), &d.Device); err != nil {
		return nil, fmt.Errorf("decode stored device: %w", err)
	}
	if err := json.Unmarshal([]byte(r.twin), &t); err != nil {
		return nil, fmt.Errorf("decode stored twin of %q: %w", d.DeviceID, err)
	}
	d.Tags, d.Desired, d.Reported = orEmpty(t.Tags), orEmpty(t.Properties.Desired), orEmpty(t.Properties.Reported)
	return d, nil
}

// CreateDevice implements store.Store.
func (s *Store) CreateDevice(ctx context.Context, d *store.Device) error {
	r, err := encodeDevice(d)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx,
		`INSERT INTO devices (id, identity, version, twin) VALUES (?, ?, ?, jsonb(?))`,
		d.DeviceID, r.identity, r.version, r.twin)
	if isUnique(err) {
		return store.ErrConflict
	}
	return err
}

// CreateDevices inserts many devices in one transaction: all or none.
// It is the bulk path for loading large fleets (one commit instead of one
// per device). Errors: ErrConflict, naming the first duplicate id.
func (s *Store) CreateDevices(ctx context.Context, ds []*store.Device) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO devices (id, identity, version, twin) VALUES (?, ?, ?, jsonb(?))`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, d := range ds {
		r, err := encodeDevice(d)
		if err != nil {
			return fmt.Errorf("device %q: %w", d.DeviceID, err)
		}
		_, err = stmt.ExecContext(ctx, d.DeviceID, r.identity, r.version, r.twin)
		if isUnique(err) {
			return fmt.Errorf("device %q: %w", d.DeviceID, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("device %q: %w", d.DeviceID, err)
		}
	}
	return tx.Commit()
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getDevice(ctx context.Context, q queryer, id string) (*store.Device, error) {
	var r deviceRow
	err := q.QueryRowContext(ctx,
		`SELECT identity, version, json(twin) FROM devices WHERE id = ?`, id).
		Scan(&r.identity, &r.version, &r.twin)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return decodeDevice(r)
}

// GetDevice implements store.Store.
func (s *Store) GetDevice(ctx context.Context, id string) (*store.Device, error) {
	return getDevice(ctx, s.db, id)
}

// UpdateDevice implements store.Store.
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(*store.Device) error, recs ...*hub.DeviceJob) (*store.Device, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	d, err := getDevice(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if err := fn(d); err != nil {
		return nil, err
	}
	r, err := encodeDevice(d)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE devices SET identity = ?, version = ?, twin = jsonb(?) WHERE id = ?`,
		r.identity, r.version, r.twin, id); err != nil {
		return nil, err
	}
	if err := putDeviceJobs(ctx, tx, recs); err != nil {
		return nil, err
	}
	return d, tx.Commit()
}

// UpdateDevices implements store.Store.
func (s *Store) UpdateDevices(ctx context.Context, ups []store.DeviceUpdate) ([]*store.Device, []error, error) {
	devs, errs := make([]*store.Device, len(ups)), make([]error, len(ups))
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	for i, u := range ups {
		d, err := getDevice(ctx, tx, u.ID)
		if errors.Is(err, store.ErrNotFound) {
			errs[i] = err
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if err := u.Fn(d); err != nil {
			errs[i] = err
			continue
		}
		r, err := encodeDevice(d)
		if err != nil {
			errs[i] = err
			continue
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE devices SET identity = ?, version = ?, twin = jsonb(?) WHERE id = ?`,
			r.identity, r.version, r.twin, u.ID); err != nil {
			return nil, nil, err
		}
		if err := putDeviceJobs(ctx, tx, u.Recs); err != nil {
			return nil, nil, err
		}
		devs[i] = d
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, err
	}
	return devs, errs, nil
}

// DeleteDevice implements store.Store.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM devices WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// ScanDevices implements store.Store.
func (s *Store) ScanDevices(ctx context.Context, afterID string, limit int) ([]*store.Device, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT identity, version, json(twin) FROM devices WHERE id > ? ORDER BY id LIMIT ?`,
		afterID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Device
	for rows.Next() {
		var r deviceRow
		if err := rows.Scan(&r.identity, &r.version, &r.twin); err != nil {
			return nil, err
		}
		d, err := decodeDevice(r)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// CreateJob implements store.Store.
func (s *Store) CreateJob(ctx context.Context, j *hub.Job) error {
	doc, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO jobs (id, created, doc) VALUES (?, ?, ?)`, j.JobID, createdKey(j), string(doc))
	if isUnique(err) {
		return store.ErrConflict
	}
	return err
}

// createdKey is the sort key of a job's createdTime: fixed-width UTC, so
// that text order is time order whatever zone the caller's time is in.
func createdKey(j *hub.Job) string {
	if j.CreatedTime == nil {
		return ""
	}
	return j.CreatedTime.UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// GetJob implements store.Store.
func (s *Store) GetJob(ctx context.Context, id string) (*hub.Job, error) {
	var doc string
	err := s.db.QueryRowContext(ctx, `SELECT doc FROM jobs WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	j := new(hub.Job)
	return j, json.Unmarshal([]byte(doc), j)
}

// PutJob implements store.Store.
func (s *Store) PutJob(ctx context.Context, j *hub.Job) error {
	return putJob(ctx, s.db, j)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func putJob(ctx context.Context, x execer, j *hub.Job) error {
	doc, err := json.Marshal(j)
	if err != nil {
		return err
	}
	res, err := x.ExecContext(ctx, `UPDATE jobs SET created = ?, doc = ? WHERE id = ?`, createdKey(j), string(doc), j.JobID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("job %q: %w", j.JobID, store.ErrNotFound)
	}
	return nil
}

// ListJobs implements store.Store.
func (s *Store) ListJobs(ctx context.Context) ([]*hub.Job, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT doc FROM jobs ORDER BY created DESC, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*hub.Job
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		j := new(hub.Job)
		if err := json.Unmarshal([]byte(doc), j); err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// PutDeviceJobs implements store.Store.
func (s *Store) PutDeviceJobs(ctx context.Context, djs []*hub.DeviceJob, jobs ...*hub.Job) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := putDeviceJobs(ctx, tx, djs); err != nil {
		return err
	}
	for _, j := range jobs {
		if err := putJob(ctx, tx, j); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func putDeviceJobs(ctx context.Context, tx *sql.Tx, djs []*hub.DeviceJob) error {
	if len(djs) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO device_jobs (job_id, device_id, doc, qdoc) VALUES (?, ?, ?, jsonb(?))
		 ON CONFLICT (job_id, device_id) DO UPDATE SET doc = excluded.doc, qdoc = excluded.qdoc`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, dj := range djs {
		doc, err := json.Marshal(dj)
		if err != nil {
			return err
		}
		qdoc, err := store.DeviceJobDoc(dj)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, dj.JobID, dj.DeviceID, string(doc), qdoc); err != nil {
			return err
		}
	}
	return nil
}

// ScanDeviceJobs implements store.Store.
func (s *Store) ScanDeviceJobs(ctx context.Context, jobID string, after [2]string, limit int) ([]*hub.DeviceJob, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT doc FROM device_jobs
		 WHERE (? = '' OR job_id = ?) AND (job_id > ? OR (job_id = ? AND device_id > ?))
		 ORDER BY job_id, device_id LIMIT ?`,
		jobID, jobID, after[0], after[0], after[1], limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*hub.DeviceJob
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		dj := new(hub.DeviceJob)
		if err := json.Unmarshal([]byte(doc), dj); err != nil {
			return nil, err
		}
		out = append(out, dj)
	}
	return out, rows.Err()
}
