package postgres

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

// This file compiles query.Expr trees to PostgreSQL expressions over the
// jsonb query document of each row (devices.twin, device_jobs.qdoc), with
// the semantics of query.Match and query.Eval:
//
//   - Every expression has a static kind. Comparisons, logic, IN and the
//     boolean functions are kBool: SQL true, false or NULL, NULL standing
//     for undefined (unknown), so SQL's AND, OR and NOT are the package's
//     Kleene logic. Arithmetic and LENGTH are kNum (float8 or NULL),
//     LOWER and UPPER kStr (text or NULL). The constants null and
//     undefined are kNull and kUndef.
//   - A path is kDyn: the jsonb at a path of bound keys (->), whose type
//     (jsonb_typeof) is known only per row; SQL NULL when it is missing.
//     Where a path meets a static kind it is converted (number, string or
//     boolean, else NULL), so a type mismatch is NULL, never a coerced
//     comparison.
//   - Numbers are float8. The documents' numbers are float64s in Go's
//     shortest form (encodeDoc), which the jsonb-to-float8 cast reads back
//     exactly, and whose numeric equality and order are the float64s'.
//     float8 arithmetic is IEEE arithmetic as in Go, but PostgreSQL raises
//     errors where Go gives infinities (undefined in queries) or an
//     underflow to zero: iotjobs_add and friends (migrate.go) give Go's
//     results instead. Division by zero is NULL. PostgreSQL has no float8
//     remainder (a decimal one is not Go's): iotjobs_mod computes
//     math.Mod's exact result.
//   - Strings compare with COLLATE "C" (bytes, as Go). LOWER and UPPER map
//     every character as Go's unicode.ToLower and ToUpper do (translate
//     with tables built from Go's, iotjobs_case); LENGTH counts
//     characters, which are Go's runes in valid UTF-8 text.
//   - Expressions without paths are evaluated in Go (query.Value) and
//     become constants, so constant arithmetic and string functions are
//     Go's own.
//   - Text cannot hold NUL. Documents with one are not jsonb (the rows are
//     decided in Go, see doc.go), so the jsonb strings never hold NUL, and
//     a string constant with one is compared as its effect on NUL-free
//     strings: never equal, ordered as the text before its first NUL.
//   - Every constant and every path is a bound parameter: no text of the
//     query is ever part of the SQL.
//
// What is not compiled faithfully is inexact: string constants that are
// not valid UTF-8, and expressions nested beyond maxDepth. An
// inexact boolean carries two SQL conditions, mayT and mayF, true at least
// on the rows where it is true (false); logic combines them, so the WHERE
// condition stays a filter that keeps every matching row, and the store
// decides the rows it keeps with query.Match.

type kind uint8

const (
	kUndef kind = iota // always undefined
	kNull              // the constant null
	kBool              // true, false, or NULL for undefined
	kNum               // float8, or NULL for undefined
	kStr               // text, or NULL for undefined
	kDyn               // a path: any JSON type, per row
)

// maxDepth bounds the estimated height of a compiled expression: deeper
// ones (long chains of arithmetic) are left inexact rather than risk the
// server's stack limit.
const maxDepth = 200

// sqlExpr is a compiled expression.
type sqlExpr struct {
	k     kind
	v     string // the SQL value; for kDyn the jsonb
	t     string // kDyn: the SQL of its jsonb_typeof
	s     string // kDyn: the SQL of its text (#>>), its value when a string
	depth int

	konst bool // a constant: val holds it (kNull, kBool, kNum, kStr)
	val   any
	// A kStr constant that text cannot hold (a NUL, or not valid UTF-8)
	// has no v; bad says which.
	bad string

	inexact bool
	// Inexact: defd holds at least where the value may be defined; for a
	// kBool, mayT and mayF at least where it may be true (false).
	defd, mayT, mayF string
}

var undefined = sqlExpr{k: kUndef, depth: 1}

// isConst reports whether e's value is the same for every document.
func (e sqlExpr) isConst() bool { return e.k == kUndef || e.konst }

// target is the table a query reads.
type target struct {
	table string            // devices or device_jobs
	doc   string            // the jsonb column of the query document
	cols  map[string]string // one-segment paths held in a key column, always present
	keys  []string          // the page key columns, in order
	// raw is the SQL of the JSON text of rows whose document is not
	// jsonb; rawDoc turns it into the query document.
	raw    string
	rawDoc func([]byte) (map[string]any, error)
	// rows is the SQL condition on the key columns that picks the
	// collection's rows ("" for all): devices and modules share a table,
	// a module's key holding '/' (store.IsModuleRow).
	rows string
}

