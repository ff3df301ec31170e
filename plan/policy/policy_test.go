package policy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/plan/diag"
)

// markers reads "# TAG: text" comments by line: the expected diagnostics
// or violations of a fixture, where they must be reported.
func markers(t *testing.T, src []byte, tag string) map[int]string {
	t.Helper()
	want := map[int]string{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for line := 1; sc.Scan(); line++ {
		if _, m, ok := strings.Cut(sc.Text(), "# "+tag+": "); ok {
			want[line] = strings.TrimSpace(m)
		}
	}
	if len(want) == 0 {
		t.Fatalf("fixture has no # %s: markers", tag)
	}
	return want
}

func loadPolicy(t *testing.T, path string) *Policy {
	t.Helper()
	pol, ds := Load(path)
	if ds.HasErrors() || len(ds) > 0 {
		t.Fatalf("policy %s: %v", path, ds)
	}
	return pol
}

func loadPlan(t *testing.T, path string) *plan.Plan {
	t.Helper()
	p, ds := plan.Load(path, plan.WithEnv(func(string) (string, bool) { return "", false }))
	if ds.HasErrors() {
		t.Fatalf("plan %s: %v", path, ds)
	}
	return p
}

// friday4pm is a Friday, 16:00 in Berlin: inside the fixture policy's
// denied window.
var friday4pm = time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)

// sites are 8 devices' tags: 4 at site x, then 4 at site y.
func sites() []map[string]any {
	var out []map[string]any
	for i := range 8 {
		site := "x"
		if i >= 4 {
			site = "y"
		}
		out = append(out, map[string]any{"site": site})
	}
	return out
}

// TestViolations checks each purpose-made violating plan against the
// fixture policy with every rule at every level: the violations are at
// the marked lines, of the marked rules, and their level decides the
// diagnostic's severity and whether the check blocks, overridden or not.
func TestViolations(t *testing.T) {
	facts := map[string]*Facts{
		"max-devices.yaml": {Steps: map[string]*StepFacts{
			"big": {Matched: 150}, "rolled": {Matched: 150}, "small": {Matched: 1}}},
		"abort.yaml":   {Steps: map[string]*StepFacts{"all": {Matched: 600}, "guarded": {Matched: 600}}},
		"windows.yaml": {Now: friday4pm},
		"share.yaml": {Steps: map[string]*StepFacts{
			"canary": {Matched: 8, Batches: []int{1, 4, 8}, Tags: sites()},
			"spread": {Matched: 8, Batches: []int{1, 2, 3, 4, 5, 6, 7, 8}, Tags: sites()},
		}},
	}
	for _, level := range []Level{Advisory, Soft, Hard} {
		pol := loadPolicy(t, "testdata/policy.yaml")
		for _, r := range pol.Rules {
			r.Level = level
		}
		for _, name := range files(t, "testdata/violations/*.yaml") {
			t.Run(fmt.Sprintf("%s/%s", level, filepath.Base(name)), func(t *testing.T) {
				src, _ := os.ReadFile(name)
				want := markers(t, src, "VIOLATION")
				p := loadPlan(t, name)
				f := facts[filepath.Base(name)]
				if f == nil {
					f = &Facts{Now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)} // a Tuesday morning
				}
				res := pol.Check(p, f)
				got := map[int][]Violation{}
				for _, v := range res.Violations {
					got[v.Range.Start.Line] = append(got[v.Range.Start.Line], v)
					if v.Level != level || v.Range.Filename != name || v.Step == "" || v.Range.Start.Column < 1 {
						t.Errorf("%s: violation %+v: want level %s, a step and a position in %s", v.Range, v, level, name)
					}
				}
				for line, rule := range want {
					if vs := got[line]; len(vs) != 1 || vs[0].Rule != rule {
						t.Errorf("line %d: want one violation of %s, got %+v", line, rule, vs)
					}
				}
				for line, vs := range got {
					if _, ok := want[line]; !ok {
						t.Errorf("line %d: unexpected violations %+v", line, vs)
					}
				}
				ds := res.Diagnostics("")
				dsOver := res.Diagnostics("change CHG-1")
				wantSev := map[Level]diag.Severity{Advisory: diag.Warning, Soft: diag.Error, Hard: diag.Error}[level]
				wantOver := map[Level]diag.Severity{Advisory: diag.Warning, Soft: diag.Warning, Hard: diag.Error}[level]
				for i, d := range ds {
					if d.Severity != wantSev || dsOver[i].Severity != wantOver {
						t.Errorf("%s: severity %s, overridden %s; want %s and %s", d.Range, d.Severity, dsOver[i].Severity, wantSev, wantOver)
					}
					if !strings.Contains(d.Summary, "policy rule ") || d.Detail == "" {
						t.Errorf("%s: diagnostic %q (hint %q) does not name the rule or has no hint", d.Range, d.Summary, d.Detail)
					}
				}
				blocking, overridden := len(res.Blocking(false)), len(res.Blocking(true))
				switch level {
				case Advisory:
					if blocking != 0 || overridden != 0 {
						t.Errorf("advisory: %d blocking, %d overridden; want none", blocking, overridden)
					}
				case Soft:
					if blocking != len(want) || overridden != 0 {
						t.Errorf("soft: %d blocking, %d when overridden; want %d and 0", blocking, overridden, len(want))
					}
				case Hard:
					if blocking != len(want) || overridden != len(want) {
						t.Errorf("hard: %d blocking, %d when overridden; want %d each", blocking, overridden, len(want))
					}
				}
			})
		}
	}
}

