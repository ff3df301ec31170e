package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// undefinedValue is the value of a missing property and of any operation
// without a defined result. It is distinct from nil, which is JSON null.
type undefinedValue struct{}

var undef any = undefinedValue{}

// Match reports whether the condition e holds for doc: true only when e
// evaluates to boolean true. A nil e (no WHERE clause) matches every
// document. See the package documentation for the rules.
func Match(e Expr, doc map[string]any) bool {
	if e == nil {
		return true
	}
	b, ok := eval(e, doc).(bool)
	return ok && b
}

// Value evaluates e against doc. ok is false when the result is undefined;
// otherwise v is nil (null), a bool, a float64, a string, a map[string]any
// or a []any. Conditions that are neither true nor false are undefined.
func Value(e Expr, doc map[string]any) (v any, ok bool) {
	v = eval(e, doc)
	if v == undef {
		return nil, false
	}
	return v, true
}

// Resolve looks a path up in doc. The first segment matches the top-level
// system fields (deviceId, status, ...) case-insensitively; the rest match
// object keys exactly. ok is false when the path is missing or crosses a
// value that is not an object.
func Resolve(doc map[string]any, segments []string) (v any, ok bool) {
	v = resolve(doc, segments)
	if v == undef {
		return nil, false
	}
	return v, true
}

func resolve(doc map[string]any, segs []string) any {
	if len(segs) == 0 {
		return undef
	}
	var cur any = doc
	for i, s := range segs {
		m, ok := cur.(map[string]any)
		if !ok {
			return undef
		}
		v, ok := m[s]
		if !ok && i == 0 {
			if c, sys := systemFields[strings.ToLower(s)]; sys {
				v, ok = m[c]
			}
		}
		if !ok {
			return undef
		}
		cur = v
	}
	return norm(cur)
}

// norm maps Go numbers of every kind (documents built in code rather than
// decoded by encoding/json) to float64.
func norm(v any) any {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int8:
		return float64(v)
	case int16:
		return float64(v)
	case int32:
		return float64(v)
	case int64:
		return float64(v)
	case uint:
		return float64(v)
	case uint8:
		return float64(v)
	case uint16:
		return float64(v)
	case uint32:
		return float64(v)
	case uint64:
		return float64(v)
	case float32:
		return float64(v)
	case json.Number:
		if f, err := v.Float64(); err == nil {
			return f
		}
		return string(v)
	}
	return v
}

func eval(e Expr, doc map[string]any) any {
	switch e := e.(type) {
	case All:
		return true
	case Const:
		if e.Undefined {
			return undef
		}
		return norm(e.Value)
	case Path:
		return resolve(doc, e.Segments)
	case Not:
		return not(eval(e.X, doc))
	case Neg:
		if f, ok := eval(e.X, doc).(float64); ok {
			return -f
		}
		return undef
	case Binary:
		l, r := eval(e.L, doc), eval(e.R, doc)
		switch e.Op {
		case "AND":
			return and(l, r)
		case "OR":
			return or(l, r)
		case "+", "-", "*", "/", "%":
			return arith(e.Op, l, r)
		}
		return compare(e.Op, l, r)
	case In:
		x := eval(e.X, doc)
		var res any = false
		for _, c := range e.List {
			res = or(res, compare("=", x, eval(c, doc)))
		}
		if e.Negate {
			return not(res)
		}
		return res
	case Call:
		return call(e, doc)
	}
	return undef
}

// Three-valued logic: true, false, or unknown (anything that is not a
// bool, including undefined).
func not(v any) any {
	if b, ok := v.(bool); ok {
		return !b
	}
	return undef
}

func and(l, r any) any {
	lb, lok := l.(bool)
	rb, rok := r.(bool)
	switch {
	case lok && !lb || rok && !rb:
		return false
	case lok && rok:
		return true
	}
	return undef
}

func or(l, r any) any {
	lb, lok := l.(bool)
	rb, rok := r.(bool)
	switch {
	case lok && lb || rok && rb:
		return true
	case lok && rok:
		return false
	}
	return undef
}

