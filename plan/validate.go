package plan

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/plan/diag"
)

// Validate checks a plan's meaning: names, the "after" graph, one action
// per step, thresholds and timeouts in range, cron and query syntax. Parse
// runs it already; it is exported for plans built in code, whose
// diagnostics carry paths but no positions.
func (p *Plan) Validate() diag.Diagnostics {
	ds := p.validate(nil)
	ds.Sort()
	return ds
}

type validator struct {
	p     *Plan
	d     *decoder // nil for plans built in code
	diags diag.Diagnostics
	// reported holds the paths that decoding already reported, so that a
	// value that failed to decode is not reported again as out of range.
	reported map[string]bool
	// unknownIn holds the paths of objects with an unknown field.
	unknownIn map[string]bool
	// names maps each step name to its first step.
	names map[string]int
}

func (p *Plan) validate(d *decoder) diag.Diagnostics {
	v := &validator{p: p, d: d, reported: map[string]bool{}, unknownIn: map[string]bool{}, names: map[string]int{}}
	if d != nil {
		for _, x := range d.doc.Diags {
			v.reported[x.Path] = true
			if strings.HasPrefix(x.Summary, "unknown field") {
				if i := strings.LastIndexAny(x.Path, ".["); i >= 0 {
					v.unknownIn[x.Path[:i]] = true
				}
			}
		}
	}
	v.plan()
	for i, s := range p.Steps {
		v.step(i, s)
	}
	v.graph()
	return v.diags
}

// node returns the decoded node at path, or nil.
func (v *validator) node(path string) *diag.Node {
	if v.d == nil {
		return nil
	}
	return v.d.nodes[path]
}

// present reports whether the file set the value at path. For plans
// built in code every value counts as set.
func (v *validator) present(path string) bool { return v.d == nil || v.node(path) != nil }

// errorf reports an error at the node at path (or at fallback when the
// plan has no node there), unless decoding already reported that path.
func (v *validator) errorf(path string, fallback diag.Range, format string, args ...any) *diag.Diagnostic {
	if v.reported[path] {
		return &diag.Diagnostic{} // swallowed, but callers may still chain Hint
	}
	r := fallback
	if n := v.node(path); n != nil {
		r = n.Range()
	}
	d := diag.Errorf(r, path, format, args...)
	v.diags.Append(d)
	return d
}

// unknownFieldUnder reports whether decoding found an unknown field
// directly in the object at path; a misspelt "methd" then explains a
// missing action better than a second error would.
func (v *validator) unknownFieldUnder(path string) bool { return v.unknownIn[path] }

