package query

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLength is the longest query text, in bytes, the parser accepts. Azure
// rejects queries of about 8 200 characters and more.
const MaxLength = 8192

// MaxDepth is how deeply parentheses, NOT, unary minus and function calls
// may nest. Deeper input is a SyntaxError rather than a risk to the stack.
const MaxDepth = 64

// SyntaxError is a query syntax error at a byte offset of the query text.
type SyntaxError struct {
	Offset int    // byte offset into the query text
	Msg    string // what is wrong, readable by an operator
}

// Error returns "offset N: msg".
func (e *SyntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg) }

// Collection is what a query reads from.
type Collection string

// The collections of the IoT Hub query language.
const (
	Devices        Collection = "devices"
	DevicesModules Collection = "devices.modules"
	DevicesJobs    Collection = "devices.jobs"
)

// Query is a parsed SELECT statement.
type Query struct {
	Top     int          // TOP n, or -1 when absent
	Select  []Projection // nil for SELECT *
	From    Collection   // devices, devices.modules or devices.jobs
	Where   Expr         // nil when there is no WHERE clause (every document matches)
	GroupBy []Path       // GROUP BY paths, nil when absent
}

// Aggregate names, as stored in Projection.Agg.
const (
	AggCount = "COUNT"
	AggAvg   = "AVG"
	AggSum   = "SUM"
	AggMin   = "MIN"
	AggMax   = "MAX"
)

// Projection is one item of a SELECT list: a property path or an
// aggregate, with an optional AS name.
type Projection struct {
	Agg  string // "" for a plain path; otherwise AggCount, AggAvg, AggSum, AggMin or AggMax
	Path Path   // the projected path, or the aggregate's argument (no segments for COUNT())
	As   string // the AS name, "" when absent
	Pos  int    // byte offset of the projection
}

// Grouped reports whether the query aggregates: it has GROUP BY or an
// aggregate in its SELECT list, so its rows are groups, not documents.
func (q *Query) Grouped() bool {
	if len(q.GroupBy) > 0 {
		return true
	}
	for _, p := range q.Select {
		if p.Agg != "" {
			return true
		}
	}
	return false
}

// Keys returns the output key of each projection, in SELECT-list order:
// the AS name if given, else the last path segment, else "$1", "$2", ...
// numbering the unnamed aggregates. It is nil for SELECT *.
func (q *Query) Keys() []string {
	if q.Select == nil {
		return nil
	}
	keys := make([]string, len(q.Select))
	n := 0
	for i, p := range q.Select {
		switch {
		case p.As != "":
			keys[i] = p.As
		case p.Agg == "" && len(p.Path.Segments) > 0:
			keys[i] = p.Path.Segments[len(p.Path.Segments)-1]
		default:
			n++
			keys[i] = "$" + strconv.Itoa(n)
		}
	}
	return keys
}

// Expr is a node of a condition's syntax tree: All, Const, Path, Binary,
// Not, Neg, In or Call. Nodes are plain values so that stores can compile
// them to SQL with a type switch; Match defines what each one means.
type Expr interface {
	// Offset is the byte offset of the node in the query text.
	Offset() int
	// String is the node as canonical query text; parsing it gives the
	// same tree.
	String() string
	exprNode()
}

// All is the job condition "*": every document matches.
type All struct {
	Pos int
}

// Const is a literal: Value is nil (null), a bool, a float64 or a string,
// or Undefined is true for the literal undefined.
type Const struct {
	Value     any
	Undefined bool
	Pos       int
}

// Path is a property path rooted at the document, e.g. tags.location.region.
// The first segment of a top-level system field (deviceId, status, ...) is
// stored in its canonical spelling; the devices.jobs. prefix of a devices.jobs
// query is stripped. Segments are otherwise matched byte for byte.
type Path struct {
	Segments []string
	Pos      int
}

// Binary is a binary operation. Op is one of AND OR = != < > <= >= + - * / %
// ("<>" is stored as "!="). Pos is the offset of the operator.
type Binary struct {
	Op   string
	L, R Expr
	Pos  int
}

// Not is logical negation (NOT X).
type Not struct {
	X   Expr
	Pos int
}

// Neg is arithmetic negation (-X) of a non-literal; a minus sign before a
// number literal is folded into the Const.
type Neg struct {
	X   Expr
	Pos int
}

// In is X IN [List...], or X NIN [List...] when Negate is set. Pos is the
// offset of the IN or NIN keyword.
type In struct {
	X      Expr
	List   []Const
	Negate bool
	Pos    int
}

// Call is a function call. Name is the canonical upper-case name
// (STARTS_WITH and ENDS_WITH are stored as STARTSWITH and ENDSWITH).
type Call struct {
	Name string
	Args []Expr
	Pos  int
}

func (e All) Offset() int    { return e.Pos }
func (e Const) Offset() int  { return e.Pos }
func (e Path) Offset() int   { return e.Pos }
func (e Binary) Offset() int { return e.Pos }
func (e Not) Offset() int    { return e.Pos }
func (e Neg) Offset() int    { return e.Pos }
func (e In) Offset() int     { return e.Pos }
func (e Call) Offset() int   { return e.Pos }

