package runner

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan"
)

// DefaultMarkdownLimit is the size a dry-run's Markdown stays within by
// default: GitHub refuses comments over 65,536 characters, and the
// headroom leaves a CI step room to add a line of its own.
const DefaultMarkdownLimit = 65000

// DefaultLargeStep is the number of matched devices from which a step
// without abort thresholds or rollout batches is a risk worth a
// reviewer's eye.
const DefaultLargeStep = 100

// MarkdownOptions tune [Report.WriteMarkdown].
type MarkdownOptions struct {
	// Limit is the most bytes the comment may have (bytes are never fewer
	// than characters); 0 is DefaultMarkdownLimit.
	Limit int
	// Title is the verdict line's subject; "" is "iotjobs plan `NAME`".
	Title string
	// LargeStep is DefaultLargeStep when 0.
	LargeStep int
	// HTMLURL is where the dry-run's HTML report is (a CI artifact's
	// link); the comment links it, after the steps.
	HTMLURL string
}

// WriteMarkdown writes a dry-run report as a pull-request comment
// (GitHub-flavoured Markdown): a verdict line, a table of steps, the twin
// diff of each twin step, the timeline, the risks, and the details
// (device samples, batches, cron runs) folded in <details>, then what the
// dry-run assumed. Times are relative to what fixes them (the plan's
// start "T", a cron step's run, a window's opening), never the wall
// clock's, and job ids are left out, so that the same plan against the
// same devices gives the same bytes. When the comment would exceed the
// limit, the least important parts are dropped first (samples, then
// batches and runs, then diff rows, then timeline rows) and its last
// lines say what was left out.
func (rep *Report) WriteMarkdown(w io.Writer, o MarkdownOptions) error {
	if o.Limit <= 0 {
		o.Limit = DefaultMarkdownLimit
	}
	if o.LargeStep <= 0 {
		o.LargeStep = DefaultLargeStep
	}
	var out string
	for level := range mdLevels {
		out = rep.markdown(o, level)
		if len(out) <= o.Limit {
			break
		}
	}
	if len(out) > o.Limit {
		var omitted []string
		for _, l := range mdLevels[1:] {
			omitted = append(omitted, l.omitted)
		}
		out = mdTruncate(out, o.Limit, strings.Join(omitted, "; "))
	}
	_, err := io.WriteString(w, out)
	return err
}

// mdLevels are the renderings from the fullest to the leanest: each
// level leaves out what the one before kept, named for the comment's
// last lines.
var mdLevels = []struct {
	samples, batches   bool // the <details> of device samples, of batches and cron runs
	diffRows, timeline int  // rows per diff path and in the timeline (0: all)
	omitted            string
}{
	{true, true, 50, 0, ""},
	{false, true, 50, 0, "device samples"},
	{false, false, 50, 0, "per-batch figures and cron runs"},
	{false, false, 5, 0, "twin diff rows beyond 5 values a path"},
	{false, false, 5, 40, "timeline rows beyond 40"},
}

