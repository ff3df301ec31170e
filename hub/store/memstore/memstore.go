package memstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store in memory. One operation runs at a time, as on
// the SQLite store's single connection; a caller waiting for its turn
// gives up when its context ends.
type Store struct {
	turn chan struct{} // a token: holding it is holding the store

	devices   map[string]*entry
	deviceIDs []string               // sorted
	jobs      map[string]*hub.Job    // copies, never handed out (clone.go)
	djobs     map[string]*jobRecords // job id → its device records
	djobIDs   []string               // sorted
	leases    map[string]store.Lease // job id → its lease (lease.go)
	replicas  map[string]store.Replica
	certs     map[string]hub.Certificate // certificates.go
}

// entry is a stored device: a copy of it, and the query document of its
// twin and that document's JSON, built at the first query after a write
// and shared by every query until the next (a dry-run asks many questions
// of the same twins). It is the store.Row of the device.
type entry struct {
	dev     *store.Device // never changed, never handed out (see clone.go)
	docOnce sync.Once
	doc     map[string]any
	docErr  error
	rawOnce sync.Once
	raw     json.RawMessage
	rawErr  error
}

// Doc implements store.Row.
func (e *entry) Doc() (map[string]any, error) {
	e.docOnce.Do(func() { e.doc = store.TwinDoc(e.dev) })
	return e.doc, e.docErr
}

// JSON implements store.Row.
func (e *entry) JSON() (json.RawMessage, error) {
	e.rawOnce.Do(func() {
		var doc map[string]any
		if doc, e.rawErr = e.Doc(); e.rawErr == nil {
			e.raw, e.rawErr = store.AppendJSON(nil, doc)
		}
	})
	return e.raw, e.rawErr
}

// New returns an empty store.
func New() *Store {
	return &Store{turn: make(chan struct{}, 1), devices: map[string]*entry{}, jobs: map[string]*hub.Job{}, djobs: map[string]*jobRecords{},
		leases: map[string]store.Lease{}, replicas: map[string]store.Replica{}, certs: map[string]hub.Certificate{}}
}

// lock takes the store for one operation, or fails when ctx ends first.
func (s *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) unlock() { <-s.turn }

// Close implements store.Store; the store stays usable (it holds nothing
// to release).
func (s *Store) Close() error { return nil }

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b, nil
}

// insertSorted adds k to the sorted keys unless it is there.
func insertSorted[K any](keys []K, k K, compare func(a, b K) int) []K {
	i, found := slices.BinarySearchFunc(keys, k, compare)
	if found {
		return keys
	}
	return slices.Insert(keys, i, k)
}

// CreateDevice implements store.Store.
func (s *Store) CreateDevice(ctx context.Context, d *store.Device) error {
	c, err := cloneDevice(d)
	if err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	if _, ok := s.devices[d.DeviceID]; ok {
		return store.ErrConflict
	}
	s.devices[d.DeviceID] = &entry{dev: c}
	s.deviceIDs = insertSorted(s.deviceIDs, d.DeviceID, cmp.Compare[string])
	return nil
}

// GetDevice implements store.Store.
func (s *Store) GetDevice(ctx context.Context, id string) (*store.Device, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	e, ok := s.devices[id]
	s.unlock()
	if !ok {
		return nil, store.ErrNotFound
	}
	return cloneDevice(e.dev)
}

// UpdateDevice implements store.Store.
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(*store.Device) error, recs ...*hub.DeviceJob) (*store.Device, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	if err := s.fenced(ctx, nil, recs); err != nil {
		return nil, err
	}
	return s.updateLocked(id, fn, recs)
}

// updateLocked is UpdateDevice with the store taken.
func (s *Store) updateLocked(id string, fn func(*store.Device) error, recs []*hub.DeviceJob) (*store.Device, error) {
	e, ok := s.devices[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	d, err := cloneDevice(e.dev)
	if err != nil {
		return nil, err
	}
	if err := fn(d); err != nil {
		return nil, err
	}
	nd, err := cloneDevice(d)
	if err != nil {
		return nil, err
	}
	s.devices[id] = &entry{dev: nd}
	s.putRecords(copyRecords(recs))
	// d is a copy made for this call and not kept: the caller's own copy,
	// as from a database.
	return d, nil
}

// UpdateDevices implements store.Store.
func (s *Store) UpdateDevices(ctx context.Context, ups []store.DeviceUpdate) ([]*store.Device, []error, error) {
	if err := s.lock(ctx); err != nil {
		return nil, nil, err
	}
	defer s.unlock()
	devs, errs := make([]*store.Device, len(ups)), make([]error, len(ups))
	for i, u := range ups {
		if errs[i] = s.fenced(ctx, nil, u.Recs); errs[i] == nil {
			devs[i], errs[i] = s.updateLocked(u.ID, u.Fn, u.Recs)
		}
	}
	return devs, errs, nil
}

// DeleteDevice implements store.Store.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	if _, ok := s.devices[id]; !ok {
		return store.ErrNotFound
	}
	delete(s.devices, id)
	if i, found := slices.BinarySearch(s.deviceIDs, id); found {
		s.deviceIDs = slices.Delete(s.deviceIDs, i, i+1)
	}
	return nil
}

