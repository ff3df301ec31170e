// What the list commands read from a hub, and their table columns
// (printed by printList, cmd_output.go).

package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
)

// registryPage is the most devices one registry listing (GET /devices)
// returns, on Azure as on our hub; devices list reads past it through
// the query API.
const registryPage = 1000

// parseDevicesList reads devices list's arguments: how many devices to
// list at most, 0 for all of them.
func parseDevicesList(c *cli.Context) (int, error) {
	if c.NArg() != 0 {
		return 0, usagef("devices list: takes no arguments")
	}
	top := c.Int("top")
	switch {
	case c.Bool("all") && c.IsSet("top"):
		return 0, usagef("devices list: give --top N or --all, not both")
	case c.Bool("all"):
		return 0, nil
	case top < 1:
		return 0, usagef("devices list: --top %d: give at least 1, or --all for every device", top)
	}
	return top, nil
}

// runDevicesList lists up to top devices (0: all) and says on stderr when
// the hub has more than it listed.
func runDevicesList(c *cli.Context, h hub.Client, format string, top int) error {
	showKeys := c.Bool("show-keys")
	ds, err := readDevices(c.Context, h, top, showKeys)
	if err != nil {
		return err
	}
	hideKeys(c, ds...)
	if err := printList(c, format, "devices", ds, deviceColumns(showKeys)); err != nil {
		return err
	}
	// After the list, where the operator at a terminal sees it.
	if top > 0 && len(ds) == top {
		switch n, err := countDevices(c.Context, h); {
		case err != nil:
			fmt.Fprintf(c.App.ErrWriter, "showing the first %d devices (counting them all failed: %v); --all or --top N shows more\n", len(ds), err)
		case n > len(ds):
			fmt.Fprintf(c.App.ErrWriter, "showing %d of %d devices; --all or --top N shows more\n", len(ds), n)
		}
	}
	return nil
}

// readDevices reads up to top devices (0: all) in id order. Up to 1,000
// come from the registry, whole. Past that only the query API pages
// (Azure's GET /devices has no continuation), and its rows are twins,
// which lack the keys, generationId and connectionStateUpdatedTime; with
// withKeys each of those devices' identity is read too, one call each.
func readDevices(ctx context.Context, h hub.Client, top int, withKeys bool) ([]*hub.Device, error) {
	n := registryPage
	if top > 0 && top < n {
		n = top
	}
	ds, err := h.ListDevices(ctx, n)
	if err != nil || len(ds) < n || top == n {
		return ds, err
	}
	ds = nil
	opts := hub.QueryOptions{PageSize: registryPage}
	for {
		if top > 0 {
			opts.PageSize = min(registryPage, top-len(ds))
		}
		page, err := h.Query(ctx, "SELECT * FROM devices", opts)
		if err != nil {
			return nil, err
		}
		for _, raw := range page.Items {
			var tw hub.Twin
			if err := json.Unmarshal(raw, &tw); err != nil {
				return nil, fmt.Errorf("read the hub's twins: %w", err)
			}
			ds = append(ds, twinDevice(&tw))
		}
		if page.Continuation == "" || top > 0 && len(ds) >= top {
			break
		}
		opts.Continuation = page.Continuation
	}
	if top > 0 && len(ds) > top {
		ds = ds[:top]
	}
	slices.SortFunc(ds, func(a, b *hub.Device) int { return cmp.Compare(a.DeviceID, b.DeviceID) })
	if !withKeys {
		return ds, nil
	}
	whole := ds[:0]
	for _, d := range ds {
		d, err := h.GetDevice(ctx, d.DeviceID)
		if errors.Is(err, hub.ErrDeviceNotFound) || hub.ErrorCode(err) == hub.CodeDeviceNotFound {
			continue // deleted since the query: it is no longer a device to list
		}
		if err != nil {
			return nil, err
		}
		whole = append(whole, d)
	}
	return whole, nil
}

