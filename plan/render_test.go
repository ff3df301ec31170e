package plan

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/plan/diag"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/render")

// section is one "-- name --" part of a golden file.
type section struct {
	name string
	body string
}

// readSections splits a golden file into its leading comment and sections.
func readSections(data string) (comment string, secs []section) {
	lines := strings.SplitAfter(data, "\n")
	cur := -1
	var b strings.Builder
	flush := func() {
		if cur < 0 {
			comment = b.String()
		} else {
			secs[cur].body = b.String()
		}
		b.Reset()
	}
	for _, l := range lines {
		t := strings.TrimRight(l, "\n")
		if strings.HasPrefix(t, "-- ") && strings.HasSuffix(t, " --") && len(t) > 6 {
			flush()
			secs = append(secs, section{name: t[3 : len(t)-3]})
			cur = len(secs) - 1
			continue
		}
		b.WriteString(l)
	}
	flush()
	return comment, secs
}

func writeSections(comment string, secs []section) string {
	var b strings.Builder
	b.WriteString(comment)
	for _, s := range secs {
		b.WriteString("-- " + s.name + " --\n")
		b.WriteString(s.body)
	}
	return b.String()
}

func TestRenderGolden(t *testing.T) {
	for _, name := range files(t, "testdata/render/*.txt") {
		t.Run(filepath.Base(name), func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			comment, secs := readSections(string(data))
			get := func(n string) *section {
				for i := range secs {
					if secs[i].name == n {
						return &secs[i]
					}
				}
				t.Fatalf("%s: no %q section", name, n)
				return nil
			}
			input := get("input.yaml")
			src := []byte(input.body)
			_, ds := Parse("input.yaml", src, testOptions()...)
			var text, js bytes.Buffer
			if err := diag.WriteText(&text, ds, map[string][]byte{"input.yaml": src}); err != nil {
				t.Fatal(err)
			}
			if err := diag.WriteJSON(&js, ds); err != nil {
				t.Fatal(err)
			}
			if *update {
				get("text").body = text.String()
				get("json").body = js.String()
				if err := os.WriteFile(name, []byte(writeSections(comment, secs)), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got, want := text.String(), get("text").body; got != want {
				t.Errorf("text rendering differs (run go test ./plan -update and review the diff)\ngot:\n%s\nwant:\n%s", got, want)
			}
			if got, want := js.String(), get("json").body; got != want {
				t.Errorf("JSON rendering differs (run go test ./plan -update and review the diff)\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
