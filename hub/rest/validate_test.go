package rest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/hub/store/memstore"
)

// The tests of this file hold the REST server over the real engine (a
// memstore, a virtual clock that nobody moves, and a bus on which every
// device is offline) to the request validation rules, one table per class
// of defect: every refused request answers the status, the Azure error
// body and the iothub-errorcode header it should, and leaves the hub's
// state (registry, twins with their etags and versions, jobs) exactly as
// it was.

// vt0 is the virtual clock's time; request times are relative to it.
var vt0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// offlineBus is a DeviceBus on which no device is ever online.
type offlineBus struct{}

func (offlineBus) InvokeMethod(context.Context, string, string, json.RawMessage) (*hub.MethodResponse, error) {
	return nil, hub.ErrDeviceNotOnline
}

func (offlineBus) WaitOnline(ctx context.Context, _ string) error {
	<-ctx.Done()
	return ctx.Err()
}

func (offlineBus) PushDesired(context.Context, string, json.RawMessage, int64) error { return nil }
func (offlineBus) Kick(string)                                                       {}

// engineHub is a REST server over an engine, seeded with dev1 and dev2
// (dev1 with tags and desired properties, so that a wipe would show) and
// the job "seeded", scheduled an hour ahead, which stays scheduled since
// the clock never moves.
type engineHub struct {
	ts  *httptest.Server
	tok string
	e   *engine.Engine
}

