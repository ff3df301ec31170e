package runner_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/internal/browser"
	"github.com/iotjobs/iotjobs/runner"
)

// htmlReports are the example plans' reports the page is checked on:
// written by iotjobs apply and plan over the example fleets.
func htmlReports(t *testing.T) map[string]*runner.Report {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "html", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no reports in testdata/html: %v", err)
	}
	out := map[string]*runner.Report{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var rep runner.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = &rep
	}
	return out
}

func writePage(t testing.TB, rep *runner.Report, path string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := rep.WriteHTML(&b, runner.HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// outsideRef finds what would make a page fetch something: a src or href
// attribute, a CSS url() or an @import, other than data: and fragments.
var outsideRef = regexp.MustCompile(`(?i)(src|href)\s*=\s*"(?:[^"#d]|d[^a])|url\(\s*['"]?[^'"#d)]|@import`)

// TestHTMLReportSelfContained: the page names nothing outside itself and
// writes the same bytes for the same report.
func TestHTMLReportSelfContained(t *testing.T) {
	for snippet, outside := range map[string]bool{
		`<script src="https://cdn.example/x.js">`: true, `<link href="style.css">`: true, `<img src="a.png">`: true,
		`style="background:url(http://x/y)"`: true, `@import "x.css"`: true,
		`<img src="data:image/png;base64,AA">`: false, `<a href="#step-1">`: false, `style="width:5%"`: false,
	} {
		if got := outsideRef.MatchString(snippet); got != outside {
			t.Errorf("outsideRef on %s = %v, want %v", snippet, got, outside)
		}
	}
	for name, rep := range htmlReports(t) {
		dir := t.TempDir()
		page := writePage(t, rep, filepath.Join(dir, "a.html"))
		if m := outsideRef.Find(page); m != nil {
			t.Errorf("%s: the page refers outside itself: %q", name, m)
		}
		if again := writePage(t, rep, filepath.Join(dir, "b.html")); !bytes.Equal(page, again) {
			t.Errorf("%s: two renderings of one report differ", name)
		}
		if !bytes.Contains(page, []byte(`<svg id="timeline"`)) {
			t.Errorf("%s: no timeline", name)
		}
	}
}

// TestHTMLReportInBrowser opens each example report's page in headless
// Chromium: the timeline has a row per step, each step's section its
// counts, the device table the report's rows; filtering by outcome shows
// exactly the matching rows; no request leaves the page.
func TestHTMLReportInBrowser(t *testing.T) {
	b := browser.New(t)
	for name, rep := range htmlReports(t) {
		path := filepath.Join(t.TempDir(), name+".html")
		writePage(t, rep, path)
		p := b.Open(path)
		if n := p.Count("#timeline g.timeline-step"); n != len(rep.Steps) {
			t.Errorf("%s: %d timeline rows, want %d", name, n, len(rep.Steps))
		}
		occurrences := 0
		for _, s := range rep.Steps {
			occurrences += len(s.Occurrences)
		}
		if n := p.Count("#timeline g.timeline-occurrence"); n != occurrences {
			t.Errorf("%s: %d occurrence rows, want %d", name, n, occurrences)
		}
		if n := p.Count("section.step"); n != len(rep.Steps) {
			t.Errorf("%s: %d step sections, want %d", name, n, len(rep.Steps))
		}
		byOutcome := map[string]int{}
		byClass := map[string]int{}
		total := 0
		for i, s := range rep.Steps {
			for outcome, want := range map[string]int{"succeeded": s.Summary.Succeeded, "noop": s.Summary.Noop, "skipped": s.Summary.Skipped} {
				sel := fmt.Sprintf(`#step-%d .count[data-outcome="%s"] b`, i, outcome)
				if got := p.Text(sel); got != strconv.Itoa(want) {
					t.Errorf("%s: step %s shows %s %s, want %d", name, s.Name, got, outcome, want)
				}
			}
			for _, d := range s.Devices {
				total++
				switch {
				case !d.Succeeded:
					byOutcome["failed"]++
					byClass[runner.FailureClass(d)]++
				case d.Status == runner.DeviceNoop:
					byOutcome["noop"]++
				default:
					byOutcome["succeeded"]++
				}
			}
		}
		if got := p.Text("#device-total"); got != strconv.Itoa(total) {
			t.Errorf("%s: header says %s device results, want %d", name, got, total)
		}
		if n := p.Count("tr.device-row"); n != min(total, 1000) {
			t.Errorf("%s: %d device rows, want %d", name, n, min(total, 1000))
		}
		filters := map[string]int{"succeeded": byOutcome["succeeded"], "failed": byOutcome["failed"], "noop": byOutcome["noop"], "": total}
		for c, n := range byClass {
			filters["failed:"+c] = n
		}
		for value, want := range filters {
			p.SetValue("#outcome-filter", value)
			if n := p.Count("tr.device-row"); n != min(want, 1000) {
				t.Errorf("%s: outcome %q shows %d rows, want %d", name, value, n, min(want, 1000))
			}
			if got := p.Text("#device-count"); !strings.HasPrefix(got, strconv.Itoa(want)+" of ") {
				t.Errorf("%s: outcome %q: count says %q, want %d", name, value, got, want)
			}
		}
		// Text filters over device ids.
		p.SetValue("#outcome-filter", "")
		if len(rep.Steps) > 0 && len(rep.Steps[0].Devices) > 0 {
			id := rep.Steps[0].Devices[0].DeviceID
			p.SetValue("#device-filter", id)
			if n := p.Count("tr.device-row"); n < 1 {
				t.Errorf("%s: filtering by %q shows no row", name, id)
			}
			p.SetValue("#device-filter", "no device has this text")
			if n := p.Count("tr.device-row"); n != 0 {
				t.Errorf("%s: a filter matching nothing shows %d rows", name, n)
			}
		}
		if rep.DryRun && p.Count("#prediction") != 1 {
			t.Errorf("%s: a dry run's page does not say it is a prediction", name)
		}
		if reqs := p.Requests(); len(reqs) > 0 {
			t.Errorf("%s: the page made requests: %v", name, reqs)
		}
	}
}

// bigDevicesReport is a run over n devices in three batches: one in 50 failed
// (timed out), the rest succeeded.
func bigDevicesReport(n int) *runner.Report {
	start := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	at := func(m int) *time.Time { t := start.Add(time.Duration(m) * time.Minute); return &t }
	s := &runner.StepReport{Name: "set-firmware", Type: string(hub.JobUpdateTwin), Status: runner.StepCompleted,
		QueryCondition: "tags.model = 'door-ctl'", StartTime: at(0), EndTime: at(40),
		Batches: []runner.BatchReport{{Target: n / 10, Devices: n / 10, StartTime: at(0), EndTime: at(5)},
			{Target: n / 2, Devices: n/2 - n/10, StartTime: at(10), EndTime: at(20)},
			{Target: n, Devices: n - n/2, StartTime: at(25), EndTime: at(40)}}}
	for i := range n {
		d := runner.DeviceResult{DeviceID: fmt.Sprintf("door-%05d", i), Status: string(hub.DeviceJobCompleted), Succeeded: true}
		if i%50 == 7 {
			d = runner.DeviceResult{DeviceID: d.DeviceID, Status: string(hub.DeviceJobFailed),
				Error: &hub.DeviceJobError{Code: hub.CodeGatewayTimeout, Description: "the device did not answer within 30s"}}
		}
		s.Devices = append(s.Devices, d)
	}
	s.Summary = runner.Summary{Matched: n, Succeeded: n - n/50, Failed: n / 50, FailedByClass: map[string]int{"timedOut": n / 50}}
	return &runner.Report{ReportVersion: runner.ReportVersion, Plan: runner.PlanRef{Name: "firmware", File: "firmware.yaml"},
		Hub: "hub.example", Status: runner.StatusSucceeded, StartedAt: start, FinishedAt: *at(40), Steps: []*runner.StepReport{s}}
}

// TestHTMLReportSize: a 10,000-device report's page stays under 3 MB.
func TestHTMLReportSize(t *testing.T) {
	var b bytes.Buffer
	if err := bigDevicesReport(10000).WriteHTML(&b, runner.HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	if b.Len() > 3<<20 {
		t.Errorf("the 10,000-device page is %d bytes, over 3 MB", b.Len())
	}
	t.Logf("10,000-device page: %d bytes", b.Len())
}

// BenchmarkHTMLReportRender renders the 10,000-device page in headless
// Chromium and reports its time as a ratio to an empty page's, measured
// in the same run (README "The HTML report").
func BenchmarkHTMLReportRender(b *testing.B) {
	br := browser.New(b)
	dir := b.TempDir()
	empty := filepath.Join(dir, "empty.html")
	if err := os.WriteFile(empty, []byte("<!DOCTYPE html><title>empty</title>"), 0o644); err != nil {
		b.Fatal(err)
	}
	big := filepath.Join(dir, "big.html")
	writePage(b, bigDevicesReport(10000), big)
	var emptyT, bigT time.Duration
	for b.Loop() {
		emptyT += br.RenderTime(empty)
		bigT += br.RenderTime(big)
	}
	b.ReportMetric(float64(bigT)/float64(emptyT), "x-empty-page")
	b.ReportMetric(float64(bigT.Milliseconds())/float64(b.N), "ms/page")
}

var updateScreenshot = flag.Bool("update-screenshot", false, "write docs/html-report.png from the firmware-rollout example's report")

// TestHTMLReportScreenshot takes the README's screenshot of the
// firmware-rollout example's page (its failures shown): into a temporary
// file, checked to be a PNG of the page, or with -update-screenshot into
// docs/html-report.png.
func TestHTMLReportScreenshot(t *testing.T) {
	rep := htmlReports(t)["firmware-rollout"]
	if rep == nil {
		t.Fatal("no testdata/html/firmware-rollout.json")
	}
	b := browser.New(t)
	page := filepath.Join(t.TempDir(), "page.html")
	writePage(t, rep, page)
	p := b.Open(page)
	p.SetValue("#outcome-filter", "failed")
	out := filepath.Join(t.TempDir(), "shot.png")
	if *updateScreenshot {
		out = filepath.Join("..", "docs", "html-report.png")
	}
	p.Screenshot(out, 1000, 700)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot is no PNG: %v", err)
	}
	if w := img.Bounds().Dx(); w != 1000 {
		t.Errorf("screenshot %d pixels wide, want 1000", w)
	}
}
