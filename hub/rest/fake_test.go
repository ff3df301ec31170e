package rest

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// fakeHub is an in-memory hub.Client test double: just enough behaviour
// to exercise the REST contract. Its methods record what reached them.
type fakeHub struct {
	mu      sync.Mutex
	devices map[string]*hub.Device
	twins   map[string]*hub.Twin
	jobs    map[string]*hub.Job
	order   []string // job ids, oldest first
	// methods answers direct methods per device; a device without an
	// entry is offline. A nil response means the device never answers.
	methods map[string]*hub.MethodResponse
	changed chan struct{} // closed and replaced on every job change
	// watching receives the id of every WatchJob call once it waits.
	watching chan string

	lastEtag    string
	lastQuery   string
	lastOpts    hub.QueryOptions
	lastJobQ    hub.JobQuery
	lastTop     int
	lastImport  []*hub.ImportDevice
	lastMethod  *hub.MethodRequest
	queryErr    error
	twinVersion int
}

var _ hub.Client = (*fakeHub)(nil)

func newFakeHub() *fakeHub {
	return &fakeHub{
		devices:  map[string]*hub.Device{},
		twins:    map[string]*hub.Twin{},
		jobs:     map[string]*hub.Job{},
		methods:  map[string]*hub.MethodResponse{},
		changed:  make(chan struct{}),
		watching: make(chan string, 16),
	}
}

func (f *fakeHub) CreateDevice(_ context.Context, d *hub.Device) (*hub.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d.DeviceID == "" {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "deviceId is required")
	}
	if _, ok := f.devices[d.DeviceID]; ok {
		return nil, hub.Errorf(hub.CodeDeviceAlreadyExists, "device %q already exists", d.DeviceID)
	}
	c := *d
	c.ETag = "MQ=="
	c.Status = hub.StatusEnabled
	if c.Authentication.SymmetricKey.PrimaryKey == "" {
		c.Authentication.SymmetricKey.PrimaryKey = "cHJpbWFyeQ=="
	}
	f.devices[d.DeviceID] = &c
	f.twins[d.DeviceID] = &hub.Twin{DeviceID: d.DeviceID, ETag: "AAAAAAAAAAE=", Version: 1,
		Tags: map[string]any{}, Properties: hub.Properties{Desired: map[string]any{"$version": 1.0}}}
	return &c, nil
}

func (f *fakeHub) GetDevice(_ context.Context, id string) (*hub.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.devices[id]
	if !ok {
		return nil, hub.Errorf(hub.CodeDeviceNotFound, "device %q not found", id)
	}
	c := *d
	return &c, nil
}

func (f *fakeHub) DeleteDevice(_ context.Context, id, etag string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastEtag = etag
	d, ok := f.devices[id]
	if !ok {
		return hub.Errorf(hub.CodeDeviceNotFound, "device %q not found", id)
	}
	if etag != "" && etag != "*" && etag != d.ETag {
		return hub.Errorf(hub.CodePreconditionFailed, "etag %q does not match %q", etag, d.ETag)
	}
	delete(f.devices, id)
	delete(f.twins, id)
	return nil
}

func (f *fakeHub) UpdateDevice(_ context.Context, d *hub.Device, etag string) (*hub.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastEtag = etag
	cur, ok := f.devices[d.DeviceID]
	if !ok {
		return nil, hub.Errorf(hub.CodeDeviceNotFound, "device %q not found", d.DeviceID)
	}
	if etag != "" && etag != "*" && etag != cur.ETag {
		return nil, hub.Errorf(hub.CodePreconditionFailed, "etag %q does not match %q", etag, cur.ETag)
	}
	if d.Status != "" && d.Status != hub.StatusEnabled && d.Status != hub.StatusDisabled {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "status %q", d.Status)
	}
	if d.Status != "" {
		cur.Status = d.Status
	}
	cur.StatusReason = d.StatusReason
	cur.ETag = "Mg=="
	c := *cur
	return &c, nil
}

func (f *fakeHub) ListDevices(_ context.Context, top int) ([]*hub.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastTop = top
	var out []*hub.Device
	for _, id := range slices.Sorted(maps.Keys(f.devices)) {
		c := *f.devices[id]
		out = append(out, &c)
	}
	if top >= 1 && top < len(out) {
		out = out[:top]
	}
	return out, nil
}

