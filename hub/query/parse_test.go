package query

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// parseOK lists queries that must parse, with their canonical text.
var parseOK = []struct {
	name, src, want string
}{
	{"select star", "SELECT * FROM devices", "SELECT * FROM devices"},
	{"azure region", "SELECT * FROM devices WHERE tags.location.region = 'US'",
		"SELECT * FROM devices WHERE tags.location.region = 'US'"},
	{"count", "SELECT COUNT() AS numberOfDevices FROM devices",
		"SELECT COUNT() AS numberOfDevices FROM devices"},
	{"group by", "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
		"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status"},
	{"jobs", "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'myJobId'",
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'myJobId'"},
	{"jobs bare path", "select * from Devices.Jobs where JOBID = 'x' and devices.jobs.status = 'completed'",
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'x' AND devices.jobs.status = 'completed'"},
	{"modules", "SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning'",
		"SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning'"},
	{"modules prefix stripped", "SELECT * FROM devices.modules WHERE devices.modules.moduleId = 'm'",
		"SELECT * FROM devices.modules WHERE moduleId = 'm'"},
	{"lower-case keywords", "select deviceId from devices where deviceId in ['a','b']",
		"SELECT deviceId FROM devices WHERE deviceId IN ['a', 'b']"},
	{"system field case", "SELECT LastActivityTime FROM devices WHERE DEVICEID = 'x'",
		"SELECT lastActivityTime FROM devices WHERE deviceId = 'x'"},
	{"top", "SELECT TOP 5 * FROM devices", "SELECT TOP 5 * FROM devices"},
	{"top zero", "SELECT TOP 0 deviceId FROM devices", "SELECT TOP 0 deviceId FROM devices"},
	{"aggregates", "SELECT AVG(tags.floor), SUM(tags.floor) AS s, MIN(tags.floor), max(tags.floor) FROM devices",
		"SELECT AVG(tags.floor), SUM(tags.floor) AS s, MIN(tags.floor), MAX(tags.floor) FROM devices"},
	{"multi group by", "SELECT status, tags.floor, COUNT() FROM devices GROUP BY status, tags.floor",
		"SELECT status, tags.floor, COUNT() FROM devices GROUP BY status, tags.floor"},
	{"escaped alias", "SELECT COUNT() AS [[count]] FROM devices", "SELECT COUNT() AS [[count]] FROM devices"},
	{"where then group", "SELECT status, COUNT() AS n FROM devices WHERE tags.floor >= 3 GROUP BY status",
		"SELECT status, COUNT() AS n FROM devices WHERE tags.floor >= 3 GROUP BY status"},
	{"not in", "SELECT * FROM devices WHERE deviceId NOT IN ['a']", "SELECT * FROM devices WHERE deviceId NIN ['a']"},
	{"newlines", "SELECT *\n\tFROM devices\r\nWHERE\tstatus='enabled'", "SELECT * FROM devices WHERE status = 'enabled'"},
}

// condOK lists conditions that must parse, with their canonical text.
var condOK = []struct {
	name, src, want string
}{
	{"star", "*", "*"},
	{"star with spaces", "  *\n", "*"},
	{"in list", "deviceId IN ['a','b']", "deviceId IN ['a', 'b']"},
	{"floor and not defined", "tags.floor >= 3 AND NOT IS_DEFINED(properties.reported.x)",
		"tags.floor >= 3 AND NOT IS_DEFINED(properties.reported.x)"},
	{"nin", "deviceId nin [1, -2, 'x', true, false, null, undefined]",
		"deviceId NIN [1, -2, 'x', true, false, null, undefined]"},
	{"ne spelling", "status <> 'disabled'", "status != 'disabled'"},
	{"precedence", "a = 1 OR b = 2 AND c = 3", "a = 1 OR b = 2 AND c = 3"},
	{"parens kept", "(a = 1 OR b = 2) AND c = 3", "(a = 1 OR b = 2) AND c = 3"},
	{"parens dropped", "((a = 1)) AND (b = 2)", "a = 1 AND b = 2"},
	{"right assoc needs parens", "a = 1 AND (b = 2 AND c = 3)", "a = 1 AND (b = 2 AND c = 3)"},
	{"arith", "tags.a + tags.b * 2 - 1 > 10 % 3", "tags.a + tags.b * 2 - 1 > 10 % 3"},
	{"arith parens", "(tags.a + tags.b) * 2 = tags.c - (tags.d - 1)", "(tags.a + tags.b) * 2 = tags.c - (tags.d - 1)"},
	{"negative number", "tags.t > -5.5", "tags.t > -5.5"},
	{"minus minus", "tags.t - -5 = 1", "tags.t - -5 = 1"},
	{"neg path", "-tags.t = 1", "-tags.t = 1"},
	{"neg parens", "-(tags.t + 1) = 1", "-(tags.t + 1) = 1"},
	{"neg of neg const", "-(-5) = 5", "-(-5) = 5"},
	{"hex", "tags.mask = 0xFF", "tags.mask = 255"},
	{"exponent", "tags.x < 1.5e3 AND tags.y > 2E-3", "tags.x < 1500 AND tags.y > 0.002"},
	{"big exponent", "tags.x < 1e300", "tags.x < 1e+300"},
	{"double quoted", `tags.name = "it's"`, `tags.name = 'it\'s'`},
	{"escapes", `tags.s = 'a\'b\"c\\d\u00e9\n'`, `tags.s = 'a\'b"c\\dé\u000a'`},
	{"surrogate pair", `tags.s = '\ud83d\ude00'`, "tags.s = '😀'"},
	{"escaped segment", "tags.[[group]] = 1 AND tags.[[a b]] = 2", "tags.[[group]] = 1 AND tags.[[a b]] = 2"},
	{"escaped first segment", "[[tags]].x = 1", "tags.x = 1"},
	{"dollar and hyphen", "properties.desired.$version > 2 AND tags.my-tag = 'x'",
		"properties.desired.$version > 2 AND tags.my-tag = 'x'"},
	{"functions", "startswith(deviceId, 'a') OR STARTS_WITH(deviceId, 'b') OR ends_with(deviceId, 'c') OR CONTAINS(LOWER(deviceId), 'x')",
		"STARTSWITH(deviceId, 'a') OR STARTSWITH(deviceId, 'b') OR ENDSWITH(deviceId, 'c') OR CONTAINS(LOWER(deviceId), 'x')"},
	{"type functions", "IS_NULL(a) AND IS_STRING(a) AND IS_NUMBER(a) AND IS_BOOL(a) AND IS_OBJECT(a) AND IS_ARRAY(a) AND IS_PRIMITIVE(a) AND LENGTH(UPPER(a)) = 1",
		"IS_NULL(a) AND IS_STRING(a) AND IS_NUMBER(a) AND IS_BOOL(a) AND IS_OBJECT(a) AND IS_ARRAY(a) AND IS_PRIMITIVE(a) AND LENGTH(UPPER(a)) = 1"},
	{"not not", "NOT NOT a = 1", "NOT NOT a = 1"},
	{"not or", "NOT (a = 1 OR b = 1)", "NOT (a = 1 OR b = 1)"},
	{"compare bools", "(a = 1) = true", "(a = 1) = true"},
	{"bare bool", "tags.enabled", "tags.enabled"},
	{"function name as path", "tags.lower = 'x'", "tags.lower = 'x'"},
	{"unicode name", "tags.straße = 'x'", "tags.straße = 'x'"},
	{"in of arith", "tags.a + 1 IN [2]", "tags.a + 1 IN [2]"},
	{"in of paren", "(a = 1) IN [true]", "(a = 1) IN [true]"},
}

func TestParse(t *testing.T) {
	for _, tc := range parseOK {
		t.Run(tc.name, func(t *testing.T) {
			q, err := Parse(tc.src)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.src, err)
			}
			if got := q.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			q2, err := Parse(q.String())
			if err != nil {
				t.Fatalf("re-parse %q: %v", q.String(), err)
			}
			if !reflect.DeepEqual(stripPos(q2), stripPos(q)) {
				t.Errorf("re-parsed tree differs:\n%#v\n%#v", q2, q)
			}
		})
	}
}