func (All) exprNode()    {}
func (Const) exprNode()  {}
func (Path) exprNode()   {}
func (Binary) exprNode() {}
func (Not) exprNode()    {}
func (Neg) exprNode()    {}
func (In) exprNode()     {}
func (Call) exprNode()   {}

func (e All) String() string    { return "*" }
func (e Const) String() string  { return exprString(e, "") }
func (e Path) String() string   { return exprString(e, "") }
func (e Binary) String() string { return exprString(e, "") }
func (e Not) String() string    { return exprString(e, "") }
func (e Neg) String() string    { return exprString(e, "") }
func (e In) String() string     { return exprString(e, "") }
func (e Call) String() string   { return exprString(e, "") }

// Walk calls fn for e and, while fn returns true, for its children in
// source order. It lets stores check a tree before compiling it.
func Walk(e Expr, fn func(Expr) bool) {
	if e == nil || !fn(e) {
		return
	}
	switch e := e.(type) {
	case Binary:
		Walk(e.L, fn)
		Walk(e.R, fn)
	case Not:
		Walk(e.X, fn)
	case Neg:
		Walk(e.X, fn)
	case In:
		Walk(e.X, fn)
		for _, c := range e.List {
			Walk(c, fn)
		}
	case Call:
		for _, a := range e.Args {
			Walk(a, fn)
		}
	}
}

// String returns the query as canonical text: upper-case keywords, single
// spaces, single-quoted strings, parentheses only where needed, and paths
// of a devices.jobs query written with their devices.jobs. prefix, as Azure
// expects.
func (q *Query) String() string {
	var b strings.Builder
	pfx := ""
	if q.From == DevicesJobs {
		pfx = "devices.jobs."
	}
	b.WriteString("SELECT ")
	if q.Top >= 0 {
		b.WriteString("TOP ")
		b.WriteString(strconv.Itoa(q.Top))
		b.WriteByte(' ')
	}
	if q.Select == nil {
		b.WriteByte('*')
	}
	for i, p := range q.Select {
		if i > 0 {
			b.WriteString(", ")
		}
		switch p.Agg {
		case "":
			writePath(&b, p.Path, pfx)
		case AggCount:
			b.WriteString("COUNT()")
		default:
			b.WriteString(p.Agg)
			b.WriteByte('(')
			writePath(&b, p.Path, pfx)
			b.WriteByte(')')
		}
		if p.As != "" {
			b.WriteString(" AS ")
			b.WriteString(formatName(p.As))
		}
	}
	b.WriteString(" FROM ")
	b.WriteString(string(q.From))
	if _, all := q.Where.(All); q.Where != nil && !all {
		b.WriteString(" WHERE ")
		writeExpr(&b, q.Where, pfx)
	}
	for i, p := range q.GroupBy {
		if i == 0 {
			b.WriteString(" GROUP BY ")
		} else {
			b.WriteString(", ")
		}
		writePath(&b, p, pfx)
	}
	return b.String()
}

func exprString(e Expr, pfx string) string {
	var b strings.Builder
	writeExpr(&b, e, pfx)
	return b.String()
}

// Operator precedence, loosest first; the printer parenthesises a child
// only where the grammar would otherwise read the text differently.
const (
	precOr = iota + 1
	precAnd
	precNot
	precCmp
	precAdd
	precMul
	precNeg
	precPrimary
)

func precedence(e Expr) int {
	switch e := e.(type) {
	case Binary:
		switch e.Op {
		case "OR":
			return precOr
		case "AND":
			return precAnd
		case "+", "-":
			return precAdd
		case "*", "/", "%":
			return precMul
		default:
			return precCmp
		}
	case Not:
		return precNot
	case In:
		return precCmp
	case Neg:
		return precNeg
	}
	return precPrimary
}

// writeOperand writes e, in parentheses when its precedence is below min.
func writeOperand(b *strings.Builder, e Expr, min int, pfx string) {
	if precedence(e) < min {
		b.WriteByte('(')
		writeExpr(b, e, pfx)
		b.WriteByte(')')
		return
	}
	writeExpr(b, e, pfx)
}

