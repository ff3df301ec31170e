// Guardrails as code: the policy that validate, plan and apply check a
// plan against (README "Guardrails (policy)", docs/policy.md).

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/plan/diag"
	"github.com/iotjobs/iotjobs/plan/policy"
	"github.com/iotjobs/iotjobs/runner"
)

// noPolicy is --policy's value that checks no policy, not even the one
// found next to the plan.
const noPolicy = "none"

func policyFlag() cli.Flag {
	return &cli.StringFlag{Name: "policy", Usage: "check the plan against the policy FILE (\"none\": no policy); without it, the " + policy.FileName + " found in the plan's directory or a parent, up to the repository's root"}
}

func overridePolicyFlag() cli.Flag {
	return &cli.StringFlag{Name: "override-policy", Usage: "go ahead despite the policy's soft rules, for REASON (recorded in the report); hard rules cannot be overridden"}
}

// policyFor returns the policy a plan is checked against: --policy's, or
// the one found next to the plan; nil for none. A policy file with errors
// is rendered to stderr and returned as the error (exit 2).
func policyFor(c *cli.Context, planPath string) (*policy.Policy, error) {
	path := c.String("policy")
	if path == noPolicy {
		return nil, nil
	}
	if path == "" {
		path = findPolicy(planPath)
		if path == "" {
			if c.IsSet("override-policy") {
				return nil, usagef("%s: --override-policy: no policy applies to %s (no --policy, and no %s next to it or in a parent directory)", c.Command.Name, planPath, policy.FileName)
			}
			return nil, nil
		}
	}
	pol, diags := policy.Load(path)
	if len(diags) > 0 {
		src, _ := os.ReadFile(path)
		diag.WriteText(c.App.ErrWriter, diags, map[string][]byte{path: src})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return pol, nil
}

// findPolicy looks for policy.FileName in the plan's directory and its
// parents, stopping at the repository's root (a directory with .git):
// a team keeps one policy for its plans, and a plan outside a repository
// sees only its own directory's chain up to the file system's root.
func findPolicy(planPath string) string {
	dir, err := filepath.Abs(filepath.Dir(planPath))
	if err != nil {
		return ""
	}
	for {
		candidate := filepath.Join(dir, policy.FileName)
		if fi, err := os.Stat(candidate); err == nil && !fi.IsDir() {
			if rel, err := filepath.Rel(mustGetwd(), candidate); err == nil && !strings.HasPrefix(rel, "..") {
				return rel // as short as the plan's path, for diagnostics
			}
			return candidate
		}
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}

// checkOverrideFlag checks --override-policy before any work.
func checkOverrideFlag(c *cli.Context) error {
	if !c.IsSet("override-policy") {
		return nil
	}
	if strings.TrimSpace(c.String("override-policy")) == "" {
		return usagef("%s: --override-policy needs a reason, e.g. --override-policy \"CHG-1234: hotfix approved by ops\"", c.Command.Name)
	}
	if c.String("policy") == noPolicy {
		return usagef("%s: --override-policy with --policy none: there is no policy to override", c.Command.Name)
	}
	return nil
}

// policyFacts reads what the device rules need, for each step: how many
// devices it matches (a saved plan's: those it saved), its batches as the
// runner splits them, and, for a tag share, those devices' tags. It reads
// with queries only, from the hub the dry-run reads.
func policyFacts(ctx context.Context, client hub.Client, p *plan.Plan, pol *policy.Policy) (*policy.Facts, error) {
	f := &policy.Facts{Now: time.Now(), Steps: map[string]*policy.StepFacts{}}
	needed := false
	for _, r := range pol.Rules {
		needed = needed || r.NeedsDevices()
	}
	if !needed {
		return f, nil
	}
	for _, s := range p.Steps {
		twins, err := runner.ReadTwins(ctx, client, s.Query)
		if err != nil {
			return nil, fmt.Errorf("policy: read the devices of step %s: %w", s.Name, err)
		}
		if s.Devices != nil {
			saved := map[string]bool{}
			for _, id := range s.Devices {
				saved[id] = true
			}
			kept := twins[:0]
			for _, t := range twins {
				if saved[t.DeviceID] {
					kept = append(kept, t)
				}
			}
			twins = kept
		}
		sf := &policy.StepFacts{Matched: len(twins), Batches: runner.BatchTargets(s.Rollout, len(twins)), Tags: make([]map[string]any, len(twins))}
		for i, t := range twins {
			sf.Tags[i] = t.Tags
		}
		f.Steps[s.Name] = sf
	}
	return f, nil
}

// policyCheck is a plan's check against a policy, for plan and apply.
type policyCheck struct {
	res      *policy.Result
	report   *runner.PolicyReport
	override string
}

// checkPolicy checks p against pol with facts, renders the violations as
// diagnostics at the plan's positions (src is the plan's text), and
// returns the check; nil when there is no policy.
func checkPolicy(c *cli.Context, pol *policy.Policy, p *plan.Plan, src []byte, facts *policy.Facts) *policyCheck {
	if pol == nil {
		return nil
	}
	pc := &policyCheck{res: pol.Check(p, facts), override: strings.TrimSpace(c.String("override-policy"))}
	if ds := pc.res.Diagnostics(pc.override); len(ds) > 0 {
		diag.WriteText(c.App.ErrWriter, ds, map[string][]byte{p.File: src})
	}
	pc.report = policyReport(pc.res, pc.override)
	return pc
}

// err is the check's verdict: nil when the plan may go on, else why not,
// in words that say what to do (exit 1).
func (pc *policyCheck) err() error {
	if pc == nil {
		return nil
	}
	blocking := pc.res.Blocking(pc.override != "")
	if len(blocking) == 0 {
		return nil
	}
	hard := 0
	for _, v := range blocking {
		if v.Level == policy.Hard {
			hard++
		}
	}
	msg := fmt.Sprintf("the plan does not pass policy %s (%s)", pc.res.Policy.File, pc.report.Summary())
	switch {
	case hard > 0 && pc.override != "":
		msg += "; --override-policy overrides soft rules only: hard rules cannot be overridden, fix the plan or change the policy"
	case hard > 0:
		msg += "; fix the plan, or change the policy (hard rules cannot be overridden)"
	default:
		msg += "; fix the plan, or give --override-policy \"REASON\" to go ahead (the reason is recorded in the report)"
	}
	return policyError{failedError{msg}}
}

// policyError is a plan that does not pass its policy (exit 1).
type policyError struct{ failedError }

func (e policyError) Unwrap() error { return e.failedError }

// policyReport is the report's policy section.
func policyReport(res *policy.Result, override string) *runner.PolicyReport {
	pr := &runner.PolicyReport{File: res.Policy.File, SHA256: res.Policy.SHA256, Violations: []runner.PolicyViolation{}, Unchecked: res.Unchecked}
	for _, v := range res.Violations {
		pr.Violations = append(pr.Violations, runner.PolicyViolation{Rule: v.Rule, Kind: v.Kind, Level: string(v.Level), Step: v.Step,
			Message: v.Message, Position: v.Range.String(), Overridden: v.Level == policy.Soft && override != ""})
	}
	switch {
	case len(res.Blocking(override != "")) > 0:
		pr.Result = runner.PolicyFailed
	case res.Count(policy.Soft) > 0:
		pr.Result = runner.PolicyOverridden
	case res.Count(policy.Advisory) > 0:
		pr.Result = runner.PolicyAdvisories
	default:
		pr.Result = runner.PolicyPassed
	}
	if override != "" {
		pr.Override = &runner.PolicyOverride{Reason: override, By: overrider()}
	}
	return pr
}

// overrider is who overrode: the CI's actor, or the local user.
func overrider() string {
	for _, name := range []string{"GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER", "USERNAME"} {
		if v := os.Getenv(name); v != "" {
			return v
		}
	}
	return ""
}

// validatePolicy checks a plan against pol as far as its file tells
// (validate reads no hub), and says which rules need plan or apply.
func validatePolicy(c *cli.Context, pol *policy.Policy, p *plan.Plan, output string) diag.Diagnostics {
	if pol == nil {
		return nil
	}
	res := pol.Check(p, nil)
	if len(res.Unchecked) > 0 && output != "json" {
		fmt.Fprintf(c.App.ErrWriter, "%s: policy %s: not checked without the devices the steps match or the time the plan runs (iotjobs plan and apply check them): %s\n",
			p.File, pol.File, strings.Join(res.Unchecked, ", "))
	}
	return res.Diagnostics("")
}

// planPolicy checks a plan against pol for plan, with the devices read
// from client, the hub its preview reads.
func planPolicy(c *cli.Context, pol *policy.Policy, p *plan.Plan, saved *runner.SavedPlan, client hub.Client) (*policyCheck, error) {
	if pol == nil {
		return nil, nil
	}
	facts, err := policyFacts(c.Context, client, p, pol)
	if err != nil {
		return nil, err
	}
	return checkPolicy(c, pol, p, planSource(p, saved), facts), nil
}

// planSource is a plan's text, for diagnostics' snippets.
func planSource(p *plan.Plan, saved *runner.SavedPlan) []byte {
	if saved != nil {
		return []byte(saved.Source)
	}
	src, _ := os.ReadFile(p.File)
	return src
}

// checkPolicy is apply's policy check, before the dry-run: a plan that
// does not pass stops here, before anything touches the hub. The devices
// are read where the dry-run reads them (--fleet's, or the hub's).
func (a *applyRun) checkPolicy(t *target) error {
	if a.pol == nil {
		return nil
	}
	src := t.client
	if f := a.c.String("fleet"); f != "" {
		e, closeFleet, err := fleetHub(a.c.Context, io.Discard, f, clock.Real(), t.client)
		if err != nil {
			return err
		}
		defer closeFleet()
		src = e
	}
	facts, err := policyFacts(a.c.Context, src, a.p, a.pol)
	if err != nil {
		return err
	}
	a.policy = checkPolicy(a.c, a.pol, a.p, planSource(a.p, a.saved), facts)
	return a.policy.err()
}
