package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/plan/diag"
)

// Option changes how [Parse] reads a plan.
type Option func(*options)

type options struct {
	env  func(string) (string, bool)
	vars map[string]string
}

// WithEnv sets the lookup for ${env.NAME} references; the default is
// os.LookupEnv. Tests and tools that must not depend on the environment
// pass their own.
func WithEnv(lookup func(name string) (string, bool)) Option {
	return func(o *options) { o.env = lookup }
}

// WithVars sets variables from outside the plan (iotjobs --var and
// --var-file): each replaces the value the plan declares under vars:, as
// written, without ${env.NAME} expansion, so that one plan file serves
// several rollouts. A name the plan does not declare is an error, as in
// Terraform: a typo must not leave the declared value silently in force.
func WithVars(vars map[string]string) Option {
	return func(o *options) { o.vars = vars }
}

// Load reads and parses the plan file at path. A file that cannot be read
// is reported as a diagnostic too, so callers handle one kind of failure.
func Load(path string, opts ...Option) (*Plan, diag.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		var ds diag.Diagnostics
		ds.Append(diag.Errorf(diag.Range{Filename: path}, "", "cannot read plan: %v", unwrapPathError(err)).
			Hint("check the file name and that the file is readable"))
		return nil, ds
	}
	return Parse(path, src, opts...)
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// Parse decodes, expands, completes and validates a plan. It reports every
// problem it finds, sorted by position; the plan is nil when any of them
// is an error. filename is used in diagnostics and recorded in Plan.File.
func Parse(filename string, src []byte, opts ...Option) (*Plan, diag.Diagnostics) {
	o := options{env: os.LookupEnv}
	for _, opt := range opts {
		opt(&o)
	}
	sum := sha256.Sum256(src)
	p := &Plan{File: filename, SHA256: hex.EncodeToString(sum[:])}
	doc := diag.Decode(filename, src)
	if doc.Root == nil {
		if !doc.Diags.HasErrors() {
			doc.Diags.Append(diag.Errorf(doc.FileRange(), "", "plan is empty").
				Hint("a plan needs at least: version: 1, name: NAME and a list of steps"))
		}
		doc.Diags.Sort()
		return nil, doc.Diags
	}
	d := &decoder{doc: doc, opts: o, plan: p, nodes: map[string]*diag.Node{}, keys: map[string]*diag.Node{}}
	d.decodePlan(doc.Root)
	p.nodes, p.keys = d.nodes, d.keys
	applyDefaults(p)
	ds := doc.Diags
	ds.Extend(p.validate(d))
	ds.Sort()
	if ds.HasErrors() {
		return nil, ds
	}
	return p, ds
}

// decoder walks a plan's nodes into a Plan. It remembers each value's node
// by path so that validation, which works on the Plan, can still point at
// the exact value (and inside a query string).
type decoder struct {
	doc   *diag.Document
	opts  options
	plan  *Plan
	nodes map[string]*diag.Node
	// keys holds the key node of each field by the field's path, for
	// problems with a field's presence rather than its value.
	keys map[string]*diag.Node
	// expanded holds the paths of values changed by ${...} expansion,
	// whose offsets no longer match the source.
	expanded map[string]bool
}

// object reads a mapping with the allowed fields and remembers its keys.
func (d *decoder) object(n *diag.Node, allowed ...string) (*diag.Object, bool) {
	o, ok := n.Object(allowed...)
	if ok {
		for _, p := range o.Pairs() {
			d.keys[p.Value.Path] = p.KeyNd
		}
	}
	return o, ok
}

func (d *decoder) keep(n *diag.Node) *diag.Node {
	if n != nil {
		d.nodes[n.Path] = n
	}
	return n
}

var (
	planFields     = []string{"version", "name", "description", "defaults", "steps", "vars"}
	defaultsFields = []string{"maxExecutionTime", "responseTimeout", "connectTimeout"}
	stepFields     = []string{"name", "description", "query", "after", "method", "twin", "start", "cron",
		"maxExecutionTime", "rollout", "abort", "success", "retry", "verify", "onlyPassed", "window", "analysis", "rollback"}
	methodFields   = []string{"name", "payload", "responseTimeout", "connectTimeout"}
	twinFields     = []string{"etag", "desired", "tags"}
	rolloutFields  = []string{"batches", "pause", "maxPerMinute", "exponential"}
	expFields      = []string{"baseRatePerMinute", "incrementFactor", "rateIncreaseCriteria"}
	criteriaField  = []string{"numberOfNotifiedDevices", "numberOfSucceededDevices"}
	abortFields    = []string{"failureRate", "failures", "minExecuted", "on"}
	successFields  = []string{"minSuccessRate"}
	retryFields    = []string{"attempts", "backoff", "on"}
	cronFields     = []string{"schedule", "timezone", "concurrency", "startingDeadline"}
	windowFields   = []string{"cron", "duration", "timezone", "fromTag"}
	verifyFields   = []string{"query", "timeout"}
	analysisFields = []string{"query", "bake", "minPassRate", "control"}
	controlFields  = []string{"matchTags", "maxDegradation"}
	rollbackFields = []string{"on", "method"}
)

