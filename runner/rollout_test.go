package runner_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
)

// rolloutFleet is ../testdata/reboot-fleet.yaml: 90 devices that answer
// reboot with 200 and 10 that answer 500, spread among them in id order.
var rolloutFleet = func() string {
	b, err := os.ReadFile("../testdata/reboot-fleet.yaml")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

// TestAbortStopsThePlan: with 10% of the devices failing, abort at 5%
// after 50 devices stops the step after its first job and skips the step
// after it; the report says why.
func TestAbortStopsThePlan(t *testing.T) {
	h := newFleetHub(t, clock.Real(), rolloutFleet)
	p := parse(t, header+`  - name: reboot
    query: "tags.ring = 'broad'"
    method: {name: reboot}
    abort: {failureRate: 5%, minExecuted: 50}
  - name: after-reboot
    query: "tags.ring = 'broad'"
    twin: {desired: {rebooted: true}}
`)
	r := &runner.Runner{Hub: h, Clock: clock.Real()}
	rep, err := r.Apply(t.Context(), p)
	checkSchema(t, rep)
	var failed *runner.StepFailedError
	if !errors.As(err, &failed) || rep.Status != runner.StatusFailed {
		t.Fatalf("Apply: %v, report %s; want the plan failed", err, rep.Status)
	}
	s := rep.Steps[0]
	if s.Status != runner.StepAborted || s.Abort == nil || !s.Abort.Tripped || !strings.Contains(s.Reason, "abort") {
		t.Fatalf("step: status %s reason %q abort %+v", s.Status, s.Reason, s.Abort)
	}
	// The first job holds the first 50 devices (minExecuted): 4 of them
	// fail, 8% > 5%, so nothing after it runs.
	if s.Abort.Executed != 50 || s.Abort.Failed != 4 || len(s.Devices) != 50 || len(s.JobIDs) != 1 {
		t.Errorf("executed %d failed %d devices %d jobs %d; want 50, 4, 50, 1", s.Abort.Executed, s.Abort.Failed, len(s.Devices), len(s.JobIDs))
	}
	if next := rep.Steps[1]; next.Status != runner.StepSkipped || !strings.Contains(next.Reason, "aborted at step reboot") || len(next.JobIDs) != 0 {
		t.Errorf("later step: %s %q jobs %v", next.Status, next.Reason, next.JobIDs)
	}
}

// TestAbortNotTripped: under the threshold the step runs every device in
// jobs of about 5% after the first minExecuted.
func TestAbortNotTripped(t *testing.T) {
	h := newFleetHub(t, clock.Real(), rolloutFleet)
	p := parse(t, header+`  - name: reboot
    query: "tags.ring = 'broad'"
    method: {name: reboot}
    abort: {failureRate: 20%, minExecuted: 50}
    success: {minSuccessRate: 85%}
`)
	rep, err := (&runner.Runner{Hub: h, Clock: clock.Real()}).Apply(t.Context(), p)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	checkSchema(t, rep)
	s := rep.Steps[0]
	// 50, then 10 per job: 6 jobs.
	if s.Status != runner.StepCompleted || s.Abort.Tripped || len(s.Devices) != 100 || len(s.JobIDs) != 6 ||
		s.DeviceJobStatistics.DeviceCount != 100 || s.Success == nil || !s.Success.Met {
		t.Fatalf("step %s %q: %d devices in %d jobs, abort %+v, success %+v", s.Status, s.Reason, len(s.Devices), len(s.JobIDs), s.Abort, s.Success)
	}
}

// TestRolloutBatches: cumulative batches of 10%, 50% and 100% run as
// their own jobs, the pause between them on the runner's clock.
func TestRolloutBatches(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := newFleetHub(t, clk, rolloutFleet)
	p := parse(t, header+`  - name: wave
    query: "tags.ring = 'broad'"
    method: {name: reboot}
    rollout: {batches: ["10%", "50%", "100%"], pause: 10m}
    success: {minSuccessRate: 0%}
`)
	r := &runner.Runner{Hub: h, Clock: clk}
	done := applying(t, r, p)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// The jobs run at the clock's current time, which stands still until
	// the pause: each pause is a timer 10 minutes after the batch before.
	for i, at := range []time.Time{t0.Add(10 * time.Minute), t0.Add(20 * time.Minute)} {
		if err := clk.WaitTimer(ctx, at); err != nil {
			t.Fatalf("pause %d never began: %v", i+1, err)
		}
		clk.AdvanceTo(at)
	}
	rep := awaitReport(t, ctx, done)
	s := rep.Steps[0]
	if rep.Status != runner.StatusSucceeded || len(s.Batches) != 3 || len(s.Devices) != 100 {
		t.Fatalf("report %s, step %s %q, %d batches, %d devices", rep.Status, s.Status, s.Reason, len(s.Batches), len(s.Devices))
	}
	var sizes, targets []int
	var starts []time.Time
	for _, b := range s.Batches {
		sizes, targets = append(sizes, b.Devices), append(targets, b.Target)
		starts = append(starts, *b.StartTime)
	}
	if !slices.Equal(targets, []int{10, 50, 100}) || !slices.Equal(sizes, []int{10, 40, 50}) {
		t.Errorf("batches: targets %v sizes %v, want 10, 50, 100 and 10, 40, 50", targets, sizes)
	}
	if !starts[0].Equal(t0) || !starts[1].Equal(t0.Add(10*time.Minute)) || !starts[2].Equal(t0.Add(20*time.Minute)) {
		t.Errorf("batch starts %v, want 10 minutes apart from %v", starts, t0)
	}
	// Every device ran exactly once, in id order batch after batch.
	seen := map[string]bool{}
	for _, d := range s.Devices {
		if seen[d.DeviceID] {
			t.Errorf("device %s ran twice", d.DeviceID)
		}
		seen[d.DeviceID] = true
	}
}

// TestIndependentStepsRunTogether: a step with after: [] does not wait for
// the one before it; a step after both waits for both.
func TestIndependentStepsRunTogether(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := newFleetHub(t, clk, rolloutFleet)
	p := parse(t, header+`  - name: later
    query: "deviceId = 'dev-001'"
    method: {name: reboot}
    start: +1h
  - name: now
    after: []
    query: "deviceId = 'dev-002'"
    method: {name: reboot}
  - name: last
    after: [later, now]
    query: "deviceId = 'dev-003'"
    method: {name: reboot}
`)
	finished := make(chan string, 3)
	done := applying(t, &runner.Runner{Hub: h, Clock: clk, Observer: finishObserver(finished)}, p)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// "now" ends while "later" waits for its start time; only then may the
	// clock move (it would otherwise pass "now"'s deadline).
	select {
	case name := <-finished:
		if name != "now" {
			t.Fatalf("step %s ended first, want now", name)
		}
	case <-ctx.Done():
		t.Fatal("step now did not end while later waited")
	}
	if err := clk.WaitTimer(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatalf("step later never waited for its start: %v", err)
	}
	clk.AdvanceTo(t0.Add(time.Hour))
	rep := awaitReport(t, ctx, done)
	later, now, last := rep.Steps[0], rep.Steps[1], rep.Steps[2]
	if rep.Status != runner.StatusSucceeded || now.EndTime == nil || !now.EndTime.Equal(t0) ||
		!later.StartTime.Equal(t0.Add(time.Hour)) || last.StartTime.Before(*later.EndTime) {
		t.Fatalf("report %s: later %v–%v, now %v–%v, last %v", rep.Status, later.StartTime, later.EndTime, now.StartTime, now.EndTime, last.StartTime)
	}
}

// finishObserver sends the name of every step that ends.
type finishObserver chan string

func (finishObserver) StepStarted(*plan.Step, string)      {}
func (finishObserver) JobChanged(*plan.Step, *hub.Job)     {}
func (o finishObserver) StepFinished(s *runner.StepReport) { o <- s.Name }
func (finishObserver) Finish(*runner.Report) error         { return nil }

// TestAbortClassesAndCount: only the counted failure classes trip an
// abort; failures: N trips at the Nth.
func TestAbortClassesAndCount(t *testing.T) {
	run := func(abort string) *runner.StepReport {
		t.Helper()
		h := newFleetHub(t, clock.Real(), rolloutFleet)
		p := parse(t, header+`  - name: reboot
    query: "tags.ring = 'broad'"
    method: {name: reboot}
    abort: `+abort+`
    success: {minSuccessRate: 0%}
`)
		rep, _ := (&runner.Runner{Hub: h, Clock: clock.Real()}).Apply(t.Context(), p)
		checkSchema(t, rep)
		return rep.Steps[0]
	}
	// The fleet's failures answer 500: class failed, not offline.
	if s := run("{failures: 3, on: [offline], minExecuted: 1}"); s.Abort.Tripped || len(s.Devices) != 100 || s.Abort.Failed != 0 {
		t.Errorf("offline only: tripped %v after %d devices, %d counted", s.Abort.Tripped, len(s.Devices), s.Abort.Failed)
	}
	s := run("{failures: 3, on: [failed], minExecuted: 1}")
	if !s.Abort.Tripped || s.Abort.Failed != 3 || len(s.Devices) >= 100 || s.Status != runner.StepAborted {
		t.Errorf("failures 3: %s tripped %v, %d failed of %d", s.Status, s.Abort.Tripped, s.Abort.Failed, len(s.Devices))
	}
}

// cancelFirstJob cancels the first hub job the runner creates, as an
// operator would with iotjobs jobs cancel.
type cancelFirstJob struct {
	finishObserver
	h    hub.Client
	once sync.Once
}

func (o *cancelFirstJob) StepStarted(_ *plan.Step, id string) {
	o.once.Do(func() {
		go o.h.CancelJob(context.Background(), id)
	})
}

// TestCancelledBatchEndsTheStep: a batch's job cancelled on the hub ends
// the step cancelled; the next batch never starts, and the devices not
// started count as skipped.
func TestCancelledBatchEndsTheStep(t *testing.T) {
	h := newFleetHub(t, clock.Real(), `
version: 1
groups:
  - ids: "d-{n:02}"
    count: 20
    tags: {ring: r}
    methods:
      reboot: {status: 200, latency: 1m}
`)
	p := parse(t, header+`  - name: reboot
    query: "tags.ring = 'r'"
    method: {name: reboot}
    rollout: {batches: [50%, 100%]}
`)
	obs := &cancelFirstJob{finishObserver: make(finishObserver, 10), h: h}
	rep, err := (&runner.Runner{Hub: h, Clock: clock.Real(), Observer: obs}).Apply(t.Context(), p)
	var failed *runner.StepFailedError
	if !errors.As(err, &failed) {
		t.Fatalf("Apply: %v, want the step failed", err)
	}
	checkSchema(t, rep)
	s := rep.Steps[0]
	if s.Status != runner.StepCancelled || len(s.Batches) != 1 || len(s.JobIDs) != 1 || s.Summary.Skipped < 10 || s.Summary.Matched != 20 {
		t.Errorf("step %s (%s): %d batches, %d jobs, %s; want cancelled after the first batch", s.Status, s.Reason, len(s.Batches), len(s.JobIDs), s.Summary)
	}
}