// compare applies a comparison operator. Only primitives of the same type
// compare: numbers, strings (by bytes) and bools (false < true) with every
// operator, null with = and != only. Anything else is undefined.
func compare(op string, l, r any) any {
	var c int
	switch l := l.(type) {
	case float64:
		r, ok := r.(float64)
		if !ok {
			return undef
		}
		switch {
		case l < r:
			c = -1
		case l > r:
			c = 1
		case l != r: // NaN, from a document built in code
			return undef
		}
	case string:
		r, ok := r.(string)
		if !ok {
			return undef
		}
		c = strings.Compare(l, r)
	case bool:
		r, ok := r.(bool)
		if !ok {
			return undef
		}
		switch {
		case !l && r:
			c = -1
		case l && !r:
			c = 1
		}
	case nil:
		if r != nil {
			return undef
		}
		switch op {
		case "=":
			return true
		case "!=":
			return false
		}
		return undef
	default:
		return undef
	}
	switch op {
	case "=":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case ">":
		return c > 0
	case "<=":
		return c <= 0
	case ">=":
		return c >= 0
	}
	return undef
}

// arith applies + - * / % to two numbers. Anything else, division by zero
// and results that are not finite are undefined.
func arith(op string, l, r any) any {
	a, ok1 := l.(float64)
	b, ok2 := r.(float64)
	if !ok1 || !ok2 {
		return undef
	}
	var v float64
	switch op {
	case "+":
		v = a + b
	case "-":
		v = a - b
	case "*":
		v = a * b
	case "/":
		if b == 0 {
			return undef
		}
		v = a / b
	case "%":
		if b == 0 {
			return undef
		}
		v = math.Mod(a, b)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return undef
	}
	return v
}

func call(e Call, doc map[string]any) any {
	args := make([]any, len(e.Args))
	for i, a := range e.Args {
		args[i] = eval(a, doc)
	}
	if len(args) == 1 {
		v := args[0]
		switch e.Name {
		case "IS_DEFINED":
			return v != undef
		case "IS_NULL":
			return v == nil
		case "IS_STRING":
			_, ok := v.(string)
			return ok
		case "IS_NUMBER":
			_, ok := v.(float64)
			return ok
		case "IS_BOOL":
			_, ok := v.(bool)
			return ok
		case "IS_OBJECT":
			_, ok := v.(map[string]any)
			return ok
		case "IS_ARRAY":
			_, ok := v.([]any)
			return ok
		case "IS_PRIMITIVE":
			switch v.(type) {
			case nil, bool, float64, string:
				return true
			}
			return false
		}
		s, ok := v.(string)
		if !ok {
			return undef
		}
		switch e.Name {
		case "LOWER":
			return strings.ToLower(s)
		case "UPPER":
			return strings.ToUpper(s)
		case "LENGTH":
			return float64(utf8.RuneCountInString(s))
		}
		return undef
	}
	if len(args) == 2 {
		s, ok1 := args[0].(string)
		t, ok2 := args[1].(string)
		if !ok1 || !ok2 {
			return undef
		}
		switch e.Name {
		case "STARTSWITH":
			return strings.HasPrefix(s, t)
		case "ENDSWITH":
			return strings.HasSuffix(s, t)
		case "CONTAINS":
			return strings.Contains(s, t)
		}
	}
	return undef
}

// Eval runs q over docs: it keeps the documents Match accepts, in input
// order, and then
//   - for SELECT *, returns those documents themselves;
//   - for a projection list, returns one row per document keyed by
//     Query.Keys, leaving out paths that are undefined;
//   - when the query aggregates (Query.Grouped), returns one row per group
//     of equal GROUP BY values, groups in order of first appearance, or
//     exactly one row when there is no GROUP BY (COUNT() is then 0 over
//     no documents).
//
// TOP n keeps the first n rows. Aggregates: COUNT() counts documents; SUM
// and AVG take the numbers among the values (SUM of none is 0, AVG of none
// is left out); MIN and MAX take numbers and strings, numbers ordering
// before strings, and are left out when there are none.
func Eval(q *Query, docs []map[string]any) ([]map[string]any, error) {
	if q == nil {
		return nil, errors.New("eval query: nil query")
	}
	out := []map[string]any{}
	if !q.Grouped() {
		keys := q.Keys()
		for _, d := range docs {
			if q.Top >= 0 && len(out) >= q.Top {
				break
			}
			if !Match(q.Where, d) {
				continue
			}
			if q.Select == nil {
				out = append(out, d)
				continue
			}
			row := make(map[string]any, len(keys))
			for i, pr := range q.Select {
				if v := resolve(d, pr.Path.Segments); v != undef {
					row[keys[i]] = v
				}
			}
			out = append(out, row)
		}
		return out, nil
	}
	return evalGroups(q, docs, nil)
}

