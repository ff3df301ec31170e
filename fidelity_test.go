package main

import (
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
	"github.com/iotjobs/iotjobs/simulate"
)

// TestExampleFidelity: for each example plan, on a fleet of 2,000 devices
// or more whose behaviours are deterministic (testdata/fidelity), the
// dry-run (iotjobs plan --fleet: the in-memory hub, in-process devices,
// virtual time) predicts what a live run on the embedded hub (SQLite,
// devices over real MQTT, a real clock) does: the devices each step
// matches, the twin diff, each step's status and every device's outcome.
//
// The live runs use a real clock set, once the fleet is connected, to a
// chosen moment (just before the nightly plan's 00:30 occurrence), and
// running 20 times as fast for the firmware rollout, whose pauses last
// ten minutes.
func TestExampleFidelity(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three plans live over 2,000 MQTT devices each")
	}
	night := time.Date(2026, 11, 27, 0, 29, 57, 0, time.UTC)
	for _, tc := range []struct {
		plan, fleet string
		origin      time.Time
		speed       float64
	}{
		{"examples/lock-door.yaml", "testdata/fidelity/lock-door-fleet.yaml", time.Now(), 1},
		{"examples/nightly-sync.yaml", "testdata/fidelity/nightly-fleet.yaml", night, 1},
		{"examples/firmware-rollout.yaml", "testdata/fidelity/firmware-fleet.yaml", time.Now(), 20},
		// The safety net: an abort on verify failures, with its rollback;
		// a health analysis that fails against its control cohort, and one
		// that an incident hitting batch and control alike does not stop.
		{"testdata/fidelity/abort-verify.yaml", "testdata/fidelity/half-fleet.yaml", time.Now(), 20},
		{"testdata/fidelity/analysis.yaml", "testdata/fidelity/health-fleet.yaml", time.Now(), 20},
		{"testdata/fidelity/analysis.yaml", "testdata/fidelity/incident-fleet.yaml", time.Now(), 20},
	} {
		t.Run(filepath.Base(tc.plan)+"/"+filepath.Base(tc.fleet), func(t *testing.T) {
			dryFile := filepath.Join(t.TempDir(), "dry.json")
			code, _, stderr := runCLI(t, t.Context(), "plan", "--fleet", tc.fleet, "--report", dryFile, tc.plan)
			if code > 1 {
				t.Fatalf("plan exit %d\n%s", code, stderr)
			}
			dry := readReport(t, dryFile)
			preview, live, liveDesired := liveRun(t, tc.plan, tc.fleet, tc.origin, clock.Scaled(tc.origin, tc.speed))
			checkReport(t, live)
			if len(dry.Steps) != len(live.Steps) {
				t.Fatalf("dry-run has %d steps, the live run %d", len(dry.Steps), len(live.Steps))
			}
			for i, ls := range live.Steps {
				ds, pv := dry.Steps[i], preview.Steps[i].Preview
				if ds.Preview.Matched != pv.Matched {
					t.Errorf("step %s: dry-run matches %d devices, the live hub %d", ls.Name, ds.Preview.Matched, pv.Matched)
				}
				if !reflect.DeepEqual(ds.Preview.TwinDiff, pv.TwinDiff) || ds.Preview.Noop != pv.Noop {
					t.Errorf("step %s: twin diff\ndry-run %+v (%d no-op)\nlive    %+v (%d no-op)", ls.Name, ds.Preview.TwinDiff, ds.Preview.Noop, pv.TwinDiff, pv.Noop)
				}
				if ds.Status != ls.Status {
					t.Errorf("step %s: dry-run %s (%s), live %s (%s)", ls.Name, ds.Status, ds.Reason, ls.Status, ls.Reason)
				}
				d, l := outcomeClasses(ds), outcomeClasses(ls)
				if !reflect.DeepEqual(d, l) {
					for _, id := range slices.Sorted(maps.Keys(l)) {
						if d[id] != l[id] {
							t.Errorf("step %s: device %s: dry-run %q, live %q", ls.Name, id, d[id], l[id])
							break
						}
					}
					t.Errorf("step %s: %d devices in the dry-run, %d live; outcomes differ", ls.Name, len(d), len(l))
				}
				if ds.Summary.String() != ls.Summary.String() {
					t.Errorf("step %s: dry-run %s, live %s", ls.Name, ds.Summary, ls.Summary)
				}
				if d, l := analysisOutcome(ds), analysisOutcome(ls); d != l {
					t.Errorf("step %s: analysis\ndry-run %s\nlive    %s", ls.Name, d, l)
				}
				if d, l := rollbackOutcome(ds), rollbackOutcome(ls); d != l {
					t.Errorf("step %s: rollback\ndry-run %s\nlive    %s", ls.Name, d, l)
				}
				t.Logf("step %s: %s, %d devices (%s)", ls.Name, ls.Status, len(l), classCounts(l))
			}
			if len(live.Steps[0].Devices) == 0 {
				t.Error("the live run touched no device")
			}
			if rb := live.Steps[0].Rollback; rb != nil && rb.Trigger != "" {
				// The twins say so too: every restored device holds its
				// previous desired firmware (none) again.
				for _, d := range rb.Devices {
					if fw, ok := liveDesired[d.DeviceID]; d.Status == runner.RolledBack && ok {
						t.Errorf("device %s: desired firmware %v after its rollback", d.DeviceID, fw)
					}
				}
				t.Logf("rollback (%s): %d restored", rb.Trigger, rb.Restored)
			}
		})
	}
}

