package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The JSON Schema of plan files (draft 2020-12), for editors and other
// tools. It is generated from one description of the format, object by
// object, over the decoder's own field lists (decode.go): a key the
// decoder accepts that has no description here, or a description of a key
// it does not accept, makes Schema fail, and the tests with it, so the
// schema cannot fall behind the decoder. The patterns are the validator's
// own where it has one, and stay within what both Go's regexp and
// JavaScript's RegExp read, since editors run the schema in JavaScript.
// The schema declares draft 2020-12 but uses only keywords that draft-07
// reads the same way ($defs is reached by JSON pointer): the YAML language
// server, which most editors use, validates by draft-07's rules.
//
// The schema is as strict as the decoder on structure (keys, types,
// required keys, one action per step, ranges of plain values) and looser
// on meaning: cron syntax, time zones, queries, step names in after and
// increasing batches are left to iotjobs validate.

// Schema returns the JSON Schema of plan files, as `iotjobs schema plan`
// prints it and docs/plan.schema.json holds it.
func Schema() ([]byte, error) {
	objs := formatObjects()
	var errs []error
	defs := jsonObject{}
	var root jsonObject
	for _, o := range objs {
		s, err := o.schema()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if o.name == "" {
			root = s
			continue
		}
		defs = append(defs, member{o.name, s})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	defs = append(defs, member{"reference", obj(
		"description", "A ${vars.NAME} or ${env.NAME} reference, expanded before the value is read: "+
			"an unquoted reference that expands to a number or a boolean is read as one (docs/plan.md, Variables).",
		"type", "string",
		"pattern", referencePattern)})
	out := obj(
		"$schema", "https://json-schema.org/draft/2020-12/schema",
		"title", "iotjobs plan",
	)
	out = append(out, root...)
	out = append(out, member{"$defs", defs})
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("plan schema: %w", err)
	}
	return b.Bytes(), nil
}

// object describes one mapping of the format.
type object struct {
	name string // under $defs; "" for the top level
	// path is where it sits in a plan, as diagnostics write paths, with
	// [] for any list index: "steps[].rollout"; "" for the top level.
	path   string
	fields []string // the decoder's field list
	doc    string
	keys   map[string]key
	// rules are what the decoder requires of the mapping as a whole
	// (required keys, one of two keys), as schema members.
	rules jsonObject
}

// key describes one key: its meaning, its value and, when it is a fixed
// value, its default.
type key struct {
	doc   string
	value jsonObject
	def   any
}

