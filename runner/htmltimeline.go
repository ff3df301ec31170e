package runner

import (
	"fmt"
	"html"
	"strings"
	"time"
)

// The timeline: one row per step (per occurrence for a watch's steps),
// on one time axis. A row shows the step's span, its batches, the waits
// between them (pauses, verify, bake), cumulative succeeded and failed
// devices at each batch's end, analysis verdicts, an abort and a
// rollback.

const (
	tlWidth  = 960
	tlLabel  = 190 // the step names' column
	tlRight  = 20
	tlRow    = 46
	tlTop    = 28 // the axis
	tlMinDur = time.Second
)

type tlScale struct {
	t0, t1 time.Time
}

func (s tlScale) x(t time.Time) float64 {
	span := s.t1.Sub(s.t0)
	f := float64(t.Sub(s.t0)) / float64(span)
	f = min(max(f, 0), 1)
	return tlLabel + f*float64(tlWidth-tlLabel-tlRight)
}

// span is the report's time range: its start and end, widened to every
// step, batch, analysis and rollback time it holds.
func (rep *Report) span() (time.Time, time.Time) {
	var t0, t1 time.Time
	see := func(t *time.Time) {
		if t == nil || t.IsZero() {
			return
		}
		if t0.IsZero() || t.Before(t0) {
			t0 = *t
		}
		if t1.IsZero() || t.After(t1) {
			t1 = *t
		}
	}
	see(&rep.StartedAt)
	see(&rep.FinishedAt)
	for _, s := range rep.Steps {
		see(s.StartTime)
		see(s.EndTime)
		for i := range s.Batches {
			see(s.Batches[i].StartTime)
			see(s.Batches[i].EndTime)
		}
		for i := range s.Analysis {
			see(&s.Analysis[i].At)
		}
		if rb := s.Rollback; rb != nil {
			see(rb.StartTime)
			see(rb.EndTime)
		}
		if pv := s.Preview; pv != nil {
			for i := range pv.Timeline.Batches {
				see(&pv.Timeline.Batches[i].Start)
			}
		}
	}
	if t1.Sub(t0) < tlMinDur {
		t1 = t0.Add(tlMinDur)
	}
	return t0, t1
}

