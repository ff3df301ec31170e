package diag

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSuggest(t *testing.T) {
	t.Parallel()
	cands := []string{"name", "method", "twin", "maxExecutionTime"}
	tests := []struct{ name, in, want string }{
		{"one deletion", "methd", "method"},
		{"transposition", "mehtod", "method"},
		{"case only", "MaxExecutionTime", "maxExecutionTime"},
		{"too far", "payload", ""},
		{"exact is not a suggestion", "name", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Suggest(tt.in, cands); got != tt.want {
				t.Errorf("Suggest(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDiagnosticsSortErrAndDedupe(t *testing.T) {
	t.Parallel()
	var ds Diagnostics
	if ds.Err() != nil || ds.HasErrors() {
		t.Fatal("zero Diagnostics must have no error")
	}
	at := func(file string, line, col int) Range {
		return Range{Filename: file, Start: Pos{Line: line, Column: col}}
	}
	ds.Append(
		Errorf(at("b.yaml", 1, 1), "", "b"),
		Errorf(at("a.yaml", 3, 2), "", "a3"),
		Warningf(at("a.yaml", 1, 9), "", "w"),
		nil,
		Errorf(at("a.yaml", 3, 2), "", "a3"),
		Errorf(at("a.yaml", 3, 1), "", "a3c1"),
	)
	ds.Sort()
	var got []string
	for _, d := range ds {
		got = append(got, d.Summary)
	}
	if want := "w a3c1 a3 b"; strings.Join(got, " ") != want {
		t.Fatalf("sorted = %v, want %s", got, want)
	}
	err := ds.Err()
	var back Diagnostics
	if !errors.As(err, &back) || len(back) != 4 {
		t.Fatalf("Err() = %v, want Diagnostics", err)
	}
	if !strings.Contains(err.Error(), "a.yaml:3:1: error: a3c1") {
		t.Errorf("Error() = %q", err.Error())
	}
	warnOnly := Diagnostics{Warningf(at("x", 1, 1), "", "w")}
	if warnOnly.Err() != nil {
		t.Error("warnings alone must not be an error")
	}
}

func TestWriteText(t *testing.T) {
	t.Parallel()
	src := []byte("steps:\n\t- methd: x\n")
	ds := Diagnostics{
		{Severity: Error, Summary: `unknown field "methd"`, Detail: `did you mean "method"?`,
			Range: Range{Filename: "p.yaml", Start: Pos{Line: 2, Column: 4, Byte: 10}, End: Pos{Line: 2, Column: 9, Byte: 15}}},
		{Severity: Warning, Summary: "no position", Range: Range{Filename: "p.yaml"}},
	}
	var b bytes.Buffer
	if err := WriteText(&b, ds, map[string][]byte{"p.yaml": src}); err != nil {
		t.Fatal(err)
	}
	want := "p.yaml:2:4: error: unknown field \"methd\"\n" +
		"    2 | \t- methd: x\n" +
		"      | \t  ^^^^^\n" +
		"  hint: did you mean \"method\"?\n" +
		"p.yaml: warning: no position\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestWriteJSON(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := WriteJSON(&b, nil); err != nil || strings.TrimSpace(b.String()) != "[]" {
		t.Fatalf("nil list = %q, %v; want []", b.String(), err)
	}
	b.Reset()
	d := Errorf(Range{Filename: "f", Start: Pos{1, 2, 1}, End: Pos{1, 3, 2}}, "steps[0]", "bad").Hint("fix")
	if err := WriteJSON(&b, Diagnostics{d}); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := `[{"detail":"fix","path":"steps[0]","range":{"end":{"byte":2,"column":3,"line":1},"filename":"f","start":{"byte":1,"column":2,"line":1}},"severity":"error","summary":"bad"}]`
	if re, _ := json.Marshal(got); string(re) != want {
		t.Errorf("json = %s\nwant   %s", re, want)
	}
	var back Diagnostics
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || *back[0] != *d {
		t.Errorf("round trip = %+v, %v", back, err)
	}
}

// summaries returns "line:col summary" for each diagnostic.
func summaries(ds Diagnostics) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Range.String()+" "+d.Summary+" | "+d.Detail)
	}
	return out
}

func TestDecodeProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []string // substrings, in order, one per diagnostic
	}{
		{"empty", "", nil},
		{"comment only", "# nothing\n", nil},
		{"syntax", "a: [1, 2\nb: 3\n", []string{"f:1:1 invalid YAML: did not find expected ',' or ']'"}},
		{"syntax later line", "a:\n  b: 1\n c: 2\n", []string{"f:2:1 invalid YAML"}},
		{"tab", "a:\n\tb: 1\n", []string{"f:2:1 invalid YAML: found character that cannot start any token | YAML does not allow tabs"}},
		{"anchor and alias", "a: &x 1\nb: *x\n", []string{"f:1:4 YAML anchors are not supported (&x)", "f:2:4 YAML aliases are not supported (*x)"}},
		{"merge", "a: &x {k: 1}\nb:\n  <<: *x\n", []string{"f:1:4 YAML anchors", "f:3:3 YAML merge keys (<<) are not supported"}},
		{"custom tag", "a: !secret xyz\n", []string{"f:1:4 unsupported YAML tag !secret"}},
		{"two documents", "a: 1\n---\nb: 2\n", []string{"f:2:1 only one YAML document"}},
		{"control character", "a: \"x\x01\"", []string{"f:1:1 invalid YAML: control characters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := Decode("f", []byte(tt.src))
			got := summaries(doc.Diags)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d diagnostics %q, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("diagnostic %d = %q, want it to contain %q", i, got[i], w)
				}
			}
			if tt.want == nil && doc.Root != nil && tt.src == "" {
				t.Error("empty document must have a nil Root")
			}
		})
	}
}

func TestObjectWalk(t *testing.T) {
	t.Parallel()
	src := "name: x\nmethd: 1\nname: y\nlist: {a: 1}\n"
	doc := Decode("f", []byte(src))
	obj, ok := doc.Root.Object("name", "method", "list")
	if !ok {
		t.Fatal("Object failed")
	}
	if got, _ := obj.Get("name").Text(); got != "x" {
		t.Errorf("name = %q, want the first value", got)
	}
	if _, ok := obj.Get("list").Items(); ok {
		t.Error("Items on a mapping must fail")
	}
	if obj.Require("method", "add it") != nil {
		t.Error("Require of an absent key must return nil")
	}
	want := []string{
		`f:1:1 missing required field "method" | add it`,
		`f:2:1 unknown field "methd" | did you mean "method"?`,
		`f:3:1 duplicate field "name" | "name" is already set at line 1; remove one of them`,
		`f:4:7 expected a list, got an object | write a list as [a, b] or one "- item" per line`,
	}
	doc.Diags.Sort()
	got := summaries(doc.Diags)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p := obj.Get("list").Path; p != "list" {
		t.Errorf("path = %q", p)
	}
}

func TestUnknownFieldListsAllowed(t *testing.T) {
	t.Parallel()
	doc := Decode("f", []byte("zzzzzz: 1\n"))
	doc.Root.Object("alpha", "beta")
	if len(doc.Diags) != 1 || doc.Diags[0].Detail != "allowed fields: alpha, beta" {
		t.Errorf("got %q", summaries(doc.Diags))
	}
}

