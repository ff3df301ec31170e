package sqlite

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
	msqlite "modernc.org/sqlite"
)

// This file compiles query.Expr trees to SQLite expressions over the JSON
// query document of each row (devices.twin, device_jobs.qdoc), with the
// semantics of query.Match and query.Eval exactly:
//
//   - Every expression has a static kind. Comparisons, logic, IN and the
//     boolean functions are kBool: SQL 1, 0 or NULL, NULL standing for
//     undefined (unknown), so SQL's AND, OR and NOT are exactly the
//     package's Kleene logic. Arithmetic and LENGTH are kNum (REAL or
//     NULL), LOWER, UPPER and string constants kStr (TEXT or NULL).
//     Constants null and undefined are kNull and kUndef.
//   - A path is kDyn: json_type and json_extract of a bound JSON path,
//     whose type is known only per row. Where a path meets a static kind it
//     is converted (number, string or bool, else NULL), so a type mismatch
//     is NULL, never a coerced comparison.
//   - Each operand appears once in the SQL of its parent (paths, which are
//     small, may appear several times), so the SQL grows linearly with the
//     query and nested expressions cannot blow it up.
//   - Numbers are REAL throughout (JSON integers are CAST), so arithmetic
//     is float64 arithmetic as in Go; non-finite results are turned into
//     NULL at every step, division and remainder by zero are NULL in SQLite
//     already, and % is mod() (fmod), not SQLite's integer %.
//   - Strings compare with SQLite's BINARY collation (bytes, as Go does).
//     STARTSWITH, ENDSWITH and CONTAINS work on the bytes (CAST AS BLOB), so
//     NUL characters and invalid UTF-8 behave as in Go; LOWER, UPPER and
//     LENGTH call Go's strings.ToLower, strings.ToUpper and
//     utf8.RuneCountInString registered as SQL functions, because SQLite's
//     own are ASCII-only and stop at NUL.
//   - Every constant and every JSON path is a bound parameter: no text of
//     the query is ever part of the SQL.
//
// What is not compiled (errUnsupported, the store falls back to
// store.EvalDevices / EvalDeviceJobs): constants of Go types other than
// nil, bool, float64 and string, NaN constants (neither can come from the
// parser), and expressions nested so deeply that SQLite would reject the
// SQL (long chains of arithmetic; AND and OR chains are balanced instead).

// errUnsupported marks a query the compiler leaves to the reference
// evaluator.
var errUnsupported = errors.New("not compiled")

// maxSQLDepth bounds the estimated height of the compiled expression tree;
// SQLite rejects expressions deeper than 1000.
const maxSQLDepth = 600

type kind uint8

const (
	kUndef kind = iota // always undefined
	kNull              // the constant null
	kBool              // 1, 0, or NULL for undefined
	kNum               // REAL, or NULL for undefined
	kStr               // TEXT, or NULL for undefined
	kDyn               // a path: any JSON type, per row
)

// sqlExpr is a compiled expression.
type sqlExpr struct {
	k     kind
	v     string // the value (json_extract for kDyn)
	t     string // kDyn: the json_type
	depth int    // estimated SQL expression height
}

// target is the table a query reads.
type target struct {
	table string            // devices or device_jobs
	doc   string            // the column holding the query document
	cols  map[string]string // one-segment paths held in a TEXT column, always present
	keys  []string          // the page key columns, in order
	// rows is the SQL condition on the key columns that picks the
	// collection's rows ("" for all): devices and modules share a table,
	// a module's key holding '/' (store.IsModuleRow).
	rows string
}

var (
	devicesTarget = &target{table: "devices", doc: "twin", cols: map[string]string{"deviceId": "id"}, keys: []string{"id"},
		rows: "instr(id, '/') = 0"}
	// modulesTarget reads module rows: their deviceId is in the document
	// only (the key is "{deviceId}/{moduleId}").
	modulesTarget    = &target{table: "devices", doc: "twin", cols: map[string]string{}, keys: []string{"id"}, rows: "instr(id, '/') > 0"}
	deviceJobsTarget = &target{table: "device_jobs", doc: "qdoc", cols: map[string]string{"jobId": "job_id", "deviceId": "device_id"}, keys: []string{"job_id", "device_id"}}
)

// compiler turns expressions into SQL, collecting bound arguments. SQL
// refers to arguments by number (?N) so that a path used many times is
// bound once.
type compiler struct {
	t     *target
	args  []any
	paths map[string]string // JSON path → its parameter
}

