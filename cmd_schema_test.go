package main

import (
	"os"
	"strings"
	"testing"
)

// TestSchemaCommand: iotjobs schema plan prints the committed schema (the
// plan package's test holds that to the generator); a missing, unknown or
// extra name is a usage error that lists the schemas.
func TestSchemaCommand(t *testing.T) {
	want, err := os.ReadFile("docs/plan.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, t.Context(), "schema", "plan")
	if code != exitOK || stdout != string(want) {
		t.Errorf("schema plan: exit %d, stderr %q; stdout is not docs/plan.schema.json (%d bytes, want %d)", code, stderr, len(stdout), len(want))
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"schema"}, "name one schema: plan"},
		{[]string{"schema", "plna"}, `unknown schema "plna"; did you mean "plan"? the schemas are: plan`},
		{[]string{"schema", "report"}, `unknown schema "report"; the schemas are: plan`},
		{[]string{"schema", "plan", "fleet"}, "name one schema: plan"},
	} {
		code, stdout, stderr := runCLI(t, t.Context(), tt.args...)
		if code != exitInvalid || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("iotjobs %s: exit %d, stdout %q, stderr %q; want exit 2 saying %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
}
