package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/iotjobs/iotjobs/runner"
)

// failingFleet answers ping with 501 on every device: a step that calls
// it fails, in the dry-run and for real.
const failingFleet = "version: 1\ngroups:\n  - ids: \"d-{n:02}\"\n    count: 5\n    tags: {site: s}\n    methods:\n      ping: {status: 501}\n"

const pingPlan = "version: 1\nname: ping\nsteps:\n  - name: ping-all\n    query: \"tags.site = 's'\"\n    method: {name: ping}\n"

// TestApplyStopsOnPredictedFailure: when the dry-run predicts that a step
// fails, apply stops before touching the hub, naming the step and why;
// the report and JUnit say it stopped. --yes applies anyway.
func TestApplyStopsOnPredictedFailure(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile, report, junit := filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "plan.yaml"), filepath.Join(dir, "report.json"), filepath.Join(dir, "junit.xml")
	data := filepath.Join(dir, "data")
	writeTestFile(t, fleet, failingFleet)
	writeTestFile(t, planFile, pingPlan)
	code, _, stderr := runCLI(t, t.Context(), "apply", "--data", data, "--fleet", fleet, "--report", report, "--junit", junit, planFile)
	if code != exitFailed || !strings.Contains(stderr, "the dry-run predicts that step ping-all fails (0 succeeded, 5 failed (5 failed), 0 no-op, 0 skipped of 5 devices)") ||
		!strings.Contains(stderr, "nothing was applied") || !strings.Contains(stderr, "dry run: nothing was applied") {
		t.Fatalf("exit %d, want 1 naming the step\n%s", code, stderr)
	}
	r := readReport(t, report)
	if !r.DryRun || r.Status != runner.StatusStopped || !strings.Contains(r.Error, "step ping-all fails") {
		t.Errorf("report: dryRun %v, status %s (%s); want the dry-run's, stopped with why", r.DryRun, r.Status, r.Error)
	}
	if b, err := os.ReadFile(junit); err != nil || !strings.Contains(string(b), `type="stopped"`) {
		t.Errorf("JUnit lacks the stop (%v):\n%s", err, b)
	}
	if code, stdout, _ := runCLI(t, t.Context(), "jobs", "list", "--data", data, "-o", "json"); code != 0 || strings.Contains(stdout, "ping") {
		t.Errorf("the stopped apply created jobs: %s", stdout)
	}
	code, _, stderr = runCLI(t, t.Context(), "apply", "--yes", "--data", data, "--fleet", fleet, "--report", report, planFile)
	r = readReport(t, report)
	if code != exitFailed || r.DryRun || r.Status != runner.StatusFailed || len(r.Steps[0].Devices) != 5 ||
		!strings.Contains(stderr, "the hub counts 5 device jobs completed; the verdict differs: 5 answered the method with a status outside 2xx (501 ×5)") {
		t.Errorf("with --yes: exit %d, dryRun %v, status %s, %d devices\n%s", code, r.DryRun, r.Status, len(r.Steps[0].Devices), stderr)
	}
}

// TestApplyReportWhenHubUnreachable: a hub that cannot be reached still
// leaves a report and a JUnit file saying so (exit 3), for CI to keep.
func TestApplyReportWhenHubUnreachable(t *testing.T) {
	dir := t.TempDir()
	planFile, report, junit := filepath.Join(dir, "plan.yaml"), filepath.Join(dir, "report.json"), filepath.Join(dir, "junit.xml")
	writeTestFile(t, planFile, pingPlan)
	cs := "HostName=127.0.0.1:1;SharedAccessKeyName=iothubowner;SharedAccessKey=" + base64.StdEncoding.EncodeToString([]byte("k"))
	for _, extra := range [][]string{nil, {"--skip-dry-run"}} {
		args := append([]string{"apply", "--hub", cs, "--report", report, "--junit", junit}, extra...)
		code, _, stderr := runCLI(t, t.Context(), append(args, planFile)...)
		if code != exitInfra {
			t.Fatalf("%v: exit %d, want 3\n%s", extra, code, stderr)
		}
		r := readReport(t, report)
		if r.Status != runner.StatusError || !strings.Contains(r.Error, "connection refused by 127.0.0.1:1") || r.Hub != "127.0.0.1:1" ||
			len(r.Steps) != 1 || !strings.Contains(r.Steps[0].Reason, "connection refused by 127.0.0.1:1") {
			t.Errorf("%v: report %s %q on %s, steps %+v", extra, r.Status, r.Error, r.Hub, r.Steps)
		}
		if b, err := os.ReadFile(junit); err != nil || !strings.Contains(string(b), `<testcase classname="ping" name="(run)"`) || !strings.Contains(string(b), `type="error"`) {
			t.Errorf("%v: JUnit lacks the error (%v):\n%s", extra, err, b)
		}
		os.Remove(report)
		os.Remove(junit)
	}
}

