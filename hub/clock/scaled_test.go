package clock_test

import (
	"context"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/clock"
)

// TestScaled: the clock starts at its origin and its timers and deadlines
// fire in its own time, factor times sooner on the wall clock.
func TestScaled(t *testing.T) {
	origin := time.Date(2026, 11, 27, 0, 29, 0, 0, time.UTC)
	c := clock.Scaled(origin, 600) // a minute is 100 ms
	if now := c.Now(); now.Before(origin) || now.After(origin.Add(time.Minute)) {
		t.Fatalf("Now %v, want about %v", now, origin)
	}
	start := time.Now()
	tm := c.NewTimer(time.Minute)
	at := <-tm.C()
	if wall := time.Since(start); wall < 90*time.Millisecond {
		t.Errorf("a clock minute took %v on the wall, want about 100ms", wall)
	}
	if at.Before(origin.Add(time.Minute)) {
		t.Errorf("timer fired at %v, before %v", at, origin.Add(time.Minute))
	}
	ctx, cancel := c.WithDeadline(context.Background(), c.Now().Add(30*time.Second))
	defer cancel()
	<-ctx.Done()
	if c.Now().Before(at.Add(30 * time.Second)) {
		t.Errorf("deadline passed at %v, before %v", c.Now(), at.Add(30*time.Second))
	}
	if tm.Reset(time.Minute); tm.Stop() != true {
		t.Error("Stop of a re-armed timer: false")
	}
}