// markdown renders the report at one level of mdLevels.
func (rep *Report) markdown(o MarkdownOptions, level int) string {
	lv := mdLevels[level]
	var b strings.Builder
	simulated := rep.Simulation != nil && rep.Simulation.Simulated
	b.WriteString(rep.mdVerdict(o, simulated) + "\n\n")
	against := rep.Hub
	if rep.Simulation != nil {
		against = rep.Simulation.Against
	}
	fmt.Fprintf(&b, "Dry run of %s against %s. Times are from the plan's start (T+0), a cron step's run, or a window's opening.\n",
		mdCode(rep.Plan.File), mdText(against))
	if o.HTMLURL != "" {
		fmt.Fprintf(&b, "\nThe full report, with its timeline and every device: [HTML report](%s).\n", mdLinkTarget(o.HTMLURL))
	}
	a := rep.mdAnchors(simulated)

	b.WriteString("\n#### Steps\n\n")
	b.WriteString("| step | action | devices | start | rollout | predicted | succeeded | failed | no-op | duration |\n")
	b.WriteString("| --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: |\n")
	for _, s := range rep.Steps {
		b.WriteString(mdRow(rep.mdStepCells(s, a, simulated)...))
	}
	// Why a step would not succeed is the first thing a reviewer asks.
	for _, s := range rep.Steps {
		if s.Reason != "" && s.Status != StepCompleted && s.Status != StepPlanned {
			fmt.Fprintf(&b, "\n%s %s: %s\n", mdCode(s.Name), mdStatus(s.Status), mdText(s.Reason))
		}
	}

	if diffs := rep.mdDiffs(lv.diffRows); diffs != "" {
		b.WriteString("\n#### Twin changes\n" + diffs)
	}
	if tl := rep.mdTimeline(a, simulated, lv.timeline); tl != "" {
		b.WriteString("\n#### Timeline\n\n" + tl)
	}
	b.WriteString("\n#### Risks\n\n")
	if risks := rep.mdRisks(o, a, simulated); len(risks) > 0 {
		for _, r := range risks {
			b.WriteString("- " + r + "\n")
		}
	} else {
		b.WriteString("None found: no offline device, no large step without `abort` or `rollout`, no window it may miss, no rollback it cannot make.\n")
	}
	if lv.samples {
		b.WriteString(rep.mdSamples())
	}
	if lv.batches {
		b.WriteString(rep.mdBatches(a))
		b.WriteString(rep.mdRuns())
	}
	if sim := rep.Simulation; sim != nil && len(sim.Assumptions) > 0 {
		b.WriteString("\n#### What it assumed\n\n")
		for _, s := range sim.Assumptions {
			b.WriteString("- " + mdText(s) + "\n")
		}
	}
	var omitted []string
	for _, l := range mdLevels[1 : level+1] {
		omitted = append(omitted, l.omitted)
	}
	if len(omitted) > 0 {
		fmt.Fprintf(&b, "\n_Left out to stay under GitHub's comment limit: %s. `iotjobs plan --report FILE` writes everything._\n", strings.Join(omitted, "; "))
	}
	// A CI job finds its earlier comment by this marker to update it.
	fmt.Fprintf(&b, "\n<!-- iotjobs plan %s -->\n", mdComment(rep.Plan.Name))
	return b.String()
}

// mdVerdict is the first line: what the plan would touch, the predicted
// outcome and the policy result.
func (rep *Report) mdVerdict(o MarkdownOptions, simulated bool) string {
	title := o.Title
	if title == "" {
		title = "iotjobs plan " + mdCode(rep.Plan.Name)
	}
	twins, calls, cron := 0, 0, false
	upTo := false
	for _, s := range rep.Steps {
		pv := s.Preview
		if pv == nil {
			continue
		}
		cron = cron || pv.Cron != ""
		if s.Type == string(hub.JobUpdateTwin) {
			twins += pv.Matched - pv.Noop
		} else {
			calls += pv.Matched
			upTo = upTo || pv.OnlyPassed
		}
	}
	var what []string
	if calls > 0 {
		prefix := ""
		if upTo {
			prefix = "up to "
		}
		what = append(what, fmt.Sprintf("call %s%s", prefix, plural(calls, "device")))
	}
	if twins > 0 {
		what = append(what, "change "+plural(twins, "twin"))
	}
	did := "would change nothing"
	if len(what) > 0 {
		did = "would " + strings.Join(what, " and ")
	}
	if cron {
		did += " (each cron run)"
	}
	return fmt.Sprintf("**%s**: %s — predicted: %s — %s", title, did, rep.mdPrediction(simulated), rep.mdPolicy())
}

// mdPolicy is the verdict line's policy part: the policy's result (README
// "Guardrails (policy)"), or that no policy applied.
func (rep *Report) mdPolicy() string {
	if rep.Policy == nil {
		return "policy: not checked"
	}
	return "policy: " + rep.Policy.Summary()
}

