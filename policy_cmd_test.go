package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/iotjobs/iotjobs/runner"
)

// policyFleet: 8 devices, 4 at site x and 4 at site y, that answer ping.
const policyFleet = `version: 1
groups:
  - ids: "a-{n}"
    count: 4
    tags: {site: x}
    desired: {report: true}
    methods:
      ping: {status: 200}
  - ids: "b-{n}"
    count: 4
    tags: {site: y}
    desired: {report: true}
    methods:
      ping: {status: 200}
`

// The plans of the policy tests: a method step over every device, in one
// batch and without abort; a twin step that sets tags.owner, without
// verify.
const (
	policyPingPlan = "version: 1\nname: ping\nsteps:\n  - name: ping-all\n    query: \"*\"\n    method: {name: ping}\n"
	policyTwinPlan = "version: 1\nname: owner\nsteps:\n  - name: own\n    query: \"*\"\n    twin:\n      desired: {a: 1}\n      tags: {owner: ops}\n"
)

// policyRules are one rule of each kind, each broken by one of the plans
// (and by nothing else of it): where, as FILE's line.
var policyRules = []struct {
	kind, rule, plan string
	line             int
}{
	{"maxDevicesWithoutRollout", "maxDevicesWithoutRollout: 5", policyPingPlan, 5},
	{"abortRequiredOver", "abortRequiredOver: 5", policyPingPlan, 5},
	{"verifyRequiredForTwin", "verifyRequiredForTwin: true", policyTwinPlan, 6},
	{"methods", "methods: {deny: [ping]}", policyPingPlan, 6},
	{"forbiddenPaths", "forbiddenPaths: [tags.owner]", policyTwinPlan, 8},
	// Denied every day, all day: whenever the test runs, a step that
	// starts now is in it.
	{"startWindows", "startWindows: {timezone: Europe/Berlin, deny: [{days: [mon, tue, wed, thu, fri, sat, sun]}]}", policyPingPlan, 4},
	{"maxBatchShare", "maxBatchShare: {tag: tags.site, share: 50%}", policyPingPlan, 5},
}

func writePolicy(t *testing.T, path, level, rule string) {
	t.Helper()
	writeTestFile(t, path, fmt.Sprintf("version: 1\nrules:\n  - name: r\n    level: %s\n    %s\n", level, rule))
}

// TestPlanPolicy: plan checks each kind of rule at each level against a
// fleet's devices: an advisory warns (exit 0), a soft rule fails (exit 1)
// unless --override-policy gives a reason, a hard one fails even then;
// the report's policy section says so, with the violation's position and
// the override's reason.
func TestPlanPolicy(t *testing.T) {
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.yaml")
	writeTestFile(t, fleet, policyFleet)
	for _, tt := range policyRules {
		planFile := filepath.Join(dir, tt.kind+".yaml")
		writeTestFile(t, planFile, tt.plan)
		for _, level := range []string{"advisory", "soft", "hard"} {
			pol := filepath.Join(dir, tt.kind+"-"+level+".policy.yaml")
			writePolicy(t, pol, level, tt.rule)
			for _, override := range []string{"", "CHG-1: approved"} {
				args := []string{"plan", "--fleet", fleet, "-o", "json", "--policy", pol}
				if override != "" {
					args = append(args, "--override-policy", override)
				}
				code, stdout, stderr := runCLI(t, t.Context(), append(args, planFile)...)
				name := fmt.Sprintf("%s %s override %q", tt.kind, level, override)
				fails := level == "hard" || level == "soft" && override == ""
				wantCode, wantResult := exitOK, map[string]string{"advisory": "advisories", "soft": "overridden", "hard": "failed"}[level]
				if fails {
					wantCode, wantResult = exitFailed, "failed"
				}
				var rep runner.Report
				if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
					t.Fatalf("%s: exit %d, report: %v\n%s", name, code, err, stderr)
				}
				pr := rep.Policy
				if code != wantCode || pr == nil || pr.Result != wantResult || len(pr.Violations) != 1 {
					t.Errorf("%s: exit %d, policy %+v; want exit %d, result %s and one violation\n%s", name, code, pr, wantCode, wantResult, stderr)
					continue
				}
				v := pr.Violations[0]
				if pos := fmt.Sprintf("%s:%d:", planFile, tt.line); v.Kind != tt.kind || v.Rule != "r" || v.Level != level || !strings.HasPrefix(v.Position, pos) || !strings.Contains(stderr, pos) {
					t.Errorf("%s: violation %+v; want one of kind %s at %s, also on stderr\n%s", name, v, tt.kind, pos, stderr)
				}
				if (pr.Override != nil && pr.Override.Reason == override) != (override != "") || v.Overridden != (override != "" && level == "soft") {
					t.Errorf("%s: override %+v, overridden %v", name, pr.Override, v.Overridden)
				}
				if level == "hard" && override != "" && !strings.Contains(stderr, "hard rules cannot be overridden") {
					t.Errorf("%s: stderr does not say hard rules cannot be overridden\n%s", name, stderr)
				}
			}
		}
	}
}

