package hubd

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/extbroker"
	"github.com/iotjobs/iotjobs/hub/mqttbus"
	"github.com/iotjobs/iotjobs/hub/mqttproto"
	"github.com/iotjobs/iotjobs/internal/mqtttest"
	"github.com/iotjobs/iotjobs/internal/pgtest"
	"github.com/iotjobs/iotjobs/simulate"
)

// The jobs benchmark: a method job over 10,000 simulated devices, one
// MQTT connection each, against the embedded broker, timed from job
// creation to its end, next to the raw fan-out measured in the same run:
// the same request published straight into the same broker to each device,
// with the same window of 1,000 in flight, and its reply awaited; no
// registry, no store, no jobs engine.
//
//	go test -run '^$' -bench BenchmarkMethodJob -benchtime 3x -timeout 30m ./hub/hubd
//
// IOTJOBS_BENCH_DEVICES sets another fleet size. A process may hold 20,000
// open files here, so the devices run in a process of their own: this test
// binary again, started with simulatorEnv set.
//
// IOTJOBS_BENCH_STORE=postgres puts the hub's store on PostgreSQL (a
// schema of its own). IOTJOBS_BENCH_REPLICAS=N runs N replicas of one hub
// instead (hub serve --store postgres://… --broker mqtt://…): a PostgreSQL
// schema, a Mosquitto of the benchmark's own that the devices connect to,
// each job split in N jobs over a slice of the fleet, one created through
// each replica (which runs it), and the raw fan-out through that broker.
// The CPU figures count this process (every replica, or the hub), every
// PostgreSQL process and every Mosquitto process of the machine.

// simulatorEnv names the file that tells a child process to be the
// benchmark's device fleet (see runSimulator).
const simulatorEnv = "IOTJOBS_BENCH_SIMULATOR"

// simSpec is what the fleet process needs: where the broker is, the CA,
// and every device's id and key.
type simSpec struct {
	Addr, HostName, CAFile string
	Broker                 string // an external broker's URL, instead of Addr
	Keys                   map[string]string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(simulatorEnv); spec != "" {
		os.Exit(runSimulator(spec))
	}
	os.Exit(m.Run())
}

