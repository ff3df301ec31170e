//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/rest"
	"github.com/iotjobs/iotjobs/simulate"
)

// labFleetEnv makes the test binary run labFleetMain instead of the tests:
// the simulated fleet of TestClusterNetns, in a host of its own.
const labFleetEnv = "IOTJOBS_TEST_LAB_FLEET"

// labFleetSpec is what the fleet process is told (a JSON file).
type labFleetSpec struct {
	Broker   string            `json:"broker"`
	HostName string            `json:"hostName"`
	Keys     map[string]string `json:"keys"` // device id → key
}

// labFleetMain connects the fleet of the spec file and answers the test on
// stdin/stdout: "ready" once every device is connected, then, for each
// line "counts", the method calls each device has received (a JSON
// object). It ends when stdin closes.
func labFleetMain(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var spec labFleetSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var devs []*simulate.Device
	for id := range spec.Keys {
		devs = append(devs, &simulate.Device{ID: id, Tags: map[string]any{}, Reported: map[string]any{},
			Methods: map[string]*simulate.Method{"reboot": {Status: 200, Latency: simulate.Latency{Median: 40 * time.Millisecond, P99: 200 * time.Millisecond}}},
			Desired: &simulate.Desired{Report: true}})
	}
	var mu sync.Mutex
	calls := map[string]int{}
	sim, err := simulate.Connect(context.Background(), devs, spec.Keys, simulate.Options{Broker: spec.Broker, HostName: spec.HostName,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnMethod: func(id, _ string) {
			mu.Lock()
			calls[id]++
			mu.Unlock()
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sim.Close()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		mu.Lock()
		b, _ := json.Marshal(calls)
		mu.Unlock()
		fmt.Println(string(b))
	}
	return 0
}

// plainTestBinary is this test binary built without the race detector,
// or this one when it has none: the fleet process runs labFleetMain,
// 2,000 devices the detector would slow several times over, with nothing
// for it to find that the simulator's own tests do not cover.
func plainTestBinary(t *testing.T) string {
	t.Helper()
	if !raceEnabled {
		return os.Args[0]
	}
	exe := filepath.Join(t.TempDir(), "iotjobs.test")
	if out, err := exec.Command("go", "test", "-c", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, out)
	}
	return exe
}

// labFleet is the fleet process as the test sees it.
type labFleet struct {
	p     *labProcess
	in    io.WriteCloser
	lines *bufio.Scanner
}

func (f *labFleet) counts(t *testing.T) map[string]int {
	t.Helper()
	if _, err := io.WriteString(f.in, "counts\n"); err != nil {
		t.Fatalf("ask the fleet for its counts: %v", err)
	}
	if !f.lines.Scan() {
		t.Fatalf("the fleet ended:\n%s", tail(f.p.out.String(), 30))
	}
	var m map[string]int
	if err := json.Unmarshal(f.lines.Bytes(), &m); err != nil {
		t.Fatalf("the fleet's counts: %v", err)
	}
	return m
}

// labReplica is one `hub serve` of the cluster, on a host of its own.
type labReplica struct {
	name string
	addr string // of its REST API
	h    *hubProcess
	c    *rest.Client
}

// TestClusterNetns runs the hub as a cluster of separate hosts on this
// machine: PostgreSQL, Mosquitto and three replicas, each in a network
// namespace of its own, and 2,000 simulated devices in another. In each
// case a method job and a twin job over every device run on one replica
// while (a) that replica is SIGKILLed, (b) its link is cut and restored a
// minute later, (c) the broker is killed and restarted. Each time both
// jobs complete, every device has exactly one final record, no device ran
// the method more often than its records allow (one call per completed,
// at most one per outcome-unknown or timed-out record, counted on the
// devices), no twin was patched twice (desired $version up by one), and
// only the calls the lost replica may have sent (the records it left
// started) end DeviceMethodOutcomeUnknown.
func TestClusterNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster of six hosts and 2,000 devices")
	}
	devices, cutFor := 2000, time.Minute
	if s := os.Getenv("IOTJOBS_LAB_DEVICES"); s != "" {
		devices, _ = strconv.Atoi(s)
	}
	if s := os.Getenv("IOTJOBS_LAB_CUT"); s != "" {
		cutFor, _ = time.ParseDuration(s)
	}
	lab := newNetLab(t)
	lab.host("pg", 2)
	lab.host("mq", 3)
	for i := 1; i <= 3; i++ {
		lab.host(fmt.Sprintf("r%d", i), 10+i)
	}
	lab.host("fleet", 20)
	storeURL := startLabPostgres(t, lab, "pg")
	mq := startLabMosquitto(t, lab, "mq")
	broker := "mqtt://" + mq.addr()
	exe := plainBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	db, err := pgx.Connect(ctx, storeURL)
	if err != nil {
		t.Fatalf("connect to the lab's PostgreSQL: %v", err)
	}
	defer db.Close(context.Background())

	// The replicas: the first makes the keys; the others get its
	// policies, so that one key signs for every replica. Each keeps its
	// own TLS certificate, for its own address.
	var reps []*labReplica
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("r%d", i)
		dir := filepath.Join(t.TempDir(), name)
		if i > 1 {
			os.MkdirAll(dir, 0o700)
			b, err := os.ReadFile(filepath.Join(reps[0].h.dir(), "policies.json"))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "policies.json"), b, 0o600)
		}
		addr := lab.hosts[name]
		h := &hubProcess{t: t, exe: exe, wrap: []string{"ip", "netns", "exec", lab.ns(name)},
			args: []string{"--data", dir, "--store", storeURL, "--broker", broker, "--https", addr + ":8443", "--hostname", addr + ":8443",
				"--lease-ttl", "5s", "--ops-per-second", "900"}}
		r := &labReplica{name: name, addr: addr + ":8443", h: h}
		r.start(t)
		reps = append(reps, r)
		t.Cleanup(func() {
			if h.cmd.ProcessState == nil {
				h.kill()
			}
			if t.Failed() {
				t.Logf("replica %s:\n%s", name, tail(h.stderr.String(), 60))
			}
		})
	}

	// The fleet, registered through the first replica.
	var devs []*simulate.Device
	for i := range devices {
		devs = append(devs, &simulate.Device{ID: fmt.Sprintf("lab-%04d", i)})
	}
	keys, err := simulate.Register(ctx, reps[0].c, devs)
	if err != nil {
		t.Fatalf("register the fleet: %v", err)
	}
	spec, _ := json.Marshal(labFleetSpec{Broker: broker, HostName: lab.hosts["r1"], Keys: keys})
	specPath := filepath.Join(t.TempDir(), "fleet.json")
	os.WriteFile(specPath, spec, 0o600)
	cmd := lab.command("fleet", plainTestBinary(t))
	cmd.Env = append(os.Environ(), labFleetEnv+"="+specPath)
	fleet := &labFleet{}
	fleet.in, _ = cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	fleet.p = &labProcess{cmd: cmd, exit: make(chan struct{})}
	cmd.Stderr = &fleet.p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(fleet.p.exit)
	}()
	t.Cleanup(func() {
		fleet.in.Close()
		fleet.p.stop(syscall.SIGTERM)
	})
	fleet.lines = bufio.NewScanner(out)
	fleet.lines.Buffer(nil, 1<<22)
	if !fleet.lines.Scan() || fleet.lines.Text() != "ready" {
		t.Fatalf("the fleet did not connect:\n%s", tail(fleet.p.out.String(), 30))
	}
	for _, r := range reps {
		labWaitCount(ctx, t, r.c, "SELECT COUNT() AS n FROM devices WHERE STARTSWITH(deviceId, 'lab-') AND connectionState = 'Connected'", devices)
	}

	lc := &labCase{t: t, ctx: ctx, lab: lab, db: db, fleet: fleet, reps: reps, devices: devices,
		base: fleet.counts(t), lo: map[string]int{}, hi: map[string]int{}}
	t.Run("kill", func(t *testing.T) {
		lc.t = t
		lc.run("kill", reps[0], func() lossFn {
			reps[0].h.kill()
			// Back once another replica has taken both jobs over
			// (restarted at once, it would take them back itself).
			return func() { reps[0].start(t) }
		})
	})
	t.Run("cut", func(t *testing.T) {
		lc.t = t
		lc.run("cut", reps[1], func() lossFn {
			lab.cut("r2")
			return func() {
				<-time.After(cutFor) // the outage itself, not a wait for anything
				lab.restore("r2")
				// Back on the network, the replica finds its leases lost
				// and stops those runs; the check waits for two of its
				// heartbeats, so that whatever it would still do is done.
				lc.waitHeartbeats(reps[1], 2)
			}
		})
	})
	t.Run("broker", func(t *testing.T) {
		lc.t = t
		lc.run("broker", reps[2], func() lossFn {
			mq.kill()
			return func() {
				<-time.After(2 * time.Second) // the outage itself
				mq.start()
			}
		})
	})
}