// TestApplyPolicy: apply stops before touching anything when the plan
// breaks a soft rule (report status stopped, with the violation), goes
// ahead with --override-policy (the reason in the report and its JUnit
// run), and never past a hard rule.
func TestApplyPolicy(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile, report, data := filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "plan.yaml"), filepath.Join(dir, "report.json"), filepath.Join(dir, "data")
	junit := filepath.Join(dir, "junit.xml")
	soft, hard := filepath.Join(dir, "soft.yaml"), filepath.Join(dir, "hard.yaml")
	writeTestFile(t, fleet, policyFleet)
	writeTestFile(t, planFile, policyPingPlan)
	writePolicy(t, soft, "soft", "maxDevicesWithoutRollout: 5")
	writePolicy(t, hard, "hard", "methods: {allow: [reboot]}")

	code, _, stderr := runCLI(t, t.Context(), "apply", "--data", data, "--fleet", fleet, "--report", report, "--junit", junit, "--policy", soft, planFile)
	r := readReport(t, report)
	if code != exitFailed || !strings.Contains(stderr, "does not pass policy") || !strings.Contains(stderr, "nothing was applied") ||
		r.Status != runner.StatusStopped || r.Policy == nil || r.Policy.Result != runner.PolicyFailed || len(r.Policy.Violations) != 1 {
		t.Fatalf("soft: exit %d, status %s, policy %+v\n%s", code, r.Status, r.Policy, stderr)
	}
	if b, err := os.ReadFile(junit); err != nil || !strings.Contains(string(b), `type="policy soft"`) {
		t.Errorf("JUnit lacks the violation (%v):\n%s", err, b)
	}
	if code, stdout, _ := runCLI(t, t.Context(), "jobs", "list", "--data", data, "-o", "json"); code != 0 || strings.Contains(stdout, "ping") {
		t.Errorf("the stopped apply created jobs: %s", stdout)
	}

	code, _, stderr = runCLI(t, t.Context(), "apply", "--data", data, "--fleet", fleet, "--report", report, "--junit", junit, "--policy", soft, "--override-policy", "CHG-7", planFile)
	r = readReport(t, report)
	if code != exitOK || r.Status != runner.StatusSucceeded || r.Policy == nil || r.Policy.Result != runner.PolicyOverridden ||
		r.Policy.Override == nil || r.Policy.Override.Reason != "CHG-7" || !strings.Contains(stderr, "overridden: CHG-7") {
		t.Errorf("soft, overridden: exit %d, status %s, policy %+v\n%s", code, r.Status, r.Policy, stderr)
	}
	if b, err := os.ReadFile(junit); err != nil || !strings.Contains(string(b), "overridden: CHG-7") || strings.Contains(string(b), `type="policy`) {
		t.Errorf("JUnit lacks the override, or fails it (%v):\n%s", err, b)
	}

	code, _, stderr = runCLI(t, t.Context(), "apply", "--data", data, "--fleet", fleet, "--report", report, "--policy", hard, "--override-policy", "CHG-7", "--yes", planFile)
	r = readReport(t, report)
	if code != exitFailed || r.Status != runner.StatusStopped || !strings.Contains(stderr, "hard rules cannot be overridden") {
		t.Errorf("hard, overridden: exit %d, status %s\n%s", code, r.Status, stderr)
	}

	for _, args := range [][]string{
		{"--override-policy", ""},
		{"--override-policy", "x", "--policy", "none"},
		{"--override-policy", "x"}, // no policy applies
	} {
		code, _, stderr := runCLI(t, t.Context(), append(append([]string{"apply", "--data", data, "--fleet", fleet}, args...), planFile)...)
		if code != exitInvalid || !strings.Contains(stderr, "--override-policy") {
			t.Errorf("apply %v: exit %d, want 2\n%s", args, code, stderr)
		}
	}
}