// EvalCounts is Eval for a grouped query whose only aggregate is COUNT(),
// over documents grouped already: docs[i] stands for counts[i] documents
// that Match q.Where and agree on every GROUP BY path, docs[i] being the
// first of them in input order, and docs are in the order of their
// first documents. It lets a store count in its own engine and still give
// Eval's rows: the groups that Eval would merge (values a store may tell
// apart, such as -0 and 0) are merged, in order of first appearance.
func EvalCounts(q *Query, docs []map[string]any, counts []int) ([]map[string]any, error) {
	if q == nil || !q.Grouped() || len(docs) != len(counts) {
		return nil, errors.New("eval counts: want a grouped query and one count per document")
	}
	for _, pr := range q.Select {
		if pr.Agg != "" && pr.Agg != AggCount {
			return nil, fmt.Errorf("eval counts: %s() needs the documents themselves", pr.Agg)
		}
	}
	all := *q
	all.Where = nil
	return evalGroups(&all, docs, counts)
}

// evalGroups folds the grouped query q over docs, docs[i] standing for
// counts[i] documents (for one each when counts is nil).
func evalGroups(q *Query, docs []map[string]any, counts []int) ([]map[string]any, error) {
	if q.Select == nil {
		return nil, fmt.Errorf("eval query: GROUP BY needs a SELECT list")
	}
	type group struct {
		docs []map[string]any
		n    int
	}
	var order []*group
	groups := map[string]*group{}
	if len(q.GroupBy) == 0 {
		order = append(order, &group{})
	}
	for i, d := range docs {
		if !Match(q.Where, d) {
			continue
		}
		n := 1
		if counts != nil {
			n = counts[i]
		}
		var g *group
		if len(q.GroupBy) == 0 {
			g = order[0]
		} else {
			var k strings.Builder
			for _, p := range q.GroupBy {
				k.WriteString(groupKey(resolve(d, p.Segments)))
				k.WriteByte(0)
			}
			g = groups[k.String()]
			if g == nil {
				g = &group{}
				groups[k.String()] = g
				order = append(order, g)
			}
		}
		g.docs = append(g.docs, d)
		g.n += n
	}
	out := []map[string]any{}
	keys := q.Keys()
	for _, g := range order {
		if q.Top >= 0 && len(out) >= q.Top {
			break
		}
		row := make(map[string]any, len(keys))
		for i, pr := range q.Select {
			var v any
			switch {
			case pr.Agg == AggCount:
				v = float64(g.n)
			case pr.Agg != "":
				v = aggregate(pr, g.docs)
			default:
				v = undef
				if len(g.docs) > 0 {
					v = resolve(g.docs[0], pr.Path.Segments)
				}
			}
			if v != undef {
				row[keys[i]] = v
			}
		}
		out = append(out, row)
	}
	return out, nil
}

// groupKey encodes a value so that equal values, and only those, give
// equal keys.
func groupKey(v any) string {
	switch v := v.(type) {
	case undefinedValue:
		return "u"
	case nil:
		return "z"
	case bool:
		return "b" + strconv.FormatBool(v)
	case float64:
		if v == 0 {
			v = 0 // -0 and 0 are one group
		}
		return "n" + strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return "s" + strconv.Quote(v)
	}
	if b, err := json.Marshal(v); err == nil {
		return "j" + string(b)
	}
	return fmt.Sprintf("x%#v", v)
}

func aggregate(pr Projection, docs []map[string]any) any {
	if pr.Agg == AggCount {
		return float64(len(docs))
	}
	var sum float64
	var n int
	var best any = undef
	for _, d := range docs {
		v := resolve(d, pr.Path.Segments)
		switch v := v.(type) {
		case float64:
			sum += v
			n++
		case string:
		default:
			continue
		}
		if best == undef || pr.Agg == AggMin && less(v, best) || pr.Agg == AggMax && less(best, v) {
			best = v
		}
	}
	switch pr.Agg {
	case AggSum:
		if math.IsInf(sum, 0) || math.IsNaN(sum) {
			return undef
		}
		return sum
	case AggAvg:
		if avg := sum / float64(n); n > 0 && !math.IsInf(avg, 0) && !math.IsNaN(avg) {
			return avg
		}
		return undef
	case AggMin, AggMax:
		return best
	}
	return undef
}

// less orders the values MIN and MAX consider: numbers before strings.
func less(a, b any) bool {
	switch a := a.(type) {
	case float64:
		if b, ok := b.(float64); ok {
			return a < b
		}
		return true
	case string:
		if b, ok := b.(string); ok {
			return a < b
		}
	}
	return false
}