func (rep *Report) timelineSVG() string {
	t0, t1 := rep.span()
	sc := tlScale{t0, t1}
	rows := 0
	for _, s := range rep.Steps {
		rows += 1 + len(s.Occurrences)
	}
	height := tlTop + tlRow*max(1, rows) + 8
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img" aria-label="timeline of the run">`, tlWidth, height)
	// The axis: five ticks with their times.
	for i := 0; i <= 4; i++ {
		t := t0.Add(t1.Sub(t0) * time.Duration(i) / 4)
		x := sc.x(t)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<line class="tick" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`, x, tlTop-6, x, height-4)
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%d" text-anchor="%s">%s</text>`, x, tlTop-10, anchor, esc(axisTime(t, t0, t1)))
	}
	y := tlTop
	for _, s := range rep.Steps {
		rep.timelineRow(&b, sc, s, y)
		y += tlRow
		// A cron step's occurrences, a row each.
		for _, oc := range s.Occurrences {
			occurrenceRow(&b, sc, s.Name, oc, y)
			y += tlRow
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func axisTime(t, t0, t1 time.Time) string {
	if t1.Sub(t0) > 24*time.Hour || t0.YearDay() != t1.YearDay() {
		return t.UTC().Format("Jan 2 15:04 UTC")
	}
	return t.UTC().Format("15:04:05 UTC")
}

func esc(s string) string { return html.EscapeString(s) }

// timelineRow draws one step at height y.
func (rep *Report) timelineRow(b *strings.Builder, sc tlScale, s *StepReport, y int) {
	mid := y + tlRow/2
	fmt.Fprintf(b, `<g class="timeline-step" data-step="%s" data-status="%s">`, esc(s.Name), esc(string(s.Status)))
	fmt.Fprintf(b, `<text class="label" x="4" y="%d">%s</text>`, mid-2, esc(truncate(s.Name, 26)))
	fmt.Fprintf(b, `<text class="sublabel status-%s" x="4" y="%d">%s</text>`, esc(string(s.Status)), mid+12, esc(string(s.Status)))
	fmt.Fprintf(b, `<line class="lane" x1="%d" y1="%d" x2="%d" y2="%d"/>`, tlLabel, mid, tlWidth-tlRight, mid)
	if s.StartTime == nil {
		// A planned step of a dry-run without times, or one skipped.
		if pv := s.Preview; pv != nil {
			for k, pb := range pv.Timeline.Batches {
				fmt.Fprintf(b, `<circle class="planned" cx="%.1f" cy="%d" r="4"><title>batch %d planned at %s: %d devices</title></circle>`,
					sc.x(pb.Start), mid, k+1, esc(pb.Start.UTC().Format(time.RFC3339)), pb.Devices)
			}
		}
		b.WriteString(`</g>`)
		return
	}
	end := rep.FinishedAt
	if s.EndTime != nil {
		end = *s.EndTime
	}
	x0, x1 := sc.x(*s.StartTime), sc.x(end)
	fmt.Fprintf(b, `<rect class="span status-%s" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s: %s — %s</title></rect>`,
		esc(string(s.Status)), x0, y+8, max(x1-x0, 1), tlRow-16, esc(s.Name), esc(string(s.Status)), esc(s.Summary.String()))
	// Batches and the waits between them.
	var prevEnd *time.Time = s.StartTime
	done, failed, matched := 0, 0, max(1, s.Summary.Matched)
	type point struct{ x, ok, bad float64 }
	points := []point{{x0, 0, 0}}
	for k, bt := range s.Batches {
		if bt.StartTime == nil {
			continue
		}
		if prevEnd != nil && bt.StartTime.Sub(*prevEnd) > 0 {
			what := "waiting (pause, verify or bake)"
			if k == 0 {
				what = "waiting for its start or window"
			}
			fmt.Fprintf(b, `<rect class="wait" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s: %s</title></rect>`,
				sc.x(*prevEnd), y+14, max(sc.x(*bt.StartTime)-sc.x(*prevEnd), 1), tlRow-28, what, esc(humanDuration(bt.StartTime.Sub(*prevEnd))))
		}
		bEnd := end
		if bt.EndTime != nil {
			bEnd = *bt.EndTime
		}
		bx0, bx1 := sc.x(*bt.StartTime), sc.x(bEnd)
		fmt.Fprintf(b, `<rect class="batch" x="%.1f" y="%d" width="%.1f" height="%d"><title>batch %d: %d devices (to %d), %s – %s</title></rect>`,
			bx0, y+10, max(bx1-bx0, 1.5), tlRow-20, k+1, bt.Devices, bt.Target, esc(bt.StartTime.UTC().Format("15:04:05")), esc(bEnd.UTC().Format("15:04:05")))
		// Cumulative results of the devices up to this batch.
		for _, d := range s.Devices[min(done, len(s.Devices)):min(bt.Target, len(s.Devices))] {
			if !d.Succeeded {
				failed++
			}
		}
		done = min(bt.Target, len(s.Devices))
		points = append(points, point{bx1, float64(done - failed), float64(failed)})
		prevEnd = &bEnd
	}
	if len(s.Batches) == 0 {
		ok := s.Summary.Succeeded + s.Summary.Noop
		points = append(points, point{x1, float64(ok), float64(s.Summary.Failed)})
	}
	// Cumulative succeeded and failed, scaled to the row.
	for _, line := range []struct {
		class string
		v     func(p point) float64
	}{{"cum-ok", func(p point) float64 { return p.ok }}, {"cum-failed", func(p point) float64 { return p.bad }}} {
		var pts []string
		for _, p := range points {
			yy := float64(y+tlRow-6) - line.v(p)/float64(matched)*float64(tlRow-12)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", p.x, yy))
		}
		fmt.Fprintf(b, `<polyline class="%s" points="%s"/>`, line.class, strings.Join(pts, " "))
	}
	for _, a := range s.Analysis {
		class := "analysis pass"
		if !a.Pass {
			class = "analysis fail"
		}
		x := sc.x(a.At)
		fmt.Fprintf(b, `<path class="%s" d="M%.1f %d l5 5 l-5 5 l-5 -5 z"><title>analysis of batch %d: %d of %d passed — %s</title></path>`,
			class, x, mid-5, a.Batch, a.Passed, a.Devices, esc(a.Reason))
	}
	if s.Status == StepAborted {
		fmt.Fprintf(b, `<text class="abort" x="%.1f" y="%d" text-anchor="middle">✕<title>aborted: %s</title></text>`, x1, mid+5, esc(s.Reason))
	}
	if rb := s.Rollback; rb != nil && rb.StartTime != nil {
		rEnd := end
		if rb.EndTime != nil {
			rEnd = *rb.EndTime
		}
		fmt.Fprintf(b, `<rect class="rollback" x="%.1f" y="%d" width="%.1f" height="6"><title>rollback (%s): %d restored, %d conflicts, %d failed</title></rect>`,
			sc.x(*rb.StartTime), y+tlRow-10, max(sc.x(rEnd)-sc.x(*rb.StartTime), 2), esc(rb.Trigger), rb.Restored, rb.Conflicts, rb.Failed)
	}
	b.WriteString(`</g>`)
}

// occurrenceRow draws one occurrence of a cron step at height y.
func occurrenceRow(b *strings.Builder, sc tlScale, step string, oc OccurrenceOutcome, y int) {
	mid := y + tlRow/2
	fmt.Fprintf(b, `<g class="timeline-occurrence" data-step="%s" data-status="%s">`, esc(step), esc(string(oc.Status)))
	fmt.Fprintf(b, `<text class="sublabel" x="14" y="%d">↳ %s</text>`, mid+4, esc(oc.ScheduledAt.UTC().Format("Jan 2 15:04 UTC")))
	fmt.Fprintf(b, `<line class="lane" x1="%d" y1="%d" x2="%d" y2="%d"/>`, tlLabel, mid, tlWidth-tlRight, mid)
	start, end := oc.ScheduledAt, oc.ScheduledAt
	if oc.StartTime != nil {
		start = *oc.StartTime
	}
	if oc.EndTime != nil {
		end = *oc.EndTime
	}
	x0, x1 := sc.x(start), sc.x(end)
	fmt.Fprintf(b, `<rect class="span status-%s" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s at %s: %s — %d succeeded, %d failed, %d no-op</title></rect>`,
		esc(string(oc.Status)), x0, y+10, max(x1-x0, 3), tlRow-20, esc(step), esc(oc.ScheduledAt.UTC().Format(time.RFC3339)), esc(string(oc.Status)), oc.Succeeded, oc.Failed, oc.Noop)
	b.WriteString(`</g>`)
}

func truncate(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