func (d *decoder) decodePlan(root *diag.Node) {
	p := d.plan
	p.Range = root.Range()
	obj, ok := d.object(root, planFields...)
	if !ok {
		return
	}
	// Variables first: every other value may refer to them.
	d.decodeVars(obj.Get("vars"))
	for _, pr := range obj.Pairs() {
		if pr.Key != "vars" {
			d.expand(pr.Value)
		}
	}

	if v := d.keep(obj.Require("version", "add \"version: 1\" at the top of the file")); v != nil {
		p.Version, _ = v.Int()
	}
	if v := d.keep(obj.Require("name", "add a name such as \"name: lock-doors\"")); v != nil {
		p.Name, _ = v.Text()
	}
	if v := obj.Get("description"); v != nil {
		p.Description, _ = v.Text()
	}
	p.Defaults = Defaults{
		MaxExecutionTime: DefaultMaxExecutionTime,
		ResponseTimeout:  DefaultResponseTimeout,
		ConnectTimeout:   DefaultConnectTimeout,
	}
	if v := d.keep(obj.Get("defaults")); v != nil {
		p.Defaults.Range = v.Range()
		if o, ok := d.object(v, defaultsFields...); ok {
			p.Defaults.MaxExecutionTime = d.duration(o, "maxExecutionTime", p.Defaults.MaxExecutionTime)
			p.Defaults.ResponseTimeout = d.duration(o, "responseTimeout", p.Defaults.ResponseTimeout)
			p.Defaults.ConnectTimeout = d.duration(o, "connectTimeout", p.Defaults.ConnectTimeout)
		}
	}
	steps := d.keep(obj.Require("steps", "add a list of steps, each with a name, a query and a method or twin action"))
	if steps == nil {
		return
	}
	items, ok := steps.Items()
	if !ok {
		return
	}
	if len(items) == 0 {
		steps.Errorf("a plan needs at least one step").Hint("add a step with a name, a query and a method or twin action")
	}
	for i, it := range items {
		if s := d.decodeStep(it); s != nil {
			s.path = fmt.Sprintf("steps[%d]", i)
			p.Steps = append(p.Steps, s)
		}
	}
}

// duration reads an optional duration field, returning def when absent or
// invalid.
func (d *decoder) duration(o *diag.Object, key string, def time.Duration) time.Duration {
	v := d.keep(o.Get(key))
	if v == nil {
		return def
	}
	if dur, ok := v.Duration(); ok {
		return dur
	}
	return def
}

