package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/store/sqlite"
)

// testBus is an in-process DeviceBus: online devices answer methods with
// a status computed from the method name, "hang" never answers, and every
// call and desired push is recorded.
type testBus struct {
	mu      sync.Mutex
	online  map[string]bool
	pushed  []push
	calls   chan string // device ids of method calls, as they arrive
	kicked  []string
	answers map[string]int
	release bool // "hang" answers at once
}

type push struct {
	id      string
	patch   map[string]any
	version int64
}

func newTestBus(online ...string) *testBus {
	b := &testBus{online: map[string]bool{}, calls: make(chan string, 100), answers: map[string]int{}}
	for _, id := range online {
		b.online[id] = true
	}
	return b
}

func (b *testBus) InvokeMethod(ctx context.Context, id, method string, payload json.RawMessage) (*hub.MethodResponse, error) {
	b.mu.Lock()
	on := b.online[id]
	b.mu.Unlock()
	if !on {
		return nil, hub.ErrDeviceNotOnline
	}
	b.calls <- id
	b.mu.Lock()
	release := b.release
	b.mu.Unlock()
	if method == "hang" && !release {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	status := 200
	if method == "fail" {
		status = 500
	}
	return &hub.MethodResponse{Status: status, Payload: json.RawMessage(`{"echo":` + string(payload) + `}`)}, nil
}

func (b *testBus) WaitOnline(ctx context.Context, id string) error {
	b.mu.Lock()
	on := b.online[id]
	b.mu.Unlock()
	if on {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (b *testBus) PushDesired(ctx context.Context, id string, patch json.RawMessage, version int64) error {
	var m map[string]any
	json.Unmarshal(patch, &m)
	b.mu.Lock()
	b.pushed = append(b.pushed, push{id, m, version})
	b.mu.Unlock()
	return nil
}

func (b *testBus) Kick(id string) {
	b.mu.Lock()
	b.kicked = append(b.kicked, id)
	b.mu.Unlock()
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// newEngine opens an engine on a fresh SQLite file.
func newEngine(t *testing.T, bus hub.DeviceBus, clk clock.Clock) *engine.Engine {
	t.Helper()
	return openEngine(t, filepath.Join(t.TempDir(), "hub.db"), bus, clk, nil)
}

// openEngine opens an engine on the SQLite file at path, set up by
// configure (may be nil) before Open; Close of the engine closes the
// store.
func openEngine(t *testing.T, path string, bus hub.DeviceBus, clk clock.Clock, configure func(*engine.Engine)) *engine.Engine {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(st, bus, clk)
	if configure != nil {
		configure(e)
	}
	if err := e.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		st.Close()
	})
	return e
}

func mustCreate(t *testing.T, e *engine.Engine, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := e.CreateDevice(context.Background(), &hub.Device{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := hub.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestRegistry(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.Real())
	ctx := context.Background()
	d, err := e.CreateDevice(ctx, &hub.Device{DeviceID: "dev1",
		Authentication: hub.Authentication{Type: "sas", SymmetricKey: hub.SymmetricKey{}}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Authentication.SymmetricKey.PrimaryKey == "" || d.Authentication.SymmetricKey.SecondaryKey == "" ||
		d.Status != hub.StatusEnabled || d.ConnectionState != hub.Disconnected {
		t.Fatalf("created device %+v: want generated keys, enabled, disconnected", d)
	}
	got, err := e.GetDevice(ctx, "dev1")
	if err != nil || got.Authentication.SymmetricKey != d.Authentication.SymmetricKey {
		t.Fatalf("get: %+v, %v", got, err)
	}
	tests := []struct {
		name string
		dev  *hub.Device
		code string
	}{
		{"duplicate", &hub.Device{DeviceID: "dev1"}, hub.CodeDeviceAlreadyExists},
		{"empty id", &hub.Device{}, hub.CodeArgumentInvalid},
		{"slash in id", &hub.Device{DeviceID: "a/b"}, hub.CodeArgumentInvalid},
		{"id too long", &hub.Device{DeviceID: strings.Repeat("x", 129)}, hub.CodeArgumentInvalid},
		{"bad key", &hub.Device{DeviceID: "k", Authentication: hub.Authentication{SymmetricKey: hub.SymmetricKey{PrimaryKey: "!!"}}}, hub.CodeArgumentInvalid},
		{"bad status", &hub.Device{DeviceID: "s", Status: "asleep"}, hub.CodeArgumentInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.CreateDevice(ctx, tc.dev)
			wantCode(t, err, tc.code)
		})
	}
	wantCode(t, e.DeleteDevice(ctx, "dev1", `"nope"`), hub.CodePreconditionFailed)
	if err := e.DeleteDevice(ctx, "dev1", `"*"`); err != nil {
		t.Fatal(err)
	}
	_, err = e.GetDevice(ctx, "dev1")
	if !errors.Is(err, hub.ErrDeviceNotFound) {
		t.Fatalf("get deleted device: %v", err)
	}
	wantCode(t, e.DeleteDevice(ctx, "dev1", ""), hub.CodeDeviceNotFound)
}

func TestTwinUpdate(t *testing.T) {
	bus := newTestBus("dev1")
	e := newEngine(t, bus, clock.Real())
	ctx := context.Background()
	mustCreate(t, e, "dev1")
	tw, err := e.GetTwin(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if tw.Version != 1 || tw.ETag != "AAAAAAAAAAE=" || tw.Properties.Desired["$version"] != float64(1) {
		t.Fatalf("new twin: version %d etag %q desired %v", tw.Version, tw.ETag, tw.Properties.Desired)
	}
	patch := &hub.TwinPatch{Tags: map[string]any{"building": "43", "loc": map[string]any{"floor": 3.0}},
		Properties: &hub.Properties{Desired: map[string]any{"fw": "2.4.1", "cfg": map[string]any{"a": 1.0, "b": 2.0}}}}
	tw2, err := e.UpdateTwin(ctx, "dev1", patch, `"`+tw.ETag+`"`)
	if err != nil {
		t.Fatal(err)
	}
	if tw2.Version != 2 || tw2.ETag == tw.ETag || tw2.Properties.Desired["$version"] != float64(2) ||
		tw2.Tags["building"] != "43" || tw2.Properties.Desired["fw"] != "2.4.1" {
		t.Fatalf("patched twin: %+v", tw2)
	}
	if len(bus.pushed) != 1 || bus.pushed[0].version != 2 || bus.pushed[0].patch["fw"] != "2.4.1" {
		t.Fatalf("desired push: %+v", bus.pushed)
	}
	// A stale etag is refused and changes nothing.
	_, err = e.UpdateTwin(ctx, "dev1", patch, tw.ETag)
	wantCode(t, err, hub.CodePreconditionFailed)
	// null deletes; nested objects merge.
	tw3, err := e.UpdateTwin(ctx, "dev1", &hub.TwinPatch{Tags: map[string]any{"building": nil},
		Properties: &hub.Properties{Desired: map[string]any{"cfg": map[string]any{"a": nil}}}}, "*")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tw3.Tags["building"]; ok {
		t.Errorf("tag building not deleted: %v", tw3.Tags)
	}
	if cfg := tw3.Properties.Desired["cfg"].(map[string]any); cfg["a"] != nil || cfg["b"] != 2.0 {
		t.Errorf("desired cfg after merge: %v", cfg)
	}
	if tw3.Version != 3 {
		t.Errorf("version %d, want 3", tw3.Version)
	}
	_, err = e.UpdateTwin(ctx, "nobody", patch, "*")
	wantCode(t, err, hub.CodeDeviceNotFound)
	_, err = e.UpdateTwin(ctx, "dev1", &hub.TwinPatch{Tags: map[string]any{"$bad": 1.0}}, "*")
	wantCode(t, err, hub.CodeArgumentInvalid)
	_, err = e.UpdateTwin(ctx, "dev1", &hub.TwinPatch{Tags: map[string]any{"big": strings.Repeat("x", 9000)}}, "*")
	if err == nil {
		t.Fatal("over-size tag accepted")
	}

	v, err := e.ReportedPatch(ctx, "dev1", json.RawMessage(`{"battery": 88}`))
	if err != nil || v != 2 {
		t.Fatalf("reported patch: version %d, %v", v, err)
	}
	doc, err := e.TwinDocument(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	var d struct{ Desired, Reported map[string]any }
	json.Unmarshal(doc, &d)
	if d.Reported["battery"] != 88.0 || d.Reported["$version"] != 2.0 || d.Desired["$metadata"] != nil {
		t.Fatalf("twin document %s", doc)
	}
	_, err = e.ReportedPatch(ctx, "dev1", json.RawMessage(`[1]`))
	wantCode(t, err, hub.CodeArgumentInvalid)
}

func TestInvokeMethod(t *testing.T) {
	bus := newTestBus("on")
	e := newEngine(t, bus, clock.Real())
	ctx := context.Background()
	mustCreate(t, e, "on", "off")
	resp, err := e.InvokeMethod(ctx, "on", &hub.MethodRequest{MethodName: "lockDoor", Payload: json.RawMessage(`{"x":1}`)})
	if err != nil || resp.Status != 200 || string(resp.Payload) != `{"echo":{"x":1}}` {
		t.Fatalf("invoke: %+v %v", resp, err)
	}
	tests := []struct {
		name string
		id   string
		req  hub.MethodRequest
		code string
	}{
		{"offline", "off", hub.MethodRequest{MethodName: "m"}, hub.CodeDeviceNotOnline},
		{"unknown device", "ghost", hub.MethodRequest{MethodName: "m"}, hub.CodeDeviceNotFound},
		{"response timeout too small", "on", hub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 4}, hub.CodeArgumentInvalid},
		{"response timeout too big", "on", hub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 301}, hub.CodeArgumentInvalid},
		{"connect timeout too big", "on", hub.MethodRequest{MethodName: "m", ConnectTimeoutInSeconds: 301}, hub.CodeArgumentInvalid},
		{"bad method name", "on", hub.MethodRequest{MethodName: "a/b"}, hub.CodeArgumentInvalid},
		{"bad payload", "on", hub.MethodRequest{MethodName: "m", Payload: json.RawMessage(`{`)}, hub.CodeArgumentInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.InvokeMethod(ctx, tc.id, &tc.req)
			wantCode(t, err, tc.code)
		})
	}
}

func TestInvokeMethodTimeouts(t *testing.T) {
	clk := clock.NewVirtual(t0)
	bus := newTestBus("on")
	e := newEngine(t, bus, clk)
	ctx := context.Background()
	mustCreate(t, e, "on", "off")

	// No answer within the response timeout → GatewayTimeout (504101).
	errc := make(chan error, 1)
	go func() {
		_, err := e.InvokeMethod(ctx, "on", &hub.MethodRequest{MethodName: "hang", ResponseTimeoutInSeconds: 10})
		errc <- err
	}()
	<-bus.calls
	clk.Advance(10 * time.Second)
	wantCode(t, <-errc, hub.CodeGatewayTimeout)

	// An offline device is waited for up to the connect timeout → DeviceNotOnline.
	go func() {
		_, err := e.InvokeMethod(ctx, "off", &hub.MethodRequest{MethodName: "m", ConnectTimeoutInSeconds: 30})
		errc <- err
	}()
	waitTimer(t, clk)
	clk.Advance(30 * time.Second)
	err := <-errc
	wantCode(t, err, hub.CodeDeviceNotOnline)
	if !strings.Contains(hub.ErrorMessage(err), "00:00:30") {
		t.Errorf("message %q does not name the connect timeout", hub.ErrorMessage(err))
	}
}

// waitTimer waits until some goroutine has armed a timer on clk.
func waitTimer(t *testing.T, clk *clock.Virtual) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := clk.Peek(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no timer was armed")
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline, not synchronising on time
	}
}

// waitJob follows a job with WatchJob until it is terminal.
func waitJob(t *testing.T, e *engine.Engine, id string) *hub.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, err := e.WatchJob(ctx, id, nil)
	for err == nil && !j.Status.Terminal() {
		j, err = e.WatchJob(ctx, id, j)
	}
	if err != nil {
		t.Fatalf("watch job %s: %v", id, err)
	}
	return j
}

// waitEnd waits until the job has its endTime: every device is done.
func waitEnd(t *testing.T, e *engine.Engine, id string) *hub.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, err := e.WatchJob(ctx, id, nil)
	for err == nil && j.EndTime == nil {
		j, err = e.WatchJob(ctx, id, j)
	}
	if err != nil {
		t.Fatalf("watch job %s: %v", id, err)
	}
	return j
}

func deviceJobs(t *testing.T, e *engine.Engine, jobID string) map[string]hub.DeviceJob {
	t.Helper()
	out := map[string]hub.DeviceJob{}
	opts := hub.QueryOptions{PageSize: 2}
	for {
		res, err := e.Query(context.Background(), "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+jobID+"'", opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.ItemType != hub.ItemDeviceJob {
			t.Errorf("item type %q", res.ItemType)
		}
		for _, it := range res.Items {
			var dj hub.DeviceJob
			if err := json.Unmarshal(it, &dj); err != nil {
				t.Fatal(err)
			}
			if _, dup := out[dj.DeviceID]; dup {
				t.Fatalf("device %s listed twice", dj.DeviceID)
			}
			out[dj.DeviceID] = dj
		}
		if res.Continuation == "" {
			return out
		}
		opts.Continuation = res.Continuation
	}
}

func TestMethodJob(t *testing.T) {
	bus := newTestBus("a", "b", "c", "x")
	e := newEngine(t, bus, clock.Real())
	ctx := context.Background()
	mustCreate(t, e, "a", "b", "c", "d", "x")
	for _, id := range []string{"a", "b", "c", "d"} {
		if _, err := e.UpdateTwin(ctx, id, &hub.TwinPatch{Tags: map[string]any{"building": "43"}}, "*"); err != nil {
			t.Fatal(err)
		}
	}
	j, err := e.CreateJob(ctx, &hub.Job{JobID: "j1", Type: hub.JobDeviceMethod, QueryCondition: "tags.building = '43'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "reboot", ResponseTimeoutInSeconds: 15}})
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != hub.JobQueued || j.MaxExecutionTimeInSeconds != 3600 || j.StartTime == nil {
		t.Fatalf("created job %+v", j)
	}
	j = waitJob(t, e, "j1")
	want := hub.DeviceJobStatistics{DeviceCount: 4, SucceededCount: 3, FailedCount: 1}
	if j.Status != hub.JobCompleted || *j.DeviceJobStatistics != want || j.EndTime == nil {
		t.Fatalf("job %s: stats %+v, want completed %+v", j.Status, j.DeviceJobStatistics, want)
	}
	djs := deviceJobs(t, e, "j1")
	if len(djs) != 4 {
		t.Fatalf("%d device jobs, want 4", len(djs))
	}
	if d := djs["d"]; d.Status != hub.DeviceJobFailed || d.Error == nil || d.Error.Code != hub.CodeDeviceNotOnline {
		t.Errorf("offline device d: %+v", d)
	}
	if a := djs["a"]; a.Status != hub.DeviceJobCompleted || a.Outcome == nil || a.Outcome.DeviceMethodResponse.Status != 200 ||
		a.StartTimeUtc == nil || a.EndTimeUtc == nil || a.JobType != hub.JobDeviceMethod {
		t.Errorf("device a: %+v", a)
	}
	if _, ok := djs["x"]; ok {
		t.Error("device x does not match the condition but ran")
	}
	// Creating the same job id again is refused.
	_, err = e.CreateJob(ctx, &hub.Job{JobID: "j1", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "reboot"}})
	wantCode(t, err, hub.CodeJobAlreadyExists)
}

func TestTwinJob(t *testing.T) {
	bus := newTestBus()
	e := newEngine(t, bus, clock.Real())
	ctx := context.Background()
	mustCreate(t, e, "a", "b")
	_, err := e.CreateJob(ctx, &hub.Job{JobID: "t1", Type: hub.JobUpdateTwin, QueryCondition: "*",
		UpdateTwin: &hub.TwinPatch{ETag: "*", Tags: map[string]any{"site": "hq"},
			Properties: &hub.Properties{Desired: map[string]any{"building": "43", "floor": 3.0},
				Reported: map[string]any{"ignored": true}}}})
	if err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, e, "t1")
	if j.Status != hub.JobCompleted || j.DeviceJobStatistics.SucceededCount != 2 {
		t.Fatalf("job %+v", j)
	}
	for _, id := range []string{"a", "b"} {
		tw, _ := e.GetTwin(ctx, id)
		if tw.Properties.Desired["building"] != "43" || tw.Properties.Desired["floor"] != 3.0 || tw.Tags["site"] != "hq" ||
			tw.Properties.Reported["ignored"] != nil {
			t.Errorf("twin %s after job: %+v", id, tw)
		}
	}
}

// A twin job's "desired": null and "tags": null clear the sections on
// every device, as the PATCH does.
func TestTwinJobNullSections(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.Real())
	ctx := context.Background()
	mustCreate(t, e, "a")
	if _, err := e.UpdateTwin(ctx, "a", &hub.TwinPatch{Tags: map[string]any{"site": "hq"}, Properties: &hub.Properties{Desired: map[string]any{"floor": 3.0}}}, "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateJob(ctx, &hub.Job{JobID: "clear", Type: hub.JobUpdateTwin, QueryCondition: "*",
		UpdateTwin: &hub.TwinPatch{ETag: "*", ClearTags: true, ClearDesired: true}}); err != nil {
		t.Fatalf("a job of null sections refused: %v", err)
	}
	if j := waitJob(t, e, "clear"); j.Status != hub.JobCompleted || j.DeviceJobStatistics.SucceededCount != 1 {
		t.Fatalf("job %+v", j)
	}
	tw, _ := e.GetTwin(ctx, "a")
	if _, has := tw.Properties.Desired["floor"]; has || len(tw.Tags) != 0 {
		t.Errorf("twin after the job: tags %v desired %v; want both emptied", tw.Tags, tw.Properties.Desired)
	}
}