// TestValidatePolicy: validate checks what the plan's file tells (exit 2
// for a soft or hard rule, 0 with a warning for an advisory), names the
// rules it cannot check, finds policy.iotjobs.yaml next to the plan or in
// a parent up to the repository's root, and --policy none turns it off.
func TestValidatePolicy(t *testing.T) {
	repo := t.TempDir()
	plans := filepath.Join(repo, "plans")
	for _, d := range []string{filepath.Join(repo, ".git"), plans} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	planFile := filepath.Join(plans, "ping.yaml")
	writeTestFile(t, planFile, policyPingPlan)
	for _, tt := range []struct {
		level string
		code  int
		want  string
	}{
		{"advisory", exitOK, "warning: policy rule r (advisory): method ping is denied"},
		{"soft", exitInvalid, "error: policy rule r (soft): method ping is denied"},
		{"hard", exitInvalid, "error: policy rule r (hard): method ping is denied"},
	} {
		pol := filepath.Join(repo, tt.level+".yaml")
		writePolicy(t, pol, tt.level, "methods: {deny: [ping]}")
		code, _, stderr := runCLI(t, t.Context(), "validate", "--policy", pol, planFile)
		if code != tt.code || !strings.Contains(stderr, planFile+":6:20: "+tt.want) {
			t.Errorf("%s: exit %d, want %d with %q\n%s", tt.level, code, tt.code, tt.want, stderr)
		}
	}

	writePolicy(t, filepath.Join(repo, "policy.iotjobs.yaml"), "hard", "abortRequiredOver: 5")
	writePolicy(t, filepath.Join(filepath.Dir(repo), "policy.iotjobs.yaml"), "hard", "methods: {deny: [ping]}") // above the repository: not used
	code, _, stderr := runCLI(t, t.Context(), "validate", planFile)
	if code != exitOK || !strings.Contains(stderr, "policy.iotjobs.yaml: not checked without the devices the steps match or the time the plan runs (iotjobs plan and apply check them): r") {
		t.Errorf("default policy: exit %d\n%s", code, stderr)
	}
	writePolicy(t, filepath.Join(plans, "policy.iotjobs.yaml"), "hard", "methods: {deny: [ping]}") // the nearest wins
	if code, _, stderr := runCLI(t, t.Context(), "validate", planFile); code != exitInvalid || !strings.Contains(stderr, "method ping is denied") {
		t.Errorf("nearest default policy: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runCLI(t, t.Context(), "validate", "--policy", "none", planFile); code != exitOK || strings.Contains(stderr, "policy") {
		t.Errorf("--policy none: exit %d\n%s", code, stderr)
	}
	bad := filepath.Join(repo, "bad.yaml")
	writeTestFile(t, bad, "version: 1\nrules:\n  - name: r\n    level: sfot\n    abortRequiredOver: 5\n")
	if code, _, stderr := runCLI(t, t.Context(), "validate", "--policy", bad, planFile); code != exitInvalid || !strings.Contains(stderr, bad+`:4:12: error: unknown level "sfot"`) {
		t.Errorf("invalid policy: exit %d\n%s", code, stderr)
	}
}

// TestSavedPlanSchema: what plan --out writes matches the committed
// saved-plan schema, which OPA/conftest policies are written against, and
// the schema is strict enough to catch a saved plan that drifted from it.
func TestSavedPlanSchema(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile, saved := filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "plan.yaml"), filepath.Join(dir, "saved.json")
	writeTestFile(t, fleet, policyFleet)
	writeTestFile(t, planFile, policyPingPlan)
	if code, _, stderr := runCLI(t, t.Context(), "plan", "--fleet", fleet, "--out", saved, planFile); code != exitOK {
		t.Fatalf("plan --out: exit %d\n%s", code, stderr)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile("docs/saved-plan.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string]string{
		"good":         string(b),
		"extra field":  strings.Replace(string(b), `"savedPlanVersion": 1,`, `"savedPlanVersion": 1, "extra": 1,`, 1),
		"no etag":      strings.Replace(string(b), `"etag"`, `"etg"`, 1),
		"bad checksum": strings.Replace(string(b), `"sha256": "`, `"sha256": "x`, 1),
	} {
		if doc == string(b) && name != "good" {
			t.Fatalf("%s: the saved plan did not change", name)
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(v); (err == nil) != (name == "good") {
			t.Errorf("%s: validation error %v", name, err)
		}
	}
}
