package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
	scanBatch       = 500
)

// Query implements hub.Client. Pages of SELECT * continue after the last
// row's key, so a page boundary stays correct while twins change;
// projections and aggregates come as one page.
func (e *Engine) Query(ctx context.Context, text string, opts hub.QueryOptions) (*hub.QueryResult, error) {
	q, err := query.Parse(text)
	if err != nil {
		return nil, queryErr(err)
	}
	size := opts.PageSize
	if size <= 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	after, err := decodeToken(opts.Continuation)
	if err != nil {
		return nil, err
	}
	switch q.From {
	case query.Collection("devices.jobs"):
		return e.queryDeviceJobs(ctx, q, size, after)
	case query.Collection("devices"):
	default:
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "querying %s is not supported; use devices or devices.jobs", q.From)
	}
	plain := len(q.Select) == 0 && len(q.GroupBy) == 0
	var docs []map[string]any
	last := after[1]
	for {
		batch, err := e.store.ScanDevices(ctx, last, scanBatch)
		if err != nil {
			return nil, storeErr(err, hub.CodeServerError, "", "")
		}
		for _, d := range batch {
			last = d.DeviceID
			doc, err := toDoc(twinOf(d))
			if err != nil {
				return nil, err
			}
			if q.Where == nil || query.Match(q.Where, doc) {
				docs = append(docs, doc)
			}
		}
		if len(batch) < scanBatch || (plain && len(docs) > size) {
			break
		}
	}
	if plain {
		if q.Top >= 0 && len(docs) > q.Top {
			docs = docs[:q.Top]
		}
		res := &hub.QueryResult{ItemType: hub.ItemTwin}
		if len(docs) > size {
			docs = docs[:size]
			res.Continuation = encodeToken("", docs[size-1]["deviceId"].(string))
		}
		res.Items, err = rawItems(docs)
		return res, err
	}
	rows, err := query.Eval(q, docs)
	if err != nil {
		return nil, queryErr(err)
	}
	res := &hub.QueryResult{ItemType: hub.ItemRaw}
	res.Items, err = rawItems(rows)
	return res, err
}

func (e *Engine) queryDeviceJobs(ctx context.Context, q *query.Query, size int, after [2]string) (*hub.QueryResult, error) {
	if len(q.Select) != 0 || len(q.GroupBy) != 0 {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "devices.jobs supports only SELECT *")
	}
	var docs []map[string]any
	var keys [][2]string
	for len(docs) <= size {
		batch, err := e.store.ScanDeviceJobs(ctx, "", after, scanBatch)
		if err != nil {
			return nil, storeErr(err, hub.CodeServerError, "", "")
		}
		for _, dj := range batch {
			after = [2]string{dj.JobID, dj.DeviceID}
			doc, err := toDoc(dj)
			if err != nil {
				return nil, err
			}
			if q.Where == nil || query.Match(q.Where, doc) {
				docs = append(docs, doc)
				keys = append(keys, after)
			}
		}
		if len(batch) < scanBatch {
			break
		}
	}
	if q.Top >= 0 && len(docs) > q.Top {
		docs = docs[:q.Top]
	}
	res := &hub.QueryResult{ItemType: hub.ItemDeviceJob}
	if len(docs) > size {
		docs = docs[:size]
		k := keys[size-1]
		res.Continuation = encodeToken(k[0], k[1])
	}
	var err error
	res.Items, err = rawItems(docs)
	return res, err
}

func queryErr(err error) error {
	if se, ok := err.(*query.SyntaxError); ok {
		return hub.Errorf(hub.CodeArgumentInvalid, "query: %s", se.Error())
	}
	return hub.Errorf(hub.CodeArgumentInvalid, "query: %v", err)
}

func toDoc(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	return doc, json.Unmarshal(b, &doc)
}

func rawItems(rows []map[string]any) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(rows))
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Continuation tokens are opaque to clients: base64 of the last key.
func encodeToken(a, b string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(a + "\x00" + b))
}

func decodeToken(s string) ([2]string, error) {
	if s == "" {
		return [2]string{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	a, c, ok := strings.Cut(string(b), "\x00")
	if err != nil || !ok {
		return [2]string{}, hub.Errorf(hub.CodeArgumentInvalid, "invalid continuation token %q", s)
	}
	return [2]string{a, c}, nil
}