// runSimulator connects the fleet of the spec file, prints "ready" and
// keeps it connected until stdin closes.
func runSimulator(specFile string) int {
	b, err := os.ReadFile(specFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var spec simSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var pool *x509.CertPool
	if spec.CAFile != "" {
		if pool, err = LoadCA(spec.CAFile); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	var devs []*simulate.Device
	for id := range spec.Keys {
		devs = append(devs, &simulate.Device{ID: id, Tags: map[string]any{}, Reported: map[string]any{},
			Methods: map[string]*simulate.Method{"bench": {Status: 200}}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, rss0 := memStats()
	sim, err := simulate.Connect(ctx, devs, spec.Keys, simulate.Options{Addr: spec.Addr, Broker: spec.Broker, HostName: spec.HostName, RootCAs: pool,
		Dialers: 128, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, rss1 := memStats()
	if f := os.Getenv("IOTJOBS_BENCH_SIM_HEAPPROFILE"); f != "" {
		if out, err := os.Create(f); err == nil {
			pprof.WriteHeapProfile(out)
			out.Close()
		}
	}
	// What the simulator's side of a connected device costs: its RSS
	// growth while connecting, per device (the fleet's own structures,
	// made before, not counted).
	fmt.Printf("ready %d %d\n", sim.Len(), (int64(rss1)-int64(rss0))/int64(max(sim.Len(), 1)))
	io.Copy(io.Discard, os.Stdin)
	sim.Close()
	return 0
}

func benchDevices(b *testing.B) int {
	if s := os.Getenv("IOTJOBS_BENCH_DEVICES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("IOTJOBS_BENCH_DEVICES=%q: want a number of devices", s)
		}
		return n
	}
	return 10_000
}

// memStats returns the live heap after a collection, and the resident
// set size once the process has settled, in bytes: a few collections
// (each halves the stacks of goroutines that use little of theirs, such
// as a connection's reader after its TLS handshake), and the freed memory
// given back to the system. A long-running process gets there by itself
// (the runtime collects at least every two minutes and returns memory in
// the background).
func memStats() (heap, rss uint64) {
	for range 3 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	heap = m.HeapAlloc
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				rss = kb * 1024
			}
		}
	}
	return heap, rss
}

func BenchmarkMethodJob(b *testing.B) {
	n := benchDevices(b)
	ctx := context.Background()
	dir := b.TempDir()
	storeURL, brokerURL := "", ""
	replicas := 1
	if v := os.Getenv("IOTJOBS_BENCH_REPLICAS"); v != "" {
		var err error
		if replicas, err = strconv.Atoi(v); err != nil || replicas < 1 {
			b.Fatalf("IOTJOBS_BENCH_REPLICAS=%q: want a number of replicas", v)
		}
		brokerURL = mqtttest.Start(b).URL()
	}
	if os.Getenv("IOTJOBS_BENCH_STORE") == "postgres" || brokerURL != "" {
		_, storeURL = pgtest.Schema(b)
	}
	var reps []*Hub
	for i := range replicas {
		cfg := Config{DataDir: filepath.Join(dir, fmt.Sprintf("r%d", i)), StoreURL: storeURL, MQTTAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}
		if brokerURL != "" {
			cfg.MQTTAddr, cfg.HTTPAddr, cfg.Broker = "", "127.0.0.1:0", brokerURL
		}
		h, err := Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		reps = append(reps, h)
	}
	h := reps[0]
	c := h.Client()

	// Registry memory: what n registered devices add to the hub.
	heap0, rss0 := memStats()
	keys := make(map[string]string, n)
	var ids []string
	for i := range n {
		id := fmt.Sprintf("bench-%05d", i)
		k := make([]byte, 32)
		rand.Read(k)
		keys[id] = base64.StdEncoding.EncodeToString(k)
		ids = append(ids, id)
	}
	for i := 0; i < n; i += hub.MaxImportDevices {
		var batch []*hub.ImportDevice
		for _, id := range ids[i:min(i+hub.MaxImportDevices, n)] {
			batch = append(batch, &hub.ImportDevice{ID: id, ImportMode: "create", Authentication: &hub.Authentication{Type: "sas",
				SymmetricKey: hub.SymmetricKey{PrimaryKey: keys[id], SecondaryKey: keys[id]}}})
		}
		if res, err := c.ImportDevices(ctx, batch); err != nil || !res.IsSuccessful {
			b.Fatalf("import: %v %+v", err, res)
		}
	}
	heap1, rss1 := memStats()
	tw, err := c.GetTwin(ctx, ids[0])
	if err != nil {
		b.Fatal(err)
	}
	twinJSON, _ := json.Marshal(tw)

	// The fleet, in a process of its own.
	fleet := simSpec{Addr: h.MQTTAddr(), HostName: h.HostName(), CAFile: h.CAFile(), Keys: keys}
	if brokerURL != "" {
		fleet = simSpec{Broker: brokerURL, HostName: h.HostName(), Keys: keys}
	}
	spec, _ := json.Marshal(fleet)
	specFile := filepath.Join(dir, "fleet.json")
	if err := os.WriteFile(specFile, spec, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), simulatorEnv+"="+specFile)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	var ready, simRSS int
	if _, serr := fmt.Sscanf(line, "ready %d %d\n", &ready, &simRSS); err != nil || serr != nil || ready != n {
		b.Fatalf("fleet process: %q %v", line, err)
	}
	_, rss2 := memStats()
	b.Logf("%d devices connected in %s", n, time.Since(start).Round(time.Millisecond))
	if f := os.Getenv("IOTJOBS_BENCH_HEAPPROFILE"); f != "" {
		// The hub's heap with the fleet connected (go tool pprof -sample_index=inuse_space).
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(out); err != nil {
			b.Fatal(err)
		}
		out.Close()
	}

	// The raw fan-out's replies come back on the topic the hub's bus
	// listens on too; the bus ignores $rids it did not send, and so does
	// this counter.
	var tr mqttbus.Transport = h.broker
	if brokerURL != "" {
		// A client of its own: the replicas' clients have their
		// subscriptions.
		ext, err := extbroker.Dial(ctx, extbroker.Config{URL: brokerURL, Events: noEvents{}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		defer ext.Close()
		tr = ext
	}
	fanout := newRawFanout(b, tr, ids)
	var rawTotal, busTotal, jobTotal, twinTotal time.Duration
	var rawCPU, jobCPU, twinCPU time.Duration
	iter := 0
	for b.Loop() {
		iter++
		c0 := hubSideCPU()
		raw := fanout.run(b, iter)
		rawCPU += hubSideCPU() - c0

		// The hub's device bus alone: the same calls through mqttbus
		// ($rid correlation, timeouts), no engine, no store.
		runtime.GC()
		t0 := time.Now()
		sem := make(chan struct{}, 1000)
		errs := make(chan error, n)
		for _, id := range ids {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				_, err := h.bus.InvokeMethod(cctx, id, "bench", []byte("null"))
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				b.Fatalf("bus call: %v", err)
			}
		}
		bus := time.Since(t0)
		busTotal += bus

		jobID := fmt.Sprintf("bench-%d", iter)
		runtime.GC() // the raw fan-out's garbage is not the job's
		t0 = time.Now()
		c0 = hubSideCPU()
		// Labelled, so that a CPU profile can tell the job's goroutines
		// (-tagfocus phase=job).
		pprof.Do(ctx, pprof.Labels("phase", "job"), func(ctx context.Context) {
			runBenchJobs(ctx, b, reps, ids, &hub.Job{JobID: jobID, Type: hub.JobDeviceMethod,
				CloudToDeviceMethod: &hub.MethodRequest{MethodName: "bench", ResponseTimeoutInSeconds: 60}})
		})
		job := time.Since(t0)
		jobCPU += hubSideCPU() - c0
		// A twin job over the same devices: a desired patch each.
		runtime.GC()
		t0, c0 = time.Now(), hubSideCPU()
		runBenchJobs(ctx, b, reps, ids, &hub.Job{JobID: fmt.Sprintf("bench-twin-%d", iter), Type: hub.JobUpdateTwin,
			UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"bench": iter}}}})
		twin := time.Since(t0)
		twinCPU += hubSideCPU() - c0
		twinTotal += twin
		b.Logf("run %d: raw fan-out %s, bus %s, job %s (%.2f×)", iter, raw.Round(time.Millisecond), bus.Round(time.Millisecond), job.Round(time.Millisecond), job.Seconds()/raw.Seconds())
		rawTotal += raw
		jobTotal += job
	}
	ops := float64(iter * n)
	b.ReportMetric(float64(rawCPU.Microseconds())/ops, "raw-cpu-µs/device")
	b.ReportMetric(float64(jobCPU.Microseconds())/ops, "job-cpu-µs/device")
	b.ReportMetric(float64(twinCPU.Microseconds())/ops, "twin-cpu-µs/device")
	b.ReportMetric(twinTotal.Seconds()/float64(iter), "twin-s/op")
	b.ReportMetric(rawTotal.Seconds()/float64(iter), "raw-s/op")
	b.ReportMetric(busTotal.Seconds()/float64(iter), "bus-s/op")
	b.ReportMetric(jobTotal.Seconds()/float64(iter), "job-s/op")
	b.ReportMetric(jobTotal.Seconds()/rawTotal.Seconds(), "job/raw")
	b.ReportMetric(float64(int64(heap1)-int64(heap0))/float64(n), "heap-B/registered")
	b.ReportMetric(float64(int64(rss1)-int64(rss0))/float64(n), "rss-B/registered")
	b.ReportMetric(float64(int64(rss2)-int64(rss1))/float64(n), "rss-B/connected")
	b.ReportMetric(float64(simRSS), "sim-rss-B/connected")
	b.ReportMetric(float64(len(twinJSON)), "twin-B")
	if h.broker != nil {
		stats := h.broker.Stats()
		if stats.InflightDropped+stats.MessagesDropped > 0 {
			b.Errorf("the broker dropped messages: %+v", stats)
		}
	}
}

