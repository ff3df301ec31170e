package query

import (
	"fmt"
	"math"
	"strings"
)

// Parse parses a whole query:
//
//	SELECT [TOP n] * | projection, ... FROM devices | devices.modules | devices.jobs
//	[WHERE condition] [GROUP BY path, ...]
//
// Errors are *SyntaxError.
func Parse(src string) (q *Query, err error) {
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	defer p.recover(&err)
	q = p.parseQuery()
	return q, nil
}

// ParseCondition parses the WHERE part of a query alone, as a job's
// queryCondition is written. "*" (spaces around it allowed) means every
// device and gives All. Errors are *SyntaxError.
func ParseCondition(src string) (e Expr, err error) {
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	defer p.recover(&err)
	t := p.peek()
	if t.kind == tPunct && t.text == "*" && p.peekN(1).kind == tEOF {
		return All{Pos: t.pos}, nil
	}
	switch {
	case t.kind == tEOF:
		p.fail(t.pos, "the condition is empty; write * to select every device")
	case isKw(t, "SELECT"):
		p.fail(t.pos, "expected a condition, found SELECT; a job condition is only the part after WHERE")
	}
	e = p.parseOr()
	p.expectEOF("expected AND, OR or end of condition, found %s")
	p.checkPrefixes(Devices)
	return e, nil
}

type parser struct {
	src      string
	toks     []token
	i        int
	depth    int
	prefixes []prefixUse // paths written with a devices.jobs. or devices.modules. prefix
}

type prefixUse struct {
	coll Collection
	pos  int
}

// syntaxPanic carries a SyntaxError from deep in the recursive descent up
// to Parse; no other panic is recovered.
type syntaxPanic struct{ err *SyntaxError }

func newParser(src string) (*parser, error) {
	if len(src) > MaxLength {
		return nil, &SyntaxError{Offset: MaxLength, Msg: fmt.Sprintf("the query is %d bytes long; the limit is %d", len(src), MaxLength)}
	}
	return &parser{src: src, toks: lex(src)}, nil
}

func (p *parser) recover(err *error) {
	if r := recover(); r != nil {
		sp, ok := r.(syntaxPanic)
		if !ok {
			panic(r)
		}
		*err = sp.err
	}
}

func (p *parser) fail(pos int, format string, args ...any) {
	panic(syntaxPanic{&SyntaxError{Offset: pos, Msg: fmt.Sprintf(format, args...)}})
}

// peek returns the next token; reaching a lexical error reports it.
func (p *parser) peek() token { return p.peekN(0) }

func (p *parser) peekN(n int) token {
	k := min(p.i+n, len(p.toks)-1)
	t := p.toks[k]
	if t.kind == tErr && n == 0 {
		p.fail(t.pos, "%s", t.msg)
	}
	return t
}

