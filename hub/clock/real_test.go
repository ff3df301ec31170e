package clock

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestReal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := Real()
		start := c.Now()
		tm := c.NewTimer(time.Second)
		at := <-tm.C()
		if got := at.Sub(start); got != time.Second {
			t.Fatalf("timer fired after %v", got)
		}
		if c.Since(start) != time.Second {
			t.Fatalf("Since = %v", c.Since(start))
		}
		if tm.Reset(time.Second) {
			t.Fatal("Reset of a fired timer = true")
		}
		if !tm.Stop() {
			t.Fatal("Stop of a pending timer = false")
		}

		called := make(chan struct{})
		af := c.AfterFunc(time.Minute, func() { close(called) })
		if af.C() != nil {
			t.Fatal("AfterFunc timer has a channel")
		}
		<-called

		ctx, cancel := c.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		<-ctx.Done()
		if ctx.Err() != context.DeadlineExceeded {
			t.Fatalf("Err = %v", ctx.Err())
		}
		ctx2, cancel2 := c.WithDeadline(context.Background(), c.Now().Add(time.Hour))
		cancel2()
		if ctx2.Err() != context.Canceled {
			t.Fatalf("Err = %v", ctx2.Err())
		}
	})
}
