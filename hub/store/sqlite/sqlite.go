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
	twin     BLOB NOT NULL -- JSONB of the query document, see twinDoc
);
CREATE TABLE IF NOT EXISTS jobs (
	id      TEXT PRIMARY KEY,
	created TEXT NOT NULL,
	doc     TEXT NOT NULL,
	started TEXT -- hub.Job.StartedThrough, which doc (the wire form) leaves out
);
CREATE TABLE IF NOT EXISTS device_jobs (
	job_id    TEXT NOT NULL,
	device_id TEXT NOT NULL,
	doc       TEXT NOT NULL,
	qdoc      BLOB, -- JSONB of the query document, store.DeviceJobDoc
	PRIMARY KEY (job_id, device_id)
);
`

// Store is a store.Store on one SQLite file.
type Store struct {
	db *sql.DB
	// The statements a job runs per device, prepared once: modernc's
	// sqlite prepares a statement given as text at every call, which cost
	// a twin job as much as its own reads and writes.
	getDev, updDev, putDJ, putJob, putBulk, putAudit *sql.Stmt
}

const (
	getDeviceSQL    = `SELECT identity, version, json(twin) FROM devices WHERE id = ?`
	updateDeviceSQL = `UPDATE devices SET identity = ?, version = ?, twin = jsonb(?) WHERE id = ?`
	putDeviceJobSQL = `INSERT INTO device_jobs (job_id, device_id, doc, qdoc) VALUES (?, ?, ?, jsonb(?))
		 ON CONFLICT (job_id, device_id) DO UPDATE SET doc = excluded.doc, qdoc = excluded.qdoc`
	putJobSQL = `UPDATE jobs SET created = ?, doc = ?, started = ? WHERE id = ?`
	// putAlikeSQL stores records alike but for their device (putAlike).
	// The WHERE keeps SQLite from reading ON CONFLICT as part of a join.
	putAlikeSQL = `INSERT INTO device_jobs (job_id, device_id, doc, qdoc)
		 SELECT ?1, value, ?2 || json_quote(value) || ?3, jsonb(?4 || json_quote(value) || ?5) FROM json_each(?6) WHERE true
		 ON CONFLICT (job_id, device_id) DO UPDATE SET doc = excluded.doc, qdoc = excluded.qdoc`
)

// Open opens (creating if needed) the SQLite database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	// The path goes into a URI: escape what a URI would read as syntax.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	// The page cache is 64 MB: reads of the file go through the memory
	// map, and here every commit scans the whole cache (the cache's
	// highest page number, seen as 262145, the lock page's, lies past
	// the end of the file, so pager_end_transaction truncates it, the
	// slow way): with 128 MB that scan was 4-8% of a large job's CPU.
	dsn := "file:" + esc + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=mmap_size(17179869184)&_pragma=temp_store(MEMORY)&_pragma=cache_size(-65536)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and it keeps
	// read-modify-write transactions simple and free of SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	s := &Store{db: db}
	if err := s.upgrade(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	for _, st := range []struct {
		stmt **sql.Stmt
		sql  string
	}{{&s.getDev, getDeviceSQL}, {&s.updDev, updateDeviceSQL}, {&s.putDJ, putDeviceJobSQL}, {&s.putJob, putJobSQL}, {&s.putBulk, putAlikeSQL}, {&s.putAudit, putAuditSQL}} {
		if *st.stmt, err = db.PrepareContext(ctx, st.sql); err != nil {
			db.Close()
			return nil, fmt.Errorf("open sqlite %q: prepare %q: %w", path, st.sql, err)
		}
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// txStmts are the store's prepared statements bound to a transaction.
type txStmts struct {
	getDev, updDev, putDJ, putJob, putBulk *sql.Stmt
}

func (s *Store) bind(ctx context.Context, tx *sql.Tx) txStmts {
	return txStmts{tx.StmtContext(ctx, s.getDev), tx.StmtContext(ctx, s.updDev), tx.StmtContext(ctx, s.putDJ),
		tx.StmtContext(ctx, s.putJob), tx.StmtContext(ctx, s.putBulk)}
}

// deviceRow is a device as stored: its identity, its twin version and the
// query document, which also holds the twin's sections (tags, desired and
// reported with their $version and $metadata) so that they are kept once.
type deviceRow struct {
	identity string
	version  int64
	twin     string // the query document as JSON text, see twinDoc
}

// encodeDevice encodes d's row; with unchanged set, identity is d's
// identity as stored, kept as it is.
func encodeDevice(d *store.Device, unchanged bool, identity string) (deviceRow, error) {
	r := deviceRow{identity: identity, version: d.Version}
	if !unchanged {
		b, err := json.Marshal(d.Device)
		if err != nil {
			return r, err
		}
		r.identity = string(b)
	}
	var err error
	r.twin, err = twinDoc(d)
	return r, err
}

// twinDoc is the JSON of the document queries evaluate for a device:
// what store.Doc gives for its twin (numbers float64, as encoding/json
// decodes them), encoded again, but built without that JSON round trip
// (store.TwinDoc, store.AppendJSON): a twin job encodes one per device in
// the store's single writer. Its numbers are Go's shortest float64 forms,
// which SQLite reads back exactly; and its encoding is the byte-for-byte
// row of SELECT * that store.EvalDevices gives (TestTwinDocRow holds it to
// the round trip's bytes). The store keeps it as JSONB, SQLite's parsed
// binary form, so that the many json_extract and json_type calls of a
// compiled query do not parse text per call; the JSONB keeps number and
// string texts as they were, so json() gives the same text back.
func twinDoc(d *store.Device) (string, error) {
	b, err := store.AppendJSON(make([]byte, 0, 1024), store.TwinDoc(d))
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
	r, err := encodeDevice(d, false, "")
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO devices (id, identity, version, twin) VALUES (?, ?, ?, jsonb(?))`,
			d.DeviceID, r.identity, r.version, r.twin)
		return err
	})
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
		r, err := encodeDevice(d, false, "")
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
	if err := appendAudit(ctx, tx, s.putAudit); err != nil {
		return err
	}
	return tx.Commit()
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func getDevice(ctx context.Context, get *sql.Stmt, id string) (*store.Device, error) {
	var r deviceRow
	err := get.QueryRowContext(ctx, id).Scan(&r.identity, &r.version, &r.twin)
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
	return getDevice(ctx, s.getDev, id)
}