// lossFn ends a loss (restarts, restores) while the jobs go on, once
// another replica has taken them over where one was lost.
type lossFn func()

// labCase runs the cases of TestClusterNetns on one cluster.
type labCase struct {
	t       *testing.T
	ctx     context.Context
	lab     *netLab
	db      *pgx.Conn
	fleet   *labFleet
	reps    []*labReplica
	devices int
	// The method calls each device has received since base, counted on
	// the devices, must lie in [lo, hi]: lo counts its completed
	// records, hi those that may have reached it (completed, outcome
	// unknown, timed out). Over all cases, not per case: a request the
	// lost replica wrote to its socket just before its link was cut is
	// delivered when the link is back, in a later case.
	base, lo, hi map[string]int
}

// start runs the replica and makes its client.
func (r *labReplica) start(t *testing.T) {
	t.Helper()
	cs := r.h.start()
	ca, err := os.ReadFile(filepath.Join(r.h.dir(), "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	if r.c, err = rest.NewClient(cs, rest.Options{RootCAs: pool, PollInterval: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
}

// run is one case: both jobs created through victim (which runs them),
// lose() once they are a quarter done, the end of the loss while they go
// on, then the checks, through another replica.
func (lc *labCase) run(name string, victim *labReplica, lose func() lossFn) {
	t, ctx := lc.t, lc.ctx
	var other *labReplica
	for _, r := range lc.reps {
		if r != victim {
			other = r
			break
		}
	}
	versions := labDesiredVersions(t, ctx, other.c)
	methodJob, twinJob := name+"-method", name+"-twin"
	if _, err := victim.c.CreateJob(ctx, &hub.Job{JobID: methodJob, Type: hub.JobDeviceMethod, QueryCondition: "STARTSWITH(deviceId, 'lab-')",
		MaxExecutionTimeInSeconds: 900,
		CloudToDeviceMethod:       &hub.MethodRequest{MethodName: "reboot", ResponseTimeoutInSeconds: 10, ConnectTimeoutInSeconds: 120}}); err != nil {
		t.Fatalf("create %s through %s: %v", methodJob, victim.name, err)
	}
	if _, err := victim.c.CreateJob(ctx, &hub.Job{JobID: twinJob, Type: hub.JobUpdateTwin, QueryCondition: "STARTSWITH(deviceId, 'lab-')",
		MaxExecutionTimeInSeconds: 900,
		UpdateTwin:                &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"lastCase": name}}}}); err != nil {
		t.Fatalf("create %s through %s: %v", twinJob, victim.name, err)
	}
	// A quarter of the method job done, both jobs still running on the
	// victim.
	for {
		j, err := victim.c.WatchJob(ctx, methodJob, nil)
		if err != nil {
			t.Fatalf("watch %s: %v", methodJob, err)
		}
		if s := j.DeviceJobStatistics; s != nil && s.SucceededCount+s.FailedCount >= lc.devices/4 {
			break
		}
		if j.EndTime != nil {
			t.Fatalf("%s ended before the loss: %+v", methodJob, j.DeviceJobStatistics)
		}
		<-time.After(100 * time.Millisecond) // polling the job's progress
	}
	for _, id := range []string{methodJob, twinJob} {
		if holder, _ := lc.leaseHolder(id); holder != victim.endpoint() {
			t.Fatalf("%s runs on %s, not on %s where it was created", id, holder, victim.endpoint())
		}
	}
	lossAt := time.Now()
	end := lose()
	t.Logf("%s: loss at %s", name, lossAt.Format(time.TimeOnly))
	// What the lost replica may have sent, read while nobody runs the job:
	// before its lease has expired (and checked to be so after reading).
	var started map[string]bool
	if name != "broker" {
		lc.waitQuiet(victim)
		_, epoch := lc.leaseHolder(methodJob)
		started = lc.startedRecords(methodJob)
		holder, after := lc.leaseHolder(methodJob)
		if after != epoch || holder != victim.endpoint() {
			t.Fatalf("%s was taken over before the test read its records (lease TTL too short for this machine?)", methodJob)
		}
		t.Logf("%s: %d devices may have been sent the method by %s", name, len(started), victim.name)
	}
	if name != "broker" {
		lc.waitTakenOver(victim, methodJob, twinJob)
		t.Logf("%s: both jobs taken over %s after the loss", name, time.Since(lossAt).Round(100*time.Millisecond))
	}
	end()
	jobs := map[string]*hub.Job{}
	for _, id := range []string{methodJob, twinJob} {
		j := labWaitEnded(ctx, t, other.c, id)
		jobs[id] = j
		holder, _ := lc.leaseHolder(id)
		t.Logf("%s: %s %+v, %s after the loss, last run by %s", id, j.Status, *j.DeviceJobStatistics, time.Since(lossAt).Round(time.Second), holder)
	}
	counts := lc.fleet.counts(t)

	// The method job: one final record per device; no device called
	// more often than its records allow, none recorded completed without
	// the call.
	recs := jobRecords(t, ctx, other.c, methodJob, lc.devices)
	checkStats(t, jobs[methodJob], recs)
	codes := map[string]int{}
	var unknown []string
	for id, dj := range recs {
		if dj.Error != nil {
			codes[dj.Error.Code]++
		}
		switch {
		case dj.Status == hub.DeviceJobCompleted:
			lc.lo[id]++
			lc.hi[id]++
		case dj.Error != nil && dj.Error.Code == engine.CodeMethodOutcomeUnknown:
			lc.hi[id]++
			unknown = append(unknown, id)
			if !started[id] {
				t.Errorf("%s: device %s ended %s, but the lost replica had not started it", methodJob, id, dj.Error.Code)
			}
		case name == "broker" && dj.Error != nil && dj.Error.Code == hub.CodeGatewayTimeout:
			lc.hi[id]++ // its answer was lost with the broker
		default:
			t.Errorf("%s: device %s ended %s %+v", methodJob, id, dj.Status, dj.Error)
		}
		switch n := counts[id] - lc.base[id]; {
		case n > lc.hi[id]:
			t.Errorf("%s: device %s ran the method %d times so far; at most %d calls may have reached it", methodJob, id, n, lc.hi[id])
		case n < lc.lo[id]:
			t.Errorf("%s: device %s ran the method %d times so far, but %d calls are recorded completed", methodJob, id, n, lc.lo[id])
		}
	}
	sort.Strings(unknown)
	t.Logf("%s: failures %v", methodJob, codes)
	if name != "broker" && len(unknown) != len(started) {
		t.Errorf("%s: %d devices ended %s, the lost replica had started %d", methodJob, len(unknown), engine.CodeMethodOutcomeUnknown, len(started))
	}
	if name == "broker" && len(unknown) > 0 {
		t.Errorf("%s: no replica was lost, yet %d devices ended %s", methodJob, len(unknown), engine.CodeMethodOutcomeUnknown)
	}

	// The twin job: every twin patched exactly once.
	recs = jobRecords(t, ctx, other.c, twinJob, lc.devices)
	checkStats(t, jobs[twinJob], recs)
	for id, dj := range recs {
		if dj.Status != hub.DeviceJobCompleted {
			t.Errorf("%s: device %s ended %s %+v", twinJob, id, dj.Status, dj.Error)
		}
	}
	after := labDesiredVersions(t, ctx, other.c)
	for id, v := range after {
		if v != versions[id]+1 {
			t.Errorf("%s: twin %s desired $version %d → %d, want one patch", twinJob, id, versions[id], v)
		}
	}

	// Every replica, the lost one too, sees every device connected.
	for _, r := range lc.reps {
		labWaitCount(ctx, t, r.c, "SELECT COUNT() AS n FROM devices WHERE STARTSWITH(deviceId, 'lab-') AND connectionState = 'Connected'", lc.devices)
	}
}

