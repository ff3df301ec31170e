package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"gopkg.in/yaml.v3"
)

// The schema, the decoder and the reference are kept in step here: the
// committed schema is what Schema generates; every plan the decoder
// accepts (examples and fixtures) the schema accepts; structural errors
// the decoder reports the schema reports too, at the same place; and
// every key of every decoder field list is in the schema at its place and
// in docs/plan.md in its section.

const (
	schemaFile    = "../docs/plan.schema.json"
	referenceFile = "../docs/plan.md"
	// schemaLine is the first line of every example plan, for editors.
	schemaLine = "# yaml-language-server: $schema=../docs/plan.schema.json"
)

var (
	compiledOnce sync.Once
	compiled     *jsonschema.Schema
	compileErr   error
)

// committedSchema compiles docs/plan.schema.json, the file editors read.
func committedSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	compiledOnce.Do(func() {
		compiled, compileErr = jsonschema.NewCompiler().Compile(schemaFile)
	})
	if compileErr != nil {
		t.Fatalf("compile %s: %v", schemaFile, compileErr)
	}
	return compiled
}

func TestSchemaCommitted(t *testing.T) {
	t.Parallel()
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what `iotjobs schema plan` prints; regenerate it from the repository root:\n\tgo run . schema plan > docs/plan.schema.json", schemaFile)
	}
}

// planFiles are the plans of the repository that must be valid: the
// fixtures, every example that is a plan (not a fleet file) and the test
// plans under testdata.
func planFiles(t *testing.T) []string {
	t.Helper()
	names := files(t, "testdata/valid/*.yaml")
	for _, pattern := range []string{"../examples/*.yaml", "../testdata/*/*.yaml", "../testdata/*.yaml"} {
		more, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range more {
			if isPlan(t, name) {
				names = append(names, name)
			}
		}
	}
	return names
}

// isPlan tells a plan from a fleet file: a plan has steps.
func isPlan(t *testing.T, name string) bool {
	t.Helper()
	var top map[string]any
	src, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(src, &top); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	_, ok := top["steps"]
	return ok
}

func TestSchemaAcceptsValidPlans(t *testing.T) {
	t.Parallel()
	s := committedSchema(t)
	examples := 0
	for _, name := range planFiles(t) {
		if strings.HasPrefix(name, "../examples/") {
			examples++
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if _, ds := Parse(name, src, testOptions()...); ds.HasErrors() {
				t.Fatalf("the decoder refuses it: %v", ds)
			}
			if err := s.Validate(instance(t, src)); err != nil {
				t.Errorf("the decoder accepts it, the schema does not:\n%v", err)
			}
		})
	}
	if examples < 3 {
		t.Errorf("found %d example plans; is ../examples still where they are?", examples)
	}
}

// TestExamplesPointAtSchema: an editor opening an example finds the schema.
func TestExamplesPointAtSchema(t *testing.T) {
	t.Parallel()
	for _, name := range files(t, "../examples/*.yaml") {
		if !isPlan(t, name) {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(string(src), "\n"); first != schemaLine {
			t.Errorf("%s: the first line is %q; want %q", name, first, schemaLine)
		}
	}
}

// TestSchemaRefusesStructuralErrors runs the one-rule fixtures (and one
// of wrong types) through the schema: those whose mistake is structure
// (a key, a type, a required key, a range of a plain value, one action
// per step) must be refused at the place of their # ERROR: marker; those
// whose mistake only iotjobs can see (cron and query syntax, time zones,
// names in after, increasing batches, the range of a duration written as
// text, variables) are accepted, which says where the schema's checks end.
func TestSchemaRefusesStructuralErrors(t *testing.T) {
	t.Parallel()
	s := committedSchema(t)
	structural := []string{
		"rule-abort-no-threshold", "rule-bad-duration", "rule-bad-name", "rule-bad-start",
		"rule-batch-over-100", "rule-cron-concurrency", "rule-empty-name", "rule-exponential-factor",
		"rule-failure-rate-range", "rule-max-per-minute", "rule-method-empty-name", "rule-method-no-name",
		"rule-missing-version", "rule-no-action", "rule-no-steps", "rule-retry-attempts", "rule-retry-class",
		"rule-start-and-cron", "rule-step-no-name", "rule-step-no-query", "rule-step-unknown-key",
		"rule-success-range", "rule-twin-empty-etag", "rule-twin-empty", "rule-two-actions",
		"rule-unknown-top-key", "rule-verify-no-query", "rule-window-no-cron", "rule-window-tag-path",
		"rule-wrong-version", "wrong-types",
	}
	semantic := []string{
		"rule-bad-cron", "rule-batch-mixed", "rule-batch-not-increasing", "rule-connect-timeout-range",
		"rule-cron-timezone", "rule-duplicate-step", "rule-only-passed-first", "rule-query-syntax",
		"rule-response-timeout-range", "rule-select-query", "rule-unknown-after", "rule-unknown-var",
	}
	for _, name := range append(slices.Clone(structural), semantic...) {
		refuse := slices.Contains(structural, name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			file := "testdata/invalid/" + name + ".yaml"
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if _, ds := Parse(file, src, testOptions()...); !ds.HasErrors() {
				t.Fatal("the decoder accepts it; it is no longer an invalid fixture")
			}
			err = s.Validate(instance(t, src))
			switch {
			case !refuse && err != nil:
				t.Fatalf("the schema refuses a mistake only iotjobs validate should see; move it to the structural list if that is intended:\n%v", err)
			case !refuse:
				return
			case err == nil:
				t.Fatal("the schema accepts it; the decoder refuses it for its structure")
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(src, &doc); err != nil {
				t.Fatal(err)
			}
			var ve *jsonschema.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("validation error %T: %v", err, err)
			}
			spans := errorSpans(doc.Content[0], ve)
			for line := range readMarkers(t, src) {
				if !slices.ContainsFunc(spans, func(s [2]int) bool { return s[0] <= line && line <= s[1] }) {
					t.Errorf("line %d has a # ERROR: marker, but the schema's errors are at lines %v:\n%v", line, spans, err)
				}
			}
		})
	}
}

