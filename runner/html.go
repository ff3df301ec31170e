package runner

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/plan"
)

// The HTML report is one self-contained page (README "The HTML report"):
// styles and the script inline, the timeline an SVG drawn here, the
// devices a JSON array the script renders a page at a time, so that a
// 10,000-device report stays small and quick to open offline.

//go:embed html/report.html.tmpl
var htmlTemplate string

var htmlPage = template.Must(template.New("report").Parse(htmlTemplate))

// HTMLOptions adjust the HTML report.
type HTMLOptions struct {
	// Now is when the page is written (its footer); zero leaves it out,
	// so that tests get the same page every time.
	Now time.Time
}

// WriteHTML writes the report as a self-contained HTML page.
func (rep *Report) WriteHTML(w io.Writer, o HTMLOptions) error {
	return htmlPage.Execute(w, rep.htmlModel(o))
}

type htmlModel struct {
	Title, Plan, PlanFile, Target, Status, Verdict, Duration, Error string
	DryRun                                                          bool
	Assumptions                                                     []string
	Changed, Devices                                                int
	Policy, Occurrence                                              string
	Timeline                                                        template.HTML
	Steps                                                           []htmlStep
	Failures                                                        []htmlFailure
	Classes                                                         []string
	Data                                                            template.JS
	Written                                                         string
}

type htmlStep struct {
	Index                                     int
	Name, Type, Status, Line, Duration, Query string
	Bar                                       []htmlSegment
	Failures                                  []string
	Diffs                                     []htmlDiff
	Abort                                     string
	Analysis                                  []htmlVerdict
	Rollback                                  string
	Occurrences                               []htmlOccurrence
	Summary                                   Summary
}

type htmlSegment struct {
	Class, Label string
	N            int
	Percent      float64
}

type htmlDiff struct{ Path, From, To, Devices string }

type htmlVerdict struct {
	Pass bool
	Text string
}

type htmlOccurrence struct{ At, Status, Counts string }

type htmlFailure struct {
	Class string
	Count int
	Steps string
}

// Outcome classes of the page: the summary's words.
const (
	htmlSucceeded = "succeeded"
	htmlFailed    = "failed"
	htmlNoop      = "noop"
	htmlSkipped   = "skipped"
)

