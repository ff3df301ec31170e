package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/plan"
)

// ApplyVirtual runs p as ApplyUntil does (as Apply when until is zero) on
// a virtual clock, r.Clock, which it moves from timer to timer whenever
// the run and everything it drives wait (clock.Virtual.RunUntil), and
// returns once the run has ended: how a dry-run plays a plan's days in
// seconds. An error of the clock (nothing scheduled while the run waits,
// ctx ended) ends the run, and only the error is returned: a report of a
// run cut short would read as a result.
func (r *Runner) ApplyVirtual(ctx context.Context, p *plan.Plan, until time.Time) (*Report, error) {
	vclk, ok := r.Clock.(*clock.Virtual)
	if !ok {
		return nil, errors.New("runner: ApplyVirtual needs a *clock.Virtual as the Runner's Clock")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	var rep *Report
	var err error
	go func() {
		defer close(done)
		if until.IsZero() {
			rep, err = r.Apply(ctx, p)
		} else {
			rep, err = r.ApplyUntil(ctx, p, until)
		}
	}()
	if cerr := vclk.RunUntil(ctx, done); cerr != nil {
		cancel()
		<-done
		return nil, fmt.Errorf("virtual time: %w", cerr)
	}
	return rep, err
}
