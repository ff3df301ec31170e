package simulate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/extbroker/extbrokertest"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/simulate"
)

// testHub is a hub for a test and how simulated devices reach it.
type testHub struct {
	c    hub.Client
	opts simulate.Options
}

// openTestHub is an embedded hub (SQLite in a temporary directory, MQTT
// over TLS on a free port, or on broker when it is set) and the options
// of devices on connections of their own.
func openTestHub(ctx context.Context, t *testing.T, broker string) *testHub {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	cfg := hubd.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Logger: quiet}
	if broker != "" {
		cfg.MQTTAddr, cfg.Broker = "", broker
	}
	h, err := hubd.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if broker != "" {
		return &testHub{c: h.Client(), opts: simulate.Options{Broker: broker, HostName: h.HostName(), Logger: quiet}}
	}
	pool, err := hubd.LoadCA(h.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	// The owner policy signs a multiplexed connection (a gateway).
	cs, err := sas.ParseConnectionString(h.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	return &testHub{c: h.Client(), opts: simulate.Options{Addr: h.MQTTAddr(), HostName: h.HostName(), RootCAs: pool, Logger: quiet,
		PolicyName: cs.SharedAccessKeyName, PolicyKey: cs.SharedAccessKey}}
}

// wires are the ways devices reach the hub: each on a connection of its
// own, or multiplexed over a shared one (device-scoped topics), on the
// embedded broker (a gateway) or on the machine's Mosquitto (skipped
// without one).
var wires = []struct {
	name string
	open func(ctx context.Context, t *testing.T) *testHub
}{
	{"own", func(ctx context.Context, t *testing.T) *testHub { return openTestHub(ctx, t, "") }},
	{"multiplexed", func(ctx context.Context, t *testing.T) *testHub {
		th := openTestHub(ctx, t, "")
		th.opts.Connections = 1
		return th
	}},
	{"external", func(ctx context.Context, t *testing.T) *testHub {
		return openTestHub(ctx, t, extbrokertest.URL(t))
	}},
	{"external-multiplexed", func(ctx context.Context, t *testing.T) *testHub {
		th := openTestHub(ctx, t, extbrokertest.URL(t))
		th.opts.Connections = 1
		return th
	}},
}

// connectFleet registers the devices of a fleet file, connects them and
// waits until the hub sees them connected (on an external broker it
// learns so from their presence, a moment later).
func connectFleet(ctx context.Context, t *testing.T, th *testHub, opts simulate.Options, src string) *simulate.Sim {
	t.Helper()
	fl, ds := simulate.Parse("fleet.yaml", []byte(src))
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	devs := fl.Devices()
	keys, err := simulate.Register(ctx, th.c, devs)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulate.Connect(ctx, devs, keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	waitConnected(ctx, t, th.c, sim)
	return sim
}

// waitConnected waits, on the real clock, until the hub records every
// device of sim connected (it writes connection states in groups, a
// moment after the connects). Sim.WaitConnected waits on the fleet's
// clock, which a test on a virtual clock does not move meanwhile.
func waitConnected(ctx context.Context, t *testing.T, c hub.Client, sim *simulate.Sim) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		res, err := c.Query(ctx, "SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'", hub.QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var row struct{ N int }
		if len(res.Items) == 1 && json.Unmarshal(res.Items[0], &row) == nil && row.N >= sim.Len() {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the hub records %d of %d devices connected: %v", row.N, sim.Len(), ctx.Err())
		case <-tick.C:
		}
	}
}

// closeFleet closes sim and waits until the hub has recorded its devices
// disconnected. On an external broker the hub may take a device's
// withdrawal and its next announcement, arriving together, in either
// order (hub/extbroker handles presence messages concurrently) and so
// miss a fleet that reconnects at once; waiting keeps the tests about the
// devices.
func closeFleet(ctx context.Context, t *testing.T, th *testHub, sim *simulate.Sim) {
	t.Helper()
	ids := sim.IDs()
	sim.Close()
	for _, id := range ids {
		for {
			d, err := th.c.GetDevice(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if d.ConnectionState == hub.Disconnected {
				break
			}
			if err := waitABit(ctx); err != nil {
				t.Fatalf("%s still connected after the fleet closed: %v", id, err)
			}
		}
	}
}

// reported reads a device's reported properties.
func reported(ctx context.Context, t *testing.T, c hub.Client, id string) map[string]any {
	t.Helper()
	tw, err := c.GetTwin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return tw.Properties.Reported
}

// waitReported polls a device's reported properties until ok holds.
func waitReported(ctx context.Context, t *testing.T, c hub.Client, id string, ok func(map[string]any) bool) {
	t.Helper()
	for {
		r := reported(ctx, t, c, id)
		if ok(r) {
			return
		}
		if err := waitABit(ctx); err != nil {
			t.Fatalf("%s reports %v: %v", id, r, err)
		}
	}
}

func setDesired(ctx context.Context, t *testing.T, c hub.Client, id string, desired map[string]any) {
	t.Helper()
	if _, err := c.UpdateTwin(ctx, id, &hub.TwinPatch{Properties: &hub.Properties{Desired: desired}}, "*"); err != nil {
		t.Fatal(err)
	}
}

// TestReconnectKeepsReported: a device that connects again behaves as one
// that rebooted, not one reflashed: the firmware its twin reports after an
// update stays, though the fleet file still says the old one, and only a
// property the twin lacks gets the file's value. So after a reboot.
func TestReconnectKeepsReported(t *testing.T) {
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			th := w.open(ctx, t)
			id := w.name + "-dev"
			fleet := func(model, extra string) string {
				return fmt.Sprintf(`
version: 1
groups:
  - ids: [%s]
    reported: {firmware: "2.3.9", model: %s%s}
    desired: {report: true}
    methods:
      reboot: {disconnectFor: 50ms}
`, id, model, extra)
			}
			opts := th.opts
			sim := connectFleet(ctx, t, th, opts, fleet("x1", ""))
			if r := reported(ctx, t, th.c, id); r["firmware"] != "2.3.9" || r["model"] != "x1" {
				t.Fatalf("a new device reports %v, want the fleet file's values", r)
			}
			// The update: the device echoes firmware 2.4.1.
			setDesired(ctx, t, th.c, id, map[string]any{"firmware": "2.4.1"})
			waitReported(ctx, t, th.c, id, func(r map[string]any) bool { return r["firmware"] == "2.4.1" })
			closeFleet(ctx, t, th, sim)

			// Connected again from a fleet file that still says 2.3.9, with
			// another model and a property the twin lacks.
			sim = connectFleet(ctx, t, th, opts, fleet("x2", `, region: eu`))
			r := reported(ctx, t, th.c, id)
			if r["firmware"] != "2.4.1" || r["model"] != "x1" || r["region"] != "eu" {
				t.Fatalf("after reconnecting the device reports firmware %v, model %v, region %v; want 2.4.1 and x1 kept, eu added",
					r["firmware"], r["model"], r["region"])
			}

			// A reboot: the same.
			if resp, err := th.c.InvokeMethod(ctx, id, &hub.MethodRequest{MethodName: "reboot", ResponseTimeoutInSeconds: 5}); err != nil || resp.Status != 200 {
				t.Fatalf("reboot: %+v, %v", resp, err)
			}
			waitReported(ctx, t, th.c, id, func(r map[string]any) bool { return r["lastReboot"] != nil })
			if r := reported(ctx, t, th.c, id); r["firmware"] != "2.4.1" || r["model"] != "x1" {
				t.Errorf("after a reboot the device reports firmware %v, model %v; want 2.4.1 and x1", r["firmware"], r["model"])
			}
			if st := sim.Stats(); st.Errors != 0 {
				t.Errorf("stats %+v, want no errors", st)
			}
		})
	}
}

