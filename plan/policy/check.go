package policy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/plan/diag"
)

// Facts are what plan and apply know about a plan beyond its file: when
// it would start, and the devices each step matches. validate has none.
type Facts struct {
	// Now is when the plan would start: steps that start now or after a
	// delay are checked against it. Zero: not checked (validate).
	Now time.Time
	// Steps by step name; a step without facts (nil) has its device rules
	// unchecked, unless it is a saved plan's step with its devices.
	Steps map[string]*StepFacts
}

// StepFacts are the devices a step matches.
type StepFacts struct {
	Matched int
	// Batches are the rollout's cumulative batch targets over Matched (the
	// runner's split); one batch of every device without a rollout.
	Batches []int
	// Tags are the matched devices' tags, in the order the runner starts
	// them (device id order); nil when not read.
	Tags []map[string]any
}

// Violation is a plan breaking a rule.
type Violation struct {
	Rule    string `json:"rule"`
	Kind    string `json:"kind"`
	Level   Level  `json:"level"`
	Step    string `json:"step,omitempty"`
	Message string `json:"message"`
	// Path locates the plan's value that breaks the rule, Range where it
	// is in the plan file.
	Path  string     `json:"path"`
	Range diag.Range `json:"range"`
	// Why is the rule's description, if it has one.
	Why string `json:"-"`
}

// Result is a plan's check against a policy.
type Result struct {
	Policy     *Policy
	Violations []Violation
	// Unchecked names the rules that need facts the check did not have
	// (the devices steps match, the time the plan starts).
	Unchecked []string
}

// Blocking returns the violations that fail the command: hard ones, and
// soft ones unless overridden.
func (r *Result) Blocking(overridden bool) []Violation {
	var out []Violation
	for _, v := range r.Violations {
		if v.Level == Hard || v.Level == Soft && !overridden {
			out = append(out, v)
		}
	}
	return out
}

// Count returns how many violations have the level.
func (r *Result) Count(l Level) int {
	n := 0
	for _, v := range r.Violations {
		if v.Level == l {
			n++
		}
	}
	return n
}

// Diagnostics are the violations as diagnostics at the plan's values:
// errors for those that fail, warnings for advisories and overridden soft
// ones (override is the reason, "" for none).
func (r *Result) Diagnostics(override string) diag.Diagnostics {
	var ds diag.Diagnostics
	for _, v := range r.Violations {
		// Built whole: the message is ours, not a value to cut short.
		d := &diag.Diagnostic{Severity: diag.Error, Summary: fmt.Sprintf("policy rule %s (%s): %s", v.Rule, v.Level, v.Message), Path: v.Path, Range: v.Range}
		switch {
		case v.Level == Advisory:
			d.Severity = diag.Warning
			d.Hint("%s", v.hint("advisory: reported only"))
		case v.Level == Soft && override != "":
			d.Severity = diag.Warning
			d.Hint("%s", v.hint("overridden: "+override))
		case v.Level == Soft:
			d.Hint("%s", v.hint(`fix the plan, or give --override-policy "REASON" to go ahead (the reason is recorded in the report)`))
		default:
			d.Hint("%s", v.hint("a hard rule cannot be overridden: fix the plan, or change the policy "+r.Policy.File))
		}
		ds.Append(d)
	}
	ds.Sort()
	return ds
}

func (v Violation) hint(what string) string {
	if v.Why != "" {
		return v.Why + "; " + what
	}
	return what
}

// Check checks p against the policy. f may be nil (validate): then the
// rules that need the matched devices are checked only for a saved plan's
// steps, and the others are listed in Result.Unchecked.
func (pol *Policy) Check(p *plan.Plan, f *Facts) *Result {
	if f == nil {
		f = &Facts{}
	}
	res := &Result{Policy: pol}
	unchecked := map[string]bool{}
	for _, r := range pol.Rules {
		c := &checker{p: p, r: r, f: f, res: res}
		for i, s := range p.Steps {
			if !c.step(fmt.Sprintf("steps[%d]", i), s) {
				unchecked[r.Name] = true
			}
		}
	}
	for _, r := range pol.Rules {
		if unchecked[r.Name] {
			res.Unchecked = append(res.Unchecked, r.Name)
		}
	}
	sort.SliceStable(res.Violations, func(i, j int) bool {
		a, b := res.Violations[i].Range.Start, res.Violations[j].Range.Start
		return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
	})
	return res
}

type checker struct {
	p   *plan.Plan
	r   *Rule
	f   *Facts
	res *Result
}

func (c *checker) violate(s *plan.Step, path, format string, args ...any) {
	c.res.Violations = append(c.res.Violations, Violation{
		Rule: c.r.Name, Kind: c.r.Kind, Level: c.r.Level, Step: s.Name,
		Message: fmt.Sprintf(format, args...), Path: path, Range: c.p.RangeOf(path), Why: c.r.Description,
	})
}