// twinDevice is the device identity a twin carries.
func twinDevice(tw *hub.Twin) *hub.Device {
	d := &hub.Device{DeviceID: tw.DeviceID, ETag: tw.DeviceETag, ConnectionState: tw.ConnectionState,
		Status: tw.Status, StatusReason: tw.StatusReason, CloudToDeviceMessageCount: tw.CloudToDeviceMessageCount,
		Capabilities: tw.Capabilities}
	d.Authentication.Type = tw.AuthenticationType
	d.Authentication.X509Thumbprint = tw.X509Thumbprint
	if tw.StatusUpdateTime != nil {
		d.StatusUpdatedTime = *tw.StatusUpdateTime
	}
	if tw.LastActivityTime != nil {
		d.LastActivityTime = *tw.LastActivityTime
	}
	return d
}

// countDevices counts the hub's devices with one query.
func countDevices(ctx context.Context, h hub.Client) (int, error) {
	page, err := h.Query(ctx, "SELECT COUNT() AS n FROM devices", hub.QueryOptions{})
	if err != nil {
		return 0, err
	}
	var row struct{ N *float64 }
	if len(page.Items) != 1 || json.Unmarshal(page.Items[0], &row) != nil || row.N == nil {
		return 0, fmt.Errorf("the hub answered the count with %d rows, not {\"n\": count}", len(page.Items))
	}
	return int(*row.N), nil
}