// TestApplyInterrupted: an interrupted apply exits 130 and its report
// holds every device the cancelled job had finished.
func TestApplyInterrupted(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile, report, junit := filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "plan.yaml"), filepath.Join(dir, "report.json"), filepath.Join(dir, "junit.xml")
	writeTestFile(t, fleet, "version: 1\ngroups:\n  - ids: \"fast-{n:02}\"\n    count: 20\n    tags: {site: s}\n    methods:\n      ping: {status: 200}\n"+
		"  - ids: \"slow-{n:02}\"\n    count: 20\n    tags: {site: s}\n    methods:\n      ping: {status: 200, latency: 1h}\n")
	writeTestFile(t, planFile, "version: 1\nname: ping\nsteps:\n  - name: ping-all\n    query: \"tags.site = 's'\"\n    method: {name: ping, responseTimeout: 5m}\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	lines, done := background(t, ctx, "apply", "--skip-dry-run", "-o", "json", "--data", filepath.Join(dir, "data"), "--fleet", fleet,
		"--report", report, "--junit", junit, planFile)
	waitLine(t, lines, regexp.MustCompile(`"event":"stepProgress".*"phase":"running".*"succeeded":20`))
	cancel()
	go func() {
		for range lines {
		}
	}()
	var code int
	select {
	case code = <-done:
	case <-time.After(time.Minute):
		t.Fatal("apply did not end within a minute of the interrupt")
	}
	if code != exitInterrupted {
		t.Errorf("exit %d, want 130", code)
	}
	r := readReport(t, report)
	s := r.Steps[0]
	if r.Status != runner.StatusCancelled || s.Status != runner.StepCancelled || s.Summary.Succeeded != 20 || len(s.Devices) != 20 || s.Summary.Matched != 40 {
		t.Errorf("report %s, step %s: %s, %d devices; want cancelled with the 20 fast devices of 40", r.Status, s.Status, s.Summary, len(s.Devices))
	}
	for _, d := range s.Devices {
		if !strings.HasPrefix(d.DeviceID, "fast-") || !d.Succeeded {
			t.Errorf("device %+v in the interrupted report", d)
		}
	}
	if _, err := os.Stat(junit); err != nil {
		t.Errorf("no JUnit after the interrupt: %v", err)
	}
}

// TestApplyAsksAtATerminal: with stdin and stderr on a terminal, apply
// shows the dry-run and asks; only "yes" applies; --yes does not ask.
// With stdout on the terminal too, the JSON report is not printed there
// (the summary is), unless --report names a file.
func TestApplyAsksAtATerminal(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile := filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "plan.yaml")
	writeTestFile(t, fleet, strings.ReplaceAll(failingFleet, "501", "200"))
	writeTestFile(t, planFile, pingPlan)
	for _, tc := range []struct {
		name      string
		args      []string
		answer    string // "" asks nothing
		stdoutTTY bool
		code      int
		status    string
	}{
		{"no", nil, "no", false, exitFailed, runner.StatusStopped},
		{"yes", nil, "yes", false, exitOK, runner.StatusSucceeded},
		{"--yes", []string{"--yes"}, "", false, exitOK, runner.StatusSucceeded},
		{"stdout at the terminal", []string{"-y"}, "", true, exitOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			report := filepath.Join(dir, strings.Trim(tc.name, "-")+".json")
			ptmx, tty, err := pty.Open()
			if err != nil {
				t.Skipf("no pseudo-terminal: %v", err)
			}
			defer ptmx.Close()
			args := append([]string{"apply", "--data", filepath.Join(dir, "data"), "--fleet", fleet}, tc.args...)
			if tc.status != "" {
				args = append(args, "--report", report)
			}
			var stdout bytes.Buffer
			cmd := exec.Command(os.Args[0], append(args, planFile)...)
			cmd.Env = append(os.Environ(), execMainEnv+"=1")
			cmd.Stdin, cmd.Stderr, cmd.Stdout = tty, tty, &stdout
			if tc.stdoutTTY {
				cmd.Stdout = tty
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			tty.Close()
			var mu sync.Mutex
			var screen bytes.Buffer
			prompt, ended := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(ended)
				buf := make([]byte, 4096)
				asked := false
				for {
					n, err := ptmx.Read(buf)
					mu.Lock()
					screen.Write(buf[:n])
					if !asked && strings.Contains(screen.String(), "Only 'yes' will be accepted") {
						asked = true
						close(prompt)
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
			if tc.answer != "" {
				select {
				case <-prompt:
				case <-time.After(2 * time.Minute):
					cmd.Process.Kill()
					t.Fatalf("no prompt:\n%s", screen.String())
				}
				ptmx.Write([]byte(tc.answer + "\n"))
			}
			err = cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			select {
			case <-ended:
			case <-time.After(10 * time.Second):
			}
			mu.Lock()
			out := screen.String()
			mu.Unlock()
			if code != tc.code {
				t.Fatalf("exit %d (%v), want %d\n%s", code, err, tc.code, out)
			}
			asked := strings.Contains(out, "Apply plan ping on embedded?")
			if asked != (tc.answer != "") || (asked && !strings.Contains(out, "plan ping (dry run against")) {
				t.Errorf("asked %v (want %v), the dry-run shown first:\n%s", asked, tc.answer != "", out)
			}
			if tc.status != "" {
				if r := readReport(t, report); r.Status != tc.status {
					t.Errorf("report %s, want %s", r.Status, tc.status)
				}
			}
			if tc.code == exitOK && !strings.Contains(out, "ping-all: completed — 5 succeeded") {
				t.Errorf("no verdict on the terminal:\n%s", out)
			}
			if tc.stdoutTTY && (strings.Contains(out, `"reportVersion"`) || !strings.Contains(out, "(the JSON report goes to --report FILE")) {
				t.Errorf("stdout at a terminal: the JSON report printed, or no word of where it goes:\n%s", out)
			}
		})
	}
}