// devices returns a step's facts: the dry-run's, or a saved plan's device
// count; nil when unknown.
func (c *checker) devices(s *plan.Step) *StepFacts {
	if sf := c.f.Steps[s.Name]; sf != nil {
		return sf
	}
	if s.Devices != nil {
		return &StepFacts{Matched: len(s.Devices)}
	}
	return nil
}

// step checks one step against the rule; false when it could not for want
// of facts.
func (c *checker) step(path string, s *plan.Step) bool {
	r := c.r
	switch r.Kind {
	case KindMaxDevicesWithoutRollout:
		if s.Rollout != nil && len(s.Rollout.Batches) > 0 {
			return true
		}
		sf := c.devices(s)
		if sf == nil {
			return false
		}
		if sf.Matched > r.MaxDevices {
			c.violate(s, path+".query", "step %s matches %d devices, more than %d, and has no rollout", s.Name, sf.Matched, r.MaxDevices)
		}
	case KindAbortRequiredOver:
		if s.Abort != nil {
			return true
		}
		sf := c.devices(s)
		if sf == nil {
			return false
		}
		if sf.Matched > r.AbortOver {
			c.violate(s, path+".query", "step %s matches %d devices, more than %d, and has no abort thresholds", s.Name, sf.Matched, r.AbortOver)
		}
	case KindVerifyRequiredForTwin:
		if s.Twin != nil && s.Verify == nil {
			c.violate(s, path+".twin", "twin step %s has no verify", s.Name)
		}
	case KindMethods:
		if s.Method != nil {
			c.method(s, path+".method.name", s.Method.Name)
		}
		if s.Rollback != nil && s.Rollback.Method != nil {
			c.method(s, path+".rollback.method.name", s.Rollback.Method.Name)
		}
	case KindForbiddenPaths:
		if s.Twin != nil {
			c.patch(s, path+".twin.desired", "properties.desired", s.Twin.Desired)
			c.patch(s, path+".twin.tags", "tags", s.Twin.Tags)
		}
	case KindStartWindows:
		return c.starts(path, s)
	case KindMaxBatchShare:
		return c.batchShare(path, s)
	}
	return true
}

func (c *checker) method(s *plan.Step, path, name string) {
	ml := c.r.Methods
	switch {
	case contains(ml.Deny, name):
		c.violate(s, path, "method %s is denied", name)
	case len(ml.Allow) > 0 && !contains(ml.Allow, name):
		c.violate(s, path, "method %s is not among the allowed methods (%s)", name, strings.Join(ml.Allow, ", "))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// patch reports the values of a merge patch (at twin path prefix) that
// set a forbidden path, replace it (a value above it that is not an
// object, null included) or set something under it.
func (c *checker) patch(s *plan.Step, path, prefix string, m map[string]any) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		twinPath, planPath := prefix+"."+k, diag.JoinPath(path, k)
		sub, isObject := m[k].(map[string]any)
		hit := ""
		for _, f := range c.r.ForbiddenPaths {
			if twinPath == f || strings.HasPrefix(twinPath, f+".") || !isObject && strings.HasPrefix(f, twinPath+".") {
				hit = f
				break
			}
		}
		if hit != "" {
			c.violate(s, planPath, "step %s sets %s, which the policy forbids (%s)", s.Name, twinPath, hit)
			continue
		}
		if isObject {
			c.patch(s, planPath, twinPath, sub)
		}
	}
}

// horizon is how far ahead a cron's occurrences and a window's openings
// are checked: a year covers every weekday of every month.
const (
	horizon        = 366 * 24 * time.Hour
	maxOccurrences = 20000
)

// starts checks when a step starts: a window's openings (and the time it
// stays open) when it has one, else its cron's occurrences, its fixed
// start time, or now (plus its delay) for plan and apply.
func (c *checker) starts(path string, s *plan.Step) bool {
	ref := c.f.Now
	if ref.IsZero() {
		ref = time.Now()
	}
	if w := s.Window; w != nil && w.FromTag == "" {
		sched, err := parseCron(w.Cron, w.Timezone)
		if err != nil {
			return true // validation reports it
		}
		c.occurrences(s, path+".window.cron", sched, ref, w.Duration, "the window")
		return true
	}
	switch {
	case s.Cron != "":
		sched, err := parseCron(s.Cron, s.CronPolicy.Timezone)
		if err != nil {
			return true
		}
		c.occurrences(s, path+".cron", sched, ref, 0, "the cron schedule")
	case !s.Start.At.IsZero():
		c.at(s, path+".start", s.Start.At, "starts")
	case c.f.Now.IsZero():
		return false // it starts when the plan runs
	default:
		at := s.Start.Resolve(c.f.Now)
		where := path + ".start"
		if s.Start.After == 0 && !s.Start.Now {
			where = path + ".name" // no start: it starts now
		}
		c.at(s, where, at, "would start (if run now)")
	}
	return true
}