func (f *fakeHub) DeviceStatistics(context.Context) (*hub.RegistryStatistics, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var st hub.RegistryStatistics
	for _, d := range f.devices {
		st.TotalDeviceCount++
		if d.Status == hub.StatusDisabled {
			st.DisabledDeviceCount++
		} else {
			st.EnabledDeviceCount++
		}
	}
	return &st, nil
}

// ImportDevices supports create and delete, which is enough for the wire
// contract; the engine's tests cover the modes.
func (f *fakeHub) ImportDevices(ctx context.Context, devs []*hub.ImportDevice) (*hub.BulkResult, error) {
	if len(devs) == 0 || len(devs) > hub.MaxImportDevices {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "%d devices", len(devs))
	}
	f.mu.Lock()
	f.lastImport = devs
	f.mu.Unlock()
	res := &hub.BulkResult{}
	for _, in := range devs {
		var err error
		switch in.ImportMode {
		case hub.ImportCreate:
			_, err = f.CreateDevice(ctx, &hub.Device{DeviceID: in.ID})
		case hub.ImportDelete:
			err = f.DeleteDevice(ctx, in.ID, "*")
		default:
			err = hub.Errorf(hub.CodeArgumentInvalid, "importMode %q", in.ImportMode)
		}
		if err != nil {
			res.Errors = append(res.Errors, hub.DeviceImportError{DeviceID: in.ID, ErrorCode: hub.ErrorCode(err), ErrorStatus: hub.ErrorMessage(err)})
		}
	}
	res.IsSuccessful = len(res.Errors) == 0
	return res, nil
}