// TestSchemaAgreesWithDecoder: plans that differ from a valid one by one
// value or key, each of which the decoder and the schema must judge
// alike. It covers what the fixtures do not: the ${...} references a
// value may be written as, and the forms a key takes.
func TestSchemaAgreesWithDecoder(t *testing.T) {
	t.Parallel()
	s := committedSchema(t)
	// Step a runs after step z, so that it may say onlyPassed.
	const head = "version: 1\nname: p\nvars: {rate: 5, t: 10m, yes: true, pct: 5%, n: 3, tz: UTC}\n" +
		"steps:\n  - name: z\n    query: \"*\"\n    method: {name: m}\n  - name: a\n    query: \"*\"\n"
	for _, tt := range []struct {
		name  string
		step  string // the rest of the step, indented by 4
		valid bool
	}{
		{"method", "    method: {name: m}\n", true},
		{"integer from a var", "    method: {name: m}\n    rollout:\n      maxPerMinute: ${vars.rate}\n", true},
		{"integer as text", "    method: {name: m}\n    rollout: {maxPerMinute: \"5\"}\n", false},
		{"escaped reference is text", "    method: {name: m}\n    rollout:\n      maxPerMinute: $${vars.rate}\n", false},
		{"duration from a var", "    method: {name: m}\n    maxExecutionTime: ${vars.t}\n", true},
		{"duration in seconds", "    method: {name: m}\n    maxExecutionTime: 90\n", true},
		{"duration with decimals", "    method: {name: m}\n    maxExecutionTime: 1.5h\n", true},
		{"duration without unit", "    method: {name: m}\n    maxExecutionTime: \"90\"\n", false},
		{"duration as a number with decimals", "    method: {name: m}\n    rollout: {pause: 1.5}\n", false},
		{"negative duration", "    method: {name: m}\n    rollout: {pause: -5s}\n", false},
		{"zero max execution time", "    method: {name: m}\n    maxExecutionTime: 0\n", false},
		{"response timeout in range", "    method: {name: m, responseTimeout: 300}\n", true},
		{"response timeout over range", "    method: {name: m, responseTimeout: 301}\n", false},
		{"boolean from a var", "    method: {name: m}\n    onlyPassed: ${vars.yes}\n", true},
		{"boolean as text", "    method: {name: m}\n    onlyPassed: \"true\"\n", false},
		{"percentage from a var", "    method: {name: m}\n    success:\n      minSuccessRate: ${vars.pct}\n", true},
		{"fraction", "    method: {name: m}\n    success: {minSuccessRate: 0.98}\n", true},
		{"percentage with decimals", "    method: {name: m}\n    success: {minSuccessRate: 99.5%}\n", true},
		{"percentage as a plain number", "    method: {name: m}\n    success: {minSuccessRate: 98}\n", false},
		{"batch counts", "    method: {name: m}\n    rollout: {batches: [1, 10, 100]}\n", true},
		{"batch count from a var", "    method: {name: m}\n    rollout:\n      batches:\n        - ${vars.n}\n", true},
		{"batch of 0%", "    method: {name: m}\n    rollout: {batches: [\"0%\", \"100%\"]}\n", false},
		{"batch of 0.5%", "    method: {name: m}\n    rollout: {batches: [\"0.5%\", \"100%\"]}\n", true},
		{"batch as a fraction", "    method: {name: m}\n    rollout: {batches: [0.5]}\n", false},
		{"start time", "    method: {name: m}\n    start: 2026-11-25T02:00:00+01:00\n", true},
		{"start delay", "    method: {name: m}\n    start: +1h30m\n", true},
		{"start without zone", "    method: {name: m}\n    start: \"2026-11-25T02:00:00\"\n", false},
		{"cron long form", "    method: {name: m}\n    cron: {schedule: \"0 2 * * *\", timezone: \"${vars.tz}\", concurrency: allow}\n", true},
		{"cron long form without schedule", "    method: {name: m}\n    cron: {timezone: UTC}\n", false},
		{"cron as a list", "    method: {name: m}\n    cron: [\"0 2 * * *\"]\n", false},
		{"rate and exponential", "    method: {name: m}\n    rollout:\n      maxPerMinute: 5\n      exponential: {baseRatePerMinute: 1, incrementFactor: 2, rateIncreaseCriteria: {numberOfNotifiedDevices: 5}}\n", false},
		{"exponential", "    method: {name: m}\n    rollout:\n      exponential: {baseRatePerMinute: 1, incrementFactor: 1.5, rateIncreaseCriteria: {numberOfSucceededDevices: 5}}\n", true},
		{"exponential factor 1", "    method: {name: m}\n    rollout:\n      exponential: {baseRatePerMinute: 1, incrementFactor: 1, rateIncreaseCriteria: {numberOfSucceededDevices: 5}}\n", false},
		{"exponential without criteria", "    method: {name: m}\n    rollout:\n      exponential: {baseRatePerMinute: 1, incrementFactor: 2, rateIncreaseCriteria: {}}\n", false},
		{"abort on failures", "    method: {name: m}\n    abort: {failures: 3, on: [all]}\n", true},
		{"abort with both thresholds", "    method: {name: m}\n    abort: {failures: 3, failureRate: 5%}\n", false},
		{"abort on a class listed twice", "    method: {name: m}\n    abort: {failures: 3, on: [verify, verify]}\n", false},
		{"retry on verify", "    method: {name: m}\n    retry: {on: [verify]}\n", false},
		{"window from a tag with a duration", "    method: {name: m}\n    window: {fromTag: tags.w, duration: 1h}\n", false},
		{"window without duration", "    method: {name: m}\n    window: {cron: \"0 2 * * *\"}\n", false},
		{"window", "    method: {name: m}\n    window: {cron: \"0 2 * * *\", duration: 2h, timezone: Europe/Berlin}\n", true},
		{"control without matchTags", "    twin: {tags: {x: 1}}\n    analysis: {query: \"*\", control: {maxDegradation: 5%}}\n", false},
		{"control tags", "    twin: {tags: {x: 1}}\n    analysis: {query: \"*\", control: {matchTags: [model, location.region]}}\n", true},
		{"rollback trigger", "    twin: {tags: {x: 1}}\n    rollback: {on: [planAbort]}\n", true},
		{"unknown rollback trigger", "    twin: {tags: {x: 1}}\n    rollback: {on: [failure]}\n", false},
		{"payload of any JSON", "    method: {name: m, payload: [1, {a: null}, \"x\"]}\n", true},
		{"desired as a list", "    twin: {desired: [1]}\n", false},
		{"twin with both", "    twin: {desired: {a: 1}, tags: {b: null}, etag: \"*\"}\n", true},
		{"unknown key in twin", "    twin: {desired: {a: 1}, tag: {b: 1}}\n", false},
		{"after as text", "    method: {name: m}\n    after: x\n", false},
		{"null description", "    method: {name: m}\n    description:\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := []byte(head + tt.step)
			_, ds := Parse("p.yaml", src, testOptions()...)
			if ds.HasErrors() == tt.valid {
				t.Fatalf("the decoder says valid=%v, the case %v: %v", !ds.HasErrors(), tt.valid, ds)
			}
			if err := s.Validate(instance(t, src)); (err == nil) != tt.valid {
				t.Errorf("the schema says valid=%v, the decoder %v:\n%s\n%v", err == nil, tt.valid, src, err)
			}
		})
	}
}

