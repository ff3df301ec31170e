package hub

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	patchNow = time.Date(2026, 3, 1, 12, 0, 0, 123456700, time.FixedZone("CET", 3600))
	nowWire  = "2026-03-01T11:00:00.1234567Z" // patchNow in UTC, as Time marshals
)

func mustObject(t testing.TB, s string) map[string]any {
	t.Helper()
	s = strings.ReplaceAll(s, "NOW", nowWire)
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return m
}

func canonical(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	_ = json.Unmarshal(b, &x) // normalise int64 vs float64
	b, _ = json.Marshal(x)
	return string(b)
}

var mergeCases = []struct {
	name        string
	section     string
	patch       string
	withVersion bool
	want        string // expected section; "" = unchanged
	changed     bool
	wantErr     bool
}{
	{name: "leaf into empty desired", section: `{"$version":4}`, patch: `{"a":1}`, withVersion: true, changed: true,
		want: `{"$version":4,"a":1,"$metadata":{"$lastUpdated":"NOW","$lastUpdatedVersion":5,"a":{"$lastUpdated":"NOW","$lastUpdatedVersion":5}}}`},
	{name: "new nested object in tags, nulls inside dropped", section: `{}`, patch: `{"loc":{"region":"US","floor":null}}`, changed: true,
		want: `{"loc":{"region":"US"},"$metadata":{"$lastUpdated":"NOW","loc":{"$lastUpdated":"NOW","region":{"$lastUpdated":"NOW"}}}}`},
	{name: "merge keeps untouched sibling metadata",
		section: `{"loc":{"region":"US","floor":1},"x":true,"$metadata":{"$lastUpdated":"T0","loc":{"$lastUpdated":"T0","region":{"$lastUpdated":"T0"},"floor":{"$lastUpdated":"T0"}},"x":{"$lastUpdated":"T0"}}}`,
		patch:   `{"loc":{"floor":2}}`, changed: true,
		want: `{"loc":{"region":"US","floor":2},"x":true,"$metadata":{"$lastUpdated":"NOW","loc":{"$lastUpdated":"NOW","region":{"$lastUpdated":"T0"},"floor":{"$lastUpdated":"NOW"}},"x":{"$lastUpdated":"T0"}}}`},
	{name: "null deletes key and metadata",
		section: `{"a":1,"b":{"c":2},"$metadata":{"$lastUpdated":"T0","a":{"$lastUpdated":"T0"},"b":{"$lastUpdated":"T0","c":{"$lastUpdated":"T0"}}}}`,
		patch:   `{"b":null}`, changed: true,
		want: `{"a":1,"$metadata":{"$lastUpdated":"NOW","a":{"$lastUpdated":"T0"}}}`},
	{name: "nested null deletes", section: `{"b":{"c":2,"d":3},"$metadata":{"$lastUpdated":"T0","b":{"$lastUpdated":"T0","c":{"$lastUpdated":"T0"},"d":{"$lastUpdated":"T0"}}}}`,
		patch: `{"b":{"c":null}}`, changed: true,
		want: `{"b":{"d":3},"$metadata":{"$lastUpdated":"NOW","b":{"$lastUpdated":"NOW","d":{"$lastUpdated":"T0"}}}}`},
	{name: "deleting a missing key changes nothing", section: `{"a":1}`, patch: `{"zz":null}`},
	{name: "same value changes nothing", section: `{"a":1,"o":{"s":"x","l":[1,2]}}`, patch: `{"a":1,"o":{"s":"x","l":[1,2]}}`},
	{name: "empty patch", section: `{"a":1}`, patch: `{}`},
	{name: "object replaced by scalar",
		section: `{"o":{"p":1},"$metadata":{"$lastUpdated":"T0","o":{"$lastUpdated":"T0","p":{"$lastUpdated":"T0"}}}}`,
		patch:   `{"o":"flat"}`, withVersion: true, changed: true,
		want: `{"o":"flat","$metadata":{"$lastUpdated":"NOW","$lastUpdatedVersion":5,"o":{"$lastUpdated":"NOW","$lastUpdatedVersion":5}}}`},
	{name: "scalar replaced by object", section: `{"o":3}`, patch: `{"o":{"p":{"q":true}}}`, changed: true,
		want: `{"o":{"p":{"q":true}},"$metadata":{"$lastUpdated":"NOW","o":{"$lastUpdated":"NOW","p":{"$lastUpdated":"NOW","q":{"$lastUpdated":"NOW"}}}}}`},
	{name: "empty object is created", section: `{}`, patch: `{"o":{}}`, changed: true,
		want: `{"o":{},"$metadata":{"$lastUpdated":"NOW","o":{"$lastUpdated":"NOW"}}}`},
	{name: "arrays replace", section: `{"l":[1,2,3]}`, patch: `{"l":[{"a":null}]}`, changed: true,
		want: `{"l":[{"a":null}],"$metadata":{"$lastUpdated":"NOW","l":{"$lastUpdated":"NOW"}}}`},
	{name: "garbage metadata is replaced", section: `{"a":1,"$metadata":"junk"}`, patch: `{"a":2}`, changed: true,
		want: `{"a":2,"$metadata":{"$lastUpdated":"NOW","a":{"$lastUpdated":"NOW"}}}`},
	{name: "$ key rejected", section: `{"a":1}`, patch: `{"a":2,"$version":9}`, wantErr: true},
	{name: "nested $ key rejected", section: `{"a":1}`, patch: `{"a":2,"o":{"$metadata":{}}}`, wantErr: true},
	{name: "$ key in array object rejected", section: `{}`, patch: `{"l":[{"$x":1}]}`, wantErr: true},
}

