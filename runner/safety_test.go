package runner_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/internal/reportcheck"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
)

// halfFleet is 100 devices, every second one (in id order) never echoing
// a desired patch into its reported properties: d-001-a echoes 10 s
// later, d-001-b never does, d-002-a echoes, …
const halfFleet = `
version: 1
groups:
  - ids: "d-{n:03}-a"
    count: 50
    tags: {model: door, region: eu}
    desired: {report: true, delay: 10s}
  - ids: "d-{n:03}-b"
    count: 50
    tags: {model: door, region: eu}
`

// firmwarePlan is the rollout of the issue: batches 10%, 50%, 100%,
// abort at 10% after 5, and a verify half the devices never pass.
func firmwarePlan(extra string) string {
	return header + `  - name: firmware
    query: "tags.model = 'door'"
    twin: {desired: {firmware: "2.4.1"}}
    rollout: {batches: ["10%", "50%", "100%"], pause: 5m}
    abort: {failureRate: 10%, minExecuted: 5, on: [all]}
    verify: {query: "properties.reported.firmware = '2.4.1'", timeout: 2m}
` + extra
}

// seedDesired sets desired.firmware on every device of h, as a fleet that
// runs 2.3.9 would hold it, and lets an hour pass on clk (the devices
// echo it).
func seedDesired(t *testing.T, h hub.Client, clk *clock.Virtual, fw string) {
	t.Helper()
	defer pass(t, clk, time.Hour)
	twins, err := runner.ReadTwins(t.Context(), h, "*")
	if err != nil {
		t.Fatal(err)
	}
	for _, tw := range twins {
		if _, err := h.UpdateTwin(t.Context(), tw.DeviceID, &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"firmware": fw}}}, "*"); err != nil {
			t.Fatal(err)
		}
	}
}

// pass lets d pass on clk, running everything due meanwhile.
func pass(t *testing.T, clk *clock.Virtual, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	tm := clk.NewTimer(d)
	go func() {
		<-tm.C()
		close(done)
	}()
	if err := clk.RunUntil(ctx, done); err != nil {
		t.Fatal(err)
	}
}

// desiredFirmware reads every device's desired firmware.
func desiredFirmware(t *testing.T, h hub.Client) map[string]any {
	t.Helper()
	twins, err := runner.ReadTwins(t.Context(), h, "*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, tw := range twins {
		out[tw.DeviceID] = tw.Properties.Desired["firmware"]
	}
	return out
}

// checkInvariants holds a report to the one truth of every view
// (internal/reportcheck).
func checkInvariants(t *testing.T, rep *runner.Report) {
	t.Helper()
	for _, err := range reportcheck.Check(rep) {
		t.Error(err)
	}
}

// TestVerifyGatesTheNextBatch is the case of the issue: a verify failure
// is a failure of class verify; the first batch ends when its devices
// passed or failed verify, abort judges it then, and the step stops
// there: 10 devices patched, 90 untouched. With rollback on abort the 10
// hold their previous desired value again.
func TestVerifyGatesTheNextBatch(t *testing.T) {
	for _, withRollback := range []bool{false, true} {
		t.Run(fmt.Sprintf("rollback=%v", withRollback), func(t *testing.T) {
			t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			clk := clock.NewVirtual(t0)
			h := newFleetHub(t, clk, halfFleet)
			seedDesired(t, h, clk, "2.3.9")
			extra := ""
			if withRollback {
				extra = "    rollback: {on: [abort]}\n"
			}
			rep := runVirtual(t, &runner.Runner{Hub: h, Clock: clk}, clk, parse(t, firmwarePlan(extra)))
			checkInvariants(t, rep)
			s := rep.Steps[0]
			if rep.Status != runner.StatusFailed || s.Status != runner.StepAborted {
				t.Fatalf("plan %s, step %s %q", rep.Status, s.Status, s.Reason)
			}
			if a := s.Abort; a.Executed != 10 || a.Failed != 5 || a.ByClass["verify"] != 5 || !a.Tripped {
				t.Errorf("abort %+v; want 5 of 10 failed verify, tripped", a)
			}
			if sum := s.Summary; sum.Matched != 100 || sum.Succeeded != 5 || sum.Failed != 5 || sum.Skipped != 90 || sum.FailedByClass["verify"] != 5 {
				t.Errorf("summary %s", sum)
			}
			if len(s.Batches) != 1 || s.Batches[0].EndTime == nil || s.EndTime == nil {
				t.Fatalf("batches %+v, end %v", s.Batches, s.EndTime)
			}
			// The step ends when verify has given up on the stuck devices:
			// its 2 minutes after the batch's jobs.
			if got := s.EndTime.Sub(*s.StartTime); got < 2*time.Minute {
				t.Errorf("the step took %s; verify alone waits 2m", got)
			}
			fw := desiredFirmware(t, h)
			patched := 0
			for _, v := range fw {
				if v == "2.4.1" {
					patched++
				}
			}
			switch {
			case !withRollback && patched != 10:
				t.Errorf("%d devices hold the new firmware; want the first batch's 10", patched)
			case withRollback && patched != 0:
				t.Errorf("%d devices hold the new firmware after the rollback; want none", patched)
			}
			if !withRollback {
				return
			}
			rb := s.Rollback
			if rb.Trigger != plan.OnAbort || rb.Restored != 10 || rb.Conflicts != 0 || rb.Failed != 0 || len(rb.JobIDs) == 0 {
				t.Errorf("rollback %+v", rb)
			}
			for id, v := range fw {
				if v != "2.3.9" {
					t.Errorf("%s: desired firmware %v after the rollback, want 2.3.9", id, v)
				}
			}
		})
	}
}

