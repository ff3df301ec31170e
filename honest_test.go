package main

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/runner"
)

// TestDryRunPredictsOffline: against a hub where some devices are
// connected and some are not, plan predicts DeviceNotOnline for exactly
// the offline ones (after the step's connect timeout) and success for the
// online ones, and a verify failure for the offline ones' twin patch; it
// says so, and what it assumed, in its text and its report. apply then
// agrees with the prediction, device by device.
func TestDryRunPredictsOffline(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile := filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "plan.yaml")
	writeTestFile(t, fleet, `version: 1
groups:
  - ids: "on-{n}"
    count: 3
    tags: {ring: h}
    desired: {report: true}
    methods:
      reboot: {status: 200}
  - ids: "off-{n}"
    count: 2
    tags: {ring: h}
    offline: 100%
    methods:
      reboot: {status: 200}
`)
	writeTestFile(t, planFile, `version: 1
name: honest
steps:
  - name: reboot
    query: "tags.ring = 'h'"
    method: {name: reboot, connectTimeout: 1s}
    success: {minSuccessRate: 0%}
  - name: stamp
    query: "tags.ring = 'h'"
    twin: {desired: {stamp: 7}}
    verify: {query: "properties.reported.stamp = 7", timeout: 2s}
`)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	data := filepath.Join(dir, "hub")
	hubOut, hubDone := background(t, ctx, "hub", "serve", "--data", data, "--https", "127.0.0.1:0", "--mqtts", "127.0.0.1:0")
	cs := servedConnectionString(t, hubOut)
	go func() {
		for range hubOut {
		}
	}()
	host := regexp.MustCompile(`HostName=([^;]+)`).FindStringSubmatch(cs)[1]
	ca := filepath.Join(data, "tls", "ca.pem")
	simCtx, stopSim := context.WithCancel(ctx)
	simOut, simDone := background(t, simCtx, "simulate", "--hub", cs, "--ca", ca, "--fleet", fleet)
	// Printed once the hub sees the three online devices connected.
	waitLine(t, simOut, regexp.MustCompile(`5 devices registered, 3 connected`))
	go func() {
		for range simOut {
		}
	}()

	dry, live := filepath.Join(dir, "dry.json"), filepath.Join(dir, "live.json")
	code, stdout, stderr := runCLI(t, ctx, "plan", "--hub", cs, "--ca", ca, "--report", dry, planFile)
	if code != 1 {
		t.Fatalf("plan exit %d, want 1 (stamp fails verify on the offline devices)\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"plan honest (dry run against hub " + host + "): failed",
		"Assumed:",
		"devices online on hub " + host + " (3) stay online and answer every method with status 200 at once",
		"devices offline on hub " + host + " (2: disconnected or disabled) stay offline for the whole run; methods to them fail with DeviceNotOnline after connectTimeout 1s",
		"simulated: completed — 3 succeeded, 2 failed (2 offline)",
		"simulated: failed — 3 succeeded, 2 failed (2 verify)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan's output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "step(s) would not succeed: stamp (see "+dry+")") {
		t.Errorf("plan's error does not point at its report:\n%s", stderr)
	}
	d := readReport(t, dry)
	if sim := d.Simulation; !d.DryRun || d.Hub != host || sim == nil || !sim.Simulated || sim.Against != "hub "+host ||
		!slices.ContainsFunc(sim.Assumptions, func(a string) bool { return strings.Contains(a, "stay offline for the whole run") }) {
		t.Errorf("dry-run report: dryRun %v, hub %q, simulation %+v", d.DryRun, d.Hub, d.Simulation)
	}
	reboot := step(t, d, "reboot")
	for _, dv := range reboot.Devices {
		offline := strings.HasPrefix(dv.DeviceID, "off-")
		if got := dv.Error != nil && dv.Error.Code == "DeviceNotOnline"; got != offline || dv.Succeeded == offline {
			t.Errorf("dry-run reboot on %s: %+v (error %+v), want DeviceNotOnline exactly for the offline devices", dv.DeviceID, dv, dv.Error)
		}
	}
	for _, s := range d.Steps {
		for _, id := range s.JobIDs {
			if !strings.HasPrefix(id, runner.SimulatedJobPrefix) {
				t.Errorf("dry-run step %s: job id %s is not marked simulated", s.Name, id)
			}
		}
	}

	if code, _, stderr := runCLI(t, ctx, "apply", "--yes", "--hub", cs, "--ca", ca, "--report", live, planFile); code != 1 {
		t.Fatalf("apply exit %d, want 1\n%s", code, stderr)
	}
	stopSim()
	<-simDone
	cancel()
	<-hubDone

	l := readReport(t, live)
	if l.DryRun || l.Simulation != nil {
		t.Errorf("the live report says dryRun %v, simulation %+v", l.DryRun, l.Simulation)
	}
	outcome := func(s *runner.StepReport) map[string]string {
		out := map[string]string{}
		for _, dv := range s.Devices {
			code := ""
			if dv.Error != nil {
				code = dv.Error.Code
			}
			out[dv.DeviceID] = fmt.Sprintf("%s/%v/%s", dv.Status, dv.Succeeded, code)
		}
		return out
	}
	for i, ls := range l.Steps {
		ds := d.Steps[i]
		if ds.Status != ls.Status || !reflect.DeepEqual(outcome(ds), outcome(ls)) {
			t.Errorf("step %s: dry-run %s %v\nlive %s %v", ls.Name, ds.Status, outcome(ds), ls.Status, outcome(ls))
		}
		for _, id := range ls.JobIDs {
			if strings.HasPrefix(id, runner.SimulatedJobPrefix) {
				t.Errorf("live step %s: job id %s is marked simulated", ls.Name, id)
			}
		}
	}
}

