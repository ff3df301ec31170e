package policy

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/plan/diag"
)

// Version is the only policy format version this package understands.
const Version = 1

// FileName is the policy a plan uses when none is named: the first found
// in the plan's directory or a parent, up to the repository's root.
const FileName = "policy.iotjobs.yaml"

//go:embed policy.schema.json
var schema []byte

// Schema returns the JSON Schema of policy files (iotjobs schema policy,
// committed as docs/policy.schema.json).
func Schema() ([]byte, error) { return schema, nil }

// Level is what a violation of a rule does.
type Level string

// Levels.
const (
	Advisory Level = "advisory" // reported; the command's outcome is unchanged
	Soft     Level = "soft"     // fails, unless --override-policy gives a reason
	Hard     Level = "hard"     // always fails
)

// Levels are the levels in order of severity.
var Levels = []string{string(Advisory), string(Soft), string(Hard)}

// Rule kinds: the field that says what a rule checks.
const (
	KindMaxDevicesWithoutRollout = "maxDevicesWithoutRollout"
	KindAbortRequiredOver        = "abortRequiredOver"
	KindVerifyRequiredForTwin    = "verifyRequiredForTwin"
	KindMethods                  = "methods"
	KindForbiddenPaths           = "forbiddenPaths"
	KindStartWindows             = "startWindows"
	KindMaxBatchShare            = "maxBatchShare"
)

// Kinds are the rule kinds, in the order docs/policy.md lists them.
var Kinds = []string{KindMaxDevicesWithoutRollout, KindAbortRequiredOver, KindVerifyRequiredForTwin, KindMethods, KindForbiddenPaths, KindStartWindows, KindMaxBatchShare}

// needsDevices holds the kinds that need the devices a step matches,
// which only plan and apply read.
var needsDevices = map[string]bool{KindMaxDevicesWithoutRollout: true, KindAbortRequiredOver: true, KindMaxBatchShare: true}

// Policy is a decoded policy file.
type Policy struct {
	// File is the file name given to [Parse]; SHA256 the hex digest of its
	// bytes, which a report records.
	File        string
	SHA256      string
	Description string
	Rules       []*Rule
}

// Rule is one guardrail: exactly one of the kind fields is set (Kind
// names it).
type Rule struct {
	Name        string
	Level       Level
	Description string
	Kind        string

	MaxDevices     int           // maxDevicesWithoutRollout
	AbortOver      int           // abortRequiredOver
	Methods        *MethodList   // methods
	ForbiddenPaths []string      // forbiddenPaths: twin paths, tags.x or properties.desired.x
	StartWindows   *StartWindows // startWindows
	BatchShare     *BatchShare   // maxBatchShare

	Range diag.Range
}

// NeedsDevices reports whether the rule needs the devices a step matches
// (plan and apply read them; validate cannot).
func (r *Rule) NeedsDevices() bool { return needsDevices[r.Kind] }

// MethodList is which direct methods a plan may call: when Allow is not
// empty, only those; never those in Deny.
type MethodList struct {
	Allow, Deny []string
}

// StartWindows are when steps may start, in Location: inside one of Allow
// (when there are any) and inside none of Deny.
type StartWindows struct {
	Timezone    string
	Location    *time.Location
	Allow, Deny []Span
}

// Span is a time of day, on some days of the week: [From, To) in minutes
// after midnight (To up to 24*60).
type Span struct {
	Days     []time.Weekday
	From, To int
}

// contains reports whether t (already in the rule's zone) is in the span.
func (s Span) contains(t time.Time) bool {
	if !s.onDay(t.Weekday()) {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	return m >= s.From && m < s.To
}

func (s Span) onDay(d time.Weekday) bool {
	for _, x := range s.Days {
		if x == d {
			return true
		}
	}
	return false
}

// String is the span as the policy file writes it: "fri 15:00-24:00".
func (s Span) String() string {
	days := make([]string, len(s.Days))
	for i, d := range s.Days {
		days[i] = dayNames[d]
	}
	return fmt.Sprintf("%s %02d:%02d-%02d:%02d", strings.Join(days, ","), s.From/60, s.From%60, s.To/60, s.To%60)
}

// BatchShare caps the share of a tag group's devices (those with one
// value at Tag) that one rollout batch reaches.
type BatchShare struct {
	Tag   string
	Share float64
}

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, diag.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		var ds diag.Diagnostics
		if pe, ok := err.(*os.PathError); ok {
			err = pe.Err
		}
		ds.Append(diag.Errorf(diag.Range{Filename: path}, "", "cannot read policy: %v", err).
			Hint("check the file name and that the file is readable, or pass --policy none to check no policy"))
		return nil, ds
	}
	return Parse(path, src)
}

var (
	policyFields = []string{"version", "description", "rules"}
	ruleFields   = append([]string{"name", "level", "description"}, Kinds...)
	methodFields = []string{"allow", "deny"}
	windowFields = []string{"timezone", "allow", "deny"}
	spanFields   = []string{"days", "from", "to"}
	shareFields  = []string{"tag", "share"}
	dayNames     = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
)

