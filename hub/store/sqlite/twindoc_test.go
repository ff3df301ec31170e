package sqlite

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// TestTwinDocRow: the stored twin document is byte for byte what the JSON
// round trip of the twin gives (store.Doc, encoded again), which is what
// EvalDevices answers queries with; devices with every optional field,
// none, empty sections, and strings and numbers encoders treat specially.
func TestTwinDocRow(t *testing.T) {
	reason := "bad \xff <reason>"
	at := hub.Time{Time: time.Date(2026, 11, 26, 1, 2, 3, 123456700, time.FixedZone("x", 3600))}
	meta := map[string]any{"$lastUpdated": "2026-11-26T01:02:03.1234567Z", "fw": map[string]any{"$lastUpdated": "2026-11-26T01:02:03Z", "$lastUpdatedVersion": 4.0}}
	tests := []struct {
		name string
		d    *store.Device
	}{
		{"bare", &store.Device{Device: hub.Device{DeviceID: "d"}}},
		{"empty sections", &store.Device{Device: hub.Device{DeviceID: "e"}, Version: 3, Tags: map[string]any{},
			Desired: map[string]any{}, Reported: map[string]any{}}},
		{"everything", &store.Device{Device: hub.Device{DeviceID: "d\u2028<&>", ETag: "MTIz", ConnectionState: "Connected",
			Status: "disabled", StatusReason: &reason, StatusUpdatedTime: at, LastActivityTime: at, CloudToDeviceMessageCount: 3,
			Authentication: hub.Authentication{Type: "sas", SymmetricKey: hub.SymmetricKey{PrimaryKey: "a2V5", SecondaryKey: "a2V5"}}},
			Version: 1<<53 + 1,
			Tags:    map[string]any{"model": "door-ctl", "n": 2.5, "tiny": 1e-7, "big": 1e21, "nested": map[string]any{"a": []any{1.0, nil, "x\xfe", true}}},
			Desired: map[string]any{"fw": "2.0", "$version": 4.0, "$metadata": meta}, Reported: map[string]any{"fw": "1.0", "$version": 7.0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := tt.d.Twin()
			tw.Properties.Desired = orEmpty(tw.Properties.Desired)
			tw.Properties.Reported = orEmpty(tw.Properties.Reported)
			doc, err := store.Doc(tw)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := twinDoc(tt.d)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("twinDoc:\n got %s\nwant %s", got, want)
			}
		})
	}
}
