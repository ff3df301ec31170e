package runner

import (
	"context"
	"slices"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/iotjobs/iotjobs/plan"
)

// ApplyUntil runs p as Apply does and, when p has cron steps that occur
// before until, as Watch does up to until instead: every occurrence
// runs. The report is then the first run of each step, with each cron
// step (and each step after one) listing all its runs in Occurrences; it
// fails when any run fails. The dry-run plays a plan's week this way.
func (r *Runner) ApplyUntil(ctx context.Context, p *plan.Plan, until time.Time) (*Report, error) {
	if !occursBefore(p, r.Clock.Now(), until) {
		return r.Apply(ctx, p)
	}
	started := r.Clock.Now().UTC()
	var reps []*Report
	err := r.WatchUntil(ctx, p, until, func(rep *Report) { reps = append(reps, rep) })
	if err != nil {
		return nil, err
	}
	// The run without cron first, then occurrences in schedule order.
	slices.SortStableFunc(reps, func(a, b *Report) int {
		switch {
		case a.Occurrence == nil && b.Occurrence == nil:
			return 0
		case a.Occurrence == nil:
			return -1
		case b.Occurrence == nil:
			return 1
		}
		return a.Occurrence.ScheduledAt.Compare(b.Occurrence.ScheduledAt)
	})
	out := &Report{ReportVersion: ReportVersion, Plan: PlanRef{Name: p.Name, File: p.File, SHA256: p.SHA256},
		Hub: hubName(r.HubName), StartedAt: started, FinishedAt: r.Clock.Now().UTC(), Steps: []*StepReport{}}
	first := map[string]*StepReport{}
	for _, rep := range reps {
		for _, sr := range rep.Steps {
			if first[sr.Name] == nil {
				first[sr.Name] = sr
			}
			if rep.Occurrence != nil {
				f := first[sr.Name]
				f.Occurrences = append(f.Occurrences, sr.Outcome(rep.Occurrence.ScheduledAt))
			}
		}
		if rep.Status == StatusError && out.Error == "" {
			out.Error = rep.Error
		}
	}
	var failed []string
	for _, s := range p.Steps {
		sr := first[s.Name]
		if sr == nil {
			failed = append(failed, s.Name) // it never ran
			continue
		}
		out.Steps = append(out.Steps, sr)
		if sr.Failed() {
			failed = append(failed, s.Name)
		}
	}
	if len(failed) > 0 {
		out.Status = StatusFailed
		return out, &StepFailedError{Steps: failed}
	}
	out.Status = StatusSucceeded
	return out, nil
}

// FailedSteps names the report's steps that did not succeed
// (StepReport.Failed), in order: what the exit code, apply's dry-run gate
// and --watch call a failed plan.
func (r *Report) FailedSteps() []string {
	var failed []string
	for _, s := range r.Steps {
		if s.Failed() {
			failed = append(failed, s.Name)
		}
	}
	return failed
}

// Failed reports whether the step did not succeed: its (first) run, or
// one of its occurrences that ran.
func (sr *StepReport) Failed() bool {
	return sr.Status != StepCompleted || slices.ContainsFunc(sr.Occurrences, func(o OccurrenceOutcome) bool {
		return o.Status != StepCompleted && o.Status != StepSkipped
	})
}

// occursBefore reports whether p has cron steps and every one of them
// occurs between now and until.
func occursBefore(p *plan.Plan, now, until time.Time) bool {
	n := 0
	for _, s := range p.Steps {
		if s.Cron == "" {
			continue
		}
		sched, err := cron.ParseStandard(s.Cron)
		if err != nil || sched.Next(now.In(s.CronPolicy.Location())).After(until) {
			return false
		}
		n++
	}
	return n > 0
}
