package hubd_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/extbroker/extbrokertest"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/simulate"
)

// muxFleet is n devices that answer ping, echo desired properties, and
// reboot (off line for a second, then reporting lastReboot).
func muxFleet(t *testing.T, n int) []*simulate.Device {
	t.Helper()
	f, ds := simulate.Parse("mux.yaml", []byte(fmt.Sprintf(`
version: 1
groups:
  - ids: "mux-{n:05}"
    count: %d
    tags: {fleet: mux}
    reported: {firmware: "1.0"}
    methods:
      ping: {status: 200, payload: {pong: true}, latency: {median: 5ms, p99: 50ms}}
      reboot: {status: 200, disconnectFor: 1s}
    desired: {report: true}
`, n)))
	if f == nil || ds.HasErrors() {
		t.Fatalf("parse: %v", ds)
	}
	return f.Devices()
}

// TestMultiplexed: a fleet played over a few shared connections, on the
// embedded broker (gateways with the owner policy's token) and on
// Mosquitto, runs a method job and a twin job with every device
// accounted for, answers direct methods, and reboots.
func TestMultiplexed(t *testing.T) {
	t.Parallel()
	for _, where := range []string{"embedded", "mosquitto"} {
		t.Run(where, func(t *testing.T) {
			var h *hubd.Hub
			// 8 connections, as the README advises: the embedded broker
			// queues at most 256 messages for a connection and the hub
			// keeps up to 1,000 calls in flight, so 3 connections of 333
			// devices each lost requests when the devices answered slowly
			// (seen under -race on a loaded machine).
			opts := simulate.Options{Connections: 8, Logger: quiet}
			if where == "embedded" {
				h = openHub(t, t.TempDir(), "")
				cs, err := sas.ParseConnectionString(h.ConnectionString())
				must(t, "connection string", err)
				opts.Addr, opts.HostName, opts.RootCAs = h.MQTTAddr(), h.HostName(), caPool(t, h)
				opts.PolicyName, opts.PolicyKey = cs.SharedAccessKeyName, cs.SharedAccessKey
			} else {
				opts.Broker = extbrokertest.URL(t)
				h = openExtHub(t, opts.Broker)
				opts.HostName = h.HostName()
			}
			ctx := testCtx(t, 90*time.Second)
			c := h.Client()
			const n = 1000
			devs := muxFleet(t, n)
			keys, err := simulate.Register(ctx, c, devs)
			must(t, "register", err)
			sim, err := simulate.Connect(ctx, devs, keys, opts)
			must(t, "connect multiplexed", err)
			t.Cleanup(sim.Close)
			must(t, "wait for presence", sim.WaitConnected(ctx, c))
			if st := sim.Stats(); st.Devices != n || st.Online != n {
				t.Errorf("stats %+v, want %d devices online", st, n)
			}

			r, err := c.InvokeMethod(ctx, "mux-00007", &hub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 5})
			if err != nil || r.Status != 200 {
				t.Fatalf("direct method: %+v, %v", r, err)
			}
			for _, j := range []*hub.Job{
				{JobID: "mux-ping", Type: hub.JobDeviceMethod, QueryCondition: "tags.fleet = 'mux'",
					CloudToDeviceMethod: &hub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 30}},
				{JobID: "mux-twin", Type: hub.JobUpdateTwin, QueryCondition: "tags.fleet = 'mux'",
					UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"mode": "night"}}}},
			} {
				_, err := c.CreateJob(ctx, j)
				must(t, "create "+j.JobID, err)
				done := waitJob(ctx, t, c, j.JobID)
				if want := (hub.DeviceJobStatistics{DeviceCount: n, SucceededCount: n}); done.Status != hub.JobCompleted || done.DeviceJobStatistics == nil || *done.DeviceJobStatistics != want {
					t.Errorf("%s: %s %+v, want completed %+v", j.JobID, done.Status, done.DeviceJobStatistics, want)
				}
				if rows := deviceJobsPaged(ctx, t, c, j.JobID, 1000); len(rows) != n {
					t.Errorf("%s: %d device records, want %d", j.JobID, len(rows), n)
				}
			}
			waitCount(ctx, t, c, "SELECT COUNT() AS n FROM devices WHERE properties.reported.mode = 'night'", n)

			// A reboot takes the device off line for a second; it comes
			// back and reports when.
			r, err = c.InvokeMethod(ctx, "mux-00003", &hub.MethodRequest{MethodName: "reboot", ResponseTimeoutInSeconds: 5})
			if err != nil || r.Status != 200 {
				t.Fatalf("reboot: %+v, %v", r, err)
			}
			tw := waitTwin(ctx, t, c, "mux-00003", func(tw *hub.Twin) bool { return tw.Properties.Reported["lastReboot"] != nil })
			if tw.ConnectionState != "Connected" {
				t.Errorf("after the reboot: %s", tw.ConnectionState)
			}
			if st := sim.Stats(); st.Calls != n+2 || st.Errors != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}
