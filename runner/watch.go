package runner

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/iotjobs/iotjobs/plan"
)

// OccurrenceReport says which occurrence of a cron step a report is of.
type OccurrenceReport struct {
	Step        string    `json:"step"`
	ScheduledAt time.Time `json:"scheduledAt"`
}

// StatusSkipped is the status of a report of an occurrence that did not
// run: its overlap policy forbade it, or it was missed.
const StatusSkipped = "skipped"

// Watch runs a plan with cron steps until ctx ends (apply --watch). The
// steps that neither have a cron schedule nor come after a cron step run
// once, first, as Apply runs them. Then every occurrence of each cron step
// runs that step, followed by the steps after it, as a run of its own with
// a report of its own, given to emit when it ends (emit may be called
// from several goroutines at once, never concurrently). An occurrence
// follows its step's policy: with forbid, one due while the previous
// still runs is skipped; with replace, the previous is cancelled; with
// allow, both run. An occurrence that cannot start within its
// startingDeadline, or that a later one overtook while the runner could
// not start it (the process was stopped, the clock jumped), is missed;
// skipped and missed occurrences get a report too, with status skipped.
func (r *Runner) Watch(ctx context.Context, p *plan.Plan, emit func(*Report)) error {
	return r.WatchUntil(ctx, p, time.Time{}, emit)
}

