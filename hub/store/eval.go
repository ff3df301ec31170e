package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
)

// Page is one page of query rows: JSON objects, and the key to continue
// after ("" on the last page). Keys are opaque to callers.
type Page struct {
	Items []json.RawMessage
	After string
}

// Scanner is the part of a Store the reference evaluators need.
type Scanner interface {
	ScanDevices(ctx context.Context, afterID string, limit int) ([]*Device, error)
	ScanDeviceJobs(ctx context.Context, jobID string, after [2]string, limit int) ([]*hub.DeviceJob, error)
}

const evalBatch = 500

// Row is a stored document as a store that keeps them hands it out: the
// query document (Doc of the stored value) to match, and its JSON (what
// json.Marshal gives for it), the row of SELECT *. Both are shared: nobody
// may change them.
type Row interface {
	Doc() (map[string]any, error)
	JSON() (json.RawMessage, error)
}

// DocScanner is a Scanner that keeps its devices' documents ([Row]) and
// hands them out without building them again; EvalDevices uses it when a
// Scanner has it.
type DocScanner interface {
	ScanDeviceRows(ctx context.Context, afterID string, limit int) (rows []Row, ids []string, err error)
}

// JobDocScanner is to device-job records what DocScanner is to devices.
type JobDocScanner interface {
	ScanDeviceJobRows(ctx context.Context, jobID string, after [2]string, limit int) (rows []Row, keys []string, err error)
}

// docRow is a Row of a document built for one query.
type docRow map[string]any

func (d docRow) Doc() (map[string]any, error)   { return d, nil }
func (d docRow) JSON() (json.RawMessage, error) { return AppendJSON(nil, map[string]any(d)) }

// EvalDevices is the reference answer to Store.QueryDevices: it scans the
// devices in id order and evaluates q with query.Match and query.Eval over
// their twin documents. A store that compiles queries must return exactly
// these rows; the differential tests hold it to that.
//
// FROM devices reads device rows only and FROM devices.modules module rows
// only (keys "{deviceId}/{moduleId}", see IsModuleRow): both live in the
// same table, in one key order.
//
// Rows of a query without aggregates come one per matching device, in id
// order, at most limit of them, continuing after the device id after.
// Aggregate and GROUP BY rows come all on one page. q.Top is ignored:
// callers apply TOP across pages.
func EvalDevices(ctx context.Context, s Scanner, q *query.Query, after string, limit int) (*Page, error) {
	var keep func(string) bool
	switch q.From {
	case query.Devices:
		keep = func(id string) bool { return !IsModuleRow(id) }
	case query.DevicesModules:
		keep = IsModuleRow
	default:
		return nil, fmt.Errorf("eval devices query: FROM %s", q.From)
	}
	if ds, ok := s.(DocScanner); ok {
		next := func(ctx context.Context, after string) ([]Row, []string, error) {
			return ds.ScanDeviceRows(ctx, after, evalBatch)
		}
		return eval(ctx, next, keep, q, after, limit)
	}
	next := func(ctx context.Context, after string) ([]Row, []string, error) {
		batch, err := s.ScanDevices(ctx, after, evalBatch)
		if err != nil {
			return nil, nil, err
		}
		rows, keys := make([]Row, 0, len(batch)), make([]string, 0, len(batch))
		for _, d := range batch {
			var row Row = lazyTwin{d}
			if keep(d.DeviceID) {
				doc, err := Doc(d.Twin())
				if err != nil {
					return nil, nil, err
				}
				row = docRow(doc)
			}
			rows, keys = append(rows, row), append(keys, d.DeviceID)
		}
		return rows, keys, nil
	}
	return eval(ctx, next, keep, q, after, limit)
}

// IsModuleRow reports whether a device row's key is a module's
// ("{deviceId}/{moduleId}", hub.ModuleKey): such rows are left out of
// everything device-level (listings, statistics, FROM devices, job
// targets) and are what FROM devices.modules reads.
func IsModuleRow(id string) bool { return hub.IsModuleKey(id) }

// lazyTwin is a Row that eval skips without reading.
type lazyTwin struct{ d *Device }

