package runner_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
)

// manyFleet is n devices that answer reboot with 200 at once.
func manyFleet(n int) string {
	return fmt.Sprintf(`
version: 1
groups:
  - ids: "d-{n:04}"
    count: %d
    tags: {ring: r}
    methods:
      reboot: {status: 200}
`, n)
}

// runVirtual applies p on the virtual clock, moving time only when
// nothing is left to do at the current instant, and returns the report.
func runVirtual(t *testing.T, r *runner.Runner, clk *clock.Virtual, p *plan.Plan) *runner.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	reports := applying(t, r, p)
	var rep *runner.Report
	done := make(chan struct{})
	go func() {
		defer close(done)
		rep = <-reports
	}()
	if err := clk.RunUntil(ctx, done); err != nil {
		t.Fatalf("RunUntil: %v", err)
	}
	checkSchema(t, rep)
	return rep
}

// jobStart is when one of a step's hub jobs started, and how many
// devices it had.
type jobStart struct {
	at time.Time
	n  int
}

// starts reads the start and size of each job of a step from the hub.
func starts(t *testing.T, h hub.Client, s *runner.StepReport) []jobStart {
	t.Helper()
	var out []jobStart
	for _, id := range s.JobIDs {
		j, err := h.GetJob(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, jobStart{j.StartTime.Time, j.DeviceJobStatistics.DeviceCount})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// perMinute counts the devices started in each minute from t0.
func perMinute(t0 time.Time, js []jobStart) []int {
	var out []int
	for _, j := range js {
		m := int(j.at.Sub(t0) / time.Minute)
		for len(out) <= m {
			out = append(out, 0)
		}
		out[m] += j.n
	}
	return out
}

// maxInAnyMinute is the most devices started in any 60-second window.
func maxInAnyMinute(js []jobStart) int {
	most := 0
	for i := range js {
		n := 0
		for _, j := range js[i:] {
			if j.at.Sub(js[i].at) < time.Minute {
				n += j.n
			}
		}
		most = max(most, n)
	}
	return most
}

// TestRateWithAbort: maxPerMinute holds as written with abort thresholds,
// whose small jobs used to wait out a whole minute each: 200 devices at
// 100 a minute all start within 2 minutes, at 1,000 a minute within one,
// and no minute ever holds more starts than the rate.
func TestRateWithAbort(t *testing.T) {
	for _, tc := range []struct {
		rate   int
		within time.Duration
	}{
		{100, 2 * time.Minute},
		{1000, time.Minute},
	} {
		t.Run(fmt.Sprint(tc.rate), func(t *testing.T) {
			t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			clk := clock.NewVirtual(t0)
			h := newFleetHub(t, clk, manyFleet(200))
			p := parse(t, header+fmt.Sprintf(`  - name: wave
    query: "tags.ring = 'r'"
    method: {name: reboot}
    rollout: {maxPerMinute: %d}
    abort: {failureRate: 10%%, minExecuted: 5}
`, tc.rate))
			rep := runVirtual(t, &runner.Runner{Hub: h, Clock: clk}, clk, p)
			s := rep.Steps[0]
			if s.Status != runner.StepCompleted || s.Summary.Succeeded != 200 {
				t.Fatalf("step %s %q: %s", s.Status, s.Reason, s.Summary)
			}
			js := starts(t, h, s)
			if last := js[len(js)-1].at.Sub(t0); last >= tc.within {
				t.Errorf("the last device started %s in; want within %s (%d jobs)", last, tc.within, len(js))
			}
			if most := maxInAnyMinute(js); most > tc.rate {
				t.Errorf("%d devices started within one minute; the rate is %d", most, tc.rate)
			}
			if js[0].n != 5 {
				t.Errorf("the first job holds %d devices; want minExecuted, 5", js[0].n)
			}
		})
	}
}

// TestExponentialRollout: from 12 devices a minute, the rate doubles
// each time 24 more devices have been notified (started), and devices
// start evenly at the rate of the moment: 24 at 12 a minute, 24 at 24, 24
// at 48, 24 at 96, the last 24 at 192. Each device's start is its slot in
// that formula; jobs start every 5 seconds, so a job's devices share the
// minute of their slots.
func TestExponentialRollout(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := newFleetHub(t, clk, manyFleet(120))
	p := parse(t, header+`  - name: wave
    query: "tags.ring = 'r'"
    method: {name: reboot}
    rollout:
      exponential: {baseRatePerMinute: 12, incrementFactor: 2, rateIncreaseCriteria: {numberOfNotifiedDevices: 24}}
`)
	rep := runVirtual(t, &runner.Runner{Hub: h, Clock: clk}, clk, p)
	s := rep.Steps[0]
	if s.Summary.Succeeded != 120 {
		t.Fatalf("step %s: %s", s.Status, s.Summary)
	}
	var want []int
	stage, rate := 0.0, 12.0 // the stage's start (minutes) and rate
	for k := 0; k < 120; k++ {
		if k > 0 && k%24 == 0 {
			stage += 24 / rate
			rate *= 2
		}
		m := int(stage + float64(k%24)/rate)
		for len(want) <= m {
			want = append(want, 0)
		}
		want[m]++
	}
	got := perMinute(t0, starts(t, h, s))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("devices started per minute %v, want %v", got, want)
	}
	if most := maxInAnyMinute(starts(t, h, s)); most > 192 {
		t.Errorf("%d devices started within a minute, over the highest rate", most)
	}
}