var (
	devicesTarget = &target{table: "devices", doc: "twin", cols: map[string]string{"deviceId": "id"}, keys: []string{"id"},
		raw: "raw", rawDoc: decodeDoc, rows: "strpos(id, '/') = 0"}
	// modulesTarget reads module rows: their deviceId is in the document
	// only (the key is "{deviceId}/{moduleId}").
	modulesTarget = &target{table: "devices", doc: "twin", cols: map[string]string{}, keys: []string{"id"},
		raw: "raw", rawDoc: decodeDoc, rows: "strpos(id, '/') > 0"}
	deviceJobsTarget = &target{table: "device_jobs", doc: "qdoc", cols: map[string]string{"jobId": "job_id", "deviceId": "device_id"},
		keys: []string{"job_id", "device_id"}, raw: "CASE WHEN qdoc IS NULL THEN doc END", rawDoc: deviceJobDoc}
)

// compiler turns expressions into SQL, collecting bound arguments; a
// value bound once is referred to by the same parameter everywhere.
type compiler struct {
	t      *target
	args   []any
	params map[string]string // type and value → parameter
	// readsDoc is set when the compiler emits SQL that reads the
	// document (see where).
	readsDoc bool
}

// newCompiler reserves the parameters $1..$n for the statement's own.
func newCompiler(t *target, reserved int) *compiler {
	return &compiler{t: t, args: make([]any, reserved), params: map[string]string{}}
}

func (c *compiler) param(v any, typ string) string {
	var key string
	switch v := v.(type) {
	case []string:
		b, _ := json.Marshal(v)
		key = typ + string(b)
	default:
		key = typ + fmt.Sprintf("%#v", v)
	}
	if p, ok := c.params[key]; ok {
		return p
	}
	c.args = append(c.args, v)
	p := "$" + strconv.Itoa(len(c.args)) + "::" + typ
	c.params[key] = p
	return p
}

// canonical returns a query path with its first segment in its canonical
// spelling when it is a system field (as query.Resolve matches it), or ok
// false when the path can never resolve in a jsonb document: no segments,
// or a segment that is not valid UTF-8 or holds a NUL (jsonb keys never
// do; documents with NUL are decided in Go).
func canonical(segs []string) ([]string, bool) {
	if len(segs) == 0 {
		return nil, false
	}
	canon := append([]string(nil), segs...)
	if c, sys := query.SystemField(canon[0]); sys {
		// The documents' top-level keys are all canonical system field
		// names, so the case-insensitive fallback of Resolve always
		// lands on the canonical key.
		canon[0] = c
	}
	for _, s := range canon {
		if !storable(s) {
			return nil, false
		}
	}
	return canon, true
}

// at is the SQL of the jsonb at a canonical path, and of its text (->>).
// The steps are -> with text operands, which walk objects only, as
// query.Resolve does (#> would index arrays with segments like "0").
func (c *compiler) at(canon []string) (jsonb, text string) {
	c.readsDoc = true
	var b strings.Builder
	b.WriteString(c.t.doc)
	for _, s := range canon[:len(canon)-1] {
		b.WriteString(" -> " + c.param(s, "text"))
	}
	last := c.param(canon[len(canon)-1], "text")
	pre := b.String()
	return "(" + pre + " -> " + last + ")", "(" + pre + " ->> " + last + ")"
}

// jsonbAt is the SQL of the jsonb at a canonical path.
func (c *compiler) jsonbAt(canon []string) string {
	v, _ := c.at(canon)
	return v
}

func (c *compiler) path(segs []string) sqlExpr {
	canon, ok := canonical(segs)
	if ok && len(canon) == 1 {
		if col, ok := c.t.cols[canon[0]]; ok {
			return sqlExpr{k: kStr, v: col, depth: 1}
		}
	}
	// Whatever SQL comes of it is about jsonb documents only, even
	// where it is a constant: a path with a NUL is undefined in them, but
	// not in a document kept as text.
	c.readsDoc = true
	if !ok {
		return undefined
	}
	v, text := c.at(canon)
	return sqlExpr{k: kDyn, v: v, t: "jsonb_typeof" + v, s: text, depth: 2}
}