func (d *decoder) decodeStep(n *diag.Node) *Step {
	d.keep(n)
	obj, ok := d.object(n, stepFields...)
	if !ok {
		return nil
	}
	s := &Step{Range: n.Range()}
	if v := d.keep(obj.Require("name", "give the step a name such as \"name: lock-door\"")); v != nil {
		s.Name, _ = v.Text()
	}
	if v := obj.Get("description"); v != nil {
		s.Description, _ = v.Text()
	}
	if v := d.keep(obj.Require("query", `select devices with a twin query condition, e.g. query: "deviceId IN ['a', 'b']", or "*" for all`)); v != nil {
		s.Query, _ = v.Text()
	}
	if v := d.keep(obj.Get("after")); v != nil {
		s.afterSet = true
		s.After = []string{}
		if items, ok := v.Items(); ok {
			for _, it := range items {
				if name, ok := d.keep(it).Text(); ok {
					s.After = append(s.After, name)
				}
			}
		}
	}
	if v := d.keep(obj.Get("method")); v != nil {
		s.Method = d.decodeMethod(v)
	}
	if v := d.keep(obj.Get("twin")); v != nil {
		s.Twin = d.decodeTwin(v)
	}
	if v := d.keep(obj.Get("start")); v != nil {
		s.Start, _ = parseStart(v)
	}
	s.CronPolicy.Concurrency = ForbidOverlap
	if v := d.keep(obj.Get("cron")); v != nil {
		if v.IsMapping() {
			s.cronLong = true
			if o, ok := d.object(v, cronFields...); ok {
				if sc := d.keep(o.Require("schedule", `give the cron expression, e.g. schedule: "0 2 * * *"`)); sc != nil {
					s.Cron, _ = sc.Text()
				}
				if tz := d.keep(o.Get("timezone")); tz != nil {
					s.CronPolicy.Timezone, _ = tz.Text()
				}
				if c := d.keep(o.Get("concurrency")); c != nil {
					s.CronPolicy.Concurrency, _ = c.Text()
				}
				if sd := d.keep(o.Get("startingDeadline")); sd != nil {
					s.CronPolicy.StartingDeadline, _ = sd.Duration()
				}
			}
		} else {
			s.Cron, _ = v.Text()
		}
	}
	if v := d.keep(obj.Get("maxExecutionTime")); v != nil {
		s.MaxExecutionTime, s.maxExecutionTimeSet = v.Duration()
	}
	if v := d.keep(obj.Get("rollout")); v != nil {
		s.Rollout = d.decodeRollout(v)
	}
	if v := d.keep(obj.Get("abort")); v != nil {
		if o, ok := d.object(v, abortFields...); ok {
			s.Abort = &Abort{Range: v.Range(), On: slices.Clone(AbortClasses)}
			if f := d.keep(o.Get("failureRate")); f != nil {
				s.Abort.FailureRate, _ = f.Fraction()
				s.Abort.HasRate = true
			}
			if f := d.keep(o.Get("failures")); f != nil {
				s.Abort.Failures, _ = f.Int()
			}
			if m := d.keep(o.Get("minExecuted")); m != nil {
				s.Abort.MinExecuted, _ = m.Int()
			}
			s.Abort.On = d.classes(o.Get("on"), s.Abort.On)
		}
	}
	if v := d.keep(obj.Get("success")); v != nil {
		if o, ok := d.object(v, successFields...); ok {
			s.Success = &Success{Range: v.Range()}
			if f := d.keep(o.Require("minSuccessRate", `add e.g. minSuccessRate: 98%`)); f != nil {
				s.Success.MinSuccessRate, _ = f.Fraction()
			}
		}
	}
	if v := d.keep(obj.Get("retry")); v != nil {
		if o, ok := d.object(v, retryFields...); ok {
			s.Retry = &Retry{Range: v.Range(), Attempts: 1}
			if a := d.keep(o.Get("attempts")); a != nil {
				s.Retry.Attempts, _ = a.Int()
			}
			if b := d.keep(o.Get("backoff")); b != nil {
				s.Retry.Backoff, _ = b.Duration()
			}
			s.Retry.On = d.classes(o.Get("on"), slices.Clone(RetryClasses))
		}
	}
	if v := d.keep(obj.Get("verify")); v != nil {
		if o, ok := d.object(v, verifyFields...); ok {
			s.Verify = &Verify{Range: v.Range(), Timeout: defaultVerifyTimeout}
			if q := d.keep(o.Require("query", `give the condition each device must come to satisfy, e.g. query: "properties.reported.firmware = '2.4.1'"`)); q != nil {
				s.Verify.Query, _ = q.Text()
			}
			if t := d.keep(o.Get("timeout")); t != nil {
				s.Verify.Timeout, _ = t.Duration()
			}
		}
	}
	if v := d.keep(obj.Get("onlyPassed")); v != nil {
		s.OnlyPassed, _ = v.Bool()
	}
	if v := d.keep(obj.Get("window")); v != nil {
		if o, ok := d.object(v, windowFields...); ok {
			w := &Window{Range: v.Range()}
			if c := d.keep(o.Get("cron")); c != nil {
				w.Cron, _ = c.Text()
			}
			if du := d.keep(o.Get("duration")); du != nil {
				w.Duration, _ = du.Duration()
			}
			if tz := d.keep(o.Get("timezone")); tz != nil {
				w.Timezone, _ = tz.Text()
			}
			if ft := d.keep(o.Get("fromTag")); ft != nil {
				w.FromTag, _ = ft.Text()
			}
			s.Window = w
		}
	}
	if v := d.keep(obj.Get("analysis")); v != nil {
		s.Analysis = d.decodeAnalysis(v)
	}
	if v := d.keep(obj.Get("rollback")); v != nil {
		if o, ok := d.object(v, rollbackFields...); ok {
			s.Rollback = &Rollback{Range: v.Range(), On: []string{OnAbort}}
			if on := d.keep(o.Get("on")); on != nil {
				s.Rollback.On = d.classes(on, nil)
			}
			if m := d.keep(o.Get("method")); m != nil {
				s.Rollback.Method = d.decodeMethod(m)
			}
		}
	}
	return s
}