func parseCron(expr, tz string) (sched cron.Schedule, err error) {
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("malformed cron expression")
		}
	}()
	if tz != "" {
		expr = "CRON_TZ=" + tz + " " + expr
	}
	return cron.ParseStandard(expr)
}

// at reports a start at t outside the allowed windows.
func (c *checker) at(s *plan.Step, path string, t time.Time, verb string) {
	if why := c.outside(t, 0); why != "" {
		c.violate(s, path, "step %s %s at %s, %s", s.Name, verb, t.In(c.r.StartWindows.Location).Format("Mon 2006-01-02 15:04 MST"), why)
	}
}

// occurrences reports the first occurrence of sched (open for length)
// within the horizon that breaks the windows.
func (c *checker) occurrences(s *plan.Step, path string, sched cron.Schedule, from time.Time, length time.Duration, what string) {
	end := from.Add(horizon)
	for i, t := 0, sched.Next(from); i < maxOccurrences && !t.IsZero() && t.Before(end); i, t = i+1, sched.Next(t) {
		if why := c.outside(t, length); why != "" {
			c.violate(s, path, "%s of step %s starts devices at %s, %s", what, s.Name, t.In(c.r.StartWindows.Location).Format("Mon 2006-01-02 15:04 MST"), why)
			return
		}
	}
}

// outside says why a start at t (or any time in [t, t+length)) breaks the
// windows, "" when it does not: it must be in an allowed span (the start
// itself) and in no denied one.
func (c *checker) outside(t time.Time, length time.Duration) string {
	w := c.r.StartWindows
	lt := t.In(w.Location)
	if len(w.Allow) > 0 {
		ok := false
		for _, sp := range w.Allow {
			ok = ok || sp.contains(lt)
		}
		if !ok {
			return "outside the allowed windows (" + spanList(w.Allow) + " " + w.Timezone + ")"
		}
	}
	for _, sp := range w.Deny {
		if sp.contains(lt) || overlaps(sp, lt, lt.Add(length)) {
			return "in the denied window " + sp.String() + " " + w.Timezone
		}
	}
	return ""
}

// overlaps reports whether a span meets [from, to) on any day between.
func overlaps(sp Span, from, to time.Time) bool {
	if !to.After(from) {
		return false
	}
	loc := from.Location()
	for d := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc); d.Before(to); d = d.AddDate(0, 0, 1) {
		if !sp.onDay(d.Weekday()) {
			continue
		}
		start := d.Add(time.Duration(sp.From) * time.Minute)
		stop := d.Add(time.Duration(sp.To) * time.Minute)
		if start.Before(to) && stop.After(from) {
			return true
		}
	}
	return false
}

func spanList(spans []Span) string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.String()
	}
	return strings.Join(out, ", ")
}

// batchShare reports the first batch of a step that reaches more than the
// share of a tag group's devices.
func (c *checker) batchShare(path string, s *plan.Step) bool {
	sf := c.devices(s)
	if sf == nil || sf.Tags == nil && sf.Matched > 0 {
		return false
	}
	bs := c.r.BatchShare
	group := make([]string, len(sf.Tags))
	total := map[string]int{}
	for i, tags := range sf.Tags {
		if v, ok := lookup(tags, strings.Split(strings.TrimPrefix(bs.Tag, "tags."), ".")); ok {
			b, _ := json.Marshal(v)
			group[i] = string(b)
			total[group[i]]++
		}
	}
	batches := sf.Batches
	if len(batches) == 0 {
		batches = []int{len(group)}
	}
	where := path + ".rollout"
	if s.Rollout == nil {
		where = path + ".query"
	}
	prev := 0
	for bi, target := range batches {
		target = min(target, len(group))
		in := map[string]int{}
		for _, g := range group[prev:target] {
			if g != "" {
				in[g]++
			}
		}
		groups := make([]string, 0, len(in))
		for g := range in {
			groups = append(groups, g)
		}
		sort.Strings(groups)
		for _, g := range groups {
			if share := float64(in[g]) / float64(total[g]); share > bs.Share+1e-9 {
				c.violate(s, where, "batch %d of step %s reaches %d of the %d devices with %s = %s (%s, more than %s)",
					bi+1, s.Name, in[g], total[g], bs.Tag, g, percent(share), percent(bs.Share))
				return true
			}
		}
		prev = target
	}
	return true
}

func lookup(m map[string]any, path []string) (any, bool) {
	var cur any = m
	for _, k := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

func percent(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", f*100), "0"), ".") + "%"
}
