package query

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, that errors are *SyntaxError
// with an offset inside the text, and that a parsed query's canonical text
// parses back to the same text and selects the same rows.
func FuzzParse(f *testing.F) {
	for _, tc := range parseOK {
		f.Add(tc.src)
	}
	for _, tc := range parseErr {
		if len(tc.src) <= MaxLength {
			f.Add(tc.src)
		}
	}
	for _, tc := range condOK {
		f.Add("SELECT * FROM devices WHERE " + tc.src)
	}
	for _, tc := range matchCases {
		f.Add("SELECT deviceId, COUNT() AS n FROM devices WHERE " + tc.cond + " GROUP BY deviceId")
	}
	for _, q := range corpus(f) {
		f.Add(q)
	}
	docs := fleet(f)
	f.Fuzz(func(t *testing.T, src string) {
		q, err := Parse(src)
		if err != nil {
			checkSyntaxError(t, src, err)
			return
		}
		s := q.String()
		if len(s) > MaxLength {
			return // canonical spacing can push a long query over the limit
		}
		q2, err := Parse(s)
		if err != nil {
			t.Fatalf("canonical text %q of %q does not parse: %v", s, src, err)
		}
		if s2 := q2.String(); s2 != s {
			t.Fatalf("String() not stable:\n%q\n%q\nfrom %q", s, s2, src)
		}
		rows, err := Eval(q, docs)
		if err != nil {
			t.Fatalf("Eval(%q): %v", src, err)
		}
		rows2, err := Eval(q2, docs)
		if err != nil || len(rows) != len(rows2) {
			t.Fatalf("Eval of %q gives %d rows, of %q %d rows (%v)", src, len(rows), s, len(rows2), err)
		}
	})
}

// FuzzParseCondition is FuzzParse for job conditions, comparing Match of
// the condition and of its canonical text over the fixture fleet.
func FuzzParseCondition(f *testing.F) {
	for _, tc := range condOK {
		f.Add(tc.src)
	}
	for _, tc := range matchCases {
		f.Add(tc.cond)
	}
	for _, tc := range parseErr {
		if len(tc.src) <= MaxLength {
			f.Add(tc.src)
		}
	}
	docs := fleet(f)
	f.Fuzz(func(t *testing.T, src string) {
		e, err := ParseCondition(src)
		if err != nil {
			checkSyntaxError(t, src, err)
			return
		}
		s := e.String()
		if len(s) > MaxLength {
			return
		}
		e2, err := ParseCondition(s)
		if err != nil {
			t.Fatalf("canonical text %q of %q does not parse: %v", s, src, err)
		}
		if s2 := e2.String(); s2 != s {
			t.Fatalf("String() not stable:\n%q\n%q\nfrom %q", s, s2, src)
		}
		for _, d := range docs {
			if Match(e, d) != Match(e2, d) {
				t.Fatalf("%q and its canonical text %q disagree on %v", src, s, d["deviceId"])
			}
		}
	})
}

func checkSyntaxError(t *testing.T, src string, err error) {
	t.Helper()
	se, ok := errors.AsType[*SyntaxError](err)
	if !ok {
		t.Fatalf("Parse(%q) error %v is %T, want *SyntaxError", src, err, err)
	}
	if se.Offset < 0 || se.Offset > len(src) || se.Msg == "" {
		t.Fatalf("Parse(%q) error %q at offset %d outside the text (length %d)", src, se.Msg, se.Offset, len(src))
	}
}