func TestCreateJobValidation(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.Real())
	m := &hub.MethodRequest{MethodName: "m"}
	tests := []struct {
		name string
		job  hub.Job
		code string
	}{
		{"no id", hub.Job{Type: hub.JobDeviceMethod, QueryCondition: "*", CloudToDeviceMethod: m}, hub.CodeArgumentInvalid},
		{"unknown type", hub.Job{JobID: "j", Type: "scheduleDirectRequest", QueryCondition: "*"}, hub.CodeGenericBadRequest},
		{"no condition", hub.Job{JobID: "j", Type: hub.JobDeviceMethod, CloudToDeviceMethod: m}, hub.CodeArgumentInvalid},
		{"bad condition", hub.Job{JobID: "j", Type: hub.JobDeviceMethod, QueryCondition: "deviceId IN ['a'", CloudToDeviceMethod: m}, hub.CodeArgumentInvalid},
		{"no method", hub.Job{JobID: "j", Type: hub.JobDeviceMethod, QueryCondition: "*"}, hub.CodeArgumentInvalid},
		{"empty twin", hub.Job{JobID: "j", Type: hub.JobUpdateTwin, QueryCondition: "*", UpdateTwin: &hub.TwinPatch{}}, hub.CodeArgumentInvalid},
		{"twin without sections", hub.Job{JobID: "j", Type: hub.JobUpdateTwin, QueryCondition: "*", UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{}}}, hub.CodeArgumentInvalid},
		{"negative max time", hub.Job{JobID: "j", Type: hub.JobDeviceMethod, QueryCondition: "*", CloudToDeviceMethod: m, MaxExecutionTimeInSeconds: -1}, hub.CodeArgumentInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.CreateJob(context.Background(), &tc.job)
			wantCode(t, err, tc.code)
		})
	}
	_, err := e.GetJob(context.Background(), "missing")
	wantCode(t, err, hub.CodeJobNotFound)
	_, err = e.CancelJob(context.Background(), "missing")
	wantCode(t, err, hub.CodeJobNotFound)
}

