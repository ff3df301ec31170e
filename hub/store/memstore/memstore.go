package memstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

	devices   map[string][]byte // id → JSON of store.Device
	deviceIDs []string          // sorted
	jobs      map[string][]byte // id → JSON of hub.Job
	djobs     map[[2]string][]byte
	djobKeys  [][2]string // sorted (jobID, deviceID)
}

// New returns an empty store.
func New() *Store {
	return &Store{turn: make(chan struct{}, 1), devices: map[string][]byte{}, jobs: map[string][]byte{}, djobs: map[[2]string][]byte{}}
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

func decodeDevice(b []byte) (*store.Device, error) {
	d := new(store.Device)
	if err := json.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("decode stored device: %w", err)
	}
	for _, m := range []*map[string]any{&d.Tags, &d.Desired, &d.Reported} {
		if *m == nil {
			*m = map[string]any{}
		}
	}
	return d, nil
}

// insertSorted adds k to the sorted keys unless it is there.
func insertSorted[K any](keys []K, k K, compare func(a, b K) int) []K {
	i, found := slices.BinarySearchFunc(keys, k, compare)
	if found {
		return keys
	}
	return slices.Insert(keys, i, k)
}

func compareKeys(a, b [2]string) int {
	return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
}

// CreateDevice implements store.Store.
func (s *Store) CreateDevice(ctx context.Context, d *store.Device) error {
	b, err := encode(d)
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
	s.devices[d.DeviceID] = b
	s.deviceIDs = insertSorted(s.deviceIDs, d.DeviceID, cmp.Compare[string])
	return nil
}

// GetDevice implements store.Store.
func (s *Store) GetDevice(ctx context.Context, id string) (*store.Device, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	b, ok := s.devices[id]
	s.unlock()
	if !ok {
		return nil, store.ErrNotFound
	}
	return decodeDevice(b)
}

