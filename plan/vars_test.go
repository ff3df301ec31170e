package plan

import (
	"encoding/json"
	"strings"
	"testing"
)

// varsPlan declares three variables and uses them in a query, a payload
// and, unquoted, a whole desired value (which takes the type of what it
// expands to).
const varsPlan = `version: 1
name: v
vars:
  version: "2.4.1"
  floor: 3
  token: "${env.IOTJOBS_TEST_UNSET}"
steps:
  - name: fw
    query: "properties.reported.firmware != '${vars.version}'"
    method: {name: update, payload: {version: "${vars.version}", token: "${vars.token}"}}
  - name: floor
    query: "*"
    twin:
      desired:
        floor: ${vars.floor}
`

func TestWithVars(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string // varsPlan when empty
		vars map[string]string
		// Without errors: the first step's query, its payload and the
		// second step's desired properties, and Plan.Overrides.
		query, payload, desired, overrides string
		// With errors: the one diagnostic's summary, a part of its hint
		// and its line.
		err, hint string
		line      int
	}{
		{
			name:  "an override replaces the declared value everywhere",
			vars:  map[string]string{"version": "3.0.0", "token": "t"},
			query: "properties.reported.firmware != '3.0.0'", payload: `{"token":"t","version":"3.0.0"}`,
			desired: `{"floor":3}`, overrides: `{"token":"t","version":"3.0.0"}`,
		},
		{
			name:  "a whole value takes the override's type",
			vars:  map[string]string{"floor": "7", "token": "t"},
			query: "properties.reported.firmware != '2.4.1'", payload: `{"token":"t","version":"2.4.1"}`,
			desired: `{"floor":7}`, overrides: `{"floor":"7","token":"t"}`,
		},
		{
			name:  "an override is taken as written, without expansion",
			vars:  map[string]string{"token": "${env.HOME}$${x}${vars.version}"},
			query: "properties.reported.firmware != '2.4.1'", payload: `{"token":"${env.HOME}$${x}${vars.version}","version":"2.4.1"}`,
			desired: `{"floor":3}`, overrides: `{"token":"${env.HOME}$${x}${vars.version}"}`,
		},
		{
			name: "without the override the declared env reference must be set",
			err:  "environment variable IOTJOBS_TEST_UNSET is not set", line: 6,
		},
		{
			name: "an undeclared variable is an error listing the declared ones",
			vars: map[string]string{"token": "t", "region": "eu"},
			err:  `value given for undeclared variable "region"`, hint: "the plan declares: version, floor, token", line: 3,
		},
		{
			name: "a near miss gets a did-you-mean",
			vars: map[string]string{"token": "t", "verison": "3"},
			err:  `value given for undeclared variable "verison"`, hint: `did you mean "version"?`, line: 3,
		},
		{
			name: "a plan without vars declares none",
			src:  "version: 1\nname: v\nsteps:\n  - {name: a, query: \"*\", method: {name: m}}\n",
			vars: map[string]string{"x": "1"},
			err:  `value given for undeclared variable "x"`, hint: "the plan declares no variables", line: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := tt.src
			if src == "" {
				src = varsPlan
			}
			opts := append(testOptions(), WithVars(tt.vars))
			p, ds := Parse("v.yaml", []byte(src), opts...)
			if tt.err != "" {
				if p != nil || len(ds) != 1 || ds[0].Summary != tt.err || !strings.Contains(ds[0].Detail, tt.hint) || ds[0].Range.Start.Line != tt.line {
					t.Fatalf("got %s; want one error at line %d: %s (hint: ...%s...)", describe(ds), tt.line, tt.err, tt.hint)
				}
				return
			}
			if len(ds) != 0 {
				t.Fatalf("unexpected diagnostics: %s", describe(ds))
			}
			js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
			if got := p.Steps[0].Query; got != tt.query {
				t.Errorf("query %q, want %q", got, tt.query)
			}
			if got := string(p.Steps[0].Method.Payload); got != tt.payload {
				t.Errorf("payload %s, want %s", got, tt.payload)
			}
			if got := js(p.Steps[1].Twin.Desired); got != tt.desired {
				t.Errorf("desired %s, want %s", got, tt.desired)
			}
			if got := js(p.Overrides); got != tt.overrides {
				t.Errorf("overrides %s, want %s", got, tt.overrides)
			}
		})
	}
}

func TestParseVarFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		want      string // the variables as JSON, when valid
		err       string // the first error's summary, when not
		line      int
	}{
		{name: "strings, numbers and booleans as written", src: "version: 2.4.1\nfloor: 3\nratio: 0.5\ncanary: true\nnote: \"a b\"\n",
			want: `{"canary":"true","floor":"3","note":"a b","ratio":"0.5","version":"2.4.1"}`},
		{name: "references are not expanded", src: "token: \"${env.HOME}\"\n", want: `{"token":"${env.HOME}"}`},
		{name: "empty file", src: "", want: `{}`},
		{name: "comments only", src: "# nothing yet\n", want: `{}`},
		{name: "a list", src: "- a\n- b\n", err: "expected an object (key: value pairs), got a list", line: 1},
		{name: "an object value", src: "a: 1\nb: {c: 2}\n", err: "expected a string, number or boolean, got an object", line: 2},
		{name: "a null value", src: "a:\n", err: "expected a string, number or boolean, got null", line: 1},
		{name: "a bad name", src: "ok: 1\n9lives: 2\n", err: `invalid variable name "9lives"`, line: 2},
		{name: "a duplicate name", src: "a: 1\na: 2\n", err: `duplicate field "a"`, line: 2},
		{name: "a syntax error", src: "a: [1\n", err: "invalid YAML", line: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vars, ds := ParseVarFile("v.yaml", []byte(tt.src))
			if tt.err != "" {
				if vars != nil || !ds.HasErrors() || !strings.HasPrefix(ds[0].Summary, tt.err) || ds[0].Range.Start.Line != tt.line {
					t.Fatalf("got %v, %s; want an error at line %d: %s", vars, describe(ds), tt.line, tt.err)
				}
				return
			}
			if len(ds) != 0 {
				t.Fatalf("unexpected diagnostics: %s", describe(ds))
			}
			if b, _ := json.Marshal(vars); string(b) != tt.want {
				t.Errorf("got %s, want %s", b, tt.want)
			}
		})
	}
}

func TestLoadVarFileUnreadable(t *testing.T) {
	t.Parallel()
	vars, ds := LoadVarFile(t.TempDir() + "/missing.yaml")
	if vars != nil || len(ds) != 1 || !strings.Contains(ds[0].Summary, "cannot read variables file: no such file or directory") {
		t.Fatalf("got %v, %s", vars, describe(ds))
	}
}
