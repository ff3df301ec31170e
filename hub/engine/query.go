package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
	scanBatch       = 500
)

// token is what a continuation token carries: where the store continues,
// and how many rows TOP still allows (-1: no TOP).
type token struct {
	After string `json:"a"`
	Left  int    `json:"t"`
}

// Query implements hub.Client. Pages continue after the last row's key,
// so a page boundary stays correct while twins change; aggregate and
// GROUP BY results come as one page.
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
	tok := token{Left: q.Top}
	if opts.Continuation != "" {
		if tok, err = decodeToken(opts.Continuation); err != nil {
			return nil, err
		}
	}
	if tok.Left >= 0 && tok.Left < size {
		size = tok.Left
	}
	res := &hub.QueryResult{Items: []json.RawMessage{}}
	if size == 0 {
		return res, nil
	}
	var page *store.Page
	switch q.From {
	case query.Devices, query.DevicesModules:
		// Both read the registry's rows: devices', or modules' (whose
		// twins carry moduleId), never both (store.IsModuleRow).
		res.ItemType = hub.ItemTwin
		if q.Select != nil || q.Grouped() {
			res.ItemType = hub.ItemRaw
		}
		page, err = e.store.QueryDevices(ctx, q, tok.After, size)
	case query.DevicesJobs:
		if q.Select != nil || q.Grouped() {
			return nil, hub.Errorf(hub.CodeArgumentInvalid, "devices.jobs supports only SELECT *")
		}
		res.ItemType = hub.ItemDeviceJob
		page, err = e.store.QueryDeviceJobs(ctx, q, tok.After, size)
	default:
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "querying %s is not supported; use devices, devices.modules or devices.jobs", q.From)
	}
	if err != nil {
		if _, ok := errors.AsType[*hub.Error](err); ok || ctx.Err() != nil {
			return nil, err
		}
		return nil, hub.Errorf(hub.CodeServerError, "query: %v", err)
	}
	res.Items = page.Items
	if q.Grouped() && q.Top >= 0 && len(res.Items) > q.Top {
		res.Items = res.Items[:q.Top]
	}
	if page.After != "" {
		next := token{After: page.After, Left: -1}
		if tok.Left >= 0 {
			next.Left = tok.Left - len(res.Items)
		}
		if next.Left != 0 {
			res.Continuation = encodeToken(next)
		}
	}
	return res, nil
}

// twinOf is the twin document of a stored device.
func twinOf(d *store.Device) *hub.Twin { return d.Twin() }

func queryErr(err error) error {
	if se, ok := errors.AsType[*query.SyntaxError](err); ok {
		return hub.Errorf(hub.CodeArgumentInvalid, "query: %s", se.Error())
	}
	return hub.Errorf(hub.CodeArgumentInvalid, "query: %v", err)
}

// Continuation tokens are opaque to clients.
func encodeToken(t token) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s string) (token, error) {
	var t token
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.After == "" {
		return token{}, hub.Errorf(hub.CodeArgumentInvalid, "invalid continuation token %q", s)
	}
	return t, nil
}