func newEngineHub(t *testing.T) *engineHub {
	t.Helper()
	ctx := context.Background()
	e := engine.New(memstore.New(), offlineBus{}, clock.NewVirtual(vt0))
	if err := e.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	for _, id := range []string{"dev1", "dev2"} {
		if _, err := e.CreateDevice(ctx, &hub.Device{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.UpdateTwin(ctx, "dev1", &hub.TwinPatch{Tags: map[string]any{"site": "A"},
		Properties: &hub.Properties{Desired: map[string]any{"fw": "1.0"}}}, "*"); err != nil {
		t.Fatal(err)
	}
	j, err := e.CreateJob(ctx, &hub.Job{JobID: "seeded", Type: hub.JobDeviceMethod, QueryCondition: "*",
		StartTime: &hub.Time{Time: vt0.Add(time.Hour)}, CloudToDeviceMethod: &hub.MethodRequest{MethodName: "m"}})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the job to settle as scheduled, so that the snapshots
	// compared below cannot see it move.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for j.Status != hub.JobScheduled {
		if j, err = e.WatchJob(wctx, "seeded", j); err != nil {
			t.Fatalf("seeded job never scheduled: %v", err)
		}
	}

	ts := httptest.NewUnstartedServer(nil)
	host := ts.Listener.Addr().String()
	s := &Server{
		Hub:       e,
		Authorize: SASAuthorizer(map[string]string{testPolicy: testKey}, []string{host}, nil),
		Logger:    slog.New(slog.DiscardHandler),
	}
	ts.Config.Handler = s.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	tok, err := sas.ServiceToken(host, testPolicy, testKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return &engineHub{ts: ts, tok: tok, e: e}
}

// snapshot is the hub's whole state as text: devices, twins and jobs.
func (h *engineHub) snapshot(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	devs, err := h.e.ListDevices(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var twins []*hub.Twin
	for _, d := range devs {
		tw, err := h.e.GetTwin(ctx, d.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		twins = append(twins, tw)
	}
	jobs, _, err := h.e.QueryJobs(ctx, hub.JobQuery{QueryOptions: hub.QueryOptions{PageSize: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"devices": devs, "twins": twins, "jobs": jobs})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// req is one request of a validation table and the error it must get.
type req struct {
	name   string
	method string
	path   string
	header http.Header
	body   string
	status int
	code   string
	shape  byte   // 'A', or 'B' for direct-method errors
	wantIn string // a substring of the error body
}

// refuse sends each request to one hub and checks that it is refused as
// it says and that the hub's state did not change.
func refuse(t *testing.T, reqs []req) {
	t.Helper()
	h := newEngineHub(t)
	for _, rq := range reqs {
		t.Run(rq.name, func(t *testing.T) {
			before := h.snapshot(t)
			r := h.send(t, rq.method, rq.path, rq.header, rq.body)
			if r.status != rq.status {
				t.Fatalf("status %d, want %d; body %s", r.status, rq.status, r.body)
			}
			shape := rq.shape
			if shape == 0 {
				shape = 'A'
			}
			checkErrorShape(t, r, rq.code, shape)
			if rq.wantIn != "" {
				wantBodyContains(t, r, rq.wantIn)
			}
			if after := h.snapshot(t); after != before {
				t.Errorf("the refused request changed the hub:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// accept sends each request to a hub of its own and checks that it
// succeeds: the forms real clients send must survive the checks.
func accept(t *testing.T, reqs []req) {
	t.Helper()
	for _, rq := range reqs {
		t.Run(rq.name, func(t *testing.T) {
			h := newEngineHub(t)
			r := h.send(t, rq.method, rq.path, rq.header, rq.body)
			if r.status != rq.status {
				t.Fatalf("status %d, want %d; body %s", r.status, rq.status, r.body)
			}
			if rq.wantIn != "" {
				wantBodyContains(t, r, rq.wantIn)
			}
		})
	}
}

func (h *engineHub) send(t *testing.T, method, path string, header http.Header, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, h.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Authorization", h.tok)
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func ifMatchHeader(v ...string) http.Header { return http.Header{"If-Match": v} }

// methodJob is a scheduleDeviceMethod job body with extra fields (JSON
// members, without braces) added at the top level and in
// cloudToDeviceMethod.
func methodJob(top, method string) string {
	if method != "" {
		method = "," + method
	}
	if top != "" {
		top = "," + top
	}
	return `{"type":"scheduleDeviceMethod","queryCondition":"*","cloudToDeviceMethod":{"methodName":"m"` + method + `}` + top + `}`
}

// twinJob is a scheduleUpdateTwin job body with the given updateTwin.
func twinJob(update, top string) string {
	if top != "" {
		top = "," + top
	}
	return `{"type":"scheduleUpdateTwin","queryCondition":"*","updateTwin":` + update + top + `}`
}

// TestNumbersOutOfRange: every number a request carries, in a body or a
// header, has a range, and a number outside it is 400 ArgumentInvalid
// naming the field and the range, whatever its size (even one that does
// not fit an int64), before anything is stored.
func TestNumbersOutOfRange(t *testing.T) {
	maxExec := fmt.Sprintf("[1; %d]", hub.MaxJobExecutionTime)
	var reqs []req
	for _, v := range []string{"10000000000", "9223372036854775807", "9223372036854775808", "1e30", "-1", "1.5", "31536001", "-9223372036854775808"} {
		for _, start := range []string{`"startTime":null`, `"startTime":"2026-11-25T10:00:00Z"`} {
			reqs = append(reqs,
				req{name: "method job maxExecutionTimeInSeconds " + v + " " + start, method: "PUT", path: "/jobs/v2/j",
					body: methodJob(start+`,"maxExecutionTimeInSeconds":`+v, ""), status: 400, code: hub.CodeArgumentInvalid, wantIn: "maxExecutionTimeInSeconds must be within " + maxExec},
				req{name: "twin job maxExecutionTimeInSeconds " + v + " " + start, method: "PUT", path: "/jobs/v2/j",
					body: twinJob(`{"etag":"*","properties":{"desired":{"fw":"2"}}}`, start+`,"maxExecutionTimeInSeconds":`+v), status: 400, code: hub.CodeArgumentInvalid, wantIn: maxExec})
		}
	}
	for _, tc := range []struct{ field, v, rng string }{
		{"responseTimeoutInSeconds", "4", "[5; 300]"},
		{"responseTimeoutInSeconds", "301", "[5; 300]"},
		{"responseTimeoutInSeconds", "-5", "[5; 300]"},
		{"responseTimeoutInSeconds", "10000000000", "[5; 300]"},
		{"responseTimeoutInSeconds", "9223372036854775808", "[5; 300]"},
		{"responseTimeoutInSeconds", "1e30", "[5; 300]"},
		{"responseTimeoutInSeconds", "30.5", "[5; 300]"},
		{"connectTimeoutInSeconds", "-1", "[0; 300]"},
		{"connectTimeoutInSeconds", "301", "[0; 300]"},
		{"connectTimeoutInSeconds", "10000000000", "[0; 300]"},
		{"connectTimeoutInSeconds", "-9223372036854775809", "[0; 300]"},
	} {
		member := `"` + tc.field + `":` + tc.v
		reqs = append(reqs,
			req{name: "job cloudToDeviceMethod." + tc.field + " " + tc.v, method: "PUT", path: "/jobs/v2/j", body: methodJob(`"startTime":null`, member),
				status: 400, code: hub.CodeArgumentInvalid, wantIn: tc.field + " must be within " + tc.rng},
			req{name: "direct method " + tc.field + " " + tc.v, method: "POST", path: "/twins/dev1/methods", body: `{"methodName":"m",` + member + `}`,
				status: 400, code: hub.CodeArgumentInvalid, shape: 'B', wantIn: tc.field + ` must be within ` + tc.rng})
	}
	for _, tc := range []struct{ name, start string }{
		{"far future", "9999-12-31T23:59:59Z"},
		{"a year and a day ahead", vt0.Add(hub.MaxJobStartAhead + 24*time.Hour).Format(time.RFC3339)},
		{"year zero", "0000-01-01T00:00:00Z"},
		{"deadline passed a second ago", vt0.Add(-3601 * time.Second).Format(time.RFC3339)},
	} {
		reqs = append(reqs, req{name: "startTime " + tc.name, method: "PUT", path: "/jobs/v2/j", body: methodJob(`"startTime":"`+tc.start+`"`, ""),
			status: 400, code: hub.CodeArgumentInvalid, wantIn: "startTime"})
	}
	reqs = append(reqs,
		req{name: "startTime past year 9999", method: "PUT", path: "/jobs/v2/j", body: methodJob(`"startTime":"10000-01-01T00:00:00Z"`, ""),
			status: 400, code: hub.CodeFormatError, wantIn: "10000-01-01"},
		req{name: "startTime a number", method: "PUT", path: "/jobs/v2/j", body: methodJob(`"startTime":1e300`, ""),
			status: 400, code: hub.CodeFormatError},
	)
	for _, v := range []string{"0", "-1", "10001", "99999999999999999999", "abc", "1.5", " "} {
		rng := fmt.Sprintf("1; %d", hub.MaxPageSize)
		if v == "abc" || v == "1.5" {
			rng = fmt.Sprintf("send 1 to %d", hub.MaxPageSize)
		}
		if v == " " { // blank is absent
			continue
		}
		reqs = append(reqs,
			req{name: "device query x-ms-max-item-count " + v, method: "POST", path: "/devices/query", header: http.Header{headerMaxItems: {v}},
				body: `{"query":"SELECT * FROM devices"}`, status: 400, code: hub.CodeArgumentInvalid, wantIn: rng},
			req{name: "job query x-ms-max-item-count " + v, method: "GET", path: "/jobs/v2/query", header: http.Header{headerMaxItems: {v}},
				status: 400, code: hub.CodeArgumentInvalid, wantIn: rng})
	}
	for _, v := range []string{"abc", "1.5", "1e3", "0x10"} {
		reqs = append(reqs, req{name: "top " + v, method: "GET", path: "/devices?top=" + v, status: 400, code: hub.CodeArgumentInvalid, wantIn: "1 to 1000"})
	}
	for _, v := range []string{"0", "61", "-1", "99999999999999999999", "x"} {
		reqs = append(reqs, req{name: "x-iotjobs-wait " + v, method: "GET", path: "/jobs/v2/seeded", header: http.Header{headerWait: {v}},
			status: 400, code: hub.CodeArgumentInvalid, wantIn: "from 1 to 60"})
	}
	for _, v := range []string{"4503599627370496", "-4503599627370497", "1e300", "9007199254740993"} {
		reqs = append(reqs,
			req{name: "twin PATCH desired integer " + v, method: "PATCH", path: "/twins/dev1", header: ifMatchHeader(`"*"`),
				body: `{"properties":{"desired":{"n":` + v + `}}}`, status: 400, code: hub.CodeArgumentInvalid, wantIn: "4503599627370495"},
			req{name: "twin PUT tags integer " + v, method: "PUT", path: "/twins/dev1", header: ifMatchHeader(`"*"`),
				body: `{"tags":{"n":` + v + `}}`, status: 400, code: hub.CodeArgumentInvalid, wantIn: "4503599627370495"},
			req{name: "twin job integer " + v, method: "PUT", path: "/jobs/v2/j",
				body: twinJob(`{"tags":{"n":`+v+`}}`, ""), status: 400, code: hub.CodeArgumentInvalid, wantIn: "4503599627370495"})
	}
	refuse(t, reqs)

	accept(t, []req{
		{name: "maxExecutionTimeInSeconds at the maximum", method: "PUT", path: "/jobs/v2/j",
			body: methodJob(fmt.Sprintf(`"startTime":null,"maxExecutionTimeInSeconds":%d`, hub.MaxJobExecutionTime), ""), status: 200},
		{name: "maxExecutionTimeInSeconds 1", method: "PUT", path: "/jobs/v2/j", body: methodJob(`"maxExecutionTimeInSeconds":1`, ""), status: 200},
		{name: "startTime just within a year", method: "PUT", path: "/jobs/v2/j",
			body: methodJob(`"startTime":"`+vt0.Add(hub.MaxJobStartAhead).Format(time.RFC3339)+`"`, ""), status: 200},
		{name: "startTime 0001-01-01, Azure's never, is now", method: "PUT", path: "/jobs/v2/j",
			body: methodJob(`"startTime":"0001-01-01T00:00:00Z"`, ""), status: 200},
		{name: "startTime in the past with time left", method: "PUT", path: "/jobs/v2/j",
			body: methodJob(`"startTime":"`+vt0.Add(-time.Hour+time.Second).Format(time.RFC3339)+`"`, ""), status: 200},
		{name: "timeouts at their bounds", method: "PUT", path: "/jobs/v2/j",
			body: methodJob("", `"responseTimeoutInSeconds":300,"connectTimeoutInSeconds":300`), status: 200},
		{name: "x-ms-max-item-count at the maximum", method: "POST", path: "/devices/query", header: http.Header{headerMaxItems: {fmt.Sprint(hub.MaxPageSize)}},
			body: `{"query":"SELECT * FROM devices"}`, status: 200},
		// Azure's swagger: any top outside 1-1000 is 1000.
		{name: "top 0 is 1000", method: "GET", path: "/devices?top=0", status: 200, wantIn: "dev2"},
		{name: "top -1 is 1000", method: "GET", path: "/devices?top=-1", status: 200, wantIn: "dev2"},
		{name: "top past int64 is 1000", method: "GET", path: "/devices?top=99999999999999999999", status: 200, wantIn: "dev2"},
		{name: "twin integer at the maximum", method: "PATCH", path: "/twins/dev1", body: `{"tags":{"n":4503599627370495,"f":0.5}}`, status: 200},
	})
}

// TestBodyMustBeTheExpectedKind: every route with a body reads it through
// readJSON, which takes only the kind of JSON value the operation expects
// (an object; an array for the bulk registry operation). null and every
// other kind are 400 IotHubFormatError and change nothing: before, a PUT
// of null wiped a twin and created a device.
func TestBodyMustBeTheExpectedKind(t *testing.T) {
	objectRoutes := []struct {
		name, method, path string
		header             http.Header
		shape              byte
	}{
		{"create device", "PUT", "/devices/new1", nil, 'A'},
		{"update device", "PUT", "/devices/dev1", ifMatchHeader(`"*"`), 'A'},
		{"patch twin", "PATCH", "/twins/dev1", ifMatchHeader(`"*"`), 'A'},
		{"patch twin without If-Match", "PATCH", "/twins/dev1", nil, 'A'},
		{"replace twin", "PUT", "/twins/dev1", ifMatchHeader(`"*"`), 'A'},
		{"replace twin without If-Match", "PUT", "/twins/dev1", nil, 'A'},
		{"direct method", "POST", "/twins/dev1/methods", nil, 'B'},
		{"device query", "POST", "/devices/query", nil, 'A'},
		{"create job", "PUT", "/jobs/v2/new-job", nil, 'A'},
	}
	var reqs []req
	for _, rt := range objectRoutes {
		for _, body := range []string{"null", " null ", "0", "5", "-1", `"x"`, "true", "false", "[]", "[{}]", `[{"deviceId":"dev1"}]`} {
			reqs = append(reqs, req{name: rt.name + " " + body, method: rt.method, path: rt.path, header: rt.header, body: body,
				status: 400, code: hub.CodeFormatError, shape: rt.shape, wantIn: "not a JSON object"})
		}
		reqs = append(reqs, req{name: rt.name + " empty", method: rt.method, path: rt.path, header: rt.header, body: "  ",
			status: 400, code: hub.CodeFormatError, shape: rt.shape, wantIn: "empty"})
		// A body that means different things to different parsers, or
		// is declared as something else, is refused whatever it holds.
		for _, bad := range []struct{ name, body, contentType, wantIn string }{
			{"duplicate key", `{"x":1,"x":2}`, "", "appears twice in one object"},
			{"duplicate nested key", `{"tags":{"a":{"b":1,"b":1}},"properties":{}}`, "", "appears twice in one object"},
			{"duplicate key after an array", `{"a":[{"b":1},{"b":2}],"c":1,"c":1}`, "", "appears twice in one object"},
			{"invalid UTF-8", "{\"x\":\"\xff\xfe\"}", "", "not valid UTF-8 (at byte 6)"},
			{"form content type", `{}`, "application/x-www-form-urlencoded", "is not JSON"},
			{"text content type", `{}`, "text/plain", "is not JSON"},
			{"UTF-16 JSON", `{}`, "application/json; charset=utf-16", "UTF-8 only"},
			{"malformed content type", `{}`, "application/json; charset", "malformed"},
		} {
			h := rt.header.Clone()
			if bad.contentType != "" {
				if h == nil {
					h = http.Header{}
				}
				h.Set("Content-Type", bad.contentType)
			}
			reqs = append(reqs, req{name: rt.name + " " + bad.name, method: rt.method, path: rt.path, header: h, body: bad.body,
				status: 400, code: hub.CodeFormatError, shape: rt.shape, wantIn: bad.wantIn})
		}
	}
	for _, body := range []string{"null", "{}", `{"id":"x","importMode":"create"}`, "7", `"x"`, "true"} {
		reqs = append(reqs, req{name: "bulk " + body, method: "POST", path: "/devices", body: body,
			status: 400, code: hub.CodeFormatError, wantIn: "not a JSON array"})
	}
	// A null entry refuses the whole operation, as any malformed entry
	// does.
	reqs = append(reqs,
		req{name: "bulk of null entries", method: "POST", path: "/devices", body: "[null]",
			status: 400, code: hub.CodeArgumentInvalid, wantIn: "bulk entry 0: the entry is null; nothing was applied"},
		req{name: "bulk with a null entry after a good one", method: "POST", path: "/devices", body: `[{"id":"new1","importMode":"create"},null]`,
			status: 400, code: hub.CodeArgumentInvalid, wantIn: "bulk entry 1"},
	)
	refuse(t, reqs)
}

// deepObject is {"k1":{"k2":…{"kn":1}}}.
func deepObject(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"k%d":`, i)
	}
	b.WriteString("1")
	b.WriteString(strings.Repeat("}", n))
	return b.String()
}

// TestTwinJobPatchCheckedAtCreation: a scheduleUpdateTwin job whose patch
// PATCH /twins would refuse is refused when it is created, with the same
// status, code and message (prefixed with "updateTwin: "), instead of
// being accepted and failing on every device.
func TestTwinJobPatchCheckedAtCreation(t *testing.T) {
	long := strings.Repeat("x", 1000)
	bigTags := `{"a":"` + long + `","b":"` + long + `","c":"` + long + `","d":"` + long + `","e":"` + long + `","f":"` + long + `","g":"` + long + `","h":"` + long + `","i":"` + long + `"}`
	var bigDesired strings.Builder
	bigDesired.WriteString("{")
	for i := range 9 {
		if i > 0 {
			bigDesired.WriteString(",")
		}
		fmt.Fprintf(&bigDesired, `"k%d":"%s"`, i, strings.Repeat("y", 4000))
	}
	bigDesired.WriteString("}")
	patches := []struct {
		name, section, patch string
	}{
		{"desired $ key", "desired", `{"$foo":1}`},
		{"desired $version", "desired", `{"$version":7,"fw":"2"}`},
		{"desired nested $ key", "desired", `{"a":{"$metadata":{}}}`},
		{"desired $ key in an array", "desired", `{"l":[{"$x":1}]}`},
		{"tags $ key", "tags", `{"$x":1}`},
		{"tags dot in key", "tags", `{"a.b":1}`},
		{"desired space in key", "desired", `{"a b":1}`},
		{"desired control character in key", "desired", `{"a\u0001b":1}`},
		{"tags DEL in key", "tags", `{"a\u007fb":1}`},
		{"desired C1 control in key", "desired", `{"a\u0085":1}`},
		{"tags empty key", "tags", `{"":1}`},
		{"desired long key", "desired", `{"` + strings.Repeat("k", 1025) + `":1}`},
		{"desired too deep", "desired", deepObject(12)},
		{"tags too deep", "tags", deepObject(12)},
		{"desired long string", "desired", `{"s":"` + strings.Repeat("s", 4097) + `"}`},
		{"tags over 8 KB", "tags", bigTags},
		{"desired over 32 KB", "desired", bigDesired.String()},
		{"desired integer out of range", "desired", `{"n":4503599627370496}`},
	}
	h := newEngineHub(t)
	for _, p := range patches {
		t.Run(p.name, func(t *testing.T) {
			update := `{"tags":` + p.patch + `}`
			if p.section == "desired" {
				update = `{"properties":{"desired":` + p.patch + `}}`
			}
			before := h.snapshot(t)
			direct := h.send(t, "PATCH", "/twins/dev1", ifMatchHeader(`"*"`), update)
			if direct.status < 400 {
				t.Fatalf("PATCH /twins accepted the patch: %d %s", direct.status, direct.body)
			}
			code := direct.header.Get(headerErrorCode)
			for _, body := range []string{
				twinJob(update, ""),
				twinJob(update, `"startTime":null`),
				// The official sample's shape: etag and an empty reported.
				twinJob(`{"etag":"*",`+strings.TrimPrefix(strings.Replace(update, `"properties":{`, `"properties":{"reported":{},`, 1), "{"), ""),
			} {
				r := h.send(t, "PUT", "/jobs/v2/twin-job", nil, body)
				if r.status != direct.status {
					t.Fatalf("job status %d, PATCH /twins %d; job answered %s", r.status, direct.status, r.body)
				}
				checkErrorShape(t, r, code, 'A')
				patchMsg := parseErrorBody(direct.status, direct.header, direct.body, false).Message
				jobMsg := parseErrorBody(r.status, r.header, r.body, true).Message
				if jobMsg != "updateTwin: "+patchMsg {
					t.Errorf("job message %q, want %q", jobMsg, "updateTwin: "+patchMsg)
				}
			}
			if after := h.snapshot(t); after != before {
				t.Errorf("the refused requests changed the hub:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	// What the Node SDK sends must still pass: reported is ignored, even
	// when it holds what desired may not.
	accept(t, []req{
		{name: "sample twin job", method: "PUT", path: "/jobs/v2/j",
			body: twinJob(`{"etag":"*","properties":{"desired":{"floor":4},"reported":{}}}`, `"startTime":"2026-11-25T10:00:00Z","maxExecutionTimeInSeconds":600`), status: 200},
		{name: "reported is ignored", method: "PUT", path: "/jobs/v2/j",
			body: twinJob(`{"properties":{"desired":{"a":null,"b":{"c":null}},"reported":{"$x":{"a.b":1}}}}`, ""), status: 200},
		// 9 KB of deleted keys: a patch is checked as it applies, where a
		// null takes no room.
		{name: "deletes of 9 KB of keys", method: "PUT", path: "/jobs/v2/j", body: twinJob(`{"tags":`+nullKeys(9, 1000)+`}`, ""), status: 200},
		{name: "the same PATCH", method: "PATCH", path: "/twins/dev1", body: `{"tags":` + nullKeys(9, 1000) + `}`, status: 200},
	})
}

// TestIfMatch: on every route that takes If-Match, an empty, repeated or
// malformed value is 400 ArgumentInvalid and changes nothing, instead of
// being read as "no condition". The forms clients send ("*" quoted or
// not, an etag quoted or not) still work, and a well-formed etag that does
// not match is 412.
func TestIfMatch(t *testing.T) {
	routes := []struct{ name, method, path, body string }{
		{"patch twin", "PATCH", "/twins/dev1", `{"tags":{"x":1}}`},
		{"replace twin", "PUT", "/twins/dev1", `{"tags":{"x":1}}`},
		{"update device", "PUT", "/devices/dev1", `{"status":"disabled"}`},
		{"delete device", "DELETE", "/devices/dev1", ""},
	}
	bad := []struct{ name, v string }{
		{"empty", ""},
		{"blank", "   "},
		{"empty quoted", `""`},
		{"lone quote", `"`},
		{"unbalanced quote", `"AAAAAAAAAAE=`},
		{"space inside", `"a b"`},
		{"tab inside", "a\tb"},
		{"weak etag", `W/"AAAAAAAAAAE="`},
		{"list", `"AAAAAAAAAAE=", "AAAAAAAAAAI="`},
		{"bare list", `AAAAAAAAAAE=,AAAAAAAAAAI=`},
		{"quote inside", `"a"b"`},
		{"non-ASCII", "\"\xc3\xa9\""},
		{"too long", `"` + strings.Repeat("A", hub.MaxETagLength+1) + `"`},
	}
	var reqs []req
	for _, rt := range routes {
		for _, b := range bad {
			reqs = append(reqs, req{name: rt.name + " " + b.name, method: rt.method, path: rt.path, header: ifMatchHeader(b.v), body: rt.body,
				status: 400, code: hub.CodeArgumentInvalid, wantIn: "If-Match"})
		}
		reqs = append(reqs,
			req{name: rt.name + " twice", method: rt.method, path: rt.path, header: ifMatchHeader(`"*"`, `"*"`), body: rt.body,
				status: 400, code: hub.CodeArgumentInvalid, wantIn: "If-Match"},
			req{name: rt.name + " stale etag", method: rt.method, path: rt.path, header: ifMatchHeader(`"AAAAAAAAAAA="`), body: rt.body,
				status: 412, code: hub.CodePreconditionFailed})
	}
	for _, b := range bad[1:] { // an empty body etag is no condition

		reqs = append(reqs,
			req{name: "patch twin body etag " + b.name, method: "PATCH", path: "/twins/dev1", body: `{"etag":` + jsonString(b.v) + `,"tags":{"x":1}}`,
				status: 400, code: hub.CodeArgumentInvalid, wantIn: "etag"},
			req{name: "twin job etag " + b.name, method: "PUT", path: "/jobs/v2/j", body: twinJob(`{"etag":`+jsonString(b.v)+`,"tags":{"x":1}}`, ""),
				status: 400, code: hub.CodeArgumentInvalid, wantIn: "updateTwin.etag"})
	}
	refuse(t, reqs)

	accept(t, []req{
		{name: "patch twin quoted wildcard (Node)", method: "PATCH", path: "/twins/dev1", header: ifMatchHeader(`"*"`), body: `{"tags":{"x":1}}`, status: 200},
		{name: "patch twin bare wildcard", method: "PATCH", path: "/twins/dev1", header: ifMatchHeader(`*`), body: `{"tags":{"x":1}}`, status: 200},
		{name: "patch twin quoted etag", method: "PATCH", path: "/twins/dev1", header: ifMatchHeader(`"AAAAAAAAAAI="`), body: `{"tags":{"x":1}}`, status: 200},
		{name: "patch twin bare etag", method: "PATCH", path: "/twins/dev1", header: ifMatchHeader(`AAAAAAAAAAI=`), body: `{"tags":{"x":1}}`, status: 200},
		{name: "patch twin etag in the body", method: "PATCH", path: "/twins/dev1", body: `{"etag":"AAAAAAAAAAI=","tags":{"x":1}}`, status: 200},
		{name: "patch twin without a condition", method: "PATCH", path: "/twins/dev1", body: `{"tags":{"x":1}}`, status: 200},
		{name: "replace twin quoted wildcard", method: "PUT", path: "/twins/dev1", header: ifMatchHeader(`"*"`), body: `{"tags":{}}`, status: 200},
		{name: "update device quoted wildcard (Node)", method: "PUT", path: "/devices/dev1", header: ifMatchHeader(`"*"`), body: `{"deviceId":"dev1"}`, status: 200},
		{name: "update device quoted etag", method: "PUT", path: "/devices/dev1", header: ifMatchHeader(`"MQ=="`), body: `{"deviceId":"dev1"}`, status: 200},
		{name: "create device without If-Match", method: "PUT", path: "/devices/dev3", body: `{"deviceId":"dev3"}`, status: 200},
		{name: "delete device quoted wildcard (Node)", method: "DELETE", path: "/devices/dev1", header: ifMatchHeader(`"*"`), status: 204},
		{name: "delete device without If-Match", method: "DELETE", path: "/devices/dev1", status: 204},
		{name: "twin job with the wildcard etag", method: "PUT", path: "/jobs/v2/j", body: twinJob(`{"etag":"*","tags":{"x":1}}`, ""), status: 200},
	})
}

// nullKeys is an object of n keys of size bytes each, all null, and "x":1.
func nullKeys(n, size int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, `"%d%s":null,`, i, strings.Repeat("k", size-1))
	}
	b.WriteString(`"x":1}`)
	return b.String()
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestIDs: every route that names a device or a job in its path refuses
// an id outside Azure's alphabet and length with 400 ArgumentInvalid and
// changes nothing: control characters, non-ASCII, separators, and for
// jobs the three characters the Node SDK would not encode in GET and
// cancel paths.
func TestIDs(t *testing.T) {
	deviceRoutes := []struct {
		name, method, suffix, body string
		header                     http.Header
		shape                      byte
	}{
		{"create device", "PUT", "", `{}`, nil, 'A'},
		{"update device", "PUT", "", `{}`, ifMatchHeader(`"*"`), 'A'},
		{"get device", "GET", "", "", nil, 'A'},
		{"delete device", "DELETE", "", "", ifMatchHeader(`"*"`), 'A'},
		{"get twin", "GET", "twin", "", nil, 'A'},
		{"patch twin", "PATCH", "twin", `{"tags":{"a":1}}`, ifMatchHeader(`"*"`), 'A'},
		{"replace twin", "PUT", "twin", `{"tags":{"a":1}}`, ifMatchHeader(`"*"`), 'A'},
		{"direct method", "POST", "methods", `{"methodName":"m"}`, nil, 'B'},
	}
	badDevice := []string{"%00", "a%01b", "a%0Ab", "a%0Db", "a%09b", "a%7Fb", "a%20b", "%FF", "%C3%A9", "a%2Fb", "a%5Cb", "a%22b", "a%3Cb", "a%7Bb", "a%26b", "a%5Bb",
		strings.Repeat("d", hub.MaxIDLength+1)}
	var reqs []req
	for _, rt := range deviceRoutes {
		for _, id := range badDevice {
			path := "/devices/" + id
			switch rt.suffix {
			case "twin":
				path = "/twins/" + id
			case "methods":
				path = "/twins/" + id + "/methods"
			}
			reqs = append(reqs, req{name: rt.name + " " + shortID(id), method: rt.method, path: path, header: rt.header, body: rt.body,
				status: 400, code: hub.CodeArgumentInvalid, shape: rt.shape, wantIn: "device id"})
		}
	}
	jobRoutes := []struct{ name, method, suffix, body string }{
		{"create job", "PUT", "", methodJob("", "")},
		{"get job", "GET", "", ""},
		{"cancel job", "POST", "/cancel", ""},
	}
	badJob := append([]string{"a%23b", "a%3Fb", "a%25b", "a%2Fb"}, badDevice...)
	for _, rt := range jobRoutes {
		for _, id := range badJob {
			reqs = append(reqs, req{name: rt.name + " " + shortID(id), method: rt.method, path: "/jobs/v2/" + id + rt.suffix, body: rt.body,
				status: 400, code: hub.CodeArgumentInvalid, wantIn: "job id"})
		}
	}
	// A body that names the same bad id as the path changes nothing either.
	reqs = append(reqs,
		req{name: "create job with the id in the body too", method: "PUT", path: "/jobs/v2/a%01b",
			body:   `{"jobId":"a\u0001b","type":"scheduleDeviceMethod","queryCondition":"*","cloudToDeviceMethod":{"methodName":"m"}}`,
			status: 400, code: hub.CodeArgumentInvalid, wantIn: "byte 0x01"},
		req{name: "create device with the id in the body too", method: "PUT", path: "/devices/a%0Ab", body: `{"deviceId":"a\nb"}`,
			status: 400, code: hub.CodeArgumentInvalid, wantIn: "byte 0x0A"},
	)
	refuse(t, reqs)

	// Bulk entries go through the same check: one malformed entry
	// refuses the operation, so the good entries before it are not
	// applied either.
	var bulk []req
	for _, id := range []string{`a\u0000b`, `a\u007fb`, strings.Repeat("d", 129), "a b", ""} {
		bulk = append(bulk, req{name: "bulk with bad id " + shortID(id), method: "POST", path: "/devices",
			body:   `[{"id":"new1","importMode":"create"},{"id":"` + id + `","importMode":"createOrUpdate"}]`,
			status: 400, code: hub.CodeArgumentInvalid, wantIn: "bulk entry 1: device id"})
	}
	refuse(t, bulk)

	accept(t, []req{
		{name: "device id of every allowed character", method: "PUT", path: "/devices/" + allowedDeviceIDPath, body: `{}`, status: 200},
		{name: "device id of 128 characters", method: "PUT", path: "/devices/" + strings.Repeat("d", 128), body: `{}`, status: 200},
		{name: "job id of every allowed character", method: "PUT", path: "/jobs/v2/" + allowedJobIDPath, body: methodJob("", ""), status: 200},
		{name: "job id of 128 characters", method: "PUT", path: "/jobs/v2/" + strings.Repeat("j", 128), body: methodJob("", ""), status: 200},
		{name: "unknown but valid device", method: "GET", path: "/devices/a%23b%3Fc%25", status: 404},
	})
}

// The allowed alphabets, percent-encoded where a path needs it (as the
// Node SDK's encodeURIComponent does).
const (
	allowedDeviceIDPath = "azAZ09-:.%2B%25_%23*%3F!()%2C%3D%40%3B%24'"
	allowedJobIDPath    = "azAZ09-:.%2B_*!()%2C%3D%40%3B%24'"
)

func shortID(id string) string {
	if len(id) > 20 {
		return fmt.Sprintf("%d characters", len(id))
	}
	return id
}

// TestPolicyNameInToken: a token whose skn is not a policy name is refused
// as unauthorized, saying so, even when a policy of that name would match
// byte for byte.
func TestPolicyNameInToken(t *testing.T) {
	for _, name := range []string{"own er", "own%01er", "own/er", "ownér", strings.Repeat("p", 65)} {
		s := &Server{Hub: newFakeHub(), Logger: slog.New(slog.DiscardHandler),
			Authorize: SASAuthorizer(map[string]string{name: testKey}, nil, nil)}
		ts := httptest.NewServer(s.Handler())
		tok, err := sas.ServiceToken("localhost", name, testKey, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		r := send(t, ts, tok, "GET", "/devices", nil, "")
		ts.Close()
		if r.status != 401 {
			t.Errorf("skn %q: status %d, body %s", name, r.status, r.body)
			continue
		}
		checkErrorShape(t, r, hub.CodeUnauthorized, 'A')
		wantBodyContains(t, r, "skn")
	}
}