// mdPrediction is the predicted outcome, with an emoji and the words that
// say the same without it.
func (rep *Report) mdPrediction(simulated bool) string {
	failed := rep.FailedSteps()
	switch {
	case !simulated && rep.Status == StatusFailed:
		return "❌ a pre-flight fails (" + mdNames(failed) + "); not simulated"
	case !simulated:
		return "⚪ not simulated (--no-simulate)"
	case rep.Status == StatusSucceeded:
		return "✅ succeeds"
	case len(failed) > 0:
		return "❌ fails (" + mdNames(failed) + ")"
	}
	return "❌ " + mdText(rep.Status)
}

func mdNames(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = mdCode(n)
	}
	return strings.Join(out, ", ")
}

// mdAnchor is what a step's times are told from: the plan's start "T",
// a cron run, a window's opening or a fixed start time.
type mdAnchor struct {
	label string
	at    time.Time
}

// rel is t told from the anchor: "T+5m30s", "run +30m".
func (a mdAnchor) rel(t time.Time) string {
	// Job times are kept to 100 ns (hub.Time), the plan's start is not:
	// milliseconds are what a reader needs and what compares equal.
	d := t.Sub(a.at).Round(time.Millisecond)
	if d == 0 {
		return a.label + "+0"
	}
	sep := " "
	if a.label == "T" {
		sep = ""
	}
	if d < 0 {
		return a.label + sep + "-" + mdDuration(-d)
	}
	return a.label + sep + "+" + mdDuration(d)
}

// mdAnchors fixes, per step, what its times are told from. A step that
// starts at its cron's run or at its window's opening is told from that
// (the wall clock decides when it is); a step after others inherits the
// anchor of the last of them to end.
func (rep *Report) mdAnchors(simulated bool) map[string]mdAnchor {
	anchors := map[string]mdAnchor{}
	ends := map[string]time.Time{}
	t := mdAnchor{label: "T", at: rep.StartedAt}
	for _, s := range rep.Steps {
		a := t
		pv := s.Preview
		start := mdStart(s, simulated)
		switch {
		case pv == nil:
		case pv.Cron != "":
			at := pv.Timeline.Start
			if len(s.Occurrences) > 0 {
				at = s.Occurrences[0].ScheduledAt
			} else if len(pv.Timeline.Occurrences) > 0 {
				at = pv.Timeline.Occurrences[0]
			}
			a = mdAnchor{label: "run", at: at}
		case pv.Window != nil && pv.Window.FromTag == "" && start != nil:
			a = mdAnchor{label: "window", at: windowOpening(pv.Window, *start)}
		case pv.StartAt != nil:
			a = mdAnchor{label: pv.StartAt.Format("2006-01-02 15:04 MST"), at: *pv.StartAt}
		case len(pv.After) > 0:
			var last time.Time
			for _, n := range pv.After {
				if e, ok := ends[n]; ok && !e.Before(last) {
					last, a = e, anchors[n]
				}
			}
		}
		anchors[s.Name] = a
		if s.EndTime != nil {
			ends[s.Name] = *s.EndTime
		}
	}
	return anchors
}

// windowOpening is the opening of a step's window that covers start (or
// the next one).
func windowOpening(pw *PreviewWindow, start time.Time) time.Time {
	w, err := newWindow(pw.Cron, time.Duration(pw.DurationSeconds)*time.Second, pw.Timezone)
	if err != nil {
		return start
	}
	_, opens := w.at(start)
	return opens
}

// mdStart is when a step starts: as simulated, or in a dry-run that only
// read the hub, the earliest its timeline allows; nil when a simulation
// did not get to it.
func mdStart(s *StepReport, simulated bool) *time.Time {
	if simulated {
		return s.StartTime
	}
	if s.Preview != nil {
		return &s.Preview.Timeline.Start
	}
	return nil
}