// UpdateDevice implements store.Store.
func (s *Store) UpdateDevice(ctx context.Context, id string, fn func(*store.Device) error, recs ...*hub.DeviceJob) (*store.Device, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	b, ok := s.devices[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	d, err := decodeDevice(b)
	if err != nil {
		return nil, err
	}
	if err := fn(d); err != nil {
		return nil, err
	}
	nb, err := encode(d)
	if err != nil {
		return nil, err
	}
	encoded, err := encodeRecords(recs)
	if err != nil {
		return nil, err
	}
	s.devices[id] = nb
	s.putRecords(encoded)
	// The caller gets its own copy, as from a database.
	return decodeDevice(nb)
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
	var raw [][]byte
	for _, id := range s.deviceIDs[i:] {
		if len(raw) >= limit {
			break
		}
		raw = append(raw, s.devices[id])
	}
	s.unlock()
	out := make([]*store.Device, 0, len(raw))
	for _, b := range raw {
		d, err := decodeDevice(b)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// CreateJob implements store.Store.
func (s *Store) CreateJob(ctx context.Context, j *hub.Job) error {
	b, err := encode(j)
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

func decodeJob(b []byte) (*hub.Job, error) {
	j := new(hub.Job)
	if err := json.Unmarshal(b, j); err != nil {
		return nil, fmt.Errorf("decode stored job: %w", err)
	}
	return j, nil
}

// GetJob implements store.Store.
func (s *Store) GetJob(ctx context.Context, id string) (*hub.Job, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	b, ok := s.jobs[id]
	s.unlock()
	if !ok {
		return nil, store.ErrNotFound
	}
	return decodeJob(b)
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
	raw := make([][]byte, 0, len(s.jobs))
	for _, b := range s.jobs {
		raw = append(raw, b)
	}
	s.unlock()
	out := make([]*hub.Job, 0, len(raw))
	for _, b := range raw {
		j, err := decodeJob(b)
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

type record struct {
	key [2]string
	b   []byte
}

func encodeRecords(djs []*hub.DeviceJob) ([]record, error) {
	out := make([]record, 0, len(djs))
	for _, dj := range djs {
		b, err := encode(dj)
		if err != nil {
			return nil, err
		}
		out = append(out, record{[2]string{dj.JobID, dj.DeviceID}, b})
	}
	return out, nil
}

// putRecords stores encoded device-job records; the store is held.
func (s *Store) putRecords(recs []record) {
	for _, r := range recs {
		if _, ok := s.djobs[r.key]; !ok {
			s.djobKeys = insertSorted(s.djobKeys, r.key, compareKeys)
		}
		s.djobs[r.key] = r.b
	}
}

// PutDeviceJobs implements store.Store.
func (s *Store) PutDeviceJobs(ctx context.Context, djs []*hub.DeviceJob, jobs ...*hub.Job) error {
	recs, err := encodeRecords(djs)
	if err != nil {
		return err
	}
	encodedJobs := make([][]byte, len(jobs))
	for i, j := range jobs {
		if encodedJobs[i], err = encode(j); err != nil {
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
	s.putRecords(recs)
	for i, j := range jobs {
		s.jobs[j.JobID] = encodedJobs[i]
	}
	return nil
}

// ScanDeviceJobs implements store.Store.
func (s *Store) ScanDeviceJobs(ctx context.Context, jobID string, after [2]string, limit int) ([]*hub.DeviceJob, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	start := after
	if jobID != "" && compareKeys(start, [2]string{jobID, ""}) < 0 {
		start = [2]string{jobID, ""}
	}
	i, found := slices.BinarySearchFunc(s.djobKeys, start, compareKeys)
	if found && (start == after) {
		i++
	}
	var raw [][]byte
	for _, k := range s.djobKeys[i:] {
		if len(raw) >= limit || (jobID != "" && k[0] != jobID) {
			break
		}
		if compareKeys(k, after) <= 0 {
			continue
		}
		raw = append(raw, s.djobs[k])
	}
	s.unlock()
	out := make([]*hub.DeviceJob, 0, len(raw))
	for _, b := range raw {
		dj := new(hub.DeviceJob)
		if err := json.Unmarshal(b, dj); err != nil {
			return nil, fmt.Errorf("decode stored device job: %w", err)
		}
		out = append(out, dj)
	}
	return out, nil
}

// QueryDevices implements store.Store with the reference evaluator. A
// query whose condition requires deviceId IN [...] (alone or in an AND)
// reads only those devices: a dry-run asks such questions of large fleets
// over and over.
func (s *Store) QueryDevices(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
	if ids := requiredIDs(q.Where); ids != nil {
		return store.EvalDevices(ctx, &subset{s, ids}, q, after, limit)
	}
	return store.EvalDevices(ctx, s, q, after, limit)
}

// requiredIDs returns the sorted device ids a condition requires, when it
// is deviceId IN [strings] or an AND with such a side; nil otherwise.
func requiredIDs(e query.Expr) []string {
	switch e := e.(type) {
	case query.In:
		p, ok := e.X.(query.Path)
		if !ok || e.Negate || len(p.Segments) != 1 {
			return nil
		}
		if c, sys := query.SystemField(p.Segments[0]); !sys || c != "deviceId" {
			return nil
		}
		ids := make([]string, 0, len(e.List))
		for _, k := range e.List {
			if id, ok := k.Value.(string); ok && !k.Undefined {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		return slices.Compact(ids)
	case query.Binary:
		if e.Op != "AND" {
			return nil
		}
		if ids := requiredIDs(e.L); ids != nil {
			return ids
		}
		return requiredIDs(e.R)
	}
	return nil
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

// QueryDeviceJobs implements store.Store with the reference evaluator; a
// query that requires devices.jobs.jobId = '…' reads only that job's
// records (the runner asks for each job's results).
func (s *Store) QueryDeviceJobs(ctx context.Context, q *query.Query, after string, limit int) (*store.Page, error) {
	if id, ok := requiredJobID(q.Where); ok {
		return store.EvalDeviceJobs(ctx, &oneJob{s, id}, q, after, limit)
	}
	return store.EvalDeviceJobs(ctx, s, q, after, limit)
}

// requiredJobID returns the job id a condition requires, when it is
// jobId = 'x' (either way round) or an AND with such a side.
func requiredJobID(e query.Expr) (string, bool) {
	b, ok := e.(query.Binary)
	if !ok {
		return "", false
	}
	switch b.Op {
	case "AND":
		if id, ok := requiredJobID(b.L); ok {
			return id, true
		}
		return requiredJobID(b.R)
	case "=":
		p, okP := b.L.(query.Path)
		k, okK := b.R.(query.Const)
		if !okP || !okK {
			p, okP = b.R.(query.Path)
			k, okK = b.L.(query.Const)
		}
		id, isStr := k.Value.(string)
		if okP && okK && isStr && !k.Undefined && len(p.Segments) == 1 && p.Segments[0] == "jobId" {
			return id, true
		}
	}
	return "", false
}

// oneJob is a store.Scanner over one job's device records.
type oneJob struct {
	*Store
	jobID string
}

func (o *oneJob) ScanDeviceJobs(ctx context.Context, _ string, after [2]string, limit int) ([]*hub.DeviceJob, error) {
	return o.Store.ScanDeviceJobs(ctx, o.jobID, after, limit)
}
