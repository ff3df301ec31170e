package clock

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fired returns the indexes of timers whose channel holds a value, checking
// that the value is the time the timer was due.
func fired(t *testing.T, timers []Timer, due []time.Time) []int {
	t.Helper()
	var got []int
	for i, tm := range timers {
		select {
		case at := <-tm.C():
			if !at.Equal(due[i]) {
				t.Errorf("timer %d fired with %v, want its due time %v", i, at, due[i])
			}
			got = append(got, i)
		default:
		}
	}
	return got
}

func TestVirtualOrdering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delays []time.Duration
		steps  [][]int // timers fired by each AdvanceNext
	}{
		{"distinct", []time.Duration{3 * time.Second, time.Second, 2 * time.Second}, [][]int{{1}, {2}, {0}}},
		{"ties fire together", []time.Duration{2 * time.Second, time.Second, time.Second, 2 * time.Second}, [][]int{{1, 2}, {0, 3}}},
		{"single", []time.Duration{time.Hour}, [][]int{{0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVirtual(t0)
			var timers []Timer
			var due []time.Time
			for _, d := range tc.delays {
				timers = append(timers, v.NewTimer(d))
				due = append(due, t0.Add(d))
			}
			if got := fired(t, timers, due); len(got) != 0 {
				t.Fatalf("timers %v fired before the clock moved", got)
			}
			for i, want := range tc.steps {
				now, ok := v.AdvanceNext()
				if !ok {
					t.Fatalf("step %d: nothing pending", i)
				}
				if !now.Equal(due[want[0]]) || !v.Now().Equal(now) {
					t.Fatalf("step %d: AdvanceNext = %v, Now = %v, want %v", i, now, v.Now(), due[want[0]])
				}
				if got := fired(t, timers, due); !slices.Equal(got, want) {
					t.Fatalf("step %d: fired %v, want %v", i, got, want)
				}
			}
			if _, ok := v.AdvanceNext(); ok {
				t.Fatal("AdvanceNext reported a timer after all fired")
			}
			if _, ok := v.Peek(); ok {
				t.Fatal("Peek reported a timer after all fired")
			}
		})
	}
}

func TestVirtualAdvanceTo(t *testing.T) {
	v := NewVirtual(t0)
	a, b, c := v.NewTimer(time.Second), v.NewTimer(2*time.Second), v.NewTimer(time.Minute)
	if p, ok := v.Peek(); !ok || !p.Equal(t0.Add(time.Second)) {
		t.Fatalf("Peek = %v, %v", p, ok)
	}
	v.AdvanceTo(t0.Add(30 * time.Second))
	if !v.Now().Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("Now = %v", v.Now())
	}
	got := fired(t, []Timer{a, b, c}, []time.Time{t0.Add(time.Second), t0.Add(2 * time.Second), t0.Add(time.Minute)})
	if !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("fired %v, want [0 1]", got)
	}
	v.AdvanceTo(t0) // backwards: ignored
	if !v.Now().Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("AdvanceTo moved the clock backwards to %v", v.Now())
	}
	if v.Since(t0) != 30*time.Second {
		t.Fatalf("Since = %v", v.Since(t0))
	}
	v.Advance(30 * time.Second)
	if got := fired(t, []Timer{c}, []time.Time{t0.Add(time.Minute)}); len(got) != 1 {
		t.Fatal("timer due exactly at the target time did not fire")
	}
}

// TestVirtualChainedTimers checks that a timer armed while AdvanceTo runs
// fires in the same call when due, at its own time, never skipped over.
func TestVirtualChainedTimers(t *testing.T) {
	v := NewVirtual(t0)
	var mu sync.Mutex
	var seen []time.Time
	var tick func()
	tick = func() {
		mu.Lock()
		seen = append(seen, v.Now())
		mu.Unlock()
		v.afterFuncSync(time.Second, tick)
	}
	v.afterFuncSync(time.Second, tick)
	v.AdvanceTo(t0.Add(3*time.Second + time.Millisecond))
	want := []time.Time{t0.Add(time.Second), t0.Add(2 * time.Second), t0.Add(3 * time.Second)}
	if !slices.EqualFunc(seen, want, time.Time.Equal) {
		t.Fatalf("ticks at %v, want %v", seen, want)
	}
}