// conflictObserver changes one device's desired firmware as soon as the
// first job of the step completes: right after the step's patch.
type conflictObserver struct {
	h    hub.Client
	id   string
	once sync.Once
}

func (o *conflictObserver) StepStarted(*plan.Step, string)  {}
func (o *conflictObserver) StepFinished(*runner.StepReport) {}
func (o *conflictObserver) Finish(*runner.Report) error     { return nil }
func (o *conflictObserver) JobChanged(_ *plan.Step, j *hub.Job) {
	if j.Status == hub.JobCompleted {
		o.once.Do(func() {
			o.h.UpdateTwin(context.Background(), o.id, &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"firmware": "9.9.9"}}}, "*")
		})
	}
}

// TestRollbackConflict: a twin someone else changed between the step's
// patch and the rollback is left alone and reported RollbackConflict.
func TestRollbackConflict(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := newFleetHub(t, clk, halfFleet)
	seedDesired(t, h, clk, "2.3.9")
	r := &runner.Runner{Hub: h, Clock: clk, Observer: &conflictObserver{h: h, id: "d-001-a"}}
	rep := runVirtual(t, r, clk, parse(t, firmwarePlan("    rollback: {on: [abort]}\n")))
	checkInvariants(t, rep)
	rb := rep.Steps[0].Rollback
	if rb.Restored != 9 || rb.Conflicts != 1 {
		t.Fatalf("rollback %+v; want 9 restored, 1 conflict", rb)
	}
	for _, d := range rb.Devices {
		if d.Status == runner.RollbackConflicted && (d.DeviceID != "d-001-a" || d.Error == nil || d.Error.Code != runner.CodeRollbackConflict) {
			t.Errorf("conflict %+v", d)
		}
	}
	if fw := desiredFirmware(t, h); fw["d-001-a"] != "9.9.9" || fw["d-001-b"] != "2.3.9" {
		t.Errorf("after the rollback: d-001-a %v (want 9.9.9, left alone), d-001-b %v (want 2.3.9)", fw["d-001-a"], fw["d-001-b"])
	}
}

// TestRollBackFinishedRun: iotjobs rollback REPORT.json restores a
// finished run from its report alone; a twin changed since is a
// conflict; rolling back again changes nothing and says the same.
func TestRollBackFinishedRun(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := newFleetHub(t, clk, halfFleet)
	seedDesired(t, h, clk, "2.3.9")
	// The first 30 devices get a tag of their own, and the patch adds a
	// nested desired property: restores put values back and delete what
	// the step added, leaving no empty object.
	p := parse(t, header+`  - name: firmware
    query: "tags.model = 'door' AND deviceId < 'd-016'"
    twin: {desired: {firmware: "2.4.1", update: {channel: beta}}, tags: {ring: canary}}
`)
	r := &runner.Runner{Hub: h, Clock: clk}
	rep := runVirtual(t, r, clk, p)
	if rep.Status != runner.StatusSucceeded {
		t.Fatalf("run: %s %s", rep.Status, rep.Steps[0].Reason)
	}
	if _, err := h.UpdateTwin(t.Context(), "d-003-b", &hub.TwinPatch{Tags: map[string]any{"ring": "pinned"}}, "*"); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		got, err := r.RollBack(t.Context(), rep, nil)
		var incomplete *runner.RollbackIncompleteError
		if !errors.As(err, &incomplete) {
			t.Fatalf("round %d: %v; want the conflict reported", round, err)
		}
		checkSchema(t, got)
		rb := got.Steps[0].Rollback
		if rb.Trigger != runner.RollbackManual || rb.Restored != 29 || rb.Conflicts != 1 || rb.Failed != 0 {
			t.Errorf("round %d: rollback %+v", round, rb)
		}
	}
	twins, err := runner.ReadTwins(t.Context(), h, "deviceId < 'd-016'")
	if err != nil {
		t.Fatal(err)
	}
	for _, tw := range twins {
		if tw.DeviceID == "d-003-b" {
			if tw.Tags["ring"] != "pinned" || tw.Properties.Desired["firmware"] != "2.4.1" {
				t.Errorf("%s was changed since the run and must be left alone: %+v %+v", tw.DeviceID, tw.Tags, tw.Properties.Desired)
			}
			continue
		}
		if _, has := tw.Tags["ring"]; has || tw.Properties.Desired["firmware"] != "2.3.9" {
			t.Errorf("%s: tags %v desired %v after the rollback", tw.DeviceID, tw.Tags, tw.Properties.Desired)
		}
		if _, has := tw.Properties.Desired["update"]; has {
			t.Errorf("%s: desired.update %v left behind", tw.DeviceID, tw.Properties.Desired["update"])
		}
	}
}

