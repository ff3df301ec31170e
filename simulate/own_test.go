package simulate_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/simulate"
)

// TestOwnConnectionLifecycle runs a device on a connection of its own
// against the embedded hub, on a virtual clock: it answers methods, renews
// its SAS token 45 minutes in (a new connection, no SUBSCRIBE) and still
// answers, and comes back from a reboot (disconnectFor) reporting
// lastReboot.
func TestOwnConnectionLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hubd.Open(ctx, hubd.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	pool, err := hubd.LoadCA(h.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	c := h.Client()
	devs := []*simulate.Device{{ID: "dev1", Methods: map[string]*simulate.Method{
		"ping":   {Status: 200},
		"reboot": {Status: 200, DisconnectFor: time.Minute},
	}}}
	keys, err := simulate.Register(ctx, c, devs)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	clk := clock.NewVirtual(t0)
	sim, err := simulate.Connect(ctx, devs, keys, simulate.Options{Addr: h.MQTTAddr(), HostName: h.HostName(), RootCAs: pool, Clock: clk, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	waitConnected(ctx, t, c, sim)
	call := func(method string) {
		t.Helper()
		r, err := c.InvokeMethod(ctx, "dev1", &hub.MethodRequest{MethodName: method, ResponseTimeoutInSeconds: 10})
		if err != nil || r.Status != 200 {
			t.Fatalf("%s: %+v, %v", method, r, err)
		}
	}
	call("ping")

	// Token renewal: due 45 minutes in; the next one is scheduled once it
	// is done.
	before, err := c.GetDevice(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	clk.AdvanceTo(t0.Add(45 * time.Minute))
	if err := clk.WaitTimer(ctx, t0.Add(90*time.Minute)); err != nil {
		t.Fatalf("wait for the renewal: %v", err)
	}
	waitDevice(ctx, t, c, func(d *hub.Device) bool {
		return d.ConnectionState == "Connected" && d.ConnectionStateUpdatedTime.After(before.ConnectionStateUpdatedTime.Time)
	})
	call("ping")

	// Reboot: off line for a minute, then back with lastReboot reported.
	call("reboot")
	back := clk.Now().Add(time.Minute)
	if err := clk.WaitTimer(ctx, back); err != nil {
		t.Fatalf("wait for the reboot timer: %v", err)
	}
	clk.AdvanceTo(back)
	for {
		tw, err := c.GetTwin(ctx, "dev1")
		if err != nil {
			t.Fatal(err)
		}
		if tw.Properties.Reported["lastReboot"] != nil {
			break
		}
		if err := waitABit(ctx); err != nil {
			t.Fatalf("no lastReboot reported: %v", err)
		}
	}
	call("ping")
	if st := sim.Stats(); st.Errors != 0 || st.Online != 1 {
		t.Errorf("stats %+v, want no errors and the device online", st)
	}
}

// waitDevice polls the registry until ok holds for dev1.
func waitDevice(ctx context.Context, t *testing.T, c hub.Client, ok func(*hub.Device) bool) {
	t.Helper()
	for {
		d, err := c.GetDevice(ctx, "dev1")
		if err != nil {
			t.Fatal(err)
		}
		if ok(d) {
			return
		}
		if err := waitABit(ctx); err != nil {
			t.Fatalf("device state %+v: %v", d, err)
		}
	}
}

// waitABit is the pause between two polls of the hub, which has no event
// to wait on; ctx bounds the polling.
func waitABit(ctx context.Context) error {
	t := time.NewTimer(20 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