// mdStepCells are a step's cells in the steps table.
func (rep *Report) mdStepCells(s *StepReport, anchors map[string]mdAnchor, simulated bool) []string {
	pv := s.Preview
	if pv == nil {
		pv = &StepPreview{}
	}
	action := "patches twins"
	if s.Type == string(hub.JobDeviceMethod) {
		action = "calls " + mdCode(pv.Method)
	} else if len(pv.TwinDiff) > 0 {
		var paths []string
		for i, d := range pv.TwinDiff {
			if i == 3 {
				paths = append(paths, fmt.Sprintf("%d more", len(pv.TwinDiff)-3))
				break
			}
			paths = append(paths, mdCode(d.Path))
		}
		action = "sets " + strings.Join(paths, ", ")
	}
	devices := fmt.Sprint(pv.Matched)
	if pv.OnlyPassed {
		devices = "≤ " + devices
	}
	rollout := "all at once"
	if n := len(pv.Timeline.Batches); n > 0 {
		var sizes []string
		for _, b := range pv.Timeline.Batches {
			sizes = append(sizes, fmt.Sprint(b.Devices))
		}
		rollout = fmt.Sprintf("%d batches: %s", n, strings.Join(sizes, ", "))
	}
	if pv.Abort || s.Abort != nil {
		rollout += "; abort"
		if ab := s.Abort; ab != nil {
			if ab.Failures > 0 {
				rollout += fmt.Sprintf(" at %d failed", ab.Failures)
			} else {
				rollout += fmt.Sprintf(" over %s failed", mdPercent(ab.FailureRate))
			}
		}
	}
	predicted, succeeded, failed, noop, duration := "—", "—", "—", "—", "—"
	if simulated {
		predicted = mdStatus(s.Status)
		if n := len(s.Occurrences); n > 0 {
			predicted += fmt.Sprintf(" (first of %d runs)", n)
		}
		succeeded, noop = fmt.Sprint(s.Summary.Succeeded), fmt.Sprint(s.Summary.Noop)
		failed = fmt.Sprint(s.Summary.Failed)
		if classes := mdClasses(s.Summary.FailedByClass); classes != "" {
			failed += " (" + classes + ")"
		}
		if s.StartTime != nil && s.EndTime != nil {
			duration = mdDuration(s.EndTime.Sub(*s.StartTime))
		}
	} else if s.Status == StepFailed {
		predicted = mdStatus(s.Status) + " (pre-flight)"
	}
	return []string{mdCode(s.Name), action, devices, rep.mdStartCell(s, anchors, simulated), rollout, predicted, succeeded, failed, noop, duration}
}

// mdStartCell says when a step starts, and what decides it.
func (rep *Report) mdStartCell(s *StepReport, anchors map[string]mdAnchor, simulated bool) string {
	pv := s.Preview
	if pv == nil {
		return "—"
	}
	a := anchors[s.Name]
	start := mdStart(s, simulated)
	var parts []string
	switch {
	case pv.Cron != "":
		parts = append(parts, "cron "+mdCode(pv.Cron)+" "+mdText(pv.CronTimezone))
		if start != nil && !start.Equal(a.at) {
			parts = append(parts, "first device at "+a.rel(*start))
		}
	case pv.Window != nil && pv.Window.FromTag == "":
		parts = append(parts, "window "+mdCode(pv.Window.String()))
		if start != nil && !start.Equal(a.at) {
			parts = append(parts, a.rel(*start))
		}
	case start != nil && len(pv.After) > 0 && !simulated:
		// Only a simulation knows when the steps before it end.
		parts = append(parts, "after "+mdNames(pv.After))
	case start != nil:
		p := a.rel(*start)
		if len(pv.After) > 0 {
			p += " (after " + mdNames(pv.After) + ")"
		}
		parts = append(parts, p)
	default:
		parts = append(parts, "not reached")
	}
	if pv.Window != nil && pv.Window.FromTag != "" {
		parts = append(parts, "each device in its own window ("+mdCode(pv.Window.FromTag)+")")
	}
	return strings.Join(parts, "; ")
}

