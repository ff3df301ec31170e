package hub

import (
	"encoding/json"
	"testing"
)

// A section set to null is not an absent one: it clears the section, and
// survives a round trip (a twin job's stored patch).
func TestTwinPatchNullSections(t *testing.T) {
	for _, tc := range []struct {
		body                    string
		clearTags, clearDesired bool
		back                    string
	}{
		{`{"tags":{"a":1}}`, false, false, `{"tags":{"a":1}}`},
		{`{"tags":null}`, true, false, `{"tags":null}`},
		{`{"properties":{"desired":null}}`, false, true, `{"properties":{"desired":null}}`},
		{`{"etag":"*","tags":null,"properties":{"desired":null,"reported":{"x":1}}}`, true, true,
			`{"etag":"*","properties":{"desired":null,"reported":{"x":1}},"tags":null}`},
		{`{"properties":null}`, false, false, `{}`},
		{`{"properties":{"desired":{}}}`, false, false, `{"properties":{}}`},
		{`{"tags":{"a":null}}`, false, false, `{"tags":{"a":null}}`},
	} {
		var p TwinPatch
		if err := json.Unmarshal([]byte(tc.body), &p); err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if p.ClearTags != tc.clearTags || p.ClearDesired != tc.clearDesired {
			t.Errorf("%s: clear tags %v desired %v, want %v %v", tc.body, p.ClearTags, p.ClearDesired, tc.clearTags, tc.clearDesired)
		}
		b, err := json.Marshal(&p)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.back {
			t.Errorf("%s: marshalled as %s, want %s", tc.body, b, tc.back)
		}
	}
	var p TwinPatch
	if err := json.Unmarshal([]byte(`{"tags":[1]}`), &p); err == nil {
		t.Error("tags as an array accepted")
	}
}
