//go:build unix

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/rest"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/internal/pgtest"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
	"github.com/iotjobs/iotjobs/simulate"
)

// execMainEnv makes the test binary run main() instead of the tests, so
// that a test can run the CLI as a process of its own (and kill it).
const execMainEnv = "IOTJOBS_TEST_EXEC_MAIN"

// hubProcess is `iotjobs hub serve` in a process of its own: the test
// binary running main(), or exe when set.
type hubProcess struct {
	t      *testing.T
	exe    string
	wrap   []string // a command that runs it, such as ip netns exec NS
	args   []string
	cmd    *exec.Cmd
	stderr *syncBuffer
	exit   chan struct{} // closed when the process has exited
}

// dir is the hub's --data.
func (h *hubProcess) dir() string {
	for i, a := range h.args {
		if a == "--data" && i+1 < len(h.args) {
			return h.args[i+1]
		}
	}
	return ""
}

// plainBinary builds iotjobs without the race detector. Under -race the
// crash test's hub runs this: the detector has nothing to find in a
// process the test only kills and restarts (the engine's concurrency is
// tested under it elsewhere), and it makes each restart, with 2,000
// devices reconnecting over TLS, take many seconds.
func plainBinary(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "iotjobs")
	out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// start runs the hub and waits until it serves: once its REST API and
// broker listen, it prints on stdout the path of the file that holds its
// connection string. The file may be a previous run's until then (a
// restart on the same data), so only the line says it is this run's.
func (h *hubProcess) start() *sas.ConnectionString {
	h.t.Helper()
	exe := h.exe
	if exe == "" {
		exe = os.Args[0]
	}
	argv := append(append(append([]string{}, h.wrap...), exe, "hub", "serve"), h.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), execMainEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	stderr := new(syncBuffer)
	h.stderr = stderr
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.cmd, h.exit = cmd, make(chan struct{})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		for sc.Scan() {
		}
		cmd.Wait()
		close(h.exit)
	}()
	select {
	case l := <-line:
		b, err := os.ReadFile(l)
		if err != nil {
			h.t.Fatalf("hub printed %q, not its connection-string file: %v", l, err)
		}
		cs, err := sas.ParseConnectionString(strings.TrimSpace(string(b)))
		if err != nil {
			h.t.Fatalf("%s holds no connection string: %v", l, err)
		}
		return cs
	case <-h.exit:
		h.t.Fatalf("hub exited before serving:\n%s", stderr.String())
	case <-time.After(3 * time.Minute): // a restart resumes the job; CI runs other packages' tests beside it, under -race
		h.t.Fatalf("hub not serving after 3 minutes:\n%s", stderr.String())
	}
	return nil
}

// kill ends the hub with SIGKILL: no shutdown code runs.
func (h *hubProcess) kill() {
	h.t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		h.t.Fatal(err)
	}
	<-h.exit
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestCrashResume kills the hub process with SIGKILL at random moments of
// a 2,000-device method job and of a 2,000-device twin job, restarting it
// each time on the same data, while 2,000 simulated devices stay connected
// (reconnecting after each restart). Afterwards both jobs have completed,
// every device has exactly one final record, no device got the method
// twice (methods run at most once), every device that the record says
// answered got it exactly once, and every twin's desired $version went up
// by exactly one.
func TestCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a hub process 8 to 22 times")
	}
	crashResume(t, "")
}

// TestCrashResumePostgres is TestCrashResume with the hub's store on
// PostgreSQL (a schema of its own).
func TestCrashResumePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a hub process 8 to 22 times")
	}
	_, u := pgtest.Schema(t)
	crashResume(t, u)
}