func TestParseCondition(t *testing.T) {
	for _, tc := range condOK {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseCondition(tc.src)
			if err != nil {
				t.Fatalf("ParseCondition(%q): %v", tc.src, err)
			}
			if got := e.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			e2, err := ParseCondition(e.String())
			if err != nil {
				t.Fatalf("re-parse %q: %v", e.String(), err)
			}
			if e2.String() != e.String() {
				t.Errorf("re-parse String() = %q, want %q", e2.String(), e.String())
			}
		})
	}
}

// stripPos zeroes every offset so trees can be compared structurally.
func stripPos(q *Query) *Query {
	c := *q
	c.Select = nil
	for _, p := range q.Select {
		p.Pos, p.Path.Pos = 0, 0
		c.Select = append(c.Select, p)
	}
	c.GroupBy = nil
	for _, p := range q.GroupBy {
		p.Pos = 0
		c.GroupBy = append(c.GroupBy, p)
	}
	c.Where = stripExpr(q.Where)
	return &c
}

func stripExpr(e Expr) Expr {
	switch e := e.(type) {
	case Const:
		e.Pos = 0
		return e
	case Path:
		e.Pos = 0
		return e
	case Binary:
		return Binary{Op: e.Op, L: stripExpr(e.L), R: stripExpr(e.R)}
	case Not:
		return Not{X: stripExpr(e.X)}
	case Neg:
		return Neg{X: stripExpr(e.X)}
	case In:
		list := make([]Const, len(e.List))
		for i, c := range e.List {
			c.Pos = 0
			list[i] = c
		}
		return In{X: stripExpr(e.X), List: list, Negate: e.Negate}
	case Call:
		var args []Expr
		for _, a := range e.Args {
			args = append(args, stripExpr(a))
		}
		return Call{Name: e.Name, Args: args}
	case All:
		return All{}
	}
	return e
}