// keyErrorf is errorf at the key of the field at path: for problems with a
// field being there at all (two actions, start with cron).
func (v *validator) keyErrorf(path string, fallback diag.Range, format string, args ...any) *diag.Diagnostic {
	if v.d != nil {
		if k := v.d.keys[path]; k != nil {
			fallback = k.Range()
			if v.reported[path] {
				return &diag.Diagnostic{}
			}
			d := diag.Errorf(fallback, path, format, args...)
			v.diags.Append(d)
			return d
		}
	}
	return v.errorf(path, fallback, format, args...)
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// checkName requires a DNS-label-like name: it appears in job ids,
// reports and file names.
func (v *validator) checkName(path string, fallback diag.Range, what, name string) {
	if name == "" {
		v.errorf(path, fallback, "missing required field \"name\"").Hint("give the %s a name such as \"lock-doors\"", what)
		return
	}
	if dnsLabel.MatchString(name) {
		return
	}
	d := v.errorf(path, fallback, "invalid %s name %q", what, name)
	if s := sanitizeName(name); s != "" && s != name {
		d.Hint("use lowercase letters, digits and '-' (at most 63), e.g. %q", s)
	} else {
		d.Hint("use lowercase letters, digits and '-' (at most 63), starting and ending with a letter or digit")
	}
}

func sanitizeName(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	for strings.Contains(s, "--") {
		s = strings.ReplaceAll(s, "--", "-")
	}
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}

func (v *validator) plan() {
	p := v.p
	if p.Version != Version && v.present("version") {
		v.errorf("version", p.Range, "unsupported plan version %d", p.Version).
			Hint("this iotjobs reads version %d plans; set version: %d", Version, Version)
	}
	if v.present("name") {
		v.checkName("name", p.Range, "plan", p.Name)
	}
	if len(p.Steps) == 0 && v.present("steps") {
		v.errorf("steps", p.Range, "a plan needs at least one step").
			Hint("add a step with a name, a query and a method or twin action")
	}
	if v.d != nil {
		v.checkMaxExecutionTime("defaults.maxExecutionTime", p.Defaults.Range, p.Defaults.MaxExecutionTime)
		v.checkTimeouts("defaults", p.Defaults.Range, p.Defaults.ResponseTimeout, p.Defaults.ConnectTimeout, true, true)
	}
}

func (v *validator) checkMaxExecutionTime(path string, fallback diag.Range, d time.Duration) {
	if !v.present(path) {
		return
	}
	switch {
	case d <= 0:
		v.errorf(path, fallback, "maxExecutionTime must be more than zero").
			Hint(`give the longest time the step may run, e.g. 3600 (seconds) or "1h"`)
	case d%time.Second != 0:
		v.errorf(path, fallback, "maxExecutionTime %s is not a whole number of seconds", d).
			Hint("IoT Hub counts job time in seconds; use e.g. %q", d.Round(time.Second).String())
	}
}

// checkTimeouts enforces Azure's direct-method limits.
func (v *validator) checkTimeouts(prefix string, fallback diag.Range, rt, ct time.Duration, checkRT, checkCT bool) {
	if p := prefix + ".responseTimeout"; checkRT && v.present(p) {
		if rt < MinResponseTimeout || rt > MaxResponseTimeout || rt%time.Second != 0 {
			v.errorf(p, fallback, "responseTimeout %s is out of range", rt).
				Hint("IoT Hub accepts whole seconds from %s to %s", MinResponseTimeout, MaxResponseTimeout)
		}
	}
	if p := prefix + ".connectTimeout"; checkCT && v.present(p) {
		if ct < 0 || ct > MaxConnectTimeout || ct%time.Second != 0 {
			v.errorf(p, fallback, "connectTimeout %s is out of range", ct).
				Hint("IoT Hub accepts whole seconds from 0s to %s", MaxConnectTimeout)
		}
	}
}

func (v *validator) step(i int, s *Step) {
	path := s.path
	if path == "" {
		path = fmt.Sprintf("steps[%d]", i)
	}
	r := s.Range
	v.stepName(i, path, s)
	if strings.TrimSpace(s.Query) == "" {
		if v.present(path + ".query") {
			v.errorf(path+".query", r, "query is empty").
				Hint(`select devices with a condition such as "deviceId IN ['a', 'b']", or "*" for every device`)
		}
	} else {
		v.checkQuery(path+".query", r, s.Query)
	}
	v.stepAction(path, s)
	v.stepTiming(path, s)
	if ro := s.Rollout; ro != nil {
		v.rollout(path+".rollout", ro)
	}
	if a := s.Abort; a != nil {
		v.abort(path+".abort", a)
	}
	if su := s.Success; su != nil {
		v.checkFraction(path+".success.minSuccessRate", su.Range, su.MinSuccessRate)
	}
	if rt := s.Retry; rt != nil {
		v.retry(path+".retry", rt)
	}
	if vf := s.Verify; vf != nil {
		v.verify(path+".verify", vf)
	}
	if w := s.Window; w != nil {
		v.window(path+".window", w)
	}
	if a := s.Analysis; a != nil {
		v.analysis(path+".analysis", a)
	}
	if rb := s.Rollback; rb != nil {
		v.rollback(path+".rollback", s, rb)
	}
	if s.OnlyPassed && len(s.After) == 0 {
		v.errorf(path+".onlyPassed", r, "onlyPassed needs a step to be after").
			Hint("add after: [a step name]; onlyPassed runs this step on the devices that passed it")
	}
}

// stepName checks step i's name, and that no earlier step has it.
func (v *validator) stepName(i int, path string, s *Step) {
	r := s.Range
	v.checkName(path+".name", r, "step", s.Name)
	if j, dup := v.names[s.Name]; dup && s.Name != "" {
		prev := v.p.Steps[j]
		d := v.errorf(path+".name", r, "duplicate step name %q", s.Name)
		if prev.Range.Start.Line > 0 {
			d.Hint("step names must be unique; steps[%d] at line %d is already called %q", j, prev.Range.Start.Line, s.Name)
		} else {
			d.Hint("step names must be unique; steps[%d] is already called %q", j, s.Name)
		}
	} else if !dup {
		v.names[s.Name] = i
	}
}

// stepAction checks that the step does exactly one thing, and that thing.
func (v *validator) stepAction(path string, s *Step) {
	r := s.Range
	hasMethod := s.Method != nil || (v.d != nil && v.node(path+".method") != nil)
	hasTwin := s.Twin != nil || (v.d != nil && v.node(path+".twin") != nil)
	switch {
	case !hasMethod && !hasTwin && !v.unknownFieldUnder(path):
		v.errorf(path, r, "step %q has no action", s.Name).
			Hint("add a method (method: {name: lockDoor}) or a twin patch (twin: {desired: {...}})")
	case hasMethod && hasTwin:
		later := path + ".twin"
		if m, t := v.node(path+".method"), v.node(path+".twin"); m != nil && t != nil && m.Range().Start.Byte > t.Range().Start.Byte {
			later = path + ".method"
		}
		v.keyErrorf(later, r, "step %q has two actions, method and twin", s.Name).
			Hint("a step does one thing; move one action into its own step with after: [%s]", s.Name)
	}
	if m := s.Method; m != nil {
		v.method(path+".method", m)
	}
	if t := s.Twin; t != nil {
		if t.Desired == nil && t.Tags == nil {
			v.errorf(path+".twin", t.Range, "twin patch has neither desired nor tags").
				Hint(`add desired: {...} to patch desired properties, tags: {...} to patch tags, or both`)
		}
		if t.ETag == "" && v.present(path+".twin.etag") {
			v.errorf(path+".twin.etag", t.Range, "etag is empty").Hint(`use "*" to patch whatever the current twin is`)
		}
	}
}

// stepTiming checks when the step runs: start or cron (and its policy),
// and how long it may take.
func (v *validator) stepTiming(path string, s *Step) {
	r := s.Range
	hasStart := (v.d == nil && s.Start != (Start{}) && !s.Start.Now) || (v.d != nil && v.node(path+".start") != nil)
	if hasStart && s.Cron != "" {
		later := path + ".cron"
		if st, c := v.node(path+".start"), v.node(path+".cron"); st != nil && c != nil && st.Range().Start.Byte > c.Range().Start.Byte {
			later = path + ".start"
		}
		v.keyErrorf(later, r, "start and cron cannot both be set").
			Hint("use start for a one-off run, or cron for a repeating one")
	}
	cronPath := path + ".cron"
	if s.cronLong {
		cronPath += ".schedule"
	}
	if s.Cron != "" {
		if err := checkCron(s.Cron); err != nil {
			v.errorf(cronPath, r, "invalid cron expression %q: %v", s.Cron, err).
				Hint(`use 5 fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *" for 02:00 every day`)
		}
	} else if v.present(cronPath) && v.d != nil {
		v.errorf(cronPath, r, "cron expression is empty").Hint(`e.g. "0 2 * * *"; remove cron to run once`)
	}
	if cp := s.CronPolicy; s.cronLong {
		if cp.Timezone != "" {
			if _, err := time.LoadLocation(cp.Timezone); err != nil || strings.EqualFold(cp.Timezone, "local") {
				v.errorf(path+".cron.timezone", r, "unknown time zone %q", cp.Timezone).
					Hint(`use an IANA zone name such as "Europe/Berlin" or "UTC"`)
			}
		}
		if !slices.Contains([]string{ForbidOverlap, ReplaceOverlap, AllowOverlap}, cp.Concurrency) && !v.reported[path+".cron.concurrency"] {
			e := v.errorf(path+".cron.concurrency", r, "unknown concurrency policy %q", cp.Concurrency)
			if m := diag.Suggest(cp.Concurrency, []string{ForbidOverlap, ReplaceOverlap, AllowOverlap}); m != "" {
				e.Hint("did you mean %q? concurrency is forbid, replace or allow", m)
			} else {
				e.Hint("concurrency is forbid (skip an occurrence while the last runs), replace (cancel the last) or allow (run both)")
			}
		}
		if cp.StartingDeadline < 0 {
			v.errorf(path+".cron.startingDeadline", r, "startingDeadline %v is negative", cp.StartingDeadline).
				Hint("give how late an occurrence may still start, e.g. 10m")
		}
	}
	if v.d == nil || s.maxExecutionTimeSet {
		v.checkMaxExecutionTime(path+".maxExecutionTime", r, s.MaxExecutionTime)
	}
}

// abort checks a step's abort thresholds.
func (v *validator) abort(path string, a *Abort) {
	hasFailures := v.d == nil && a.Failures != 0 || v.node(path+".failures") != nil
	switch {
	case a.HasRate && hasFailures:
		v.keyErrorf(path+".failures", a.Range, "abort has both failureRate and failures").
			Hint("abort on a share of the devices run (failureRate: 5%%) or on a number of them (failures: 10), not both")
	case !a.HasRate && !hasFailures && !v.reported[path]:
		v.errorf(path, a.Range, "abort has no threshold").
			Hint("add failureRate: 5%% (a share of the devices run) or failures: 10 (a number of them)")
	}
	if a.HasRate {
		v.checkFraction(path+".failureRate", a.Range, a.FailureRate)
	}
	if hasFailures && a.Failures < 1 && !v.reported[path+".failures"] {
		v.errorf(path+".failures", a.Range, "failures must be at least 1").
			Hint("give how many failed devices stop the step, e.g. failures: 10")
	}
	if a.MinExecuted < 0 {
		v.errorf(path+".minExecuted", a.Range, "minExecuted %d is negative", a.MinExecuted).
			Hint("give the number of finished devices needed before the failure rate counts, e.g. 50")
	}
	v.classes(path+".on", a.Range, a.On, true)
}

// verify checks a step's post-condition.
func (v *validator) verify(path string, vf *Verify) {
	if vf.Query == "" {
		if v.present(path + ".query") {
			v.errorf(path+".query", vf.Range, "verify query is empty").
				Hint(`give the condition each device must come to satisfy, e.g. "properties.reported.firmware = '2.4.1'"`)
		}
	} else {
		v.checkQuery(path+".query", vf.Range, vf.Query)
	}
	if vf.Timeout <= 0 && !v.reported[path+".timeout"] {
		v.errorf(path+".timeout", vf.Range, "verify timeout must be positive").
			Hint("give how long devices have to converge, e.g. timeout: 15m")
	}
}

func (v *validator) method(path string, m *Method) {
	if m.Name == "" && v.present(path+".name") {
		v.errorf(path+".name", m.Range, "method name is empty").Hint("name the direct method to invoke, e.g. lockDoor")
	}
	code := v.d == nil
	v.checkTimeouts(path, m.Range, m.ResponseTimeout, m.ConnectTimeout,
		code || m.responseTimeoutSet, code || m.connectTimeoutSet)
}

// analysis checks a health gate.
func (v *validator) analysis(path string, a *Analysis) {
	if a.Query == "" {
		if v.present(path + ".query") {
			v.errorf(path+".query", a.Range, "analysis query is empty").
				Hint(`give the health condition, e.g. "properties.reported.health.crashes < 3"`)
		}
	} else {
		v.checkQuery(path+".query", a.Range, a.Query)
	}
	if a.Bake < 0 {
		v.errorf(path+".bake", a.Range, "bake %v is negative", a.Bake).Hint("give how long a batch bakes before its health is read, e.g. bake: 10m")
	}
	v.checkFraction(path+".minPassRate", a.Range, a.MinPassRate)
	c := a.Control
	if c == nil {
		return
	}
	if c.MatchTags != nil && len(c.MatchTags) == 0 && !v.reported[path+".control.matchTags"] {
		v.errorf(path+".control.matchTags", c.Range, "matchTags is empty").
			Hint("name the tags a control device shares with the batch's, e.g. [model, region]")
	}
	seen := map[string]bool{}
	for i, t := range c.MatchTags {
		p := fmt.Sprintf("%s.control.matchTags[%d]", path, i)
		switch {
		case !tagPath.MatchString("tags." + t):
			v.errorf(p, c.Range, "%q is not a tag name", t).
				Hint(`name a tag under tags, e.g. model or location.region (without "tags.")`)
		case seen[t]:
			v.errorf(p, c.Range, "tag %q is listed twice", t).Hint("list each tag once")
		}
		seen[t] = true
	}
	v.checkFraction(path+".control.maxDegradation", c.Range, c.MaxDegradation)
}

// rollback checks what undoes a step.
func (v *validator) rollback(path string, s *Step, rb *Rollback) {
	if rb.On != nil && len(rb.On) == 0 && v.present(path+".on") {
		v.errorf(path+".on", rb.Range, "rollback.on is empty").Hint("list abort, planAbort or both; or remove on for [abort]")
	}
	triggers := []string{OnAbort, OnPlanAbort}
	seen := map[string]bool{}
	for i, on := range rb.On {
		p := fmt.Sprintf("%s.on[%d]", path, i)
		switch {
		case !slices.Contains(triggers, on):
			e := v.errorf(p, rb.Range, "unknown rollback trigger %q", on)
			if m := diag.Suggest(on, triggers); m != "" {
				e.Hint("did you mean %q? rollback runs on abort (this step aborted) or planAbort (a later step aborted the plan)", m)
			} else {
				e.Hint("rollback runs on abort (this step aborted) or planAbort (a later step aborted the plan)")
			}
		case seen[on]:
			v.errorf(p, rb.Range, "trigger %q is listed twice", on).Hint("list each trigger once")
		}
		seen[on] = true
	}
	switch {
	case s.Twin != nil && rb.Method != nil:
		v.keyErrorf(path+".method", rb.Range, "a twin step's rollback restores its twins; it takes no method").
			Hint("remove method: the runner keeps each twin's previous values and restores them")
	case s.Method != nil && rb.Method == nil && !v.reported[path]:
		v.errorf(path, rb.Range, "a method step's rollback needs a compensating method").
			Hint("name the method that undoes this one, e.g. method: {name: revertFirmware}")
	case rb.Method != nil:
		v.method(path+".method", rb.Method)
	}
	if slices.Contains(rb.On, OnAbort) && !slices.Contains(rb.On, OnPlanAbort) && s.Abort == nil && s.Analysis == nil {
		r := rb.Range
		if n := v.node(path); n != nil {
			r = n.Range()
		}
		v.diags.Append(diag.Warningf(r, path, "rollback on abort never runs: the step has neither abort thresholds nor an analysis").
			Hint("add abort: {failureRate: 5%%, minExecuted: 10} or analysis, or add planAbort to on"))
	}
}

// tagPath is the path of a twin tag, e.g. tags.maintenance.window.
var tagPath = regexp.MustCompile(`^tags(\.[A-Za-z0-9_$-]+)+$`)

func (v *validator) window(path string, w *Window) {
	switch {
	case w.FromTag != "":
		if w.Cron != "" || w.Duration != 0 || w.Timezone != "" {
			v.errorf(path+".fromTag", w.Range, "a window from a tag takes no cron, duration or timezone of its own").
				Hint("each device's tag holds {cron, duration, timezone}; remove the others, or remove fromTag for one window for all")
		}
		if !tagPath.MatchString(w.FromTag) {
			v.errorf(path+".fromTag", w.Range, "fromTag %q is not a tag path", w.FromTag).
				Hint("name the twin tag holding each device's window, e.g. tags.maintenance")
		}
		return
	case w.Cron == "":
		if !v.reported[path+".cron"] {
			v.errorf(path, w.Range, "window needs cron and duration, or fromTag").
				Hint(`e.g. window: {cron: "0 2 * * *", duration: 2h}, or window: {fromTag: tags.maintenance}`)
		}
		return
	}
	if err := checkCron(w.Cron); err != nil {
		v.errorf(path+".cron", w.Range, "invalid cron expression %q: %v", w.Cron, err).
			Hint(`the window opens at each occurrence, e.g. "0 2 * * *" for 02:00 every day`)
	}
	if w.Duration <= 0 && !v.reported[path+".duration"] {
		v.errorf(path+".duration", w.Range, "window duration must be positive").Hint("say how long the window stays open, e.g. duration: 2h")
	}
	if w.Timezone != "" {
		if _, err := time.LoadLocation(w.Timezone); err != nil || strings.EqualFold(w.Timezone, "local") {
			v.errorf(path+".timezone", w.Range, "unknown time zone %q", w.Timezone).Hint(`use an IANA zone name such as "Europe/Berlin" or "UTC"`)
		}
	}
}

func (v *validator) retry(path string, rt *Retry) {
	if rt.Attempts < 1 || rt.Attempts > 10 {
		if !v.reported[path+".attempts"] {
			v.errorf(path+".attempts", rt.Range, "attempts %d is out of range", rt.Attempts).
				Hint("retry a failed device 1 to 10 more times")
		}
	}
	if rt.Backoff < 0 {
		v.errorf(path+".backoff", rt.Range, "backoff %v is negative", rt.Backoff).Hint("wait e.g. backoff: 1m before each retry")
	}
	v.classes(path+".on", rt.Range, rt.On, false)
}

// classes checks a list of failure classes (abort's may say "all").
func (v *validator) classes(path string, fallback diag.Range, on []string, all bool) {
	valid := RetryClasses
	if all {
		valid = append(slices.Clone(AbortClasses), "all")
	}
	if on != nil && len(on) == 0 && v.present(path) {
		v.errorf(path, fallback, "the list of failure classes is empty").Hint("list some of %s; or remove it for all of them", strings.Join(valid, ", "))
	}
	seen := map[string]bool{}
	for i, c := range on {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case !slices.Contains(valid, c):
			e := v.errorf(p, fallback, "unknown failure class %q", c)
			if m := diag.Suggest(c, valid); m != "" {
				e.Hint("did you mean %q? the classes are %s", m, strings.Join(valid, ", "))
			} else {
				e.Hint("the classes are %s", strings.Join(valid, ", "))
			}
		case seen[c]:
			v.errorf(p, fallback, "failure class %q is listed twice", c).Hint("list each class once")
		case c == "all" && len(on) > 1:
			v.errorf(p, fallback, "\"all\" is listed with other classes").Hint("all already counts every class; remove the others")
		}
		seen[c] = true
	}
}

