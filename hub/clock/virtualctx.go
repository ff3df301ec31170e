package clock

import (
	"context"
	"sync"
	"time"
)

// WithTimeout is WithDeadline(ctx, Now()+d).
func (v *Virtual) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return v.WithDeadline(ctx, v.Now().Add(d))
}

// WithDeadline returns a copy of ctx that is done when ctx is, when the
// returned cancel is called, or when the clock reaches deadline; then its
// Err is context.DeadlineExceeded, and its Deadline reports the virtual
// deadline (or ctx's, when that is earlier).
func (v *Virtual) WithDeadline(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	holder, holderCancel := context.WithCancelCause(context.Background())
	c := &virtualCtx{parent: ctx, deadline: deadline, done: make(chan struct{}), cause: holder, causeCancel: holderCancel}
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		c.deadline = d
	}
	cancel := func() { c.cancel(context.Canceled, context.Canceled) }
	if ctx.Err() != nil {
		c.cancel(ctx.Err(), context.Cause(ctx))
		return c, cancel
	}
	// Neither registration may happen under c.mu: either can cancel c at
	// once (a past deadline fires synchronously).
	stop := context.AfterFunc(ctx, func() { c.cancel(ctx.Err(), context.Cause(ctx)) })
	timer := v.afterFuncSync(deadline.Sub(v.Now()), func() {
		c.cancel(context.DeadlineExceeded, context.DeadlineExceeded)
	})
	c.mu.Lock()
	c.stopParent, c.timer = stop, timer
	ended := c.err != nil
	c.mu.Unlock()
	if ended { // cancelled before the registrations were recorded
		stop()
		timer.Stop()
	}
	return c, cancel
}

// virtualCtx is a context with a deadline on a Virtual clock. It cannot
// wrap a context.WithCancel, because children of that would report
// context.Canceled, not DeadlineExceeded, when the deadline passes; so it
// keeps its own done channel and err, which children of it read through
// Done and Err. cause only holds the cancellation cause for context.Cause.
type virtualCtx struct {
	parent   context.Context
	deadline time.Time
	done     chan struct{}

	cause       context.Context
	causeCancel context.CancelCauseFunc

	mu         sync.Mutex
	err        error
	timer      *vtimer
	stopParent func() bool
}

func (c *virtualCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *virtualCtx) Done() <-chan struct{}       { return c.done }

func (c *virtualCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Value answers context.Cause's internal lookup from the cause holder,
// so that Cause reports why this context ended; all other keys go to the
// parent.
func (c *virtualCtx) Value(key any) any {
	if isCancelCtxKey(key) {
		return c.cause.Value(key)
	}
	return c.parent.Value(key)
}

func (c *virtualCtx) String() string {
	return "clock.Virtual.WithDeadline(" + c.deadline.String() + ")"
}

func (c *virtualCtx) cancel(err, cause error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	close(c.done)
	timer, stop := c.timer, c.stopParent
	c.mu.Unlock()
	c.causeCancel(cause)
	if timer != nil {
		timer.Stop()
	}
	if stop != nil {
		stop()
	}
}

// probe is a cancelable context whose Value returns itself for exactly one
// key: the context package's unexported key that context.Cause looks up.
var probe, _ = context.WithCancel(context.Background())

func isCancelCtxKey(key any) bool {
	k, ok := key.(*int)
	return ok && probe.Value(k) != nil
}
