package rest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/sas"
)

const (
	testKey      = "aW90aHVib3duZXItdGVzdC1rZXktMDEyMzQ1Njc4OQ=="
	testOtherKey = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXk="
	testPolicy   = "iothubowner"
)

// seededHub is a fake with three devices (dev1 answers methods, dev2 is
// offline, dev3 never answers) and two jobs.
func seededHub(t *testing.T) *fakeHub {
	t.Helper()
	f := newFakeHub()
	ctx := context.Background()
	for _, id := range []string{"dev1", "dev2", "dev3"} {
		if _, err := f.CreateDevice(ctx, &hub.Device{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	f.methods["dev1"] = &hub.MethodResponse{Status: 200, Payload: json.RawMessage(`{"ok":true}`)}
	f.methods["dev3"] = nil
	for _, j := range []*hub.Job{
		{JobID: "j1", Type: hub.JobDeviceMethod, QueryCondition: "*", CloudToDeviceMethod: &hub.MethodRequest{MethodName: "reboot"}},
		{JobID: "j2", Type: hub.JobUpdateTwin, QueryCondition: "*", UpdateTwin: &hub.TwinPatch{ETag: "*"}},
	} {
		if _, err := f.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// startServer serves f over plain HTTP on 127.0.0.1 with SAS auth for
// the listener's address and returns the server and a token for it.
func startServer(t *testing.T, f *fakeHub) (*httptest.Server, string) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	host := ts.Listener.Addr().String()
	s := &Server{
		Hub:       f,
		Authorize: SASAuthorizer(map[string]string{testPolicy: testKey}, []string{"localhost", host}, nil),
		Logger:    slog.New(slog.DiscardHandler),
	}
	ts.Config.Handler = s.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	tok, err := sas.ServiceToken(host, testPolicy, testKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return ts, tok
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func send(t *testing.T, ts *httptest.Server, tok, method, path string, header map[string]string, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", tok)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := ts.Client().Do(req)
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

// checkErrorShape checks an error response: the iothub-errorcode header
// and a Shape A or Shape B body naming the same code.
func checkErrorShape(t *testing.T, r response, code string, shape byte) {
	t.Helper()
	if got := r.header.Get(headerErrorCode); got != code {
		t.Errorf("iothub-errorcode = %q, want %q", got, code)
	}
	var outer shapeAErrorBody
	if err := json.Unmarshal(r.body, &outer); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	switch shape {
	case 'A':
		if !strings.HasPrefix(outer.Message, "ErrorCode:"+code+";") {
			t.Errorf("Shape A Message = %q, want prefix ErrorCode:%s;", outer.Message, code)
		}
		if !strings.HasPrefix(outer.ExceptionMessage, "Tracking ID:") {
			t.Errorf("ExceptionMessage = %q", outer.ExceptionMessage)
		}
	case 'B':
		var inner shapeBMessage
		if err := json.Unmarshal([]byte(outer.Message), &inner); err != nil {
			t.Fatalf("Shape B Message %q: %v", outer.Message, err)
		}
		if inner.ErrorCode != hub.CodeNumber(code) || inner.Message == "" || inner.TrackingID == "" || inner.TimestampUTC == "" || inner.Info == nil {
			t.Errorf("Shape B inner = %+v, want errorCode %d", inner, hub.CodeNumber(code))
		}
		if outer.ExceptionMessage != "" {
			t.Errorf("Shape B ExceptionMessage = %q, want empty", outer.ExceptionMessage)
		}
	}
	if e := parseErrorBody(r.status, http.Header{}, r.body, false); e.Code != code && code != codeRouteNotFound {
		t.Errorf("parseErrorBody of our own body = %v, want code %s", e, code)
	}
}

func TestServerRoutes(t *testing.T) {
	type check func(t *testing.T, f *fakeHub, r response)
	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		body   string
		noAuth bool
		setup  func(f *fakeHub)
		status int
		code   string // iothub-errorcode of an error answer
		shape  byte   // 'A' or 'B' for error answers
		want   map[string]string
		absent []string // response headers that must not be set
		check  check
	}{
		{name: "healthz needs no auth", method: "GET", path: "/healthz", noAuth: true, status: 200,
			check: func(t *testing.T, _ *fakeHub, r response) { wantBody(t, r, "ok") }},
		{name: "unknown route", method: "GET", path: "/nope?api-version=2021-04-12", status: 404, code: codeRouteNotFound, shape: 'A'},
		{name: "wrong method on a route", method: "POST", path: "/devices/dev1", status: 404, code: codeRouteNotFound, shape: 'A'},
		{name: "Azure API left out", method: "GET", path: "/configurations?api-version=2021-04-12", status: 404, code: codeRouteNotFound, shape: 'A',
			check: func(t *testing.T, _ *fakeHub, r response) { wantBodyContains(t, r, "automatic device management API") }},
		{name: "file upload left out", method: "POST", path: "/devices/d1/files", status: 404, code: codeRouteNotFound, shape: 'A',
			check: func(t *testing.T, _ *fakeHub, r response) { wantBodyContains(t, r, "file upload API") }},
		{name: "jobs v2 is not import/export", method: "GET", path: "/jobs/v2/a/b", status: 404, code: codeRouteNotFound, shape: 'A',
			check: func(t *testing.T, _ *fakeHub, r response) { wantBodyContains(t, r, "no such API") }},
		{name: "no auth", method: "GET", path: "/devices/dev1", noAuth: true, status: 401, code: hub.CodeUnauthorized, shape: 'A'},

		{name: "create device", method: "PUT", path: "/devices/new1?api-version=2021-04-12",
			body:   `{"deviceId":"new1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
			status: 200, check: func(t *testing.T, f *fakeHub, r response) {
				var d hub.Device
				decode(t, r, &d)
				if d.DeviceID != "new1" || d.Authentication.SymmetricKey.PrimaryKey == "" {
					t.Errorf("device = %+v", d)
				}
			}},
		{name: "create device takes id from path", method: "PUT", path: "/devices/new2", body: `{}`, status: 200},
		{name: "create existing device", method: "PUT", path: "/devices/dev1", body: `{"deviceId":"dev1"}`,
			status: 409, code: hub.CodeDeviceAlreadyExists, shape: 'A'},
		{name: "create device id mismatch", method: "PUT", path: "/devices/a", body: `{"deviceId":"b"}`,
			status: 400, code: hub.CodeArgumentInvalid, shape: 'A'},
		{name: "update device quoted wildcard", method: "PUT", path: "/devices/dev1", header: map[string]string{"If-Match": `"*"`},
			body: `{"deviceId":"dev1","status":"disabled","statusReason":"stolen"}`, status: 200,
			check: func(t *testing.T, f *fakeHub, r response) {
				var d hub.Device
				decode(t, r, &d)
				if f.lastEtag != "*" || d.Status != hub.StatusDisabled || d.StatusReason == nil || *d.StatusReason != "stolen" || d.ETag != "Mg==" {
					t.Errorf("etag %q reached the hub; device %+v", f.lastEtag, d)
				}
			}},
		{name: "update device quoted etag", method: "PUT", path: "/devices/dev1", header: map[string]string{"If-Match": `"MQ=="`},
			body: `{"status":"disabled"}`, status: 200, check: func(t *testing.T, f *fakeHub, _ response) {
				if f.lastEtag != "MQ==" || f.devices["dev1"].Status != hub.StatusDisabled {
					t.Errorf("etag %q reached the hub, status %q", f.lastEtag, f.devices["dev1"].Status)
				}
			}},
		{name: "update device stale etag", method: "PUT", path: "/devices/dev1", header: map[string]string{"If-Match": `"Mg=="`},
			body: `{"deviceId":"dev1"}`, status: 412, code: hub.CodePreconditionFailed, shape: 'A'},
		{name: "update unknown device", method: "PUT", path: "/devices/zzz", header: map[string]string{"If-Match": `"*"`},
			body: `{"deviceId":"zzz"}`, status: 404, code: hub.CodeDeviceNotFound, shape: 'A'},
		{name: "update device id mismatch", method: "PUT", path: "/devices/dev1", header: map[string]string{"If-Match": `"*"`},
			body: `{"deviceId":"dev2"}`, status: 400, code: hub.CodeArgumentInvalid, shape: 'A'},
		{name: "update device bad status", method: "PUT", path: "/devices/dev1", header: map[string]string{"If-Match": `"*"`},
			body: `{"status":"asleep"}`, status: 400, code: hub.CodeArgumentInvalid, shape: 'A'},
		{name: "list devices", method: "GET", path: "/devices?api-version=2021-04-12", status: 200,
			check: func(t *testing.T, f *fakeHub, r response) {
				var ds []hub.Device
				decode(t, r, &ds)
				if len(ds) != 3 || ds[0].DeviceID != "dev1" || ds[2].DeviceID != "dev3" || f.lastTop != 0 {
					t.Errorf("devices %+v, hub got top %d", ds, f.lastTop)
				}
			}},
		{name: "list devices with top", method: "GET", path: "/devices?top=2", status: 200,
			check: func(t *testing.T, f *fakeHub, r response) {
				wantItems(t, r, 2)
				if f.lastTop != 2 {
					t.Errorf("hub got top %d", f.lastTop)
				}
			}},
		{name: "list devices trailing slash (Node)", method: "GET", path: "/devices/?api-version=2021-04-12", status: 200,
			check: func(t *testing.T, _ *fakeHub, r response) { wantItems(t, r, 3) }},
		{name: "list devices out-of-range top reaches the hub", method: "GET", path: "/devices?top=5000", status: 200,
			check: func(t *testing.T, f *fakeHub, _ response) {
				if f.lastTop != 5000 {
					t.Errorf("hub got top %d", f.lastTop)
				}
			}},
		{name: "list devices empty is an empty array", method: "GET", path: "/devices",
			setup:  func(f *fakeHub) { clear(f.devices) },
			status: 200, check: func(t *testing.T, _ *fakeHub, r response) { wantBody(t, r, "[]") }},
		{name: "list devices top not a number", method: "GET", path: "/devices?top=ten", status: 400, code: hub.CodeArgumentInvalid, shape: 'A'},
		{name: "device statistics", method: "GET", path: "/statistics/devices?api-version=2021-04-12",
			setup:  func(f *fakeHub) { f.devices["dev2"].Status = hub.StatusDisabled },
			status: 200, check: func(t *testing.T, _ *fakeHub, r response) {
				wantBody(t, r, `{"totalDeviceCount":3,"enabledDeviceCount":2,"disabledDeviceCount":1}`)
			}},
		{name: "bulk create and delete (Node's body)", method: "POST", path: "/devices?api-version=2021-04-12",
			body: `[{"id":"b1","importMode":"create","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}},` +
				`{"id":"dev1","importMode":"create"},{"id":"dev2","importMode":"delete","etag":"MQ=="}]`,
			status: 200, check: func(t *testing.T, f *fakeHub, r response) {
				wantBody(t, r, `{"isSuccessful":false,"errors":[{"deviceId":"dev1","errorCode":"DeviceAlreadyExists","errorStatus":"device \"dev1\" already exists"}],"warnings":[]}`)
				if f.devices["b1"] == nil || f.devices["dev2"] != nil || f.lastImport[2].ETag != "MQ==" {
					t.Errorf("devices after bulk: b1 %v dev2 %v; entry %+v", f.devices["b1"] != nil, f.devices["dev2"] != nil, f.lastImport[2])
				}
			}},
		{name: "bulk over 100 devices", method: "POST", path: "/devices",
			body:   "[" + strings.Repeat(`{"id":"x","importMode":"create"},`, 100) + `{"id":"y","importMode":"create"}]`,
			status: 400, code: hub.CodeArgumentInvalid, shape: 'A', check: func(t *testing.T, f *fakeHub, _ response) {
				if f.lastImport != nil {
					t.Error("an oversized bulk operation reached the hub")
				}
			}},
		{name: "bulk empty", method: "POST", path: "/devices", body: `[]`, status: 400, code: hub.CodeArgumentInvalid, shape: 'A'},
		{name: "bulk not an array", method: "POST", path: "/devices", body: `{"id":"x"}`, status: 400, code: hub.CodeFormatError, shape: 'A'},
		{name: "create device invalid JSON", method: "PUT", path: "/devices/x", body: `{"deviceId":`,
			status: 400, code: hub.CodeFormatError, shape: 'A'},
		{name: "create device wrong field type", method: "PUT", path: "/devices/x", body: `{"deviceId":7}`,
			status: 400, code: hub.CodeFormatError, shape: 'A', check: func(t *testing.T, _ *fakeHub, r response) {
				wantBodyContains(t, r, "deviceId")
			}},
		{name: "create device trailing data", method: "PUT", path: "/devices/x", body: `{} {}`,
			status: 400, code: hub.CodeFormatError, shape: 'A'},
		{name: "create device empty body", method: "PUT", path: "/devices/x",
			status: 400, code: hub.CodeFormatError, shape: 'A'},
		{name: "body too large", method: "PUT", path: "/devices/x", body: `{"deviceId":"` + strings.Repeat("a", maxBody) + `"}`,
			status: 413, code: hub.CodeMessageTooLarge, shape: 'A'},
		{name: "get device", method: "GET", path: "/devices/dev1", status: 200},
		{name: "get unknown device", method: "GET", path: "/devices/zzz", status: 404, code: hub.CodeDeviceNotFound, shape: 'A'},
		{name: "delete device wildcard", method: "DELETE", path: "/devices/dev1", header: map[string]string{"If-Match": `"*"`},
			status: 204, check: func(t *testing.T, f *fakeHub, r response) {
				if f.lastEtag != "*" || f.devices["dev1"] != nil {
					t.Errorf("etag %q reached the hub; device left: %v", f.lastEtag, f.devices["dev1"] != nil)
				}
			}},
		{name: "delete device matching etag", method: "DELETE", path: "/devices/dev1", header: map[string]string{"If-Match": `"MQ=="`}, status: 204},
		{name: "delete device etag mismatch", method: "DELETE", path: "/devices/dev1", header: map[string]string{"If-Match": `"Mg=="`},
			status: 412, code: hub.CodePreconditionFailed, shape: 'A'},
		{name: "delete unknown device", method: "DELETE", path: "/devices/zzz", status: 404, code: hub.CodeDeviceNotFound, shape: 'A'},

		{name: "get twin", method: "GET", path: "/twins/dev1", status: 200, check: func(t *testing.T, _ *fakeHub, r response) {
			var tw hub.Twin
			decode(t, r, &tw)
			if tw.DeviceID != "dev1" || tw.ETag == "" {
				t.Errorf("twin = %+v", tw)
			}
		}},
		{name: "patch twin quoted wildcard", method: "PATCH", path: "/twins/dev1", header: map[string]string{"If-Match": `"*"`},
			body: `{"tags":{"region":"US"},"properties":{"desired":{"fw":"1.2"}}}`, status: 200,
			check: func(t *testing.T, f *fakeHub, r response) {
				var tw hub.Twin
				decode(t, r, &tw)
				if f.lastEtag != "*" || tw.Tags["region"] != "US" || tw.Properties.Desired["fw"] != "1.2" {
					t.Errorf("etag %q, twin %+v", f.lastEtag, tw)
				}
			}},
		{name: "patch twin matching quoted etag", method: "PATCH", path: "/twins/dev1", header: map[string]string{"If-Match": `"AAAAAAAAAAE="`},
			body: `{"tags":{"a":1}}`, status: 200, check: func(t *testing.T, f *fakeHub, _ response) {
				if f.lastEtag != "AAAAAAAAAAE=" {
					t.Errorf("etag %q reached the hub, want it unquoted", f.lastEtag)
				}
			}},
		{name: "patch twin etag from body", method: "PATCH", path: "/twins/dev1", body: `{"etag":"stale","tags":{"a":1}}`,
			status: 412, code: hub.CodePreconditionFailed, shape: 'A'},
		{name: "patch twin etag mismatch", method: "PATCH", path: "/twins/dev1", header: map[string]string{"If-Match": `"stale"`},
			body: `{"tags":{"a":1}}`, status: 412, code: hub.CodePreconditionFailed, shape: 'A'},
		{name: "patch twin invalid JSON", method: "PATCH", path: "/twins/dev1", body: `{"tags":[}`,
			status: 400, code: hub.CodeFormatError, shape: 'A'},
		{name: "replace twin", method: "PUT", path: "/twins/dev1", header: map[string]string{"If-Match": `"AAAAAAAAAAE="`},
			body: `{"tags":{"b":2},"properties":{"desired":{"fw":"2.0"}}}`, status: 200,
			setup: func(f *fakeHub) { f.twins["dev1"].Tags["a"] = 1.0 },
			check: func(t *testing.T, f *fakeHub, r response) {
				var tw hub.Twin
				decode(t, r, &tw)
				if f.lastEtag != "AAAAAAAAAAE=" || tw.Tags["a"] != nil || tw.Tags["b"] != 2.0 || tw.Properties.Desired["fw"] != "2.0" || tw.Version != 2 {
					t.Errorf("etag %q, twin %+v", f.lastEtag, tw)
				}
			}},
		{name: "replace twin etag from body", method: "PUT", path: "/twins/dev1", body: `{"etag":"stale","tags":{}}`,
			status: 412, code: hub.CodePreconditionFailed, shape: 'A'},
		{name: "replace twin id mismatch", method: "PUT", path: "/twins/dev1", body: `{"deviceId":"dev2"}`,
			status: 400, code: hub.CodeArgumentInvalid, shape: 'A'},
		{name: "replace unknown twin", method: "PUT", path: "/twins/zzz", body: `{}`, status: 404, code: hub.CodeDeviceNotFound, shape: 'A'},
		{name: "patch unknown twin", method: "PATCH", path: "/twins/zzz", body: `{}`, status: 404, code: hub.CodeDeviceNotFound, shape: 'A'},

		{name: "invoke method", method: "POST", path: "/twins/dev1/methods",
			body:   `{"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":15,"connectTimeoutInSeconds":0}`,
			status: 200, check: func(t *testing.T, _ *fakeHub, r response) { wantBody(t, r, `{"status":200,"payload":{"ok":true}}`) }},
		{name: "invoke method default timeout", method: "POST", path: "/twins/dev1/methods", body: `{"methodName":"m"}`,
			status: 200, check: func(t *testing.T, f *fakeHub, _ response) {
				if f.lastMethod.ResponseTimeoutInSeconds != 30 {
					t.Errorf("response timeout %d, want the default 30", f.lastMethod.ResponseTimeoutInSeconds)
				}
			}},
		{name: "invoke method offline device", method: "POST", path: "/twins/dev2/methods",
			body: `{"methodName":"m","connectTimeoutInSeconds":5}`, status: 404, code: hub.CodeDeviceNotOnline, shape: 'B',
			check: func(t *testing.T, _ *fakeHub, r response) { wantBodyContains(t, r, `00:00:05`) }},
		{name: "invoke method no answer", method: "POST", path: "/twins/dev3/methods", body: `{"methodName":"m"}`,
			status: 504, code: hub.CodeGatewayTimeout, shape: 'B'},
		{name: "invoke method unknown device", method: "POST", path: "/twins/zzz/methods", body: `{"methodName":"m"}`,
			status: 404, code: hub.CodeDeviceNotFound, shape: 'A'},
		{name: "invoke method response timeout too short", method: "POST", path: "/twins/dev1/methods",
			body: `{"methodName":"m","responseTimeoutInSeconds":4}`, status: 400, code: hub.CodeArgumentInvalid, shape: 'B',
			check: func(t *testing.T, _ *fakeHub, r response) { wantBodyContains(t, r, `within [5; 300]`) }},
		{name: "invoke method response timeout too long", method: "POST", path: "/twins/dev1/methods",
			body: `{"methodName":"m","responseTimeoutInSeconds":301}`, status: 400, code: hub.CodeArgumentInvalid, shape: 'B'},
		{name: "invoke method connect timeout too long", method: "POST", path: "/twins/dev1/methods",
			body: `{"methodName":"m","connectTimeoutInSeconds":301}`, status: 400, code: hub.CodeArgumentInvalid, shape: 'B'},
		{name: "invoke method negative connect timeout", method: "POST", path: "/twins/dev1/methods",
			body: `{"methodName":"m","connectTimeoutInSeconds":-1}`, status: 400, code: hub.CodeArgumentInvalid, shape: 'B'},
		{name: "invoke method without name", method: "POST", path: "/twins/dev1/methods", body: `{}`,
			status: 400, code: hub.CodeArgumentInvalid, shape: 'B'},
		{name: "invoke method invalid JSON", method: "POST", path: "/twins/dev1/methods", body: `nope`,
			status: 400, code: hub.CodeFormatError, shape: 'B'},

		{name: "query first page", method: "POST", path: "/devices/query", header: map[string]string{headerMaxItems: "2"},
			body: `{"query":"SELECT * FROM devices"}`, status: 200,
			want: map[string]string{headerItemType: hub.ItemTwin, headerContinuation: "2"},
			check: func(t *testing.T, f *fakeHub, r response) {
				wantItems(t, r, 2)
				if f.lastQuery != "SELECT * FROM devices" || f.lastOpts.PageSize != 2 {
					t.Errorf("hub got %q %+v", f.lastQuery, f.lastOpts)
				}
			}},
		{name: "query last page", method: "POST", path: "/devices/query",
			header: map[string]string{headerMaxItems: "2", headerContinuation: "2"},
			body:   `{"Query":"SELECT * FROM devices"}`, status: 200,
			want: map[string]string{headerItemType: hub.ItemTwin}, absent: []string{headerContinuation},
			check: func(t *testing.T, _ *fakeHub, r response) { wantItems(t, r, 1) }},
		{name: "query empty result is an empty array", method: "POST", path: "/devices/query",
			header: map[string]string{headerContinuation: "99"}, body: `{"query":"SELECT * FROM devices"}`, status: 200,
			absent: []string{headerContinuation}, check: func(t *testing.T, _ *fakeHub, r response) { wantBody(t, r, "[]") }},
		{name: "query missing", method: "POST", path: "/devices/query", body: `{"sql":"x"}`,
			status: 400, code: hub.CodeArgumentInvalid, shape: 'A'},
		{name: "query not a string", method: "POST", path: "/devices/query", body: `{"query":1}`,
			status: 400, code: hub.CodeFormatError, shape: 'A'},
		{name: "query bad page size", method: "POST", path: "/devices/query", header: map[string]string{headerMaxItems: "-1"},
			body: `{"query":"SELECT * FROM devices"}`, status: 400, code: hub.CodeArgumentInvalid, shape: 'A'},
		{name: "query syntax error from the hub", method: "POST", path: "/devices/query", body: `{"query":"SELEC"}`,
			setup:  func(f *fakeHub) { f.queryErr = hub.Errorf(hub.CodeArgumentInvalid, "syntax error at 1:1") },
			status: 400, code: hub.CodeArgumentInvalid, shape: 'A'},
		{name: "hub failure is a server error", method: "POST", path: "/devices/query", body: `{"query":"x"}`,
			setup:  func(f *fakeHub) { f.queryErr = io.ErrUnexpectedEOF },
			status: 500, code: hub.CodeServerError, shape: 'A'},

		{name: "create job with null start time", method: "PUT", path: "/jobs/v2/job-m1?api-version=2021-04-12",
			body:   `{"jobId":"job-m1","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":15},"startTime":null,"queryCondition":"deviceId IN ['dev1']"}`,
			status: 200, check: func(t *testing.T, _ *fakeHub, r response) {
				var j hub.Job
				decode(t, r, &j)
				if j.JobID != "job-m1" || j.Status != hub.JobQueued || j.MaxExecutionTimeInSeconds != 3600 {
					t.Errorf("job = %+v", j)
				}
				if r.header.Get(headerState) != stateToken(&j) {
					t.Errorf("state header %q, want %q", r.header.Get(headerState), stateToken(&j))
				}
			}},
		{name: "create job with start time", method: "PUT", path: "/jobs/v2/job-t1",
			body:   `{"jobId":"job-t1","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","properties":{"desired":{"fw":"1.2"},"reported":{}}},"startTime":"2026-11-25T16:57:38.203Z","maxExecutionTimeInSeconds":600,"queryCondition":"tags.location.region = 'US'"}`,
			status: 200},
		{name: "create job id mismatch", method: "PUT", path: "/jobs/v2/a", body: `{"jobId":"b","type":"scheduleDeviceMethod","queryCondition":"*"}`,
			status: 400, code: hub.CodeArgumentInvalid, shape: 'A'},
		{name: "create job unknown type", method: "PUT", path: "/jobs/v2/a", body: `{"jobId":"a","type":"scheduleTwinUpdate","queryCondition":"*"}`,
			status: 400, code: hub.CodeGenericBadRequest, shape: 'A'},
		{name: "create job bad start time", method: "PUT", path: "/jobs/v2/a", body: `{"jobId":"a","type":"scheduleDeviceMethod","startTime":"tomorrow"}`,
			status: 400, code: hub.CodeFormatError, shape: 'A', check: func(t *testing.T, _ *fakeHub, r response) { wantBodyContains(t, r, "tomorrow") }},
		{name: "create duplicate job", method: "PUT", path: "/jobs/v2/j1", body: `{"jobId":"j1","type":"scheduleDeviceMethod","queryCondition":"*"}`,
			status: 409, code: hub.CodeJobAlreadyExists, shape: 'A'},
		{name: "get job", method: "GET", path: "/jobs/v2/j1", status: 200, check: func(t *testing.T, _ *fakeHub, r response) {
			var j hub.Job
			decode(t, r, &j)
			if j.JobID != "j1" || r.header.Get(headerState) != stateToken(&j) {
				t.Errorf("job %+v, state header %q", j, r.header.Get(headerState))
			}
			wantBodyContains(t, r, `"createdTime":"2026-11-25T12:00:00.1234567Z"`)
		}},
		{name: "get unknown job", method: "GET", path: "/jobs/v2/zzz", status: 404, code: hub.CodeJobNotFound, shape: 'A'},
		{name: "get job stale state does not wait", method: "GET", path: "/jobs/v2/j1",
			header: map[string]string{headerWait: "60", headerState: "stale"}, status: 200},
		{name: "get job bad wait", method: "GET", path: "/jobs/v2/j1", header: map[string]string{headerWait: "61"},
			status: 400, code: hub.CodeArgumentInvalid, shape: 'A'},
		{name: "cancel job", method: "POST", path: "/jobs/v2/j1/cancel", status: 200, check: func(t *testing.T, _ *fakeHub, r response) {
			var j hub.Job
			decode(t, r, &j)
			if j.Status != hub.JobCancelled {
				t.Errorf("status %q, want cancelled", j.Status)
			}
		}},
		{name: "cancel unknown job", method: "POST", path: "/jobs/v2/zzz/cancel", status: 404, code: hub.CodeJobNotFound, shape: 'A'},
		{name: "query jobs first page", method: "GET", path: "/jobs/v2/query?api-version=2021-04-12&jobStatus=queued&jobType=scheduleUpdateTwin",
			status: 200, want: map[string]string{headerItemType: hub.ItemJob}, absent: []string{headerContinuation},
			check: func(t *testing.T, f *fakeHub, r response) {
				var js []hub.Job
				decode(t, r, &js)
				if len(js) != 1 || js[0].JobID != "j2" || f.lastJobQ.Status != hub.JobQueued || f.lastJobQ.Type != hub.JobUpdateTwin {
					t.Errorf("jobs %+v, hub got %+v", js, f.lastJobQ)
				}
			}},
		{name: "query jobs paged", method: "GET", path: "/jobs/v2/query", header: map[string]string{headerMaxItems: "1"},
			status: 200, want: map[string]string{headerItemType: hub.ItemJob, headerContinuation: "1"},
			check: func(t *testing.T, _ *fakeHub, r response) {
				var js []hub.Job
				decode(t, r, &js)
				if len(js) != 1 || js[0].JobID != "j2" {
					t.Errorf("jobs %+v, want newest (j2) first", js)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := seededHub(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			ts, tok := startServer(t, f)
			if tc.noAuth {
				tok = ""
			}
			r := send(t, ts, tok, tc.method, tc.path, tc.header, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tc.status, r.body)
			}
			if len(r.body) > 0 && tc.path != "/healthz" {
				if ct := r.header.Get("Content-Type"); ct != contentTypeJSON {
					t.Errorf("Content-Type %q, want %q", ct, contentTypeJSON)
				}
			}
			if tc.code != "" {
				checkErrorShape(t, r, tc.code, tc.shape)
			} else if r.header.Get(headerErrorCode) != "" {
				t.Errorf("success carries iothub-errorcode %q", r.header.Get(headerErrorCode))
			}
			for k, v := range tc.want {
				if got := r.header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := r.header[http.CanonicalHeaderKey(k)]; ok {
					t.Errorf("header %s is set (%q), want it absent", k, r.header.Get(k))
				}
			}
			if tc.check != nil {
				f.mu.Lock()
				defer f.mu.Unlock()
				tc.check(t, f, r)
			}
		})
	}
}

func decode(t *testing.T, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func wantBody(t *testing.T, r response, want string) {
	t.Helper()
	if string(r.body) != want {
		t.Errorf("body %s, want %s", r.body, want)
	}
}

func wantBodyContains(t *testing.T, r response, want string) {
	t.Helper()
	if !strings.Contains(string(r.body), want) {
		t.Errorf("body %s does not contain %s", r.body, want)
	}
}

func wantItems(t *testing.T, r response, n int) {
	t.Helper()
	var items []json.RawMessage
	decode(t, r, &items)
	if len(items) != n {
		t.Errorf("%d items, want %d: %s", len(items), n, r.body)
	}
}

// TestServerLongPoll checks that a job GET with a current state token
// waits, and answers as soon as the job changes.
func TestServerLongPoll(t *testing.T) {
	f := seededHub(t)
	ts, tok := startServer(t, f)
	j, _ := f.GetJob(context.Background(), "j1")
	state := stateToken(j)

	done := make(chan response, 1)
	go func() {
		done <- send(t, ts, tok, "GET", "/jobs/v2/j1", map[string]string{headerWait: "60", headerState: state}, "")
	}()
	select {
	case <-f.watching:
	case r := <-done:
		t.Fatalf("answered before the job changed: %d %s", r.status, r.body)
	case <-time.After(10 * time.Second):
		t.Fatal("server never started watching")
	}
	f.setJob("j1", func(j *hub.Job) {
		j.Status = hub.JobRunning
		j.DeviceJobStatistics.RunningCount = 1
	})
	select {
	case r := <-done:
		var got hub.Job
		decode(t, r, &got)
		if got.Status != hub.JobRunning || r.header.Get(headerState) != stateToken(&got) || r.header.Get(headerState) == state {
			t.Errorf("job %+v, state %q (was %q)", got, r.header.Get(headerState), state)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not answer after the change")
	}
}

// TestServerLongPollTimesOut checks that a wait that ends without a
// change answers 200 with the unchanged job.
func TestServerLongPollTimesOut(t *testing.T) {
	f := seededHub(t)
	ts, tok := startServer(t, f)
	j, _ := f.GetJob(context.Background(), "j1")
	r := send(t, ts, tok, "GET", "/jobs/v2/j1", map[string]string{headerWait: "1", headerState: stateToken(j)}, "")
	if r.status != 200 || r.header.Get(headerState) != stateToken(j) {
		t.Fatalf("status %d, state %q, body %s", r.status, r.header.Get(headerState), r.body)
	}
	select {
	case <-f.watching:
	default:
		t.Error("the server did not watch the job")
	}
}

func TestServerMetrics(t *testing.T) {
	f := seededHub(t)
	ts, tok := startServer(t, f)
	send(t, ts, tok, "GET", "/devices/dev1", nil, "")
	send(t, ts, tok, "GET", "/devices/zzz", nil, "")
	send(t, ts, tok, "GET", "/whatever/"+strings.Repeat("x", 10), nil, "")
	r := send(t, ts, "", "GET", "/metrics", nil, "")
	if r.status != 200 {
		t.Fatalf("metrics status %d", r.status)
	}
	for _, want := range []string{
		`iotjobs_rest_requests_total{code="200",route="GET /devices/{id}"} 1`,
		`iotjobs_rest_requests_total{code="404",route="GET /devices/{id}"} 1`,
		`iotjobs_rest_requests_total{code="404",route="unmatched"} 1`,
		`iotjobs_rest_request_duration_seconds_count{route="GET /devices/{id}"} 2`,
		`iotjobs_rest_request_duration_seconds_bucket{route="GET /devices/{id}",le="+Inf"} 2`,
	} {
		wantBodyContains(t, r, want)
	}
}