func (v *validator) checkFraction(path string, fallback diag.Range, f float64) {
	if f < 0 || f > 1 || f != f {
		v.errorf(path, fallback, "%v is out of range", f).Hint("use a fraction between 0 and 1, or a percentage")
	}
}

func (v *validator) rollout(path string, ro *Rollout) {
	var prev *Batch
	prevIdx := -1
	for j := range ro.Batches {
		b := &ro.Batches[j]
		bp := fmt.Sprintf("%s.batches[%d]", path, j)
		switch {
		case b.Percent == 0 && b.Count == 0:
			if v.d == nil || !v.reported[bp] {
				v.errorf(bp, ro.Range, "batch size must be more than zero").
					Hint(`batches are cumulative targets such as "1%%", "10%%", "100%%", or device counts such as 10, 100`)
			}
			continue
		case b.Percent != 0 && b.Count != 0:
			v.errorf(bp, ro.Range, "batch has both a percentage and a count")
			continue
		case b.Percent < 0 || b.Percent > 100 || b.Percent != b.Percent:
			v.errorf(bp, ro.Range, "batch %v%% is out of range", b.Percent).
				Hint("percentages of the matched devices go from above 0%% to 100%%")
			continue
		case b.Count < 0:
			v.errorf(bp, ro.Range, "batch size %d is negative", b.Count).Hint("give a number of devices, at least 1")
			continue
		}
		if prev != nil {
			switch {
			case (prev.Percent != 0) != (b.Percent != 0):
				v.errorf(bp, ro.Range, "batch mixes a device count with percentages").
					Hint("write all batches as percentages or all as device counts")
			case b.Percent != 0 && b.Percent <= prev.Percent, b.Count != 0 && b.Count <= prev.Count:
				v.errorf(bp, ro.Range, "batches must increase: %s is not more than %s (batches[%d])", b, prev, prevIdx).
					Hint(`each batch is the cumulative total reached so far, e.g. ["1%%", "10%%", "100%%"]`)
			}
		}
		prev, prevIdx = b, j
	}
	if p := path + ".maxPerMinute"; ro.MaxPerMinute < 0 || (v.d != nil && v.node(p) != nil && ro.MaxPerMinute == 0 && !v.reported[p]) {
		v.errorf(p, ro.Range, "maxPerMinute must be at least 1").Hint("give the most device operations per minute, e.g. 1000; remove it for no limit")
	}
	if ro.Pause < 0 {
		v.errorf(path+".pause", ro.Range, "pause is negative")
	}
	if e := ro.Exponential; e != nil {
		ep := path + ".exponential"
		if ro.MaxPerMinute != 0 {
			v.keyErrorf(ep, ro.Range, "rollout has both maxPerMinute and exponential").
				Hint("exponential sets a growing rate of its own; remove maxPerMinute")
		}
		if e.BaseRatePerMinute < 1 && !v.reported[ep+".baseRatePerMinute"] && (v.d == nil || v.node(ep+".baseRatePerMinute") != nil) {
			v.errorf(ep+".baseRatePerMinute", e.Range, "baseRatePerMinute must be at least 1").Hint("the number of devices started in the first minute, e.g. 10")
		}
		if (e.IncrementFactor <= 1 || e.IncrementFactor > 5) && !v.reported[ep+".incrementFactor"] && (v.d == nil || v.node(ep+".incrementFactor") != nil) {
			v.errorf(ep+".incrementFactor", e.Range, "incrementFactor %v is out of range", e.IncrementFactor).Hint("the rate grows by a factor above 1 and at most 5, e.g. 2")
		}
		cp := ep + ".rateIncreaseCriteria"
		if (v.d == nil || v.node(cp) != nil) && e.NotifiedDevices < 1 && e.SucceededDevices < 1 && !v.reported[cp] {
			v.errorf(cp, e.Range, "rateIncreaseCriteria needs a positive count").
				Hint("grow the rate after numberOfNotifiedDevices or numberOfSucceededDevices devices, e.g. numberOfSucceededDevices: 50")
		}
		for _, f := range []struct {
			name string
			n    int
		}{{"numberOfNotifiedDevices", e.NotifiedDevices}, {"numberOfSucceededDevices", e.SucceededDevices}} {
			if f.n < 0 {
				v.errorf(cp+"."+f.name, e.Range, "%s %d is negative", f.name, f.n).Hint("give a number of devices, at least 1")
			}
		}
	}
}

