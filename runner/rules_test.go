package runner

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan"
)

// The rollout's pure rules, as tables a newcomer can extend: where each
// batch ends, how many devices the next job takes, when abort trips.

func TestBatchTargets(t *testing.T) {
	pct := func(p ...float64) *plan.Rollout {
		ro := &plan.Rollout{}
		for _, v := range p {
			ro.Batches = append(ro.Batches, plan.Batch{Percent: v})
		}
		return ro
	}
	count := func(c ...int) *plan.Rollout {
		ro := &plan.Rollout{}
		for _, v := range c {
			ro.Batches = append(ro.Batches, plan.Batch{Count: v})
		}
		return ro
	}
	tests := []struct {
		name    string
		rollout *plan.Rollout
		devices int
		want    []int
	}{
		{"no rollout: one batch of all", nil, 50, []int{50}},
		{"no batches: one batch of all", &plan.Rollout{}, 50, []int{50}},
		{"percentages are cumulative", pct(10, 50, 100), 200, []int{20, 100, 200}},
		{"percentages round up", pct(1, 100), 20, []int{1, 20}},
		{"counts", count(5, 25, 1000), 100, []int{5, 25, 100}},
		{"counts capped at the devices", count(5, 500), 40, []int{5, 40}},
		{"a batch adding nobody is dropped", pct(1, 2, 100), 10, []int{1, 10}},
		{"a step over nobody", pct(10, 100), 0, nil},
		{"mixed", &plan.Rollout{Batches: []plan.Batch{{Count: 3}, {Percent: 50}, {Percent: 100}}}, 10, []int{3, 5, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := batchTargets(tt.rollout, tt.devices); !slices.Equal(got, tt.want) {
				t.Errorf("batchTargets over %d devices = %v, want %v", tt.devices, got, tt.want)
			}
		})
	}
}

func TestJobSize(t *testing.T) {
	tests := []struct {
		name            string
		abort           *plan.Abort
		executed, total int
		want            int
	}{
		{"no abort: no bound", nil, 0, 5000, 0},
		{"first just enough to reach minExecuted", &plan.Abort{MinExecuted: 20}, 0, 5000, 20},
		{"the rest of minExecuted", &plan.Abort{MinExecuted: 20}, 15, 5000, 5},
		{"then 5% of the step", &plan.Abort{MinExecuted: 20}, 20, 5000, 250},
		{"5% rounds up", &plan.Abort{MinExecuted: 1}, 1, 201, 11},
		{"at least 10", &plan.Abort{MinExecuted: 1}, 1, 40, 10},
		{"minExecuted 0: 5% from the start", &plan.Abort{}, 0, 1000, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jobSize(tt.abort, tt.executed, tt.total); got != tt.want {
				t.Errorf("jobSize(%+v, %d, %d) = %d, want %d", tt.abort, tt.executed, tt.total, got, tt.want)
			}
		})
	}
}

func TestJudgeAbort(t *testing.T) {
	ok := DeviceResult{Succeeded: true, Status: string(hub.DeviceJobCompleted)}
	noop := DeviceResult{Succeeded: true, Status: DeviceNoop}
	fail := func(code string) DeviceResult {
		return DeviceResult{Status: string(hub.DeviceJobFailed), Error: &hub.DeviceJobError{Code: code}}
	}
	failed, offline, verify := fail("500"), fail(hub.CodeDeviceNotOnline), fail(CodeVerifyTimeout)
	n := func(d DeviceResult, k int) []DeviceResult { return slices.Repeat([]DeviceResult{d}, k) }
	all := plan.AbortClasses
	retryOffline := &plan.Retry{Attempts: 2, On: []string{plan.OfflineClass}}
	tests := []struct {
		name    string
		abort   plan.Abort
		retry   *plan.Retry
		devices []DeviceResult
		final   bool
		// want: executed, failed, tripped
		executed, failed int
		tripped          bool
	}{
		{"rate: over it trips", plan.Abort{HasRate: true, FailureRate: 0.1, MinExecuted: 10, On: all},
			nil, slices.Concat(n(ok, 8), n(failed, 2)), false, 10, 2, true},
		{"rate: at it does not", plan.Abort{HasRate: true, FailureRate: 0.2, MinExecuted: 10, On: all},
			nil, slices.Concat(n(ok, 8), n(failed, 2)), false, 10, 2, false},
		{"rate: below minExecuted never", plan.Abort{HasRate: true, FailureRate: 0.1, MinExecuted: 20, On: all},
			nil, slices.Concat(n(ok, 5), n(failed, 5)), false, 10, 5, false},
		{"count: reaching it trips", plan.Abort{Failures: 3, On: all},
			nil, slices.Concat(n(ok, 50), n(failed, 3)), false, 53, 3, true},
		{"no-ops are not executed", plan.Abort{HasRate: true, FailureRate: 0.1, MinExecuted: 10, On: all},
			nil, slices.Concat(n(noop, 90), n(ok, 9), n(failed, 1)), false, 10, 1, false},
		{"only the counted classes", plan.Abort{Failures: 2, On: []string{plan.VerifyClass}},
			nil, slices.Concat(n(offline, 5), n(verify, 1)), false, 6, 1, false},
		{"all counts every class", plan.Abort{Failures: 2, On: []string{"all"}},
			nil, slices.Concat(n(offline, 1), n(verify, 1)), false, 2, 2, true},
		{"retried failures are undecided before the batch is final", plan.Abort{Failures: 2, On: all},
			retryOffline, n(offline, 3), false, 3, 3, false},
		{"and decided once it is", plan.Abort{Failures: 2, On: all},
			retryOffline, n(offline, 3), true, 3, 3, true},
		{"failures retry does not cover are decided at once", plan.Abort{Failures: 2, On: all},
			retryOffline, n(failed, 2), false, 2, 2, true},
		{"nothing executed never trips", plan.Abort{Failures: 0, On: all}, nil, nil, true, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ar AbortReport
			judgeAbort(&tt.abort, tt.retry, tt.devices, tt.final, &ar)
			if ar.Executed != tt.executed || ar.Failed != tt.failed || ar.Tripped != tt.tripped {
				t.Errorf("executed %d, failed %d, tripped %v; want %d, %d, %v (by class %s)",
					ar.Executed, ar.Failed, ar.Tripped, tt.executed, tt.failed, tt.tripped, fmt.Sprint(ar.ByClass))
			}
		})
	}
}

// TestCronStartInItsZone: a cron step's next occurrence is read in its
// cron.timezone, whatever the machine's zone.
func TestCronStartInItsZone(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.FixedZone("Tokyo", 9*3600))
	for _, tc := range []struct {
		zone string
		want time.Time
	}{
		{"", time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)},
		{"Europe/Berlin", time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)},
	} {
		s := &plan.Step{Name: "n", Cron: "0 2 * * *", CronPolicy: plan.CronPolicy{Timezone: tc.zone}}
		got, err := startTime(s, now, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("zone %q: next occurrence %v (%v), want %v", tc.zone, got.UTC(), err, tc.want)
		}
	}
}
