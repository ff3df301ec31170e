package runner_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/runner"
)

// nightFleet is two devices that answer sync.
const nightFleet = `
version: 1
groups:
  - ids: "n-{n}"
    count: 2
    tags: {ring: night}
    methods:
      sync: {status: 200}
`

// TestWatchWeek plays a week of a nightly cron step in virtual time. Each
// run lasts 25 hours (a rollout pause), so with concurrency forbid every
// other night's occurrence finds the last one running and is skipped; a
// night the clock jumps past by more than the startingDeadline is missed;
// stopping the watch cancels the run in progress. Every occurrence gets
// its report.
func TestWatchWeek(t *testing.T) {
	mon := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) // a Monday
	day := 24 * time.Hour
	clk := clock.NewVirtual(mon)
	h := newFleetHub(t, clk, nightFleet)
	p := parse(t, header+`  - name: nightly
    query: "tags.ring = 'night'"
    method: {name: sync}
    cron: {schedule: "0 2 * * *", concurrency: forbid, startingDeadline: 10m}
    rollout: {batches: [1, 2], pause: 25h}
`)
	reports := make(chan *runner.Report, 20)
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- (&runner.Runner{Hub: h, Clock: clk}).Watch(ctx, p, func(r *runner.Report) { reports <- r })
	}()
	// Generous: CI runs it under -race beside other packages' tests.
	deadline, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	advance := func(at time.Duration) {
		t.Helper()
		if err := clk.WaitTimer(deadline, mon.Add(at)); err != nil {
			t.Fatalf("nothing waits for %v after Monday 00:00: %v", at, err)
		}
		clk.AdvanceTo(mon.Add(at))
	}
	expect := func(status string, scheduled time.Duration, reason string) {
		t.Helper()
		select {
		case r := <-reports:
			checkSchema(t, r)
			if r.Status != status || r.Occurrence == nil || !r.Occurrence.ScheduledAt.Equal(mon.Add(scheduled)) ||
				!strings.Contains(r.Error, reason) {
				t.Fatalf("report %s %q for %+v; want %s for %v containing %q", r.Status, r.Error, r.Occurrence, status, mon.Add(scheduled), reason)
			}
		case <-deadline.Done():
			t.Fatalf("no report %s for %v", status, mon.Add(scheduled))
		}
	}
	at2 := func(d int) time.Duration { return time.Duration(d)*day + 2*time.Hour }
	at3 := func(d int) time.Duration { return time.Duration(d)*day + 3*time.Hour }
	for _, d := range []int{0, 2, 4} { // Monday, Wednesday, Friday run
		advance(at2(d)) // the run starts: its first batch, then a 25 h pause
		// Once the pause is armed, the first batch is done: only then may
		// the clock move on.
		if err := clk.WaitTimer(deadline, mon.Add(at3(d+1))); err != nil {
			t.Fatalf("run of day %d: no pause: %v", d, err)
		}
		advance(at2(d + 1)) // the next night finds it running
		expect(runner.StatusSkipped, at2(d+1), "concurrency: forbid")
		advance(at3(d + 1)) // the second batch, and the run ends
		expect(runner.StatusSucceeded, at2(d), "")
	}
	// Saturday's occurrence ran above (Friday's run skipped it); on Sunday
	// the clock jumps to 02:30, past the 10 minute startingDeadline.
	if err := clk.WaitTimer(deadline, mon.Add(at2(6))); err != nil {
		t.Fatal(err)
	}
	clk.JumpTo(mon.Add(at2(6) + 30*time.Minute))
	expect(runner.StatusSkipped, at2(6), "startingDeadline")
	// The next Monday's run starts; stopping the watch cancels it.
	advance(at2(7))
	if err := clk.WaitTimer(deadline, mon.Add(at3(8))); err != nil { // the run is in its pause
		t.Fatalf("the next Monday's run: no pause: %v", err)
	}
	stop()
	expect(runner.StatusCancelled, at2(7), "")
	if err := <-done; err == nil {
		t.Error("Watch returned nil after its context ended")
	}
}

// TestWatchReplace: with concurrency replace, an occurrence due while the
// last still runs cancels it (its report says cancelled) and runs.
func TestWatchReplace(t *testing.T) {
	mon := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(mon)
	h := newFleetHub(t, clk, nightFleet)
	p := parse(t, header+`  - name: nightly
    query: "tags.ring = 'night'"
    method: {name: sync}
    cron: {schedule: "0 2 * * *", concurrency: replace}
    rollout: {batches: [1, 2], pause: 25h}
`)
	reports := make(chan *runner.Report, 10)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	go (&runner.Runner{Hub: h, Clock: clk}).Watch(ctx, p, func(r *runner.Report) { reports <- r })
	deadline, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	wait := func(at time.Time) {
		t.Helper()
		if err := clk.WaitTimer(deadline, at); err != nil {
			t.Fatalf("nothing waits for %v: %v", at, err)
		}
	}
	mon2, tue2 := mon.Add(2*time.Hour), mon.Add(26*time.Hour)
	wait(mon2)
	clk.AdvanceTo(mon2)
	wait(mon.Add(27 * time.Hour)) // Monday's run is in its pause
	wait(tue2)
	clk.AdvanceTo(tue2)
	select {
	case r := <-reports:
		checkSchema(t, r)
		if r.Status != runner.StatusCancelled || !r.Occurrence.ScheduledAt.Equal(mon2) {
			t.Fatalf("report %s for %+v, want Monday's run cancelled", r.Status, r.Occurrence)
		}
	case <-deadline.Done():
		t.Fatal("Monday's run was not replaced")
	}
	// Tuesday's run is the one going on now: in its own pause.
	wait(tue2.Add(25 * time.Hour))
}
