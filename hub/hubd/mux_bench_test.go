package hubd

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/extbroker/extbrokertest"
	"github.com/iotjobs/iotjobs/hub/mqttbus"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/simulate"
)

// The multiplexed benchmark: 100,000 simulated devices played over a few
// shared connections (simulate.Options.Connections), on the embedded
// broker and on the machine's Mosquitto: a method job and a twin job over
// all of them, each timed from creation to end, next to the raw
// multiplexed fan-out measured in the same run (the same request
// published by the hub's own MQTT transport to every device, 1,000 in
// flight, its reply awaited; no registry, no store, no engine).
//
//	go test -run '^$' -bench BenchmarkMultiplexed -benchtime 1x -timeout 60m ./hub/hubd
//
// IOTJOBS_BENCH_DEVICES sets another fleet size (default 100,000 here),
// IOTJOBS_BENCH_CONNECTIONS the number of shared connections (8), and
// IOTJOBS_BENCH_CPUPROFILE a file prefix for CPU profiles of each job.
func BenchmarkMultiplexed(b *testing.B) {
	n := 100_000
	if os.Getenv("IOTJOBS_BENCH_DEVICES") != "" {
		n = benchDevices(b)
	}
	conns := 8
	if s := os.Getenv("IOTJOBS_BENCH_CONNECTIONS"); s != "" {
		fmt.Sscan(s, &conns)
	}
	for _, where := range []string{"embedded", "mosquitto"} {
		b.Run(where, func(b *testing.B) { benchMultiplexed(b, where, n, conns) })
	}
}

// cpuProfile starts a CPU profile into $IOTJOBS_BENCH_CPUPROFILE-name.prof
// when that variable is set, and returns what stops it.
func cpuProfile(b *testing.B, name string) func() {
	prefix := os.Getenv("IOTJOBS_BENCH_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(prefix + "-" + name + ".prof")
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func benchMultiplexed(b *testing.B, where string, n, conns int) {
	ctx := context.Background()
	cfg := Config{DataDir: b.TempDir(), MQTTAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}
	if where == "mosquitto" {
		cfg.Broker = extbrokertest.URL(b)
	}
	h, err := Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	c := h.Client()
	var tr mqttbus.Transport = h.broker
	if h.ext != nil {
		tr = h.ext
	}

	t0 := time.Now()
	devs := make([]*simulate.Device, n)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("mux-%06d", i)
		devs[i] = &simulate.Device{ID: ids[i], Tags: map[string]any{}, Reported: map[string]any{},
			Methods: map[string]*simulate.Method{"bench": {Status: 200}}}
	}
	for i := 0; i < n; i += hub.MaxImportDevices {
		var batch []*hub.ImportDevice
		for _, id := range ids[i:min(i+hub.MaxImportDevices, n)] {
			k := make([]byte, 32)
			rand.Read(k)
			key := base64.StdEncoding.EncodeToString(k)
			batch = append(batch, &hub.ImportDevice{ID: id, ImportMode: "create", Authentication: &hub.Authentication{Type: "sas",
				SymmetricKey: hub.SymmetricKey{PrimaryKey: key, SecondaryKey: key}}})
		}
		if res, err := c.ImportDevices(ctx, batch); err != nil || !res.IsSuccessful {
			b.Fatalf("import: %v %+v", err, res)
		}
	}
	b.Logf("%s: %d devices registered in %s", where, n, time.Since(t0).Round(time.Millisecond))

	cs, _ := sas.ParseConnectionString(h.ConnectionString())
	pool, err := LoadCA(h.CAFile())
	if err != nil {
		b.Fatal(err)
	}
	t0 = time.Now()
	sim, err := simulate.Connect(ctx, devs, nil, simulate.Options{Connections: conns, Broker: cfg.Broker,
		Addr: h.MQTTAddr(), HostName: h.HostName(), RootCAs: pool, PolicyName: cs.SharedAccessKeyName, PolicyKey: cs.SharedAccessKey,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	if err := sim.WaitConnected(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d devices on %d connections in %s", where, n, conns, time.Since(t0).Round(time.Millisecond))

	fanout := newRawFanout(b, tr, ids)
	var rawTotal, methodTotal, twinTotal time.Duration
	iter := 0
	for b.Loop() {
		iter++
		raw := fanout.run(b, iter)
		rawTotal += raw

		timeJob := func(j *hub.Job) time.Duration {
			runtime.GC()
			stop := cpuProfile(b, where+"-"+string(j.Type))
			defer stop()
			t0 := time.Now()
			if _, err := c.CreateJob(ctx, j); err != nil {
				b.Fatal(err)
			}
			got, err := c.WatchJob(ctx, j.JobID, nil)
			for err == nil && got.EndTime == nil {
				got, err = c.WatchJob(ctx, j.JobID, got)
			}
			d := time.Since(t0)
			if err != nil || got.Status != hub.JobCompleted || got.DeviceJobStatistics.SucceededCount != n {
				b.Fatalf("job %s: %v %+v", j.JobID, err, got.DeviceJobStatistics)
			}
			return d
		}
		method := timeJob(&hub.Job{JobID: fmt.Sprintf("mux-method-%d", iter), Type: hub.JobDeviceMethod, QueryCondition: "*",
			CloudToDeviceMethod: &hub.MethodRequest{MethodName: "bench", ResponseTimeoutInSeconds: 120}})
		twin := timeJob(&hub.Job{JobID: fmt.Sprintf("mux-twin-%d", iter), Type: hub.JobUpdateTwin, QueryCondition: "*",
			UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"run": float64(iter)}}}})
		methodTotal += method
		twinTotal += twin
		b.Logf("%s run %d: raw fan-out %s, method job %s (%.2f×), twin job %s (%.2f×)", where, iter, raw.Round(time.Millisecond),
			method.Round(time.Millisecond), method.Seconds()/raw.Seconds(), twin.Round(time.Millisecond), twin.Seconds()/raw.Seconds())
	}
	b.ReportMetric(rawTotal.Seconds()/float64(iter), "raw-s/op")
	b.ReportMetric(methodTotal.Seconds()/float64(iter), "method-s/op")
	b.ReportMetric(twinTotal.Seconds()/float64(iter), "twin-s/op")
	b.ReportMetric(methodTotal.Seconds()/rawTotal.Seconds(), "method/raw")
	b.ReportMetric(twinTotal.Seconds()/rawTotal.Seconds(), "twin/raw")
	if h.broker != nil {
		if st := h.broker.Stats(); st.InflightDropped+st.MessagesDropped > 0 {
			b.Errorf("the broker dropped messages: %+v", st)
		}
	}
}
