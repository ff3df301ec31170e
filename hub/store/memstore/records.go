package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// Device-job records are kept per job: a job's records are written one
// device at a time and read back in device order, and a dry-run writes
// hundreds of thousands of them.

// jobRecords are one job's device records.
type jobRecords struct {
	recs   map[string]*record // device id → record
	ids    []string           // device ids, sorted when sorted is true
	sorted bool
}

// record is a stored device-job record: a copy of the caller's, encoded
// only when read (most records are replaced before anyone reads them). It
// is the store.Row of the record.
type record struct {
	dj      *hub.DeviceJob
	rawOnce sync.Once
	raw     json.RawMessage // the JSON of its query document
	rawErr  error
	docOnce sync.Once
	doc     map[string]any
	docErr  error
}

// JSON implements store.Row.
func (r *record) JSON() (json.RawMessage, error) {
	r.rawOnce.Do(func() {
		var s string
		s, r.rawErr = store.DeviceJobDoc(r.dj)
		r.raw = json.RawMessage(s)
	})
	return r.raw, r.rawErr
}

// Doc implements store.Row.
func (r *record) Doc() (map[string]any, error) {
	r.docOnce.Do(func() {
		var raw json.RawMessage
		if raw, r.docErr = r.JSON(); r.docErr == nil {
			r.docErr = json.Unmarshal(raw, &r.doc)
		}
	})
	return r.doc, r.docErr
}

// copyRecords is the records of djs, each a copy.
func copyRecords(djs []*hub.DeviceJob) []*record {
	out := make([]*record, 0, len(djs))
	for _, dj := range djs {
		out = append(out, &record{dj: cloneDeviceJob(dj)})
	}
	return out
}

// cloneDeviceJob is a deep copy of dj.
func cloneDeviceJob(dj *hub.DeviceJob) *hub.DeviceJob {
	c := *dj
	for _, t := range []**hub.Time{&c.StartTimeUtc, &c.EndTimeUtc, &c.CreatedDateTimeUtc, &c.LastUpdatedDateTimeUtc} {
		if *t != nil {
			v := **t
			*t = &v
		}
	}
	if dj.Outcome != nil {
		o := *dj.Outcome
		if o.DeviceMethodResponse != nil {
			m := *o.DeviceMethodResponse
			m.Payload = slices.Clone(m.Payload)
			o.DeviceMethodResponse = &m
		}
		c.Outcome = &o
	}
	if dj.Error != nil {
		e := *dj.Error
		c.Error = &e
	}
	return &c
}

// putRecords stores device-job records; the store is held.
func (s *Store) putRecords(recs []*record) {
	for _, r := range recs {
		jobID, deviceID := r.dj.JobID, r.dj.DeviceID
		jr := s.djobs[jobID]
		if jr == nil {
			jr = &jobRecords{recs: map[string]*record{}, sorted: true}
			s.djobs[jobID] = jr
			s.djobIDs = insertSorted(s.djobIDs, jobID, strings.Compare)
		}
		if _, ok := jr.recs[deviceID]; !ok {
			jr.sorted = jr.sorted && (len(jr.ids) == 0 || jr.ids[len(jr.ids)-1] < deviceID)
			jr.ids = append(jr.ids, deviceID)
		}
		jr.recs[deviceID] = r
	}
}

// scanRecords returns up to limit records of one job (all jobs when jobID
// is ""), after the key after, in key order; the store is held.
func (s *Store) scanRecords(jobID string, after [2]string, limit int) []*record {
	var out []*record
	jobs := s.djobIDs
	if jobID != "" {
		jobs = []string{jobID}
	}
	i, _ := slices.BinarySearch(jobs, after[0])
	for _, j := range jobs[i:] {
		jr := s.djobs[j]
		if jr == nil || j < after[0] {
			continue
		}
		if !jr.sorted {
			slices.Sort(jr.ids)
			jr.sorted = true
		}
		k := 0
		if j == after[0] {
			var found bool
			k, found = slices.BinarySearch(jr.ids, after[1])
			if found {
				k++
			}
		}
		for _, id := range jr.ids[k:] {
			if len(out) >= limit {
				return out
			}
			out = append(out, jr.recs[id])
		}
	}
	return out
}

// ScanDeviceJobs implements store.Store.
func (s *Store) ScanDeviceJobs(ctx context.Context, jobID string, after [2]string, limit int) ([]*hub.DeviceJob, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	recs := s.scanRecords(jobID, after, limit)
	s.unlock()
	out := make([]*hub.DeviceJob, 0, len(recs))
	for _, r := range recs {
		// A copy, as from a database (what a JSON round trip gives).
		b, err := encode(r.dj)
		if err != nil {
			return nil, err
		}
		dj := new(hub.DeviceJob)
		if err := json.Unmarshal(b, dj); err != nil {
			return nil, fmt.Errorf("decode stored device job: %w", err)
		}
		out = append(out, dj)
	}
	return out, nil
}

// ScanDeviceJobRows implements store.JobDocScanner.
func (s *Store) ScanDeviceJobRows(ctx context.Context, jobID string, after [2]string, limit int) ([]store.Row, []string, error) {
	if err := s.lock(ctx); err != nil {
		return nil, nil, err
	}
	recs := s.scanRecords(jobID, after, limit)
	s.unlock()
	rows, keys := make([]store.Row, len(recs)), make([]string, len(recs))
	for i, r := range recs {
		rows[i], keys[i] = r, store.DeviceJobKey(r.dj.JobID, r.dj.DeviceID)
	}
	return rows, keys, nil
}

// oneJob is a store.Scanner over one job's device records.
type oneJob struct {
	*Store
	jobID string
}

func (o *oneJob) ScanDeviceJobs(ctx context.Context, _ string, after [2]string, limit int) ([]*hub.DeviceJob, error) {
	return o.Store.ScanDeviceJobs(ctx, o.jobID, after, limit)
}

func (o *oneJob) ScanDeviceJobRows(ctx context.Context, _ string, after [2]string, limit int) ([]store.Row, []string, error) {
	return o.Store.ScanDeviceJobRows(ctx, o.jobID, after, limit)
}
