package plan

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. The properties: it never
// panics, it returns a plan exactly when there are no errors, and every
// diagnostic points inside the file.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/valid/*.yaml", "testdata/invalid/*.yaml", "testdata/render/*.txt", "../examples/lock-door.yaml"} {
		names, _ := filepath.Glob(pattern)
		for _, name := range names {
			if src, err := os.ReadFile(name); err == nil {
				f.Add(src)
			}
		}
	}
	f.Add([]byte("a: &x [*x]"))
	f.Add([]byte("steps: [{query: \"\\u00e9@\"}]"))
	opts := testOptions()
	f.Fuzz(func(t *testing.T, src []byte) {
		p, ds := Parse("f.yaml", src, opts...)
		if (p == nil) != ds.HasErrors() {
			t.Fatalf("plan %v with diagnostics %v", p != nil, ds)
		}
		lines := 1
		for _, c := range src {
			if c == '\n' {
				lines++
			}
		}
		for _, d := range ds {
			s, e := d.Range.Start, d.Range.End
			if s.Line < 1 || s.Line > lines || s.Column < 1 || s.Byte < 0 || s.Byte > len(src) || e.Byte > len(src) {
				t.Fatalf("diagnostic %q at bad position %+v-%+v (file has %d lines, %d bytes)", d.Summary, s, e, lines, len(src))
			}
		}
		if p != nil {
			_ = p.Order()
		}
	})
}

// FuzzParseVarFile feeds arbitrary bytes to ParseVarFile. The properties:
// it never panics, it returns variables exactly when there are no errors,
// each with a valid name, and every diagnostic points inside the file.
func FuzzParseVarFile(f *testing.F) {
	for _, seed := range []string{"version: 2.4.1\nfloor: 3\ncanary: true\n", "", "- a\n", "a: {b: 1}\n", "a:\n", "9: 1\n", "a: 1\na: 2\n", "a: [1\n", "a: &x 1\nb: *x\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		vars, ds := ParseVarFile("v.yaml", src)
		if (vars == nil) != ds.HasErrors() {
			t.Fatalf("variables %v with diagnostics %v", vars, ds)
		}
		for name := range vars {
			if !ValidVarName(name) {
				t.Fatalf("variable %q has an invalid name", name)
			}
		}
		for _, d := range ds {
			if s := d.Range.Start; s.Line < 1 || s.Column < 1 || s.Byte < 0 || s.Byte > len(src) || d.Range.End.Byte > len(src) {
				t.Fatalf("diagnostic %q at bad position %+v", d.Summary, d.Range)
			}
		}
	})
}
