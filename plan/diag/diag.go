package diag

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Pos is a position in a source file. Line and Column are 1-based (Column
// counts characters, as yaml.v3 does); Byte is the 0-based byte offset. The
// zero Pos means "no position".
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// Range is a span of a source file; End is exclusive. A Range with only a
// Filename refers to the whole file (for example when it cannot be read).
type Range struct {
	Filename string `json:"filename"`
	Start    Pos    `json:"start"`
	End      Pos    `json:"end"`
}

// String formats the start of r as FILE:LINE:COL, leaving out the parts
// that are unknown.
func (r Range) String() string {
	switch {
	case r.Start.Line <= 0:
		return r.Filename
	case r.Start.Column <= 0:
		return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line)
	default:
		return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
	}
}

// Severity says whether a diagnostic makes its file unusable.
type Severity int

const (
	// Error means the file cannot be used until the problem is fixed.
	Error Severity = iota
	// Warning means the file is usable but probably not what was meant.
	Warning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// MarshalJSON encodes the severity as its name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON decodes a severity name.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	switch name {
	case "error":
		*s = Error
	case "warning":
		*s = Warning
	default:
		return fmt.Errorf("unknown severity %q", name)
	}
	return nil
}

// Diagnostic is one problem found in a source file.
type Diagnostic struct {
	Severity Severity `json:"severity"`
	// Summary says what is wrong, in one line.
	Summary string `json:"summary"`
	// Detail is the hint: what to do about it. It may be empty.
	Detail string `json:"detail"`
	// Path locates the value in the document, e.g. steps[1].rollout.batches[0].
	Path  string `json:"path"`
	Range Range  `json:"range"`
}

// Errorf returns an error diagnostic at r whose summary is formatted from
// format and args.
func Errorf(r Range, path, format string, args ...any) *Diagnostic {
	return &Diagnostic{Severity: Error, Summary: sprintf(format, args...), Path: bound(path, maxText), Range: r}
}

// Warningf is [Errorf] for warnings.
func Warningf(r Range, path, format string, args ...any) *Diagnostic {
	return &Diagnostic{Severity: Warning, Summary: sprintf(format, args...), Path: bound(path, maxText), Range: r}
}

// Hint sets the diagnostic's Detail and returns it, so a diagnostic can be
// built in one expression.
func (d *Diagnostic) Hint(format string, args ...any) *Diagnostic {
	if s, ok := oneString(format, args); ok {
		// A hint made elsewhere, whole: not a value quoted from the file.
		d.Detail = bound(s, maxText)
		return d
	}
	d.Detail = sprintf(format, args...)
	return d
}

// oneString is the text of Hint("%s", text).
func oneString(format string, args []any) (string, bool) {
	if format != "%s" || len(args) != 1 {
		return "", false
	}
	s, ok := args[0].(string)
	return s, ok
}

// Diagnostics quote what the file says, and a file may say a lot (a 1 MB
// key): a quoted value is cut to maxQuoted runes, and a whole summary,
// hint or path to maxText, so that output stays readable and small.
const (
	maxQuoted = 80
	maxText   = 400
)

// sprintf is fmt.Sprintf with long string arguments cut short.
func sprintf(format string, args ...any) string {
	args = append([]any(nil), args...) // the caller's slice stays as it was
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = bound(s, maxQuoted)
		}
	}
	return bound(fmt.Sprintf(format, args...), maxText)
}

// bound cuts s to about n runes, keeping its start and end, and says how
// long it was.
func bound(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	tail := n / 4
	return fmt.Sprintf("%s…%s (%d characters)", string(r[:n-tail]), string(r[len(r)-tail:]), len(r))
}

// Error formats the diagnostic as FILE:LINE:COL: SEVERITY: SUMMARY, so a
// single diagnostic can travel as an error.
func (d *Diagnostic) Error() string {
	return fmt.Sprintf("%s: %s: %s", d.Range, d.Severity, d.Summary)
}

// Diagnostics is a list of diagnostics. Its zero value is an empty list
// ready to use. It implements error so that a package can return it as a
// typed error (see [Diagnostics.Err]); callers recover it with errors.As.
type Diagnostics []*Diagnostic

// Append adds diagnostics to the list, skipping nils.
func (ds *Diagnostics) Append(d ...*Diagnostic) {
	for _, x := range d {
		if x != nil {
			*ds = append(*ds, x)
		}
	}
}

// Extend adds all of other to the list.
func (ds *Diagnostics) Extend(other Diagnostics) { ds.Append(other...) }

// HasErrors reports whether any diagnostic has severity [Error].
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Sort orders the list by file, line and column (keeping the order of
// diagnostics at the same place) and drops exact duplicates, which a
// walker can produce when two checks meet the same bad value.
func (ds *Diagnostics) Sort() {
	slices.SortStableFunc(*ds, func(a, b *Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.Range.Filename, b.Range.Filename),
			cmp.Compare(a.Range.Start.Line, b.Range.Start.Line),
			cmp.Compare(a.Range.Start.Column, b.Range.Start.Column),
		)
	})
	*ds = slices.CompactFunc(*ds, func(a, b *Diagnostic) bool { return *a == *b })
}

// Err returns the list as an error when it holds at least one error, and
// nil otherwise (warnings alone are not an error).
func (ds Diagnostics) Err() error {
	if !ds.HasErrors() {
		return nil
	}
	return ds
}

// Error renders the list as text without source snippets, one diagnostic
// (and its hint) per line.
func (ds Diagnostics) Error() string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.Error())
		if d.Detail != "" {
			b.WriteString(" (hint: ")
			b.WriteString(d.Detail)
			b.WriteString(")")
		}
	}
	return b.String()
}

// MarshalJSON encodes the list as a JSON array, never null.
func (ds Diagnostics) MarshalJSON() ([]byte, error) {
	if ds == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]*Diagnostic(ds))
}