// Defaults of verify and analysis when the plan does not say.
const (
	defaultVerifyTimeout  = 10 * time.Minute
	DefaultBake           = 5 * time.Minute
	DefaultMaxDegradation = 0.05
)

func (d *decoder) decodeAnalysis(n *diag.Node) *Analysis {
	o, ok := d.object(n, analysisFields...)
	if !ok {
		return nil
	}
	a := &Analysis{Range: n.Range(), Bake: DefaultBake, MinPassRate: 1}
	if q := d.keep(o.Require("query", `give the health condition each device of a batch should satisfy, e.g. query: "properties.reported.health.crashes < 3"`)); q != nil {
		a.Query, _ = q.Text()
	}
	if b := d.keep(o.Get("bake")); b != nil {
		a.Bake, _ = b.Duration()
	}
	minSet := false
	if m := d.keep(o.Get("minPassRate")); m != nil {
		a.MinPassRate, minSet = m.Fraction()
	}
	if c := d.keep(o.Get("control")); c != nil {
		if co, ok := d.object(c, controlFields...); ok {
			a.Control = &Control{Range: c.Range(), MaxDegradation: DefaultMaxDegradation}
			if mt := d.keep(co.Require("matchTags", "name the tags a control device shares with the batch's, e.g. matchTags: [model, region]")); mt != nil {
				a.Control.MatchTags = []string{}
				if items, ok := mt.Items(); ok {
					for _, it := range items {
						if name, ok := d.keep(it).Text(); ok {
							a.Control.MatchTags = append(a.Control.MatchTags, name)
						}
					}
				}
			}
			if md := d.keep(co.Get("maxDegradation")); md != nil {
				a.Control.MaxDegradation, _ = md.Fraction()
			}
			if !minSet {
				a.MinPassRate = 0
			}
		}
	}
	return a
}

func (d *decoder) decodeMethod(n *diag.Node) *Method {
	o, ok := d.object(n, methodFields...)
	if !ok {
		return nil
	}
	m := &Method{Range: n.Range(), Payload: json.RawMessage("null")}
	if v := d.keep(o.Require("name", "name the direct method to invoke, e.g. name: lockDoor")); v != nil {
		m.Name, _ = v.Text()
	}
	if v := d.keep(o.Get("payload")); v != nil {
		if val, ok := v.JSON(); ok {
			if b, err := json.Marshal(val); err == nil {
				m.Payload = b
			}
		}
	}
	if v := d.keep(o.Get("responseTimeout")); v != nil {
		m.ResponseTimeout, m.responseTimeoutSet = v.Duration()
	}
	if v := d.keep(o.Get("connectTimeout")); v != nil {
		m.ConnectTimeout, m.connectTimeoutSet = v.Duration()
	}
	return m
}

func (d *decoder) decodeTwin(n *diag.Node) *Twin {
	o, ok := d.object(n, twinFields...)
	if !ok {
		return nil
	}
	t := &Twin{Range: n.Range(), ETag: "*"}
	if v := d.keep(o.Get("etag")); v != nil {
		t.ETag, _ = v.Text()
	}
	t.Desired = d.jsonObject(o.Get("desired"))
	t.Tags = d.jsonObject(o.Get("tags"))
	return t
}

// jsonObject reads a patch object (desired or tags). An invalid value
// yields an empty map rather than nil so that the "desired or tags"
// check does not report the same field a second time.
func (d *decoder) jsonObject(n *diag.Node) map[string]any {
	if d.keep(n) == nil {
		return nil
	}
	if !n.IsMapping() {
		n.Errorf("expected an object of properties, got %s", n.Describe()).
			Hint(`write properties as a mapping, e.g. {building: "43", floor: 3}`)
		return map[string]any{}
	}
	v, ok := n.JSON()
	if ok {
		d.keepTree(n)
	}
	m, _ := v.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m
}

// keepTree keeps every value under a patch object that decoded cleanly,
// so that a check of the paths a patch sets can point at each of them.
func (d *decoder) keepTree(n *diag.Node) {
	if !n.IsMapping() {
		return
	}
	pairs, _ := n.Pairs()
	for _, p := range pairs {
		d.keys[p.Value.Path] = p.KeyNd
		d.keep(p.Value)
		d.keepTree(p.Value)
	}
}