// mdDiffs is the twin diff of each twin step: per path, each current
// value and how many twins hold it, at most rows values a path.
func (rep *Report) mdDiffs(rows int) string {
	var b strings.Builder
	for _, s := range rep.Steps {
		pv := s.Preview
		if pv == nil || s.Type != string(hub.JobUpdateTwin) {
			continue
		}
		fmt.Fprintf(&b, "\n%s: %s of %s would change", mdCode(s.Name), plural(pv.Matched-pv.Noop, "twin"), fmt.Sprint(pv.Matched))
		if pv.Noop > 0 {
			fmt.Fprintf(&b, " (%d comply already)", pv.Noop)
		}
		if rb := s.Rollback; rb != nil && len(rb.On) > 0 {
			fmt.Fprintf(&b, "; on %s a rollback restores the values it replaced, etag-guarded", strings.Join(rb.On, ", "))
		}
		b.WriteString(".\n\n| path | from → to | devices |\n| --- | --- | ---: |\n")
		for _, d := range pv.TwinDiff {
			to := mdValue(d.To)
			for i, f := range d.From {
				if i == rows {
					rest := 0
					for _, f := range d.From[i:] {
						rest += f.Count
					}
					b.WriteString(mdRow(mdCode(d.Path), fmt.Sprintf("%d more values → %s", len(d.From)-i, to), fmt.Sprint(rest)))
					break
				}
				from := mdValue(f.Value)
				if f.Value == "undefined" {
					from = "_unset_"
				}
				b.WriteString(mdRow(mdCode(d.Path), from+" → "+to, fmt.Sprint(f.Count)))
			}
			if d.Comply > 0 {
				b.WriteString(mdRow(mdCode(d.Path), "already "+to, fmt.Sprintf("%d (no change)", d.Comply)))
			}
		}
	}
	return b.String()
}

// mdTimeline is when each step and batch starts and ends, at most rows
// rows (0: all).
func (rep *Report) mdTimeline(anchors map[string]mdAnchor, simulated bool, rows int) string {
	type event struct{ when, what string }
	var events []event
	for _, s := range rep.Steps {
		pv := s.Preview
		if pv == nil {
			continue
		}
		a := anchors[s.Name]
		name := mdCode(s.Name)
		if pv.Cron != "" {
			runs := len(s.Occurrences)
			if runs == 0 {
				runs = len(pv.Timeline.Occurrences)
			}
			events = append(events, event{"cron " + mdCode(pv.Cron) + " " + mdText(pv.CronTimezone),
				fmt.Sprintf("%s is due (%s in the next 7 days); the times below are from its first run", name, plural(runs, "run"))})
		}
		if pv.Window != nil && pv.Window.FromTag == "" && simulated && s.StartTime != nil {
			events = append(events, event{"window " + mdCode(pv.Window.String()), name + " waits for it to open; the times below are from its opening"})
		}
		start := mdStart(s, simulated)
		if start == nil {
			events = append(events, event{"—", name + " does not start (" + mdText(string(s.Status)) + ")"})
			continue
		}
		if !simulated {
			switch {
			case len(pv.After) > 0:
				events = append(events, event{"after " + mdNames(pv.After), name + " starts"})
			default:
				events = append(events, event{a.rel(*start), name + " starts at the earliest"})
			}
			for i, bt := range pv.Timeline.Batches {
				if len(pv.After) == 0 && pv.Cron == "" {
					events = append(events, event{a.rel(bt.Start), fmt.Sprintf("%s batch %d (%s) at the earliest", name, i+1, plural(bt.Devices, "device"))})
				}
			}
			continue
		}
		events = append(events, event{a.rel(*start), name + " starts"})
		if len(pv.Timeline.Batches) > 0 {
			for i, bt := range s.Batches {
				if bt.StartTime != nil {
					events = append(events, event{a.rel(*bt.StartTime), fmt.Sprintf("%s batch %d of %d starts (%s)", name, i+1, len(pv.Timeline.Batches), plural(bt.Devices, "device"))})
				}
			}
		}
		if s.EndTime != nil {
			events = append(events, event{a.rel(*s.EndTime), fmt.Sprintf("%s ends: %s", name, mdStatus(s.Status))})
		}
	}
	if len(events) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| when | what |\n| --- | --- |\n")
	for i, e := range events {
		if rows > 0 && i == rows {
			b.WriteString(mdRow("…", fmt.Sprintf("%d more events", len(events)-rows)))
			break
		}
		b.WriteString(mdRow(e.when, e.what))
	}
	return b.String()
}

