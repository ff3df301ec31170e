package rest

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
)

// bodyTargets are the types the routes decode bodies into, each with the
// opening byte a body must start with.
var bodyTargets = []struct {
	name string
	new  func() any
	open byte
}{
	{"device", func() any { return new(hub.Device) }, '{'},
	{"twin patch", func() any { return new(hub.TwinPatch) }, '{'},
	{"method", func() any { return new(hub.MethodRequest) }, '{'},
	{"job", func() any { return new(hub.Job) }, '{'},
	{"query", func() any { return new(map[string]json.RawMessage) }, '{'},
	{"bulk", func() any { return new([]*hub.ImportDevice) }, '['},
}

// FuzzDecodeBody holds the one body decoder of the routes to its
// contract for every body and every target: it never panics; it fails
// only with IotHubFormatError or (a number outside a field's range)
// ArgumentInvalid; and what it accepts is one JSON value of the target's
// kind, never null or a scalar.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		"null", " null ", "{}", "[]", "[null]", "0", `"x"`, "true", "{} {}", "{", "",
		`{"deviceId":"d","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
		`{"tags":{"a":1},"properties":{"desired":{"b":null},"reported":{}},"etag":"*"}`,
		`{"methodName":"m","payload":{"x":1},"responseTimeoutInSeconds":1e30,"connectTimeoutInSeconds":-1}`,
		`{"jobId":"j","type":"scheduleDeviceMethod","startTime":null,"maxExecutionTimeInSeconds":9223372036854775808}`,
		`{"jobId":"j","startTime":"10000-01-01T00:00:00Z"}`,
		`{"Query":"SELECT * FROM devices"}`,
		`[{"id":"a","importMode":"create"}]`,
		`{"tags":{"a":1,"a":2}}`, "{\"x\":\"\xff\"}", `[{"id":"a"},{"id":"a","id":"b"}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, tg := range bodyTargets {
			v := tg.new()
			err := decodeBody(body, v)
			if err != nil {
				if c := hub.ErrorCode(err); c != hub.CodeFormatError && c != hub.CodeArgumentInvalid {
					t.Fatalf("%s: %q: error %v, want IotHubFormatError or ArgumentInvalid", tg.name, body, err)
				}
				continue
			}
			trimmed := bytes.TrimSpace(body)
			if len(trimmed) == 0 || trimmed[0] != tg.open || !json.Valid(body) {
				t.Fatalf("%s: accepted %q", tg.name, body)
			}
		}
	})
}