// endpoint is the replica's REST endpoint as it records it in the store.
func (r *labReplica) endpoint() string { return "https://" + r.addr }

// leaseHolder is the endpoint of the replica that holds (or last held)
// job id's lease, and the lease's epoch.
func (lc *labCase) leaseHolder(id string) (string, int64) {
	lc.t.Helper()
	var endpoint string
	var epoch int64
	err := lc.db.QueryRow(lc.ctx, `SELECT coalesce(r.endpoint, l.replica), l.epoch FROM job_leases l LEFT JOIN replicas r ON r.id = l.replica WHERE l.job_id = $1`, id).Scan(&endpoint, &epoch)
	if err != nil {
		lc.t.Fatalf("the lease of %s: %v", id, err)
	}
	return endpoint, epoch
}

// waitQuiet waits until no statement of replica r has run in the
// database for three polls in a row: a write it sent just before it was
// lost is committed (or not) by then, and no later one can arrive.
func (lc *labCase) waitQuiet(r *labReplica) {
	lc.t.Helper()
	for quiet := 0; quiet < 3; {
		var active int
		if err := lc.db.QueryRow(lc.ctx, `SELECT count(*) FROM pg_stat_activity WHERE client_addr = $1::inet AND state = 'active'`,
			lc.lab.hosts[r.name]).Scan(&active); err != nil {
			lc.t.Fatalf("sessions of %s: %v", r.name, err)
		}
		if quiet++; active > 0 {
			quiet = 0
		}
		select {
		case <-lc.ctx.Done():
			lc.t.Fatalf("%s still has %d statements running", r.name, active)
		case <-time.After(50 * time.Millisecond): // polling the server
		}
	}
}

