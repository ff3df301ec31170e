package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/iotjobs/iotjobs/runner"
)

// runCLI runs the CLI in-process and returns its exit code and output.
// TestMain runs main() instead of the tests when a test starts this binary
// as the CLI (see execMainEnv).
func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		main()
		return
	}
	if spec := os.Getenv(labFleetEnv); spec != "" {
		os.Exit(labFleetMain(spec))
	}
	os.Exit(m.Run())
}

func runCLI(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	code := run(ctx, append([]string{"iotjobs"}, args...), strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// syncBuffer is a bytes.Buffer safe for the goroutines that log into it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func readReport(t *testing.T, path string) *runner.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r runner.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report %s: %v\n%s", path, err, b)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := reportSchema(t).Validate(doc); err != nil {
		t.Errorf("report %s does not match runner/report.schema.json: %v", path, err)
	}
	checkReport(t, &r)
	return &r
}

// reportSchema is the committed JSON Schema of reports.
func reportSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile("runner/report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func step(t *testing.T, r *runner.Report, name string) *runner.StepReport {
	t.Helper()
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("report has no step %q", name)
	return nil
}

// checkTutorialReport checks what Done-when item 1 promises.
func checkTutorialReport(t *testing.T, r *runner.Report) {
	t.Helper()
	if r.ReportVersion != 1 || r.Status != runner.StatusSucceeded || r.Plan.Name != "lock-doors" || r.Plan.SHA256 == "" {
		t.Fatalf("report: version %d status %q plan %+v", r.ReportVersion, r.Status, r.Plan)
	}
	lock := step(t, r, "lock-door")
	if lock.Status != "completed" || lock.Type != "scheduleDeviceMethod" || len(lock.JobIDs) != 1 || len(lock.Devices) != 1 {
		t.Fatalf("lock-door: %+v", lock)
	}
	d := lock.Devices[0]
	if d.DeviceID != "myDeviceId" || d.Outcome == nil || d.Outcome.DeviceMethodResponse == nil || d.Outcome.DeviceMethodResponse.Status != 200 {
		t.Fatalf("lock-door device: %+v", d)
	}
	set := step(t, r, "set-building")
	if set.Status != "completed" || set.Type != "scheduleUpdateTwin" || set.DeviceJobStatistics.SucceededCount != 1 {
		t.Fatalf("set-building: %+v", set)
	}
}

func checkTwin(t *testing.T, out string) {
	t.Helper()
	var tw struct {
		Properties struct{ Desired map[string]any }
	}
	if err := json.Unmarshal([]byte(out), &tw); err != nil {
		t.Fatalf("twin show output: %v\n%s", err, out)
	}
	if tw.Properties.Desired["building"] != "43" || tw.Properties.Desired["floor"] != 3.0 {
		t.Fatalf("desired after the plan: %v", tw.Properties.Desired)
	}
}

func TestTutorialEmbedded(t *testing.T) {
	dir := t.TempDir()
	data, rep := filepath.Join(dir, "data"), filepath.Join(dir, "report.json")
	// Flags after the plan work too.
	code, stdout, stderr := runCLI(t, t.Context(), "apply", "--data", data, "--fleet", "examples/fleet.yaml", "examples/lock-door.yaml", "--report", rep)
	if code != 0 {
		t.Fatalf("apply exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	checkTutorialReport(t, readReport(t, rep))
	code, stdout, stderr = runCLI(t, t.Context(), "twin", "show", "--data", data, "myDeviceId")
	if code != 0 {
		t.Fatalf("twin show exit %d: %s", code, stderr)
	}
	checkTwin(t, stdout)

	code, stdout, stderr = runCLI(t, t.Context(), "query", "--data", data, "-o", "json",
		"SELECT tags.building AS building, COUNT() AS n FROM devices GROUP BY tags.building")
	var groups []map[string]any
	if err := json.Unmarshal([]byte(stdout), &groups); code != 0 || err != nil {
		t.Fatalf("query exit %d: %v\n%s%s", code, err, stdout, stderr)
	}
	counts := map[any]any{}
	for _, g := range groups {
		counts[g["building"]] = g["n"]
	}
	if counts["43"] != 151.0 || counts["44"] != 150.0 {
		t.Errorf("devices per building: %v", groups)
	}
	code, stdout, _ = runCLI(t, t.Context(), "query", "--data", data, "-o", "jsonl", "SELECT deviceId FROM devices WHERE tags.floor = 3")
	if code != 0 || strings.TrimSpace(stdout) != `{"deviceId":"myDeviceId"}` {
		t.Errorf("query -o jsonl output %q (exit %d)", stdout, code)
	}
	if code, _, stderr = runCLI(t, t.Context(), "query", "--data", data, "SELECT * FROM devices WHERE"); code != 2 || !strings.Contains(stderr, "ArgumentInvalid") {
		t.Errorf("query syntax error: exit %d, want 2\n%s", code, stderr)
	}
	if code, _, _ = runCLI(t, t.Context(), "twin", "show", "--data", data, "nobody"); code != 1 {
		t.Errorf("twin show of a missing device: exit %d, want 1", code)
	}
}

func TestReportOnStdout(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := runCLI(t, t.Context(), "apply", "--data", data, "--fleet", "examples/fleet.yaml", "examples/lock-door.yaml")
	if code != 0 {
		t.Fatalf("apply exit %d: %s", code, stderr)
	}
	var r runner.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout)
	}
	checkTutorialReport(t, &r)
}