func (rep *Report) htmlModel(o HTMLOptions) *htmlModel {
	m := &htmlModel{
		Title:    "iotjobs: " + rep.Plan.Name,
		Plan:     rep.Plan.Name,
		PlanFile: rep.Plan.File,
		Target:   rep.Hub,
		Status:   rep.Status,
		Error:    rep.Error,
		DryRun:   rep.DryRun,
	}
	if sim := rep.Simulation; sim != nil {
		m.Target = "dry run against " + sim.Against
		m.Assumptions = sim.Assumptions
	}
	if d := rep.FinishedAt.Sub(rep.StartedAt); !rep.StartedAt.IsZero() && d >= 0 {
		m.Duration = humanDuration(d)
	}
	if oc := rep.Occurrence; oc != nil {
		m.Occurrence = fmt.Sprintf("%s at %s", oc.Step, oc.ScheduledAt.UTC().Format(time.RFC3339))
	}
	if p := rep.Policy; p != nil {
		m.Policy = fmt.Sprintf("policy %s: %s", p.File, p.Result)
	}
	// rows: step index, device id, outcome, failure class, why.
	var rows [][]any
	byClass := map[string]map[string]bool{}
	counts := map[string]int{}
	for i, s := range rep.Steps {
		hs := htmlStep{Index: i, Name: s.Name, Type: s.Type, Status: string(s.Status), Line: stepLine(s),
			Query: s.QueryCondition, Summary: s.Summary, Failures: failureLines(s)}
		if s.StartTime != nil && s.EndTime != nil {
			hs.Duration = humanDuration(s.EndTime.Sub(*s.StartTime))
		}
		hs.Bar = outcomeBar(s.Summary)
		hs.Diffs = htmlDiffs(s)
		if a := s.Abort; a != nil {
			hs.Abort = fmt.Sprintf("abort thresholds: %d failed of %d executed (at least %d executed before they count)", a.Failed, a.Executed, a.MinExecuted)
			if a.Tripped {
				hs.Abort += " — tripped"
			}
		}
		for _, a := range s.Analysis {
			hs.Analysis = append(hs.Analysis, htmlVerdict{Pass: a.Pass, Text: fmt.Sprintf("batch %d: %d of %d passed %s (%s needed) — %s",
				a.Batch, a.Passed, a.Devices, a.Query, mdPercent(a.MinPassRate), a.Reason)})
		}
		if rb := s.Rollback; rb != nil && rb.Trigger != "" {
			hs.Rollback = fmt.Sprintf("rolled back (%s): %d restored, %d conflicts, %d failed", rb.Trigger, rb.Restored, rb.Conflicts, rb.Failed)
		}
		for _, oc := range s.Occurrences {
			hs.Occurrences = append(hs.Occurrences, htmlOccurrence{At: oc.ScheduledAt.Format(time.RFC3339), Status: string(oc.Status),
				Counts: fmt.Sprintf("%d succeeded, %d failed, %d no-op", oc.Succeeded, oc.Failed, oc.Noop)})
		}
		m.Steps = append(m.Steps, hs)
		m.Changed += s.Summary.Succeeded
		for _, d := range s.Devices {
			out, class, why := outcome(d), "", ""
			if out == outcomeFailed {
				class, why = FailureClass(d), deviceFailure(d)
				if byClass[class] == nil {
					byClass[class] = map[string]bool{}
				}
				byClass[class][s.Name] = true
				counts[class]++
			}
			rows = append(rows, []any{i, d.DeviceID, out, class, why})
		}
	}
	m.Devices = len(rows)
	for _, c := range plan.AbortClasses {
		if counts[c] == 0 {
			continue
		}
		m.Classes = append(m.Classes, c)
		m.Failures = append(m.Failures, htmlFailure{Class: c, Count: counts[c], Steps: strings.Join(slices.Sorted(maps.Keys(byClass[c])), ", ")})
	}
	steps := make([]string, len(rep.Steps))
	for i, s := range rep.Steps {
		steps[i] = s.Name
	}
	if rows == nil {
		rows = [][]any{}
	}
	// json.Marshal escapes <, > and &, so the data cannot end the script.
	data, _ := json.Marshal(map[string]any{"steps": steps, "devices": rows})
	m.Data = template.JS(data)
	m.Timeline = template.HTML(rep.timelineSVG())
	if !o.Now.IsZero() {
		m.Written = o.Now.UTC().Format(time.RFC3339)
	}
	return m
}

// outcomeBar is a step's devices as the summary counts them, in its
// order: succeeded, failed by class, no-op, skipped.
func outcomeBar(s Summary) []htmlSegment {
	total := s.Matched
	if n := s.Succeeded + s.Failed + s.Noop + s.Skipped; n > total {
		total = n
	}
	seg := func(class, label string, n int) htmlSegment {
		p := 0.0
		if total > 0 {
			p = 100 * float64(n) / float64(total)
		}
		return htmlSegment{Class: class, Label: label, N: n, Percent: p}
	}
	bar := []htmlSegment{seg(htmlSucceeded, "succeeded", s.Succeeded)}
	for _, c := range plan.AbortClasses {
		if n := s.FailedByClass[c]; n > 0 {
			bar = append(bar, seg(htmlFailed+" "+c, "failed ("+c+")", n))
		}
	}
	return append(bar, seg(htmlNoop, "no-op", s.Noop), seg(htmlSkipped, "skipped", s.Skipped))
}

// htmlDiffs is a twin step's predicted change, path by path.
func htmlDiffs(s *StepReport) []htmlDiff {
	pv := s.Preview
	if pv == nil {
		return nil
	}
	var out []htmlDiff
	for _, d := range pv.TwinDiff {
		to := jsonText(d.To)
		for _, f := range d.From {
			from := jsonText(f.Value)
			if f.Value == "undefined" {
				from = "(unset)"
			}
			out = append(out, htmlDiff{Path: d.Path, From: from, To: to, Devices: fmt.Sprint(f.Count)})
		}
		if d.Comply > 0 {
			out = append(out, htmlDiff{Path: d.Path, From: "already " + to, To: to, Devices: fmt.Sprintf("%d (no change)", d.Comply)})
		}
	}
	return out
}

// jsonText is a value as JSON text.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