func (l lazyTwin) Doc() (map[string]any, error)   { return Doc(l.d.Twin()) }
func (l lazyTwin) JSON() (json.RawMessage, error) { return json.Marshal(l.d.Twin()) }

// EvalDeviceJobs is the reference answer to Store.QueryDeviceJobs, as
// EvalDevices is for devices; rows are in (jobId, deviceId) order.
func EvalDeviceJobs(ctx context.Context, s Scanner, q *query.Query, after string, limit int) (*Page, error) {
	if q.From != query.DevicesJobs {
		return nil, fmt.Errorf("eval device jobs query: FROM %s", q.From)
	}
	if ds, ok := s.(JobDocScanner); ok {
		next := func(ctx context.Context, after string) ([]Row, []string, error) {
			k0, k1, _ := strings.Cut(after, "\x00")
			return ds.ScanDeviceJobRows(ctx, "", [2]string{k0, k1}, evalBatch)
		}
		return eval(ctx, next, nil, q, after, limit)
	}
	next := func(ctx context.Context, after string) ([]Row, []string, error) {
		k0, k1, _ := strings.Cut(after, "\x00")
		batch, err := s.ScanDeviceJobs(ctx, "", [2]string{k0, k1}, evalBatch)
		if err != nil {
			return nil, nil, err
		}
		rows, keys := make([]Row, 0, len(batch)), make([]string, 0, len(batch))
		for _, dj := range batch {
			doc, err := Doc(dj)
			if err != nil {
				return nil, nil, err
			}
			rows, keys = append(rows, docRow(doc)), append(keys, DeviceJobKey(dj.JobID, dj.DeviceID))
		}
		return rows, keys, nil
	}
	return eval(ctx, next, nil, q, after, limit)
}

// DeviceJobKey is the page key of a device-job record.
func DeviceJobKey(jobID, deviceID string) string { return jobID + "\x00" + deviceID }

// eval answers q over the rows next gives, in key order; keep, when not
// nil, says which keys belong to the collection (the others are skipped).
func eval(ctx context.Context, next func(context.Context, string) ([]Row, []string, error), keep func(string) bool, q *query.Query, after string, limit int) (*Page, error) {
	if limit <= 0 {
		// A page holds at least one row; callers that pass 0 mean "no
		// preference", not "nothing".
		limit = 1
	}
	all := *q
	all.Top = -1
	all.Where = nil // rows holds the matching documents only
	grouped := q.Grouped()
	var rows []Row
	var keys []string
	for {
		batch, bkeys, err := next(ctx, after)
		if err != nil {
			return nil, err
		}
		for i, r := range batch {
			after = bkeys[i]
			if keep != nil && !keep(bkeys[i]) {
				continue
			}
			if q.Where != nil {
				d, err := r.Doc()
				if err != nil {
					return nil, err
				}
				if !query.Match(q.Where, d) {
					continue
				}
			}
			rows, keys = append(rows, r), append(keys, bkeys[i])
		}
		if len(batch) < evalBatch || (!grouped && len(rows) > limit) {
			break
		}
	}
	page := &Page{}
	if !grouped && len(rows) > limit {
		rows, keys = rows[:limit], keys[:limit]
		page.After = keys[limit-1]
	}
	if !grouped && q.Select == nil {
		// SELECT *: each row is its document's JSON.
		page.Items = make([]json.RawMessage, 0, len(rows))
		for _, r := range rows {
			b, err := r.JSON()
			if err != nil {
				return nil, err
			}
			page.Items = append(page.Items, b)
		}
		return page, nil
	}
	docs := make([]map[string]any, 0, len(rows))
	for _, r := range rows {
		d, err := r.Doc()
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	out, err := query.Eval(&all, docs)
	if err != nil {
		return nil, err
	}
	page.Items, err = EncodeRows(out)
	return page, err
}

// EncodeRows encodes query rows as a page holds them, with encoding/json:
// every store's rows are these bytes.
func EncodeRows(rows []map[string]any) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(rows))
	for _, r := range rows {
		b, err := AppendJSON(nil, r)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Doc turns a value into the JSON document queries evaluate (numbers
// float64, as encoding/json decodes them).
func Doc(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	return doc, json.Unmarshal(b, &doc)
}