// constant makes a compiled constant of a value Eval gives (ok false:
// undefined).
func (c *compiler) constant(v any, ok bool) sqlExpr {
	if !ok {
		return undefined
	}
	switch v := v.(type) {
	case nil:
		return sqlExpr{k: kNull, v: "NULL", konst: true, depth: 1}
	case bool:
		return sqlExpr{k: kBool, v: strings.ToUpper(strconv.FormatBool(v)), konst: true, val: v, depth: 1}
	case float64:
		if math.IsNaN(v) {
			// From a tree built in code. Go compares NaN as undefined,
			// PostgreSQL as a number above all others.
			break
		}
		return sqlExpr{k: kNum, v: c.param(v, "float8"), konst: true, val: v, depth: 1}
	case string:
		e := sqlExpr{k: kStr, konst: true, val: v, depth: 1}
		switch {
		case !utf8.ValidString(v):
			e.bad = "invalid"
		case strings.IndexByte(v, 0) >= 0:
			e.bad = "nul"
		default:
			e.v = c.param(v, "text")
		}
		return e
	}
	return sqlExpr{k: kUndef, inexact: true, defd: "TRUE", mayT: "TRUE", mayF: "TRUE"}
}

// fold evaluates a path-free expression in Go.
func (c *compiler) fold(e query.Expr) sqlExpr {
	v, ok := query.Value(e, nil)
	return c.constant(v, ok)
}

func inexact(k kind, defd string) sqlExpr {
	if k == kBool {
		return sqlExpr{k: kBool, inexact: true, defd: defd, mayT: defd, mayF: defd, depth: 1}
	}
	return sqlExpr{k: k, inexact: true, defd: defd, depth: 1}
}

// defined is SQL true at least where e may be defined (exactly, for an
// exact e).
func defined(e sqlExpr) string {
	switch {
	case e.inexact:
		return e.defd
	case e.k == kUndef:
		return "FALSE"
	case e.k == kNull:
		return "TRUE"
	case e.k == kDyn:
		return "(" + e.v + " IS NOT NULL)"
	case e.konst:
		return "TRUE"
	}
	return "(" + e.v + " IS NOT NULL)"
}

func and(a, b string) string {
	switch {
	case a == "TRUE":
		return b
	case b == "TRUE":
		return a
	}
	return "(" + a + " AND " + b + ")"
}

// mayT and mayF are SQL true at least where a kBool e is true (false);
// exactly there for an exact one.
func mayT(e sqlExpr) string {
	if e.inexact {
		return e.mayT
	}
	return e.v
}

func mayF(e sqlExpr) string {
	if e.inexact {
		return e.mayF
	}
	return "(NOT " + e.v + ")"
}

// as converts e to kind k (kBool, kNum or kStr): the value where e has
// that type, else NULL. ok is false when e can never have it.
func as(k kind, e sqlExpr) (sqlExpr, bool) {
	if e.k == k {
		return e, true
	}
	if e.k != kDyn {
		return sqlExpr{}, false
	}
	x := sqlExpr{k: k, depth: e.depth + 2}
	switch k {
	case kNum:
		x.v = "(CASE WHEN " + e.t + " = 'number' THEN " + e.v + "::float8 END)"
	case kStr:
		x.v = "(CASE WHEN " + e.t + " = 'string' THEN " + e.s + " END)"
	case kBool:
		x.v = "(CASE WHEN " + e.t + " = 'boolean' THEN " + e.v + "::boolean END)"
	default:
		return sqlExpr{}, false
	}
	return x, true
}

// asBool converts e for a logical operator: booleans stay, everything
// else is unknown (a number is never a boolean, even an inexact one).
func asBool(e sqlExpr) sqlExpr {
	if x, ok := as(kBool, e); ok {
		return x
	}
	return sqlExpr{k: kBool, v: "NULL", depth: 1}
}

func boolExpr(v string, depth int) sqlExpr { return sqlExpr{k: kBool, v: v, depth: depth} }

// checkDepth leaves e inexact when it is nested too deeply.
func checkDepth(e sqlExpr) sqlExpr {
	if e.depth > maxDepth && !e.inexact {
		return inexact(e.k, "TRUE")
	}
	return e
}

var sqlOps = map[string]string{"=": "=", "!=": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">="}

func (c *compiler) compile(e query.Expr) sqlExpr {
	return checkDepth(c.compile1(e))
}

