package memstore

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// TestCloneIsJSONRoundTrip: a stored copy equals what encoding/json
// gives back, for the values callers hand the store.
func TestCloneIsJSONRoundTrip(t *testing.T) {
	reason := "maintenance"
	thumb := "ABC"
	at := time.Date(2026, 11, 26, 3, 4, 5, 123456789, time.FixedZone("CET", 3600))
	for name, d := range map[string]*store.Device{
		"empty": {Device: hub.Device{DeviceID: "a"}},
		"full": {Device: hub.Device{DeviceID: "b", ETag: "MA==", Status: "disabled", StatusReason: &reason,
			ConnectionStateUpdatedTime: hub.Time{Time: at}, StatusUpdatedTime: hub.Time{Time: at.Add(time.Nanosecond)},
			LastActivityTime: hub.Time{Time: time.Now()}, CloudToDeviceMessageCount: 3,
			Authentication: hub.Authentication{Type: "sas", SymmetricKey: hub.SymmetricKey{PrimaryKey: "k"},
				X509Thumbprint: hub.X509Thumbprint{PrimaryThumbprint: &thumb}}},
			Tags:     map[string]any{"n": 3, "big": int64(1) << 60, "f32": float32(0.1), "list": []any{1, "x", nil, map[string]any{"y": true}}},
			Desired:  map[string]any{"$version": 4.0, "s": []string{"a", "b"}, "m": map[string]int{"z": 1}, "bad": "\xff\xfeok", "\xffkey": 1},
			Reported: map[string]any{"nested": map[string]any{"deep": map[string]any{"v": 1.5}}, "num": json.Number("12.50")},
			Version:  7},
	} {
		got, err := cloneDevice(d)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		want := new(store.Device)
		if err := json.Unmarshal(b, want); err != nil {
			t.Fatal(err)
		}
		for _, m := range []*map[string]any{&want.Tags, &want.Desired, &want.Reported} {
			if *m == nil {
				*m = map[string]any{}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %#v\nwant %#v", name, got, want)
		}
	}
	if _, err := cloneDevice(&store.Device{Tags: map[string]any{"x": math.NaN()}}); err == nil {
		t.Error("NaN was stored; encoding/json refuses it")
	}
}

// TestCloneJobIsJSONRoundTrip: the same for jobs.
func TestCloneJobIsJSONRoundTrip(t *testing.T) {
	now := hub.Time{Time: time.Now()}
	for name, j := range map[string]*hub.Job{
		"method": {JobID: "m", QueryCondition: "deviceId IN ['a', 'b']", CreatedTime: &now, StartTime: &now, Type: hub.JobDeviceMethod,
			CloudToDeviceMethod: &hub.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{ "why": "<fw> & more" }`), ResponseTimeoutInSeconds: 30},
			Status:              hub.JobRunning, FailureReason: "bad \xff byte", DeviceJobStatistics: &hub.DeviceJobStatistics{DeviceCount: 2}},
		"twin": {JobID: "t", Type: hub.JobUpdateTwin, UpdateTwin: &hub.TwinPatch{ETag: "*", Tags: map[string]any{"n": 1},
			Properties: &hub.Properties{Desired: map[string]any{"fw": "2.4.1"}}}},
		"null payload": {JobID: "n", Type: hub.JobDeviceMethod, CloudToDeviceMethod: &hub.MethodRequest{MethodName: "x"}},
	} {
		got, err := cloneJob(j)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		want := new(hub.Job)
		if err := json.Unmarshal(b, want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %#v\nwant %#v", name, got, want)
		}
		if j.DeviceJobStatistics != nil && got.DeviceJobStatistics == j.DeviceJobStatistics {
			t.Errorf("%s: statistics shared with the caller", name)
		}
	}
}
