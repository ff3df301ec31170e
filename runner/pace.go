package runner

import (
	"math"
	"time"

	"github.com/iotjobs/iotjobs/plan"
)

// A rollout's rate says how many devices start per minute; the runner
// starts devices as hub jobs, so the rate decides when each job starts and
// how many devices it may hold, never the other way round (abort's small
// jobs used to wait out a whole minute each). The minute is cut into
// twelve ticks of 5 seconds; by the end of tick i (from the rate's start)
// at most floor((i+1) × rate / 12) devices have started, so devices start
// evenly, a job holds at most a tick's worth (more jobs in a tick when
// something else cuts them smaller), and any 60 seconds hold exactly the
// rate's worth of ticks: no minute ever starts more than the rate. A
// sliding minute over the actual starts keeps that true when the runner
// fell behind (slow jobs, a closed window) and would catch up.
//
// The exponential rollout is the same with a rate that grows by its
// factor each time its criteria are met since the last increase (AWS IoT
// Jobs' semantics): the new rate starts with the next tick.

const (
	tick           = 5 * time.Second
	ticksPerMinute = int(time.Minute / tick)
)

// pacer decides when the next job of a step may start and how many
// devices it may hold. A zero rate means no bound.
type pacer struct {
	perMinute int
	exp       *plan.Exponential
	begun     bool
	origin    time.Time // the start of the current rate's first tick
	base      int       // devices started before origin
	started   int       // devices started so far
	recent    []start   // the starts of the last minute, oldest first
	// notified and succeeded are the counts at the last increase of an
	// exponential rate.
	notified, succeeded int
}

type start struct {
	at time.Time
	n  int
}

// newPacer is the pacer of a step's rollout.
func newPacer(ro *plan.Rollout) *pacer {
	switch {
	case ro == nil:
		return &pacer{}
	case ro.Exponential != nil:
		return &pacer{perMinute: ro.Exponential.BaseRatePerMinute, exp: ro.Exponential}
	}
	return &pacer{perMinute: ro.MaxPerMinute}
}

// next is when the next job may start, given that it is now, and how
// many devices it may hold: at most want (0: no bound of its own).
func (p *pacer) next(now time.Time, want int) (time.Time, int) {
	if p.perMinute <= 0 {
		return now, want
	}
	if !p.begun {
		p.begun, p.origin, p.base = true, now, p.started
	}
	at := now
	for {
		// The first tick, from now on, whose allowance exceeds the starts.
		i := max(int(at.Sub(p.origin)/tick),
			int(math.Ceil(float64(ticksPerMinute*(p.started-p.base+1))/float64(p.perMinute)))-1)
		if t := p.origin.Add(time.Duration(i) * tick); t.After(at) {
			at = t
		}
		n := p.base + (i+1)*p.perMinute/ticksPerMinute - p.started
		// The sliding minute.
		inWindow := 0
		var oldest time.Time
		for _, s := range p.recent {
			if s.at.After(at.Add(-time.Minute)) {
				if oldest.IsZero() {
					oldest = s.at
				}
				inWindow += s.n
			}
		}
		n = min(n, p.perMinute-inWindow)
		if n > 0 {
			return at, minPositive(want, n)
		}
		at = oldest.Add(time.Minute)
	}
}

// record notes a job of n devices started at at.
func (p *pacer) record(at time.Time, n int) {
	p.started += n
	if p.perMinute <= 0 {
		return
	}
	p.recent = append(p.recent, start{at, n})
	for len(p.recent) > 0 && !p.recent[0].at.After(at.Add(-time.Minute)) {
		p.recent = p.recent[1:]
	}
}

// grow raises an exponential rate when its criteria are met since the last
// increase, given the step's devices succeeded so far; the new rate counts
// from the next tick.
func (p *pacer) grow(now time.Time, succeeded int) {
	e := p.exp
	if e == nil || !p.begun {
		return
	}
	if (e.NotifiedDevices > 0 && p.started-p.notified >= e.NotifiedDevices) ||
		(e.SucceededDevices > 0 && succeeded-p.succeeded >= e.SucceededDevices) {
		p.perMinute = int(math.Ceil(float64(p.perMinute) * e.IncrementFactor))
		p.notified, p.succeeded = p.started, succeeded
		p.origin = p.origin.Add(time.Duration(int(now.Sub(p.origin)/tick)+1) * tick)
		p.base = p.started
	}
}

// minPositive is the smaller of two bounds, where 0 means no bound.
func minPositive(a, b int) int {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}