func (c *compiler) compile1(e query.Expr) sqlExpr {
	switch e := e.(type) {
	case nil:
		return undefined
	case query.All:
		return c.constant(true, true)
	case query.Const:
		return c.fold(e)
	case query.Path:
		return c.path(e.Segments)
	case query.Not:
		x := c.compile(e.X)
		if x.isConst() {
			return c.fold(e)
		}
		return not(asBool(x))
	case query.Neg:
		x := c.compile(e.X)
		if x.isConst() {
			return c.fold(e)
		}
		n, ok := as(kNum, x)
		if !ok {
			return undefined
		}
		if n.inexact {
			return n
		}
		// Negation never fails, in Go or here.
		return sqlExpr{k: kNum, v: "(-" + n.v + ")", depth: n.depth + 1}
	case query.Binary:
		switch e.Op {
		case "AND", "OR":
			return c.logic(e)
		}
		l, r := c.compile(e.L), c.compile(e.R)
		if l.isConst() && r.isConst() {
			return c.fold(e)
		}
		switch e.Op {
		case "+", "-", "*", "/", "%":
			return arith(e.Op, l, r)
		}
		if _, ok := sqlOps[e.Op]; !ok {
			return undefined
		}
		return c.compare(e.Op, l, r)
	case query.In:
		return c.in(e)
	case query.Call:
		return c.call(e)
	}
	return inexact(kUndef, "TRUE")
}

func not(x sqlExpr) sqlExpr {
	if x.inexact {
		return sqlExpr{k: kBool, inexact: true, defd: x.defd, mayT: x.mayF, mayF: x.mayT, depth: 1}
	}
	return boolExpr("(NOT "+x.v+")", x.depth+1)
}

// chain flattens a chain of one logical operator.
func chain(e query.Binary) []query.Expr {
	var ops []query.Expr
	var flatten func(x query.Expr)
	flatten = func(x query.Expr) {
		if b, ok := x.(query.Binary); ok && b.Op == e.Op {
			flatten(b.L)
			flatten(b.R)
			return
		}
		ops = append(ops, x)
	}
	flatten(e)
	return ops
}

// balanced combines parts with a binary operator as a balanced tree: AND
// and OR are associative in Kleene logic and Eval has no short-circuit
// effects, and a balanced tree keeps long "deviceId = 'a' OR ..." chains
// shallow.
func balanced[T any](parts []T, join func(a, b T) T) T {
	for len(parts) > 1 {
		next := parts[:0:0]
		for i := 0; i < len(parts); i += 2 {
			if i+1 == len(parts) {
				next = append(next, parts[i])
				continue
			}
			next = append(next, join(parts[i], parts[i+1]))
		}
		parts = next
	}
	return parts[0]
}

// logic compiles an AND or OR chain.
func (c *compiler) logic(e query.Binary) sqlExpr {
	ops := chain(e)
	parts := make([]sqlExpr, len(ops))
	konst := true
	for i, x := range ops {
		parts[i] = asBool(c.compile(x))
		konst = konst && parts[i].isConst()
	}
	if konst {
		return c.fold(e)
	}
	return balanced(parts, func(l, r sqlExpr) sqlExpr {
		if !l.inexact && !r.inexact {
			return boolExpr("("+l.v+" "+e.Op+" "+r.v+")", max(l.depth, r.depth)+1)
		}
		x := sqlExpr{k: kBool, inexact: true, defd: "TRUE", depth: 1}
		if e.Op == "AND" {
			x.mayT, x.mayF = and(mayT(l), mayT(r)), "("+mayF(l)+" OR "+mayF(r)+")"
		} else {
			x.mayT, x.mayF = "("+mayT(l)+" OR "+mayT(r)+")", and(mayF(l), mayF(r))
		}
		return x
	})
}

// cond is a WHERE condition: SQL true on exactly the rows where the
// condition holds (exact), or on at least those.
type cond struct {
	sql   string
	exact bool
}

// where compiles a WHERE condition as two conditions that must both
// hold: keys reads only the key columns, and holds for the rows whose
// documents are not jsonb as well (a key column is the same field of the
// document), so that an index of the key columns serves it; doc reads the
// document, and the statement asks it only of jsonb documents.
func (c *compiler) where(e query.Expr) (keys, doc cond) {
	ops := []query.Expr{e}
	if b, ok := e.(query.Binary); ok && b.Op == "AND" {
		ops = chain(b)
	}
	var kp, dp []cond
	for _, x := range ops {
		c.readsDoc = false
		w := c.truth(x)
		if c.readsDoc {
			dp = append(dp, w)
		} else {
			kp = append(kp, w)
		}
	}
	join := func(parts []cond) cond {
		if len(parts) == 0 {
			return cond{"", true}
		}
		return balanced(parts, func(l, r cond) cond { return cond{"(" + l.sql + " AND " + r.sql + ")", l.exact && r.exact} })
	}
	return join(kp), join(dp)
}

