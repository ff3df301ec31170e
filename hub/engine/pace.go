package engine

import (
	"context"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub/clock"
)

// pacer spaces device operations at most rate a second across every job
// of the hub. Tokens are handed out in the order asked for, so concurrent
// jobs take turns; unused time does not accumulate into a burst.
type pacer struct {
	clock clock.Clock

	mu    sync.Mutex
	every time.Duration // 0: no limit
	next  time.Time     // when the next token is free
}

func newPacer(clk clock.Clock, rate float64) *pacer {
	p := &pacer{clock: clk}
	if rate > 0 {
		p.every = time.Duration(float64(time.Second) / rate)
	}
	return p
}

// wait takes a token, waiting for its turn; it fails when either context
// ends first (the token is then lost, which only slows the rate down).
func (p *pacer) wait(a, b context.Context) error {
	p.mu.Lock()
	if p.every == 0 {
		p.mu.Unlock()
		return nil
	}
	now := p.clock.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.every)
	p.mu.Unlock()
	d := at.Sub(now)
	if d <= 0 {
		return nil
	}
	t := p.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-a.Done():
		return a.Err()
	case <-b.Done():
		return b.Err()
	}
}

// interval is the spacing of tokens now (0: no limit).
func (p *pacer) interval() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.every
}

// setRate changes the rate (replicas share the hub's: cluster.go).
func (p *pacer) setRate(rate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rate > 0 {
		p.every = time.Duration(float64(time.Second) / rate)
	}
}
