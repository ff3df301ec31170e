package clock

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Virtual is a discrete-event Clock for dry runs and tests: its time stands
// still until AdvanceTo or AdvanceNext moves it, and timers fire only then,
// in time order (timers due at the same instant fire in creation order).
// It is safe for concurrent use.
//
// Timers with a duration ≤ 0 fire at once, as package time's do, so code
// that waits on them does not depend on someone advancing the clock.
type Virtual struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers timerHeap
	armed  chan struct{} // closed and replaced whenever a timer is armed
}

var _ Clock = (*Virtual)(nil)

// NewVirtual returns a Virtual clock reading start.
func NewVirtual(start time.Time) *Virtual { return &Virtual{now: start, armed: make(chan struct{})} }

// Now returns the clock's current time.
func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.now
}

// Since returns Now().Sub(t).
func (v *Virtual) Since(t time.Time) time.Duration { return v.Now().Sub(t) }

// NewTimer returns a timer whose channel (buffered, capacity 1) receives
// the virtual time once the clock reaches Now()+d.
func (v *Virtual) NewTimer(d time.Duration) Timer {
	t := &vtimer{v: v, c: make(chan time.Time, 1), index: -1}
	t.Reset(d)
	return t
}

// AfterFunc calls f in its own goroutine once the clock reaches Now()+d.
func (v *Virtual) AfterFunc(d time.Duration, f func()) Timer {
	t := &vtimer{v: v, f: f, index: -1}
	t.Reset(d)
	return t
}

// afterFuncSync is AfterFunc for the clock's own short, non-blocking
// callbacks (context cancellation): f runs synchronously inside the
// AdvanceTo that fires it, so its effect is visible when AdvanceTo returns.
func (v *Virtual) afterFuncSync(d time.Duration, f func()) *vtimer {
	t := &vtimer{v: v, f: f, sync: true, index: -1}
	t.Reset(d)
	return t
}

// Peek returns the time of the earliest pending timer; ok is false when no
// timer is pending.
func (v *Virtual) Peek() (t time.Time, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.timers) == 0 {
		return time.Time{}, false
	}
	return v.timers[0].when, true
}

// WaitTimer waits until a timer due at exactly t is pending, or ctx ends.
// A test driving code that sleeps on the clock waits for the sleep it
// expects before it moves the clock, without polling.
func (v *Virtual) WaitTimer(ctx context.Context, t time.Time) error {
	for {
		v.mu.Lock()
		for _, tm := range v.timers {
			if tm.when.Equal(t) {
				v.mu.Unlock()
				return nil
			}
		}
		armed := v.armed
		v.mu.Unlock()
		select {
		case <-armed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// AdvanceTo moves the clock to t, firing in time order every timer due at
// or before t; while a timer fires, Now reads that timer's time. Timers
// that fired timers create are fired too if they are due by t. Moving to a
// time before Now fires nothing and leaves the clock where it is.
func (v *Virtual) AdvanceTo(t time.Time) {
	for {
		v.mu.Lock()
		if len(v.timers) == 0 || v.timers[0].when.After(t) {
			if t.After(v.now) {
				v.now = t
			}
			v.mu.Unlock()
			return
		}
		tm := heap.Pop(&v.timers).(*vtimer)
		if tm.when.After(v.now) {
			v.now = tm.when
		}
		run := tm.fireLocked(v.now)
		v.mu.Unlock()
		if run != nil {
			run()
		}
	}
}

// JumpTo sets the clock to t at once and then fires every timer due by t,
// each seeing Now() = t: time passed while nothing ran, as after a
// suspended machine or a stopped process. AdvanceTo, by contrast, lets
// each timer fire at its own time.
func (v *Virtual) JumpTo(t time.Time) {
	v.mu.Lock()
	if t.After(v.now) {
		v.now = t
	}
	v.mu.Unlock()
	v.AdvanceTo(t)
}

// Advance moves the clock forward by d; see AdvanceTo.
func (v *Virtual) Advance(d time.Duration) { v.AdvanceTo(v.Now().Add(d)) }

// AdvanceNext moves the clock to the earliest pending timer and fires every
// timer due then. It returns the new time, or false when no timer was
// pending (and the clock did not move).
func (v *Virtual) AdvanceNext() (time.Time, bool) {
	t, ok := v.Peek()
	if !ok {
		return time.Time{}, false
	}
	v.AdvanceTo(t)
	return t, true
}

// vtimer is a timer of a Virtual clock: a channel timer (c set), an
// AfterFunc timer (f set), or an internal synchronous callback (sync).
type vtimer struct {
	v     *Virtual
	c     chan time.Time
	f     func()
	sync  bool
	when  time.Time
	seq   uint64
	index int // position in v.timers; -1 when not pending
}

func (t *vtimer) C() <-chan time.Time { return t.c }

// Stop prevents the timer from firing and reports whether it was pending.
// Like package time since Go 1.23, no stale value is received from C after
// Stop returns.
func (t *vtimer) Stop() bool {
	t.v.mu.Lock()
	defer t.v.mu.Unlock()
	return t.stopLocked()
}

// Reset re-arms the timer to fire at Now()+d and reports whether it was
// pending; a value not yet received from C is discarded.
func (t *vtimer) Reset(d time.Duration) bool {
	v := t.v
	v.mu.Lock()
	active := t.stopLocked()
	v.seq++
	t.when, t.seq = v.now.Add(d), v.seq
	var run func()
	if d <= 0 {
		run = t.fireLocked(v.now)
	} else {
		heap.Push(&v.timers, t)
		if v.armed != nil {
			close(v.armed)
		}
		v.armed = make(chan struct{})
	}
	v.mu.Unlock()
	if run != nil {
		run()
	}
	return active
}

func (t *vtimer) stopLocked() bool {
	active := t.index >= 0
	if active {
		heap.Remove(&t.v.timers, t.index)
	}
	if t.c != nil {
		select {
		case <-t.c:
		default:
		}
	}
	return active
}

// fireLocked delivers the timer (already off the heap) and returns what
// must run after the clock's lock is released, if anything.
func (t *vtimer) fireLocked(now time.Time) func() {
	switch {
	case t.c != nil:
		select {
		case t.c <- now:
		default: // the previous value was not received; like time.Timer, drop
		}
		return nil
	case t.sync:
		return t.f
	default:
		f := t.f
		return func() { go f() }
	}
}

// timerHeap orders pending timers by time, then by creation (seq).
type timerHeap []*vtimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].when.Equal(h[j].when) {
		return h[i].when.Before(h[j].when)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*vtimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