// truth compiles e where only whether it is true matters: the WHERE
// condition and, through AND, OR and NOT, its parts. A row whose
// condition is false and one whose condition is unknown are both left
// out, so there a comparison of a path with a constant may be false
// where Eval makes it unknown; that allows jsonb containment (@>), which
// the GIN index serves: tags.site = 'Berlin' holds exactly where the
// document contains {"tags": {"site": "Berlin"}}.
func (c *compiler) truth(e query.Expr) cond {
	switch e := e.(type) {
	case query.Binary:
		switch e.Op {
		case "AND", "OR":
			return c.truthChain(e, e.Op, c.truth)
		case "=":
			if x, ok := c.containsEqual(e); ok {
				return x
			}
		}
	case query.In:
		if !e.Negate {
			if x, ok := c.containsIn(e); ok {
				return x
			}
		}
	case query.Not:
		return c.falsity(e.X)
	}
	x := asBool(c.compile(e))
	return cond{mayT(x), !x.inexact}
}

// falsity is truth's counterpart: SQL true where e is false.
func (c *compiler) falsity(e query.Expr) cond {
	switch e := e.(type) {
	case query.Binary:
		switch e.Op {
		case "AND":
			return c.truthChain(e, "OR", c.falsity)
		case "OR":
			return c.truthChain(e, "AND", c.falsity)
		}
	case query.Not:
		return c.truth(e.X)
	}
	x := asBool(c.compile(e))
	return cond{mayF(x), !x.inexact}
}

// truthChain compiles the operands of an AND or OR chain with leaf and
// joins them with op.
func (c *compiler) truthChain(e query.Binary, op string, leaf func(query.Expr) cond) cond {
	ops := chain(e)
	parts := make([]cond, len(ops))
	for i, x := range ops {
		parts[i] = leaf(x)
	}
	return balanced(parts, func(l, r cond) cond {
		return cond{"(" + l.sql + " " + op + " " + r.sql + ")", l.exact && r.exact}
	})
}

// containment is the SQL of "the document holds v at the path canon".
func (c *compiler) containment(canon []string, v any) string {
	var doc any = v
	for i := len(canon) - 1; i >= 0; i-- {
		doc = map[string]any{canon[i]: doc}
	}
	b, err := store.AppendJSON(nil, doc)
	if err != nil {
		panic(err) // v is a constant: nil, bool, float64 or string
	}
	c.readsDoc = true
	return "(" + c.t.doc + " @> " + c.param(string(b), "jsonb") + ")"
}

// containable reports whether a constant can be matched by containment,
// and whether it can ever be equal to a document's value.
func containable(k sqlExpr) (ok, never bool) {
	if !k.konst {
		return false, false
	}
	switch k.k {
	case kStr:
		// A string with NUL or invalid UTF-8 is never a jsonb string.
		return k.bad == "", k.bad != ""
	case kNum:
		return !math.IsInf(k.val.(float64), 0), false // JSON has no infinities
	case kNull, kBool:
		return true, false
	}
	return false, false
}

// jsonbPath returns the canonical path of e when it is a path into the
// jsonb document (not a key column).
func (c *compiler) jsonbPath(e query.Expr) ([]string, bool) {
	p, ok := e.(query.Path)
	if !ok {
		return nil, false
	}
	canon, ok := canonical(p.Segments)
	if !ok {
		return nil, false
	}
	if _, col := c.t.cols[canon[0]]; col && len(canon) == 1 {
		return nil, false
	}
	c.readsDoc = true // see path
	return canon, true
}

// containsEqual is truth's form of PATH = CONSTANT (either way round).
func (c *compiler) containsEqual(e query.Binary) (cond, bool) {
	canon, ok := c.jsonbPath(e.L)
	other := e.R
	if !ok {
		canon, ok = c.jsonbPath(e.R)
		other = e.L
	}
	if !ok {
		return cond{}, false
	}
	k := c.compile(other)
	if k.inexact {
		return cond{}, false
	}
	switch ok, never := containable(k); {
	case never:
		return cond{"FALSE", true}, true
	case ok:
		return cond{c.containment(canon, k.val), true}, true
	}
	return cond{}, false
}