func (o object) schema() (jsonObject, error) {
	where := o.path
	if where == "" {
		where = "the top level"
	}
	var errs []error
	props := jsonObject{}
	for _, f := range o.fields {
		k, ok := o.keys[f]
		if !ok {
			errs = append(errs, fmt.Errorf("plan schema: %s: the decoder accepts %q, which plan/schema.go does not describe", where, f))
			continue
		}
		p := obj("description", k.doc)
		if k.def != nil {
			p = append(p, member{"default", k.def})
		}
		props = append(props, member{f, append(p, k.value...)})
	}
	for name := range o.keys {
		if !slices.Contains(o.fields, name) {
			errs = append(errs, fmt.Errorf("plan schema: %s: plan/schema.go describes %q, which the decoder does not accept", where, name))
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return nil, errors.Join(errs...)
	}
	s := obj("description", o.doc, "type", "object", "properties", props)
	s = append(s, o.rules...)
	// Every mapping with fixed keys refuses the others, as the decoder does.
	return append(s, member{"additionalProperties", false}), nil
}

// Patterns: the validator's own regular expressions where it has one.
var (
	namePattern    = dnsLabel.String()
	varNamePattern = varName.String()
	tagPathPattern = tagPath.String()
)

const (
	// durationPattern is a Go duration that is not negative (seconds are
	// an integer, outside the pattern).
	durationPattern = `^\s*\+?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)\s*$`
	// percentPattern is a percentage from 0% to 100%.
	percentPattern = `^\s*\+?0*(100(\.0*)?|[0-9]{1,2}(\.[0-9]*)?|\.[0-9]+)\s*%\s*$`
	// batchPercentPattern is a percentage above 0% and at most 100%.
	batchPercentPattern = `^\s*\+?0*(100(\.0*)?|[1-9][0-9]?(\.[0-9]*)?|\.[0-9]*[1-9][0-9]*)\s*%\s*$`
	startPattern        = `^\s*(now|\+(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2}))\s*$`
	// tagNamePattern is a tag path under tags, without "tags.".
	tagNamePattern = `^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$`
	// referencePattern finds a ${vars.NAME} or ${env.NAME} that is not
	// escaped as $${.
	referencePattern = `(^|[^$])\$\{(vars|env)\.[A-Za-z_][A-Za-z0-9_-]*\}`
)

// Words shared by many descriptions.
const (
	durationDoc = `A number of seconds (3600) or a duration such as "90s", "10m", "1h30m".`
	fractionDoc = `A percentage ("5%") or a fraction from 0 to 1 (0.05).`
)

// formatObjects describes the format: every mapping, its keys and what
// the decoder and validator require of them (decode.go, validate.go).
// The runner's behaviour the descriptions mention is in docs/plan.md,
// section by section.
func formatObjects() []object {
	failureClasses := append(slices.Clone(AbortClasses), "all")
	return []object{{
		path:   "",
		fields: planFields,
		doc: "An iotjobs plan (version 1): steps that each select devices with a twin query and call a direct method " +
			"or patch their twins, when, how fast and when to stop. Reference: docs/plan.md.",
		keys: map[string]key{
			"version":     {doc: "The plan format version: 1.", value: expandable(obj("const", Version))},
			"name":        {doc: "The plan's name, in job ids and reports: lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit.", value: matching(namePattern)},
			"description": {doc: "What the plan does, for people.", value: text()},
			"defaults":    {doc: "Values the steps (and their methods) take when they do not set their own.", value: ref("defaults")},
			"steps":       {doc: "The steps, each a job (or a series of jobs) against the devices its query selects. By default each runs after the one before it.", value: obj("type", "array", "minItems", 1, "items", ref("step"))},
			"vars": {
				doc: "Variables: NAME: value (a string, number or boolean, which may use ${env.NAME}). Every string value outside vars may use ${vars.NAME}; " +
					"--var NAME=VALUE and --var-file FILE replace declared values.",
				value: obj("type", "object",
					"propertyNames", obj("pattern", varNamePattern),
					"additionalProperties", obj("type", []string{"string", "number", "boolean"})),
			},
		},
		rules: obj("required", []string{"version", "name", "steps"}),
	}, {
		name:   "defaults",
		path:   "defaults",
		fields: defaultsFields,
		doc:    "Values the steps take when they do not set their own.",
		keys: map[string]key{
			"maxExecutionTime": {doc: "The longest a step's hub job may run, counted from the job's start; devices not done by then fail (timedOut). Whole seconds, more than 0. " + durationDoc,
				value: duration(time.Second, 0), def: durText(DefaultMaxExecutionTime)},
			"responseTimeout": {doc: "How long a method call waits for the device's answer (5 s to 300 s, whole seconds). " + durationDoc,
				value: duration(MinResponseTimeout, MaxResponseTimeout), def: durText(DefaultResponseTimeout)},
			"connectTimeout": {doc: "How long a method call waits for an offline device to connect (0 s to 300 s, whole seconds; 0: it fails at once, offline). " + durationDoc,
				value: duration(0, MaxConnectTimeout), def: durText(DefaultConnectTimeout)},
		},
	}, {
		name:   "step",
		path:   "steps[]",
		fields: stepFields,
		doc:    "A step: the devices its query selects, one action (method or twin), when it starts, and its safety nets.",
		keys: map[string]key{
			"name":        {doc: "The step's name, unique in the plan: lowercase letters, digits and '-', at most 63.", value: matching(namePattern)},
			"description": {doc: "What the step does, for people.", value: text()},
			"query":       {doc: `The devices: the WHERE condition of a twin query, e.g. "tags.building = '43'", or "*" for every device.`, value: nonBlank()},
			"after": {doc: "The steps that must end first, by name; the step is skipped unless they all completed. Default: the step before it in the file (none for the first); [] starts it with the plan.",
				value: obj("type", "array", "items", matching(namePattern))},
			"method": {doc: "Call a direct method on each device.", value: ref("method")},
			"twin":   {doc: "Patch each device's twin: desired properties and/or tags.", value: ref("twin")},
			"start": {doc: `When a one-off step starts: "now" (the default), an RFC 3339 time such as 2026-11-25T02:00:00Z, or "+DURATION" after the plan starts ("+10m"). Not with cron.`,
				value: matching(startPattern)},
			"cron": {doc: `Run at the next occurrence of a 5-field cron expression (minute hour day-of-month month day-of-week, e.g. "0 2 * * *"), and with apply --watch at every occurrence; or the long form {schedule, timezone, concurrency, startingDeadline}. Not with start.`,
				value: obj("anyOf", []any{nonBlank(), ref("cron")})},
			"maxExecutionTime": {doc: "The longest each of the step's hub jobs may run, counted from that job's start (not from a window's opening); devices not done fail (timedOut). Whole seconds, more than 0. Default: defaults.maxExecutionTime (1h). " + durationDoc,
				value: duration(time.Second, 0)},
			"rollout":    {doc: "Batches, pause and rate: how the step spreads over its devices.", value: ref("rollout")},
			"abort":      {doc: "Stop the step (and the plan) when too many devices fail.", value: ref("abort")},
			"success":    {doc: "What share of the devices must succeed for the step to succeed (default 100%).", value: ref("success")},
			"retry":      {doc: "Run the devices that failed (failed, timedOut, offline) again.", value: ref("retry")},
			"verify":     {doc: "A condition each device's twin must come to satisfy after the step, within a timeout; a device that does not fails (verify).", value: ref("verify")},
			"onlyPassed": {doc: "Run only on the devices that every step in after acted on and that passed it (not their no-ops). Needs after.", value: boolean(), def: false},
			"window":     {doc: "A maintenance window: devices start only while it is open. {cron, duration, timezone}, or {fromTag} for one per device.", value: ref("window")},
			"analysis":   {doc: "A health gate after each batch: bake, then count the batch's devices that satisfy a condition, optionally against a control cohort. A failing analysis aborts the step.", value: ref("analysis")},
			"rollback":   {doc: "Undo the step when it (abort) or a later step (planAbort) aborts the plan.", value: ref("rollback")},
		},
		rules: obj(
			"required", []string{"name", "query"},
			"oneOf", []any{obj("required", []string{"method"}), obj("required", []string{"twin"})},
			"not", obj("required", []string{"start", "cron"}),
		),
	}, {
		name:   "method",
		path:   "steps[].method",
		fields: methodFields,
		doc:    "A direct method call (also a method step's compensating rollback method).",
		keys: map[string]key{
			"name":            {doc: "The direct method's name.", value: obj("type", "string", "minLength", 1)},
			"payload":         {doc: "The request payload: any JSON value (at most 128 KB).", value: obj()},
			"responseTimeout": {doc: "How long to wait for the device's answer (5 s to 300 s, whole seconds; timedOut after). Default: defaults.responseTimeout (30s). " + durationDoc, value: duration(MinResponseTimeout, MaxResponseTimeout)},
			"connectTimeout":  {doc: "How long to wait for an offline device to connect (0 s to 300 s, whole seconds; 0: it fails at once, offline). Default: defaults.connectTimeout (0s). " + durationDoc, value: duration(0, MaxConnectTimeout)},
		},
		rules: obj("required", []string{"name"}),
	}, {
		name:   "twin",
		path:   "steps[].twin",
		fields: twinFields,
		doc:    "A twin patch (JSON merge patch: null deletes). Twins that already hold every value are left alone (no-ops).",
		keys: map[string]key{
			"etag":    {doc: `The twin etag the patch requires; "*" patches whatever the twin is.`, value: obj("type", "string", "minLength", 1), def: "*"},
			"desired": {doc: "Desired properties to merge into each twin.", value: obj("type", "object")},
			"tags":    {doc: "Tags to merge into each twin.", value: obj("type", "object")},
		},
		rules: obj("anyOf", []any{obj("required", []string{"desired"}), obj("required", []string{"tags"})}),
	}, {
		name:   "cron",
		path:   "steps[].cron",
		fields: cronFields,
		doc:    "The long form of cron. timezone, concurrency and startingDeadline apply with apply --watch (and the dry-run's week).",
		keys: map[string]key{
			"schedule":         {doc: `A 5-field cron expression: minute hour day-of-month month day-of-week, e.g. "0 2 * * *".`, value: nonBlank()},
			"timezone":         {doc: `The IANA time zone the schedule is read in, e.g. "Europe/Berlin".`, value: text(), def: "UTC"},
			"concurrency":      {doc: "An occurrence due while the previous one runs: forbid skips it, replace cancels the previous one, allow runs both.", value: enum(ForbidOverlap, ReplaceOverlap, AllowOverlap), def: ForbidOverlap},
			"startingDeadline": {doc: "An occurrence that cannot start within this long of its time is missed (0: no deadline). " + durationDoc, value: duration(0, 0), def: durText(0)},
		},
		rules: obj("required", []string{"schedule"}),
	}, {
		name:   "rollout",
		path:   "steps[].rollout",
		fields: rolloutFields,
		doc:    "How the step spreads over its devices: batches with a pause between them, and a rate.",
		keys: map[string]key{
			"batches": {doc: `Cumulative targets: percentages of the matched devices ("10%", "50%", "100%"; rounded up) or device counts (10, 100), increasing and of one kind. The step ends at the last one. Default: one batch of every device.`,
				value: obj("type", "array", "items", expandable(obj("type", "integer", "minimum", 1), obj("type", "string", "pattern", batchPercentPattern)))},
			"pause":        {doc: "The wait after a batch has ended (its verify and analysis included) before the next. " + durationDoc, value: duration(0, 0), def: durText(0)},
			"maxPerMinute": {doc: "The most devices started per minute, evenly (in 5-second ticks). Default: no limit. Not with exponential.", value: integer(1, 0)},
			"exponential":  {doc: "A start rate that grows (AWS IoT Jobs' exponential rollout). Not with maxPerMinute.", value: ref("exponential")},
		},
		rules: obj("not", obj("required", []string{"maxPerMinute", "exponential"})),
	}, {
		name:   "exponential",
		path:   "steps[].rollout.exponential",
		fields: expFields,
		doc:    "A start rate that begins at baseRatePerMinute and is multiplied by incrementFactor each time rateIncreaseCriteria is met since the last increase.",
		keys: map[string]key{
			"baseRatePerMinute":    {doc: "Devices started per minute at first.", value: integer(1, 0)},
			"incrementFactor":      {doc: "The factor the rate grows by: above 1, at most 5.", value: expandable(obj("type", "number", "exclusiveMinimum", 1, "maximum", 5))},
			"rateIncreaseCriteria": {doc: "When the rate grows: after this many more devices started, or succeeded, since the last increase.", value: ref("rateIncreaseCriteria")},
		},
		rules: obj("required", []string{"baseRatePerMinute", "incrementFactor", "rateIncreaseCriteria"}),
	}, {
		name:   "rateIncreaseCriteria",
		path:   "steps[].rollout.exponential.rateIncreaseCriteria",
		fields: criteriaField,
		doc:    "When an exponential rate grows: whichever of the counts set (at least one, above 0) is reached first.",
		keys: map[string]key{
			"numberOfNotifiedDevices":  {doc: "Grow after this many more devices started.", value: integer(0, 0)},
			"numberOfSucceededDevices": {doc: "Grow after this many more devices succeeded.", value: integer(0, 0)},
		},
		rules: obj("minProperties", 1),
	}, {
		name:   "abort",
		path:   "steps[].abort",
		fields: abortFields,
		doc:    "Abort thresholds: one of failureRate and failures. An aborted step skips every later step and may roll back.",
		keys: map[string]key{
			"failureRate": {doc: "Abort when more than this share of the devices started so far failed. " + fractionDoc, value: fraction()},
			"failures":    {doc: "Abort at this many failed devices (at least 1).", value: integer(1, 0)},
			"minExecuted": {doc: "The thresholds apply once at least this many devices have a result.", value: integer(0, 0), def: 0},
			"on": {doc: "The failure classes that count: failed, timedOut, offline, verify, analysis, or all. Default: all five.",
				value: obj("type", "array", "minItems", 1, "uniqueItems", true, "items", enum(failureClasses...))},
		},
		rules: obj("oneOf", []any{obj("required", []string{"failureRate"}), obj("required", []string{"failures"})}),
	}, {
		name:   "success",
		path:   "steps[].success",
		fields: successFields,
		doc:    "The step's success criteria.",
		keys: map[string]key{
			"minSuccessRate": {doc: "The share of the devices with a result that must succeed (100% without success). A query that matches no device is 0%. " + fractionDoc, value: fraction()},
		},
		rules: obj("required", []string{"minSuccessRate"}),
	}, {
		name:   "retry",
		path:   "steps[].retry",
		fields: retryFields,
		doc:    "Run the devices that failed again, as new jobs, after each batch and before its verify.",
		keys: map[string]key{
			"attempts": {doc: "Retry rounds: how many times more a device may be tried (1 to 10).", value: integer(1, 10), def: 1},
			"backoff":  {doc: "The wait before each round. " + durationDoc, value: duration(0, 0), def: durText(0)},
			"on": {doc: "The failure classes retried: failed, timedOut, offline. Default: all three.",
				value: obj("type", "array", "minItems", 1, "uniqueItems", true, "items", enum(RetryClasses...))},
		},
	}, {
		name:   "verify",
		path:   "steps[].verify",
		fields: verifyFields,
		doc:    "A post-condition: each device the step succeeded on must come to satisfy query within timeout, or it fails (verify).",
		keys: map[string]key{
			"query":   {doc: `A twin query WHERE condition, e.g. "properties.reported.firmware = '2.4.1'".`, value: nonBlank()},
			"timeout": {doc: "How long devices have to satisfy it, counted from the end of the batch's jobs and retries (more than 0). " + durationDoc, value: duration(time.Second, 0), def: durText(defaultVerifyTimeout)},
		},
		rules: obj("required", []string{"query"}),
	}, {
		name:   "window",
		path:   "steps[].window",
		fields: windowFields,
		doc:    "A maintenance window: {cron, duration, timezone} for the whole step, or {fromTag} for one per device. A job started inside a window finishes.",
		keys: map[string]key{
			"cron":     {doc: `The window opens at every occurrence of this 5-field cron expression, e.g. "0 22 * * 1-5".`, value: nonBlank()},
			"duration": {doc: "How long the window stays open (more than 0). " + durationDoc, value: duration(time.Second, 0)},
			"timezone": {doc: `The IANA time zone cron is read in, e.g. "Europe/Berlin".`, value: text(), def: "UTC"},
			"fromTag":  {doc: `The twin tag holding each device's own window, {cron, duration, timezone}, e.g. tags.maintenance; a device without one fails (NoMaintenanceWindow).`, value: matching(tagPathPattern)},
		},
		rules: obj("anyOf", []any{
			obj("required", []string{"fromTag"}, "not", obj("anyOf", []any{
				obj("required", []string{"cron"}), obj("required", []string{"duration"}), obj("required", []string{"timezone"})})),
			obj("required", []string{"cron", "duration"}, "not", obj("required", []string{"fromTag"})),
		}),
	}, {
		name:   "analysis",
		path:   "steps[].analysis",
		fields: analysisFields,
		doc:    "A health gate after each batch (and its verify): wait bake, then count the batch's devices that satisfy query; with a control, compare with untouched devices with the same tags.",
		keys: map[string]key{
			"query":       {doc: `The health condition, a twin query WHERE condition, e.g. "properties.reported.health.crashes < 3".`, value: nonBlank()},
			"bake":        {doc: "The wait after the batch before its health is read. " + durationDoc, value: duration(0, 0), def: durText(DefaultBake)},
			"minPassRate": {doc: "The share of the batch that must satisfy query: 100% by default, 0% by default with a control. " + fractionDoc, value: fraction()},
			"control":     {doc: "Compare each batch with as many devices the step has not touched, with the same values of matchTags.", value: ref("control")},
		},
		rules: obj("required", []string{"query"}),
	}, {
		name:   "control",
		path:   "steps[].analysis.control",
		fields: controlFields,
		doc:    "The control cohort of an analysis.",
		keys: map[string]key{
			"matchTags": {doc: "Tag paths under tags (without \"tags.\"), e.g. [model, location.region], whose values a control device shares with the batch's.",
				value: obj("type", "array", "minItems", 1, "uniqueItems", true, "items", matching(tagNamePattern))},
			"maxDegradation": {doc: "How many percentage points the batch's pass rate may trail the control's. " + fractionDoc, value: fraction(), def: pctText(DefaultMaxDegradation)},
		},
		rules: obj("required", []string{"matchTags"}),
	}, {
		name:   "rollback",
		path:   "steps[].rollback",
		fields: rollbackFields,
		doc:    "Undo the step when the plan aborts: a twin step restores the values its patch replaced (etag-guarded); a method step calls method on the devices whose call succeeded.",
		keys: map[string]key{
			"on": {doc: "When: abort (this step aborted), planAbort (a later step aborted the plan), or both.",
				value: obj("type", "array", "minItems", 1, "uniqueItems", true, "items", enum(OnAbort, OnPlanAbort)), def: []string{OnAbort}},
			"method": {doc: "A method step's compensating method (required for a method step; a twin step takes none).", value: ref("method")},
		},
	}}
}

// Value schemas. A scalar that is not free text may also be written as a
// ${...} reference (expandable), since the decoder expands references
// before it reads the value.

func ref(def string) jsonObject { return obj("$ref", "#/$defs/"+def) }

func expandable(alts ...jsonObject) jsonObject {
	out := make([]any, 0, len(alts)+1)
	for _, a := range alts {
		out = append(out, a)
	}
	return obj("anyOf", append(out, ref("reference")))
}

func text() jsonObject { return obj("type", "string") }

// nonBlank is text with something in it other than spaces.
func nonBlank() jsonObject { return obj("type", "string", "pattern", `\S`) }

func matching(pattern string) jsonObject {
	return expandable(obj("type", "string", "pattern", pattern))
}

func enum(values ...string) jsonObject { return expandable(obj("enum", values)) }

func boolean() jsonObject { return expandable(obj("type", "boolean")) }

// integer is a whole number from min to max (max 0: no maximum).
func integer(min, max int) jsonObject {
	s := obj("type", "integer", "minimum", min)
	if max > 0 {
		s = append(s, member{"maximum", max})
	}
	return expandable(s)
}

// duration is a number of seconds from min to max (max 0: no maximum), or
// a Go duration, whose range the pattern cannot hold.
func duration(min, max time.Duration) jsonObject {
	secs := obj("type", "integer", "minimum", int64(min/time.Second))
	if max > 0 {
		secs = append(secs, member{"maximum", int64(max / time.Second)})
	}
	return expandable(secs, obj("type", "string", "pattern", durationPattern))
}

// fraction is a proportion: a percentage, or a number from 0 to 1.
func fraction() jsonObject {
	return expandable(obj("type", "number", "minimum", 0, "maximum", 1), obj("type", "string", "pattern", percentPattern))
}

// durText writes a default duration as a plan would: "1h", "30s", "0s".
func durText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// pctText writes a default fraction as a percentage: "5%".
func pctText(f float64) string { return strconv.FormatFloat(f*100, 'f', -1, 64) + "%" }

// jsonObject is a JSON object that keeps its members in the order they
// were added, so that the schema reads in the order of the decoder's field
// lists (encoding/json sorts map keys).
type jsonObject []member

type member struct {
	name  string
	value any
}

// obj builds a jsonObject from name, value pairs.
func obj(pairs ...any) jsonObject {
	o := make(jsonObject, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		o = append(o, member{pairs[i].(string), pairs[i+1]})
	}
	return o
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshal(m.name)
		if err != nil {
			return nil, err
		}
		v, err := marshal(m.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping, which would write the
// descriptions' "<" and ">" as \u003c and \u003e.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
