package rest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// errorBodyCases are real-world and edge-case error responses; they also
// seed FuzzParseErrorBody.
var errorBodyCases = []struct {
	name    string
	status  int
	header  string // iothub-errorcode
	body    string
	jobs    bool
	code    string
	message string // substring of the parsed message
}{
	{name: "shape A device not found", status: 404,
		body: `{"Message":"ErrorCode:DeviceNotFound;Device 'foo' not found","ExceptionMessage":"Tracking ID:aeec4c1e-G:0-TimeStamp:10/18/2022 20:50:39"}`,
		code: hub.CodeDeviceNotFound, message: "Device 'foo' not found"},
	{name: "shape A precondition", status: 412,
		body: `{"Message":"ErrorCode:PreconditionFailed;Precondition failed: Device version did not match, existingVersion:957482805 newVersion:957482804"}`,
		code: hub.CodePreconditionFailed, message: "existingVersion"},
	{name: "shape A too many jobs", status: 429,
		body: `{"Message":"ErrorCode:ThrottlingMaxActiveJobCountExceeded;429","ExceptionMessage":"Tracking ID:x"}`,
		code: hub.CodeTooManyJobs},
	{name: "shape A bad request", status: 400, body: `{"Message":"ErrorCode:GenericBadRequest;BadRequest"}`,
		code: hub.CodeGenericBadRequest, message: "BadRequest"},
	{name: "shape A code we do not know falls back to the status", status: 404, jobs: true,
		body: `{"Message":"ErrorCode:IotHubNotFound;no such hub"}`, code: hub.CodeJobNotFound, message: "IotHubNotFound: no such hub"},
	{name: "shape B device not online", status: 404,
		body: `{"Message":"{\"errorCode\":404103,\"trackingId\":\"2ce04a2d-G:0-TimeStamp:08/24/2018 17:49:33\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{\"timeout\":\"00:00:00\"},\"timestampUtc\":\"2018-08-24T17:49:33.201157Z\"}","ExceptionMessage":""}`,
		code: hub.CodeDeviceNotOnline, message: "Timed out waiting for device to connect."},
	{name: "shape B gateway timeout", status: 504,
		body: `{"Message":"{\"errorCode\":504101,\"trackingId\":\"x\",\"message\":\"Timed out waiting for the response from device.\",\"info\":{},\"timestampUtc\":\"2019-12-03T15:00:09.0082523Z\"}","ExceptionMessage":""}`,
		code: hub.CodeGatewayTimeout, message: "response from device"},
	{name: "shape B argument invalid", status: 400,
		body: `{"Message":"{\"errorCode\":400004,\"trackingId\":\"x\",\"message\":\"responseTimeoutInSeconds must be within [5; 300].\",\"timestampUtc\":\"2018-12-04T12:33:53.2091489Z\"}","ExceptionMessage":""}`,
		code: hub.CodeArgumentInvalid, message: "[5; 300]"},
	{name: "shape B unknown number uses the header", status: 403, header: hub.CodeQuotaExceeded,
		body: `{"Message":"{\"errorCode\":403999,\"message\":\"quota\"}"}`, code: hub.CodeQuotaExceeded, message: "403999"},
	{name: "shape B string number", status: 404, body: `{"Message":"{\"errorCode\":\"404001\",\"message\":\"gone\"}"}`,
		code: hub.CodeDeviceNotFound, message: "gone"},
	{name: "header only", status: 409, header: hub.CodeJobAlreadyExists, body: `oops`, code: hub.CodeJobAlreadyExists, message: "oops"},
	{name: "unknown header falls back to the status", status: 409, header: "Whatever", code: hub.CodeDeviceAlreadyExists, message: "409"},
	{name: "status only, job", status: 404, jobs: true, code: hub.CodeJobNotFound, message: "Not Found"},
	{name: "html from a proxy", status: 502, body: "<html><body>Bad Gateway</body></html>", code: hub.CodeServiceUnavailable, message: "Bad Gateway"},
	{name: "401 is always unauthorized", status: 401, body: `{"Message":"ErrorCode:GenericBadRequest;nope"}`,
		code: hub.CodeUnauthorized, message: "connection string"},
	{name: "odd 4xx", status: 418, code: hub.CodeGenericBadRequest},
	{name: "odd 5xx", status: 599, code: hub.CodeServerError},
	{name: "empty message", status: 500, body: `{"Message":""}`, code: hub.CodeServerError, message: "500"},
	{name: "message not a string", status: 400, body: `{"Message":{"a":1}}`, code: hub.CodeGenericBadRequest},
	{name: "truncated shape B", status: 404, body: `{"Message":"{\"errorCode\":404103"}`, code: hub.CodeDeviceNotFound},
	{name: "huge error code", status: 500, body: `{"Message":"{\"errorCode\":1e300}"}`, code: hub.CodeServerError},
}

func TestParseErrorBody(t *testing.T) {
	for _, tc := range errorBodyCases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.header != "" {
				h.Set(headerErrorCode, tc.header)
			}
			e := parseErrorBody(tc.status, h, []byte(tc.body), tc.jobs)
			if e.Code != tc.code || !strings.Contains(e.Message, tc.message) || e.Message == "" {
				t.Fatalf("parsed %q / %q, want code %s and a message containing %q", e.Code, e.Message, tc.code, tc.message)
			}
		})
	}
}