// containsIn is truth's form of PATH IN [constants]: the path equals one
// of them.
func (c *compiler) containsIn(e query.In) (cond, bool) {
	canon, ok := c.jsonbPath(e.X)
	if !ok {
		return cond{}, false
	}
	var parts []string
	for _, k := range e.List {
		x := c.compile(k)
		if x.inexact {
			return cond{}, false
		}
		if ok, _ := containable(x); ok {
			parts = append(parts, c.containment(canon, x.val))
		}
	}
	if len(parts) == 0 {
		return cond{"FALSE", true}, true
	}
	return cond{"(" + strings.Join(parts, " OR ") + ")", true}, true
}

// arithFns are the float8 operators with Go's results (migrate.go).
var arithFns = map[string]string{"+": "iotjobs_add", "-": "iotjobs_sub", "*": "iotjobs_mul", "/": "iotjobs_div", "%": "iotjobs_mod"}

func arith(op string, l, r sqlExpr) sqlExpr {
	a, ok1 := as(kNum, l)
	b, ok2 := as(kNum, r)
	if !ok1 || !ok2 {
		return undefined
	}
	if a.inexact || b.inexact {
		// Defined only where both operands are numbers.
		return inexact(kNum, and(defined(a), defined(b)))
	}
	return sqlExpr{k: kNum, v: arithFns[op] + "(" + a.v + ", " + b.v + ")", depth: max(a.depth, b.depth) + 3}
}

// compare applies a comparison: defined only between primitives of the
// same type, null only with = and !=.
func (c *compiler) compare(op string, l, r sqlExpr) sqlExpr {
	if l.k == kUndef || r.k == kUndef {
		return undefined
	}
	nullResult := ""
	switch op {
	case "=":
		nullResult = "TRUE"
	case "!=":
		nullResult = "FALSE"
	}
	switch {
	case l.k == kNull || r.k == kNull:
		o := l
		if o.k == kNull {
			o = r
		}
		if o.k != kDyn || nullResult == "" {
			return undefined
		}
		return boolExpr("(CASE WHEN "+o.t+" = 'null' THEN "+nullResult+" END)", o.depth+2)
	case l.k == kDyn && r.k == kDyn:
		sop := sqlOps[op]
		var b strings.Builder
		b.WriteString("(CASE WHEN " + l.t + " = 'number' AND " + r.t + " = 'number' THEN " + l.v + "::float8 " + sop + " " + r.v + "::float8")
		b.WriteString(" WHEN " + l.t + " = 'string' AND " + r.t + " = 'string' THEN " + l.s + " COLLATE \"C\" " + sop + " " + r.s)
		b.WriteString(" WHEN " + l.t + " = 'boolean' AND " + r.t + " = 'boolean' THEN " + l.v + "::boolean " + sop + " " + r.v + "::boolean")
		if nullResult != "" {
			b.WriteString(" WHEN " + l.t + " = 'null' AND " + r.t + " = 'null' THEN " + nullResult)
		}
		b.WriteString(" END)")
		return boolExpr(b.String(), max(l.depth, r.depth)+3)
	case l.k == kDyn:
		lv, ok := as(r.k, l)
		if !ok {
			return undefined
		}
		return c.compareSame(op, lv, r)
	case r.k == kDyn:
		rv, ok := as(l.k, r)
		if !ok {
			return undefined
		}
		return c.compareSame(op, l, rv)
	case l.k == r.k:
		return c.compareSame(op, l, r)
	}
	return undefined
}

var flipped = map[string]string{"=": "=", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}

// compareSame compares two expressions of one static kind.
func (c *compiler) compareSame(op string, l, r sqlExpr) sqlExpr {
	if l.inexact || r.inexact || l.bad == "invalid" || r.bad == "invalid" {
		return inexact(kBool, and(defined(l), defined(r)))
	}
	if l.bad == "nul" {
		l, r, op = r, l, flipped[op]
	}
	if r.bad == "nul" {
		// l is NUL-free text (constants are folded): never equal to r,
		// and ordered against r as against r's text before the NUL.
		pre, _, _ := strings.Cut(r.val.(string), "\x00")
		switch op {
		case "=":
			return boolExpr("(CASE WHEN "+l.v+" IS NOT NULL THEN FALSE END)", l.depth+1)
		case "!=":
			return boolExpr("(CASE WHEN "+l.v+" IS NOT NULL THEN TRUE END)", l.depth+1)
		case "<", "<=":
			op = "<="
		case ">", ">=":
			op = ">"
		}
		r = sqlExpr{k: kStr, v: c.param(pre, "text"), depth: 1}
	}
	v := "(" + l.v + " " + sqlOps[op] + " " + r.v + ")"
	if l.k == kStr {
		v = "(" + l.v + " COLLATE \"C\" " + sqlOps[op] + " " + r.v + ")"
	}
	return boolExpr(v, max(l.depth, r.depth)+1)
}

