package main

import (
	"os"
	"strings"
	"testing"
)

// TestSchemaCommand: iotjobs schema NAME prints the committed schema (the
// plan package's test holds the plan's to its generator); a missing, unknown or
// extra name is a usage error that lists the schemas.
func TestSchemaCommand(t *testing.T) {
	for _, name := range []string{"plan", "policy", "saved-plan"} {
		want, err := os.ReadFile("docs/" + name + ".schema.json")
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCLI(t, t.Context(), "schema", name)
		if code != exitOK || stdout != string(want) {
			t.Errorf("schema %s: exit %d, stderr %q; stdout is not docs/%s.schema.json (%d bytes, want %d)", name, code, stderr, name, len(stdout), len(want))
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"schema"}, "name one schema: plan, policy, saved-plan"},
		{[]string{"schema", "plna"}, `unknown schema "plna"; did you mean "plan"? the schemas are: plan, policy, saved-plan`},
		{[]string{"schema", "report"}, `unknown schema "report"; the schemas are: plan, policy, saved-plan`},
		{[]string{"schema", "plan", "fleet"}, "name one schema: plan, policy, saved-plan"},
	} {
		code, stdout, stderr := runCLI(t, t.Context(), tt.args...)
		if code != exitInvalid || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("iotjobs %s: exit %d, stdout %q, stderr %q; want exit 2 saying %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
}
