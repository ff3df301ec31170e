package hubd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/extbroker/extbrokertest"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/simulate"
)

// openExtHub starts a hub on an external broker.
func openExtHub(t *testing.T, broker string) *hubd.Hub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := hubd.Open(ctx, hubd.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Broker: broker, Logger: quiet})
	if err != nil {
		t.Fatalf("open hub on %s: %v", broker, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestExternalBroker: the hub on Mosquitto, devices on device-scoped
// topics there: presence, direct methods, twin patches and their echo,
// a method job over the test fleet with the same per-device outcomes as
// on the embedded broker, and a 1,000-device method job.
func TestExternalBroker(t *testing.T) {
	t.Parallel()
	broker := extbrokertest.URL(t)
	h := openExtHub(t, broker)
	ctx := testCtx(t, 90*time.Second)
	c := h.Client()
	devs := parseFleet(t)
	keys, err := simulate.Register(ctx, c, devs)
	must(t, "register", err)
	opts := simulate.Options{Broker: broker, HostName: h.HostName(), Logger: quiet}
	sim, err := simulate.Connect(ctx, devs, keys, opts)
	must(t, "connect fleet to Mosquitto", err)
	t.Cleanup(sim.Close)
	must(t, "wait for presence", sim.WaitConnected(ctx, c))

	r, err := c.InvokeMethod(ctx, "lock-ok", &hub.MethodRequest{MethodName: "lockDoor", ResponseTimeoutInSeconds: 5})
	if err != nil || r.Status != 200 || !jsonEqual(t, r.Payload, []byte(`{"locked":true}`)) {
		t.Errorf("direct method over Mosquitto: %+v, %v", r, err)
	}
	_, err = c.InvokeMethod(ctx, "lock-offline", &hub.MethodRequest{MethodName: "lockDoor", ResponseTimeoutInSeconds: 5})
	wantCode(t, "method on a device that never connected", err, hub.CodeDeviceNotOnline)

	_, err = c.UpdateTwin(ctx, "echo", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"mode": "eco"}}}, "*")
	must(t, "update twin", err)
	waitTwin(ctx, t, c, "echo", func(tw *hub.Twin) bool { return tw.Properties.Reported["mode"] == "eco" })
	if tw, err := c.GetTwin(ctx, "lock-ok"); err != nil || tw.ConnectionState != "Connected" {
		t.Errorf("lock-ok connection state %q, %v; want Connected from its presence", tw.ConnectionState, err)
	}

	_, err = c.CreateJob(ctx, &hub.Job{JobID: "ext-lock", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor", ResponseTimeoutInSeconds: 10}})
	must(t, "create job", err)
	done := waitJob(ctx, t, c, "ext-lock")
	if want := (hub.DeviceJobStatistics{DeviceCount: 4, SucceededCount: 3, FailedCount: 1}); done.DeviceJobStatistics == nil || *done.DeviceJobStatistics != want {
		t.Errorf("job over Mosquitto: %+v, want %+v", done.DeviceJobStatistics, want)
	}
	rows := deviceJobs(ctx, t, c, "ext-lock")
	if dj := rows["lock-offline"]; dj == nil || dj.Error == nil || dj.Error.Code != hub.CodeDeviceNotOnline {
		t.Errorf("lock-offline: %+v, want DeviceNotOnline", dj)
	}

	// The fleet leaves: presence cleared, the hub sees it.
	sim.Close()
	waitConnection(ctx, t, c, "lock-ok", "Disconnected")

	t.Run("1000 devices", func(t *testing.T) {
		const n = 1000
		f, ds := simulate.Parse("big.yaml", []byte(fmt.Sprintf(`
version: 1
groups:
  - ids: "big-{n:04}"
    count: %d
    tags: {fleet: big}
    methods:
      ping: {status: 200, payload: {pong: true}, latency: {median: 20ms, p99: 200ms}}
`, n)))
		if f == nil || ds.HasErrors() {
			t.Fatalf("parse: %v", ds)
		}
		big := f.Devices()
		keys, err := simulate.Register(ctx, c, big)
		must(t, "register 1000", err)
		sim, err := simulate.Connect(ctx, big, keys, opts)
		must(t, "connect 1000 to Mosquitto", err)
		defer sim.Close()
		must(t, "wait for presence", sim.WaitConnected(ctx, c))
		_, err = c.CreateJob(ctx, &hub.Job{JobID: "ext-big", Type: hub.JobDeviceMethod, QueryCondition: "tags.fleet = 'big'",
			CloudToDeviceMethod: &hub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 30}})
		must(t, "create 1000-device job", err)
		done := waitJob(ctx, t, c, "ext-big")
		if want := (hub.DeviceJobStatistics{DeviceCount: n, SucceededCount: n}); done.Status != hub.JobCompleted || done.DeviceJobStatistics == nil || *done.DeviceJobStatistics != want {
			t.Errorf("1000-device job: %s %+v, want completed %+v", done.Status, done.DeviceJobStatistics, want)
		}
		rows := deviceJobsPaged(ctx, t, c, "ext-big", 500)
		for id, dj := range rows {
			if dj.Outcome == nil || dj.Outcome.DeviceMethodResponse == nil || dj.Outcome.DeviceMethodResponse.Status != 200 {
				b, _ := json.Marshal(dj)
				t.Errorf("%s: %s", id, b)
				break
			}
		}
		if len(rows) != n {
			t.Errorf("%d device-job records, want %d", len(rows), n)
		}
	})
}
