package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// TestSchema: the committed schema is the one iotjobs schema policy
// prints, and it agrees with the decoder on the valid policies (the
// example's, the tests') and on a few invalid ones.
func TestSchema(t *testing.T) {
	if docs, err := os.ReadFile("../../docs/policy.schema.json"); err != nil || !bytes.Equal(docs, schema) {
		t.Errorf("docs/policy.schema.json differs from plan/policy/policy.schema.json (%v): copy it", err)
	}
	c := jsonschema.NewCompiler()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("policy.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("policy.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	validate := func(src []byte) error {
		var v any
		if err := yaml.Unmarshal(src, &v); err != nil {
			return err
		}
		b, _ := json.Marshal(v)
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return err
		}
		return s.Validate(inst)
	}
	for _, name := range []string{"../../examples/policy/policy.iotjobs.yaml", "testdata/policy.yaml"} {
		src, _ := os.ReadFile(name)
		if err := validate(src); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, src := range []string{
		"version: 1\nrules: [{name: a, level: hard}]",                                             // checks nothing
		"version: 1\nrules: [{name: a, level: hard, abortRequiredOver: 1, methods: {deny: [x]}}]", // two checks
		"version: 1\nrules: [{name: a, level: sfot, abortRequiredOver: 1}]",
		"version: 1\nrules: [{name: a, level: soft, forbiddenPaths: [properties.reported.x]}]",
		"version: 1\nrules: [{name: a, level: soft, startWindows: {deny: [{days: [fr]}]}}]",
		"version: 2\nrules: []",
	} {
		if validate([]byte(src)) == nil {
			t.Errorf("the schema accepts %q", src)
		}
		if _, ds := Parse("p.yaml", []byte(src)); !ds.HasErrors() {
			t.Errorf("the decoder accepts %q", src)
		}
	}
}
