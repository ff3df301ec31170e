package query

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// fleetJSON is a small fixture fleet of twins. d2's floor is a string, d4
// has no tags at all, and d1 carries a null, an object and an array.
const fleetJSON = `[
 {"deviceId": "d1", "status": "enabled", "connectionState": "Connected", "version": 3,
  "tags": {"floor": 3, "location": {"region": "US"}, "name": "Alpha", "enabled": true,
           "nullTag": null, "group": "g1", "list": [1, 2], "obj": {"a": 1}},
  "properties": {"desired": {"$version": 4, "x": 1},
                 "reported": {"x": 5, "telemetryConfig": {"status": "Success"}}}},
 {"deviceId": "d2", "status": "disabled", "connectionState": "Disconnected", "version": 1,
  "tags": {"floor": "3", "location": {"region": "EU"}, "name": "beta", "enabled": false},
  "properties": {"desired": {}, "reported": {"telemetryConfig": {"status": "Pending"}}}},
 {"deviceId": "d3", "status": "enabled", "connectionState": "Disconnected", "version": 2,
  "tags": {"floor": 7, "location": {"region": "US"}, "name": "Gamma"},
  "properties": {"desired": {}, "reported": {"telemetryConfig": {"status": "Success"}}}},
 {"deviceId": "d4", "status": "enabled", "connectionState": "Disconnected", "version": 1,
  "properties": {"desired": {}, "reported": {}}}
]`

func fleet(t testing.TB) []map[string]any {
	t.Helper()
	var docs []map[string]any
	if err := json.Unmarshal([]byte(fleetJSON), &docs); err != nil {
		t.Fatal(err)
	}
	return docs
}

