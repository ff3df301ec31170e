package transcript

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "rewrite the golden files inside the transcripts with what the CLI printed")

// binDir holds the iotjobs binary that TestMain built; moduleRoot is the
// repository it was built from.
var binDir, moduleRoot string

// waitLimit bounds every wait of a transcript (waitfile, waitfor): long
// enough for a hub to start on a loaded 2-core machine, short enough that
// a hub that never comes up fails the script rather than the test binary.
const waitLimit = 60 * time.Second

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "iotjobs-transcript-")
	if err == nil {
		binDir = dir
		err = build(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "transcript:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build builds the iotjobs binary into dir, once for every transcript.
// It is the product's binary, not the test's: -race=false even when the
// tests run with -race (or GOFLAGS says -race), so that a transcript
// takes the time the CLI takes.
func build(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("not inside the iotjobs module: run go test from the repository")
	}
	moduleRoot = filepath.Dir(gomod)
	cmd := exec.Command("go", "build", "-race=false", "-o", filepath.Join(dir, "iotjobs"), "github.com/iotjobs/iotjobs")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build iotjobs: %w\n%s", err, out)
	}
	return nil
}

// TestTranscripts runs every testdata/*.txtar, in parallel.
func TestTranscripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                "testdata",
		UpdateScripts:      *update,
		RequireUniqueNames: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", binDir+string(os.PathListSeparator)+env.Getenv("PATH"))
			// The repository's examples, for the transcripts that run
			// the README's tutorial as it is written.
			env.Setenv("EXAMPLES", filepath.Join(moduleRoot, "examples"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"run":      cmdRun,
			"waitfile": cmdWaitfile,
			"waitfor":  cmdWaitfor,
			"envfile":  cmdEnvfile,
		},
	})
}

// cmdRun is `run CODE PROG [ARGS...]`: exec PROG, keep its stdout and
// stderr for the next stdout, stderr and cmp lines, and fail unless it
// exited CODE. testscript's `! exec` says only "not zero", and the exit
// code is part of the CLI's contract.
func cmdRun(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("usage: run CODE PROG [ARGS...] (no !: CODE says what to expect)")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: run CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil || want < 0 {
		ts.Fatalf("run: CODE %q: give the expected exit code, e.g. run 2 iotjobs validate bad.yaml", args[0])
	}
	got, err := exitCode(ts.Exec(args[1], args[2:]...))
	if err != nil {
		ts.Fatalf("run %s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// exitCode is the exit code of a finished command, from Exec's error.
func exitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.Exited() {
		return ee.ExitCode(), nil
	}
	return -1, err // not started, killed by a signal, or timed out
}

// cmdWaitfile is `waitfile FILE`: wait until FILE exists and is not
// empty, such as the connection string a background hub serve writes
// once it listens.
func cmdWaitfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	path := ts.MkAbs(args[0])
	poll(ts, "waitfile "+args[0], func() (bool, string) {
		fi, err := os.Stat(path)
		if err != nil {
			return false, err.Error()
		}
		return fi.Size() > 0, "the file is empty"
	})
}

// cmdWaitfor is `waitfor REGEXP PROG [ARGS...]`: run PROG until it exits
// 0 with stdout matching REGEXP, such as a query that counts the devices a
// background simulator has connected. Its last run's stdout and stderr
// are kept.
func cmdWaitfor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: waitfor REGEXP PROG [ARGS...]")
	}
	re, err := regexp.Compile(args[0])
	ts.Check(err)
	poll(ts, "waitfor "+args[0], func() (bool, string) {
		if err := ts.Exec(args[1], args[2:]...); err != nil {
			return false, fmt.Sprintf("%s: %v", args[1], err)
		}
		if out := ts.ReadFile("stdout"); !re.MatchString(out) {
			return false, fmt.Sprintf("stdout %q does not match", out)
		}
		return true, ""
	})
}

// poll calls done until it reports true, waitLimit at most: a process in
// the background can tell a transcript that it is ready only through what
// it writes or serves, so the transcript looks, more and more slowly.
func poll(ts *testscript.TestScript, what string, done func() (bool, string)) {
	deadline := time.Now().Add(waitLimit)
	for pause := 20 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		ok, why := done()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s: not after %s: %s", what, waitLimit, why)
		}
		time.Sleep(pause)
	}
}

// cmdEnvfile is `envfile NAME FILE [REGEXP]`: set the environment
// variable NAME to FILE's content without its trailing newline or, with
// REGEXP, to the first group REGEXP matches in it (a job id in a JSON
// listing). FILE may be stdout or stderr, as for cmp.
func cmdEnvfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: envfile NAME FILE [REGEXP]")
	}
	content := ts.ReadFile(args[1])
	value := strings.TrimRight(content, "\r\n")
	if len(args) == 2 && (value == "" || strings.Contains(value, "\n")) {
		ts.Fatalf("envfile: %s: want one non-empty line, got %q", args[1], content)
	}
	if len(args) == 3 {
		re, err := regexp.Compile(args[2])
		ts.Check(err)
		if re.NumSubexp() < 1 {
			ts.Fatalf("envfile: REGEXP %q has no group: put the value in (...)", args[2])
		}
		m := re.FindStringSubmatch(content)
		if m == nil {
			ts.Fatalf("envfile: %s does not match %q", args[1], args[2])
		}
		value = m[1]
	}
	ts.Setenv(args[0], value)
}