// deviceColumns are devices list's table columns; the keys only when
// --show-keys asked for them.
func deviceColumns(showKeys bool) []column[*hub.Device] {
	cols := []column[*hub.Device]{
		{name: "device id", cell: func(d *hub.Device) string { return d.DeviceID }},
		{name: "status", cell: func(d *hub.Device) string { return d.Status }},
		{name: "connection", cell: func(d *hub.Device) string { return d.ConnectionState }},
		{name: "last activity", cell: func(d *hub.Device) string { return cellTime(&d.LastActivityTime) }},
		{name: "status reason", wide: true, cell: func(d *hub.Device) string { return deref(d.StatusReason) }},
		{name: "status updated", wide: true, cell: func(d *hub.Device) string { return cellTime(&d.StatusUpdatedTime) }},
		{name: "auth", wide: true, cell: func(d *hub.Device) string { return d.Authentication.Type }},
		{name: "etag", wide: true, cell: func(d *hub.Device) string { return d.ETag }},
		{name: "c2d messages", wide: true, cell: func(d *hub.Device) string { return strconv.Itoa(d.CloudToDeviceMessageCount) }},
		{name: "generation id", wide: true, cell: func(d *hub.Device) string { return d.GenerationID }},
	}
	if showKeys {
		cols = append(cols,
			column[*hub.Device]{name: "primary key", cell: func(d *hub.Device) string { return d.Authentication.SymmetricKey.PrimaryKey }},
			column[*hub.Device]{name: "secondary key", cell: func(d *hub.Device) string { return d.Authentication.SymmetricKey.SecondaryKey }})
	}
	return cols
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// readJobs reads all of the hub's jobs, newest first.
func readJobs(ctx context.Context, h hub.Client) ([]*hub.Job, error) {
	var all []*hub.Job
	q := hub.JobQuery{}
	for {
		jobs, cont, err := h.QueryJobs(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, jobs...)
		if cont == "" {
			return all, nil
		}
		q.Continuation = cont
	}
}

// jobColumns are jobs list's table columns.
var jobColumns = []column[*hub.Job]{
	{name: "job id", cell: func(j *hub.Job) string { return j.JobID }},
	{name: "type", cell: func(j *hub.Job) string { return jobType(j.Type) }},
	{name: "status", cell: func(j *hub.Job) string { return string(j.Status) }},
	{name: "ok/failed/total", cell: func(j *hub.Job) string {
		if st := j.DeviceJobStatistics; st != nil {
			return fmt.Sprintf("%d/%d/%d", st.SucceededCount, st.FailedCount, st.DeviceCount)
		}
		return ""
	}},
	{name: "start", cell: func(j *hub.Job) string { return cellTime(j.StartTime) }},
	{name: "end", cell: func(j *hub.Job) string { return cellTime(j.EndTime) }},
	{name: "running/pending", wide: true, cell: func(j *hub.Job) string {
		if st := j.DeviceJobStatistics; st != nil {
			return fmt.Sprintf("%d/%d", st.RunningCount, st.PendingCount)
		}
		return ""
	}},
	{name: "query", wide: true, cell: func(j *hub.Job) string { return j.QueryCondition }},
	{name: "method/patch", wide: true, cell: jobAction},
	{name: "reason", wide: true, cell: func(j *hub.Job) string { return cmp.Or(j.FailureReason, j.StatusMessage) }},
}

// jobType is a job's type in a table: method or twin.
func jobType(t hub.JobType) string {
	switch t {
	case hub.JobDeviceMethod:
		return "method"
	case hub.JobUpdateTwin:
		return "twin"
	}
	return string(t)
}

// jobAction is what a job does to each device: the method and its
// payload, or the twin patch.
func jobAction(j *hub.Job) string {
	switch {
	case j.CloudToDeviceMethod != nil:
		m := j.CloudToDeviceMethod
		if len(m.Payload) == 0 || string(m.Payload) == "null" {
			return m.MethodName
		}
		return m.MethodName + " " + cellJSON(m.Payload)
	case j.UpdateTwin != nil:
		p := *j.UpdateTwin
		p.DeviceID, p.ETag = nil, ""
		b, _ := json.Marshal(p)
		return string(b)
	}
	return ""
}

// readQuery reads every page of a query, and the type of its items.
func readQuery(ctx context.Context, h hub.Client, q string) ([]json.RawMessage, string, error) {
	items := []json.RawMessage{}
	opts := hub.QueryOptions{PageSize: 1000}
	itemType := ""
	for {
		page, err := h.Query(ctx, q, opts)
		if err != nil {
			return nil, "", err
		}
		items = append(items, page.Items...)
		itemType = cmp.Or(itemType, page.ItemType)
		if page.Continuation == "" {
			return items, itemType, nil
		}
		opts.Continuation = page.Continuation
	}
}

// deviceJobRow is a row of SELECT * FROM devices.jobs: the hub's item,
// printed as it came, and decoded for the table.
type deviceJobRow struct {
	raw json.RawMessage
	dj  hub.DeviceJob
}

func (r deviceJobRow) MarshalJSON() ([]byte, error) { return r.raw, nil }

func deviceJobRows(items []json.RawMessage) ([]deviceJobRow, error) {
	rows := make([]deviceJobRow, len(items))
	for i, raw := range items {
		rows[i].raw = raw
		if err := json.Unmarshal(raw, &rows[i].dj); err != nil {
			return nil, fmt.Errorf("read the hub's device job record %s: %w", raw, err)
		}
	}
	return rows, nil
}

// deviceJobColumns are jobs devices' table columns; a query over
// devices.jobs, which may span jobs, shows the job id too.
func deviceJobColumns(withJobID bool) []column[deviceJobRow] {
	var cols []column[deviceJobRow]
	if withJobID {
		cols = append(cols, column[deviceJobRow]{name: "job id", cell: func(r deviceJobRow) string { return r.dj.JobID }})
	}
	return append(cols,
		column[deviceJobRow]{name: "device id", cell: func(r deviceJobRow) string { return r.dj.DeviceID }},
		column[deviceJobRow]{name: "status", cell: func(r deviceJobRow) string { return string(r.dj.Status) }},
		column[deviceJobRow]{name: "outcome", cell: func(r deviceJobRow) string {
			switch dj := r.dj; {
			case dj.Error != nil:
				return dj.Error.Code
			case dj.Outcome != nil && dj.Outcome.DeviceMethodResponse != nil:
				return "status " + strconv.Itoa(dj.Outcome.DeviceMethodResponse.Status)
			}
			return ""
		}},
		column[deviceJobRow]{name: "end time", cell: func(r deviceJobRow) string { return cellTime(r.dj.EndTimeUtc) }},
		column[deviceJobRow]{name: "start time", wide: true, cell: func(r deviceJobRow) string { return cellTime(r.dj.StartTimeUtc) }},
		column[deviceJobRow]{name: "detail", wide: true, cell: func(r deviceJobRow) string {
			switch dj := r.dj; {
			case dj.Error != nil:
				return dj.Error.Description
			case dj.Outcome != nil && dj.Outcome.DeviceMethodResponse != nil:
				return cellJSON(dj.Outcome.DeviceMethodResponse.Payload)
			}
			return ""
		}},
	)
}

// queryRow is a row of a query: the hub's item, printed as it came, and
// its top-level fields for the table.
type queryRow struct {
	raw    json.RawMessage
	fields map[string]json.RawMessage
}

func (r queryRow) MarshalJSON() ([]byte, error) { return r.raw, nil }

// queryRows splits items into fields, and returns the keys of all of
// them: those of order first, then the others in the order they first
// appear.
func queryRows(items []json.RawMessage, order []string) ([]queryRow, []string) {
	rows := make([]queryRow, len(items))
	keys := slices.Clone(order)
	for i, raw := range items {
		rows[i] = queryRow{raw: raw, fields: map[string]json.RawMessage{}}
		dec := json.NewDecoder(bytes.NewReader(raw))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			rows[i].fields["value"] = raw // not an object: one column
			if !slices.Contains(keys, "value") {
				keys = append(keys, "value")
			}
			continue
		}
		for dec.More() {
			tok, err := dec.Token()
			var v json.RawMessage
			if err != nil || dec.Decode(&v) != nil {
				break
			}
			k := tok.(string)
			if _, seen := rows[i].fields[k]; !seen && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
			rows[i].fields[k] = v
		}
	}
	return rows, keys
}

