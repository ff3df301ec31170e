package runner_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
)

// TestTextObserverStates: in a log, a step's line says what it is doing
// over all of its devices, each time that changes.
func TestTextObserverStates(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s := &plan.Step{Name: "fw", Query: "*", Method: &plan.Method{Name: "reboot"}}
	with := func(p runner.Progress) runner.Progress {
		p.Total, p.Succeeded, p.Failed, p.FailedByClass = 2000, 390, 10, map[string]int{"offline": 10}
		return p
	}
	for _, tc := range []struct {
		name string
		p    runner.Progress
		want string
	}{
		{"running", with(runner.Progress{Phase: runner.PhaseRunning, Batch: 2, Batches: 5}),
			"fw: running batch 2/5 — 400/2000 done, 390 succeeded, 10 failed: 10 offline"},
		{"paused", with(runner.Progress{Phase: runner.PhasePaused, Batch: 3, Batches: 5, Until: t0.Add(4*time.Minute + 12*time.Second)}),
			"fw: paused, batch 3/5 starts in 4m12s — 400/2000 done"},
		{"window", with(runner.Progress{Phase: runner.PhaseWindow, Until: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)}),
			"fw: waiting for the window that opens at 2026-11-26 03:00 UTC (in 17h0m)"},
		{"waiting", runner.Progress{Phase: runner.PhaseWaiting, Until: t0.Add(90 * time.Second)},
			"fw: waiting to start at 10:01:30 UTC (in 1m30s)"},
		{"rate", with(runner.Progress{Phase: runner.PhaseRateLimited, Until: t0.Add(12 * time.Second)}),
			"fw: rate-limited, next devices in 12s — 400/2000 done"},
		{"retry", with(runner.Progress{Phase: runner.PhaseRetrying, Round: 1, Rounds: 3, Until: t0.Add(5 * time.Second)}),
			"fw: retry round 1 of 3 in 5s — "},
		{"verify", with(runner.Progress{Phase: runner.PhaseVerifying, Verified: 380, ToVerify: 400, Until: t0.Add(2 * time.Minute)}),
			"fw: verifying 380/400 (gives up in 2m0s) — 400/2000 done"},
		{"verify batch", with(runner.Progress{Phase: runner.PhaseVerifying, Batch: 1, Batches: 3, Verified: 180, ToVerify: 200}),
			"fw: verifying batch 1/3: 180/200 — 400/2000 done"},
		{"cron", runner.Progress{Phase: runner.PhaseWaiting, Cron: "0 3 * * *", Until: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)},
			`fw: waiting for the occurrence of cron "0 3 * * *" at 2026-11-26 03:00 UTC (in 17h0m)`},
		{"analysis", with(runner.Progress{Phase: runner.PhaseAnalysing, Until: t0.Add(time.Minute)}),
			"fw: analysing, baking for 1m0s"},
		{"rollback", with(runner.Progress{Phase: runner.PhaseRollingBack}),
			"fw: rolling back — 400/2000 done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			o := &runner.TextObserver{W: &out, Clock: clock.NewVirtual(t0)}
			o.StepProgress(s, tc.p)
			if got := out.String(); !strings.Contains(got, tc.want) || strings.Count(got, "\n") != 1 {
				t.Errorf("line %q, want one containing %q", got, tc.want)
			}
		})
	}
}

// TestTextObserverLogPace: in a log, a running step's line repeats at
// most every LogEvery, but a change of state always prints.
func TestTextObserverLogPace(t *testing.T) {
	clk := clock.NewVirtual(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	var out bytes.Buffer
	o := &runner.TextObserver{W: &out, Clock: clk, LogEvery: 10 * time.Second}
	s := &plan.Step{Name: "fw", Query: "*"}
	for i := range 30 {
		o.StepProgress(s, runner.Progress{Phase: runner.PhaseRunning, Total: 100, Succeeded: i})
		clk.Advance(time.Second)
	}
	o.StepProgress(s, runner.Progress{Phase: runner.PhaseVerifying, Total: 100, Succeeded: 30, ToVerify: 30})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], "verifying 0/30") {
		t.Errorf("%d lines, want 3 running and 1 verifying:\n%s", len(lines), out.String())
	}
}

