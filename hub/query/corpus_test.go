package query

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestCorpusParses parses every query of testdata/corpus.txt, the
// differential corpus the stores are tested with (storetest.RunQueries),
// and checks that its canonical text parses back to the same text.
func TestCorpusParses(t *testing.T) {
	f, err := os.Open("testdata/corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), MaxLength+1)
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
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
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 300 {
		t.Errorf("the corpus has %d queries; keep at least 300", n)
	}
}
