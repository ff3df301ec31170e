package hub

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestCheckRange(t *testing.T) {
	for _, tc := range []struct {
		v, min, max int64
		ok          bool
	}{
		{5, 5, 300, true}, {300, 5, 300, true}, {4, 5, 300, false}, {301, 5, 300, false},
		{math.MinInt64, 0, 1, false}, {math.MaxInt64, 0, 1, false},
	} {
		err := CheckRange("f", tc.v, tc.min, tc.max)
		if (err == nil) != tc.ok {
			t.Errorf("CheckRange(%d in [%d; %d]) = %v", tc.v, tc.min, tc.max, err)
		}
		if err != nil && (ErrorCode(err) != CodeArgumentInvalid || !strings.Contains(ErrorMessage(err), "f must be within [")) {
			t.Errorf("CheckRange message %v", err)
		}
	}
}

func TestFieldRange(t *testing.T) {
	for _, tc := range []struct {
		field    string
		min, max int64
		ok       bool
	}{
		{"maxExecutionTimeInSeconds", 1, MaxJobExecutionTime, true},
		{"cloudToDeviceMethod.responseTimeoutInSeconds", MinResponseTimeout, MaxResponseTimeout, true},
		{"connectTimeoutInSeconds", 0, MaxConnectTimeout, true},
		{"deviceId", 0, 0, false},
	} {
		min, max, ok := FieldRange(tc.field)
		if min != tc.min || max != tc.max || ok != tc.ok {
			t.Errorf("FieldRange(%q) = %d, %d, %v", tc.field, min, max, ok)
		}
	}
}

// TestMaxJobExecutionTimeCannotOverflow pins why the bound is there: the
// engine's deadline, a time.Duration of the maximum added to the start,
// stays positive and in order for any start the hub accepts.
func TestMaxJobExecutionTimeCannotOverflow(t *testing.T) {
	d := time.Duration(MaxJobExecutionTime) * time.Second
	if d <= 0 || d/time.Second != MaxJobExecutionTime {
		t.Fatalf("%d seconds overflow a time.Duration", MaxJobExecutionTime)
	}
	now := time.Now()
	start := now.Add(MaxJobStartAhead)
	if end := start.Add(d); !end.After(start) || end.Year() > 9999 {
		t.Fatalf("deadline %v for start %v", end, start)
	}
}

func TestCheckMethodRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  *MethodRequest
		code string
	}{
		{"defaults", &MethodRequest{MethodName: "m"}, ""},
		{"bounds", &MethodRequest{ResponseTimeoutInSeconds: 300, ConnectTimeoutInSeconds: 300}, ""},
		{"low bounds", &MethodRequest{ResponseTimeoutInSeconds: 5}, ""},
		{"nil", nil, CodeArgumentInvalid},
		{"response 4", &MethodRequest{ResponseTimeoutInSeconds: 4}, CodeArgumentInvalid},
		{"response negative", &MethodRequest{ResponseTimeoutInSeconds: -1}, CodeArgumentInvalid},
		{"response huge", &MethodRequest{ResponseTimeoutInSeconds: math.MaxInt}, CodeArgumentInvalid},
		{"connect negative", &MethodRequest{ConnectTimeoutInSeconds: -1}, CodeArgumentInvalid},
		{"connect 301", &MethodRequest{ConnectTimeoutInSeconds: 301}, CodeArgumentInvalid},
		{"connect min int", &MethodRequest{ConnectTimeoutInSeconds: math.MinInt}, CodeArgumentInvalid},
		{"payload too large", &MethodRequest{Payload: json.RawMessage(`"` + strings.Repeat("p", MaxMethodPayload) + `"`)}, CodeMessageTooLarge},
	} {
		if got := ErrorCode(CheckMethodRequest(tc.req)); got != tc.code {
			t.Errorf("%s: code %q, want %q", tc.name, got, tc.code)
		}
	}
}