func TestVirtualStopReset(t *testing.T) {
	v := NewVirtual(t0)
	tm := v.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer = false")
	}
	if tm.Stop() {
		t.Fatal("second Stop = true")
	}
	v.Advance(time.Hour)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}

	if tm.Reset(time.Second) {
		t.Fatal("Reset of a stopped timer = true")
	}
	if !tm.Reset(2 * time.Second) {
		t.Fatal("Reset of a pending timer = false")
	}
	v.Advance(time.Second)
	select {
	case <-tm.C():
		t.Fatal("timer fired at its old time after Reset")
	default:
	}
	v.Advance(time.Second)
	select {
	case at := <-tm.C():
		if !at.Equal(t0.Add(time.Hour + 2*time.Second)) {
			t.Fatalf("fired with %v", at)
		}
	default:
		t.Fatal("reset timer did not fire")
	}

	// A fired but unreceived value is discarded by Stop and Reset, as with
	// package time since Go 1.23.
	tm.Reset(time.Second)
	v.Advance(time.Second)
	if tm.Stop() {
		t.Fatal("Stop after firing = true")
	}
	select {
	case <-tm.C():
		t.Fatal("stale value received after Stop")
	default:
	}
}

func TestVirtualNonPositiveDuration(t *testing.T) {
	v := NewVirtual(t0)
	for _, d := range []time.Duration{0, -time.Second} {
		tm := v.NewTimer(d)
		select {
		case at := <-tm.C():
			if !at.Equal(t0) {
				t.Fatalf("fired with %v", at)
			}
		default:
			t.Fatalf("NewTimer(%v) did not fire at once", d)
		}
	}
	done := make(chan struct{})
	v.AfterFunc(0, func() { close(done) })
	waitClosed(t, done)
}

func TestVirtualAfterFunc(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		v := NewVirtual(t0)
		var mu sync.Mutex
		var calls []string
		record := func(s string) func() {
			return func() { mu.Lock(); calls = append(calls, s); mu.Unlock() }
		}
		v.AfterFunc(2*time.Second, record("b"))
		v.AfterFunc(time.Second, record("a"))
		stopped := v.AfterFunc(time.Second, record("never"))
		if stopped.C() != nil {
			t.Error("AfterFunc timer has a channel")
		}
		if !stopped.Stop() {
			t.Fatal("Stop of pending AfterFunc = false")
		}
		v.AdvanceNext()
		synctest.Wait()
		v.AdvanceNext()
		synctest.Wait()
		if !slices.Equal(calls, []string{"a", "b"}) {
			t.Fatalf("calls %v, want [a b]", calls)
		}
	})
}

func TestVirtualConcurrent(t *testing.T) {
	v := NewVirtual(t0)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				tm := v.NewTimer(time.Duration(i*100+j) * time.Millisecond)
				if j%3 == 0 {
					tm.Stop()
				}
				v.AfterFunc(time.Millisecond, func() {})
				v.Peek()
			}
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			v.Advance(10 * time.Millisecond)
		}
	}()
	wg.Wait()
	v.AdvanceTo(t0.Add(time.Hour))
	if _, ok := v.Peek(); ok {
		t.Fatal("timers left after advancing past all of them")
	}
}

func waitClosed(t *testing.T, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting")
	}
}

func TestVirtualWithTimeout(t *testing.T) {
	v := NewVirtual(t0)
	ctx, cancel := v.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	if d, ok := ctx.Deadline(); !ok || !d.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("Deadline = %v, %v", d, ok)
	}
	v.Advance(9 * time.Second)
	if ctx.Err() != nil {
		t.Fatalf("Err before the deadline = %v", ctx.Err())
	}
	v.Advance(time.Second)
	select {
	case <-ctx.Done():
	default:
		t.Fatal("not done when the clock reached the deadline")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || ctx.Err() != context.DeadlineExceeded {
		t.Fatalf("Err = %v", ctx.Err())
	}
	if c := context.Cause(ctx); c != context.DeadlineExceeded {
		t.Fatalf("Cause = %v", c)
	}
	waitClosed(t, child.Done())
	if child.Err() != context.DeadlineExceeded {
		t.Fatalf("child Err = %v", child.Err())
	}
}

func TestVirtualWithDeadlineCancel(t *testing.T) {
	for _, tc := range []struct {
		name      string
		run       func(v *Virtual, parentCancel context.CancelCauseFunc, cancel context.CancelFunc)
		deadline  time.Duration
		wantErr   error
		wantCause error
	}{
		{"cancel", func(_ *Virtual, _ context.CancelCauseFunc, cancel context.CancelFunc) { cancel() },
			time.Minute, context.Canceled, context.Canceled},
		{"parent cancelled", func(_ *Virtual, pc context.CancelCauseFunc, _ context.CancelFunc) { pc(errBoom) },
			time.Minute, context.Canceled, errBoom},
		{"deadline already past", func(*Virtual, context.CancelCauseFunc, context.CancelFunc) {},
			-time.Second, context.DeadlineExceeded, context.DeadlineExceeded},
		{"deadline now", func(*Virtual, context.CancelCauseFunc, context.CancelFunc) {},
			0, context.DeadlineExceeded, context.DeadlineExceeded},
		{"cancel after deadline keeps DeadlineExceeded", func(v *Virtual, _ context.CancelCauseFunc, cancel context.CancelFunc) {
			v.Advance(time.Minute)
			cancel()
		}, time.Minute, context.DeadlineExceeded, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVirtual(t0)
			parent, parentCancel := context.WithCancelCause(context.Background())
			defer parentCancel(nil)
			ctx, cancel := v.WithDeadline(parent, t0.Add(tc.deadline))
			defer cancel()
			tc.run(v, parentCancel, cancel)
			waitClosed(t, ctx.Done())
			if ctx.Err() != tc.wantErr {
				t.Fatalf("Err = %v, want %v", ctx.Err(), tc.wantErr)
			}
			if c := context.Cause(ctx); c != tc.wantCause {
				t.Fatalf("Cause = %v, want %v", c, tc.wantCause)
			}
			if _, ok := v.Peek(); ok {
				t.Fatal("deadline timer still pending after the context ended")
			}
		})
	}
}

