package runner_test

import (
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/runner"
)

// convergeFleet: 8 devices echo a desired patch into their reported
// properties 30 s later; 2 never do.
const convergeFleet = `
version: 1
groups:
  - ids: "ok-{n}"
    count: 8
    tags: {ring: r}
    desired: {report: true, delay: 30s}
    methods:
      reboot: {status: 200}
  - ids: "stuck-{n}"
    count: 2
    tags: {ring: r}
    methods:
      reboot: {status: 200}
`

// TestVerifyThenOnlyPassed: verify waits on the clock for the reported
// firmware, fails the devices that never report it, and the next step
// with onlyPassed runs on exactly the devices that passed.
func TestVerifyThenOnlyPassed(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(t0)
	h := newFleetHub(t, clk, convergeFleet)
	p := parse(t, header+`  - name: firmware
    query: "tags.ring = 'r'"
    twin: {desired: {firmware: "2.4.1"}}
    verify: {query: "properties.reported.firmware = '2.4.1'", timeout: 5m}
    success: {minSuccessRate: 50%}
  - name: reboot
    query: "tags.ring = 'r'"
    method: {name: reboot}
    onlyPassed: true
`)
	// Time moves only when nothing is left to do at the current instant:
	// the devices' reports (30 s after the patch) land before verify asks
	// again (every 15 s, a twentieth of 5 minutes).
	rep := runVirtual(t, &runner.Runner{Hub: h, Clock: clk}, clk, p)
	fw, rb := rep.Steps[0], rep.Steps[1]
	verified := map[string]bool{}
	for _, d := range fw.Devices {
		switch {
		case d.Verified == nil:
			t.Errorf("%s: no verify result", d.DeviceID)
		case *d.Verified && d.Succeeded:
			verified[d.DeviceID] = true
		case !*d.Verified && (d.Succeeded || d.Error == nil || d.Error.Code != "VerifyTimeout"):
			t.Errorf("%s: not verified but %+v", d.DeviceID, d)
		}
	}
	if len(verified) != 8 || verified["stuck-1"] || verified["stuck-2"] {
		t.Errorf("verified %v, want the 8 ok devices", verified)
	}
	if fw.Status != runner.StepCompleted || fw.Success == nil || fw.Success.SuccessRate != 0.8 {
		t.Errorf("firmware step %s %q success %+v", fw.Status, fw.Reason, fw.Success)
	}
	if rb.Status != runner.StepCompleted || len(rb.Devices) != 8 {
		t.Fatalf("reboot step %s %q on %d devices, want the 8 that passed", rb.Status, rb.Reason, len(rb.Devices))
	}
	for _, d := range rb.Devices {
		if !verified[d.DeviceID] {
			t.Errorf("reboot ran on %s, which did not pass", d.DeviceID)
		}
	}
	if rep.Status != runner.StatusSucceeded {
		t.Errorf("report %s", rep.Status)
	}
}

// TestRetry: devices whose method fails half the time are retried until
// they succeed or the attempts run out; each round retries exactly the
// devices still failing, and a device's latest result is the one kept.
func TestRetry(t *testing.T) {
	h := newFleetHub(t, clock.Real(), `
version: 1
seed: 3
groups:
  - ids: "f-{n:02}"
    count: 20
    tags: {ring: r}
    methods:
      flaky: {status: 200, failureRate: 50%, failureStatus: 500}
`)
	p := parse(t, header+`  - name: flaky
    query: "tags.ring = 'r'"
    method: {name: flaky}
    retry: {attempts: 8, on: [failed]}
`)
	rep, err := (&runner.Runner{Hub: h, Clock: clock.Real()}).Apply(t.Context(), p)
	checkSchema(t, rep)
	s := rep.Steps[0]
	if len(s.Retries) == 0 {
		t.Fatalf("no retries (%v): %+v", err, s)
	}
	failing := 0
	for _, d := range s.Devices {
		if !d.Succeeded {
			failing++
		}
	}
	for i, rr := range s.Retries {
		if i > 0 && rr.Devices > s.Retries[i-1].Devices {
			t.Errorf("retry %d has more devices (%d) than the one before (%d)", rr.Attempt, rr.Devices, s.Retries[i-1].Devices)
		}
	}
	if len(s.Devices) != 20 || (failing == 0) != (err == nil) {
		t.Errorf("%d devices, %d failing after %d rounds, err %v", len(s.Devices), failing, len(s.Retries), err)
	}
	if failing > 0 && len(s.Retries) != 8 {
		t.Errorf("devices still failing after %d of 8 rounds", len(s.Retries))
	}
	t.Logf("first round retried %d devices; %d rounds; %d still failing", s.Retries[0].Devices, len(s.Retries), failing)
}

// TestTwinNoop: a twin step skips the twins that already hold what it
// sets; applied a second time it patches nothing and succeeds.
func TestTwinNoop(t *testing.T) {
	h := newFleetHub(t, clock.Real(), rolloutFleet)
	p := parse(t, header+`  - name: stamp
    query: "tags.ring = 'broad'"
    twin: {desired: {stamp: 1}, tags: {stamped: true}}
`)
	r := &runner.Runner{Hub: h, Clock: clock.Real()}
	first, err := r.Apply(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	checkSchema(t, first)
	if s := first.Steps[0]; s.Noop != 0 || s.DeviceJobStatistics.SucceededCount != 100 || len(s.JobIDs) == 0 {
		t.Fatalf("first run: noop %d, stats %+v, jobs %d", s.Noop, s.DeviceJobStatistics, len(s.JobIDs))
	}
	tw, _ := h.GetTwin(t.Context(), "dev-001")
	second, err := r.Apply(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	checkSchema(t, second)
	s := second.Steps[0]
	if s.Noop != 100 || len(s.JobIDs) != 0 || s.DeviceJobStatistics.DeviceCount != 0 || s.Success == nil || !s.Success.Met {
		t.Fatalf("second run: noop %d, jobs %v, stats %+v, success %+v", s.Noop, s.JobIDs, s.DeviceJobStatistics, s.Success)
	}
	for _, d := range s.Devices {
		if d.Status != runner.DeviceNoop || !d.Succeeded {
			t.Fatalf("device %+v", d)
		}
	}
	if after, _ := h.GetTwin(t.Context(), "dev-001"); after.ETag != tw.ETag || after.Properties.Desired["$version"] != tw.Properties.Desired["$version"] {
		t.Errorf("the no-op run changed the twin: etag %s → %s", tw.ETag, after.ETag)
	}
}