func TestScheduledJobCancelAndExpiry(t *testing.T) {
	clk := clock.NewVirtual(t0)
	bus := newTestBus("a", "b")
	e := newEngine(t, bus, clk)
	ctx := context.Background()
	mustCreate(t, e, "a", "b")

	// A job starting in an hour is scheduled and runs when time comes.
	start := &hub.Time{Time: t0.Add(time.Hour)}
	if _, err := e.CreateJob(ctx, &hub.Job{JobID: "later", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'a'",
		StartTime: start, CloudToDeviceMethod: &hub.MethodRequest{MethodName: "m"}}); err != nil {
		t.Fatal(err)
	}
	j, err := e.WatchJob(ctx, "later", &hub.Job{Status: hub.JobQueued, DeviceJobStatistics: &hub.DeviceJobStatistics{}})
	if err != nil || j.Status != hub.JobScheduled {
		t.Fatalf("future job: %+v %v", j, err)
	}
	clk.AdvanceTo(start.Time)
	if j := waitJob(t, e, "later"); j.Status != hub.JobCompleted || j.DeviceJobStatistics.SucceededCount != 1 {
		t.Fatalf("job after its start time: %+v", j)
	}
	<-bus.calls // the call on a

	// Cancel a job whose devices never answer: the answer is "cancelled"
	// at once; the calls in flight go on until they time out.
	if _, err := e.CreateJob(ctx, &hub.Job{JobID: "cancel-me", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "hang", ResponseTimeoutInSeconds: 300}}); err != nil {
		t.Fatal(err)
	}
	<-bus.calls
	<-bus.calls
	c, err := e.CancelJob(ctx, "cancel-me")
	if err != nil || c.Status != hub.JobCancelled || c.EndTime != nil || c.DeviceJobStatistics.RunningCount != 2 {
		t.Fatalf("cancel: %+v %+v %v", c, c.DeviceJobStatistics, err)
	}
	clk.Advance(300 * time.Second)
	j = waitEnd(t, e, "cancel-me")
	if j.Status != hub.JobCancelled || j.DeviceJobStatistics.RunningCount != 0 || j.DeviceJobStatistics.FailedCount != 2 {
		t.Fatalf("cancelled job: %+v %+v", j, j.DeviceJobStatistics)
	}
	for id, dj := range deviceJobs(t, e, "cancel-me") {
		if dj.Status != hub.DeviceJobFailed || dj.Error == nil || dj.Error.Code != hub.CodeGatewayTimeout {
			t.Errorf("device %s: %s, want failed by the response timeout (%+v)", id, dj.Status, dj.Error)
		}
	}

	// maxExecutionTime ends a job whose devices never answer.
	if _, err := e.CreateJob(ctx, &hub.Job{JobID: "expire", Type: hub.JobDeviceMethod, QueryCondition: "*",
		MaxExecutionTimeInSeconds: 10, CloudToDeviceMethod: &hub.MethodRequest{MethodName: "hang", ResponseTimeoutInSeconds: 300}}); err != nil {
		t.Fatal(err)
	}
	<-bus.calls
	<-bus.calls
	clk.Advance(10 * time.Second)
	j = waitJob(t, e, "expire")
	if j.Status != hub.JobFailed || j.FailureReason == "" || j.DeviceJobStatistics.FailedCount != 2 {
		t.Fatalf("expired job: %+v %+v", j, j.DeviceJobStatistics)
	}
	for id, dj := range deviceJobs(t, e, "expire") {
		if dj.Status != hub.DeviceJobFailed || dj.Error == nil {
			t.Errorf("device %s: %+v", id, dj)
		}
	}
	jobs, _, err := e.QueryJobs(ctx, hub.JobQuery{Status: hub.JobCancelled})
	if err != nil || len(jobs) != 1 || jobs[0].JobID != "cancel-me" {
		t.Fatalf("query cancelled jobs: %v %v", jobs, err)
	}
}