func TestParseTree(t *testing.T) {
	e, err := ParseCondition("tags.floor >= 3 AND NOT deviceId IN ['a', -1]")
	if err != nil {
		t.Fatal(err)
	}
	want := Binary{Op: "AND", Pos: 16,
		L: Binary{Op: ">=", Pos: 11, L: Path{Segments: []string{"tags", "floor"}, Pos: 0}, R: Const{Value: 3.0, Pos: 14}},
		R: Not{Pos: 20, X: In{Pos: 33, X: Path{Segments: []string{"deviceId"}, Pos: 24},
			List: []Const{{Value: "a", Pos: 37}, {Value: -1.0, Pos: 42}}}},
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("tree:\n got %#v\nwant %#v", e, want)
	}
	q, err := Parse("SELECT TOP 2 tags.x AS y, COUNT() FROM devices GROUP BY tags.x")
	if err != nil {
		t.Fatal(err)
	}
	wantQ := &Query{Top: 2, From: Devices,
		Select: []Projection{
			{Path: Path{Segments: []string{"tags", "x"}, Pos: 13}, As: "y", Pos: 13},
			{Agg: AggCount, Pos: 26},
		},
		GroupBy: []Path{{Segments: []string{"tags", "x"}, Pos: 56}},
	}
	if !reflect.DeepEqual(q, wantQ) {
		t.Errorf("query:\n got %#v\nwant %#v", q, wantQ)
	}
	if got := q.Keys(); !reflect.DeepEqual(got, []string{"y", "$1"}) {
		t.Errorf("Keys() = %q", got)
	}
	if all, _ := ParseCondition(" * "); all != (All{Pos: 1}) {
		t.Errorf("ParseCondition(\" * \") = %#v, want All{Pos: 1}", all)
	}
}

