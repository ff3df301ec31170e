package diag

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText renders diags for a human reader:
//
//	plan.yaml:7:5: error: unknown field "methd"
//	    7 |     methd:
//	      |     ^^^^^
//	  hint: did you mean "method"?
//
// The source line and caret are printed when sources holds the file's
// bytes (keyed by Range.Filename) and the position is inside it. The caret
// line copies the tabs of the source line so that it stays aligned.
func WriteText(w io.Writer, diags Diagnostics, sources map[string][]byte) error {
	var b bytes.Buffer
	for _, d := range diags {
		fmt.Fprintf(&b, "%s: %s: %s\n", d.Range, d.Severity, d.Summary)
		writeSnippet(&b, d.Range, sources[d.Range.Filename])
		if d.Detail != "" {
			fmt.Fprintf(&b, "  hint: %s\n", strings.ReplaceAll(d.Detail, "\n", "\n        "))
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// snippetWidth bounds the source shown for a diagnostic: a line longer
// than this (a 1 MB key, a minified value) is shown as a window around
// the column, so output stays readable and small.
const snippetWidth = 120

func writeSnippet(b *bytes.Buffer, r Range, src []byte) {
	if src == nil || r.Start.Line <= 0 {
		return
	}
	text, ok := sourceLine(src, r.Start.Line)
	if !ok {
		return
	}
	line := []rune(strings.TrimRight(text, "\r"))
	col := max(r.Start.Column, 1)
	width := 1
	if r.End.Line == r.Start.Line && r.End.Column > col {
		width = r.End.Column - col
	}
	// Never underline past the end of the line.
	if rest := len(line) - (col - 1); rest > 0 && width > rest {
		width = rest
	}
	// The window: the whole line when it fits, else snippetWidth runes
	// around the column, with … where it was cut.
	from, to, lead, tail := 0, len(line), "", ""
	if len(line) > snippetWidth {
		from = max(0, min(col-1-snippetWidth/2, len(line)-snippetWidth))
		to = from + snippetWidth
		if from > 0 {
			lead = "…"
		}
		if to < len(line) {
			tail = "…"
		}
		width = min(width, to-(col-1))
	}
	gutter := fmt.Sprintf("%5d | ", r.Start.Line)
	b.WriteString(gutter + lead + string(line[from:to]) + tail + "\n")

	var caret strings.Builder
	caret.WriteString(strings.Repeat(" ", len(gutter)-2))
	caret.WriteString("| ")
	if lead != "" {
		caret.WriteString(" ")
	}
	for i := from; i < col-1 && i < to; i++ {
		if line[i] == '\t' {
			caret.WriteByte('\t')
		} else {
			caret.WriteByte(' ')
		}
	}
	caret.WriteString(strings.Repeat("^", max(width, 1)))
	b.WriteString(caret.String())
	b.WriteByte('\n')
}

// sourceLine returns the 1-based line n of src without its newline.
func sourceLine(src []byte, n int) (string, bool) {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(src, '\n')
		if j < 0 {
			return "", false
		}
		src = src[j+1:]
	}
	if j := bytes.IndexByte(src, '\n'); j >= 0 {
		src = src[:j]
	}
	return string(src), true
}

// WriteJSON renders diags as an indented JSON array (never null), one
// object per diagnostic:
//
//	{"severity","summary","detail","path","range":{"filename","start":{"line","column","byte"},"end":{…}}}
func WriteJSON(w io.Writer, diags Diagnostics) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(diags)
}