// String formats a batch as written in a plan: "10%" or 50.
func (b Batch) String() string {
	if b.Percent != 0 {
		return fmt.Sprintf("%v%%", b.Percent)
	}
	return fmt.Sprint(b.Count)
}

// checkCron parses a standard cron expression. robfig/cron panics on some
// malformed time-zone prefixes, and a plan is hostile input.
func checkCron(expr string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed expression")
		}
	}()
	_, err = cron.ParseStandard(expr)
	return err
}

func (v *validator) checkQuery(path string, fallback diag.Range, q string) {
	trimmed := strings.TrimSpace(q)
	if trimmed == "*" {
		return
	}
	if len(trimmed) >= 7 && strings.EqualFold(trimmed[:7], "SELECT ") {
		v.errorf(path, fallback, "query must be a condition, not a SELECT statement").
			Hint(`write only the part after WHERE, e.g. "deviceId IN ['a', 'b']"`)
		return
	}
	err := safeParseCondition(query.ParseCondition, q)
	if err == nil || v.reported[path] {
		return
	}
	const hint = `the query is the WHERE part of a twin query, e.g. "deviceId IN ['a', 'b']" or "tags.building = '43'"`
	var se *query.SyntaxError
	if !errors.As(err, &se) {
		v.errorf(path, fallback, "invalid query: %v", err).Hint(hint)
		return
	}
	r := fallback
	if n := v.node(path); n != nil {
		r = n.Range()
		// A value changed by ${...} expansion no longer lines up with the
		// source, so only an unexpanded query gets the exact position.
		if !v.d.expanded[path] {
			r = n.ValueRange(se.Offset, se.Offset+1)
		}
	}
	d := diag.Errorf(r, path, "invalid query: %s", se.Msg).Hint(hint)
	v.diags.Append(d)
}