// mdRisks are what a reviewer should look at twice, each from the report:
//   - devices the simulation found offline (DeviceNotOnline);
//   - a step over many devices with neither abort thresholds nor rollout
//     batches, which a fault reaches everywhere before anything stops it;
//   - a window it may miss: a pre-flight that fails, a step predicted to
//     end after its window closes, a cron run that would not run;
//   - a rollback it cannot make: a method step without a compensating
//     method whose calls stay made when it or a later step aborts (a twin
//     step can always be restored, by its rollback or iotjobs rollback),
//     and a simulated rollback that conflicts or fails.
func (rep *Report) mdRisks(o MarkdownOptions, anchors map[string]mdAnchor, simulated bool) []string {
	var risks []string
	canAbort := map[int]bool{} // step index → it or a later step has abort thresholds
	for i := len(rep.Steps) - 1; i >= 0; i-- {
		s := rep.Steps[i]
		canAbort[i] = canAbort[i+1] || s.Abort != nil || (s.Preview != nil && s.Preview.Abort)
	}
	for i, s := range rep.Steps {
		pv := s.Preview
		if pv == nil {
			continue
		}
		name := mdCode(s.Name)
		var offline []string
		for _, d := range s.Devices {
			if !d.Succeeded && FailureClass(d) == plan.OfflineClass {
				offline = append(offline, d.DeviceID)
			}
		}
		if len(offline) > 0 {
			slices.Sort(offline)
			risks = append(risks, fmt.Sprintf("%s: %s predicted offline (DeviceNotOnline): %s", name, plural(len(offline), "device"), mdSample(offline, 5)))
		}
		if pv.Matched >= o.LargeStep && !pv.Abort && s.Abort == nil && len(pv.Timeline.Batches) == 0 {
			risks = append(risks, fmt.Sprintf("%s acts on %d devices at once with neither `abort` nor `rollout` batches: a fault reaches all of them before anything stops it", name, pv.Matched))
		}
		if pf := pv.Preflight; pf != nil && !pf.OK {
			risks = append(risks, fmt.Sprintf("%s: the pre-flight fails: %s", name, mdText(pf.Message)))
		}
		if w := pv.Window; w != nil && w.FromTag == "" && simulated && s.StartTime != nil && s.EndTime != nil {
			closes := windowOpening(w, *s.StartTime).Add(time.Duration(w.DurationSeconds) * time.Second)
			if s.EndTime.After(closes) {
				risks = append(risks, fmt.Sprintf("%s is predicted to end at %s, after its window %s closes", name, anchors[s.Name].rel(*s.EndTime), mdCode(w.String())))
			}
		}
		missed := 0
		for _, oc := range s.Occurrences {
			if oc.Status != StepCompleted {
				missed++
			}
		}
		if missed > 0 {
			risks = append(risks, fmt.Sprintf("%s: %d of %d cron runs would not complete (the runs in the details say why)", name, missed, len(s.Occurrences)))
		}
		if s.Type == string(hub.JobDeviceMethod) && s.Rollback == nil && canAbort[i] && pv.Matched > 0 {
			who := "it"
			if !pv.Abort && s.Abort == nil {
				who = "a later step"
			}
			risks = append(risks, fmt.Sprintf("%s has no compensating method: if %s aborts, the calls made stay made (rollback cannot undo them)", name, who))
		}
		if rb := s.Rollback; rb != nil && rb.Trigger != "" && (rb.Conflicts > 0 || rb.Failed > 0) {
			risks = append(risks, fmt.Sprintf("%s: the simulated rollback (%s) restores %d devices but not %d (%d conflicts, %d failed)",
				name, mdText(rb.Trigger), rb.Restored, rb.Conflicts+rb.Failed, rb.Conflicts, rb.Failed))
		}
	}
	return risks
}