// runBenchJobs runs job j over every device and waits for its end: one
// job over the whole fleet on one hub, or, among replicas, one job per
// replica (created through it, so run by it) over a slice of the fleet,
// all at once. Every device must succeed.
func runBenchJobs(ctx context.Context, b *testing.B, reps []*Hub, ids []string, j *hub.Job) {
	type slice struct {
		c  hub.Client
		id string
		n  int
	}
	var jobs []slice
	for i, r := range reps {
		lo, hi := i*len(ids)/len(reps), (i+1)*len(ids)/len(reps)
		sj := *j
		sj.QueryCondition = "*"
		if len(reps) > 1 {
			sj.JobID = fmt.Sprintf("%s-r%d", j.JobID, i)
			sj.QueryCondition = fmt.Sprintf("deviceId >= '%s'", ids[lo])
			if hi < len(ids) {
				sj.QueryCondition += fmt.Sprintf(" AND deviceId < '%s'", ids[hi])
			}
		}
		if _, err := r.Client().CreateJob(ctx, &sj); err != nil {
			b.Fatalf("create job %s: %v", sj.JobID, err)
		}
		jobs = append(jobs, slice{r.Client(), sj.JobID, hi - lo})
	}
	for _, s := range jobs {
		j, err := s.c.WatchJob(ctx, s.id, nil)
		for err == nil && j.EndTime == nil {
			j, err = s.c.WatchJob(ctx, s.id, j)
		}
		if err != nil || j.Status != hub.JobCompleted || j.DeviceJobStatistics.SucceededCount != s.n {
			b.Fatalf("job %s: %v %+v, want %d succeeded", s.id, err, j, s.n)
		}
	}
}