// TestDryRunSaysWhatItPlayed: every dry-run report names what it was
// played against (a fleet file, never the embedded hub it did not run
// on; or the hub it copied) and what it assumed, and one that simulated
// nothing (--no-simulate) claims no success; a failing plan without
// --report points at its output, not at a report.
func TestDryRunSaysWhatItPlayed(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if code, _, stderr := runCLI(t, t.Context(), "devices", "create", "--data", data, "myDeviceId"); code != 0 {
		t.Fatal(stderr)
	}
	const fleet = "examples/fleet.yaml"
	for _, tc := range []struct {
		name       string
		args       []string
		hub        string
		against    string
		simulated  bool
		status     string
		assumption string // one of its assumptions contains this
		text       []string
	}{
		{"plan --fleet", []string{"plan", "--fleet", fleet}, "fleet " + fleet, "fleet " + fleet, true, runner.StatusSucceeded,
			"played against fleet " + fleet + ": its devices behave as the file says",
			[]string{"(dry run against fleet " + fleet + "): succeeded", "Assumed:\n  - played against fleet"}},
		{"apply --dry-run --fleet", []string{"apply", "--dry-run", "--data", data, "--fleet", fleet}, "fleet " + fleet, "fleet " + fleet, true, runner.StatusSucceeded,
			"the fleet's devices that hub embedded holds start from their twins there", nil},
		{"plan against the embedded hub", []string{"plan", "--data", data}, "embedded", "hub embedded", true, runner.StatusFailed,
			"devices offline on hub embedded (1: disconnected or disabled)",
			[]string{"(dry run against hub embedded): failed", "simulated: failed — 0 succeeded, 1 failed (1 offline)"}},
		{"plan --no-simulate", []string{"plan", "--no-simulate", "--rate", "10", "--fleet", fleet}, "fleet " + fleet, "fleet " + fleet, false, runner.StatusPlanned,
			"the hub runs 10 device operations per second",
			[]string{"(dry run against fleet " + fleet + "): not simulated\n", "pre-flight ok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			report := filepath.Join(t.TempDir(), "report.json")
			code, stdout, stderr := runCLI(t, t.Context(), append(tc.args, "--report", report, "examples/lock-door.yaml")...)
			if want := map[string]int{runner.StatusFailed: 1}[tc.status]; code != want {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, want, stdout, stderr)
			}
			r := readReport(t, report)
			sim := r.Simulation
			if !r.DryRun || r.Hub != tc.hub || r.Status != tc.status || sim == nil || sim.Against != tc.against || sim.Simulated != tc.simulated ||
				!slices.ContainsFunc(sim.Assumptions, func(a string) bool { return strings.Contains(a, tc.assumption) }) {
				t.Errorf("report: dryRun %v, hub %q, status %s, simulation %+v; want hub %q, status %s, against %q, simulated %v, an assumption with %q",
					r.DryRun, r.Hub, r.Status, sim, tc.hub, tc.status, tc.against, tc.simulated, tc.assumption)
			}
			for _, want := range tc.text {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			if !tc.simulated && (strings.Contains(stdout, "simulated:") || strings.Contains(stdout, "succeeded")) {
				t.Errorf("a dry-run that simulated nothing predicts an outcome:\n%s", stdout)
			}
		})
	}

	// Without --report, nothing says "see the report".
	code, stdout, stderr := runCLI(t, t.Context(), "plan", "--data", data, "examples/lock-door.yaml")
	if code != 1 || strings.Contains(stdout+stderr, "see the report") || !strings.Contains(stderr, "step(s) would not succeed: lock-door, set-building (see the dry-run's output)") {
		t.Errorf("plan without --report: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
