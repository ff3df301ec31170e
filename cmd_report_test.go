package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHTMLFlags: plan --html and report --html write the page; report
// alone prints the summary; --html-url links the Markdown comment and
// needs -o markdown; bad arguments exit 2 naming the problem.
func TestHTMLFlags(t *testing.T) {
	dir := t.TempDir()
	planHTML, reportJSON, reportHTML := filepath.Join(dir, "plan.html"), filepath.Join(dir, "plan.json"), filepath.Join(dir, "report.html")
	code, _, stderr := runCLI(t, t.Context(), "plan", "--fleet", "examples/fleet.yaml", "--report", reportJSON, "--html", planHTML, "examples/lock-door.yaml")
	if code != 0 || !strings.Contains(stderr, "HTML report written to "+planHTML) {
		t.Fatalf("plan --html: exit %d, stderr %q", code, stderr)
	}
	for _, f := range []string{planHTML} {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), `<svg id="timeline"`) || !strings.Contains(string(b), "This is a prediction") {
			t.Errorf("%s: %v, not a dry run's page", f, err)
		}
	}
	applyHTML := filepath.Join(dir, "apply.html")
	if code, _, stderr := runCLI(t, t.Context(), "apply", "--yes", "--fleet", "examples/fleet.yaml", "--data", filepath.Join(dir, "data"),
		"--report", filepath.Join(dir, "apply.json"), "--html", applyHTML, "examples/lock-door.yaml"); code != 0 {
		t.Errorf("apply --html: exit %d, %q", code, stderr)
	} else if b, err := os.ReadFile(applyHTML); err != nil || strings.Contains(string(b), "This is a prediction") || !strings.Contains(string(b), "lock-door") {
		t.Errorf("apply --html: %v; want a live run's page", err)
	}
	if code, _, stderr := runCLI(t, t.Context(), "report", reportJSON, "--html", reportHTML); code != 0 {
		t.Errorf("report --html: exit %d, %q", code, stderr)
	} else if _, err := os.Stat(reportHTML); err != nil {
		t.Errorf("report --html wrote nothing: %v", err)
	}
	if code, stdout, stderr := runCLI(t, t.Context(), "report", reportJSON); code != 0 || !strings.Contains(stdout, "plan lock-doors") {
		t.Errorf("report: exit %d, stdout %q, stderr %q; want the summary", code, stdout, stderr)
	}
	code, stdout, _ := runCLI(t, t.Context(), "plan", "--fleet", "examples/fleet.yaml", "-o", "markdown", "--html-url", "https://ci.example/artifacts/plan.html", "examples/lock-door.yaml")
	if code != 0 || !strings.Contains(stdout, "[HTML report](https://ci.example/artifacts/plan.html)") {
		t.Errorf("plan -o markdown --html-url: exit %d, no link in %q", code, stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "--fleet", "examples/fleet.yaml", "--html-url", "u", "examples/lock-door.yaml"}, "use it with -o markdown"},
		{[]string{"report"}, "name exactly one JSON report"},
		{[]string{"report", filepath.Join(dir, "missing.json")}, "missing.json"},
		{[]string{"report", "examples/lock-door.yaml"}, "not an iotjobs JSON report"},
	} {
		code, _, stderr := runCLI(t, t.Context(), tc.args...)
		if code != exitInvalid || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 saying %q", tc.args, code, stderr, tc.want)
		}
	}
}