var errBoom = errors.New("boom")

func TestVirtualWithDeadlineParent(t *testing.T) {
	v := NewVirtual(t0)
	type key struct{}
	parentDeadline := t0.Add(time.Second)
	parent, cancelParent := v.WithDeadline(context.WithValue(context.Background(), key{}, "v"), parentDeadline)
	defer cancelParent()
	ctx, cancel := v.WithTimeout(parent, time.Hour)
	defer cancel()
	if d, _ := ctx.Deadline(); !d.Equal(parentDeadline) {
		t.Fatalf("Deadline = %v, want the parent's earlier %v", d, parentDeadline)
	}
	if ctx.Value(key{}) != "v" {
		t.Fatal("Value not inherited from the parent")
	}
	v.AdvanceNext()
	waitClosed(t, ctx.Done())
	if ctx.Err() != context.DeadlineExceeded {
		t.Fatalf("Err = %v", ctx.Err())
	}

	done, stop := context.WithCancel(context.Background())
	stop()
	ctx2, cancel2 := v.WithTimeout(done, time.Hour)
	defer cancel2()
	if ctx2.Err() != context.Canceled {
		t.Fatalf("context of a done parent: Err = %v", ctx2.Err())
	}
}

func TestVirtualWaitTimer(t *testing.T) {
	v := NewVirtual(t0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	other := v.NewTimer(time.Hour) // pending, but not the one waited for
	defer other.Stop()
	armed := make(chan *Timer, 1)
	go func() {
		tm := v.NewTimer(10 * time.Minute)
		armed <- &tm
	}()
	if err := v.WaitTimer(ctx, t0.Add(10*time.Minute)); err != nil {
		t.Fatalf("WaitTimer: %v", err)
	}
	tm := <-armed
	v.AdvanceTo(t0.Add(10 * time.Minute))
	if got := <-(*tm).C(); !got.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("timer fired at %v", got)
	}
	// A timer that is never armed: WaitTimer ends with the context.
	short, stop := context.WithCancel(context.Background())
	stop()
	if err := v.WaitTimer(short, t0.Add(time.Minute)); err == nil {
		t.Fatal("WaitTimer for a timer never armed returned nil")
	}
}

func TestVirtualJumpTo(t *testing.T) {
	v := NewVirtual(t0)
	a, b := v.NewTimer(time.Minute), v.NewTimer(time.Hour)
	later := v.NewTimer(3 * time.Hour)
	defer later.Stop()
	v.JumpTo(t0.Add(2 * time.Hour))
	// Both due timers fire, each seeing the time after the jump.
	for i, tm := range []Timer{a, b} {
		select {
		case at := <-tm.C():
			if !at.Equal(t0.Add(2 * time.Hour)) {
				t.Errorf("timer %d fired with %v, want the jump's time", i, at)
			}
		default:
			t.Errorf("timer %d did not fire", i)
		}
	}
	select {
	case <-later.C():
		t.Error("a timer due after the jump fired")
	default:
	}
	if !v.Now().Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("now %v", v.Now())
	}
}

func TestRunUntil(t *testing.T) {
	// A process that handles signals has a goroutine in a system call for
	// good; it must not count as busy.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)
	v := NewVirtual(t0)
	done := make(chan struct{})
	var got []time.Time
	go func() {
		defer close(done)
		// Work at each instant, then sleep on the clock: three hops.
		for range 3 {
			tm := v.NewTimer(time.Hour)
			got = append(got, <-tm.C())
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.RunUntil(ctx, done); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[2].Equal(t0.Add(3*time.Hour)) {
		t.Errorf("woke at %v", got)
	}
	// Nothing pending and never done: stuck, not a hang.
	if err := v.RunUntil(ctx, make(chan struct{})); !errors.Is(err, ErrStuck) {
		t.Errorf("RunUntil with nothing to do: %v, want ErrStuck", err)
	}
}
