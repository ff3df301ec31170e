package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/runner"
)

// TestPlanCommand: iotjobs plan against a fleet file prints what each step
// would do; --report writes the dry-run report; a pre-flight that fails
// exits 1 with its numbers.
func TestPlanCommand(t *testing.T) {
	rep := filepath.Join(t.TempDir(), "dry.json")
	code, stdout, stderr := runCLI(t, t.Context(), "plan", "--fleet", "examples/firmware-fleet.yaml", "--rate", "10", "--report", rep, "examples/firmware-rollout.yaml")
	if code != 0 {
		t.Fatalf("plan exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"step set-firmware (scheduleUpdateTwin): 63 devices match",
		`properties.desired.firmware → "2.4.1": 63 change (63 from undefined), 0 comply`,
		"batch 1: 7 devices", "batch 2: 25 devices", "batch 3: 31 devices",
		"step reboot (scheduleDeviceMethod): 63 devices match", "(after set-firmware)",
		"only on the devices that pass set-firmware",
		"pre-flight ok: 31 devices at 10 operations/s take 3.1s",
		// Played against the fleet: the three stuck devices never report
		// the firmware, so verify fails them and reboot skips them.
		"simulated: completed — 60 succeeded, 3 failed (3 verify), 0 no-op, 0 skipped of 63 devices",
		"simulated: completed — 60 succeeded, 0 failed, 0 no-op, 0 skipped of 60 devices",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	r := readReport(t, rep)
	if !r.DryRun || r.Steps[0].Preview == nil || r.Steps[0].Preview.Matched != 63 {
		t.Errorf("report: dryRun %v, first step %+v", r.DryRun, r.Steps[0])
	}

	// 63 devices at 0.01 a second need 6,300 s > the hour of maxExecutionTime.
	code, stdout, _ = runCLI(t, t.Context(), "plan", "--fleet", "examples/firmware-fleet.yaml", "--rate", "0.01", "-o", "json", "examples/firmware-rollout.yaml")
	if code != 1 {
		t.Fatalf("plan with a failing pre-flight: exit %d, want 1", code)
	}
	var jr runner.Report
	if err := json.Unmarshal([]byte(stdout), &jr); err != nil {
		t.Fatalf("-o json: %v\n%s", err, stdout)
	}
	rb := jr.Steps[1]
	if jr.Status != runner.StatusFailed || rb.Status != runner.StepFailed || !strings.Contains(rb.Reason, "63 devices at 0.01 operations/s take 1h45m0s, longer than the maxExecutionTime of 1h0m0s") {
		t.Errorf("report %s, reboot %s %q", jr.Status, rb.Status, rb.Reason)
	}
}

// TestPreflight100k: a method step over 100,000 devices cannot finish in
// its hour at 10 operations a second; plan says so with the numbers and
// exits 1.
func TestPreflight100k(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile := filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "plan.yaml")
	writeTestFile(t, fleet, "version: 1\ngroups:\n  - ids: \"d-{n:06}\"\n    count: 100000\n    tags: {site: big}\n    methods:\n      ping: {status: 200}\n")
	writeTestFile(t, planFile, "version: 1\nname: big\nsteps:\n  - name: ping-all\n    query: \"tags.site = 'big'\"\n    method: {name: ping}\n    maxExecutionTime: 1h\n")
	code, stdout, stderr := runCLI(t, t.Context(), "plan", "--no-simulate", "--fleet", fleet, "--rate", "10", planFile)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"100000 devices match", "pre-flight FAILS: 100000 devices at 10 operations/s take 2h46m40s, longer than the maxExecutionTime of 1h0m0s"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

// TestPlanOverRESTWritesNothing: plan against hub serve sends only reads;
// the hub's own request counters (/metrics) say so: no request on any
// route that writes, no method call, no job.
func TestPlanOverRESTWritesNothing(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "hub")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	hubOut, hubDone := background(t, ctx, "hub", "serve", "--data", data, "--https", "127.0.0.1:0", "--mqtts", "127.0.0.1:0")
	https := waitLine(t, hubOut, regexp.MustCompile(`REST API\s+https://(\S+)`))[1]
	cs := servedConnectionString(t, hubOut)
	go func() {
		for range hubOut {
		}
	}()
	ca := filepath.Join(data, "tls", "ca.pem")
	simCtx, stopSim := context.WithCancel(ctx)
	simOut, simDone := background(t, simCtx, "simulate", "--hub", cs, "--ca", ca, "--fleet", "examples/firmware-fleet.yaml")
	waitLine(t, simOut, regexp.MustCompile(`63 connected`))
	go func() {
		for range simOut {
		}
	}()
	before := restRequests(t, https, ca)
	code, stdout, stderr := runCLI(t, ctx, "plan", "--hub", cs, "--ca", ca, "--rate", "10", "examples/firmware-rollout.yaml")
	if code != 0 || !strings.Contains(stdout, "63 devices match") {
		t.Fatalf("plan exit %d\n%s\n%s", code, stdout, stderr)
	}
	after := restRequests(t, https, ca)
	reads := 0
	for route, n := range after {
		if n == before[route] {
			continue
		}
		if route != "POST /devices/query" && !strings.HasPrefix(route, "GET ") {
			t.Errorf("plan sent %d requests to %s", n-before[route], route)
		}
		reads += n - before[route]
	}
	if reads == 0 {
		t.Error("plan sent no request at all")
	}
	stopSim()
	<-simDone
	cancel()
	<-hubDone
}

// restRequests reads the hub's REST request counters by route.
func restRequests(t *testing.T, addr, caFile string) map[string]int {
	t.Helper()
	pool, err := hubd.LoadCA(caFile)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]int{}
	re := regexp.MustCompile(`(?m)^iotjobs_rest_requests_total\{code="\d+",route="([^"]*)"\} (\d+)`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[2])
		out[m[1]] += n
	}
	if len(out) == 0 {
		t.Fatalf("no iotjobs_rest_requests_total in /metrics:\n%.2000s", b)
	}
	return out
}