func newCompiler(t *target) *compiler {
	return &compiler{t: t, paths: map[string]string{}}
}

func (c *compiler) param(v any) string {
	c.args = append(c.args, v)
	return "?" + strconv.Itoa(len(c.args))
}

// jsonPath returns the SQLite JSON path of a query path, with the first
// segment in its canonical spelling when it is a system field (as Resolve
// matches it), or ok false when the path can never resolve: no segments,
// or a segment that is not valid UTF-8 (document keys always are, since
// they come from encoding/json).
func jsonPath(segs []string) (p string, canon []string, ok bool) {
	if len(segs) == 0 {
		return "", nil, false
	}
	canon = append([]string(nil), segs...)
	if c, sys := query.SystemField(canon[0]); sys {
		// The documents' top-level keys are all canonical system field
		// names (TestDocumentKeysCanonical), so the case-insensitive
		// fallback of Resolve always lands on the canonical key.
		canon[0] = c
	}
	var b strings.Builder
	b.WriteString("$")
	for _, s := range canon {
		if !utf8.ValidString(s) {
			return "", nil, false
		}
		// SQLite reads a quoted label as the body of a JSON string, escapes
		// included, and compares it with the decoded document keys.
		q, _ := json.Marshal(s)
		b.WriteString(".")
		b.Write(q)
	}
	return b.String(), canon, true
}

// pathParam binds a JSON path once per statement.
func (c *compiler) pathParam(p string) string {
	if n, ok := c.paths[p]; ok {
		return n
	}
	n := c.param(p)
	c.paths[p] = n
	return n
}

func (c *compiler) path(segs []string) sqlExpr {
	p, canon, ok := jsonPath(segs)
	if !ok {
		return sqlExpr{k: kUndef}
	}
	if len(canon) == 1 {
		if col, ok := c.t.cols[canon[0]]; ok {
			return sqlExpr{k: kStr, v: col, depth: 1}
		}
	}
	n := c.pathParam(p)
	return sqlExpr{k: kDyn, v: "json_extract(" + c.t.doc + ", " + n + ")", t: "json_type(" + c.t.doc + ", " + n + ")", depth: 2}
}

const (
	numTypes = "('integer','real')"
	sqlNull  = "NULL"
)

// asBool converts e for a logical operator: bools stay, everything else
// is unknown.
func asBool(e sqlExpr) (string, int) {
	switch e.k {
	case kBool:
		return e.v, e.depth
	case kDyn:
		return "(CASE " + e.t + " WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)", e.depth + 1
	}
	return sqlNull, 1
}

// as converts e to kind k (kBool, kNum or kStr): the value when e has that
// type, else NULL. ok is false when e can never have it.
func as(k kind, e sqlExpr) (string, int, bool) {
	if e.k == k {
		return e.v, e.depth, true
	}
	if e.k != kDyn {
		return "", 0, false
	}
	switch k {
	case kNum:
		return "(CASE WHEN " + e.t + " IN " + numTypes + " THEN CAST(" + e.v + " AS REAL) END)", e.depth + 2, true
	case kStr:
		return "(CASE WHEN " + e.t + " = 'text' THEN " + e.v + " END)", e.depth + 1, true
	case kBool:
		s, d := asBool(e)
		return s, d, true
	}
	return "", 0, false
}

func boolExpr(v string, depth int) sqlExpr { return sqlExpr{k: kBool, v: v, depth: depth} }

var sqlOps = map[string]string{"=": "=", "!=": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">="}