func safeParseCondition(parse func(string) (query.Expr, error), q string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the query parser failed on this condition")
		}
	}()
	_, err = parse(q)
	return err
}

// graph checks the "after" references: unknown names, self references and
// cycles (one error per cycle, at an explicit after entry in it).
func (v *validator) graph() {
	p := v.p
	index := map[string]int{}
	var names []string
	for i, s := range p.Steps {
		if _, dup := index[s.Name]; !dup && s.Name != "" {
			index[s.Name] = i
			names = append(names, s.Name)
		}
	}
	edges := make([][]int, len(p.Steps)) // step -> steps it runs after
	edgeIdx := make([][]int, len(p.Steps))
	for i, s := range p.Steps {
		path := s.path
		if path == "" {
			path = fmt.Sprintf("steps[%d]", i)
		}
		if !s.afterSet && v.d != nil {
			// Implied by file order: the previous step, whatever its name
			// (even a duplicate of this one, which is reported already).
			if i > 0 {
				edges[i] = append(edges[i], i-1)
				edgeIdx[i] = append(edgeIdx[i], 0)
			}
			continue
		}
		for j, a := range s.After {
			ap := fmt.Sprintf("%s.after[%d]", path, j)
			k, ok := index[a]
			switch {
			case a == "":
				continue
			case !ok:
				d := v.errorf(ap, s.Range, "unknown step %q in after", a)
				if sug := diag.Suggest(a, names); sug != "" {
					d.Hint("did you mean %q?", sug)
				} else {
					d.Hint("after lists names of other steps in this plan: %s", strings.Join(names, ", "))
				}
			case a == s.Name:
				v.errorf(ap, s.Range, "step %q cannot run after itself", a).Hint("remove %q from after", a)
			default:
				edges[i] = append(edges[i], k)
				edgeIdx[i] = append(edgeIdx[i], j)
			}
		}
	}
	v.cycles(edges, edgeIdx)
}