// matchCases maps a condition to the devices it must select, in fleet order.
var matchCases = []struct {
	name, cond string
	want       string // space-separated device ids
}{
	{"star", "*", "d1 d2 d3 d4"},
	{"azure region", "tags.location.region = 'US'", "d1 d3"},
	{"number equal", "tags.floor = 3", "d1"},
	{"string equal", "tags.floor = '3'", "d2"},
	{"not equal skips mixed and undefined", "tags.floor != 3", "d3"},
	{"angle not equal", "tags.floor <> 3", "d3"},
	{"not of equal is three-valued", "NOT (tags.floor = 3)", "d3"},
	{"greater", "tags.floor > 3", "d3"},
	{"greater equal", "tags.floor >= 3", "d1 d3"},
	{"less", "tags.floor < 7", "d1"},
	{"less equal", "tags.floor <= 7", "d1 d3"},
	{"negative constant", "tags.floor > -1", "d1 d3"},
	{"hex", "tags.floor = 0x7", "d3"},
	{"exponent", "tags.floor = 7e0", "d3"},
	{"present null", "tags.nullTag = null", "d1"},
	{"missing is not null", "tags.missing = null", ""},
	{"null not equal null", "tags.nullTag != null", ""},
	{"null ordering undefined", "tags.nullTag <= null", ""},
	{"number is not null", "tags.floor = null", ""},
	{"number not equal null is mixed", "tags.floor != null", ""},
	{"is_null", "IS_NULL(tags.nullTag)", "d1"},
	{"is_null of missing", "IS_NULL(tags.missing)", ""},
	{"is_defined of null", "IS_DEFINED(tags.nullTag)", "d1"},
	{"not is_defined", "NOT IS_DEFINED(tags.nullTag)", "d2 d3 d4"},
	{"not is_defined tags", "NOT IS_DEFINED(tags)", "d4"},
	{"undefined equal", "tags.missing = 1", ""},
	{"undefined not equal", "tags.missing != 1", ""},
	{"not undefined equal", "NOT (tags.missing = 1)", ""},
	{"undefined literal", "tags.floor = undefined", ""},
	{"is_defined undefined literal", "IS_DEFINED(undefined)", ""},
	{"bool equal", "tags.enabled = true", "d1"},
	{"bare bool", "tags.enabled", "d1"},
	{"not bare bool", "NOT tags.enabled", "d2"},
	{"bool vs number", "tags.enabled = 1", ""},
	{"bool ordering", "tags.enabled > false", "d1"},
	{"object equal", "tags.obj = tags.obj", ""},
	{"array equal", "tags.list = tags.list", ""},
	{"object not equal", "tags.obj != 1", ""},
	{"is_object", "IS_OBJECT(tags.obj)", "d1"},
	{"is_array", "IS_ARRAY(tags.list)", "d1"},
	{"is_primitive", "IS_PRIMITIVE(tags.floor)", "d1 d2 d3"},
	{"is_primitive null", "IS_PRIMITIVE(tags.nullTag)", "d1"},
	{"is_primitive object", "IS_PRIMITIVE(tags.obj)", ""},
	{"is_string", "IS_STRING(tags.floor)", "d2"},
	{"is_number", "IS_NUMBER(tags.floor)", "d1 d3"},
	{"is_bool", "IS_BOOL(tags.enabled)", "d1 d2"},
	{"in", "deviceId IN ['d1', 'd3']", "d1 d3"},
	{"nin", "deviceId NIN ['d1', 'd3']", "d2 d4"},
	{"not in spelling", "deviceId NOT IN ['d1', 'd3']", "d2 d4"},
	{"in numbers", "tags.floor IN [3, 7]", "d1 d3"},
	{"nin skips mixed and undefined", "tags.floor NIN [3]", "d3"},
	{"in mixed list", "tags.floor IN [3, '3']", "d1 d2"},
	{"nin mixed list is unknown", "tags.floor NIN [3, '3']", ""},
	{"nin of undefined", "tags.missing NIN ['x']", ""},
	{"in null", "tags.nullTag IN [null]", "d1"},
	{"string order is bytes", "tags.name > 'Z'", "d2"},
	{"string case-sensitive", "tags.name = 'alpha'", ""},
	{"double quoted", `tags.name = "Alpha"`, "d1"},
	{"lower", "LOWER(tags.name) = 'alpha'", "d1"},
	{"upper", "UPPER(tags.name) = 'BETA'", "d2"},
	{"length", "LENGTH(tags.name) = 5", "d1 d3"},
	{"length of number", "LENGTH(tags.floor) = 1", "d2"},
	{"startswith", "STARTSWITH(deviceId, 'd')", "d1 d2 d3 d4"},
	{"starts_with alias", "starts_with(tags.name, 'G')", "d3"},
	{"startswith on string floor", "STARTSWITH(tags.floor, '3')", "d2"},
	{"startswith number arg", "STARTSWITH(tags.floor, 3)", ""},
	{"endswith", "ENDSWITH(tags.name, 'a')", "d1 d2 d3"},
	{"ends_with alias", "ENDS_WITH(deviceId, '4')", "d4"},
	{"contains", "CONTAINS(tags.name, 'mm')", "d3"},
	{"not startswith of missing", "NOT STARTSWITH(tags.name, 'A')", "d2 d3"},
	{"system field case", "DeviceID = 'd1' OR STATUS = 'disabled'", "d1 d2"},
	{"connection state case", "ConnectionState = 'Connected'", "d1"},
	{"tags case-insensitive at top", "Tags.floor = 7", "d3"},
	{"nested keys case-sensitive", "properties.Reported.telemetryConfig.status = 'Success'", ""},
	{"escaped reserved segment", "tags.[[group]] = 'g1'", "d1"},
	{"desired version", "properties.desired.$version = 4", "d1"},
	{"reported telemetry", "properties.reported.telemetryConfig.status = 'Success'", "d1 d3"},
	{"add", "tags.floor + 1 = 4", "d1"},
	{"sub", "tags.floor - 1 = 2", "d1"},
	{"mul", "tags.floor * 2 = 14", "d3"},
	{"div", "tags.floor / 2 = 1.5", "d1"},
	{"mod", "tags.floor % 2 = 1", "d1 d3"},
	{"neg", "-tags.floor = -3", "d1"},
	{"neg of string", "-tags.floor = -3 OR -tags.name = 0", "d1"},
	{"div by zero", "tags.floor / 0 = 1", ""},
	{"not div by zero", "NOT (tags.floor / 0 = 1)", ""},
	{"mod by zero", "tags.floor % 0 = 0", ""},
	{"string plus", "'a' + 'b' = 'ab'", ""},
	{"or with unknown", "tags.missing = 1 OR deviceId = 'd4'", "d4"},
	{"and with unknown", "tags.missing = 1 AND deviceId = 'd4'", ""},
	{"not of and with unknown", "NOT (tags.missing = 1 AND deviceId = 'd4')", "d1 d2 d3"},
	{"not of or with unknown", "NOT (tags.missing = 1 OR deviceId = 'd4')", ""},
	{"and of non-bool", "tags.name AND true", ""},
	{"floor and not defined", "tags.floor >= 3 AND NOT IS_DEFINED(properties.reported.x)", "d3"},
	{"constant true", "true", "d1 d2 d3 d4"},
	{"constant false", "false", ""},
	{"constant number", "1", ""},
	{"constant null", "null", ""},
	{"bool comparison of condition", "(tags.floor = 3) = true", "d1"},
	{"precedence", "deviceId = 'd1' OR deviceId = 'd2' AND status = 'enabled'", "d1"},
	{"parens", "(deviceId = 'd1' OR deviceId = 'd2') AND status = 'enabled'", "d1"},
	{"path through a string", "tags.name.first = 'A'", ""},
	{"path through an array", "tags.list.x = 1", ""},
}

