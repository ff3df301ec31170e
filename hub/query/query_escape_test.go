package query

import "testing"

// TestEscape: an escaped string reads back as itself from a literal.
func TestEscape(t *testing.T) {
	for _, s := range []string{"", "plain", `it's`, `back\slash`, `\'`, `''\\`} {
		q, err := Parse("SELECT * FROM devices WHERE deviceId = '" + Escape(s) + "'")
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if q.Where == nil {
			t.Fatalf("%q: no condition", s)
		}
		doc := map[string]any{"deviceId": s}
		if !Match(q.Where, doc) {
			t.Errorf("%q: the escaped literal does not match the string", s)
		}
	}
}
