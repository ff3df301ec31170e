package runner_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/internal/gfm"
	"github.com/iotjobs/iotjobs/runner"
)

// bigReport is a simulated dry-run over n devices: a twin step in
// batches of 10 whose diff has a different current value on every device, and
// a method step that finds every tenth device offline.
func bigReport(n int) *runner.Report {
	t0 := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := t0.Add(d); return &t }
	var from []runner.ValueCount
	var twinDevices, methodDevices []runner.DeviceResult
	for i := range n {
		id := fmt.Sprintf("d-%05d", i)
		from = append(from, runner.ValueCount{Value: fmt.Sprintf("v|%05d", i), Count: 1})
		twinDevices = append(twinDevices, runner.DeviceResult{DeviceID: id, Status: "completed", Succeeded: true})
		d := runner.DeviceResult{DeviceID: id, Status: "completed", Succeeded: true}
		if i%10 == 0 {
			d = runner.DeviceResult{DeviceID: id, Status: "failed", Error: &hub.DeviceJobError{Code: hub.CodeDeviceNotOnline}}
		}
		methodDevices = append(methodDevices, d)
	}
	twin := &runner.StepReport{Name: "stamp", Type: string(hub.JobUpdateTwin), Status: runner.StepCompleted, StartTime: at(0), EndTime: at(time.Hour),
		Devices: twinDevices, Summary: runner.Summary{Matched: n, Succeeded: n},
		Preview: &runner.StepPreview{Matched: n, Sample: []string{"d-00000", "d-00001"},
			TwinDiff: []runner.PathDiff{{Path: "properties.desired.stamp", To: "new", Change: n, From: from}}}}
	for i := range max(1, n/10) {
		twin.Preview.Timeline.Batches = append(twin.Preview.Timeline.Batches, runner.PlanBatch{Devices: 10})
		twin.Batches = append(twin.Batches, runner.BatchReport{Target: (i + 1) * 10, Devices: 10, StartTime: at(time.Duration(i) * time.Minute), EndTime: at(time.Duration(i)*time.Minute + 30*time.Second)})
	}
	method := &runner.StepReport{Name: "reboot", Type: string(hub.JobDeviceMethod), Status: runner.StepCompleted, StartTime: at(time.Hour), EndTime: at(time.Hour + time.Minute),
		Devices: methodDevices, Summary: runner.Summary{Matched: n, Succeeded: n - n/10, Failed: n / 10, FailedByClass: map[string]int{"offline": n / 10}},
		Preview: &runner.StepPreview{Matched: n, Method: "reboot", After: []string{"stamp"}, Sample: []string{"d-00000"}}}
	return &runner.Report{Plan: runner.PlanRef{Name: "big", File: "big.yaml"}, DryRun: true, Status: runner.StatusSucceeded, StartedAt: t0,
		Simulation: &runner.Simulation{Against: "fleet big-fleet.yaml", Simulated: true, Assumptions: []string{"the hub does not throttle"}},
		Steps:      []*runner.StepReport{twin, method}}
}

// TestMarkdownLimit: a dry-run over 10,000 devices stays under GitHub's
// comment limit by folding its least important parts, says what it left
// out, and its tables still parse; under a smaller limit it folds more,
// and under one too small for any rendering it is cut at a line and says
// so.
func TestMarkdownLimit(t *testing.T) {
	rep := bigReport(10000)
	for _, tc := range []struct {
		name  string
		limit int
		want  []string
	}{
		{"default", 0, []string{"_Left out to stay under GitHub's comment limit: device samples; per-batch figures and cron runs", "`iotjobs plan --report FILE` writes everything"}},
		{"small", 10000, []string{"twin diff rows beyond 5 values a path; timeline rows beyond 40", "9995 more values → `\"new\"`", "964 more events"}},
		{"tiny", 800, []string{"_Cut here to stay under GitHub's comment limit; left out before: device samples;"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := rep.WriteMarkdown(&b, runner.MarkdownOptions{Limit: tc.limit}); err != nil {
				t.Fatal(err)
			}
			got := b.String()
			limit := tc.limit
			if limit == 0 {
				limit = runner.DefaultMarkdownLimit
			}
			if len(got) > limit || len(got) > 65536 {
				t.Errorf("%d bytes, over %d", len(got), limit)
			}
			if !strings.HasPrefix(got, "**iotjobs plan `big`**: would call 10000 devices and change 10000 twins — predicted: ✅ succeeds — policy: not checked\n") {
				t.Errorf("first line: %.200s", got)
			}
			for _, want := range tc.want {
				if !strings.Contains(got, want) {
					t.Errorf("lacks %q:\n%s", want, got)
				}
			}
			if tc.name == "tiny" {
				return
			}
			if !strings.Contains(got, "`reboot`: 1000 devices predicted offline (DeviceNotOnline): `d-00000`, `d-00010`") {
				t.Errorf("no offline risk:\n%s", got)
			}
			tables := gfm.Tables([]byte(got))
			if len(tables) < 3 || tables[0].Header[0] != "step" || len(tables[0].Rows) != 2 || tables[1].Header[0] != "path" {
				t.Fatalf("tables: %+v", tables)
			}
			// A pipe in a value stays inside its cell.
			if row := tables[1].Rows[0]; len(row) != 3 || row[1] != `"v|00000" → "new"` || row[2] != "1" {
				t.Errorf("diff row %q", row)
			}
		})
	}
}

// TestMarkdownEscapes: names and reasons with Markdown and HTML in them
// come out as text: no table cell split by a pipe, no tag, no emphasis.
func TestMarkdownEscapes(t *testing.T) {
	rep := bigReport(3)
	s := rep.Steps[1]
	s.Name, s.Status, s.Reason = "re|boot_<b>", runner.StepFailed, "a <script> | *bold* reason"
	rep.Status = runner.StatusFailed
	var b bytes.Buffer
	if err := rep.WriteMarkdown(&b, runner.MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	html, err := gfm.HTML(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script>", "<b>", "<em>bold</em>"} {
		if strings.Contains(html, bad) {
			t.Errorf("HTML holds %q:\n%s", bad, html)
		}
	}
	tables := gfm.Tables(b.Bytes())
	if row := tables[0].Rows[1]; len(row) != 10 || row[0] != "re|boot_<b>" {
		t.Errorf("steps row %q", row)
	}
	if !strings.Contains(html, "a &lt;script&gt; | *bold* reason") {
		t.Errorf("the reason is not shown as text:\n%s", html)
	}
}
