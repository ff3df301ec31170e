package store

import (
	"encoding/json"
	"math"
	"testing"
)

func TestAppendJSON(t *testing.T) {
	for _, v := range []any{
		nil, true, false, "", "plain", "<a&b>", "quote\" back\\ tab\t nl\n cr\r bs\b ff\f \x01\x1f",
		"\u2028\u2029", "héllo ☃ 𝄞",
		0.0, math.Copysign(0, -1), 1.0, -1.5, 64, 1e-6, 9.99e-7, 1e20, 1e21, 123456789012345678901234.0, 5e-324, math.MaxFloat64,
		map[string]any{}, map[string]any(nil), []any{}, []any(nil),
		map[string]any{"b": 1.0, "a": []any{"x", nil, map[string]any{"z": false, "<": "&"}}, "é": "ü"},
		json.RawMessage(`{"b":1, "a":2}`), 42, int64(7), []string{"a"},
	} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendJSON(nil, v)
		if err != nil || string(got) != string(want) {
			t.Errorf("AppendJSON(%#v) = %s, %v; json.Marshal gives %s", v, got, err, want)
		}
	}
	// Invalid UTF-8, which no decoded value holds, is written as the
	// round trip gives it (U+FFFD itself, not its escape).
	for _, v := range []any{"bad \xff utf8 \xc3", map[string]any{"k\xff": []any{"\xfe<"}}} {
		doc, err := Doc(map[string]any{"v": v})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(doc["v"])
		if got, err := AppendJSON(nil, v); err != nil || string(got) != string(want) {
			t.Errorf("AppendJSON(%q) = %s, %v; the round trip gives %s", v, got, err, want)
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(1), map[string]any{"x": math.Inf(-1)}} {
		if _, err := AppendJSON(nil, v); err == nil {
			t.Errorf("AppendJSON(%v): no error, json.Marshal refuses it", v)
		}
	}
}

// FuzzAppendJSON holds AppendJSON to json.Marshal's bytes for every
// document encoding/json decodes.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e-9,"<x>"],"b":{"c":null,"d":true}}`, `"\u2028\ud800"`, `1e21`, `[]`, `{"é":"\u0001"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendJSON(nil, v)
		if err != nil || string(got) != string(want) {
			t.Fatalf("AppendJSON = %s, %v; json.Marshal gives %s", got, err, want)
		}
	})
}