func TestScalars(t *testing.T) {
	t.Parallel()
	type result struct {
		v   any
		err string
	}
	read := map[string]func(*Node) (any, bool){
		"text":     func(n *Node) (any, bool) { return n.Text() },
		"int":      func(n *Node) (any, bool) { return n.Int() },
		"bool":     func(n *Node) (any, bool) { return n.Bool() },
		"float":    func(n *Node) (any, bool) { return n.Float() },
		"duration": func(n *Node) (any, bool) { return n.Duration() },
		"fraction": func(n *Node) (any, bool) { return n.Fraction() },
		"scalar":   func(n *Node) (any, bool) { return n.Scalar() },
	}
	tests := []struct {
		name, kind, yaml string
		want             result
	}{
		{"string", "text", `"x"`, result{v: "x"}},
		{"timestamp as text", "text", `2026-01-01T00:00:00Z`, result{v: "2026-01-01T00:00:00Z"}},
		{"number is not text", "text", `43`, result{err: `expected a string, got an integer | quote it to make it a string: "43"`}},
		{"null is not text", "text", `~`, result{err: `expected a string, got null | give a value`}},
		{"list is not text", "text", `[a]`, result{err: `expected a string, got a list`}},
		{"int", "int", `42`, result{v: 42}},
		{"hex int", "int", `0x10`, result{v: 16}},
		{"string is not int", "int", `"42"`, result{err: `expected an integer, got a string`}},
		{"float is not int", "int", `4.5`, result{err: `expected an integer, got a number`}},
		{"huge int", "int", `99999999999999999999999`, result{err: `expected an integer, got a number`}},
		{"bool", "bool", `true`, result{v: true}},
		{"yes is a string in yaml 1.2", "bool", `yes`, result{err: `expected true or false, got a string`}},
		{"float", "float", `1.5`, result{v: 1.5}},
		{"inf", "float", `.inf`, result{err: `.inf is not a finite number`}},
		{"seconds", "duration", `3600`, result{v: time.Hour}},
		{"go duration", "duration", `"1h30m"`, result{v: 90 * time.Minute}},
		{"bad duration", "duration", `10 minutes`, result{err: `invalid duration "10 minutes" | use a number of seconds`}},
		{"negative", "duration", `-5s`, result{err: `duration -5s is negative`}},
		{"float seconds", "duration", `1.5`, result{err: `expected a duration, got a number`}},
		{"overflow seconds", "duration", `9223372036854775807`, result{err: `invalid duration`}},
		{"percent", "fraction", `2%`, result{v: 0.02}},
		{"decimal percent", "fraction", `"0.5%"`, result{v: 0.005}},
		{"fraction", "fraction", `0.25`, result{v: 0.25}},
		{"whole fraction", "fraction", `1`, result{v: 1.0}},
		{"percent over 100", "fraction", `150%`, result{err: `percentage 150% is out of range`}},
		{"number over 1", "fraction", `2`, result{err: `fraction 2 is out of range | fractions are between 0 and 1; did you mean "2%"?`}},
		{"no percent sign", "fraction", `two`, result{err: `invalid percentage "two"`}},
		{"nan percent", "fraction", `NaN%`, result{err: `invalid percentage`}},
		{"scalar of number", "scalar", `43`, result{v: "43"}},
		{"scalar of map", "scalar", `{}`, result{err: "expected a string, number or boolean, got an object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := Decode("f", []byte("v: "+tt.yaml+"\n"))
			obj, _ := doc.Root.Object("v")
			v, ok := read[tt.kind](obj.Get("v"))
			if tt.want.err == "" {
				if !ok || len(doc.Diags) != 0 || v != tt.want.v {
					t.Fatalf("got %v (%T), %v, %q; want %v", v, v, ok, summaries(doc.Diags), tt.want.v)
				}
				return
			}
			if ok || len(doc.Diags) != 1 {
				t.Fatalf("got %v, %v, %q; want error %q", v, ok, summaries(doc.Diags), tt.want.err)
			}
			if got := summaries(doc.Diags)[0]; !strings.Contains(got, tt.want.err) {
				t.Errorf("diagnostic %q does not contain %q", got, tt.want.err)
			}
			if doc.Diags[0].Path != "v" || doc.Diags[0].Range.Start.Line != 1 || doc.Diags[0].Range.Start.Column != 4 {
				t.Errorf("diagnostic at %s path %q, want f:1:4 path v", doc.Diags[0].Range, doc.Diags[0].Path)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	doc := Decode("f", []byte("v: {a: [1, 'x', true, null, {b: 2.5}], t: 2026-01-01T00:00:00Z}\n"))
	obj, _ := doc.Root.Object("v")
	v, ok := obj.Get("v").JSON()
	if !ok || len(doc.Diags) != 0 {
		t.Fatalf("JSON failed: %q", summaries(doc.Diags))
	}
	got, _ := json.Marshal(v)
	if want := `{"a":[1,"x",true,null,{"b":2.5}],"t":"2026-01-01T00:00:00Z"}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}

	doc = Decode("f", []byte("v: {a: 1, a: 2, b: .nan}\n"))
	obj, _ = doc.Root.Object("v")
	if _, ok := obj.Get("v").JSON(); ok {
		t.Error("JSON with problems must fail")
	}
	if got := summaries(doc.Diags); len(got) != 2 || !strings.Contains(got[0], `duplicate field "a"`) || !strings.Contains(got[1], "finite") {
		t.Errorf("got %q", got)
	}
}

func TestValuePos(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		off  int // offset into the decoded value
		want string
	}{
		{"plain", "q: deviceId = 'x'\n", 9, "f:1:13"},
		{"plain start", "q: abc\n", 0, "f:1:4"},
		{"double quoted", `q: "deviceId IN ['a']"` + "\n", 9, "f:1:14"},
		{"double quoted escape", `q: "a\tb\u00e9c"` + "\n", 5, "f:1:15"},
		{"single quoted", "q: 'a = ''x'' AND'\n", 10, "f:1:17"},
		{"unicode before", "q: \"é = x\"\n", 5, "f:1:9"},
		{"literal block", "q: |\n  first line\n  second @\n", 18, "f:3:10"},
		{"folded block", "q: >\n  first\n  second @\n", 13, "f:3:10"},
		{"plain multi-line", "q: first\n  second @\n", 13, "f:2:10"},
		{"nested literal", "a:\n  q: |-\n    x = 1\n    AND y\nb: 2\n", 10, "f:4:9"},
		{"end", "q: abc # c\n", 3, "f:1:7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := Decode("f", []byte(tt.src))
			if doc.Diags.HasErrors() {
				t.Fatal(summaries(doc.Diags))
			}
			n := findKey(doc.Root, "q")
			p := n.ValuePos(tt.off)
			got := Range{Filename: "f", Start: p}.String()
			if got != tt.want {
				t.Errorf("ValuePos(%d) of %q = %s, want %s", tt.off, n.YAML.Value, got, tt.want)
			}
			// The byte offset must agree with the line and column.
			if want := doc.posAt(p.Line, p.Column); want != p {
				t.Errorf("pos %+v inconsistent, want %+v", p, want)
			}
		})
	}
}

func findKey(n *Node, key string) *Node {
	pairs, _ := n.Pairs()
	for _, p := range pairs {
		if p.Key == key {
			return p.Value
		}
		if p.Value.YAML.Kind == 4 {
			if f := findKey(p.Value, key); f != nil {
				return f
			}
		}
	}
	return nil
}

func TestRanges(t *testing.T) {
	t.Parallel()
	doc := Decode("f", []byte("a: \"quoted\"\nb: plain\nc: [1, 2]\n"))
	obj, _ := doc.Root.Object("a", "b", "c")
	for key, want := range map[string][2]int{"a": {4, 12}, "b": {4, 9}, "c": {4, 9}} {
		r := obj.Get(key).Range()
		if r.Start.Column != want[0] || r.End.Column != want[1] {
			t.Errorf("%s: columns %d-%d, want %d-%d", key, r.Start.Column, r.End.Column, want[0], want[1])
		}
	}
}

// TestHugeInputStaysSmall: a diagnostic about a value on a 1 MB line, or
// quoting a 1 MB value, renders as a bounded window around its column
// and a shortened quote, in text and JSON alike.
func TestHugeInputStaysSmall(t *testing.T) {
	huge := strings.Repeat("k", 1_000_000)
	for name, tc := range map[string]struct {
		line string
		col  int
	}{
		"value at the start": {huge + ": 1", 1},
		"value at the end":   {"key: " + huge + "!", 1_000_006},
		"in the middle":      {huge[:500_000] + " x " + huge[:500_000], 500_002},
	} {
		t.Run(name, func(t *testing.T) {
			src := []byte("version: 1\n" + tc.line + "\n")
			r := Range{Filename: "p.yaml", Start: Pos{Line: 2, Column: tc.col}, End: Pos{Line: 2, Column: tc.col + 1}}
			ds := Diagnostics{Errorf(r, "steps[0]."+huge, "unknown field %q", huge).Hint("did you mean %q?", huge)}
			var text, js bytes.Buffer
			if err := WriteText(&text, ds, map[string][]byte{"p.yaml": src}); err != nil {
				t.Fatal(err)
			}
			if err := WriteJSON(&js, ds); err != nil {
				t.Fatal(err)
			}
			if text.Len() > 2000 || js.Len() > 2000 {
				t.Fatalf("text %d bytes, JSON %d bytes:\n%.600s", text.Len(), js.Len(), text.String())
			}
			lines := strings.Split(text.String(), "\n")
			src2, caret := lines[1], lines[2]
			at := strings.IndexRune(caret, '^')
			if at < 0 || at >= len(src2) {
				t.Fatalf("no caret under the snippet:\n%s\n%s", src2, caret)
			}
			// The caret points at the rune of the column.
			want := []rune(tc.line)[tc.col-1]
			got := []rune(src2)[len([]rune(caret[:at]))]
			if got != want {
				t.Errorf("the caret points at %q, want %q:\n%s\n%s", got, want, src2, caret)
			}
			if !strings.Contains(ds[0].Summary, "(1000000 characters)") {
				t.Errorf("summary %q does not say how long the value was", ds[0].Summary)
			}
		})
	}
}
