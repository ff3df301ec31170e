package clock

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"runtime/metrics"
	"time"
)

// ErrStuck is RunUntil's error when nothing is scheduled and the work has
// not ended: it would wait forever.
var ErrStuck = errors.New("virtual time is stuck: no timer is pending and the work has not ended")

// RunUntil moves the clock from timer to timer until done is closed: each
// time every other goroutine of the process is blocked (no work can go on
// at the current instant), it advances to the next pending timer. This is
// what lets a dry-run play days of a plan in seconds without ever moving
// time while something is still happening. It holds only while nothing in
// the process waits for the outside world to act at the current instant
// (the dry-run's hub, devices and store are all in memory).
func (v *Virtual) RunUntil(ctx context.Context, done <-chan struct{}) error {
	// The scheduler's counts are the cheap look, taken every time: while
	// they show a goroutine running or ready besides the caller, something
	// is busy. Goroutines in system calls are the exception they cannot
	// judge (a write ends by itself; os/signal's wait never does), so when
	// more of them than the known standing ones show, the goroutines are
	// walked. While work goes on the driver looks less and less often.
	l := &looker{}
	l.permanent, _ = stackQuiescent()
	// Most work at an instant is short (a device answers, the engine
	// records it), so the driver first yields, which costs no sleep's
	// wake-up latency, and sleeps only when the work goes on.
	busy, wait := 0, time.Duration(0)
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if !l.quiescent() {
			busy++
			if busy < 64 {
				runtime.Gosched()
				continue
			}
			time.Sleep(wait)
			wait = min(2*wait+20*time.Microsecond, 2*time.Millisecond)
			continue
		}
		// Quiet twice in a row: a goroutine woken between the two looks is
		// seen as runnable by the second.
		runtime.Gosched()
		if !l.quiescent() {
			continue
		}
		select {
		case <-done:
			return nil
		default:
		}
		if _, ok := v.AdvanceNext(); !ok {
			return ErrStuck
		}
		busy, wait = 0, 0
	}
}

// looker tells whether every goroutine but the caller is blocked.
type looker struct {
	permanent uint64 // goroutines that sit in a system call for good
}

func (l *looker) quiescent() bool {
	running, runnable, syscalls := schedCounts()
	if running+runnable > 1 {
		return false
	}
	if syscalls <= l.permanent {
		return true
	}
	perm, quiet := stackQuiescent()
	if quiet {
		l.permanent = perm
	}
	return quiet
}

// blockedStates are the goroutine states that wait for the program: a
// channel, a lock, a wait group; or for the world outside (I/O, a
// syscall), or the runtime's idle helpers. Anything else — running,
// runnable, and the runtime's own waits such as a GC assist (shown as
// semacquire) in the middle of work, or a system call such as a write to
// a file, which ends by itself — is busy. The goroutines that sit in a
// system call for good (os/signal's, and the CPU profiler's reader) wait
// for the world.
var blockedStates = map[string]bool{
	"chan receive": true, "chan send": true, "chan receive (nil chan)": true, "chan send (nil chan)": true,
	"select": true, "select (no cases)": true,
	"sync.Mutex.Lock": true, "sync.RWMutex.Lock": true, "sync.RWMutex.RLock": true,
	"sync.WaitGroup.Wait": true, "sync.Cond.Wait": true,
	"IO wait": true, "sleep": true,
	"finalizer wait": true, "force gc (idle)": true, "GC worker (idle)": true,
	"GC scavenge wait": true, "GC sweep wait": true, "cleanup wait": true, "trace reader (blocked)": true,
}

// schedSamples are the scheduler's own counts.
var schedSamples = []metrics.Sample{
	{Name: "/sched/goroutines/running:goroutines"},
	{Name: "/sched/goroutines/runnable:goroutines"},
	{Name: "/sched/goroutines/not-in-go:goroutines"},
}

func schedCounts() (running, runnable, syscalls uint64) {
	s := make([]metrics.Sample, len(schedSamples))
	copy(s, schedSamples)
	metrics.Read(s)
	n := make([]uint64, len(s))
	for i, x := range s {
		if x.Value.Kind() == metrics.KindUint64 {
			n[i] = x.Value.Uint64()
		}
	}
	return n[0], n[1], n[2]
}

// stackQuiescent walks every goroutine: quiet is whether all but the
// caller are blocked, permanent how many of them wait in a system call
// for good.
func stackQuiescent() (permanent uint64, quiet bool) {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	first := true
	quiet = true
	for len(buf) > 0 {
		line, rest, _ := bytes.Cut(buf, []byte("\n"))
		buf = rest
		if !bytes.HasPrefix(line, []byte("goroutine ")) {
			continue
		}
		if first { // the caller's own
			first = false
			continue
		}
		i, j := bytes.IndexByte(line, '['), bytes.IndexByte(line, ']')
		if i < 0 || j < i {
			continue
		}
		state, _, _ := bytes.Cut(line[i+1:j], []byte(",")) // "select, 2 minutes"
		if string(state) == "syscall" {
			fn, _, _ := bytes.Cut(buf, []byte("\n")) // the goroutine's top frame
			if bytes.HasPrefix(fn, []byte("os/signal.signal_recv")) || bytes.HasPrefix(fn, []byte("runtime/pprof.readProfile")) {
				permanent++
				continue
			}
			quiet = false
			continue
		}
		if !blockedStates[string(state)] {
			quiet = false
		}
	}
	return permanent, quiet
}
