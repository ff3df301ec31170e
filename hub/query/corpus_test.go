package query

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// corpus returns the queries of testdata/corpus.txt, the differential
// corpus the stores are tested with (storetest.RunQueries).
func corpus(tb testing.TB) []string {
	tb.Helper()
	f, err := os.Open("testdata/corpus.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), MaxLength+1)
	var out []string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestCorpusParses parses every query of the corpus and checks that its
// canonical text parses back to the same text.
func TestCorpusParses(t *testing.T) {
	qs := corpus(t)
	for _, line := range qs {
		q, err := Parse(line)
		if err != nil {
			t.Errorf("Parse(%q): %v", line, err)
			continue
		}
		s := q.String()
		q2, err := Parse(s)
		if err != nil {
			t.Errorf("canonical text %q of %q does not parse: %v", s, line, err)
			continue
		}
		if s2 := q2.String(); s2 != s {
			t.Errorf("String() not stable: %q then %q", s, s2)
		}
	}
	if len(qs) < 300 {
		t.Errorf("the corpus has %d queries; keep at least 300", len(qs))
	}
}