func TestQueryPaging(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.Real())
	ctx := context.Background()
	var ids []string
	for i := range 25 {
		ids = append(ids, "dev"+string(rune('a'+i)))
	}
	mustCreate(t, e, ids...)
	seen := map[string]bool{}
	opts := hub.QueryOptions{PageSize: 10}
	pages := 0
	for {
		res, err := e.Query(ctx, "SELECT * FROM devices", opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range res.Items {
			var tw hub.Twin
			json.Unmarshal(it, &tw)
			if seen[tw.DeviceID] {
				t.Fatalf("%s twice", tw.DeviceID)
			}
			seen[tw.DeviceID] = true
		}
		if res.Continuation == "" {
			break
		}
		opts.Continuation = res.Continuation
	}
	if pages != 3 || len(seen) != 25 {
		t.Fatalf("%d pages, %d devices; want 3 pages, 25 devices", pages, len(seen))
	}
	res, err := e.Query(ctx, "SELECT COUNT() AS numberOfDevices FROM devices", hub.QueryOptions{})
	if err != nil || len(res.Items) != 1 || string(res.Items[0]) != `{"numberOfDevices":25}` {
		t.Fatalf("count: %v %v", res, err)
	}
	_, err = e.Query(ctx, "SELECT * FROM devices WHERE", hub.QueryOptions{})
	wantCode(t, err, hub.CodeArgumentInvalid)
	_, err = e.Query(ctx, "SELECT * FROM devices", hub.QueryOptions{Continuation: "%%%"})
	wantCode(t, err, hub.CodeArgumentInvalid)
}

// TestEmptyTwinJob: a twin job whose sections are present but empty is
// queued, as on Azure (its SDK's job test creates one, then cancels it).
func TestEmptyTwinJob(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.Real())
	ctx := context.Background()
	start := &hub.Time{Time: time.Now().Add(time.Hour)}
	j, err := e.CreateJob(ctx, &hub.Job{JobID: "empty", Type: hub.JobUpdateTwin, QueryCondition: "*", StartTime: start,
		UpdateTwin: &hub.TwinPatch{ETag: "*", Tags: map[string]any{}, Properties: &hub.Properties{Desired: map[string]any{}, Reported: map[string]any{}}}})
	if err != nil {
		t.Fatalf("CreateJob of empty sections: %v", err)
	}
	if j.Status != hub.JobQueued && j.Status != hub.JobScheduled {
		t.Errorf("status %s, want queued or scheduled", j.Status)
	}
	if c, err := e.CancelJob(ctx, "empty"); err != nil || c.Status != hub.JobCancelled {
		t.Errorf("cancel: %v, %+v", err, c)
	}
}