// parseErr lists invalid queries with the offset and a fragment of the
// message they must give. Conditions start with "WHERE " stripped: a name
// starting with "cond:" is parsed with ParseCondition.
var parseErr = []struct {
	name, src string
	off       int
	msg       string
}{
	{"empty", "", 0, "expected SELECT at the start of the query, found end of query"},
	{"no select", "FROM devices", 0, "expected SELECT"},
	{"no from", "SELECT *", 8, "expected ',' or FROM after the SELECT list, found end of query"},
	{"bad collection", "SELECT * FROM twins", 14, "expected a collection (devices, devices.modules or devices.jobs) after FROM, found 'twins'"},
	{"bad sub collection", "SELECT * FROM devices.foo", 22, "expected jobs or modules after 'devices.', found 'foo'"},
	{"top not number", "SELECT TOP x * FROM devices", 11, "TOP must be followed by a whole number, found 'x'"},
	{"top fraction", "SELECT TOP 1.5 * FROM devices", 11, "TOP must be followed by a whole number, found number 1.5"},
	{"where empty", "SELECT * FROM devices WHERE", 27, "expected a value (a property path, constant, function call or parenthesised condition), found end of query"},
	{"trailing junk", "SELECT * FROM devices WHERE a = 1 b", 34, "expected AND, OR, GROUP BY or end of query after the condition, found 'b'"},
	{"after collection", "SELECT * FROM devices LIMIT 5", 22, "expected WHERE, GROUP BY or end of query, found 'LIMIT'"},
	{"group without by", "SELECT status, COUNT() FROM devices GROUP status", 42, "expected BY after GROUP, found 'status'"},
	{"group by star", "SELECT * FROM devices GROUP BY status", 22, "GROUP BY needs a SELECT list instead of *"},
	{"ungrouped path", "SELECT deviceId, COUNT() FROM devices", 7, "deviceId must be in GROUP BY or inside an aggregate"},
	{"ungrouped path with group", "SELECT deviceId, status FROM devices GROUP BY status", 7, "deviceId must be in GROUP BY"},
	{"duplicate key", "SELECT tags.a.x, tags.b.x FROM devices", 17, `the SELECT list names "x" twice`},
	{"count with arg", "SELECT COUNT(deviceId) FROM devices", 13, "expected ')' to close COUNT(, found 'deviceId'"},
	{"avg no path", "SELECT AVG() FROM devices", 11, "expected a property path inside AVG(), found ')'"},
	{"reserved alias", "SELECT COUNT() AS count FROM devices", 18, "'count' is a reserved word; write [[count]] to use it as a name"},
	{"alias missing", "SELECT deviceId AS FROM devices", 19, "'FROM' is a reserved word"},
	{"order by", "SELECT * FROM devices WHERE a = 1 ORDER BY a", 34, "ORDER BY is not supported"},
	{"jobs prefix in devices", "SELECT * FROM devices WHERE devices.jobs.jobId = 'x'", 28, "paths starting with devices.jobs. are only valid in SELECT ... FROM devices.jobs"},
	{"too long", "SELECT * FROM devices WHERE deviceId = '" + strings.Repeat("x", MaxLength) + "'", MaxLength, "the limit is 8192"},
	{"cond: empty", "", 0, "the condition is empty; write * to select every device"},
	{"cond: blank", "   ", 3, "the condition is empty"},
	{"cond: whole query", "SELECT * FROM devices", 0, "a job condition is only the part after WHERE"},
	{"cond: star and more", "* AND a = 1", 0, "expected a value"},
	{"cond: unclosed in", "deviceId IN ['a', 'b'", 21, "expected ']' to close the IN list, found end of query"},
	{"cond: in parens", "deviceId IN ('a')", 12, "IN and NIN take a list in square brackets, like IN ['a', 'b']; found '('"},
	{"cond: in empty", "deviceId IN []", 13, "the IN list is empty"},
	{"cond: in non-const", "deviceId IN [tags.x]", 13, "expected a constant (number, string, true, false or null) in the IN list, found 'tags'"},
	{"cond: in missing comma", "deviceId IN ['a' 'b']", 17, "expected ']' to close the IN list, found string 'b'"},
	{"cond: unclosed paren", "(a = 1", 6, "expected ')' to close the '(' at offset 0, found end of query"},
	{"cond: unknown function", "a = 1 AND FOO(b)", 10, "unknown function FOO; the functions are IS_DEFINED"},
	{"cond: arity", "STARTSWITH(deviceId)", 0, "STARTSWITH takes 2 arguments, found 1"},
	{"cond: arity one", "is_defined(a, b)", 0, "IS_DEFINED takes 1 argument, found 2"},
	{"cond: aggregate in where", "COUNT() > 1", 0, "COUNT() is an aggregate; it is only allowed in the SELECT list"},
	{"cond: reserved segment", "tags.group = 'x'", 5, "'group' is a reserved word; write [[group]] to use it as a property name"},
	{"cond: reserved first", "value = 1 AND Top = 1", 14, "'Top' is a reserved word"},
	{"cond: devices bare", "devices.x = 1", 0, "'devices' is a reserved word"},
	{"cond: jobs prefix", "devices.jobs.status = 'completed'", 0, "paths starting with devices.jobs. are only valid in SELECT ... FROM devices.jobs"},
	{"cond: chained", "a = b = c", 6, "comparisons cannot be chained; combine them with AND"},
	{"cond: trailing", "a = 1 2", 6, "expected AND, OR or end of condition, found number 2"},
	{"cond: dot at end", "tags. = 1", 6, "expected a property name after '.', found '='"},
	{"cond: bang", "a ! b", 2, "unexpected '!'"},
	{"cond: ampersand", "a = 1 && b = 2", 6, "write AND"},
	{"cond: pipe", "a = 1 || b = 2", 6, "write OR"},
	{"cond: unterminated string", "a = 'abc", 4, "unterminated string; close it with '"},
	{"cond: unterminated double", `a = "abc\"`, 4, `unterminated string; close it with "`},
	{"cond: bad escape", `a = 'a\qb'`, 6, `unknown escape \q`},
	{"cond: bad unicode escape", `a = '\u12g4'`, 5, `\u must be followed by 4 hex digits`},
	{"cond: unterminated escape", "[[abc = 1", 0, "unterminated [[ escaped name"},
	{"cond: hex no digits", "a = 0x", 4, "0x must be followed by hex digits"},
	{"cond: hex too big", "a = 0x1ffffffffffffffff", 4, "hex number 0x1ffffffffffffffff is too large"},
	{"cond: exponent", "a = 1e", 4, "number 1e has an exponent without digits"},
	{"cond: out of range", "a = 1e999", 4, "number 1e999 is out of range"},
	{"cond: digit name", "tags.1abc = 1", 5, `invalid number "1abc"`},
	{"cond: bad char", "a = #", 4, `unexpected character '#'`},
	{"cond: bad utf8", "a = \xff", 4, "invalid UTF-8 byte 0xff"},
	{"cond: array const", "tags.x = [1]", 9, "a list like ['a', 'b'] is only allowed after IN or NIN"},
	{"cond: double minus", "a = --1", 5, "expected a value"},
	{"cond: lex error after syntax error", "a = = 'unterminated", 4, "expected a value"},
	{"cond: deep parens", strings.Repeat("(", MaxDepth+1) + "a" + strings.Repeat(")", MaxDepth+1), MaxDepth, "nests deeper than 64 levels"},
	{"cond: deep not", strings.Repeat("NOT ", MaxDepth+1) + "a", 4 * MaxDepth, "nests deeper than 64 levels"},
	{"cond: deep functions", strings.Repeat("LOWER(", MaxDepth+1) + "a" + strings.Repeat(")", MaxDepth+1), 6 * MaxDepth, "nests deeper"},
	{"cond: huge parens", strings.Repeat("(", MaxLength), MaxDepth, "nests deeper"},
	{"cond: too long", strings.Repeat(" ", MaxLength+1), MaxLength, "the query is 8193 bytes long"},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range parseErr {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if strings.HasPrefix(tc.name, "cond: ") {
				_, err = ParseCondition(tc.src)
			} else {
				_, err = Parse(tc.src)
			}
			se, ok := errors.AsType[*SyntaxError](err)
			if !ok {
				t.Fatalf("error = %v (%T), want *SyntaxError", err, err)
			}
			if se.Offset != tc.off || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("error = %q at %d, want %q at %d", se.Msg, se.Offset, tc.msg, tc.off)
			}
			if se.Offset < 0 || se.Offset > len(tc.src) {
				t.Errorf("offset %d outside the query (length %d)", se.Offset, len(tc.src))
			}
			if want := "offset "; !strings.HasPrefix(se.Error(), want) {
				t.Errorf("Error() = %q", se.Error())
			}
		})
	}
}