// liveRun runs a plan on a fresh embedded hub with the fleet's devices
// connected over MQTT, all on clk, set to at when they are: the hub's
// preview of the plan (read before the run), the run's report, and the
// devices' desired firmware afterwards (where they have one).
func liveRun(t *testing.T, planFile, fleetFile string, at time.Time, clk *clock.ScaledClock) (preview, rep *runner.Report, firmware map[string]any) {
	t.Helper()
	ctx := t.Context()
	quiet := slog.New(slog.DiscardHandler)
	h, err := hubd.Open(ctx, hubd.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fl, ds := simulate.Load(fleetFile)
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	devs := fl.Devices()
	keys, err := simulate.Register(ctx, h.Client(), devs)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := hubd.LoadCA(h.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulate.Connect(ctx, devs, keys, simulate.Options{Addr: h.MQTTAddr(), HostName: h.HostName(), RootCAs: pool, Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	p, pds := plan.Load(planFile)
	if pds.HasErrors() {
		t.Fatal(pds)
	}
	clk.Set(at)
	r := &runner.Runner{Hub: h.Client(), Clock: clk, HubName: "embedded"}
	if preview, err = r.Preview(ctx, p, runner.PreviewOptions{}); err != nil {
		t.Fatalf("preview on the live hub: %v", err)
	}
	rep, _ = r.Apply(ctx, p)
	if rep == nil {
		t.Fatal("no report from the live run")
	}
	twins, err := runner.ReadTwins(ctx, h.Client(), "*")
	if err != nil {
		t.Fatal(err)
	}
	firmware = map[string]any{}
	for _, tw := range twins {
		if fw, ok := tw.Properties.Desired["firmware"]; ok {
			firmware[tw.DeviceID] = fw
		}
	}
	return preview, rep, firmware
}

// analysisOutcome is what a step's health analyses found, batch by
// batch: their verdicts, the devices that failed, the control cohort.
func analysisOutcome(s *runner.StepReport) string {
	var b strings.Builder
	for _, a := range s.Analysis {
		fmt.Fprintf(&b, "batch %d: pass=%v %d/%d failed=%v", a.Batch, a.Pass, a.Passed, a.Devices, a.FailedDevices)
		if c := a.Control; c != nil {
			fmt.Fprintf(&b, " control %d/%d %v", c.Passed, len(c.DeviceIDs), c.DeviceIDs)
		}
		b.WriteString("; ")
	}
	return b.String()
}

// rollbackOutcome is what a step's rollback did, device by device.
func rollbackOutcome(s *runner.StepReport) string {
	rb := s.Rollback
	if rb == nil || rb.Trigger == "" {
		return "none"
	}
	by := map[string][]string{}
	for _, d := range rb.Devices {
		by[d.Status] = append(by[d.Status], d.DeviceID)
	}
	for _, ids := range by {
		slices.Sort(ids)
	}
	return fmt.Sprintf("%s: %d restored, %d conflicts, %d failed %v", rb.Trigger, rb.Restored, rb.Conflicts, rb.Failed, by)
}

// outcomeClasses is each device's outcome in a step: its status, whether
// it succeeded, its error code, and whether verify saw it comply.
func outcomeClasses(s *runner.StepReport) map[string]string {
	out := map[string]string{}
	for _, d := range s.Devices {
		class := fmt.Sprintf("%s succeeded=%v", d.Status, d.Succeeded)
		if d.Error != nil {
			class += " " + d.Error.Code
		}
		if d.Outcome != nil && d.Outcome.DeviceMethodResponse != nil {
			class += fmt.Sprintf(" status=%d", d.Outcome.DeviceMethodResponse.Status)
		}
		if d.Verified != nil {
			class += fmt.Sprintf(" verified=%v", *d.Verified)
		}
		out[d.DeviceID] = class
	}
	return out
}

// classCounts sums outcome classes up for the log.
func classCounts(m map[string]string) string {
	n := map[string]int{}
	for _, c := range m {
		n[c]++
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%d %s", n[c], c))
	}
	return fmt.Sprint(parts)
}