func TestDeviceNotOnline(t *testing.T) {
	dir := t.TempDir()
	data, rep := filepath.Join(dir, "data"), filepath.Join(dir, "report.json")
	if code, _, stderr := runCLI(t, t.Context(), "devices", "create", "--data", data, "myDeviceId"); code != 0 {
		t.Fatalf("devices create: %s", stderr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The dry-run knows the device is off line: apply stops before
	// touching the hub, and --yes runs it anyway.
	code, _, stderr := runCLI(t, ctx, "apply", "--data", data, "--report", rep, "examples/lock-door.yaml")
	if r := readReport(t, rep); code != 1 || r.Status != runner.StatusStopped || !strings.Contains(stderr, "the dry-run predicts that step lock-door fails (0 succeeded, 1 failed (1 offline)") {
		t.Fatalf("apply exit %d, report %s, want 1 and stopped by the dry-run\n%s", code, r.Status, stderr)
	}
	code, _, stderr = runCLI(t, ctx, "apply", "--yes", "--data", data, "--report", rep, "examples/lock-door.yaml")
	if code != 1 {
		t.Fatalf("apply exit %d, want 1\n%s", code, stderr)
	}
	r := readReport(t, rep)
	lock := step(t, r, "lock-door")
	if r.Status != runner.StatusFailed || lock.Status != "failed" || len(lock.Devices) != 1 {
		t.Fatalf("report %q, lock-door %+v", r.Status, lock)
	}
	d := lock.Devices[0]
	if d.Status != "failed" || d.Error == nil || d.Error.Code != "DeviceNotOnline" {
		t.Fatalf("device result %+v", d)
	}
	if s := step(t, r, "set-building"); s.Status != runner.StepSkipped {
		t.Errorf("set-building %q, want skipped", s.Status)
	}
	if !strings.Contains(stderr, "DeviceNotOnline") {
		t.Errorf("stderr does not say why:\n%s", stderr)
	}
}

func TestInvalidPlan(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "typo.yaml")
	src := "version: 1\nname: typo\nsteps:\n  - name: lock\n    query: \"deviceId = 'a'\"\n    methd:\n      name: lockDoor\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"validate", []string{"validate", path}},
		{"apply", []string{"apply", "--data", filepath.Join(dir, "data"), path}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, t.Context(), tc.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\n%s", code, stderr)
			}
			if !strings.Contains(stderr, path+":6:5:") || !strings.Contains(stderr, `did you mean "method"?`) {
				t.Fatalf("diagnostic does not point at 6:5 with a hint:\n%s", stderr)
			}
		})
	}
	code, _, stderr := runCLI(t, t.Context(), "validate", "examples/lock-door.yaml")
	if code != 0 {
		t.Fatalf("examples/lock-door.yaml: exit %d\n%s", code, stderr)
	}
	if code, _, _ := runCLI(t, t.Context(), "apply"); code != 2 {
		t.Errorf("apply without a plan: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, t.Context(), "apply", "--no-such-flag", "x.yaml"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

// background runs the CLI in the background with its stderr and stdout fed,
// line by line, to a channel; done reports its exit code.
func background(t *testing.T, ctx context.Context, args ...string) (<-chan string, <-chan int) {
	t.Helper()
	pr, pw := io.Pipe()
	lines := make(chan string, 1000)
	done := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() {
		code := run(ctx, append([]string{"iotjobs"}, args...), strings.NewReader(""), pw, pw)
		pw.Close()
		done <- code
	}()
	return lines, done
}

// waitLine returns the first line matching re, or fails at the deadline.
func waitLine(t *testing.T, lines <-chan string, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before a line matching %s", re)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("no line matching %s within the deadline", re)
		}
	}
}