// in compiles x IN [list] as Eval defines it: x = c1 OR x = c2 ... A
// constant of another type than x makes its comparison unknown, which SQL
// reproduces with a NULL in the IN list (no match then gives NULL, not
// false).
func (c *compiler) in(e query.In) sqlExpr {
	x := c.compile(e.X)
	if x.isConst() {
		return c.fold(e)
	}
	if len(e.List) == 0 {
		return c.fold(e) // false (or true for NIN) whatever x is
	}
	var nums, strs, bools []string
	sameNum, sameStr, sameBool, nulls := 0, 0, 0, 0
	for _, ce := range e.List {
		k := c.compile(ce)
		switch {
		case k.inexact || k.bad == "invalid":
			return inexact(kBool, defined(x))
		case k.k == kNum:
			nums, sameNum = append(nums, k.v), sameNum+1
		case k.k == kStr:
			if k.bad == "" { // a string with NUL equals no text
				strs = append(strs, k.v)
			}
			sameStr++
		case k.k == kBool:
			bools, sameBool = append(bools, k.v), sameBool+1
		case k.k == kNull:
			nulls++
		}
	}
	if x.inexact {
		return inexact(kBool, defined(x))
	}
	n := len(e.List)
	// member is "v IN (same-typed constants[, NULL])".
	member := func(v string, items []string, same int) string {
		if same < n {
			items = append(items[:len(items):len(items)], "NULL")
		}
		if len(items) == 0 {
			return "FALSE"
		}
		return "(" + v + " IN (" + strings.Join(items, ", ") + "))"
	}
	var res sqlExpr
	switch x.k {
	case kNum:
		res = boolExpr(member(x.v, nums, sameNum), x.depth+1)
	case kStr:
		res = boolExpr(member(x.v+" COLLATE \"C\"", strs, sameStr), x.depth+1)
	case kBool:
		res = boolExpr(member(x.v, bools, sameBool), x.depth+1)
	case kDyn:
		nullRes := "NULL"
		if nulls > 0 {
			nullRes = "TRUE"
		}
		v := "(CASE " + x.t +
			" WHEN 'number' THEN " + member(x.v+"::float8", nums, sameNum) +
			" WHEN 'string' THEN " + member(x.s+" COLLATE \"C\"", strs, sameStr) +
			" WHEN 'boolean' THEN " + member(x.v+"::boolean", bools, sameBool) +
			" WHEN 'null' THEN " + nullRes + " END)"
		res = boolExpr(v, x.depth+3)
	default:
		return undefined
	}
	if e.Negate {
		return not(res)
	}
	return res
}

// caseTables are the characters Go's unicode.ToLower (ToUpper) changes and
// what it maps them to, as translate's from and to lists.
var caseTables = sync.OnceValue(func() (t [2][2]string) {
	var b [2][2]strings.Builder
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue // surrogates are no characters of UTF-8 text
		}
		for i, f := range []func(rune) rune{unicode.ToLower, unicode.ToUpper} {
			if m := f(r); m != r {
				b[i][0].WriteRune(r)
				b[i][1].WriteRune(m)
			}
		}
	}
	for i := range b {
		t[i] = [2]string{b[i][0].String(), b[i][1].String()}
	}
	return t
})

func (c *compiler) call(e query.Call) sqlExpr {
	args := make([]sqlExpr, len(e.Args))
	konst := true
	for i, a := range e.Args {
		args[i] = c.compile(a)
		konst = konst && args[i].isConst()
	}
	if konst {
		return c.fold(e)
	}
	if len(args) == 1 {
		return c.call1(e.Name, args[0])
	}
	if len(args) == 2 {
		return c.call2(e.Name, args[0], args[1])
	}
	return undefined
}