// TestSchemaCoversDecoder: every key of every decoder field list is in the
// committed schema, in the object at its place, which refuses other keys.
func TestSchemaCoversDecoder(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	defs, _ := root["$defs"].(map[string]any)
	schemaOf := map[string]map[string]any{} // by path
	for _, o := range formatObjects() {
		s := root
		if o.name != "" {
			s, _ = defs[o.name].(map[string]any)
		}
		if s == nil {
			t.Errorf("%s: no $defs/%s in the schema", o.path, o.name)
			continue
		}
		schemaOf[o.path] = s
		props, _ := s["properties"].(map[string]any)
		var got []string
		for k := range props {
			got = append(got, k)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(o.fields))
		if !slices.Equal(got, want) {
			t.Errorf("%q: the schema has keys %v; the decoder accepts %v", o.path, got, want)
		}
		if s["additionalProperties"] != false {
			t.Errorf("%q: the schema does not refuse unknown keys, as the decoder does", o.path)
		}
	}
	// Each object is where its path says: under its parent's key.
	for _, o := range formatObjects() {
		if o.path == "" {
			continue
		}
		parent, key := "", strings.TrimSuffix(o.path, "[]")
		if i := strings.LastIndex(o.path, "."); i >= 0 {
			parent, key = o.path[:i], o.path[i+1:]
		}
		p := schemaOf[parent]
		props, _ := p["properties"].(map[string]any)
		if !refersTo(props[key], "#/$defs/"+o.name) {
			t.Errorf("%q: the schema of %q.%s does not refer to #/$defs/%s", o.path, parent, key, o.name)
		}
	}
}

