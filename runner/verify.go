package runner

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan"
)

// RetryReport is one retry round of a step.
type RetryReport struct {
	Attempt int      `json:"attempt"`
	Devices int      `json:"devices"`
	JobIDs  []string `json:"jobIds"`
}

// retry runs the failed devices of the retried classes among
// sr.Devices[from:] (a batch's) again, as new jobs over them, up to the
// attempts allowed, waiting the backoff before each round; a device's
// latest result replaces its earlier one.
func (r *Runner) retry(ctx context.Context, p *plan.Plan, s *plan.Step, sr *StepReport, from int) error {
	rt := s.Retry
	for attempt := 1; attempt <= rt.Attempts; attempt++ {
		at := map[string]int{}
		var ids []string
		for i := from; i < len(sr.Devices); i++ {
			if d := sr.Devices[i]; !d.Succeeded && slices.Contains(rt.On, FailureClass(d)) {
				at[d.DeviceID] = i
				ids = append(ids, d.DeviceID)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		r.phase(s, sr, Progress{Phase: PhaseRetrying, Round: attempt, Rounds: rt.Attempts, Until: r.Clock.Now().Add(rt.Backoff)})
		if err := r.sleepUntil(ctx, r.Clock.Now().Add(rt.Backoff)); err != nil {
			return r.interrupted(sr, "", err)
		}
		round := RetryReport{Attempt: attempt, Devices: len(ids), JobIDs: []string{}}
		for len(ids) > 0 {
			group := take(ids, 0)
			ids = ids[len(group):]
			res := &StepReport{}
			_, err := r.runJob(ctx, p, s, inCondition(group), r.Clock.Now(), res)
			sr.JobIDs = append(sr.JobIDs, res.JobIDs...)
			round.JobIDs = append(round.JobIDs, res.JobIDs...)
			if err != nil {
				sr.Retries = append(sr.Retries, round)
				return err
			}
			for _, d := range res.Devices {
				if i, ok := at[d.DeviceID]; ok {
					sr.Devices[i] = d
				}
			}
		}
		sr.Retries = append(sr.Retries, round)
	}
	return nil
}

// verify waits, up to the step's verify timeout, for the devices at idx
// in sr.Devices that succeeded so far to satisfy the verify condition,
// asking the hub every twentieth of the timeout (1 to 30 s); devices that
// never do fail with VerifyTimeout (the verify class). nil idx means
// every device. Without verify it does nothing.
func (w *wave) verify(ctx context.Context, idx []int) error {
	r, s, sr := w.r, w.s, w.sr
	v := s.Verify
	if v == nil {
		return nil
	}
	if idx == nil {
		idx = indexes(0, len(sr.Devices))
	}
	deadline := r.Clock.Now().Add(v.Timeout)
	interval := min(max(v.Timeout/20, time.Second), 30*time.Second)
	waiting := map[string]int{}
	var order []string
	for _, i := range idx {
		if d := sr.Devices[i]; d.Succeeded {
			waiting[d.DeviceID] = i
			order = append(order, d.DeviceID)
		}
	}
	toVerify := len(waiting)
	for len(waiting) > 0 {
		r.phase(s, sr, Progress{Phase: PhaseVerifying, Verified: toVerify - len(waiting), ToVerify: toVerify, Until: deadline})
		var ids []string
		for _, id := range order {
			if _, ok := waiting[id]; ok {
				ids = append(ids, id)
			}
		}
		for len(ids) > 0 {
			group := take(ids, 0)
			ids = ids[len(group):]
			ok, err := r.devicesOf(ctx, "("+v.Query+") AND "+inCondition(group))
			if err != nil {
				return fmt.Errorf("step %s: verify: %w", s.Name, err)
			}
			for _, id := range ok {
				if i, found := waiting[id]; found {
					t := true
					sr.Devices[i].Verified = &t
					delete(waiting, id)
				}
			}
		}
		if len(waiting) == 0 || !r.Clock.Now().Before(deadline) {
			break
		}
		next := r.Clock.Now().Add(interval)
		if next.After(deadline) {
			next = deadline
		}
		if err := r.sleepUntil(ctx, next); err != nil {
			return r.interrupted(sr, "", err)
		}
	}
	for _, i := range waiting {
		f := false
		d := &sr.Devices[i]
		d.Verified, d.Succeeded = &f, false
		d.Error = &hub.DeviceJobError{Code: CodeVerifyTimeout,
			Description: fmt.Sprintf("the twin did not satisfy %q within %s", v.Query, v.Timeout)}
	}
	return nil
}