// TestDescriptionInHint: a rule's description says why in the hint.
func TestDescriptionInHint(t *testing.T) {
	pol := loadPolicy(t, "testdata/policy.yaml")
	res := pol.Check(loadPlan(t, "testdata/violations/windows.yaml"), &Facts{Now: friday4pm})
	ds := res.Diagnostics("")
	if len(ds) == 0 || !strings.HasPrefix(ds[0].Detail, "no changes before the weekend; ") {
		t.Errorf("diagnostics %v: want the rule's description first in the hint", ds)
	}
}

// TestUnchecked: without facts (validate), the device rules and starts
// "now" are unchecked and listed, and what the file says is still
// checked; a saved plan's steps carry their device count.
func TestUnchecked(t *testing.T) {
	pol := loadPolicy(t, "testdata/policy.yaml")
	for _, tt := range []struct {
		plan      string
		saved     int // devices each step of a saved plan has (0: not saved)
		unchecked []string
		rules     []string // rules violated
	}{
		{"max-devices.yaml", 0, []string{"small-steps-roll-out", "big-steps-abort", "no-friday-afternoons", "canary-share"}, nil},
		{"max-devices.yaml", 150, []string{"no-friday-afternoons", "canary-share"}, []string{"small-steps-roll-out", "small-steps-roll-out"}},
		{"windows.yaml", 0, []string{"small-steps-roll-out", "big-steps-abort", "no-friday-afternoons", "canary-share"},
			[]string{"no-friday-afternoons", "no-friday-afternoons", "no-friday-afternoons"}},
		{"methods.yaml", 0, []string{"small-steps-roll-out", "big-steps-abort", "no-friday-afternoons", "canary-share"},
			[]string{"methods", "methods", "methods"}},
	} {
		p := loadPlan(t, "testdata/violations/"+tt.plan)
		if tt.saved > 0 {
			for _, s := range p.Steps {
				s.Devices = make([]string, tt.saved)
			}
		}
		res := pol.Check(p, nil)
		var rules []string
		for _, v := range res.Violations {
			rules = append(rules, v.Rule)
		}
		if !slices.Equal(res.Unchecked, tt.unchecked) || !slices.Equal(rules, tt.rules) {
			t.Errorf("%s (saved %d): unchecked %v, violated %v; want %v and %v", tt.plan, tt.saved, res.Unchecked, rules, tt.unchecked, tt.rules)
		}
	}
}

// TestExamplePlans: the example plans pass the example policy (a twin step
// without verify is an advisory) and the fixture policy's static rules.
func TestExamplePlans(t *testing.T) {
	example := loadPolicy(t, "../../examples/policy/policy.iotjobs.yaml")
	fixture := loadPolicy(t, "testdata/policy.yaml")
	tuesday := &Facts{Now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	for _, name := range files(t, "../../examples/*.yaml") {
		src, _ := os.ReadFile(name)
		if !bytes.Contains(src, []byte("\nsteps:")) {
			continue // a fleet file
		}
		p := loadPlan(t, name)
		for _, pol := range []*Policy{example, fixture} {
			res := pol.Check(p, tuesday)
			if b := res.Blocking(false); len(b) > 0 {
				t.Errorf("%s against %s: %+v", name, pol.File, b)
			}
			for _, v := range res.Violations {
				if v.Kind != KindVerifyRequiredForTwin {
					t.Errorf("%s against %s: unexpected %+v", name, pol.File, v)
				}
			}
		}
	}
}

// TestInvalid: every problem of a policy file is reported at its line,
// with a hint.
func TestInvalid(t *testing.T) {
	for _, name := range files(t, "testdata/invalid/*.yaml") {
		t.Run(filepath.Base(name), func(t *testing.T) {
			src, _ := os.ReadFile(name)
			want := markers(t, src, "ERROR")
			pol, ds := Parse(name, src)
			if pol != nil {
				t.Error("Parse returned a policy despite errors")
			}
			got := map[int][]*diag.Diagnostic{}
			for _, d := range ds {
				got[d.Range.Start.Line] = append(got[d.Range.Start.Line], d)
				if d.Detail == "" {
					t.Errorf("%s: %q has no hint", d.Range, d.Summary)
				}
			}
			for line, m := range want {
				summary, hint, _ := strings.Cut(m, " | ")
				if ds := got[line]; len(ds) != 1 || !strings.Contains(ds[0].Summary, summary) || !strings.Contains(ds[0].Detail, hint) {
					t.Errorf("line %d: want one error %q (hint %q), got %v", line, summary, hint, ds)
				}
			}
			for line, ds := range got {
				if _, ok := want[line]; !ok {
					t.Errorf("line %d: unexpected %v", line, ds)
				}
			}
		})
	}
}

func files(t *testing.T, pattern string) []string {
	t.Helper()
	names, err := filepath.Glob(pattern)
	if err != nil || len(names) == 0 {
		t.Fatalf("no files match %s: %v", pattern, err)
	}
	return names
}