// TestSchemaKeywordsEditorsRead: the schema uses only keywords that mean
// the same in draft-07, by whose rules the YAML language server (and so
// most editors) validates, and every property has a description to show.
func TestSchemaKeywordsEditorsRead(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	allowed := []string{"$schema", "$defs", "$ref", "title", "description", "default", "type", "properties",
		"additionalProperties", "required", "items", "minItems", "uniqueItems", "enum", "const", "pattern",
		"minimum", "maximum", "exclusiveMinimum", "minLength", "minProperties", "propertyNames", "anyOf", "oneOf", "not"}
	var walk func(path string, s any)
	walk = func(path string, s any) {
		switch s := s.(type) {
		case bool:
			return
		case map[string]any:
			for k, v := range s {
				switch {
				case !slices.Contains(allowed, k):
					t.Errorf("%s: keyword %q is not one draft-07 editors read the same way", path, k)
				case k == "properties" || k == "$defs":
					for name, sub := range v.(map[string]any) {
						if k == "properties" {
							if d, _ := sub.(map[string]any)["description"].(string); d == "" {
								t.Errorf("%s/properties/%s has no description for editors to show", path, name)
							}
						}
						walk(path+"/"+k+"/"+name, sub)
					}
				case k == "anyOf" || k == "oneOf":
					for i, sub := range v.([]any) {
						walk(fmt.Sprintf("%s/%s/%d", path, k, i), sub)
					}
				case k == "items" || k == "not" || k == "additionalProperties" || k == "propertyNames":
					walk(path+"/"+k, v)
				}
			}
		default:
			t.Errorf("%s: a schema of type %T", path, s)
		}
	}
	walk("#", root)
}

// refersTo reports whether a schema holds a $ref to ref.
func refersTo(s any, ref string) bool {
	switch s := s.(type) {
	case map[string]any:
		if s["$ref"] == ref {
			return true
		}
		for _, v := range s {
			if refersTo(v, ref) {
				return true
			}
		}
	case []any:
		return slices.ContainsFunc(s, func(v any) bool { return refersTo(v, ref) })
	}
	return false
}

// TestSchemaNeedsEveryKey: a key added to a decoder field list without a
// description fails Schema (and so every test above), naming it; so does
// a description of a key the decoder does not have.
func TestSchemaNeedsEveryKey(t *testing.T) {
	t.Parallel()
	o := formatObjects()[2]
	o.fields = append(slices.Clone(o.fields), "newKey")
	if _, err := o.schema(); err == nil || !strings.Contains(err.Error(), `"newKey"`) {
		t.Errorf("a key without a description: %v", err)
	}
	o = formatObjects()[2]
	o.fields = slices.DeleteFunc(slices.Clone(o.fields), func(k string) bool { return k == "verify" })
	if _, err := o.schema(); err == nil || !strings.Contains(err.Error(), `"verify"`) {
		t.Errorf("a description of a key the decoder does not accept: %v", err)
	}
}

func TestReferenceCoversDecoder(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, problem := range referenceProblems(string(src), formatObjects()) {
		t.Errorf("%s: %s", referenceFile, problem)
	}
}