// UpdateDevice implements store.Store.
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(*store.Device) error, recs ...*hub.DeviceJob) (*store.Device, error) {
	// A group of one: the same transaction, read and identity handling.
	// fn's error aborts the transaction, so that the audit entries of
	// ctx are not stored either.
	devs, errs, err := s.updateDevices(ctx, []store.DeviceUpdate{{ID: id, Fn: fn, Recs: recs}}, true)
	if err != nil {
		return nil, err
	}
	return devs[0], errs[0]
}

// UpdateDevices implements store.Store.
func (s *Store) UpdateDevices(ctx context.Context, ups []store.DeviceUpdate) ([]*store.Device, []error, error) {
	return s.updateDevices(ctx, ups, false)
}

// updateDevices is UpdateDevices; with whole set, the first update that
// fails stores nothing of the group (an error in errs, err nil).
func (s *Store) updateDevices(ctx context.Context, ups []store.DeviceUpdate, whole bool) ([]*store.Device, []error, error) {
	devs, errs := make([]*store.Device, len(ups)), make([]error, len(ups))
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	st := s.bind(ctx, tx)
	// One read for the group (a twin job's devices arrive in groups of
	// hundreds); an id updated twice in the group is read from the first
	// update's row.
	rows, err := getDevices(ctx, tx, ups)
	if err != nil {
		return nil, nil, err
	}
	for i, u := range ups {
		r, ok := rows[u.ID]
		if !ok {
			errs[i] = store.ErrNotFound
			if whole {
				return devs, errs, nil
			}
			continue
		}
		d, err := decodeDevice(r)
		if err != nil {
			return nil, nil, err
		}
		before := store.SnapshotIdentity(d)
		if err := u.Fn(d); err != nil {
			errs[i] = err
			if whole {
				return devs, errs, nil
			}
			continue
		}
		next, err := encodeDevice(d, before.Same(d), r.identity)
		if err != nil {
			errs[i] = err
			if whole {
				return devs, errs, nil
			}
			continue
		}
		if _, err := st.updDev.ExecContext(ctx, next.identity, next.version, next.twin, u.ID); err != nil {
			return nil, nil, err
		}
		if err := putDeviceJobs(ctx, st, u.Recs); err != nil {
			return nil, nil, err
		}
		rows[u.ID] = next
		devs[i] = d
	}
	if err := appendAudit(ctx, tx, s.putAudit); err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, err
	}
	return devs, errs, nil
}