// startedRecords are the devices of method job id that a resumption
// records as possibly called: running, or pending up to the job's durable
// start mark.
func (lc *labCase) startedRecords(id string) map[string]bool {
	lc.t.Helper()
	rows, err := lc.db.Query(lc.ctx, `SELECT d.device_id FROM device_jobs d JOIN jobs j ON j.id = d.job_id
		WHERE d.job_id = $1 AND (d.doc::jsonb->>'status' = 'running'
			OR (d.doc::jsonb->>'status' IN ('pending', 'scheduled') AND d.device_id <= j.started))`, id)
	if err != nil {
		lc.t.Fatalf("the started records of %s: %v", id, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		lc.t.Fatalf("the started records of %s: %v", id, err)
	}
	out := map[string]bool{}
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// waitTakenOver waits until another replica than r holds the jobs' leases.
func (lc *labCase) waitTakenOver(r *labReplica, jobs ...string) {
	lc.t.Helper()
	for _, id := range jobs {
		for {
			if holder, _ := lc.leaseHolder(id); holder != r.endpoint() {
				break
			}
			select {
			case <-lc.ctx.Done():
				lc.t.Fatalf("%s was not taken over from %s", id, r.name)
			case <-time.After(200 * time.Millisecond): // polling the store
			}
		}
	}
}

// waitHeartbeats waits until replica r has reported itself alive n times
// more in the store.
func (lc *labCase) waitHeartbeats(r *labReplica, n int) {
	lc.t.Helper()
	seen := func() time.Time {
		var at time.Time
		if err := lc.db.QueryRow(lc.ctx, `SELECT seen FROM replicas WHERE endpoint = $1`, r.endpoint()).Scan(&at); err != nil {
			lc.t.Fatalf("heartbeat of %s: %v", r.name, err)
		}
		return at
	}
	last := seen()
	for n > 0 {
		if at := seen(); !at.Equal(last) {
			last = at
			n--
			continue
		}
		select {
		case <-lc.ctx.Done():
			lc.t.Fatalf("replica %s did not come back", r.name)
		case <-time.After(200 * time.Millisecond): // polling the store
		}
	}
}

// labDesiredVersions reads every lab twin's desired $version.
func labDesiredVersions(t *testing.T, ctx context.Context, c hub.Client) map[string]int {
	t.Helper()
	return twinDesiredVersions(t, ctx, c, "lab-")
}

// labWaitEnded waits until job id has ended.
func labWaitEnded(ctx context.Context, t *testing.T, c hub.Client, id string) *hub.Job {
	t.Helper()
	j, err := c.WatchJob(ctx, id, nil)
	for err == nil && j.EndTime == nil {
		j, err = c.WatchJob(ctx, id, j)
	}
	if err != nil {
		t.Fatalf("watch job %s: %v", id, err)
	}
	return j
}

// labWaitCount waits until query (SELECT COUNT() AS n ...) counts want.
func labWaitCount(ctx context.Context, t *testing.T, c hub.Client, query string, want int) {
	t.Helper()
	n := -1
	for {
		res, err := c.Query(ctx, query, hub.QueryOptions{})
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		var row struct{ N int }
		if len(res.Items) == 1 && json.Unmarshal(res.Items[0], &row) == nil {
			n = row.N
		}
		if n == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %d, want %d", query, n, want)
		case <-time.After(200 * time.Millisecond): // polling the hub
		}
	}
}