// TestWriteErrorRoundTrip checks that every hub code survives the server's
// writeError and the client's parseErrorBody, in both shapes.
func TestWriteErrorRoundTrip(t *testing.T) {
	codes := []string{hub.CodeArgumentInvalid, hub.CodeGenericBadRequest, hub.CodeFormatError, hub.CodeUnauthorized,
		hub.CodeQuotaExceeded, hub.CodeDeviceNotFound, hub.CodeJobNotFound, hub.CodeDeviceNotOnline,
		hub.CodeDeviceAlreadyExists, hub.CodeJobAlreadyExists, hub.CodePreconditionFailed, hub.CodeMessageTooLarge,
		hub.CodeThrottling, hub.CodeTooManyJobs, hub.CodeServerError, hub.CodeServiceUnavailable, hub.CodeGatewayTimeout}
	for _, code := range codes {
		for _, method := range []bool{false, true} {
			name := code + "/shapeA"
			var err error = hub.Errorf(code, "it went %s", "wrong")
			if method {
				name, err = code+"/method", &methodError{err: err, timeout: 90 * time.Second}
			}
			t.Run(name, func(t *testing.T) {
				w := httptest.NewRecorder()
				writeError(w, err, time.Now())
				if w.Code != hub.HTTPStatus(code) || w.Header().Get(headerErrorCode) != code || w.Header().Get("Content-Type") != contentTypeJSON {
					t.Fatalf("status %d, headers %v", w.Code, w.Header())
				}
				got := parseErrorBody(w.Code, http.Header{}, w.Body.Bytes(), false)
				want := "it went wrong"
				if code == hub.CodeUnauthorized {
					want = "it went wrong (the hub refused"
				}
				if got.Code != code || !strings.HasPrefix(got.Message, want) {
					t.Fatalf("parsed %+v from %s", got, w.Body)
				}
				if method && code == hub.CodeDeviceNotOnline && !strings.Contains(w.Body.String(), `00:01:30`) {
					t.Errorf("info.timeout missing: %s", w.Body)
				}
			})
		}
	}
}

func TestWriteErrorForeign(t *testing.T) {
	w := httptest.NewRecorder()
	writeError(w, errors.New("disk on fire"), time.Now())
	if w.Code != 500 || w.Header().Get(headerErrorCode) != hub.CodeServerError || !strings.Contains(w.Body.String(), "ErrorCode:ServerError;disk on fire") {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
}

func TestStateToken(t *testing.T) {
	stats := func(d, f, s, r, p int) *hub.DeviceJobStatistics {
		return &hub.DeviceJobStatistics{DeviceCount: d, FailedCount: f, SucceededCount: s, RunningCount: r, PendingCount: p}
	}
	base := &hub.Job{JobID: "a", Status: hub.JobRunning, DeviceJobStatistics: stats(3, 0, 1, 1, 1)}
	tests := []struct {
		name string
		job  *hub.Job
		same bool
	}{
		{"same state, other fields", &hub.Job{JobID: "b", Status: hub.JobRunning, StatusMessage: "x", DeviceJobStatistics: stats(3, 0, 1, 1, 1)}, true},
		{"status", &hub.Job{Status: hub.JobCompleted, DeviceJobStatistics: stats(3, 0, 1, 1, 1)}, false},
		{"failed count", &hub.Job{Status: hub.JobRunning, DeviceJobStatistics: stats(3, 1, 1, 1, 1)}, false},
		{"pending count", &hub.Job{Status: hub.JobRunning, DeviceJobStatistics: stats(3, 0, 1, 1, 0)}, false},
		{"no statistics", &hub.Job{Status: hub.JobRunning}, false},
		{"ended", &hub.Job{Status: hub.JobRunning, EndTime: hub.NewTime(time.Now()), DeviceJobStatistics: stats(3, 0, 1, 1, 1)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := stateToken(tc.job) == stateToken(base); got != tc.same || got != hub.SameJobState(tc.job, base) {
				t.Fatalf("tokens equal = %v, want %v", got, tc.same)
			}
			if tok := stateToken(tc.job); tok == "" || len(tok) > 16 {
				t.Errorf("token %q is not short", tok)
			}
		})
	}
}

func FuzzParseErrorBody(f *testing.F) {
	for _, tc := range errorBodyCases {
		f.Add(tc.status, tc.header, []byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, status int, header string, body []byte) {
		h := http.Header{}
		h.Set(headerErrorCode, header)
		for _, jobs := range []bool{false, true} {
			e := parseErrorBody(status, h, body, jobs)
			if e == nil || e.Message == "" {
				t.Fatalf("parseErrorBody(%d, %q, %q) = %#v", status, header, body, e)
			}
			if !knownCode(e.Code) {
				t.Fatalf("code %q is not one of the hub's", e.Code)
			}
			if status == http.StatusUnauthorized && e.Code != hub.CodeUnauthorized {
				t.Fatalf("401 gave %s", e.Code)
			}
		}
	})
}