// TestReferenceProblemsFinds: the check above finds a missing key, a key
// the decoder does not have and a missing section.
func TestReferenceProblemsFinds(t *testing.T) {
	t.Parallel()
	doc := "# Plans\n\n### `steps[].verify`\n\n| key | type |\n|---|---|\n| `query` | query |\n| `timeot` | duration |\n\n### Next\n\n| `timeout` | duration |\n"
	objs := []object{{path: "steps[].verify", fields: verifyFields}, {path: "steps[].retry", fields: retryFields}}
	got := strings.Join(referenceProblems(doc, objs), "\n")
	for _, want := range []string{`"timeout"`, `"timeot"`, "`steps[].retry`"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q do not name %s", got, want)
		}
	}
}

// referenceProblems checks that the reference has, for each object, a
// section whose heading names its path (`steps[].rollout`, or "Top level")
// with a table row for each of its keys ("| `key` |"), and no row for a
// key the decoder does not accept.
func referenceProblems(doc string, objs []object) []string {
	var problems []string
	lines := strings.Split(doc, "\n")
	for _, o := range objs {
		heading := "`" + o.path + "`"
		if o.path == "" {
			heading = "Top level"
		}
		start := slices.IndexFunc(lines, func(l string) bool {
			return strings.HasPrefix(l, "#") && strings.HasSuffix(strings.TrimSpace(strings.TrimLeft(l, "#")), heading)
		})
		if start < 0 {
			problems = append(problems, fmt.Sprintf("no section headed %s", heading))
			continue
		}
		level := len(lines[start]) - len(strings.TrimLeft(lines[start], "#"))
		end := len(lines)
		for i := start + 1; i < len(lines); i++ {
			if l := lines[i]; strings.HasPrefix(l, "#") && len(l)-len(strings.TrimLeft(l, "#")) <= level {
				end = i
				break
			}
		}
		rows := map[string]bool{}
		for _, l := range lines[start+1 : end] {
			if k, ok := strings.CutPrefix(l, "| `"); ok {
				if k, _, ok := strings.Cut(k, "` |"); ok {
					rows[k] = true
				}
			}
		}
		for _, f := range o.fields {
			if !rows[f] {
				problems = append(problems, fmt.Sprintf("section %s has no row for key %q", heading, f))
			}
		}
		for k := range rows {
			if !slices.Contains(o.fields, k) {
				problems = append(problems, fmt.Sprintf("section %s has a row for %q, which the decoder does not accept", heading, k))
			}
		}
	}
	slices.Sort(problems)
	return problems
}

// instance converts a YAML plan into the JSON value an editor validates:
// integers stay integers, timestamps are the text written.
func instance(t *testing.T, src []byte) any {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	v, err := toJSON(doc.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	// Through JSON text, as the validator reads documents.
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func toJSON(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return toJSON(n.Alias)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := toJSON(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		out := []any{}
		for _, c := range n.Content {
			v, err := toJSON(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	switch n.Tag {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		err := n.Decode(&b)
		return b, err
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			return nil, err
		}
		return json.Number(strconv.FormatInt(i, 10)), nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return n.Value, nil
		}
		return f, nil
	}
	return n.Value, nil
}

// errorSpans are the line spans of the YAML values the schema's innermost
// errors are about; an unknown key's error is about the key.
func errorSpans(root *yaml.Node, ve *jsonschema.ValidationError) [][2]int {
	var out [][2]int
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		loc := e.InstanceLocation
		if ap, ok := e.ErrorKind.(*kind.AdditionalProperties); ok {
			for _, p := range ap.Properties {
				if s, ok := span(root, append(slices.Clone(loc), p)); ok {
					out = append(out, s)
				}
			}
			return
		}
		if s, ok := span(root, loc); ok {
			out = append(out, s)
		}
	}
	walk(ve)
	slices.SortFunc(out, func(a, b [2]int) int { return a[0] - b[0] })
	return slices.Compact(out)
}

// span finds the node at a JSON pointer's tokens and returns its first
// and last line (from its key's line, for a mapping value).
func span(n *yaml.Node, loc []string) ([2]int, bool) {
	first := n.Line
	for _, tok := range loc {
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					first, n, found = n.Content[i].Line, n.Content[i+1], true
				}
			}
			if !found {
				return [2]int{}, false
			}
		case yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i >= len(n.Content) {
				return [2]int{}, false
			}
			n = n.Content[i]
			first = n.Line
		default:
			return [2]int{}, false
		}
	}
	return [2]int{first, lastLine(n)}, true
}

func lastLine(n *yaml.Node) int {
	if len(n.Content) == 0 {
		return n.Line
	}
	return max(n.Line, lastLine(n.Content[len(n.Content)-1]))
}