// queryColumns are a query's table columns: for twins, the few that fit
// a terminal, and every other field in -o wide; for any other rows (a
// projection, a GROUP BY), one column per field, clipped in -o table.
func queryColumns(itemType string, keys []string) []column[queryRow] {
	field := func(key string, wide, clip bool) column[queryRow] {
		return column[queryRow]{name: header(key), wide: wide, clip: clip, cell: func(r queryRow) string {
			v, ok := r.fields[key]
			if !ok {
				return ""
			}
			return cellJSON(v)
		}}
	}
	if itemType != hub.ItemTwin {
		cols := make([]column[queryRow], len(keys))
		for i, k := range keys {
			cols[i] = field(k, false, true)
		}
		return cols
	}
	timeField := func(key string) func(queryRow) string {
		return func(r queryRow) string {
			var t hub.Time
			if v, ok := r.fields[key]; ok && json.Unmarshal(v, &t) == nil {
				return cellTime(&t)
			}
			return ""
		}
	}
	cols := []column[queryRow]{field("deviceId", false, false)}
	shown := []string{"deviceId", "status", "connectionState", "lastActivityTime", "version", "tags"}
	if slices.Contains(keys, "moduleId") {
		// Module twins (FROM devices.modules): the module beside its device.
		cols = append(cols, field("moduleId", false, false))
		shown = append(shown, "moduleId")
	}
	cols = append(cols,
		field("status", false, false),
		column[queryRow]{name: "connection", cell: field("connectionState", false, false).cell},
		column[queryRow]{name: "last activity", cell: timeField("lastActivityTime")},
		field("version", false, false),
		field("tags", false, true),
	)
	for _, k := range keys {
		if !slices.ContainsFunc(shown, func(s string) bool { return strings.EqualFold(s, k) }) {
			cols = append(cols, field(k, true, false))
		}
	}
	return cols
}

// printQuery runs a query and prints its rows; device job rows get jobs
// devices' columns (withJobID: and the job id).
func printQuery(c *cli.Context, h hub.Client, format, q, noun string, withJobID bool) error {
	items, itemType, err := readQuery(c.Context, h, q)
	if err != nil {
		return err
	}
	if itemType == hub.ItemDeviceJob {
		rows, err := deviceJobRows(items)
		if err != nil {
			return err
		}
		return printList(c, format, noun, rows, deviceJobColumns(withJobID))
	}
	// A hub may send a projection's fields in any order (ours sorts
	// them); the columns follow the SELECT list when we can read it.
	var order []string
	if pq, err := query.Parse(q); err == nil {
		order = pq.Keys()
	}
	rows, keys := queryRows(items, order)
	return printList(c, format, noun, rows, queryColumns(itemType, keys))
}