// TestConvergeAtConnect: a device that connects to find desired
// properties its reported ones lack (set while it was away) echoes them;
// the ones it already reports alike (deep equality) it leaves alone.
func TestConvergeAtConnect(t *testing.T) {
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			th := w.open(ctx, t)
			id := w.name + "-dev"
			fleet := fmt.Sprintf(`
version: 1
groups:
  - ids: [%s]
    reported: {cfg: {b: [x], a: 1}}
    desired: {report: true}
`, id)
			if _, err := th.c.CreateDevice(ctx, &hub.Device{DeviceID: id}); err != nil {
				t.Fatal(err)
			}
			// Desired as the fleet file reports it, keys in another order.
			setDesired(ctx, t, th.c, id, map[string]any{"cfg": map[string]any{"a": 1, "b": []any{"x"}}})
			version := func() float64 {
				v, _ := reported(ctx, t, th.c, id)["$version"].(float64)
				return v
			}
			v0 := version()
			sim := connectFleet(ctx, t, th, th.opts, fleet)
			if v := version(); v != v0+1 {
				t.Errorf("reported $version %v → %v after connecting, want one patch (the fleet values; cfg equals desired)", v0, v)
			}
			closeFleet(ctx, t, th, sim)

			// Away, the device misses a desired change; with no delay, its
			// echo is part of connecting again.
			setDesired(ctx, t, th.c, id, map[string]any{"mode": "night"})
			sim = connectFleet(ctx, t, th, th.opts, fleet)
			if r := reported(ctx, t, th.c, id); r["mode"] != "night" || r["$version"] != v0+2 {
				t.Fatalf("after connecting again the device reports %v, want mode night echoed in one patch", r)
			}
			if st := sim.Stats(); st.Errors != 0 {
				t.Errorf("stats %+v, want no errors", st)
			}
		})
	}
}