// crashResume is the crash test on the store of storeURL ("": SQLite in
// the data directory).
func crashResume(t *testing.T, storeURL string) {
	// Under -race the test's own 2,000 devices reconnect slowly after each
	// restart, so it kills fewer times, in slower jobs.
	const devices = 2000
	// A restart costs the job a second or two; at 50 operations a second
	// (40 under -race) each job runs 40 s or more of work, so the kills,
	// each after a few hundred devices' progress, land inside it.
	killsPerJob, opsPerSecond := 11, "50"
	if raceEnabled {
		killsPerJob, opsPerSecond = 4, "40"
	}
	if storeURL != "" {
		// The second store's run: the same kills in faster jobs, to keep
		// CI's time in bounds.
		opsPerSecond = "100"
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("IOTJOBS_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("kill moments from seed %d (IOTJOBS_CRASH_SEED=%d repeats them)", seed, seed)
	rng := mrand.New(mrand.NewPCG(seed, 0))

	dir := t.TempDir()
	mqttAddr := freeAddr(t)
	exe := ""
	if raceEnabled {
		exe = plainBinary(t)
	}
	h := &hubProcess{t: t, exe: exe, args: []string{"--data", dir, "--https", freeAddr(t), "--mqtts", mqttAddr, "--ops-per-second", opsPerSecond}}
	if storeURL != "" {
		h.args = append(h.args, "--store", storeURL)
	}
	cs := h.start()
	defer func() {
		if h.cmd.ProcessState == nil {
			h.kill()
		}
	}()
	ca, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c, err := rest.NewClient(cs, rest.Options{RootCAs: pool, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// The fleet, registered in bulk with keys of our own.
	keys := map[string]string{}
	var devs []*simulate.Device
	for i := range devices {
		id := fmt.Sprintf("crash-%04d", i)
		b := make([]byte, 32)
		rand.Read(b)
		keys[id] = base64.StdEncoding.EncodeToString(b)
		devs = append(devs, &simulate.Device{ID: id, Tags: map[string]any{}, Reported: map[string]any{},
			Methods: map[string]*simulate.Method{"reboot": {Status: 200}}})
	}
	for i := 0; i < devices; i += hub.MaxImportDevices {
		var batch []*hub.ImportDevice
		for _, d := range devs[i:min(i+hub.MaxImportDevices, devices)] {
			batch = append(batch, &hub.ImportDevice{ID: d.ID, ImportMode: "create", Authentication: &hub.Authentication{Type: "sas",
				SymmetricKey: hub.SymmetricKey{PrimaryKey: keys[d.ID], SecondaryKey: keys[d.ID]}}})
		}
		res, err := c.ImportDevices(ctx, batch)
		if err != nil || !res.IsSuccessful {
			t.Fatalf("import devices: %v %+v", err, res)
		}
	}
	var mu sync.Mutex
	calls := map[string]int{}
	sim, err := simulate.Connect(ctx, devs, keys, simulate.Options{
		Addr: mqttAddr, HostName: cs.HostName, RootCAs: pool, Logger: slog.New(slog.DiscardHandler),
		OnMethod: func(id, _ string) {
			mu.Lock()
			calls[id]++
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	before := desiredVersions(t, ctx, c)

	// crash kills the hub at random moments of the job until it has done
	// so kills times, restarting it after each. Each kill comes a random
	// 0.1–0.8 s after the job has moved since the last (its devices have
	// reconnected and work goes on), so that it lands in the job's work,
	// however long a restart takes.
	done := func(j *hub.Job) int {
		if s := j.DeviceJobStatistics; s != nil {
			return s.SucceededCount + s.FailedCount + s.RunningCount
		}
		return 0
	}
	crash := func(jobID string, kills int) {
		last := -1
		for k := 0; k < kills; k++ {
			for {
				j, err := c.GetJob(ctx, jobID)
				if err != nil {
					t.Fatalf("get job %s: %v", jobID, err)
				}
				if j.EndTime != nil || done(j) > last {
					break
				}
				select {
				case <-time.After(50 * time.Millisecond):
				case <-h.exit:
					t.Fatal("the hub exited by itself")
				}
			}
			select {
			case <-time.After(time.Duration(100+rng.IntN(700)) * time.Millisecond):
			case <-h.exit:
				t.Fatal("the hub exited by itself")
			}
			j, err := c.GetJob(ctx, jobID)
			if err != nil {
				t.Fatalf("get job %s: %v", jobID, err)
			}
			if j.EndTime != nil {
				t.Fatalf("job %s ended after %d kills; the test wants %d inside it", jobID, k, kills)
			}
			t.Logf("kill %d: job %s %s %+v", k+1, jobID, j.Status, *j.DeviceJobStatistics)
			last = done(j)
			h.kill()
			h.start()
		}
	}
	waitEnded := func(jobID string) *hub.Job {
		j, err := c.WatchJob(ctx, jobID, nil)
		for err == nil && j.EndTime == nil {
			j, err = c.WatchJob(ctx, jobID, j)
		}
		if err != nil {
			t.Fatalf("watch job %s: %v", jobID, err)
		}
		return j
	}

	// The method job: devices get 60 s to come back after a restart.
	if _, err := c.CreateJob(ctx, &hub.Job{JobID: "crash-method", Type: hub.JobDeviceMethod, QueryCondition: "STARTSWITH(deviceId, 'crash-')",
		MaxExecutionTimeInSeconds: 900,
		CloudToDeviceMethod:       &hub.MethodRequest{MethodName: "reboot", ResponseTimeoutInSeconds: 30, ConnectTimeoutInSeconds: 60}}); err != nil {
		t.Fatal(err)
	}
	crash("crash-method", killsPerJob)
	j := waitEnded("crash-method")
	recs := jobRecords(t, ctx, c, "crash-method", devices)
	mu.Lock()
	unknown := 0
	for id, dj := range recs {
		n := calls[id]
		switch {
		case n > 1:
			t.Errorf("device %s got the method %d times", id, n)
		case dj.Status == hub.DeviceJobCompleted && n != 1:
			t.Errorf("device %s recorded completed but got the method %d times", id, n)
		case dj.Status == hub.DeviceJobFailed && dj.Error != nil && dj.Error.Code == engine.CodeMethodOutcomeUnknown:
			unknown++
		case dj.Status != hub.DeviceJobCompleted:
			t.Errorf("device %s: %s %+v", id, dj.Status, dj.Error)
		}
	}
	mu.Unlock()
	t.Logf("method job: %s %+v; %d calls in flight at a kill recorded as %s", j.Status, *j.DeviceJobStatistics, unknown, engine.CodeMethodOutcomeUnknown)
	checkStats(t, j, recs)

	// The twin job.
	if _, err := c.CreateJob(ctx, &hub.Job{JobID: "crash-twin", Type: hub.JobUpdateTwin, QueryCondition: "STARTSWITH(deviceId, 'crash-')",
		UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"fw": "2.4.1"}}}}); err != nil {
		t.Fatal(err)
	}
	crash("crash-twin", killsPerJob)
	j = waitEnded("crash-twin")
	recs = jobRecords(t, ctx, c, "crash-twin", devices)
	for id, dj := range recs {
		if dj.Status != hub.DeviceJobCompleted {
			t.Errorf("twin job, device %s: %s %+v", id, dj.Status, dj.Error)
		}
	}
	checkStats(t, j, recs)
	after := desiredVersions(t, ctx, c)
	for id, v := range before {
		if after[id] != v+1 {
			t.Errorf("device %s: desired $version %d before the twin job, %d after; want exactly one more", id, v, after[id])
		}
	}

	// The rollback of that patch, as iotjobs rollback runs it from a
	// report: fw was absent before, so it is deleted, etag-guarded, in
	// restore jobs (about 500 devices each) that the hub is killed inside
	// twice each. The runner waits out each restart; each twin is restored
	// exactly once.
	rep := &runner.Report{ReportVersion: runner.ReportVersion, Plan: runner.PlanRef{Name: "crash"}, Steps: []*runner.StepReport{{
		Name: "crash-twin", Type: string(hub.JobUpdateTwin), Status: runner.StepCompleted,
		Rollback: &runner.RollbackReport{On: []string{}, Saved: []runner.SavedValues{{
			Values: map[string]any{"properties.desired.fw": nil}, ETags: etagsOf(t, ctx, c)}}},
	}}}
	created := make(chan string, 16)
	rolled := make(chan error, 1)
	go func() {
		r := &runner.Runner{Hub: c, Clock: clock.Real(), Observer: jobObserver(created)}
		_, err := r.RollBack(ctx, rep, nil)
		rolled <- err
	}()
	for done := false; !done; {
		select {
		case id := <-created:
			crash(id, 2)
		case err := <-rolled:
			if err != nil {
				t.Fatalf("rollback: %v", err)
			}
			done = true
		}
	}
	rb := rep.Steps[0].Rollback
	if rb.Restored != devices || rb.Conflicts != 0 || rb.Failed != 0 {
		t.Errorf("rollback: %d restored, %d conflicts, %d failed of %d", rb.Restored, rb.Conflicts, rb.Failed, devices)
	}
	restored := desiredVersions(t, ctx, c)
	for id, v := range after {
		if restored[id] != v+1 {
			t.Errorf("device %s: desired $version %d before the rollback, %d after; want exactly one more", id, v, restored[id])
		}
	}
}

// jobObserver sends the id of every job a run creates.
type jobObserver chan string

func (o jobObserver) StepStarted(_ *plan.Step, jobID string) { o <- jobID }
func (jobObserver) JobChanged(*plan.Step, *hub.Job)          {}
func (jobObserver) StepFinished(*runner.StepReport)          {}
func (jobObserver) Finish(*runner.Report) error              { return nil }

// etagsOf reads the etag of every crash- twin, grouped as a report's
// saved values hold them.
func etagsOf(t *testing.T, ctx context.Context, c hub.Client) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	opts := hub.QueryOptions{PageSize: 1000}
	for {
		res, err := c.Query(ctx, "SELECT deviceId, etag FROM devices WHERE STARTSWITH(deviceId, 'crash-')", opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range res.Items {
			var row struct{ DeviceID, ETag string }
			if err := json.Unmarshal(item, &row); err != nil {
				t.Fatal(err)
			}
			out[row.ETag] = append(out[row.ETag], row.DeviceID)
		}
		if res.Continuation == "" {
			return out
		}
		opts.Continuation = res.Continuation
	}
}

// checkStats compares a finished job's statistics with its records.
func checkStats(t *testing.T, j *hub.Job, recs map[string]*hub.DeviceJob) {
	t.Helper()
	var want hub.DeviceJobStatistics
	want.DeviceCount = len(recs)
	for _, dj := range recs {
		if dj.Status == hub.DeviceJobCompleted {
			want.SucceededCount++
		} else {
			want.FailedCount++
		}
	}
	if j.Status != hub.JobCompleted || *j.DeviceJobStatistics != want {
		t.Errorf("job %s: %s %+v, records say %+v", j.JobID, j.Status, *j.DeviceJobStatistics, want)
	}
}

// jobRecords reads a job's device records and checks there is exactly one
// per device, each final.
func jobRecords(t *testing.T, ctx context.Context, c hub.Client, jobID string, devices int) map[string]*hub.DeviceJob {
	t.Helper()
	out := map[string]*hub.DeviceJob{}
	opts := hub.QueryOptions{PageSize: 1000}
	for {
		res, err := c.Query(ctx, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+jobID+"'", opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range res.Items {
			dj := new(hub.DeviceJob)
			if err := json.Unmarshal(item, dj); err != nil {
				t.Fatal(err)
			}
			if out[dj.DeviceID] != nil {
				t.Errorf("job %s: two records for device %s", jobID, dj.DeviceID)
			}
			if !dj.Status.Terminal() {
				t.Errorf("job %s: device %s ended %s", jobID, dj.DeviceID, dj.Status)
			}
			out[dj.DeviceID] = dj
		}
		if res.Continuation == "" {
			break
		}
		opts.Continuation = res.Continuation
	}
	if len(out) != devices {
		t.Errorf("job %s: records for %d devices, want %d", jobID, len(out), devices)
	}
	return out
}

// desiredVersions reads every crash test twin's desired $version.
func desiredVersions(t *testing.T, ctx context.Context, c hub.Client) map[string]int {
	t.Helper()
	return twinDesiredVersions(t, ctx, c, "crash-")
}

// twinDesiredVersions reads the desired $version of every twin whose id
// starts with prefix.
func twinDesiredVersions(t *testing.T, ctx context.Context, c hub.Client, prefix string) map[string]int {
	t.Helper()
	out := map[string]int{}
	opts := hub.QueryOptions{PageSize: 1000}
	for {
		res, err := c.Query(ctx, "SELECT * FROM devices WHERE STARTSWITH(deviceId, '"+prefix+"')", opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range res.Items {
			var tw hub.Twin
			if err := json.Unmarshal(item, &tw); err != nil {
				t.Fatal(err)
			}
			v, _ := tw.Properties.Desired["$version"].(float64)
			out[tw.DeviceID] = int(v)
		}
		if res.Continuation == "" {
			return out
		}
		opts.Continuation = res.Continuation
	}
}