func TestMatch(t *testing.T) {
	docs := fleet(t)
	for _, tc := range matchCases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseCondition(tc.cond)
			if err != nil {
				t.Fatalf("ParseCondition(%q): %v", tc.cond, err)
			}
			var got []string
			for _, d := range docs {
				if Match(e, d) {
					got = append(got, d["deviceId"].(string))
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("%s selects %q, want %q", tc.cond, strings.Join(got, " "), tc.want)
			}
			// The canonical text must mean the same.
			e2, err := ParseCondition(e.String())
			if err != nil {
				t.Fatalf("re-parse %q: %v", e.String(), err)
			}
			for _, d := range docs {
				if Match(e, d) != Match(e2, d) {
					t.Errorf("%q and its String() %q disagree on %v", tc.cond, e.String(), d["deviceId"])
				}
			}
		})
	}
}

func TestMatchNil(t *testing.T) {
	if !Match(nil, map[string]any{}) {
		t.Error("Match(nil) = false, want true (no WHERE clause)")
	}
	if !Match(All{}, nil) {
		t.Error("Match(All, nil) = false")
	}
	if Match(Path{Segments: []string{"deviceId"}}, nil) {
		t.Error("a path over a nil document matched")
	}
}

// TestMatchGoNumbers covers documents built in code rather than decoded
// from JSON.
func TestMatchGoNumbers(t *testing.T) {
	doc := map[string]any{
		"deviceId": "x",
		"tags":     map[string]any{"i": 3, "u": uint8(3), "f": float32(1.5), "n": json.Number("3")},
	}
	for _, cond := range []string{"tags.i = 3", "tags.u = 3", "tags.f = 1.5", "tags.n = 3", "tags.i + tags.u = 6"} {
		e, err := ParseCondition(cond)
		if err != nil {
			t.Fatal(err)
		}
		if !Match(e, doc) {
			t.Errorf("%s did not match %v", cond, doc)
		}
	}
	if !Match(Binary{Op: "=", L: Path{Segments: []string{"tags", "i"}}, R: Const{Value: 3}}, doc) {
		t.Error("an int Const did not compare equal to an int")
	}
}

func TestValueAndResolve(t *testing.T) {
	docs := fleet(t)
	tests := []struct {
		name string
		expr string
		want any
		ok   bool
	}{
		{"path", "tags.location.region", "US", true},
		{"object", "tags.obj", map[string]any{"a": 1.0}, true},
		{"null", "tags.nullTag", nil, true},
		{"missing", "tags.missing", nil, false},
		{"arith", "tags.floor * 2 + 1", 7.0, true},
		{"unknown condition", "tags.missing = 1", nil, false},
		{"function", "UPPER(deviceId)", "D1", true},
		{"length code points", "LENGTH('é😀')", 2.0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseCondition(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := Value(e, docs[0])
			if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Value(%s) = %v, %v; want %v, %v", tc.expr, got, ok, tc.want, tc.ok)
			}
		})
	}
	if v, ok := Resolve(docs[0], []string{"DEVICEID"}); !ok || v != "d1" {
		t.Errorf("Resolve(DEVICEID) = %v, %v", v, ok)
	}
	if _, ok := Resolve(docs[0], []string{"TAGS", "Floor"}); ok {
		t.Error("Resolve(TAGS.Floor) found a value; nested keys are case-sensitive")
	}
	if _, ok := Resolve(docs[0], nil); ok {
		t.Error("Resolve(nil path) found a value")
	}
}

func TestWalk(t *testing.T) {
	e, err := ParseCondition("NOT a IN [1] AND STARTSWITH(b, 'x') OR -c = 1")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	Walk(e, func(e Expr) bool {
		kinds = append(kinds, strings.TrimPrefix(reflect.TypeOf(e).String(), "query."))
		return true
	})
	want := "Binary Binary Not In Path Const Call Path Const Binary Neg Path Const"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("Walk visited %s, want %s", got, want)
	}
}