// healthFleet is 100 door controllers: the first badFirst (in id order)
// report 5 crashes, the others badRest of the remaining ones too.
func healthFleet(badFirst, badRest int) string {
	g := func(pattern string, n, crashes int) string {
		if n == 0 {
			return ""
		}
		return fmt.Sprintf(`  - ids: "%s"
    count: %d
    tags: {model: door, region: eu}
    reported: {health: {crashes: %d}}
    desired: {report: true}
`, pattern, n, crashes)
	}
	return "version: 1\ngroups:\n" + g("a-{n:03}", badFirst, 5) + g("a-{n:03}-ok", 10-badFirst, 0) +
		g("b-{n:03}", badRest, 5) + g("b-{n:03}-ok", 90-badRest, 0)
}

// TestAnalysisControl: a batch whose health is worse than its control
// cohort's aborts the step and rolls it back; the same trouble in batch
// and control (a fleet-wide incident) does not stop the rollout.
func TestAnalysisControl(t *testing.T) {
	const step = `  - name: firmware
    query: "tags.model = 'door'"
    twin: {desired: {firmware: "2.4.1"}}
    rollout: {batches: ["10%", "100%"], pause: 1m}
    analysis:
      query: "properties.reported.health.crashes < 3"
      bake: 10m
      control: {matchTags: [model, region], maxDegradation: 10%}
    rollback: {on: [abort]}
`
	for _, tc := range []struct {
		name              string
		badFirst, badRest int
		aborted           bool
	}{
		{"the batch degrades", 10, 0, true},
		{"batch and control alike", 10, 90, false},
		{"healthy", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			clk := clock.NewVirtual(t0)
			h := newFleetHub(t, clk, healthFleet(tc.badFirst, tc.badRest))
			rep := runVirtual(t, &runner.Runner{Hub: h, Clock: clk}, clk, parse(t, header+step))
			checkInvariants(t, rep)
			s := rep.Steps[0]
			if len(s.Analysis) == 0 {
				t.Fatalf("no analysis: %s %q", s.Status, s.Reason)
			}
			a := s.Analysis[0]
			if a.Control == nil || len(a.Control.DeviceIDs) != 10 || a.Devices != 10 || a.At.Sub(*s.Batches[0].StartTime) < 10*time.Minute {
				t.Fatalf("analysis of batch 1: %+v control %+v", a, a.Control)
			}
			for _, id := range a.Control.DeviceIDs {
				if !strings.HasPrefix(id, "b-") {
					t.Errorf("control device %s was in the batch", id)
				}
			}
			if got := s.Status == runner.StepAborted; got != tc.aborted {
				t.Fatalf("aborted %v (%s: %s), want %v", got, s.Status, s.Reason, tc.aborted)
			}
			if !tc.aborted {
				if len(s.Analysis) != 2 || s.Summary.Succeeded != 100 {
					t.Errorf("analyses %d, %s", len(s.Analysis), s.Summary)
				}
				return
			}
			if a.Pass || a.PassRate != 0 || a.Control.PassRate != 1 || len(a.FailedDevices) != 10 ||
				s.Summary.FailedByClass["analysis"] != 10 || s.Summary.Skipped != 90 {
				t.Errorf("analysis %+v, summary %s", a, s.Summary)
			}
			if !strings.Contains(s.Reason, "control cohort") {
				t.Errorf("reason %q does not name the control", s.Reason)
			}
			if rb := s.Rollback; rb.Trigger != plan.OnAbort || rb.Restored != 10 {
				t.Errorf("rollback %+v", rb)
			}
		})
	}
}