func (c *compiler) compile(e query.Expr) (sqlExpr, error) {
	switch e := e.(type) {
	case nil:
		return sqlExpr{k: kUndef}, nil
	case query.All:
		return boolExpr("1", 1), nil
	case query.Const:
		return c.constant(e)
	case query.Path:
		return c.path(e.Segments), nil
	case query.Not:
		x, err := c.compile(e.X)
		if err != nil {
			return x, err
		}
		v, d := asBool(x)
		return boolExpr("(NOT "+v+")", d+1), nil
	case query.Neg:
		x, err := c.compile(e.X)
		if err != nil {
			return x, err
		}
		// Go negates without a finiteness check, and so does this.
		v, d, ok := as(kNum, x)
		if !ok {
			return sqlExpr{k: kUndef}, nil
		}
		return sqlExpr{k: kNum, v: "(-" + v + ")", depth: d + 1}, nil
	case query.Binary:
		switch e.Op {
		case "AND", "OR":
			return c.logic(e, c.boolean)
		}
		l, err := c.compile(e.L)
		if err != nil {
			return l, err
		}
		r, err := c.compile(e.R)
		if err != nil {
			return r, err
		}
		switch e.Op {
		case "+", "-", "*", "/", "%":
			return arith(e.Op, l, r), nil
		}
		if _, ok := sqlOps[e.Op]; !ok {
			return sqlExpr{k: kUndef}, nil
		}
		return compare(e.Op, l, r), nil
	case query.In:
		return c.in(e)
	case query.Call:
		return c.call(e)
	}
	return sqlExpr{}, fmt.Errorf("%w: expression %T", errUnsupported, e)
}

func (c *compiler) constant(e query.Const) (sqlExpr, error) {
	if e.Undefined {
		return sqlExpr{k: kUndef}, nil
	}
	switch v := e.Value.(type) {
	case nil:
		return sqlExpr{k: kNull}, nil
	case bool:
		n := int64(0)
		if v {
			n = 1
		}
		return boolExpr(c.param(n), 1), nil
	case float64:
		if math.IsNaN(v) {
			// SQLite binds NaN as NULL, which would make the constant
			// undefined; Go keeps it a number.
			return sqlExpr{}, fmt.Errorf("%w: NaN constant", errUnsupported)
		}
		return sqlExpr{k: kNum, v: c.param(v), depth: 1}, nil
	case string:
		return sqlExpr{k: kStr, v: c.param(v), depth: 1}, nil
	}
	return sqlExpr{}, fmt.Errorf("%w: constant of type %T", errUnsupported, e.Value)
}

// logic compiles a chain of one logical operator as a balanced tree: AND
// and OR are associative in Kleene logic and Eval has no short-circuit
// effects, and a balanced tree keeps long "deviceId = 'a' OR ..." chains
// far below SQLite's expression depth limit.
func (c *compiler) logic(e query.Binary, leaf func(query.Expr) (sqlExpr, error)) (sqlExpr, error) {
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
	parts := make([]sqlExpr, len(ops))
	for i, x := range ops {
		p, err := leaf(x)
		if err != nil {
			return p, err
		}
		parts[i] = p
	}
	for len(parts) > 1 {
		next := parts[:0:0]
		for i := 0; i < len(parts); i += 2 {
			if i+1 == len(parts) {
				next = append(next, parts[i])
				continue
			}
			l, r := parts[i], parts[i+1]
			next = append(next, boolExpr("("+l.v+" "+e.Op+" "+r.v+")", max(l.depth, r.depth)+1))
		}
		parts = next
	}
	return parts[0], nil
}

// boolean compiles e as a kBool expression.
func (c *compiler) boolean(e query.Expr) (sqlExpr, error) {
	x, err := c.compile(e)
	if err != nil {
		return x, err
	}
	return boolExpr(asBool(x)), nil
}

// truth compiles e where only whether it is true matters: the WHERE
// condition, and the operands of AND and OR chains there. A row whose
// condition is false and one whose condition is unknown are both left
// out, and whether a Kleene AND or OR is true depends only on which
// operands are true; so there a comparison of a path with a constant may
// be false where Eval makes it unknown. That allows the cheap form: one
// json_extract compared with the constant, and the type check after it,
// which SQLite's AND evaluates only for the rows that pass the
// comparison, so most rows cost one JSON lookup instead of two.
func (c *compiler) truth(e query.Expr) (sqlExpr, error) {
	switch e := e.(type) {
	case query.Binary:
		switch e.Op {
		case "AND", "OR":
			return c.logic(e, c.truth)
		case "=", "<", ">", "<=", ">=":
			if x, ok := c.truthCompare(e); ok {
				return x, nil
			}
		}
	case query.In:
		if x, ok := c.truthIn(e); ok {
			return x, nil
		}
	}
	return c.boolean(e)
}