// Parse decodes and checks a policy. Every problem is reported, sorted by
// position; the policy is nil when any is an error.
func Parse(filename string, src []byte) (*Policy, diag.Diagnostics) {
	sum := sha256.Sum256(src)
	pol := &Policy{File: filename, SHA256: hex.EncodeToString(sum[:])}
	doc := diag.Decode(filename, src)
	if doc.Root == nil {
		if !doc.Diags.HasErrors() {
			doc.Diags.Append(diag.Errorf(doc.FileRange(), "", "policy is empty").
				Hint("a policy needs version: 1 and a list of rules"))
		}
		doc.Diags.Sort()
		return nil, doc.Diags
	}
	decodePolicy(pol, doc.Root)
	ds := doc.Diags
	ds.Sort()
	if ds.HasErrors() {
		return nil, ds
	}
	return pol, ds
}

func decodePolicy(pol *Policy, root *diag.Node) {
	obj, ok := root.Object(policyFields...)
	if !ok {
		return
	}
	if v := obj.Require("version", "add \"version: 1\" at the top of the file"); v != nil {
		if n, ok := v.Int(); ok && n != Version {
			v.Errorf("unsupported policy version %d", n).Hint("this iotjobs reads version 1")
		}
	}
	if v := obj.Get("description"); v != nil {
		pol.Description, _ = v.Text()
	}
	rules := obj.Require("rules", "add a list of rules, each with a name, a level and one check")
	if rules == nil {
		return
	}
	items, ok := rules.Items()
	if !ok {
		return
	}
	names := map[string]int{}
	for _, it := range items {
		r := decodeRule(it)
		if r == nil {
			continue
		}
		if line, dup := names[r.Name]; dup && r.Name != "" {
			it.Errorf("duplicate rule name %q", r.Name).Hint("rule %q is already defined at line %d; give each rule its own name, which reports cite", r.Name, line)
		}
		names[r.Name] = it.Range().Start.Line
		pol.Rules = append(pol.Rules, r)
	}
}

func decodeRule(n *diag.Node) *Rule {
	obj, ok := n.Object(ruleFields...)
	if !ok {
		return nil
	}
	r := &Rule{Range: n.Range()}
	if v := obj.Require("name", "name the rule, e.g. name: big-steps-abort; reports cite it"); v != nil {
		if s, ok := v.Text(); ok {
			r.Name = s
			if strings.TrimSpace(s) == "" {
				v.Errorf("empty rule name").Hint("name the rule, e.g. name: big-steps-abort; reports cite it")
			}
		}
	}
	if v := obj.Require("level", "give the rule a level: advisory (reported), soft (fails unless overridden) or hard (always fails)"); v != nil {
		if s, ok := v.Text(); ok {
			r.Level = Level(s)
			if !isLevel(s) {
				v.Errorf("unknown level %q", s).Hint("%s", diag.SuggestHint(s, Levels))
			}
		}
	}
	if v := obj.Get("description"); v != nil {
		r.Description, _ = v.Text()
	}
	for _, p := range obj.Pairs() {
		if !isKind(p.Key) {
			continue
		}
		if r.Kind != "" {
			p.KeyNd.Errorf("a rule checks one thing: it has %s already", r.Kind).
				Hint("move %s into a rule of its own, with its own name and level", p.Key)
			continue
		}
		r.Kind = p.Key
		decodeKind(r, p.Value)
	}
	if r.Kind == "" {
		n.Errorf("rule %q checks nothing", r.Name).Hint("give it one of: %s", strings.Join(Kinds, ", "))
	}
	return r
}

func isLevel(s string) bool {
	for _, l := range Levels {
		if l == s {
			return true
		}
	}
	return false
}

func isKind(s string) bool {
	for _, k := range Kinds {
		if k == s {
			return true
		}
	}
	return false
}