// getDevices reads the rows of the devices ups name, by id.
func getDevices(ctx context.Context, tx *sql.Tx, ups []store.DeviceUpdate) (map[string]deviceRow, error) {
	ids := make([]string, len(ups))
	for i, u := range ups {
		ids[i] = u.ID
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	res, err := tx.QueryContext(ctx, `SELECT id, identity, version, json(twin) FROM devices WHERE id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, err
	}
	defer res.Close()
	rows := make(map[string]deviceRow, len(ups))
	for res.Next() {
		var id string
		var r deviceRow
		if err := res.Scan(&id, &r.identity, &r.version, &r.twin); err != nil {
			return nil, err
		}
		rows[id] = r
	}
	return rows, res.Err()
}

// DeleteDevice implements store.Store.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
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
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, created, doc, started) VALUES (?, ?, ?, ?)`,
			j.JobID, createdKey(j), string(doc), j.StartedThrough)
		return err
	})
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
	var started sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT doc, started FROM jobs WHERE id = ?`, id).Scan(&doc, &started)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return decodeJob(doc, started)
}

func decodeJob(doc string, started sql.NullString) (*hub.Job, error) {
	j := new(hub.Job)
	if err := json.Unmarshal([]byte(doc), j); err != nil {
		return nil, fmt.Errorf("decode stored job: %w", err)
	}
	j.StartedThrough = started.String
	return j, nil
}

// PutJob implements store.Store.
func (s *Store) PutJob(ctx context.Context, j *hub.Job) error {
	if len(store.AuditOf(ctx)) > 0 {
		return s.inTx(ctx, func(tx *sql.Tx) error { return putJob(ctx, tx.StmtContext(ctx, s.putJob), j) })
	}
	return putJob(ctx, s.putJob, j)
}

func putJob(ctx context.Context, put *sql.Stmt, j *hub.Job) error {
	doc, err := json.Marshal(j)
	if err != nil {
		return err
	}
	res, err := put.ExecContext(ctx, createdKey(j), string(doc), j.StartedThrough, j.JobID)
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
	rows, err := s.db.QueryContext(ctx, `SELECT doc, started FROM jobs ORDER BY created DESC, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*hub.Job
	for rows.Next() {
		var doc string
		var started sql.NullString
		if err := rows.Scan(&doc, &started); err != nil {
			return nil, err
		}
		j, err := decodeJob(doc, started)
		if err != nil {
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
	st := s.bind(ctx, tx)
	if err := putDeviceJobs(ctx, st, djs); err != nil {
		return err
	}
	for _, j := range jobs {
		if err := putJob(ctx, st.putJob, j); err != nil {
			return err
		}
	}
	if err := appendAudit(ctx, tx, s.putAudit); err != nil {
		return err
	}
	return tx.Commit()
}

func putDeviceJobs(ctx context.Context, st txStmts, djs []*hub.DeviceJob) error {
	for i := 0; i < len(djs); {
		// A run of records alike, whose ids need no escaping (device ids
		// never do).
		j := i + 1
		for plainJSON(djs[i].DeviceID) && j < len(djs) && alike(djs[i], djs[j]) && plainJSON(djs[j].DeviceID) {
			j++
		}
		if j-i >= bulkMin {
			done, err := putAlike(ctx, st.putBulk, djs[i:j])
			if err != nil {
				return err
			}
			if done {
				i = j
				continue
			}
		}
		for _, dj := range djs[i:j] {
			doc, err := store.DeviceJobJSON(dj)
			if err != nil {
				return err
			}
			qdoc, err := store.DeviceJobDoc(dj)
			if err != nil {
				return err
			}
			if _, err := st.putDJ.ExecContext(ctx, dj.JobID, dj.DeviceID, string(doc), qdoc); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// bulkMin is the shortest run of records alike but for their device
// (a new job's "pending" records: a hundred thousand for a large fleet,
// before any device is touched) that putAlike stores with one statement.
const bulkMin = 64

// alike reports whether two records encode the same but for their
// device id.
func alike(a, b *hub.DeviceJob) bool {
	sameTime := func(x, y *hub.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(y.Time)) }
	return a.JobID == b.JobID && a.JobType == b.JobType && a.Status == b.Status &&
		a.Outcome == nil && b.Outcome == nil && a.Error == nil && b.Error == nil &&
		sameTime(a.StartTimeUtc, b.StartTimeUtc) && sameTime(a.EndTimeUtc, b.EndTimeUtc) &&
		sameTime(a.CreatedDateTimeUtc, b.CreatedDateTimeUtc) && sameTime(a.LastUpdatedDateTimeUtc, b.LastUpdatedDateTimeUtc)
}

// idMark stands for the device id in the templates of putAlike.
const idMark = "iotjobs-device-id-mark"

// putAlike stores records alike but for their device id with one
// statement: their encodings are a template around the id, which SQLite
// fills in (json_quote), so that neither the encoding nor the call is
// paid per record. It reports false, storing nothing, when an id needs
// escaping in JSON (device ids never do; json_quote and the store's
// encoders escape alike only plain text) or the template does not hold
// the id exactly once.
func putAlike(ctx context.Context, bulk *sql.Stmt, djs []*hub.DeviceJob) (bool, error) {
	ids := make([]string, len(djs))
	for i, dj := range djs {
		if !plainJSON(dj.DeviceID) {
			return false, nil
		}
		ids[i] = dj.DeviceID
	}
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
	mark := `"` + idMark + `"`
	if strings.Count(string(doc), mark) != 1 || strings.Count(qdoc, mark) != 1 {
		return false, nil
	}
	docPre, docPost, _ := strings.Cut(string(doc), mark)
	qPre, qPost, _ := strings.Cut(qdoc, mark)
	list, err := json.Marshal(ids)
	if err != nil {
		return false, err
	}
	if _, err := bulk.ExecContext(ctx, t.JobID, docPre, docPost, qPre, qPost, string(list)); err != nil {
		return false, err
	}
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