// TestSettle: a desired patch the hub has published but the device has
// not echoed yet (no delay: the message is still on its way; a delay: the
// echo waits for it) is echoed before a fleet that settles closes. Twenty
// times over, since the race it closes was lost about one time in four.
func TestSettle(t *testing.T) {
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			th := w.open(ctx, t)
			now, later := w.name+"-now", w.name+"-later"
			fleet := fmt.Sprintf(`
version: 1
groups:
  - ids: [%s]
    desired: {report: true}
  - ids: [%s]
    desired: {report: true, delay: 20ms}
`, now, later)
			opts := th.opts
			for i := range 20 {
				sim := connectFleet(ctx, t, th, opts, fleet)
				for _, id := range []string{now, later} {
					setDesired(ctx, t, th.c, id, map[string]any{"n": i})
				}
				sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
				err := sim.Settle(sctx)
				scancel()
				if err != nil {
					t.Fatalf("run %d: settle: %v", i, err)
				}
				closeFleet(ctx, t, th, sim)
				for _, id := range []string{now, later} {
					if r := reported(ctx, t, th.c, id); r["n"] != float64(i) {
						t.Fatalf("run %d: %s reports n = %v after the fleet settled and closed, want %d", i, id, r["n"], i)
					}
				}
			}
		})
	}
}

// TestSettleWaitsForMethodAnswers: an answer the device still owes (its
// latency not over) is sent before Settle returns; a degradation due
// later is not waited for.
func TestSettleWaitsForMethodAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	th := openTestHub(ctx, t, "")
	clk := clock.NewVirtual(time.Now())
	opts := th.opts
	opts.Clock = clk
	var calls = make(chan string, 1)
	opts.OnMethod = func(_, method string) { calls <- method }
	sim := connectFleet(ctx, t, th, opts, `
version: 1
groups:
  - ids: [slow]
    methods:
      ping: {latency: 1s}
    degrade: {after: 1h, report: {health: {incident: true}}}
`)
	answer := make(chan error, 1)
	go func() {
		_, err := th.c.InvokeMethod(ctx, "slow", &hub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 30})
		answer <- err
	}()
	<-calls
	// The answer is owed once its latency's timer is pending.
	if err := clk.WaitTimer(ctx, clk.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	short, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := sim.Settle(short)
	scancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("settle with the answer owed: %v, want it to wait until its context ended", err)
	}
	clk.Advance(time.Second)
	// Owed no more; the incident an hour away is not waited for.
	if err := sim.Settle(ctx); err != nil {
		t.Fatalf("settle after the answer: %v", err)
	}
	if err := <-answer; err != nil {
		t.Fatalf("method: %v", err)
	}
}

// TestDegradeOverMQTT: on a virtual clock, a device degrades ten minutes
// after it echoed the firmware its degradation waits for, and an incident
// strikes half an hour after the fleet connected.
func TestDegradeOverMQTT(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	th := openTestHub(ctx, t, "")
	t0 := time.Now()
	clk := clock.NewVirtual(t0)
	opts := th.opts
	opts.Clock = clk
	sim := connectFleet(ctx, t, th, opts, `
version: 1
groups:
  - ids: [upd]
    reported: {firmware: "2.3.9"}
    desired: {report: true}
    degrade: {when: {firmware: "2.4.1"}, after: 10m, report: {health: {crashes: 5}}}
  - ids: [inc]
    degrade: {after: 30m, report: {health: {incident: true}}}
`)
	clk.AdvanceTo(t0.Add(time.Minute))
	setDesired(ctx, t, th.c, "upd", map[string]any{"firmware": "2.4.1"})
	if err := clk.WaitTimer(ctx, t0.Add(11*time.Minute)); err != nil {
		t.Fatalf("no degradation scheduled 10 minutes after the echo: %v", err)
	}
	if r := reported(ctx, t, th.c, "upd"); r["firmware"] != "2.4.1" || r["health"] != nil {
		t.Fatalf("upd reports %v before its degradation is due", r)
	}
	clk.AdvanceTo(t0.Add(11 * time.Minute))
	waitReported(ctx, t, th.c, "upd", func(r map[string]any) bool {
		h, _ := r["health"].(map[string]any)
		return h["crashes"] == 5.0
	})
	if r := reported(ctx, t, th.c, "inc"); r["health"] != nil {
		t.Fatalf("inc reports %v before the incident is due", r)
	}
	clk.AdvanceTo(t0.Add(30 * time.Minute))
	waitReported(ctx, t, th.c, "inc", func(r map[string]any) bool {
		h, _ := r["health"].(map[string]any)
		return h["incident"] == true
	})
	if st := sim.Stats(); st.Errors != 0 {
		t.Errorf("stats %+v, want no errors", st)
	}
}
