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