// ScanDevices implements store.Store.
func (s *Store) ScanDevices(ctx context.Context, afterID string, limit int) ([]*store.Device, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	i, found := slices.BinarySearch(s.deviceIDs, afterID)
	if found {
		i++
	}
	var raw []*entry
	for _, id := range s.deviceIDs[i:] {
		if len(raw) >= limit {
			break
		}
		raw = append(raw, s.devices[id])
	}
	s.unlock()
	out := make([]*store.Device, 0, len(raw))
	for _, e := range raw {
		d, err := cloneDevice(e.dev)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// ScanDeviceRows implements store.DocScanner.
func (s *Store) ScanDeviceRows(ctx context.Context, afterID string, limit int) ([]store.Row, []string, error) {
	if err := s.lock(ctx); err != nil {
		return nil, nil, err
	}
	i, found := slices.BinarySearch(s.deviceIDs, afterID)
	if found {
		i++
	}
	end := min(i+limit, len(s.deviceIDs))
	ids := slices.Clone(s.deviceIDs[i:end])
	rows := make([]store.Row, len(ids))
	for k, id := range ids {
		rows[k] = s.devices[id]
	}
	s.unlock()
	return rows, ids, nil
}

// CreateJob implements store.Store.
func (s *Store) CreateJob(ctx context.Context, j *hub.Job) error {
	b, err := cloneJob(j)
	if err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	if _, ok := s.jobs[j.JobID]; ok {
		return store.ErrConflict
	}
	s.jobs[j.JobID] = b
	return nil
}

// GetJob implements store.Store.
func (s *Store) GetJob(ctx context.Context, id string) (*hub.Job, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	j, ok := s.jobs[id]
	s.unlock()
	if !ok {
		return nil, store.ErrNotFound
	}
	return cloneJob(j)
}

// PutJob implements store.Store.
func (s *Store) PutJob(ctx context.Context, j *hub.Job) error {
	return s.PutDeviceJobs(ctx, nil, j)
}

// ListJobs implements store.Store: newest first, ties by id.
func (s *Store) ListJobs(ctx context.Context) ([]*hub.Job, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	stored := make([]*hub.Job, 0, len(s.jobs))
	for _, j := range s.jobs {
		stored = append(stored, j)
	}
	s.unlock()
	out := make([]*hub.Job, 0, len(stored))
	for _, j := range stored {
		j, err := cloneJob(j)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	created := func(j *hub.Job) time.Time {
		if j.CreatedTime == nil {
			return time.Time{}
		}
		return j.CreatedTime.Time
	}
	slices.SortFunc(out, func(a, b *hub.Job) int {
		return cmp.Or(created(b).Compare(created(a)), cmp.Compare(a.JobID, b.JobID))
	})
	return out, nil
}

// PutDeviceJobs implements store.Store.
func (s *Store) PutDeviceJobs(ctx context.Context, djs []*hub.DeviceJob, jobs ...*hub.Job) error {
	recs := copyRecords(djs)
	copied := make([]*hub.Job, len(jobs))
	for i, j := range jobs {
		var err error
		if copied[i], err = cloneJob(j); err != nil {
			return err
		}
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	for _, j := range jobs {
		if _, ok := s.jobs[j.JobID]; !ok {
			return fmt.Errorf("job %q: %w", j.JobID, store.ErrNotFound)
		}
	}
	if err := s.fenced(ctx, jobs, djs); err != nil {
		return err
	}
	s.putRecords(recs)
	for i, j := range jobs {
		s.jobs[j.JobID] = copied[i]
	}
	return nil
}

// QueryDevices implements store.Store with the reference evaluator. A
// query whose condition requires deviceId IN [...] (alone or in an AND)
// reads only those devices: a dry-run asks such questions of large fleets
// over and over.
func (s *Store) QueryDevices(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
	// Only device rows are keyed by their deviceId: a module's is
	// "{deviceId}/{moduleId}".
	if ids, rest, ok := requiredIDs(q.Where); ok && q.From == query.Devices {
		// Reading only those devices is what the IN asked: the rest of
		// the condition decides.
		sub := *q
		sub.Where = rest
		return store.EvalDevices(ctx, &subset{s, ids}, &sub, after, limit)
	}
	return store.EvalDevices(ctx, s, q, after, limit)
}

// requiredIDs returns the sorted device ids a condition requires, when it
// is deviceId IN [strings] or an AND with such a side, and the rest of the
// condition (nil: nothing else).
func requiredIDs(e query.Expr) (ids []string, rest query.Expr, ok bool) {
	return required(e, func(e query.Expr) ([]string, bool) {
		in, isIn := e.(query.In)
		if !isIn || in.Negate {
			return nil, false
		}
		p, isPath := in.X.(query.Path)
		if !isPath || len(p.Segments) != 1 {
			return nil, false
		}
		if c, sys := query.SystemField(p.Segments[0]); !sys || c != "deviceId" {
			return nil, false
		}
		ids := make([]string, 0, len(in.List))
		for _, k := range in.List {
			if id, isStr := k.Value.(string); isStr && !k.Undefined {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		return slices.Compact(ids), true
	})
}

// required finds a side of e that term recognizes, e itself or one found
// through ANDs, and returns what term made of it and the rest of e
// without it (nil: nothing else).
func required[T any](e query.Expr, term func(query.Expr) (T, bool)) (v T, rest query.Expr, ok bool) {
	if v, ok := term(e); ok {
		return v, nil, true
	}
	if b, isBin := e.(query.Binary); isBin && b.Op == "AND" {
		if v, rest, ok := required(b.L, term); ok {
			return v, and(rest, b.R, b), true
		}
		if v, rest, ok := required(b.R, term); ok {
			return v, and(b.L, rest, b), true
		}
	}
	return v, nil, false
}

// and is l AND r where nil is true, keeping orig's position.
func and(l, r query.Expr, orig query.Binary) query.Expr {
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	}
	orig.L, orig.R = l, r
	return orig
}

// subset is a store.Scanner over some of the store's devices.
type subset struct {
	*Store
	ids []string // sorted
}

func (u *subset) ScanDevices(ctx context.Context, afterID string, limit int) ([]*store.Device, error) {
	i, found := slices.BinarySearch(u.ids, afterID)
	if found {
		i++
	}
	var out []*store.Device
	for _, id := range u.ids[i:] {
		if len(out) >= limit {
			break
		}
		d, err := u.Store.GetDevice(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// ScanDeviceRows implements store.DocScanner.
func (u *subset) ScanDeviceRows(ctx context.Context, afterID string, limit int) ([]store.Row, []string, error) {
	i, found := slices.BinarySearch(u.ids, afterID)
	if found {
		i++
	}
	if err := u.lock(ctx); err != nil {
		return nil, nil, err
	}
	var rows []store.Row
	var ids []string
	for _, id := range u.ids[i:] {
		if len(ids) >= limit {
			break
		}
		if e, ok := u.devices[id]; ok {
			rows, ids = append(rows, e), append(ids, id)
		}
	}
	u.unlock()
	return rows, ids, nil
}

// QueryDeviceJobs implements store.Store with the reference evaluator; a
// query that requires devices.jobs.jobId = '…' reads only that job's
// records (the runner asks for each job's results).
func (s *Store) QueryDeviceJobs(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
	if id, rest, ok := requiredJobID(q.Where); ok {
		sub := *q
		sub.Where = rest
		return store.EvalDeviceJobs(ctx, &oneJob{s, id}, &sub, after, limit)
	}
	return store.EvalDeviceJobs(ctx, s, q, after, limit)
}

// requiredJobID returns the job id a condition requires, when it is
// jobId = 'x' (either way round) or an AND with such a side, and the rest
// of the condition (nil: nothing else).
func requiredJobID(e query.Expr) (id string, rest query.Expr, ok bool) {
	return required(e, func(e query.Expr) (string, bool) {
		b, isBin := e.(query.Binary)
		if !isBin || b.Op != "=" {
			return "", false
		}
		p, okP := b.L.(query.Path)
		k, okK := b.R.(query.Const)
		if !okP || !okK {
			p, okP = b.R.(query.Path)
			k, okK = b.L.(query.Const)
		}
		id, isStr := k.Value.(string)
		return id, okP && okK && isStr && !k.Undefined && len(p.Segments) == 1 && p.Segments[0] == "jobId"
	})
}
