package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/internal/gfm"
)

// markdownExamples are the example plans with the fleet each is played
// against, and the tables their comment has: per table, its first header
// cell and its number of rows.
var markdownExamples = []struct {
	plan, fleet string
	tables      []tableShape
}{
	{"lock-door", "fleet", []tableShape{{"step", 2}, {"path", 2}, {"when", 4}}},
	{"firmware-rollout", "firmware-fleet", []tableShape{{"step", 2}, {"path", 1}, {"when", 7}, {"batch", 3}}},
	{"nightly-sync", "nightly-fleet", []tableShape{{"step", 1}, {"when", 3}, {"run", 7}}},
}

type tableShape struct {
	first string
	rows  int
}

// fixPlanClock starts plan's dry-runs at t0 for the rest of the test: a
// window in a zone with summer time, or a week of cron runs, plays
// differently on another date.
func fixPlanClock(t *testing.T, t0 time.Time) {
	t.Helper()
	saved := planClock
	planClock = clock.NewVirtual(t0)
	t.Cleanup(func() { planClock = saved })
}

// TestPlanMarkdownGolden: plan -o markdown of every example plan against
// its fleet is testdata/markdown/PLAN.md byte for byte (go test -run
// TestPlanMarkdownGolden -update rewrites them), and a second run gives
// the same bytes. Rendered with a GFM renderer, its tables come out as
// tables, with the header cells and rows the comment means.
func TestPlanMarkdownGolden(t *testing.T) {
	fixPlanClock(t, time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC))
	stepHeader := []string{"step", "action", "devices", "start", "rollout", "predicted", "succeeded", "failed", "no-op", "duration"}
	for _, ex := range markdownExamples {
		t.Run(ex.plan, func(t *testing.T) {
			args := []string{"plan", "-o", "markdown", "--fleet", "examples/" + ex.fleet + ".yaml", "examples/" + ex.plan + ".yaml"}
			code, got, stderr := runCLI(t, t.Context(), args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			if _, again, _ := runCLI(t, t.Context(), args...); again != got {
				t.Errorf("a second run differs:\n%s\nfirst:\n%s", again, got)
			}
			golden := filepath.Join("testdata", "markdown", ex.plan+".md")
			want, err := os.ReadFile(golden)
			switch {
			case *update:
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			case err != nil:
				t.Fatalf("%v (go test -run TestPlanMarkdownGolden -update writes it)", err)
			case string(want) != got:
				t.Errorf("plan -o markdown differs from %s:\n%s", golden, got)
			}

			tables := gfm.Tables([]byte(got))
			if len(tables) != len(ex.tables) {
				t.Fatalf("%d tables, want %d: %+v", len(tables), len(ex.tables), tables)
			}
			for i, want := range ex.tables {
				tb := tables[i]
				if len(tb.Header) == 0 || tb.Header[0] != want.first || len(tb.Rows) != want.rows {
					t.Errorf("table %d: header %q and %d rows, want %q first and %d rows", i+1, tb.Header, len(tb.Rows), want.first, want.rows)
				}
				for _, row := range tb.Rows {
					if len(row) != len(tb.Header) {
						t.Errorf("table %d: row %q has %d cells for %d headers", i+1, row, len(row), len(tb.Header))
					}
				}
			}
			if strings.Join(tables[0].Header, ",") != strings.Join(stepHeader, ",") {
				t.Errorf("steps table header %q, want %q", tables[0].Header, stepHeader)
			}
			html, err := gfm.HTML([]byte(got))
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(html, "<table>"); n != len(ex.tables) {
				t.Errorf("%d <table> in the HTML, want %d", n, len(ex.tables))
			}
			if !strings.HasPrefix(html, "<p><strong>iotjobs plan <code>") {
				t.Errorf("the HTML does not start with the verdict:\n%.200s", html)
			}
		})
	}
}

// TestPlanMarkdownLargeFleet: over a thousand devices, some offline, the
// comment stays small, names its risks (the offline devices, a step over
// every device at once) and keeps its verdict first.
func TestPlanMarkdownLargeFleet(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile := filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "plan.yaml")
	writeTestFile(t, fleet, "version: 1\nseed: 3\ngroups:\n  - ids: \"d-{n:04}\"\n    count: 1000\n    offline: 2%\n    tags: {site: big}\n    methods:\n      reboot: {status: 200}\n    desired: {report: true}\n")
	writeTestFile(t, planFile, "version: 1\nname: big\nsteps:\n  - name: stamp\n    query: \"tags.site = 'big'\"\n    twin: {desired: {stamp: 7}}\n  - name: reboot\n    query: \"tags.site = 'big'\"\n    method: {name: reboot}\n    success: {minSuccessRate: 90%}\n")
	code, got, stderr := runCLI(t, t.Context(), "plan", "-o", "markdown", "--fleet", fleet, planFile)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	first, _, _ := strings.Cut(got, "\n")
	for _, want := range []string{
		"would call 1000 devices and change 1000 twins",
		"predicted: ✅ succeeds", "policy: not checked",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("first line lacks %q: %s", want, first)
		}
	}
	for _, want := range []string{
		"predicted offline (DeviceNotOnline)",
		"`stamp` acts on 1000 devices at once with neither `abort` nor `rollout` batches",
		"`reboot` acts on 1000 devices at once",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("comment lacks %q:\n%s", want, got)
		}
	}
	if len(got) > 65536 {
		t.Errorf("%d bytes", len(got))
	}
}

// TestMarkdownOnlyForPlan: -o markdown is plan's alone; the other
// commands with --output refuse it by name before any work (exit 2).
func TestMarkdownOnlyForPlan(t *testing.T) {
	for _, args := range [][]string{
		{"validate", "-o", "markdown", "examples/lock-door.yaml"},
		{"check", "-o", "markdown", "--fleet", "examples/fleet.yaml", "examples/lock-door.yaml"},
		{"apply", "-o", "markdown", "--fleet", "examples/fleet.yaml", "examples/lock-door.yaml"},
	} {
		code, stdout, stderr := runCLI(t, t.Context(), args...)
		if code != 2 || !strings.Contains(stderr, "--output markdown: only iotjobs plan writes markdown; use text or json") || stdout != "" {
			t.Errorf("%s: exit %d\nstdout %q\nstderr %q", args[0], code, stdout, stderr)
		}
	}
	code, _, stderr := runCLI(t, t.Context(), "plan", "-o", "html", "examples/lock-door.yaml")
	if code != 2 || !strings.Contains(stderr, `plan: --output "html": use text, json or markdown`) {
		t.Errorf("plan -o html: exit %d\n%s", code, stderr)
	}
}