func TestMergeSection(t *testing.T) {
	for _, tc := range mergeCases {
		t.Run(tc.name, func(t *testing.T) {
			section := mustObject(t, tc.section)
			before := canonical(t, section)
			changed, err := MergeSection(section, mustObject(t, tc.patch), patchNow, 5, tc.withVersion)
			if tc.wantErr {
				if ErrorCode(err) != CodeArgumentInvalid {
					t.Fatalf("err = %v, want %s", err, CodeArgumentInvalid)
				}
				if canonical(t, section) != before {
					t.Fatal("section changed by a rejected patch")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			want := before
			if tc.want != "" {
				want = canonical(t, mustObject(t, tc.want))
			}
			if got := canonical(t, section); got != want {
				t.Fatalf("section\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestMergeSectionGoValues(t *testing.T) {
	section := mustObject(t, `{"n":1,"o":{"k":"v"}}`)
	inner := map[string]any{"x": []any{"a"}}
	patch := map[string]any{"n": int64(1), "new": inner}
	changed, err := MergeSection(section, patch, patchNow, 0, false)
	if err != nil || !changed {
		t.Fatalf("changed %v err %v", changed, err)
	}
	if _, ok := section["$metadata"].(map[string]any)["n"]; ok {
		t.Error("int64 1 over float64 1 was treated as a change")
	}
	inner["x"].([]any)[0] = "mutated"
	inner["y"] = 1
	if canonical(t, section["new"]) != `{"x":["a"]}` {
		t.Fatalf("section shares memory with the patch: %s", canonical(t, section["new"]))
	}
	if _, err := MergeSection(section, map[string]any{"f": func() {}}, patchNow, 0, false); ErrorCode(err) != CodeArgumentInvalid {
		t.Fatalf("non-JSON value: err = %v", err)
	}
	if _, err := MergeSection(nil, map[string]any{"a": 1}, patchNow, 0, false); err == nil {
		t.Fatal("nil section accepted")
	}
}

func TestStripMeta(t *testing.T) {
	section := mustObject(t, `{"a":{"b":[1,{"c":2}]},"$version":3,"$metadata":{"$lastUpdated":"NOW"}}`)
	got := StripMeta(section)
	if canonical(t, got) != `{"a":{"b":[1,{"c":2}]}}` {
		t.Fatalf("StripMeta = %s", canonical(t, got))
	}
	got["a"].(map[string]any)["b"].([]any)[1].(map[string]any)["c"] = 9
	if canonical(t, section["a"]) != `{"b":[1,{"c":2}]}` {
		t.Fatal("StripMeta did not copy deeply")
	}
}

// nest returns n objects, each but the innermost holding the next under
// one key (kb, kc, ...), the innermost holding leaf: nest(11, "v") is the
// deepest section Azure's twin doc shows as valid (objects "one" to "ten"
// under the section, a leaf in "ten").
func nest(n int, leaf any) map[string]any {
	v := leaf
	for i := n; i >= 1; i-- {
		v = map[string]any{"k" + string(rune('a'+i)): v}
	}
	return v.(map[string]any)
}

func TestCheckLimits(t *testing.T) {
	long := strings.Repeat("x", 1000)
	big := map[string]any{}
	for i := range 40 { // 40 × (4 + 1000) bytes > 32 KB
		big[string(rune('A'+i))+"key"] = long
	}
	for _, tc := range []struct {
		name     string
		kind     string
		section  map[string]any
		wantCode string
		wantIn   string // substring of the message
	}{
		{"ok", "desired", mustObject(t, `{"a":{"b":[1,"x",true,null]},"$version":2,"$metadata":{"$lastUpdated":"NOW"}}`), "", ""},
		{"depth 10 with a leaf", "tags", nest(11, "v"), "", ""},
		{"depth 10 with an empty object", "tags", nest(10, map[string]any{}), "", ""},
		{"empty object at depth 11", "tags", nest(11, map[string]any{}), CodeArgumentInvalid, "nested"},
		{"depth 11", "tags", nest(12, "v"), CodeArgumentInvalid, "tags.kb.kc.kd.ke.kf.kg.kh.ki.kj.kk.kl is nested"},
		{"array too deep", "reported", nest(10, []any{[]any{}}), CodeArgumentInvalid, "[0] is nested"},
		{"dot in key", "desired", map[string]any{"o": map[string]any{"a.b": 1}}, CodeArgumentInvalid, "properties.desired.o.a.b"},
		{"dollar in key", "reported", map[string]any{"a$": 1}, CodeArgumentInvalid, "a$"},
		{"dollar top-level key", "reported", map[string]any{"$etag": 1}, CodeArgumentInvalid, "$etag"},
		{"space in key", "tags", map[string]any{"a b": 1}, CodeArgumentInvalid, "a b"},
		{"control in key", "tags", map[string]any{"a\x01": 1}, CodeArgumentInvalid, "control"},
		{"C1 control in key", "tags", map[string]any{"a\u0085": 1}, CodeArgumentInvalid, "control"},
		{"empty key", "tags", map[string]any{"": 1}, CodeArgumentInvalid, "empty"},
		{"long key", "tags", map[string]any{strings.Repeat("k", 1025): 1}, CodeArgumentInvalid, "1025 bytes"},
		{"long string", "desired", map[string]any{"s": strings.Repeat("s", 4097)}, CodeArgumentInvalid, "properties.desired.s"},
		{"4 KB string ok", "desired", map[string]any{"s": strings.Repeat("s", 4096)}, "", ""},
		{"desired too large", "desired", big, CodeMessageTooLarge, "properties.desired is"},
		{"tags too large", "tags", map[string]any{"a": long, "b": long, "c": long, "d": long, "e": long, "f": long, "g": long, "h": long, "i": long}, CodeMessageTooLarge, "tags is"},
		{"tags within 8 KB", "tags", map[string]any{"a": long, "b": long, "c": long, "d": long}, "", ""},
		{"metadata not counted", "reported", map[string]any{"$metadata": big, "$version": 1}, "", ""},
		{"non-JSON value", "reported", map[string]any{"c": make(chan int)}, CodeArgumentInvalid, "not JSON"},
		{"unknown kind", "other", map[string]any{}, CodeServerError, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckLimits(tc.kind, tc.section)
			if ErrorCode(err) != tc.wantCode {
				t.Fatalf("err = %v, want code %q", err, tc.wantCode)
			}
			if err == nil {
				return
			}
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(e.Message, tc.wantIn) {
				t.Fatalf("err = %v, want a *Error mentioning %q", err, tc.wantIn)
			}
		})
	}
}

// TestCheckLimitsSize pins the size rule: keys + values, strings without
// control characters, numbers 8, booleans 4.
func TestCheckLimitsSize(t *testing.T) {
	// 32768 bytes exactly is allowed; one more is not.
	fill := func(extra int) map[string]any {
		m := map[string]any{"n": 1.5, "b": true, // 1+8, 1+4
			"t": strings.Repeat("y", 343+extra) + "\x01\u0090", // 1+343+extra: controls not counted
			"o": map[string]any{"k": strings.Repeat("z", 400)}} // 1+1+400
		for _, k := range []string{"a", "c", "d", "e", "f", "g", "h", "i"} {
			m[k] = strings.Repeat("x", 4000) // 8 × 4001
		}
		return m
	}
	if err := CheckLimits("reported", fill(0)); err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
	if err := CheckLimits("reported", fill(1)); ErrorCode(err) != CodeMessageTooLarge {
		t.Fatalf("one byte over: %v", err)
	}
}

func FuzzMergeSection(f *testing.F) {
	for _, tc := range mergeCases {
		f.Add(tc.section, tc.patch, tc.withVersion)
	}
	f.Fuzz(func(t *testing.T, sectionJSON, patchJSON string, withVersion bool) {
		var section, patch map[string]any
		if json.Unmarshal([]byte(sectionJSON), &section) != nil || json.Unmarshal([]byte(patchJSON), &patch) != nil || section == nil {
			return
		}
		before := StripMeta(section)
		raw := canonical(t, section)
		changed, err := MergeSection(section, patch, patchNow, 7, withVersion)
		_ = CheckLimits("desired", section)
		if err != nil {
			if canonical(t, section) != raw {
				t.Fatal("rejected patch changed the section")
			}
			return
		}
		after := StripMeta(section)
		if want := refMergePatch(StripMeta(before), patch); !reflect.DeepEqual(after, want) {
			t.Fatalf("merge result %s, RFC 7386 says %s", canonical(t, after), canonical(t, want))
		}
		if changed == reflect.DeepEqual(before, after) {
			t.Fatalf("changed = %v but data before %s after %s", changed, canonical(t, before), canonical(t, after))
		}
		if changed {
			meta, _ := section["$metadata"].(map[string]any)
			if meta == nil || meta["$lastUpdated"] != nowWire {
				t.Fatalf("root metadata not stamped: %s", canonical(t, section["$metadata"]))
			}
		}
	})
}

// refMergePatch is RFC 7386 MergePatch, written out plainly as a reference.
func refMergePatch(target any, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = refMergePatch(t[k], v)
		}
	}
	return t
}