// cycles finds the strongly connected components of the after graph
// (Tarjan, iteratively so that a hostile chain cannot exhaust the stack)
// and reports each cyclic one once.
func (v *validator) cycles(edges, edgeIdx [][]int) {
	n := len(edges)
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	next := 0
	type frame struct{ node, edge int }
	for root := 0; root < n; root++ {
		if index[root] >= 0 {
			continue
		}
		call := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.edge < len(edges[f.node]) {
				w := edges[f.node][f.edge]
				f.edge++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{w, 0})
				} else if onStack[w] {
					low[f.node] = min(low[f.node], index[w])
				}
				continue
			}
			u := f.node
			call = call[:len(call)-1]
			if len(call) > 0 {
				parent := call[len(call)-1].node
				low[parent] = min(low[parent], low[u])
			}
			if low[u] != index[u] {
				continue
			}
			var comp []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == u {
					break
				}
			}
			if len(comp) > 1 {
				v.reportCycle(comp, edges, edgeIdx)
			}
		}
	}
}

func (v *validator) reportCycle(comp []int, edges, edgeIdx [][]int) {
	in := map[int]bool{}
	first := comp[0]
	for _, c := range comp {
		in[c] = true
		first = min(first, c)
	}
	// Walk the cycle from the earliest step in the file, following edges
	// that stay inside the component, to name it in the message.
	steps := v.p.Steps
	var names []string
	var at []struct{ step, edge int }
	seen := map[int]int{}
	for cur := first; ; {
		if pos, ok := seen[cur]; ok {
			names = append(names[pos:], steps[cur].Name)
			at = at[pos:]
			break
		}
		seen[cur] = len(names)
		names = append(names, steps[cur].Name)
		for k, w := range edges[cur] {
			if in[w] {
				at = append(at, struct{ step, edge int }{cur, edgeIdx[cur][k]})
				cur = w
				break
			}
		}
	}
	// Report at the first explicit after entry of the cycle, if any.
	pick := at[0]
	for _, e := range at {
		if steps[e.step].afterSet || v.d == nil {
			pick = e
			break
		}
	}
	s := steps[pick.step]
	path := s.path
	if path == "" {
		path = fmt.Sprintf("steps[%d]", pick.step)
	}
	if s.afterSet || v.d == nil {
		path = fmt.Sprintf("%s.after[%d]", path, pick.edge)
	}
	v.errorf(path, s.Range, "steps form a cycle: %s", strings.Join(names, " → ")).
		Hint("after says which steps must finish first; remove one of these references")
}
