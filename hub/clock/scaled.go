package clock

import (
	"context"
	"sync"
	"time"
)

// Scaled returns a real clock that reads origin now and then runs factor
// times as fast as the wall clock: time moves by itself, timers are the
// runtime's, nothing waits for anyone to be idle. It lets a test run a plan
// live — real goroutines, real network, real timers — at a time of day
// it chooses (factor 1), or with its hour-long pauses in minutes.
func Scaled(origin time.Time, factor float64) *ScaledClock {
	if factor <= 0 {
		factor = 1
	}
	return &ScaledClock{origin: origin, start: time.Now(), factor: factor}
}

// ScaledClock is the Clock of Scaled.
type ScaledClock struct {
	mu            sync.Mutex
	origin, start time.Time
	factor        float64
}

// Set makes the clock read t now and run on from there, as setting a
// machine's clock does: timers already set fire when they would have.
func (s *ScaledClock) Set(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.origin, s.start = t, time.Now()
}

type scaled = ScaledClock

// wall is how long clock duration d lasts on the wall clock.
func (s *scaled) wall(d time.Duration) time.Duration { return time.Duration(float64(d) / s.factor) }

func (s *scaled) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.origin.Add(time.Duration(float64(time.Since(s.start)) * s.factor))
}

func (s *scaled) Since(t time.Time) time.Duration { return s.Now().Sub(t) }

func (s *scaled) NewTimer(d time.Duration) Timer {
	c := make(chan time.Time, 1)
	t := time.AfterFunc(s.wall(d), func() {
		select {
		case c <- s.Now():
		default:
		}
	})
	return scaledTimer{s, t, c}
}

func (s *scaled) AfterFunc(d time.Duration, f func()) Timer {
	return scaledTimer{s, time.AfterFunc(s.wall(d), f), nil}
}

func (s *scaled) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.wall(d))
}

func (s *scaled) WithDeadline(ctx context.Context, t time.Time) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.wall(t.Sub(s.Now())))
}

type scaledTimer struct {
	s *scaled
	t *time.Timer
	c chan time.Time
}

func (t scaledTimer) C() <-chan time.Time        { return t.c }
func (t scaledTimer) Stop() bool                 { return t.t.Stop() }
func (t scaledTimer) Reset(d time.Duration) bool { return t.t.Reset(t.s.wall(d)) }
