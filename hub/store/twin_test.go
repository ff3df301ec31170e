package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// TestTwinDoc: the directly built document of a device equals the JSON
// round trip of its twin, for devices with every optional field, none,
// and strings encoders treat specially.
func TestTwinDoc(t *testing.T) {
	reason := "bad \xff <reason>"
	at := hub.Time{Time: time.Date(2026, 11, 26, 1, 2, 3, 123456700, time.FixedZone("x", 3600))}
	devices := []*Device{
		{Device: hub.Device{DeviceID: "d"}},
		{Device: hub.Device{DeviceID: "d\u2028<&>", ETag: "MTIz", ConnectionState: "Connected", Status: "disabled", StatusReason: &reason,
			StatusUpdatedTime: at, LastActivityTime: at, CloudToDeviceMessageCount: 3},
			Version: 1<<53 + 1,
			Tags:    map[string]any{"model": "door-ctl", "n": 2.5, "nested": map[string]any{"a": []any{1.0, nil, "x"}}},
			Desired: map[string]any{"fw": "2.0", "$version": 4.0}, Reported: map[string]any{"fw": "1.0", "$version": 7.0}},
		{Device: hub.Device{DeviceID: "e"}, Version: 3, Tags: map[string]any{}, Desired: map[string]any{"$version": 1.0}},
	}
	for i, d := range devices {
		want, err := Doc(d.Twin())
		if err != nil {
			t.Fatal(err)
		}
		got := TwinDoc(d)
		if !reflect.DeepEqual(got, want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			t.Errorf("device %d:\n got %s\nwant %s", i, g, w)
		}
	}
}