func decodeKind(r *Rule, v *diag.Node) {
	switch r.Kind {
	case KindMaxDevicesWithoutRollout:
		r.MaxDevices = count(v)
	case KindAbortRequiredOver:
		r.AbortOver = count(v)
	case KindVerifyRequiredForTwin:
		if b, ok := v.Bool(); ok && !b {
			v.Errorf("verifyRequiredForTwin: false checks nothing").Hint("write verifyRequiredForTwin: true, or remove the rule")
		}
	case KindMethods:
		o, ok := v.Object(methodFields...)
		if !ok {
			return
		}
		r.Methods = &MethodList{Allow: names(o.Get("allow")), Deny: names(o.Get("deny"))}
		if len(r.Methods.Allow) == 0 && len(r.Methods.Deny) == 0 {
			v.Errorf("methods names no method").Hint("list the methods plans may call (allow: [...]) or must not (deny: [...])")
		}
	case KindForbiddenPaths:
		items, ok := v.Items()
		if !ok {
			return
		}
		if len(items) == 0 {
			v.Errorf("forbiddenPaths names no path").Hint("list twin paths plans must not set, e.g. [properties.desired.security, tags.owner]")
		}
		for _, it := range items {
			s, ok := it.Text()
			if !ok {
				continue
			}
			if !strings.HasPrefix(s, "tags.") && !strings.HasPrefix(s, "properties.desired.") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
				it.Errorf("invalid twin path %q", s).Hint("a path a twin step can set starts with tags. or properties.desired., e.g. tags.owner")
				continue
			}
			r.ForbiddenPaths = append(r.ForbiddenPaths, s)
		}
	case KindStartWindows:
		r.StartWindows = decodeWindows(v)
	case KindMaxBatchShare:
		o, ok := v.Object(shareFields...)
		if !ok {
			return
		}
		bs := &BatchShare{}
		if t := o.Require("tag", "name the tag that groups devices, e.g. tag: tags.site"); t != nil {
			if s, ok := t.Text(); ok {
				if !strings.HasPrefix(s, "tags.") || len(s) == len("tags.") {
					t.Errorf("invalid tag path %q", s).Hint("give a path under tags, e.g. tags.site")
				}
				bs.Tag = s
			}
		}
		if s := o.Require("share", "give the largest share of a group one batch may reach, e.g. share: 25%"); s != nil {
			if f, ok := s.Fraction(); ok {
				if f <= 0 {
					s.Errorf("share 0%% lets no batch run").Hint("give a share above 0%%, e.g. 25%%")
				}
				bs.Share = f
			}
		}
		r.BatchShare = bs
	}
}

// count reads a device count, at least 0.
func count(v *diag.Node) int {
	n, ok := v.Int()
	if ok && n < 0 {
		v.Errorf("device count %d is negative", n).Hint("give a number of devices, 0 or more")
	}
	return n
}

// names reads an optional list of method names.
func names(v *diag.Node) []string {
	if v == nil {
		return nil
	}
	items, ok := v.Items()
	if !ok {
		return nil
	}
	var out []string
	for _, it := range items {
		if s, ok := it.Text(); ok {
			out = append(out, s)
		}
	}
	return out
}

func decodeWindows(v *diag.Node) *StartWindows {
	o, ok := v.Object(windowFields...)
	if !ok {
		return nil
	}
	w := &StartWindows{Timezone: "UTC", Location: time.UTC}
	if tz := o.Get("timezone"); tz != nil {
		if s, ok := tz.Text(); ok {
			loc, err := time.LoadLocation(s)
			if err != nil || s == "" || s == "Local" {
				tz.Errorf("unknown time zone %q", s).Hint(`use an IANA zone name such as "Europe/Berlin" or "UTC"`)
			} else {
				w.Timezone, w.Location = s, loc
			}
		}
	}
	w.Allow = spans(o.Get("allow"))
	w.Deny = spans(o.Get("deny"))
	if len(w.Allow) == 0 && len(w.Deny) == 0 {
		v.Errorf("startWindows has no window").Hint(`give the times steps must not start (deny: [{days: [fri], from: "15:00", to: "24:00"}]) or may start (allow: [...])`)
	}
	return w
}

func spans(v *diag.Node) []Span {
	if v == nil {
		return nil
	}
	items, ok := v.Items()
	if !ok {
		return nil
	}
	var out []Span
	for _, it := range items {
		o, ok := it.Object(spanFields...)
		if !ok {
			continue
		}
		s := Span{Days: []time.Weekday{0, 1, 2, 3, 4, 5, 6}, From: 0, To: 24 * 60}
		if d := o.Get("days"); d != nil {
			s.Days = nil
			if days, ok := d.Items(); ok {
				for _, day := range days {
					name, ok := day.Text()
					if !ok {
						continue
					}
					i := indexOf(dayNames, name)
					if i < 0 {
						day.Errorf("unknown day %q", name).Hint("%s", diag.SuggestHint(strings.ToLower(name), dayNames))
						continue
					}
					s.Days = append(s.Days, time.Weekday(i))
				}
			}
		}
		if f := o.Get("from"); f != nil {
			s.From, _ = clockTime(f)
		}
		if t := o.Get("to"); t != nil {
			s.To, _ = clockTime(t)
		}
		if s.From >= s.To {
			it.Errorf("window ends before it starts").Hint(`from must be before to on the same day; for a span past midnight write two, e.g. {from: "22:00", to: "24:00"} and {from: "00:00", to: "06:00"}`)
		}
		out = append(out, s)
	}
	return out
}

// clockTime reads "HH:MM" (00:00 to 24:00) as minutes after midnight.
func clockTime(n *diag.Node) (int, bool) {
	s, ok := n.Text()
	if !ok {
		return 0, false
	}
	var h, m int
	if _, err := fmt.Sscanf(s, "%d:%d", &h, &m); err != nil || len(s) != 5 || h < 0 || m < 0 || m > 59 || h > 24 || h == 24 && m != 0 {
		n.Errorf("invalid time of day %q", s).Hint(`write a time of day as "HH:MM", from "00:00" to "24:00"`)
		return 0, false
	}
	return h*60 + m, true
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