// noEvents ignores presence: the raw fan-out's own client needs none.
type noEvents struct{}

func (noEvents) Connected(string)          {}
func (noEvents) Disconnected(string)       {}
func (noEvents) Subscribed(string, string) {}
func (noEvents) BrokerUp(bool)             {}

// rawFanout is the baseline of the job benchmarks: a method request
// published by a transport straight to every device, 1,000 in flight, and
// each reply counted; no registry, store or engine. Its replies come back
// on the topic the hub's bus listens on too; the bus ignores $rids it did
// not send, and so does this counter.
type rawFanout struct {
	tr      mqttbus.Transport
	ids     []string
	replies atomic.Int64
	window  chan struct{}
	done    chan struct{}
}

func newRawFanout(b *testing.B, tr mqttbus.Transport, ids []string) *rawFanout {
	f := &rawFanout{tr: tr, ids: ids, window: make(chan struct{}, mqttbus.DefaultWindow), done: make(chan struct{}, 1)}
	if err := tr.Subscribe("devices/+/$iothub/methods/res/#", func(topic string, _ []byte) {
		if !strings.Contains(topic, "rid=raw-") {
			return
		}
		<-f.window
		if f.replies.Add(1) == int64(len(ids)) {
			f.done <- struct{}{}
		}
	}); err != nil {
		b.Fatal(err)
	}
	return f
}

// run times one fan-out to every device.
func (f *rawFanout) run(b *testing.B, iter int) time.Duration {
	f.replies.Store(0)
	runtime.GC()
	t0 := time.Now()
	for i, id := range f.ids {
		f.window <- struct{}{}
		if err := f.tr.Publish(mqttproto.Scoped(id, mqttproto.MethodRequestTopic("bench", fmt.Sprintf("raw-%d-%d", iter, i))), []byte("null")); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-f.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("raw fan-out: %d of %d replies after 5 minutes", f.replies.Load(), len(f.ids))
	}
	return time.Since(t0)
}

// hubSideCPU is the CPU time used so far by the hub's side: this process
// (the hub or its replicas; the fleet runs in its own), and every
// PostgreSQL server process and Mosquitto of the machine (backends,
// background workers, brokers: idle but for the hub's work during a
// benchmark).
func hubSideCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return self + serverCPU()
}

// serverCPU sums utime and stime of the processes named postgres or
// mosquitto, from /proc (in clock ticks of 10 ms, Linux's USER_HZ).
func serverCPU() time.Duration {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		open, close := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
		if open < 0 || close < open {
			continue
		}
		if name := string(b[open+1 : close]); name != "postgres" && name != "mosquitto" {
			continue
		}
		fields := strings.Fields(string(b[close+1:]))
		// After the command: state is field 3; utime and stime are 14 and 15.
		if len(fields) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