func (f *fakeHub) ReplaceTwin(_ context.Context, id string, p *hub.TwinPatch, etag string) (*hub.Twin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastEtag = etag
	t, ok := f.twins[id]
	if !ok {
		return nil, hub.Errorf(hub.CodeDeviceNotFound, "device %q not found", id)
	}
	if etag != "" && etag != "*" && etag != t.ETag {
		return nil, hub.Errorf(hub.CodePreconditionFailed, "etag %q does not match %q", etag, t.ETag)
	}
	t.Tags = map[string]any{}
	maps.Copy(t.Tags, p.Tags)
	t.Properties.Desired = map[string]any{"$version": num(t.Properties.Desired["$version"]) + 1}
	if p.Properties != nil {
		maps.Copy(t.Properties.Desired, p.Properties.Desired)
	}
	t.Version++
	t.ETag = "AAAAAAAAAA" + strconv.Itoa(int(t.Version)) + "="
	c := *t
	return &c, nil
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func (f *fakeHub) GetTwin(_ context.Context, id string) (*hub.Twin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.twins[id]
	if !ok {
		return nil, hub.Errorf(hub.CodeDeviceNotFound, "device %q not found", id)
	}
	c := *t
	return &c, nil
}

func (f *fakeHub) UpdateTwin(_ context.Context, id string, p *hub.TwinPatch, etag string) (*hub.Twin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastEtag = etag
	t, ok := f.twins[id]
	if !ok {
		return nil, hub.Errorf(hub.CodeDeviceNotFound, "device %q not found", id)
	}
	if etag != "" && etag != "*" && etag != t.ETag {
		return nil, hub.Errorf(hub.CodePreconditionFailed, "etag %q does not match %q", etag, t.ETag)
	}
	for k, v := range p.Tags {
		t.Tags[k] = v
	}
	if p.Properties != nil {
		for k, v := range p.Properties.Desired {
			t.Properties.Desired[k] = v
		}
	}
	t.Version++
	t.ETag = "AAAAAAAAAA" + strconv.Itoa(int(t.Version)) + "="
	c := *t
	return &c, nil
}

func (f *fakeHub) InvokeMethod(ctx context.Context, id string, req *hub.MethodRequest) (*hub.MethodResponse, error) {
	f.mu.Lock()
	f.lastMethod = req
	_, known := f.devices[id]
	res, online := f.methods[id]
	f.mu.Unlock()
	switch {
	case !known:
		return nil, hub.Errorf(hub.CodeDeviceNotFound, "device %q not found", id)
	case !online:
		return nil, hub.Errorf(hub.CodeDeviceNotOnline, "Timed out waiting for device to connect.")
	case res == nil:
		return nil, hub.Errorf(hub.CodeGatewayTimeout, "Timed out waiting for the response from device.")
	}
	return res, nil
}

func (f *fakeHub) Query(_ context.Context, q string, opts hub.QueryOptions) (*hub.QueryResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastQuery, f.lastOpts = q, opts
	if f.queryErr != nil {
		return nil, f.queryErr
	}
	ids := make([]string, 0, len(f.twins))
	for id := range f.twins {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var items []json.RawMessage
	for _, id := range ids {
		b, _ := json.Marshal(f.twins[id])
		items = append(items, b)
	}
	items, next := page(items, opts)
	return &hub.QueryResult{Items: items, ItemType: hub.ItemTwin, Continuation: next}, nil
}

// page cuts one page out of items; continuation tokens are offsets.
func page[T any](items []T, opts hub.QueryOptions) ([]T, string) {
	start, _ := strconv.Atoi(opts.Continuation)
	start = min(start, len(items))
	n := opts.PageSize
	if n <= 0 {
		n = 100
	}
	end := min(start+n, len(items))
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next
}

func (f *fakeHub) CreateJob(_ context.Context, j *hub.Job) (*hub.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.jobs[j.JobID]; ok {
		return nil, hub.Errorf(hub.CodeJobAlreadyExists, "job %q already exists", j.JobID)
	}
	if j.QueryCondition == "" {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "queryCondition is required")
	}
	c := *j
	c.Status = hub.JobQueued
	c.CreatedTime = hub.NewTime(time.Date(2026, 11, 25, 12, 0, 0, 123456700, time.UTC))
	if c.MaxExecutionTimeInSeconds == 0 {
		c.MaxExecutionTimeInSeconds = hub.DefaultMaxExecutionTime
	}
	c.DeviceJobStatistics = &hub.DeviceJobStatistics{}
	f.jobs[j.JobID] = &c
	f.order = append(f.order, j.JobID)
	out := c
	return &out, nil
}

func (f *fakeHub) GetJob(_ context.Context, id string) (*hub.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jobLocked(id)
}

func (f *fakeHub) jobLocked(id string) (*hub.Job, error) {
	j, ok := f.jobs[id]
	if !ok {
		return nil, hub.Errorf(hub.CodeJobNotFound, "job %q not found", id)
	}
	c := *j
	if j.DeviceJobStatistics != nil {
		s := *j.DeviceJobStatistics
		c.DeviceJobStatistics = &s
	}
	return &c, nil
}

// setJob changes a job from the test and wakes watchers.
func (f *fakeHub) setJob(id string, change func(*hub.Job)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f.jobs[id])
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeHub) WatchJob(ctx context.Context, id string, last *hub.Job) (*hub.Job, error) {
	announced := false
	for {
		f.mu.Lock()
		j, err := f.jobLocked(id)
		ch := f.changed
		f.mu.Unlock()
		if err != nil || last == nil || !hub.SameJobState(j, last) {
			return j, err
		}
		if !announced {
			announced = true
			f.watching <- id
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return j, nil
		}
	}
}

func (f *fakeHub) CancelJob(_ context.Context, id string) (*hub.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return nil, hub.Errorf(hub.CodeJobNotFound, "job %q not found", id)
	}
	if !j.Status.Terminal() {
		j.Status = hub.JobCancelled
	}
	return f.jobLocked(id)
}

func (f *fakeHub) QueryJobs(_ context.Context, q hub.JobQuery) ([]*hub.Job, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastJobQ = q
	var out []*hub.Job
	for _, id := range slices.Backward(f.order) {
		j, _ := f.jobLocked(id)
		if (q.Type == "" || j.Type == q.Type) && (q.Status == "" || j.Status == q.Status) {
			out = append(out, j)
		}
	}
	out, next := page(out, q.QueryOptions)
	return out, next, nil
}