// call1 compiles the one-argument functions of a non-constant x.
func (c *compiler) call1(name string, x sqlExpr) sqlExpr {
	// typeIs is IS_STRING, IS_NUMBER, ...: static kinds answer from
	// definedness, paths from jsonb_typeof (never NULL: coalesce).
	typeIs := func(k kind, types string) sqlExpr {
		switch {
		case x.k == kDyn:
			return boolExpr("coalesce("+x.t+" IN "+types+", FALSE)", x.depth+2)
		case x.k != k:
			return c.constant(false, true)
		case x.inexact:
			return sqlExpr{k: kBool, inexact: true, defd: "TRUE", mayT: x.defd, mayF: "TRUE", depth: 1}
		}
		return boolExpr(defined(x), x.depth+1)
	}
	switch name {
	case "IS_DEFINED":
		if x.inexact {
			return sqlExpr{k: kBool, inexact: true, defd: "TRUE", mayT: x.defd, mayF: "TRUE", depth: 1}
		}
		return boolExpr(defined(x), x.depth+1)
	case "IS_NULL":
		return typeIs(kNull, "('null')")
	case "IS_STRING":
		return typeIs(kStr, "('string')")
	case "IS_NUMBER":
		return typeIs(kNum, "('number')")
	case "IS_BOOL":
		return typeIs(kBool, "('boolean')")
	case "IS_OBJECT":
		return typeIs(kUndef, "('object')") // no static kind is an object
	case "IS_ARRAY":
		return typeIs(kUndef, "('array')")
	case "IS_PRIMITIVE":
		if x.k == kDyn {
			return typeIs(kUndef, "('null', 'boolean', 'number', 'string')")
		}
		return typeIs(x.k, "")
	}
	s, ok := as(kStr, x)
	if !ok {
		return undefined
	}
	if s.inexact {
		k := kStr
		if name == "LENGTH" {
			k = kNum
		}
		return inexact(k, s.defd)
	}
	switch name {
	case "LOWER", "UPPER":
		i, upper := 0, "FALSE"
		if name == "UPPER" {
			i, upper = 1, "TRUE"
		}
		t := caseTables()[i]
		return sqlExpr{k: kStr, v: "iotjobs_case(" + s.v + ", " + upper + ", " + c.param(t[0], "text") + ", " + c.param(t[1], "text") + ")", depth: s.depth + 3}
	case "LENGTH":
		return sqlExpr{k: kNum, v: "length(" + s.v + ")::float8", depth: s.depth + 1}
	}
	return undefined
}

// call2 compiles STARTSWITH, ENDSWITH and CONTAINS of a and b, not both
// constant.
func (c *compiler) call2(name string, a, b sqlExpr) sqlExpr {
	s, ok1 := as(kStr, a)
	t, ok2 := as(kStr, b)
	if !ok1 || !ok2 {
		return undefined
	}
	if s.inexact || t.inexact || s.bad == "invalid" || t.bad == "invalid" {
		return inexact(kBool, and(defined(s), defined(t)))
	}
	d := max(s.depth, t.depth) + 2
	if t.bad == "nul" {
		// No NUL-free string starts with, ends with or contains it.
		return boolExpr("(CASE WHEN "+s.v+" IS NOT NULL THEN FALSE END)", d)
	}
	if s.bad == "nul" {
		// A NUL-free t starts the text before the first NUL, ends the
		// text after the last one, or is inside one of the pieces.
		pieces := strings.Split(s.val.(string), "\x00")
		switch name {
		case "STARTSWITH":
			return boolExpr("starts_with("+c.param(pieces[0], "text")+", "+t.v+")", d)
		case "ENDSWITH":
			return boolExpr("iotjobs_endswith("+c.param(pieces[len(pieces)-1], "text")+", "+t.v+")", d)
		case "CONTAINS":
			parts := make([]string, len(pieces))
			for i, p := range pieces {
				parts[i] = "strpos(" + c.param(p, "text") + ", " + t.v + ") > 0"
			}
			return boolExpr("("+strings.Join(parts, " OR ")+")", d)
		}
		return undefined
	}
	switch name {
	case "STARTSWITH":
		return boolExpr("starts_with("+s.v+", "+t.v+")", d)
	case "ENDSWITH":
		return boolExpr("iotjobs_endswith("+s.v+", "+t.v+")", d)
	case "CONTAINS":
		return boolExpr("(strpos("+s.v+", "+t.v+") > 0)", d)
	}
	return undefined
}