// TestTextObserverTTY: on a terminal, progress is a block of one line
// per running step redrawn in place, with event lines printed above it;
// job ids only when verbose.
func TestTextObserverTTY(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		clk := clock.NewVirtual(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
		out := &lockedBuffer{}
		// The 1 s redraw is left out (noTicks): moving the clock would fire
		// it at a moment of its own, racing the reads below.
		o := &runner.TextObserver{W: out, TTY: true, Clock: noTicks{clk}, Verbose: verbose}
		a := &plan.Step{Name: "a", Query: "*", Method: &plan.Method{Name: "reboot"}}
		b := &plan.Step{Name: "b", Query: "*", Method: &plan.Method{Name: "reboot"}}
		o.StepStarted(a, "job-1")
		o.StepProgress(a, runner.Progress{Phase: runner.PhaseRunning, Total: 100})
		o.StepProgress(b, runner.Progress{Phase: runner.PhasePaused, Total: 50, Batch: 2, Batches: 2, Until: clk.Now().Add(time.Minute)})
		clk.Advance(10 * time.Second)
		o.StepProgress(a, runner.Progress{Phase: runner.PhaseRunning, Total: 100, Succeeded: 45, Failed: 5, FailedByClass: map[string]int{"failed": 5}})
		got := out.String()
		if strings.Contains(got, "job-1") != verbose {
			t.Errorf("verbose %v: job id shown %v:\n%q", verbose, !verbose, got)
		}
		last := got[strings.LastIndex(got, "\033[J")+len("\033[J"):]
		want := "a: running — 50/100 done, 45 succeeded, 5 failed: 5 failed, 5/s, ETA 10s\nb: paused, batch 2/2 starts in 50s — 0/50 done, 0 succeeded\n"
		if last != want {
			t.Errorf("status block\n%q\nwant\n%q", last, want)
		}
		o.StepFinished(&runner.StepReport{Name: "a", Status: "completed", Summary: runner.Summary{Matched: 100, Succeeded: 95, Failed: 5, FailedByClass: map[string]int{"failed": 5}}})
		tail := out.String()[len(got):]
		if !strings.HasPrefix(tail, "\033[2A\r\033[Ja: completed — 95 succeeded, 5 failed (5 failed), 0 no-op, 0 skipped of 100 devices\nb: paused") {
			t.Errorf("the finished line does not replace the block: %q", tail)
		}
		if err := o.Finish(&runner.Report{Plan: runner.PlanRef{Name: "p"}, Status: runner.StatusSucceeded}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStepFailures: a finished step names its failures by class, a few
// devices each, not a line per device.
func TestStepFailures(t *testing.T) {
	var devs []runner.DeviceResult
	for i := range 2000 {
		devs = append(devs, runner.DeviceResult{DeviceID: "d" + string(rune('a'+i%26)) + strings.Repeat("x", i%3), Status: "failed",
			Error: &hub.DeviceJobError{Code: runner.CodeVerifyTimeout, Description: "the twin did not satisfy it"}})
	}
	devs = append(devs, runner.DeviceResult{DeviceID: "off", Status: "failed", Error: &hub.DeviceJobError{Code: hub.CodeDeviceNotOnline, Description: "offline"}})
	var out bytes.Buffer
	o := &runner.TextObserver{W: &out}
	o.StepFinished(&runner.StepReport{Name: "fw", Status: runner.StepFailed, Devices: devs,
		Summary: runner.Summary{Matched: 2001, Failed: 2001, FailedByClass: map[string]int{"verify": 2000, "offline": 1}}})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want the verdict and 2 classes:\n%s", len(lines), out.String())
	}
	if !strings.HasPrefix(lines[1], "  1 offline: off — DeviceNotOnline") || !strings.HasPrefix(lines[2], "  2000 verify: da, dbx, dcxx and 1997 more — VerifyTimeout") {
		t.Errorf("failure lines:\n%s", out.String())
	}
}

func TestWriteSummary(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	t1 := t0.Add(90 * time.Second)
	status := func(code int) *hub.DeviceJobOutcome {
		return &hub.DeviceJobOutcome{DeviceMethodResponse: &hub.MethodResponse{Status: code}}
	}
	for _, tc := range []struct {
		name string
		rep  *runner.Report
		want string
	}{
		{"rollout", &runner.Report{Plan: runner.PlanRef{Name: "fw"}, Status: runner.StatusFailed, StartedAt: t0, FinishedAt: t1, Steps: []*runner.StepReport{
			{Name: "set", Status: "completed", Summary: runner.Summary{Matched: 2, Succeeded: 2}, StartTime: &t0, EndTime: &t1,
				DeviceJobStatistics: hub.DeviceJobStatistics{SucceededCount: 2}, Devices: []runner.DeviceResult{{Status: "completed", Succeeded: true}, {Status: "completed", Succeeded: true}}},
			{Name: "reboot", Status: runner.StepAborted, Reason: "3 of 5 devices failed", Summary: runner.Summary{Matched: 4, Succeeded: 1, Failed: 1, Skipped: 2, FailedByClass: map[string]int{"verify": 1}},
				Rollback: &runner.RollbackReport{Trigger: "abort", Restored: 2}},
		}}, "plan fw: failed in 1m30s\n" +
			"  set: completed — 2 succeeded, 0 failed, 0 no-op, 0 skipped of 2 devices (1m30s)\n" +
			"  reboot: aborted — 1 succeeded, 1 failed (1 verify), 0 no-op, 2 skipped of 4 devices — 3 of 5 devices failed; rolled back (abort): 2 restored, 0 conflicts, 0 failed\n"},
		{"hub and verdict differ", &runner.Report{Plan: runner.PlanRef{Name: "m"}, Status: runner.StatusFailed, DryRun: true, Steps: []*runner.StepReport{
			{Name: "call", Status: runner.StepFailed, Reason: "a success rate of 0.0% is below the step's minSuccessRate of 100.0%",
				Summary:             runner.Summary{Matched: 3, Failed: 3, FailedByClass: map[string]int{"failed": 2, "verify": 1}},
				DeviceJobStatistics: hub.DeviceJobStatistics{DeviceCount: 3, SucceededCount: 3},
				Devices: []runner.DeviceResult{{DeviceID: "a", Status: "completed", Outcome: status(501)}, {DeviceID: "b", Status: "completed", Outcome: status(501)},
					{DeviceID: "c", Status: "completed", Outcome: status(200), Error: &hub.DeviceJobError{Code: runner.CodeVerifyTimeout}}}},
		}}, "plan m: failed\n" +
			"  dry run: nothing was applied\n" +
			"  call: failed — 0 succeeded, 3 failed (2 failed, 1 verify), 0 no-op, 0 skipped of 3 devices — a success rate of 0.0% is below the step's minSuccessRate of 100.0%\n" +
			"    the hub counts 3 device jobs completed; the verdict differs: 2 answered the method with a status outside 2xx (501 ×2); 1 then failed verify\n"},
		{"dry run against a hub", &runner.Report{Plan: runner.PlanRef{Name: "fw"}, Status: runner.StatusSucceeded, DryRun: true,
			Simulation: &runner.Simulation{Against: "hub embedded", Simulated: true, Assumptions: []string{"devices online on hub embedded (2) stay online"}},
			Steps:      []*runner.StepReport{{Name: "set", Status: "completed", Summary: runner.Summary{Matched: 2, Succeeded: 2}}}},
			"plan fw (dry run against hub embedded): succeeded\n" +
				"  dry run: nothing was applied\n" +
				"  assumed: devices online on hub embedded (2) stay online\n" +
				"  set: completed — 2 succeeded, 0 failed, 0 no-op, 0 skipped of 2 devices\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.rep.WriteSummary(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("summary:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

// phaseObserver records every progress of a run, in order.
type phaseObserver struct {
	finishObserver
	mu     sync.Mutex
	states []runner.Progress
}

func (o *phaseObserver) StepProgress(_ *plan.Step, p runner.Progress) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.states = append(o.states, p)
}

// TestProgressPhases: a rollout in batches with a pause and verify says
// what it is doing at each turn (running, verifying, paused, running
// the next batch), counting over all of the step's devices, and its
// last counts are the report's.
func TestProgressPhases(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := newFleetHub(t, clk, convergeFleet)
	p := parse(t, header+`  - name: firmware
    query: "tags.ring = 'r'"
    twin: {desired: {firmware: "2.4.1"}}
    rollout: {batches: [50%, 100%], pause: 10m}
    verify: {query: "properties.reported.firmware = '2.4.1'", timeout: 2m}
    success: {minSuccessRate: 50%}
`)
	obs := &phaseObserver{finishObserver: make(finishObserver, 10)}
	rep := runVirtual(t, &runner.Runner{Hub: h, Clock: clk, Observer: obs}, clk, p)
	var phases []string
	for _, s := range obs.states {
		if s.Total != 10 {
			t.Errorf("progress %+v: total %d, want the step's 10 devices", s, s.Total)
		}
		ph := fmt.Sprintf("%s %d/%d", s.Phase, s.Batch, s.Batches)
		if len(phases) == 0 || phases[len(phases)-1] != ph {
			phases = append(phases, ph)
		}
	}
	want := []string{"running 1/2", "verifying 1/2", "paused 2/2", "running 2/2", "verifying 2/2"}
	if !slices.Equal(phases, want) {
		t.Errorf("phases %q, want %q", phases, want)
	}
	last, sum := obs.states[len(obs.states)-1], rep.Steps[0].Summary
	if last.Phase == runner.PhaseVerifying && last.Succeeded+last.Failed != sum.Succeeded+sum.Failed {
		t.Errorf("last progress %+v, report %s", last, sum)
	}
}

// noTicks is a virtual clock whose timers fire a thousand hours late:
// the observer's 1 s redraw never comes while a test moves the clock by
// seconds.
type noTicks struct{ *clock.Virtual }

func (c noTicks) NewTimer(d time.Duration) clock.Timer { return c.Virtual.NewTimer(d + 1000*time.Hour) }

// lockedBuffer is a buffer safe for the observer's ticker.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