func writeExpr(b *strings.Builder, e Expr, pfx string) {
	switch e := e.(type) {
	case nil:
		b.WriteString("undefined")
	case All:
		b.WriteByte('*')
	case Const:
		writeConst(b, e)
	case Path:
		writePath(b, e, pfx)
	case Binary:
		p := precedence(e)
		left, right := p, p+1 // left-associative
		if p == precCmp {
			left = p + 1 // comparisons do not chain
		}
		writeOperand(b, e.L, left, pfx)
		b.WriteByte(' ')
		b.WriteString(e.Op)
		b.WriteByte(' ')
		writeOperand(b, e.R, right, pfx)
	case Not:
		b.WriteString("NOT ")
		writeOperand(b, e.X, precNot, pfx)
	case Neg:
		b.WriteByte('-')
		if c, ok := e.X.(Const); ok && isNegativeNumber(c) {
			// "--5" would not parse; "-(-5)" does.
			b.WriteByte('(')
			writeConst(b, c)
			b.WriteByte(')')
			return
		}
		writeOperand(b, e.X, precPrimary, pfx)
	case In:
		writeOperand(b, e.X, precAdd, pfx)
		if e.Negate {
			b.WriteString(" NIN [")
		} else {
			b.WriteString(" IN [")
		}
		for i, c := range e.List {
			if i > 0 {
				b.WriteString(", ")
			}
			writeConst(b, c)
		}
		b.WriteByte(']')
	case Call:
		b.WriteString(e.Name)
		b.WriteByte('(')
		for i, a := range e.Args {
			if i > 0 {
				b.WriteString(", ")
			}
			writeExpr(b, a, pfx)
		}
		b.WriteByte(')')
	default:
		fmt.Fprintf(b, "<%T>", e)
	}
}

func isNegativeNumber(c Const) bool {
	f, ok := c.Value.(float64)
	return ok && !c.Undefined && math.Signbit(f)
}

func writeConst(b *strings.Builder, c Const) {
	if c.Undefined {
		b.WriteString("undefined")
		return
	}
	switch v := norm(c.Value).(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case float64:
		b.WriteString(formatNumber(v))
	case string:
		writeQuoted(b, v)
	default:
		fmt.Fprintf(b, "<%T>", v)
	}
}

// formatNumber writes integers without an exponent up to 1e21 and other
// numbers in the shortest form that reads back as the same float64.
func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// writeQuoted writes s single-quoted. Bytes are copied as they are (so
// invalid UTF-8 survives a round trip); quotes, backslashes and control
// characters are escaped.
func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
}

func writePath(b *strings.Builder, p Path, pfx string) {
	b.WriteString(pfx)
	for i, s := range p.Segments {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(formatName(s))
	}
}

// formatName writes a path segment or AS name bare when it lexes as a
// non-reserved identifier, and escaped as [[name]] otherwise.
func formatName(s string) string {
	if isIdentifier(s) && !isReserved(s) {
		return s
	}
	return "[[" + s + "]]"
}

func isIdentStart(r rune) bool { return r == '_' || r == '$' || unicode.IsLetter(r) }

func isIdentPart(r rune) bool {
	return isIdentStart(r) || r == '-' || unicode.IsDigit(r)
}

func isIdentifier(s string) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n <= 1 {
				return false
			}
		}
		if i == 0 && !isIdentStart(r) || i > 0 && !isIdentPart(r) {
			return false
		}
	}
	return s != ""
}

// reserved are the words that cannot be bare path segments or AS names:
// the keywords, the literals, the aggregates and the IS_* and *_WITH
// function names (the Azure Digital Twins reserved list, same engine
// lineage, plus NIN and UNDEFINED). Write [[group]] to use one as a name.
var reserved = map[string]bool{
	"ALL": true, "AND": true, "AS": true, "ASC": true, "AVG": true, "BY": true,
	"COUNT": true, "DESC": true, "DEVICES": true, "DEVICES_JOBS": true,
	"DEVICES_MODULES": true, "ENDS_WITH": true, "FALSE": true, "FROM": true,
	"GROUP": true, "IN": true, "MAX": true, "MIN": true, "NIN": true, "NOT": true,
	"NOT_IN": true, "NULL": true, "OR": true, "ORDER": true, "SELECT": true,
	"STARTS_WITH": true, "SUM": true, "TOP": true, "TRUE": true, "UNDEFINED": true,
	"WHERE": true, "IS_DEFINED": true, "IS_NULL": true, "IS_STRING": true,
	"IS_NUMBER": true, "IS_BOOL": true, "IS_OBJECT": true, "IS_ARRAY": true,
	"IS_PRIMITIVE": true,
}

func isReserved(s string) bool {
	if len(s) > 16 {
		return false
	}
	return reserved[strings.ToUpper(s)]
}

// systemFields maps the lower-case spelling of each top-level field of a
// twin, module twin or device-job record to its canonical spelling. These
// resolve case-insensitively (Azure's own docs write LastActivityTime);
// everything below the top level is case-sensitive.
var systemFields = func() map[string]string {
	m := map[string]string{}
	for _, f := range []string{
		// twins and module twins
		"deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason",
		"statusUpdateTime", "connectionState", "lastActivityTime",
		"cloudToDeviceMessageCount", "authenticationType", "x509Thumbprint",
		"modelId", "version", "tags", "properties", "capabilities",
		// device-job records (devices.jobs)
		"jobId", "jobType", "startTimeUtc", "endTimeUtc", "createdDateTimeUtc",
		"lastUpdatedDateTimeUtc", "outcome", "error",
	} {
		m[strings.ToLower(f)] = f
	}
	return m
}()

// canonicalSegments rewrites a system field's first segment to its
// canonical spelling.
func canonicalSegments(segs []string) []string {
	if len(segs) > 0 {
		if c, ok := systemFields[strings.ToLower(segs[0])]; ok {
			segs[0] = c
		}
	}
	return segs
}
