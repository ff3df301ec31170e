package simulate

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
)

// A simulated device keeps its own view of its reported properties, as a
// real one knows its own state: the MQTT simulator and the in-process bus
// both track it (to tell when a degradation starts, and which desired
// properties still differ), with the helpers of this file.

// mergeReported applies a reported-properties patch to the device's own
// view (hub.MergePlain: a shallow copy of the view never sees a change).
func mergeReported(dst, patch map[string]any) { hub.MergePlain(dst, patch) }

// sameJSON reports whether two JSON values are equal as JSON: objects
// compare key by key whatever their order, and numbers by value whatever
// their Go type (3 and 3.0).
func sameJSON(a, b any) bool {
	// Marshalling sorts object keys and writes a number by its value, so
	// equal JSON gives equal bytes.
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// holdsAll reports whether reported holds every top-level value of want.
func holdsAll(reported, want map[string]any) bool {
	for k, v := range want {
		cur, ok := reported[k]
		if !ok || !sameJSON(cur, v) {
			return false
		}
	}
	return true
}

// differing is the patch of desired's top-level properties whose values
// reported lacks or holds differently; the twin's own keys ("$version",
// "$metadata") are not properties.
func differing(desired, reported map[string]any) map[string]any {
	var patch map[string]any
	for k, v := range desired {
		if strings.HasPrefix(k, "$") {
			continue
		}
		if cur, ok := reported[k]; ok && sameJSON(cur, v) {
			continue
		}
		if patch == nil {
			patch = map[string]any{}
		}
		patch[k] = v
	}
	return patch
}

// withoutMeta is a twin section without the twin's own keys ("$version",
// "$metadata"): the properties alone. It returns a new map.
func withoutMeta(section map[string]any) map[string]any {
	out := make(map[string]any, len(section))
	for k, v := range section {
		if !strings.HasPrefix(k, "$") {
			out[k] = v
		}
	}
	return out
}