func (p *parser) next() token {
	t := p.peek()
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// describe names a token for "found X" in messages.
func (p *parser) describe(t token) string {
	switch t.kind {
	case tEOF, tErr:
		return "end of query"
	case tNumber:
		return "number " + truncate(t.text)
	case tString:
		return "string " + truncate(t.text)
	}
	return "'" + truncate(t.text) + "'"
}

func truncate(s string) string {
	if len(s) > 24 {
		return s[:21] + "..."
	}
	return s
}

func isKw(t token, kw string) bool { return t.kind == tIdent && strings.EqualFold(t.text, kw) }

func isPunct(t token, s string) bool { return t.kind == tPunct && t.text == s }

func (p *parser) expectPunct(s, format string) token {
	t := p.peek()
	if !isPunct(t, s) {
		p.fail(t.pos, format, p.describe(t))
	}
	return p.next()
}

func (p *parser) expectEOF(format string) {
	if t := p.peek(); t.kind != tEOF {
		p.fail(t.pos, format, p.describe(t))
	}
}

// enter counts one more level of nesting, opened by the token at pos.
func (p *parser) enter(pos int) {
	p.depth++
	if p.depth > MaxDepth {
		p.fail(pos, "the query nests deeper than %d levels of parentheses, NOT, '-' or function calls; simplify it", MaxDepth)
	}
}

func (p *parser) leave() { p.depth-- }

func (p *parser) parseQuery() *Query {
	t := p.peek()
	if !isKw(t, "SELECT") {
		p.fail(t.pos, "expected SELECT at the start of the query, found %s", p.describe(t))
	}
	p.next()
	q := &Query{Top: -1}
	if isKw(p.peek(), "TOP") {
		p.next()
		t := p.peek()
		if t.kind != tNumber || t.num != math.Trunc(t.num) || t.num > math.MaxInt32 {
			p.fail(t.pos, "TOP must be followed by a whole number, found %s", p.describe(t))
		}
		p.next()
		q.Top = int(t.num)
	}
	if isPunct(p.peek(), "*") {
		p.next()
	} else {
		for {
			q.Select = append(q.Select, p.parseProjection())
			if !isPunct(p.peek(), ",") {
				break
			}
			p.next()
		}
	}
	t = p.peek()
	if !isKw(t, "FROM") {
		p.fail(t.pos, "expected ',' or FROM after the SELECT list, found %s", p.describe(t))
	}
	p.next()
	q.From = p.parseCollection()
	if isKw(p.peek(), "WHERE") {
		p.next()
		q.Where = p.parseOr()
		if t := p.peek(); t.kind != tEOF && !isKw(t, "GROUP") && !isKw(t, "ORDER") {
			p.fail(t.pos, "expected AND, OR, GROUP BY or end of query after the condition, found %s", p.describe(t))
		}
	}
	groupPos := p.peek().pos
	if isKw(p.peek(), "GROUP") {
		p.next()
		if t := p.peek(); !isKw(t, "BY") {
			p.fail(t.pos, "expected BY after GROUP, found %s", p.describe(t))
		}
		p.next()
		for {
			q.GroupBy = append(q.GroupBy, p.parsePath("expected a property path in GROUP BY, found %s"))
			if !isPunct(p.peek(), ",") {
				break
			}
			p.next()
		}
	}
	if t := p.peek(); isKw(t, "ORDER") {
		p.fail(t.pos, "ORDER BY is not supported; results come in document order")
	}
	p.expectEOF("expected WHERE, GROUP BY or end of query, found %s")
	p.checkPrefixes(q.From)
	p.checkSelect(q, groupPos)
	return q
}

func (p *parser) parseCollection() Collection {
	t := p.peek()
	if !isKw(t, "devices") {
		p.fail(t.pos, "expected a collection (devices, devices.modules or devices.jobs) after FROM, found %s", p.describe(t))
	}
	p.next()
	if !isPunct(p.peek(), ".") {
		return Devices
	}
	p.next()
	t = p.peek()
	switch {
	case isKw(t, "jobs"):
		p.next()
		return DevicesJobs
	case isKw(t, "modules"):
		p.next()
		return DevicesModules
	}
	p.fail(t.pos, "expected jobs or modules after 'devices.', found %s", p.describe(t))
	return ""
}

var aggregates = map[string]bool{AggCount: true, AggAvg: true, AggSum: true, AggMin: true, AggMax: true}

func (p *parser) parseProjection() Projection {
	t := p.peek()
	pr := Projection{Pos: t.pos}
	if up := strings.ToUpper(t.text); t.kind == tIdent && aggregates[up] && isPunct(p.peekN(1), "(") {
		p.next()
		p.next()
		pr.Agg = up
		if up != AggCount {
			pr.Path = p.parsePath("expected a property path inside " + up + "(), found %s")
		}
		p.expectPunct(")", "expected ')' to close "+up+"(, found %s")
	} else {
		pr.Path = p.parsePath("expected a property path, an aggregate such as COUNT() or * in the SELECT list, found %s")
	}
	if isKw(p.peek(), "AS") {
		p.next()
		t := p.next()
		switch {
		case t.kind == tEscaped:
			pr.As = t.str
		case t.kind == tIdent && !isReserved(t.text):
			pr.As = t.text
		case t.kind == tIdent:
			p.fail(t.pos, "'%s' is a reserved word; write [[%s]] to use it as a name", t.text, t.text)
		default:
			p.fail(t.pos, "expected a name after AS, found %s", p.describe(t))
		}
	}
	return pr
}

// checkSelect enforces the rules of aggregating queries and unique output
// names.
func (p *parser) checkSelect(q *Query, groupPos int) {
	if q.Select == nil {
		if len(q.GroupBy) > 0 {
			p.fail(groupPos, "GROUP BY needs a SELECT list instead of *, e.g. SELECT status, COUNT() AS n FROM devices GROUP BY status")
		}
		return
	}
	if q.Grouped() {
		for _, pr := range q.Select {
			if pr.Agg != "" || containsPath(q.GroupBy, pr.Path) {
				continue
			}
			p.fail(pr.Pos, "%s must be in GROUP BY or inside an aggregate such as MAX()", pr.Path)
		}
	}
	seen := map[string]bool{}
	for i, k := range q.Keys() {
		if seen[k] {
			p.fail(q.Select[i].Pos, "the SELECT list names %q twice; give one of them another name with AS", k)
		}
		seen[k] = true
	}
}

func containsPath(ps []Path, p Path) bool {
	for _, q := range ps {
		if equalSegments(q.Segments, p.Segments) {
			return true
		}
	}
	return false
}

func equalSegments(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkPrefixes rejects devices.jobs. and devices.modules. paths outside a
// query over that collection.
func (p *parser) checkPrefixes(from Collection) {
	for _, u := range p.prefixes {
		if u.coll != from {
			p.fail(u.pos, "paths starting with %s. are only valid in SELECT ... FROM %s", u.coll, u.coll)
		}
	}
}

// parsePath parses a path that must come next (SELECT list, GROUP BY);
// format describes what was expected.
func (p *parser) parsePath(format string) Path {
	t := p.peek()
	if t.kind != tIdent && t.kind != tEscaped {
		p.fail(t.pos, format, p.describe(t))
	}
	p.next()
	return p.parsePathFrom(t)
}

// parsePathFrom parses the rest of a path whose first token, already
// consumed, is first.
func (p *parser) parsePathFrom(first token) Path {
	path := Path{Pos: first.pos}
	if isKw(first, "devices") && isPunct(p.peekN(0), ".") && isPunct(p.peekN(2), ".") {
		var coll Collection
		switch t := p.peekN(1); {
		case isKw(t, "jobs"):
			coll = DevicesJobs
		case isKw(t, "modules"):
			coll = DevicesModules
		}
		if coll != "" {
			p.next()
			p.next()
			p.next()
			p.prefixes = append(p.prefixes, prefixUse{coll: coll, pos: first.pos})
			first = p.next()
		}
	}
	path.Segments = append(path.Segments, p.segment(first))
	for isPunct(p.peek(), ".") {
		p.next()
		path.Segments = append(path.Segments, p.segment(p.next()))
	}
	path.Segments = canonicalSegments(path.Segments)
	return path
}

func (p *parser) segment(t token) string {
	switch {
	case t.kind == tEscaped:
		return t.str
	case t.kind == tIdent && isReserved(t.text):
		p.fail(t.pos, "'%s' is a reserved word; write [[%s]] to use it as a property name", t.text, t.text)
	case t.kind == tIdent:
		return t.text
	}
	p.fail(t.pos, "expected a property name after '.', found %s", p.describe(t))
	return ""
}

func (p *parser) parseOr() Expr {
	l := p.parseAnd()
	for isKw(p.peek(), "OR") {
		pos := p.next().pos
		l = Binary{Op: "OR", L: l, R: p.parseAnd(), Pos: pos}
	}
	return l
}

func (p *parser) parseAnd() Expr {
	l := p.parseNot()
	for isKw(p.peek(), "AND") {
		pos := p.next().pos
		l = Binary{Op: "AND", L: l, R: p.parseNot(), Pos: pos}
	}
	return l
}

func (p *parser) parseNot() Expr {
	if t := p.peek(); isKw(t, "NOT") {
		p.next()
		p.enter(t.pos)
		x := p.parseNot()
		p.leave()
		return Not{X: x, Pos: t.pos}
	}
	return p.parseCmp()
}

var cmpOps = map[string]string{"=": "=", "!=": "!=", "<>": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}

func (p *parser) parseCmp() Expr {
	l := p.parseAdd()
	t := p.peek()
	var e Expr
	switch {
	case t.kind == tPunct && cmpOps[t.text] != "":
		p.next()
		e = Binary{Op: cmpOps[t.text], L: l, R: p.parseAdd(), Pos: t.pos}
	case isKw(t, "IN"), isKw(t, "NIN"):
		p.next()
		e = In{X: l, List: p.parseList(), Negate: isKw(t, "NIN"), Pos: t.pos}
	case isKw(t, "NOT") && isKw(p.peekN(1), "IN"):
		p.next()
		p.next()
		e = In{X: l, List: p.parseList(), Negate: true, Pos: t.pos}
	default:
		return l
	}
	if t := p.peek(); t.kind == tPunct && cmpOps[t.text] != "" || isKw(t, "IN") || isKw(t, "NIN") {
		p.fail(t.pos, "comparisons cannot be chained; combine them with AND")
	}
	return e
}

func (p *parser) parseList() []Const {
	t := p.peek()
	if !isPunct(t, "[") {
		p.fail(t.pos, "IN and NIN take a list in square brackets, like IN ['a', 'b']; found %s", p.describe(t))
	}
	p.next()
	if t := p.peek(); isPunct(t, "]") {
		p.fail(t.pos, "the IN list is empty; give at least one value")
	}
	var list []Const
	for {
		list = append(list, p.parseConst())
		t := p.peek()
		if isPunct(t, "]") {
			p.next()
			return list
		}
		if !isPunct(t, ",") {
			p.fail(t.pos, "expected ']' to close the IN list, found %s", p.describe(t))
		}
		p.next()
	}
}

// parseConst parses a literal of an IN list: a number (optionally
// negative), a string, true, false, null or undefined.
func (p *parser) parseConst() Const {
	t := p.next()
	switch {
	case t.kind == tNumber:
		return Const{Value: t.num, Pos: t.pos}
	case isPunct(t, "-") && p.peek().kind == tNumber:
		return Const{Value: -p.next().num, Pos: t.pos}
	case t.kind == tString:
		return Const{Value: t.str, Pos: t.pos}
	case t.kind == tIdent:
		if c, ok := literal(t); ok {
			return c
		}
	}
	p.fail(t.pos, "expected a constant (number, string, true, false or null) in the IN list, found %s", p.describe(t))
	return Const{}
}

func literal(t token) (Const, bool) {
	switch strings.ToUpper(t.text) {
	case "TRUE":
		return Const{Value: true, Pos: t.pos}, true
	case "FALSE":
		return Const{Value: false, Pos: t.pos}, true
	case "NULL":
		return Const{Value: nil, Pos: t.pos}, true
	case "UNDEFINED":
		return Const{Undefined: true, Pos: t.pos}, true
	}
	return Const{}, false
}

func (p *parser) parseAdd() Expr {
	l := p.parseMul()
	for t := p.peek(); isPunct(t, "+") || isPunct(t, "-"); t = p.peek() {
		p.next()
		l = Binary{Op: t.text, L: l, R: p.parseMul(), Pos: t.pos}
	}
	return l
}

func (p *parser) parseMul() Expr {
	l := p.parseUnary()
	for t := p.peek(); isPunct(t, "*") || isPunct(t, "/") || isPunct(t, "%"); t = p.peek() {
		p.next()
		l = Binary{Op: t.text, L: l, R: p.parseUnary(), Pos: t.pos}
	}
	return l
}

func (p *parser) parseUnary() Expr {
	t := p.peek()
	if !isPunct(t, "-") {
		return p.parsePrimary()
	}
	p.next()
	if n := p.peek(); n.kind == tNumber {
		p.next()
		return Const{Value: -n.num, Pos: t.pos}
	}
	p.enter(t.pos)
	x := p.parsePrimary()
	p.leave()
	return Neg{X: x, Pos: t.pos}
}

func (p *parser) parsePrimary() Expr {
	t := p.peek()
	switch t.kind {
	case tNumber:
		p.next()
		return Const{Value: t.num, Pos: t.pos}
	case tString:
		p.next()
		return Const{Value: t.str, Pos: t.pos}
	case tEscaped:
		p.next()
		return p.parsePathFrom(t)
	case tIdent:
		if c, ok := literal(t); ok {
			p.next()
			return c
		}
		if isPunct(p.peekN(1), "(") {
			return p.parseCall()
		}
		p.next()
		return p.parsePathFrom(t)
	case tPunct:
		switch t.text {
		case "(":
			p.next()
			p.enter(t.pos)
			e := p.parseOr()
			p.expectPunct(")", fmt.Sprintf("expected ')' to close the '(' at offset %d, found %%s", t.pos))
			p.leave()
			return e
		case "[":
			p.fail(t.pos, "a list like ['a', 'b'] is only allowed after IN or NIN")
		}
	}
	p.fail(t.pos, "expected a value (a property path, constant, function call or parenthesised condition), found %s", p.describe(t))
	return nil
}

// functions maps each accepted function name to its canonical name and
// number of arguments.
var functions = map[string]struct {
	name  string
	arity int
}{
	"IS_DEFINED": {"IS_DEFINED", 1}, "IS_NULL": {"IS_NULL", 1}, "IS_STRING": {"IS_STRING", 1},
	"IS_NUMBER": {"IS_NUMBER", 1}, "IS_BOOL": {"IS_BOOL", 1}, "IS_OBJECT": {"IS_OBJECT", 1},
	"IS_ARRAY": {"IS_ARRAY", 1}, "IS_PRIMITIVE": {"IS_PRIMITIVE", 1},
	"STARTSWITH": {"STARTSWITH", 2}, "STARTS_WITH": {"STARTSWITH", 2},
	"ENDSWITH": {"ENDSWITH", 2}, "ENDS_WITH": {"ENDSWITH", 2},
	"CONTAINS": {"CONTAINS", 2}, "LOWER": {"LOWER", 1}, "UPPER": {"UPPER", 1}, "LENGTH": {"LENGTH", 1},
}

const functionList = "IS_DEFINED, IS_NULL, IS_STRING, IS_NUMBER, IS_BOOL, IS_OBJECT, IS_ARRAY, IS_PRIMITIVE, " +
	"STARTSWITH, ENDSWITH, CONTAINS, LOWER, UPPER, LENGTH"

func (p *parser) parseCall() Expr {
	name := p.next()
	up := strings.ToUpper(name.text)
	if aggregates[up] {
		p.fail(name.pos, "%s() is an aggregate; it is only allowed in the SELECT list", name.text)
	}
	f, ok := functions[up]
	if !ok {
		p.fail(name.pos, "unknown function %s; the functions are %s", truncate(name.text), functionList)
	}
	p.next() // (
	p.enter(name.pos)
	var args []Expr
	if !isPunct(p.peek(), ")") {
		for {
			args = append(args, p.parseOr())
			if !isPunct(p.peek(), ",") {
				break
			}
			p.next()
		}
	}
	p.expectPunct(")", "expected ',' or ')' in the arguments of "+f.name+", found %s")
	p.leave()
	if len(args) != f.arity {
		plural := "s"
		if f.arity == 1 {
			plural = ""
		}
		p.fail(name.pos, "%s takes %d argument%s, found %d", f.name, f.arity, plural, len(args))
	}
	return Call{Name: f.name, Args: args, Pos: name.pos}
}