// mdSamples folds each step's sample of matched devices.
func (rep *Report) mdSamples() string {
	var b strings.Builder
	for _, s := range rep.Steps {
		if s.Preview == nil || len(s.Preview.Sample) == 0 {
			continue
		}
		sample := slices.Sorted(slices.Values(s.Preview.Sample))
		fmt.Fprintf(&b, "- %s: %s", mdText(s.Name), mdText(strings.Join(sample, ", ")))
		if more := s.Preview.Matched - len(sample); more > 0 {
			fmt.Fprintf(&b, " and %d more", more)
		}
		b.WriteString("\n")
	}
	return mdDetails("Device samples", b.String())
}

// mdBatches folds the figures of each rollout batch as simulated.
func (rep *Report) mdBatches(anchors map[string]mdAnchor) string {
	var b strings.Builder
	for _, s := range rep.Steps {
		if s.Preview == nil || len(s.Preview.Timeline.Batches) == 0 || len(s.Batches) == 0 {
			continue
		}
		a := anchors[s.Name]
		fmt.Fprintf(&b, "\n%s\n\n| batch | devices | reaches | starts | takes |\n| ---: | ---: | ---: | --- | ---: |\n", mdText(s.Name))
		for i, bt := range s.Batches {
			start, takes := "—", "—"
			if bt.StartTime != nil {
				start = a.rel(*bt.StartTime)
				if bt.EndTime != nil {
					takes = mdDuration(bt.EndTime.Sub(*bt.StartTime))
				}
			}
			b.WriteString(mdRow(fmt.Sprint(i+1), fmt.Sprint(bt.Devices), fmt.Sprint(bt.Target), start, takes))
		}
		if ab := s.Abort; ab != nil {
			fmt.Fprintf(&b, "\nAbort thresholds: %d of %d executed failed", ab.Failed, ab.Executed)
			if ab.Tripped {
				b.WriteString(", tripped")
			} else {
				b.WriteString(", not tripped")
			}
			b.WriteString(".\n")
		}
	}
	return mdDetails("Per-batch figures", b.String())
}

// mdRuns folds the simulated runs of each cron step.
func (rep *Report) mdRuns() string {
	var b strings.Builder
	for _, s := range rep.Steps {
		if len(s.Occurrences) == 0 {
			continue
		}
		first := s.Occurrences[0].ScheduledAt
		fmt.Fprintf(&b, "\n%s\n\n| run | due | predicted | succeeded | failed | no-op | ends |\n| ---: | --- | --- | ---: | ---: | ---: | --- |\n", mdText(s.Name))
		for i, oc := range s.Occurrences {
			due := mdAnchor{label: "run 1", at: first}.rel(oc.ScheduledAt)
			if i == 0 {
				due = "run 1"
			}
			ends := "—"
			if oc.EndTime != nil {
				ends = "due +" + mdDuration(oc.EndTime.Sub(oc.ScheduledAt))
			}
			status := mdStatus(oc.Status)
			if oc.Reason != "" && oc.Status != StepCompleted {
				status += ": " + mdText(oc.Reason)
			}
			b.WriteString(mdRow(fmt.Sprint(i+1), due, status, fmt.Sprint(oc.Succeeded), fmt.Sprint(oc.Failed), fmt.Sprint(oc.Noop), ends))
		}
	}
	return mdDetails("Cron runs", b.String())
}
