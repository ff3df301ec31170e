package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/runner"
)

// TestVarFlags: --var and --var-file give a plan's declared variables
// their values (--var over the file, the later --var over the earlier),
// on every command that loads a plan; malformed ones, undeclared names and
// bad files exit 2 saying what is wrong.
func TestVarFlags(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.yaml")
	writeTestFile(t, planFile, "version: 1\nname: v\nvars: {ring: canary}\nsteps:\n  - name: s\n    query: \"tags.ring = '${vars.ring}'\"\n    method: {name: m}\n")
	fleet := filepath.Join(dir, "fleet.yaml")
	writeTestFile(t, fleet, "version: 1\nseed: 1\ngroups:\n  - ids: [d1]\n    tags: {ring: canary}\n")
	file := func(content string) string {
		t.Helper()
		f, err := filepath.Abs(filepath.Join(dir, strings.NewReplacer(" ", "", ":", "", "\n", "", "[", "", "]", "").Replace(content)+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, f, content)
		return f
	}
	tests := []struct {
		name string
		args []string
		ring string // the ring the step's query names, when it succeeds
		err  string // on stderr, when it exits 2
	}{
		{name: "declared value", ring: "canary"},
		{name: "--var", args: []string{"--var", "ring=early"}, ring: "early"},
		{name: "--var-file", args: []string{"--var-file", file("ring: wide\n")}, ring: "wide"},
		{name: "a number in the file, as written", args: []string{"--var-file", file("ring: 1.50\n")}, ring: "1.50"},
		{name: "--var beats --var-file", args: []string{"--var", "ring=early", "--var-file", file("ring: wide\n")}, ring: "early"},
		{name: "the later --var wins", args: []string{"--var", "ring=early", "--var", "ring=late"}, ring: "late"},
		{name: "commas and = in a value", args: []string{"--var", "ring=a,b=c"}, ring: "a,b=c"},
		{name: "an empty value", args: []string{"--var", "ring="}, ring: ""},
		{name: "no =", args: []string{"--var", "ring"}, err: `plan: --var "ring": write NAME=VALUE`},
		{name: "a bad name", args: []string{"--var", "1ring=x"}, err: `"1ring" is not a variable name`},
		{name: "undeclared", args: []string{"--var", "rnig=x"}, err: `error: value given for undeclared variable "rnig"` + "\n" +
			"    3 | vars: {ring: canary}\n      | ^^^^\n  hint: did you mean \"ring\"? The plan declares: ring"},
		{name: "undeclared in the file", args: []string{"--var-file", file("ring: a\nsite: b\n")}, err: `value given for undeclared variable "site"`},
		{name: "unreadable file", args: []string{"--var-file", filepath.Join(dir, "missing.yaml")}, err: "missing.yaml: error: cannot read variables file: no such file or directory"},
		{name: "invalid file", args: []string{"--var-file", file("ring: [a]\n")}, err: "ringa.yaml:1:7: error: expected a string, number or boolean, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"plan", "--no-simulate", "--fleet", fleet, "-o", "json", planFile}, tt.args...)
			code, stdout, stderr := runCLI(t, t.Context(), args...)
			if tt.err != "" {
				if code != exitInvalid || !strings.Contains(stderr, tt.err) {
					t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 with %q", code, stderr, tt.err)
				}
				return
			}
			var rep runner.Report
			if err := json.Unmarshal([]byte(stdout), &rep); code != exitOK || err != nil {
				t.Fatalf("exit %d (%v)\n%s%s", code, err, stdout, stderr)
			}
			if got, want := rep.Steps[0].QueryCondition, "tags.ring = '"+tt.ring+"'"; got != want {
				t.Errorf("query %q, want %q", got, want)
			}
		})
	}

	// The other commands that load a plan take them too.
	for _, args := range [][]string{
		{"validate", planFile},
		{"check", "--fleet", fleet, planFile},
		{"apply", "--dry-run", "--fleet", fleet, "--data", filepath.Join(dir, "data"), planFile},
	} {
		code, _, stderr := runCLI(t, t.Context(), append(args, "--var", "rnig=x")...)
		if code != exitInvalid || !strings.Contains(stderr, `value given for undeclared variable "rnig"`) {
			t.Errorf("%s --var rnig=x: exit %d, want 2 naming rnig\n%s", args[0], code, stderr)
		}
	}
	if code, stdout, stderr := runCLI(t, t.Context(), "validate", "-o", "json", "--var-file", file("- a\n"), planFile); code != exitInvalid || stderr != "" || !strings.Contains(stdout, `"summary": "expected an object`) {
		t.Errorf("validate -o json with a bad --var-file: exit %d, want 2 with JSON diagnostics\n%s%s", code, stdout, stderr)
	}
}

// TestVarFlagsSavedPlan: a saved plan keeps the values it was planned
// with, and refuses new ones.
func TestVarFlagsSavedPlan(t *testing.T) {
	dir := t.TempDir()
	planFile, saved := filepath.Join(dir, "plan.yaml"), filepath.Join(dir, "saved.json")
	writeTestFile(t, planFile, "version: 1\nname: v\nvars: {ring: canary}\nsteps:\n  - name: s\n    query: \"tags.ring = '${vars.ring}'\"\n    method: {name: m}\n")
	fleet := filepath.Join(dir, "fleet.yaml")
	writeTestFile(t, fleet, "version: 1\nseed: 1\ngroups:\n  - ids: [d1]\n    tags: {ring: early}\n")
	if code, _, stderr := runCLI(t, t.Context(), "plan", "--no-simulate", "--fleet", fleet, "--var", "ring=early", "--out", saved, planFile); code != exitOK {
		t.Fatalf("plan --out: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, t.Context(), "plan", "--no-simulate", "--fleet", fleet, "-o", "json", saved)
	var rep runner.Report
	if err := json.Unmarshal([]byte(stdout), &rep); code != exitOK || err != nil {
		t.Fatalf("plan of the saved plan: exit %d (%v)\n%s", code, err, stderr)
	}
	if got := rep.Steps[0].QueryCondition; got != "tags.ring = 'early'" {
		t.Errorf("the saved plan's query is %q, want the --var it was saved with", got)
	}
	code, _, stderr = runCLI(t, t.Context(), "plan", "--no-simulate", "--fleet", fleet, "--var", "ring=late", saved)
	if code != exitInvalid || !strings.Contains(stderr, "is a saved plan, which keeps the variable values it was planned with") {
		t.Errorf("--var with a saved plan: exit %d, want 2\n%s", code, stderr)
	}
}