// TestSavedPlan: plan --out saves the matched devices; apply of the saved
// plan acts on exactly them (not on a device that matches since), and a
// saved plan whose device changed in between is refused, naming it.
func TestSavedPlan(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, t.Context(), append(args, "--data", data)...)
	}
	for _, id := range []string{"a", "b"} {
		if code, _, stderr := cli("devices", "create", id); code != 0 {
			t.Fatal(stderr)
		}
		if code, _, stderr := cli("twin", "patch", id, "--tags", `{"x": "y"}`); code != 0 {
			t.Fatal(stderr)
		}
	}
	planFile, saved := filepath.Join(dir, "plan.yaml"), filepath.Join(dir, "saved.json")
	writeTestFile(t, planFile, "version: 1\nname: stamp\nsteps:\n  - name: stamp\n    query: \"tags.x = 'y'\"\n    twin: {desired: {stamped: true}}\n")
	if code, _, stderr := cli("plan", "--out", saved, planFile); code != 0 {
		t.Fatalf("plan --out: %s", stderr)
	}
	// A device that matches only after the plan was saved is not acted on.
	if code, _, stderr := cli("devices", "create", "c"); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := cli("twin", "patch", "c", "--tags", `{"x": "y"}`); code != 0 {
		t.Fatal(stderr)
	}
	rep := filepath.Join(dir, "report.json")
	if code, _, stderr := cli("apply", "--report", rep, saved); code != 0 {
		t.Fatalf("apply saved plan: exit %d\n%s", code, stderr)
	}
	var ids []string
	for _, d := range readReport(t, rep).Steps[0].Devices {
		ids = append(ids, d.DeviceID)
	}
	if strings.Join(ids, ",") != "a,b" {
		t.Errorf("the saved plan acted on %v, want exactly a and b", ids)
	}
	// Save again, change one twin, apply: refused, naming it.
	if code, _, stderr := cli("plan", "--out", saved, planFile); code != 0 {
		t.Fatalf("plan --out: %s", stderr)
	}
	if code, _, stderr := cli("twin", "patch", "b", "--desired", `{"other": 1}`); code != 0 {
		t.Fatal(stderr)
	}
	code, _, stderr := cli("apply", saved)
	if code != 1 || !strings.Contains(stderr, "the fleet changed since the plan was saved; 1 devices differ: b (etag") {
		t.Fatalf("apply of a drifted saved plan: exit %d, want 1 naming b\n%s", code, stderr)
	}
}