// servedConnectionString waits among hub serve's lines for the one it
// prints on stdout once it serves, the path of its connection-string
// file, and returns the connection string the file holds.
func servedConnectionString(t *testing.T, lines <-chan string) string {
	t.Helper()
	path := waitLine(t, lines, regexp.MustCompile(`^(\S*connection-string)$`))[1]
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("hub serve printed %q, not its connection-string file: %v", path, err)
	}
	return strings.TrimSpace(string(b))
}

func TestTutorialOverNetwork(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "hub")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	hubOut, hubDone := background(t, ctx, "hub", "serve", "--data", data, "--https", "127.0.0.1:0", "--mqtts", "127.0.0.1:0")
	mqtt := waitLine(t, hubOut, regexp.MustCompile(`MQTT\s+mqtts://(\S+)`))[1]
	cs := servedConnectionString(t, hubOut)
	go func() {
		for range hubOut { // keep the pipe drained
		}
	}()
	ca := filepath.Join(data, "tls", "ca.pem")

	simCtx, stopSim := context.WithCancel(ctx)
	// No --mqtt: simulate asks the hub where its broker is.
	simOut, simDone := background(t, simCtx, "simulate", "--hub", cs, "--ca", ca, "--fleet", "examples/fleet.yaml", "--every", "50ms")
	if got := waitLine(t, simOut, regexp.MustCompile(`301 connected to (\S+)`))[1]; !strings.HasSuffix(got, mqtt[strings.LastIndex(mqtt, ":"):]) {
		t.Errorf("simulate connected to %s; the hub's broker is %s", got, mqtt)
	}
	waitLine(t, simOut, regexp.MustCompile(`^simulate: 301 of 301 devices connected, 0 method calls, 0 errors$`))
	go func() {
		for range simOut {
		}
	}()

	rep := filepath.Join(dir, "report.json")
	code, stdout, stderr := runCLI(t, ctx, "apply", "--hub", cs, "--ca", ca, "--report", rep, "examples/lock-door.yaml")
	if code != 0 {
		t.Fatalf("apply exit %d\n%s\n%s", code, stdout, stderr)
	}
	r := readReport(t, rep)
	checkTutorialReport(t, r)
	if !strings.HasPrefix(r.Hub, "localhost:") {
		t.Errorf("report hub %q, want the hub's host name", r.Hub)
	}
	code, stdout, stderr = runCLI(t, ctx, "twin", "show", "--hub", cs, "--ca", ca, "myDeviceId")
	if code != 0 {
		t.Fatalf("twin show exit %d: %s", code, stderr)
	}
	checkTwin(t, stdout)

	// Without the CA the hub cannot be trusted: an infrastructure fault.
	code, _, stderr = runCLI(t, ctx, "twin", "show", "--hub", cs, "myDeviceId")
	if code != 3 || !strings.Contains(stderr, "--ca") {
		t.Errorf("without --ca: exit %d, want 3 with a hint about --ca\n%s", code, stderr)
	}

	stopSim()
	if code := <-simDone; code != 0 {
		t.Errorf("simulate exit %d", code)
	}
	// With the device gone, the same plan fails for it, quickly, with exit 1.
	code, _, stderr = runCLI(t, ctx, "apply", "--hub", cs, "--ca", ca, "--report", rep, "examples/lock-door.yaml")
	if code != 1 {
		t.Fatalf("apply without devices: exit %d, want 1\n%s", code, stderr)
	}
	if d := step(t, readReport(t, rep), "lock-door").Devices; len(d) != 1 || d[0].Error == nil || d[0].Error.Code != "DeviceNotOnline" {
		t.Fatalf("lock-door devices without the simulator: %+v", d)
	}
	cancel()
	if code := <-hubDone; code != 0 {
		t.Errorf("hub serve exit %d", code)
	}
}

func TestHubUnreachable(t *testing.T) {
	cs := "HostName=127.0.0.1:1;SharedAccessKeyName=iothubowner;SharedAccessKey=aW90aHVib3duZXItdGVzdC1rZXktMDEyMzQ1Njc4OQ=="
	code, _, stderr := runCLI(t, t.Context(), "apply", "--hub", cs, "examples/lock-door.yaml")
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, stderr)
	}
	code, _, _ = runCLI(t, t.Context(), "apply", "--hub", "HostName=x", "examples/lock-door.yaml")
	if code != 2 {
		t.Fatalf("bad connection string: exit %d, want 2", code)
	}
}