// WatchUntil is Watch that starts no occurrence scheduled after until
// (zero: no end) and then returns, once the occurrences it started have
// ended: the dry-run plays a plan's week this way.
func (r *Runner) WatchUntil(ctx context.Context, p *plan.Plan, until time.Time, emit func(*Report)) error {
	var mu sync.Mutex
	report := func(rep *Report) {
		mu.Lock()
		defer mu.Unlock()
		emit(rep)
	}
	var crons []*plan.Step
	for _, s := range p.Steps {
		if s.Cron != "" {
			crons = append(crons, s)
		}
	}
	if len(crons) == 0 {
		return fmt.Errorf("plan %s has no cron step to watch; run it without --watch", p.Name)
	}
	if once := subPlan(p, nil); len(once.Steps) > 0 {
		rep, err := r.Apply(ctx, once)
		if rep != nil {
			report(rep)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_ = err // a failed step is in the report; watching goes on
	}
	var states []*cronState
	now := r.Clock.Now()
	for _, s := range crons {
		sched, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return fmt.Errorf("step %s: cron %q: %w", s.Name, s.Cron, err)
		}
		states = append(states, &cronState{step: s, sched: sched, loc: s.CronPolicy.Location(), sub: subPlan(p, s), last: now})
	}
	var wg sync.WaitGroup
	defer func() {
		for _, st := range states {
			if st.running != nil {
				st.running.cancel()
			}
		}
		wg.Wait()
	}()
	for {
		next := time.Time{}
		for _, st := range states {
			if t := st.next(st.last); next.IsZero() || t.Before(next) {
				next = t
			}
		}
		if !until.IsZero() && next.After(until) {
			for _, st := range states {
				if st.running != nil {
					select {
					case <-st.running.done:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			return nil
		}
		if err := r.sleepUntil(ctx, next); err != nil {
			return err
		}
		now := r.Clock.Now()
		for _, st := range states {
			var due []time.Time
			for t := st.next(st.last); !t.After(now); t = st.next(t) {
				due = append(due, t)
			}
			if len(due) == 0 {
				continue
			}
			st.last = due[len(due)-1]
			for _, t := range due[:len(due)-1] {
				report(r.skippedReport(st.sub, st.step, t, fmt.Sprintf("missed: the occurrence at %s was overtaken by a later one before it could start", t.Format(time.RFC3339))))
			}
			t := due[len(due)-1]
			if dl := st.step.CronPolicy.StartingDeadline; dl > 0 && now.Sub(t) > dl {
				report(r.skippedReport(st.sub, st.step, t, fmt.Sprintf("missed: it could not start within its startingDeadline of %s (it was %s late)", dl, now.Sub(t))))
				continue
			}
			if st.running != nil && !st.running.ended() {
				switch st.step.CronPolicy.Concurrency {
				case plan.AllowOverlap:
				case plan.ReplaceOverlap:
					st.running.cancel()
					<-st.running.done
				default:
					report(r.skippedReport(st.sub, st.step, t, fmt.Sprintf("skipped: the occurrence at %s is still running (concurrency: forbid)", st.running.at.Format(time.RFC3339))))
					continue
				}
			}
			occ := &occurrence{at: t, done: make(chan struct{})}
			octx, cancel := context.WithCancel(ctx)
			occ.cancel = cancel
			st.running = occ
			wg.Add(1)
			go func(sub *plan.Plan, step string) {
				defer wg.Done()
				rep, _ := r.Apply(octx, atTime(sub, t))
				// Ended before it is reported: whoever reads the report
				// and moves on must not find it still running (forbid
				// would skip the next occurrence).
				cancel()
				close(occ.done)
				if rep != nil {
					rep.Occurrence = &OccurrenceReport{Step: step, ScheduledAt: t.UTC()}
					report(rep)
				}
			}(st.sub, st.step.Name)
		}
	}
}

// occurrence is a run of a cron step in progress.
type occurrence struct {
	at     time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

func (o *occurrence) ended() bool {
	select {
	case <-o.done:
		return true
	default:
		return false
	}
}

// cronState is what Watch keeps of one cron step.
type cronState struct {
	step    *plan.Step
	sched   cron.Schedule
	loc     *time.Location
	sub     *plan.Plan
	last    time.Time // the last occurrence handled
	running *occurrence
}

// next is the step's first occurrence after t, read in its time zone.
func (st *cronState) next(t time.Time) time.Time { return st.sched.Next(t.In(st.loc)) }

// subPlan is the part of p one run of Watch executes: for cron step c,
// c and the steps without cron that come after it (directly or not); for
// nil, the steps without cron that come after no cron step.
func subPlan(p *plan.Plan, c *plan.Step) *plan.Plan {
	afterCron := map[string]string{} // step → the cron step it comes after
	for _, s := range p.Order() {
		if s.Cron != "" {
			afterCron[s.Name] = s.Name
			continue
		}
		for _, a := range s.After {
			if root, ok := afterCron[a]; ok {
				afterCron[s.Name] = root
			}
		}
	}
	sub := *p
	sub.Steps = nil
	for _, s := range p.Steps {
		root, has := afterCron[s.Name]
		switch {
		case c == nil && !has:
		case c != nil && has && root == c.Name:
		default:
			continue
		}
		cp := *s
		cp.After = slices.DeleteFunc(slices.Clone(s.After), func(a string) bool {
			_, keep := afterCron[a]
			return (c == nil) == keep // keep only edges inside the sub-plan
		})
		sub.Steps = append(sub.Steps, &cp)
	}
	return &sub
}

// atTime is sub with its cron step starting at t instead of at its next
// occurrence.
func atTime(sub *plan.Plan, t time.Time) *plan.Plan {
	out := *sub
	out.Steps = make([]*plan.Step, len(sub.Steps))
	for i, s := range sub.Steps {
		cp := *s
		if cp.Cron != "" {
			cp.Cron = ""
			cp.Start = plan.Start{At: t}
		}
		out.Steps[i] = &cp
	}
	return &out
}

// skippedReport is the report of an occurrence that did not run.
func (r *Runner) skippedReport(sub *plan.Plan, step *plan.Step, at time.Time, reason string) *Report {
	now := r.Clock.Now().UTC()
	rep := &Report{
		ReportVersion: ReportVersion,
		Plan:          PlanRef{Name: sub.Name, File: sub.File, SHA256: sub.SHA256},
		Hub:           hubName(r.HubName),
		Status:        StatusSkipped,
		Error:         reason,
		StartedAt:     now,
		FinishedAt:    now,
		Steps:         []*StepReport{},
		Occurrence:    &OccurrenceReport{Step: step.Name, ScheduledAt: at.UTC()},
	}
	for _, s := range sub.Steps {
		rep.Steps = append(rep.Steps, &StepReport{Name: s.Name, Type: string(jobType(s)), QueryCondition: s.Query,
			JobIDs: []string{}, Devices: []DeviceResult{}, Status: StepSkipped, Reason: reason})
	}
	return rep
}