func (d *decoder) decodeRollout(n *diag.Node) *Rollout {
	o, ok := d.object(n, rolloutFields...)
	if !ok {
		return nil
	}
	r := &Rollout{Range: n.Range()}
	if v := d.keep(o.Get("batches")); v != nil {
		if items, ok := v.Items(); ok {
			for _, it := range items {
				d.keep(it)
				if b, ok := parseBatch(it); ok {
					r.Batches = append(r.Batches, b)
				} else {
					r.Batches = append(r.Batches, Batch{}) // keeps indexes aligned with paths
				}
			}
		}
	}
	if v := d.keep(o.Get("pause")); v != nil {
		r.Pause, _ = v.Duration()
	}
	if v := d.keep(o.Get("maxPerMinute")); v != nil {
		r.MaxPerMinute, _ = v.Int()
	}
	if v := d.keep(o.Get("exponential")); v != nil {
		if eo, ok := d.object(v, expFields...); ok {
			e := &Exponential{Range: v.Range()}
			if b := d.keep(eo.Require("baseRatePerMinute", "give the starting rate, e.g. baseRatePerMinute: 10")); b != nil {
				e.BaseRatePerMinute, _ = b.Int()
			}
			if f := d.keep(eo.Require("incrementFactor", "give the factor the rate grows by, e.g. incrementFactor: 2")); f != nil {
				e.IncrementFactor, _ = f.Float()
			}
			if c := d.keep(eo.Require("rateIncreaseCriteria", "say when the rate grows, e.g. rateIncreaseCriteria: {numberOfSucceededDevices: 50}")); c != nil {
				if co, ok := d.object(c, criteriaField...); ok {
					if x := d.keep(co.Get("numberOfNotifiedDevices")); x != nil {
						e.NotifiedDevices, _ = x.Int()
					}
					if x := d.keep(co.Get("numberOfSucceededDevices")); x != nil {
						e.SucceededDevices, _ = x.Int()
					}
				}
			}
			r.Exponential = e
		}
	}
	return r
}

// classes reads a list of failure classes; absent gives def.
func (d *decoder) classes(n *diag.Node, def []string) []string {
	if d.keep(n) == nil {
		return def
	}
	out := []string{}
	if items, ok := n.Items(); ok {
		for _, it := range items {
			if c, ok := d.keep(it).Text(); ok {
				out = append(out, c)
			}
		}
	}
	return out
}

// parseBatch reads "N%" or a device count.
func parseBatch(n *diag.Node) (Batch, bool) {
	const hint = `write a percentage of the matched devices such as "10%", or a device count such as 50`
	switch {
	case n.Tag() == "!!int":
		c, ok := n.Int()
		return Batch{Count: c}, ok
	case n.Tag() == "!!str":
		s := strings.TrimSpace(n.YAML.Value)
		num, isPct := strings.CutSuffix(s, "%")
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if !isPct || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			n.Errorf("invalid batch %q", n.YAML.Value).Hint("%s", hint)
			return Batch{}, false
		}
		return Batch{Percent: f}, true
	}
	n.Errorf("expected a percentage or a device count, got %s", n.Describe()).Hint("%s", hint)
	return Batch{}, false
}

// parseStart reads now, an RFC 3339 time or +DURATION.
func parseStart(n *diag.Node) (Start, bool) {
	const hint = `use "now", an RFC 3339 time such as 2026-11-25T02:00:00Z, or a delay such as "+10m"`
	text, ok := n.Text()
	if !ok {
		return Start{}, false
	}
	s := strings.TrimSpace(text)
	switch {
	case s == "now":
		return Start{Now: true}, true
	case strings.HasPrefix(s, "+"):
		dur, err := time.ParseDuration(s[1:])
		if err != nil || dur <= 0 || strings.HasPrefix(s[1:], "-") || strings.HasPrefix(s[1:], "+") {
			n.Errorf("invalid start delay %q", text).Hint("%s", hint)
			return Start{}, false
		}
		return Start{After: dur}, true
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d := n.Errorf("invalid start time %q", text)
		if _, err2 := time.Parse("2006-01-02T15:04:05", s); err2 == nil {
			d.Hint("add a time zone, e.g. %sZ for UTC", s)
		} else {
			d.Hint("%s", hint)
		}
		return Start{}, false
	}
	return Start{At: t}, true
}