// flipped is the comparison with its operands swapped.
var flipped = map[string]string{"=": "=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}

// truthCompare is truth's form of PATH op CONSTANT (either way round) for
// a string or number constant; ok is false for anything else.
func (c *compiler) truthCompare(e query.Binary) (sqlExpr, bool) {
	op := e.Op
	p, okP := e.L.(query.Path)
	k, okK := e.R.(query.Const)
	if !okP || !okK {
		p, okP = e.R.(query.Path)
		k, okK = e.L.(query.Const)
		op = flipped[op]
	}
	if !okP || !okK || k.Undefined {
		return sqlExpr{}, false
	}
	x := c.path(p.Segments)
	if x.k != kDyn {
		return sqlExpr{}, false
	}
	// json_extract gives JSON strings as TEXT, numbers as INTEGER or REAL,
	// true and false as 1 and 0, objects and arrays as their JSON TEXT, and
	// SQLite never finds TEXT equal to a number. Any other match the cheap
	// comparison lets through, the type check removes.
	var check string
	val := x.v
	switch v := k.Value.(type) {
	case string:
		if op != "=" || strings.HasPrefix(v, "{") || strings.HasPrefix(v, "[") {
			check = x.t + " = 'text'"
		}
	case float64:
		if math.IsNaN(v) {
			return sqlExpr{}, false
		}
		check = x.t + " IN " + numTypes
		// As Eval compares float64s: an integer text such as the
		// 4611686018427388000 of a float64 is not the float64 itself.
		val = "CAST(" + x.v + " AS REAL)"
	default:
		return sqlExpr{}, false
	}
	v := "(" + val + " " + sqlOps[op] + " " + c.param(k.Value)
	if check != "" {
		v += " AND " + check
	}
	return boolExpr(v+")", x.depth+2), true
}

// truthIn is truth's form of PATH IN [strings] (not NIN), none of them the text of
// a JSON object or array; ok is false for anything else.
func (c *compiler) truthIn(e query.In) (sqlExpr, bool) {
	p, ok := e.X.(query.Path)
	if !ok || e.Negate || len(e.List) == 0 {
		return sqlExpr{}, false
	}
	for _, k := range e.List {
		s, ok := k.Value.(string)
		if k.Undefined || !ok || strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[") {
			return sqlExpr{}, false
		}
	}
	x := c.path(p.Segments)
	if x.k != kDyn {
		return sqlExpr{}, false
	}
	items := make([]string, len(e.List))
	for i, k := range e.List {
		items[i] = c.param(k.Value)
	}
	return boolExpr("("+x.v+" IN ("+strings.Join(items, ", ")+"))", x.depth+1), true
}

// finite turns the infinities of an arithmetic result into NULL (SQLite
// already makes NaN NULL). 9e999 reads as +Inf in SQLite.
func finite(v string) string { return "nullif(nullif(" + v + ", 9e999), -9e999)" }

func arith(op string, l, r sqlExpr) sqlExpr {
	a, da, ok1 := as(kNum, l)
	b, db, ok2 := as(kNum, r)
	if !ok1 || !ok2 {
		return sqlExpr{k: kUndef}
	}
	var v string
	if op == "%" {
		v = "mod(" + a + ", " + b + ")"
	} else {
		v = "(" + a + " " + op + " " + b + ")"
	}
	return sqlExpr{k: kNum, v: finite(v), depth: max(da, db) + 3}
}

// compare applies a comparison: defined only between primitives of the
// same type, null only with = and !=.
func compare(op string, l, r sqlExpr) sqlExpr {
	undef := sqlExpr{k: kUndef}
	sop := sqlOps[op]
	if l.k == kUndef || r.k == kUndef {
		return undef
	}
	nullResult := ""
	switch op {
	case "=":
		nullResult = "1"
	case "!=":
		nullResult = "0"
	}
	switch {
	case l.k == kNull && r.k == kNull:
		if nullResult == "" {
			return undef
		}
		return boolExpr(nullResult, 1)
	case l.k == kNull || r.k == kNull:
		o := l
		if o.k == kNull {
			o = r
		}
		if o.k != kDyn || nullResult == "" {
			return undef
		}
		return boolExpr("(CASE WHEN "+o.t+" = 'null' THEN "+nullResult+" END)", o.depth+2)
	case l.k == kDyn && r.k == kDyn:
		var b strings.Builder
		b.WriteString("(CASE WHEN " + l.t + " IN " + numTypes + " AND " + r.t + " IN " + numTypes +
			" THEN CAST(" + l.v + " AS REAL) " + sop + " CAST(" + r.v + " AS REAL)")
		b.WriteString(" WHEN " + l.t + " = 'text' AND " + r.t + " = 'text' THEN " + l.v + " " + sop + " " + r.v)
		b.WriteString(" WHEN " + l.t + " IN ('true','false') AND " + r.t + " IN ('true','false') THEN " + l.v + " " + sop + " " + r.v)
		if nullResult != "" {
			b.WriteString(" WHEN " + l.t + " = 'null' AND " + r.t + " = 'null' THEN " + nullResult)
		}
		b.WriteString(" END)")
		return boolExpr(b.String(), max(l.depth, r.depth)+3)
	case l.k == kDyn:
		lv, dl, ok := as(r.k, l)
		if !ok {
			return undef
		}
		return boolExpr("("+lv+" "+sop+" "+r.v+")", max(dl, r.depth)+1)
	case r.k == kDyn:
		rv, dr, ok := as(l.k, r)
		if !ok {
			return undef
		}
		return boolExpr("("+l.v+" "+sop+" "+rv+")", max(l.depth, dr)+1)
	case l.k == r.k:
		return boolExpr("("+l.v+" "+sop+" "+r.v+")", max(l.depth, r.depth)+1)
	}
	return undef
}

// in compiles x IN [list] as Eval defines it: x = c1 OR x = c2 ... A
// constant of another type than x makes its comparison unknown, which SQL
// reproduces with a NULL in the IN list (no match then gives NULL, not 0).
func (c *compiler) in(e query.In) (sqlExpr, error) {
	x, err := c.compile(e.X)
	if err != nil {
		return x, err
	}
	var nums, strs, bools []string
	nulls := 0
	for _, ce := range e.List {
		k, err := c.constant(ce)
		if err != nil {
			return k, err
		}
		switch k.k {
		case kNum:
			nums = append(nums, k.v)
		case kStr:
			strs = append(strs, k.v)
		case kBool:
			bools = append(bools, k.v)
		case kNull:
			nulls++
		}
	}
	n := len(e.List)
	// member is "v IN (same-typed constants[, NULL])".
	member := func(v string, same []string) string {
		items := append([]string(nil), same...)
		if len(same) < n {
			items = append(items, sqlNull)
		}
		if len(same) == 0 {
			return sqlNull
		}
		return "(" + v + " IN (" + strings.Join(items, ", ") + "))"
	}
	var res sqlExpr
	switch x.k {
	case kUndef:
		res = sqlExpr{k: kUndef}
	case kNull:
		if nulls > 0 {
			res = boolExpr("1", 1)
		} else {
			res = sqlExpr{k: kUndef}
		}
	case kNum:
		res = boolExpr(member(x.v, nums), x.depth+1)
	case kStr:
		res = boolExpr(member(x.v, strs), x.depth+1)
	case kBool:
		res = boolExpr(member(x.v, bools), x.depth+1)
	case kDyn:
		nullRes := sqlNull
		if nulls > 0 {
			nullRes = "1"
		}
		v := "(CASE " + x.t +
			" WHEN 'integer' THEN " + member("CAST("+x.v+" AS REAL)", nums) +
			" WHEN 'real' THEN " + member(x.v, nums) +
			" WHEN 'text' THEN " + member(x.v, strs) +
			" WHEN 'true' THEN " + member(x.v, bools) +
			" WHEN 'false' THEN " + member(x.v, bools) +
			" WHEN 'null' THEN " + nullRes + " END)"
		res = boolExpr(v, x.depth+3)
	}
	if e.Negate {
		v, d := asBool(res)
		return boolExpr("(NOT "+v+")", d+1), nil
	}
	return res, nil
}

// defined is the SQL of "e is not undefined" for a static kind.
func isDefined(e sqlExpr) string {
	switch e.k {
	case kUndef:
		return "0"
	case kNull:
		return "1"
	case kDyn:
		return "(" + e.t + " IS NOT NULL)"
	}
	return "(" + e.v + " IS NOT NULL)"
}

func (c *compiler) call(e query.Call) (sqlExpr, error) {
	args := make([]sqlExpr, len(e.Args))
	for i, a := range e.Args {
		x, err := c.compile(a)
		if err != nil {
			return x, err
		}
		args[i] = x
	}
	undef := sqlExpr{k: kUndef}
	if len(args) == 1 {
		x := args[0]
		// typeIs is IS_STRING, IS_NUMBER, ...: static kinds answer from
		// definedness, paths from json_type (never NULL: IS and coalesce).
		typeIs := func(k kind, jsonTypes string) sqlExpr {
			switch x.k {
			case k:
				return boolExpr(isDefined(x), x.depth+1)
			case kDyn:
				return boolExpr("coalesce("+x.t+" IN "+jsonTypes+", 0)", x.depth+2)
			}
			return boolExpr("0", 1)
		}
		switch e.Name {
		case "IS_DEFINED":
			return boolExpr(isDefined(x), x.depth+1), nil
		case "IS_NULL":
			if x.k == kNull {
				return boolExpr("1", 1), nil
			}
			return typeIs(kNull, "('null')"), nil
		case "IS_STRING":
			return typeIs(kStr, "('text')"), nil
		case "IS_NUMBER":
			return typeIs(kNum, numTypes), nil
		case "IS_BOOL":
			return typeIs(kBool, "('true','false')"), nil
		case "IS_OBJECT":
			return typeIs(kUndef, "('object')"), nil // no static kind is an object
		case "IS_ARRAY":
			return typeIs(kUndef, "('array')"), nil
		case "IS_PRIMITIVE":
			switch x.k {
			case kDyn:
				return boolExpr("coalesce("+x.t+" IN ('null','true','false','integer','real','text'), 0)", x.depth+2), nil
			}
			return boolExpr(isDefined(x), x.depth+1), nil
		}
		s, d, ok := as(kStr, x)
		if !ok {
			return undef, nil
		}
		blob := "CAST(" + s + " AS BLOB)"
		switch e.Name {
		case "LOWER":
			return sqlExpr{k: kStr, v: fnLower + "(" + blob + ")", depth: d + 2}, nil
		case "UPPER":
			return sqlExpr{k: kStr, v: fnUpper + "(" + blob + ")", depth: d + 2}, nil
		case "LENGTH":
			return sqlExpr{k: kNum, v: fnLength + "(" + blob + ")", depth: d + 2}, nil
		}
		return undef, nil
	}
	if len(args) == 2 {
		s, ds, ok1 := as(kStr, args[0])
		t, dt, ok2 := as(kStr, args[1])
		if !ok1 || !ok2 {
			return undef, nil
		}
		a, b := "CAST("+s+" AS BLOB)", "CAST("+t+" AS BLOB)"
		d := max(ds, dt) + 4
		switch e.Name {
		case "STARTSWITH":
			return boolExpr("(instr("+a+", "+b+") = 1)", d), nil
		case "ENDSWITH":
			// length of a BLOB counts bytes. substr of an empty BLOB is
			// NULL in SQLite, so the empty suffix is decided apart: it ends
			// every defined string.
			return boolExpr("(CASE WHEN length("+b+") = 0 THEN length("+a+") >= 0 ELSE (length("+a+") >= length("+b+") AND substr("+a+", length("+a+") - length("+b+") + 1) = "+b+") END)", d), nil
		case "CONTAINS":
			return boolExpr("(instr("+a+", "+b+") > 0)", d), nil
		}
	}
	return undef, nil
}

// Go implementations of the string functions whose SQLite built-ins differ
// from Go (ASCII-only case mapping, LENGTH stopping at NUL). They take a
// BLOB so that NULs survive the driver, and give NULL for NULL.
const (
	fnLower  = "iotjobs_query_lower"
	fnUpper  = "iotjobs_query_upper"
	fnLength = "iotjobs_query_length"
)

func init() {
	str := func(f func(string) driver.Value) func(*msqlite.FunctionContext, []driver.Value) (driver.Value, error) {
		return func(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			switch a := args[0].(type) {
			case []byte:
				return f(string(a)), nil
			case string:
				return f(a), nil
			}
			return nil, nil
		}
	}
	msqlite.MustRegisterDeterministicScalarFunction(fnLower, 1, str(func(s string) driver.Value { return strings.ToLower(s) }))
	msqlite.MustRegisterDeterministicScalarFunction(fnUpper, 1, str(func(s string) driver.Value { return strings.ToUpper(s) }))
	msqlite.MustRegisterDeterministicScalarFunction(fnLength, 1, str(func(s string) driver.Value { return float64(utf8.RuneCountInString(s)) }))
}

// plan is a compiled query: one SQL statement and its arguments.
type plan struct {
	sql     string
	args    []any
	grouped bool
	counted bool       // grouped and counted by fnGroups: one row, one column
	star    bool       // SELECT *: the last column is the document
	paths   [][]string // the projected (or, grouped, fetched) paths, canonical, one column each
	keys    []string   // output keys of the projected paths (not grouped)
}

// compileQuery compiles q for a page after the key after (split into the
// target's key columns) of at most limit rows (ignored when grouped).
func compileQuery(t *target, q *query.Query, after []string, limit int) (*plan, error) {
	c := newCompiler(t)
	p := &plan{grouped: q.Grouped()}
	if p.grouped && q.Select == nil {
		return nil, fmt.Errorf("%w: GROUP BY without a SELECT list", errUnsupported)
	}
	var cols []string
	cols = append(cols, t.keys...)
	switch {
	case q.Select == nil:
		p.star = true
		cols = append(cols, "json("+t.doc+")")
	case !p.grouped:
		qkeys := q.Keys()
		for i, pr := range q.Select {
			jp, canon, ok := jsonPath(pr.Path.Segments)
			if !ok {
				continue // never defined: never in a row
			}
			p.paths = append(p.paths, canon)
			p.keys = append(p.keys, qkeys[i])
			cols = append(cols, t.doc+" -> "+c.pathParam(jp))
		}
	default:
		// Grouped rows are folded in Go by query.Eval over documents that
		// hold only the paths it reads (see fetchPaths).
		for _, segs := range fetchPaths(q) {
			jp, canon, _ := jsonPath(segs)
			p.paths = append(p.paths, canon)
			cols = append(cols, t.doc+" -> "+c.pathParam(jp))
		}
		p.counted = countOnly(q) && len(t.keys) == 1
	}
	if p.counted {
		// One pass counts the groups (see fnGroups). The fetched paths are
		// the GROUP BY paths (projections must be among them), less those
		// inside another, whose values the enclosing value determines.
		cols = []string{fnGroups + "(" + strings.Join(append([]string{t.keys[0]}, cols[1:]...), ", ") + ")"}
	}
	where := ""
	if _, all := q.Where.(query.All); q.Where != nil && !all {
		w, err := c.truth(q.Where)
		if err != nil {
			return nil, err
		}
		v, d := w.v, w.depth
		if d > maxSQLDepth {
			return nil, fmt.Errorf("%w: condition nested %d levels deep", errUnsupported, d)
		}
		where = " AND " + v
	}
	var keyCond string
	switch len(t.keys) {
	case 1:
		keyCond = t.keys[0] + " > " + c.param(after[0])
	default:
		a0, a1 := c.param(after[0]), c.param(after[1])
		keyCond = "(" + t.keys[0] + " > " + a0 + " OR (" + t.keys[0] + " = " + a0 + " AND " + t.keys[1] + " > " + a1 + "))"
	}
	if t.rows != "" {
		keyCond += " AND " + t.rows
	}
	var b strings.Builder
	b.WriteString("SELECT " + strings.Join(cols, ", ") + " FROM " + t.table + " WHERE " + keyCond + where)
	if !p.counted {
		b.WriteString(" ORDER BY " + strings.Join(t.keys, ", "))
	}
	if !p.grouped {
		b.WriteString(" LIMIT " + c.param(int64(limit)+1))
	}
	p.sql, p.args = b.String(), c.args
	return p, nil
}

// countOnly reports whether COUNT() is q's only aggregate.
func countOnly(q *query.Query) bool {
	for _, pr := range q.Select {
		if pr.Agg != "" && pr.Agg != query.AggCount {
			return false
		}
	}
	return true
}

// fetchPaths lists the paths a grouped query reads (GROUP BY paths,
// projected paths and aggregate arguments) that can resolve, leaving out
// those inside another listed path, whose value already holds them.
func fetchPaths(q *query.Query) [][]string {
	var all [][]string
	add := func(segs []string) {
		if _, canon, ok := jsonPath(segs); ok {
			all = append(all, canon)
		}
	}
	for _, g := range q.GroupBy {
		add(g.Segments)
	}
	for _, pr := range q.Select {
		add(pr.Path.Segments)
	}
	return store.OutermostPaths(all)
}

// setPath stores v at segs in doc, creating objects on the way.
func setPath(doc map[string]any, segs []string, v any) {
	m := doc
	for _, s := range segs[:len(segs)-1] {
		next, ok := m[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[s] = next
		}
		m = next
	}
	m[segs[len(segs)-1]] = v
}