func TestCheckJobTiming(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *Time { return &Time{now.Add(d)} }
	for _, tc := range []struct {
		name  string
		start *Time
		max   int64
		in    string // substring of the error; "" means accepted
	}{
		{"null start, default max", nil, 0, ""},
		{"zero start", &Time{}, 0, ""},
		{"max at the bound", nil, MaxJobExecutionTime, ""},
		{"max 1", nil, 1, ""},
		{"max over the bound", nil, MaxJobExecutionTime + 1, "maxExecutionTimeInSeconds must be within [1; 31536000]. It was 31536001."},
		{"max 1e10", nil, 10000000000, "maxExecutionTimeInSeconds must be within"},
		{"max int64", nil, math.MaxInt64, "maxExecutionTimeInSeconds must be within"},
		{"max negative", nil, -1, "It was -1"},
		{"max min int64", nil, math.MinInt64, "maxExecutionTimeInSeconds"},
		{"start a year ahead", at(MaxJobStartAhead), 0, ""},
		{"start a year and a second ahead", at(MaxJobStartAhead + time.Second), 0, "365 days ahead"},
		{"start year 9999", &Time{time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}, 0, "ahead"},
		{"start past, time left", at(-time.Hour + time.Second), 3600, ""},
		{"start past, deadline now", at(-time.Hour), 3600, "could never run"},
		{"start year 1 plus a nanosecond", &Time{time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)}, MaxJobExecutionTime, "could never run"},
		{"start year 0", &Time{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)}, 0, "could never run"},
	} {
		err := CheckJobTiming(tc.start, tc.max, now)
		if tc.in == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if ErrorCode(err) != CodeArgumentInvalid || !strings.Contains(ErrorMessage(err), tc.in) {
			t.Errorf("%s: %v, want ArgumentInvalid with %q", tc.name, err, tc.in)
		}
	}
}

// TestCheckPatch: a patch is checked as it applies to an empty section:
// what MergeSection and CheckLimits refuse, nulls taking no room.
func TestCheckPatch(t *testing.T) {
	nullKeys := map[string]any{"x": 1.0}
	for i := range 9 {
		nullKeys[strings.Repeat(string(rune('a'+i)), 1000)] = nil
	}
	for _, tc := range []struct {
		name, kind string
		patch      map[string]any
		code, in   string
	}{
		{"ok", "desired", mustObject(t, `{"a":{"b":[1,"x",null]},"c":null}`), "", ""},
		{"nil", "tags", nil, "", ""},
		{"9 KB of deletes in tags", "tags", nullKeys, "", ""},
		{"$ key", "desired", mustObject(t, `{"$version":3}`), CodeArgumentInvalid, `"$version" is read-only`},
		{"first $ key in order", "desired", mustObject(t, `{"$z":1,"$b":1,"$a":1}`), CodeArgumentInvalid, `"$a"`},
		{"nested $ key", "tags", mustObject(t, `{"o":{"$x":null}}`), CodeArgumentInvalid, `"o.$x"`},
		{"dot", "tags", mustObject(t, `{"a.b":null}`), CodeArgumentInvalid, "tags.a.b"},
		{"control", "desired", map[string]any{"a\x01": 1.0}, CodeArgumentInvalid, "control"},
		{"deep", "desired", nest(12, "v"), CodeArgumentInvalid, "nested"},
		{"deep of nulls", "desired", nest(12, nil), CodeArgumentInvalid, "nested"},
		{"long string", "desired", map[string]any{"s": strings.Repeat("s", 4097)}, CodeArgumentInvalid, "properties.desired.s"},
		{"integer past 2^52", "desired", map[string]any{"n": float64(MaxTwinInteger + 1)}, CodeArgumentInvalid, "[-4503599627370496; 4503599627370495]"},
		{"integer past -2^52", "tags", map[string]any{"n": float64(MinTwinInteger - 1)}, CodeArgumentInvalid, "whole numbers"},
		{"1e300", "tags", map[string]any{"l": []any{1e300}}, CodeArgumentInvalid, "tags.l[0]"},
		{"int64 past 2^52", "tags", map[string]any{"n": int64(1) << 60}, CodeArgumentInvalid, "whole numbers"},
		{"integers at the bounds", "tags", map[string]any{"a": float64(MaxTwinInteger), "b": float64(MinTwinInteger), "c": 1e300 / 1e299 / 3}, "", ""},
	} {
		err := CheckPatch(tc.kind, tc.patch)
		if ErrorCode(err) != tc.code || (err != nil && !strings.Contains(ErrorMessage(err), tc.in)) {
			t.Errorf("%s: %v, want code %q with %q", tc.name, err, tc.code, tc.in)
		}
	}
}