// TestCheck: check exits 0 when every twin complies with the plan's twin
// steps and 1 naming the devices when some drift; -o json lists them.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, t.Context(), append(args, "--data", data)...)
	}
	for _, id := range []string{"a", "b", "c"} {
		if code, _, stderr := cli("devices", "create", id); code != 0 {
			t.Fatal(stderr)
		}
		if code, _, stderr := cli("twin", "patch", id, "--tags", `{"x": "y"}`, "--desired", `{"fw": "2.4.1"}`); code != 0 {
			t.Fatal(stderr)
		}
	}
	planFile := filepath.Join(dir, "plan.yaml")
	writeTestFile(t, planFile, "version: 1\nname: fw\nsteps:\n  - name: fw\n    query: \"tags.x = 'y'\"\n    twin: {desired: {fw: \"2.4.1\"}, tags: {x: \"y\"}}\n  - name: ping\n    query: \"*\"\n    method: {name: ping}\n")
	if code, stdout, stderr := cli("check", planFile); code != 0 || !strings.Contains(stdout, "plan fw: compliant") {
		t.Fatalf("compliant fleet: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := cli("twin", "patch", "b", "--desired", `{"fw": "2.3.0"}`); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, _ := cli("check", planFile)
	if code != 1 || !strings.Contains(stdout, "step fw: 1 of 3 devices drift") || !strings.Contains(stdout, "b: properties.desired.fw") {
		t.Fatalf("drift: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = cli("check", "-o", "json", planFile)
	var res runner.Compliance
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 1 || res.Compliant || len(res.Steps) != 1 ||
		len(res.Steps[0].Drifting) != 1 || res.Steps[0].Drifting[0].DeviceID != "b" {
		t.Fatalf("check -o json: exit %d, %+v (%v)\n%s", code, res, err, stdout)
	}
	writeTestFile(t, planFile, "version: 1\nname: fw\nsteps:\n  - name: fw\n    query: \"tags.x = \"\n    twin: {desired: {fw: \"2.4.1\"}}\n")
	if code, _, _ := cli("check", planFile); code != 2 {
		t.Errorf("invalid plan: exit %d, want 2", code)
	}
}

// TestDryRunFidelity: on a fleet with deterministic failures, the
// dry-run's per-device outcomes and its abort equal those of the live run
// on the embedded hub (real MQTT, real clock), and neither the dry-run
// nor its report touches the hub.
func TestDryRunFidelity(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile := "testdata/reboot-fleet.yaml", filepath.Join(dir, "plan.yaml")
	writeTestFile(t, planFile, `version: 1
name: fidelity
steps:
  - name: stamp
    query: "tags.ring = 'broad'"
    twin: {desired: {stamp: 7}}
    success: {minSuccessRate: 0%}
  - name: reboot
    query: "tags.ring = 'broad'"
    method: {name: reboot}
    abort: {failureRate: 5%, minExecuted: 50}
  - name: never
    query: "*"
    method: {name: reboot}
`)
	dry, live := filepath.Join(dir, "dry.json"), filepath.Join(dir, "live.json")
	if code, _, stderr := runCLI(t, t.Context(), "plan", "--fleet", fleet, "--report", dry, planFile); code != 1 {
		t.Fatalf("plan exit %d, want 1 (the abort trips)\n%s", code, stderr)
	}
	if code, _, stderr := runCLI(t, t.Context(), "apply", "--yes", "--data", filepath.Join(dir, "data"), "--fleet", fleet, "--report", live, planFile); code != 1 {
		t.Fatalf("apply exit %d, want 1\n%s", code, stderr)
	}
	d, l := readReport(t, dry), readReport(t, live)
	if !d.DryRun || l.DryRun {
		t.Errorf("dryRun: %v and %v", d.DryRun, l.DryRun)
	}
	for i := range l.Steps {
		ds, ls := d.Steps[i], l.Steps[i]
		if ds.Status != ls.Status {
			t.Errorf("step %s: dry-run %s, live %s", ls.Name, ds.Status, ls.Status)
		}
		outcome := func(s *runner.StepReport) map[string]string {
			out := map[string]string{}
			for _, dv := range s.Devices {
				out[dv.DeviceID] = fmt.Sprintf("%s/%v", dv.Status, dv.Succeeded)
			}
			return out
		}
		if !reflect.DeepEqual(outcome(ds), outcome(ls)) {
			t.Errorf("step %s: per-device outcomes differ:\ndry-run %v\nlive    %v", ls.Name, outcome(ds), outcome(ls))
		}
	}
	if s := d.Steps[1]; s.Status != runner.StepAborted || s.Abort == nil || s.Abort.Executed != 50 {
		t.Errorf("dry-run reboot: %s %+v", s.Status, s.Abort)
	}
	if s := d.Steps[2]; s.Status != runner.StepSkipped {
		t.Errorf("dry-run never: %s", s.Status)
	}
}

// TestPlanDetailedExitcode: with --detailed-exitcode, plan exits 4 when
// the plan would patch twins or call methods, 0 when every twin complies
// already, and 1 still when a step would fail.
func TestPlanDetailedExitcode(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, steps string
		want        int
	}{
		{"twin changes", `
  - name: stamp
    query: "tags.ring = 'broad'"
    twin: {desired: {stamp: 7}}
    success: {minSuccessRate: 0%}`, 4},
		{"method calls", `
  - name: reboot
    query: "deviceId = 'dev-001'"
    method: {name: reboot}`, 4},
		{"nothing to do", `
  - name: unset
    query: "tags.ring = 'broad'"
    twin: {desired: {neverSet: null}}`, 0},
		{"a step would fail", `
  - name: reboot-all
    query: "tags.ring = 'broad'"
    method: {name: reboot}`, 1},
	} {
		planFile := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
		writeTestFile(t, planFile, "version: 1\nname: exitcode\nsteps:"+tc.steps+"\n")
		code, _, stderr := runCLI(t, t.Context(), "plan", "--detailed-exitcode", "--fleet", "testdata/reboot-fleet.yaml", planFile)
		if code != tc.want {
			t.Errorf("%s: exit %d, want %d\n%s", tc.name, code, tc.want, stderr)
		}
		if code, _, _ := runCLI(t, t.Context(), "plan", "--fleet", "testdata/reboot-fleet.yaml", planFile); tc.want != 1 && code != 0 {
			t.Errorf("%s without --detailed-exitcode: exit %d, want 0", tc.name, code)
		}
	}
}

// TestPlanCronWeek: the dry-run of a cron plan plays every occurrence of
// the next 7 days (the nightly example: one a night, each sensor inside
// its own window) and reports each; the step's own fields are the first
// night's.
func TestPlanCronWeek(t *testing.T) {
	report := filepath.Join(t.TempDir(), "dry.json")
	code, stdout, stderr := runCLI(t, t.Context(), "plan", "--fleet", "examples/nightly-fleet.yaml", "--report", report, "examples/nightly-sync.yaml")
	if code != 0 {
		t.Fatalf("plan exit %d\n%s", code, stderr)
	}
	rep := readReport(t, report)
	s := step(t, rep, "sync-clocks")
	if len(s.Occurrences) != 7 {
		t.Fatalf("%d occurrences simulated, want 7: %+v", len(s.Occurrences), s.Occurrences)
	}
	for i, o := range s.Occurrences {
		if o.Status != "completed" || o.Succeeded != 40 || o.Failed != 0 {
			t.Errorf("night %d: %+v", i+1, o)
		}
		if i > 0 && o.ScheduledAt.Sub(s.Occurrences[i-1].ScheduledAt) != 24*time.Hour {
			t.Errorf("night %d scheduled %v, a day after %v expected", i+1, o.ScheduledAt, s.Occurrences[i-1].ScheduledAt)
		}
		if o.ScheduledAt.Hour() != 0 || o.ScheduledAt.Minute() != 30 {
			t.Errorf("night %d scheduled at %v, want 00:30 UTC", i+1, o.ScheduledAt)
		}
	}
	if len(s.Devices) != 40 || !s.Occurrences[0].ScheduledAt.Before(*s.EndTime) {
		t.Errorf("first night: %d devices, ended %v", len(s.Devices), s.EndTime)
	}
	if !strings.Contains(stdout, "simulated runs in the next 7 days (7)") {
		t.Errorf("the summary does not list the week:\n%s", stdout)
	}
}

// TestApplyPreflight: apply --rate runs the pre-flight in its dry-run and
// stops before touching the hub when a step cannot finish in its
// maxExecutionTime at that rate (exit 1, the dry-run's report, status
// stopped); --yes
// applies anyway.
func TestApplyPreflight(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile, report := filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "plan.yaml"), filepath.Join(dir, "report.json")
	writeTestFile(t, fleet, "version: 1\ngroups:\n  - ids: \"d-{n:04}\"\n    count: 1000\n    tags: {site: big}\n    methods:\n      ping: {status: 200}\n")
	writeTestFile(t, planFile, "version: 1\nname: big\nsteps:\n  - name: ping-all\n    query: \"tags.site = 'big'\"\n    method: {name: ping}\n    maxExecutionTime: 1h\n")
	code, _, stderr := runCLI(t, t.Context(), "apply", "--data", filepath.Join(dir, "data"), "--fleet", fleet, "--rate", "0.1", "--report", report, planFile)
	if code != 1 || !strings.Contains(stderr, "the pre-flight fails for step ping-all: 1000 devices at 0.1 operations/s take 2h46m40s") ||
		!strings.Contains(stderr, "nothing was applied") {
		t.Fatalf("exit %d, want 1 with the pre-flight's numbers\n%s", code, stderr)
	}
	if r := readReport(t, report); !r.DryRun || r.Status != runner.StatusStopped || !strings.Contains(r.Error, "the pre-flight fails for step ping-all") {
		t.Errorf("report: dryRun %v, status %s (%s); want the dry-run's, stopped with why", r.DryRun, r.Status, r.Error)
	}
	code, _, stderr = runCLI(t, t.Context(), "apply", "--yes", "--data", filepath.Join(dir, "data"), "--fleet", fleet, "--rate", "0.1", "--report", report, planFile)
	if r := readReport(t, report); code != 0 || r.DryRun || len(r.Steps[0].Devices) != 1000 {
		t.Errorf("with --yes: exit %d, dryRun %v\n%s", code, r.DryRun, stderr)
	}
}
