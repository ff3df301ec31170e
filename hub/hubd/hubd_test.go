package hubd_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/hubtest"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/internal/pgtest"
	"github.com/iotjobs/iotjobs/simulate"
)

// TestConformance runs the hub.Client suite on hubs of their own (SQLite
// in a temporary directory, the fleet over MQTT/TLS) through both
// implementations hubd gives: the engine in process and the REST client.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			hubtest.Run(t, func(t *testing.T) *hubtest.Harness { return newHarness(t, k, "") })
		})
	}
}

// TestConformancePostgres runs the suite on a hub whose store is
// PostgreSQL (a schema of its own per case), through the REST client.
func TestConformancePostgres(t *testing.T) {
	t.Parallel()
	hubtest.Run(t, func(t *testing.T) *hubtest.Harness {
		_, u := pgtest.Schema(t)
		return newHarness(t, kinds[1], u)
	})
}

func TestRESTAuth(t *testing.T) {
	t.Parallel()
	h := openHub(t, t.TempDir(), "127.0.0.1:0")
	pool := caPool(t, h)
	ctx := testCtx(t, 10*time.Second)
	cases := []struct {
		name   string
		client hub.Client
		want   string
	}{
		{"wrong key", restClient(t, h, pool, sas.GenerateKey()), hub.CodeUnauthorized},
		{"CA not trusted", restClient(t, h, nil, ""), hub.CodeUnreachable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := []struct {
				name string
				call func(c hub.Client) error
			}{
				{"GetDevice", func(c hub.Client) error { _, err := c.GetDevice(ctx, "x"); return err }},
				{"CreateDevice", func(c hub.Client) error { _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "x"}); return err }},
				{"Query", func(c hub.Client) error {
					_, err := c.Query(ctx, "SELECT * FROM devices", hub.QueryOptions{})
					return err
				}},
				{"QueryJobs", func(c hub.Client) error { _, _, err := c.QueryJobs(ctx, hub.JobQuery{}); return err }},
				{"GetJob", func(c hub.Client) error { _, err := c.GetJob(ctx, "j"); return err }},
			}
			for _, cl := range calls {
				err := cl.call(tc.client)
				wantCode(t, cl.name, err, tc.want)
				if !hub.IsInfrastructure(err) {
					t.Errorf("%s: %v is not an infrastructure error", cl.name, err)
				}
			}
		})
	}
	// Neither refused client created anything.
	if _, err := h.Client().GetDevice(ctx, "x"); !errors.Is(err, hub.ErrDeviceNotFound) {
		t.Errorf("device x after refused creates: %v, want DeviceNotFound", err)
	}
}

func TestBrokerAuth(t *testing.T) {
	t.Parallel()
	h := openHub(t, t.TempDir(), "127.0.0.1:0")
	pool := caPool(t, h)
	ctx := testCtx(t, 15*time.Second)
	devs := parseFleet(t)
	keys, err := simulate.Register(ctx, h.Client(), devs)
	must(t, "register", err)
	byID := map[string]*simulate.Device{}
	for _, d := range devs {
		byID[d.ID] = d
	}
	if !slices.Equal(slices.Sorted(maps.Keys(byID)), fleetIDs) {
		t.Fatalf("fleet ids %v, want %v", slices.Sorted(maps.Keys(byID)), fleetIDs)
	}
	other, err := h.Client().GetDevice(ctx, "lock-fail")
	must(t, "get device", err)

	cases := []struct {
		name   string
		dev    *simulate.Device
		key    string
		opts   func(simulate.Options) simulate.Options
		wantOK bool
	}{
		{"primary key", byID["lock-ok"], keys["lock-ok"], nil, true},
		{"another device's secondary key", byID["echo"], other.Authentication.SymmetricKey.SecondaryKey, nil, false},
		{"wrong key", byID["lock-fail"], sas.GenerateKey(), nil, false},
		{"another device's key", byID["lock-fail"], keys["lock-ok"], nil, false},
		{"unknown device", &simulate.Device{ID: "ghost"}, sas.GenerateKey(), nil, false},
		{"wrong host in token", byID["lock-fail"], keys["lock-fail"], func(o simulate.Options) simulate.Options {
			o.HostName = "elsewhere.azure-devices.net"
			return o
		}, false},
		{"CA not trusted", byID["lock-fail"], keys["lock-fail"], func(o simulate.Options) simulate.Options {
			o.RootCAs = nil
			return o
		}, false},
	}
	// Cases run one after another: a refused connect must not disturb a
	// later good one.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := simOptions(h, pool)
			if tc.opts != nil {
				opts = tc.opts(opts)
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			sim, err := simulate.Connect(cctx, []*simulate.Device{tc.dev}, map[string]string{tc.dev.ID: tc.key}, opts)
			if sim != nil {
				defer sim.Close()
			}
			if cctx.Err() != nil {
				t.Fatalf("connect did not finish in time: %v", err)
			}
			if tc.wantOK && err != nil {
				t.Fatalf("connect: %v", err)
			}
			if !tc.wantOK && err == nil {
				t.Fatalf("connect succeeded, want it refused")
			}
		})
	}
	t.Run("secondary key of its own", func(t *testing.T) {
		d, err := h.Client().GetDevice(ctx, "lock-fail")
		must(t, "get device", err)
		sim, err := simulate.Connect(ctx, []*simulate.Device{byID["lock-fail"]},
			map[string]string{"lock-fail": d.Authentication.SymmetricKey.SecondaryKey}, simOptions(h, pool))
		if err != nil {
			t.Fatalf("connect with the secondary key: %v", err)
		}
		sim.Close()
	})
	// Disabled devices are refused: see the disableDevice conformance case.
}

func TestReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := openHub(t, dir, "127.0.0.1:0")
	pool := caPool(t, h)
	cs := h.ConnectionString()
	httpAddr := h.HTTPAddr()
	ctx := testCtx(t, 20*time.Second)
	devs := parseFleet(t)
	keys, err := simulate.Register(ctx, h.Client(), devs)
	must(t, "register", err)
	sim, err := simulate.Connect(ctx, devs, keys, simOptions(h, pool))
	must(t, "connect fleet", err)

	c := h.Client()
	_, err = c.UpdateTwin(ctx, "lock-ok", &hub.TwinPatch{Tags: map[string]any{"kept": "yes"},
		Properties: &hub.Properties{Desired: map[string]any{"d": 1.0}}}, "*")
	must(t, "update twin", err)
	_, err = c.CreateJob(ctx, &hub.Job{JobID: "before", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor"}})
	must(t, "create job", err)
	job := waitJob(ctx, t, c, "before")
	_, err = c.CreateJob(ctx, &hub.Job{JobID: "pending", Type: hub.JobUpdateTwin, QueryCondition: "*",
		StartTime:  hub.NewTime(time.Now().Add(time.Hour)),
		UpdateTwin: &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"p": 1.0}}}})
	must(t, "create scheduled job", err)
	waitJobStatus(ctx, t, c, "pending", hub.JobScheduled)
	twin, err := c.GetTwin(ctx, "lock-ok")
	must(t, "get twin", err)
	dev, err := c.GetDevice(ctx, "lock-ok")
	must(t, "get device", err)

	sim.Close()
	must(t, "close hub", h.Close())

	// Same data directory and HTTPS address: a restarted hub.
	h2 := openHub(t, dir, httpAddr)
	if got := h2.ConnectionString(); got != cs {
		t.Errorf("connection string changed over a restart: %q → %q", cs, got)
	}
	clients := []struct {
		name string
		c    hub.Client
	}{
		{"engine", h2.Client()},
		// The CA from before the restart still verifies the hub.
		{"rest", restClient(t, h2, pool, "")},
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			c := cl.c
			d2, err := c.GetDevice(ctx, "lock-ok")
			must(t, "get device", err)
			if d2.Authentication.SymmetricKey != dev.Authentication.SymmetricKey || d2.ETag != dev.ETag {
				t.Errorf("device changed over a restart: %+v → %+v", dev.Authentication.SymmetricKey, d2.Authentication.SymmetricKey)
			}
			t2, err := c.GetTwin(ctx, "lock-ok")
			must(t, "get twin", err)
			if t2.ETag != twin.ETag || t2.Version != twin.Version || t2.Tags["kept"] != "yes" || t2.Properties.Desired["d"] != 1.0 {
				t.Errorf("twin changed over a restart: etag %q→%q version %d→%d tags %v desired %v",
					twin.ETag, t2.ETag, twin.Version, t2.Version, t2.Tags, t2.Properties.Desired)
			}
			res, err := c.Query(ctx, "SELECT COUNT() AS n FROM devices", hub.QueryOptions{})
			must(t, "count", err)
			if got, _ := json.Marshal(res.Items); !jsonEqual(t, got, []byte(`[{"n":4}]`)) {
				t.Errorf("device count after restart: %s", got)
			}
			j, err := c.GetJob(ctx, "before")
			must(t, "get finished job", err)
			if !hub.SameJobState(j, job) || j.EndTime == nil {
				t.Errorf("finished job changed over a restart: %q %+v → %q %+v", job.Status, job.DeviceJobStatistics, j.Status, j.DeviceJobStatistics)
			}
			if rows := deviceJobs(ctx, t, c, "before"); len(rows) != 4 {
				t.Errorf("devices.jobs of the finished job after restart: %d rows, want 4", len(rows))
			}
			p, err := c.GetJob(ctx, "pending")
			must(t, "get scheduled job", err)
			if p.Status != hub.JobScheduled && p.Status != hub.JobQueued {
				t.Errorf("job scheduled for later is %q after a restart, want it still waiting", p.Status)
			}
		})
	}
	// The fleet connects to the restarted hub with the keys it had.
	sim2, err := simulate.Connect(ctx, devs, keys, simOptions(h2, pool))
	must(t, "reconnect fleet", err)
	defer sim2.Close()
	resp, err := h2.Client().InvokeMethod(ctx, "lock-ok", &hub.MethodRequest{MethodName: "lockDoor"})
	must(t, "invoke after restart", err)
	if resp.Status != 200 {
		t.Errorf("method after restart: status %d", resp.Status)
	}
}

// TestRestartResetsConnectionState: a hub that restarts has no device
// connected, so every twin must read Disconnected until its device
// connects again.
func TestRestartResetsConnectionState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := openHub(t, dir, "127.0.0.1:0")
	pool := caPool(t, h)
	ctx := testCtx(t, 15*time.Second)
	devs := parseFleet(t)
	keys, err := simulate.Register(ctx, h.Client(), devs)
	must(t, "register", err)
	connectFleet(ctx, t, h, pool, devs, keys)
	must(t, "close hub", h.Close())

	h2 := openHub(t, dir, "127.0.0.1:0") // new ports: nobody can reconnect
	for _, id := range fleetIDs {
		tw, err := h2.Client().GetTwin(ctx, id)
		must(t, "get twin", err)
		if tw.ConnectionState != hub.Disconnected {
			t.Errorf("%s after a restart: connectionState %q, want %q", id, tw.ConnectionState, hub.Disconnected)
		}
	}
	res, err := h2.Client().Query(ctx, "SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'", hub.QueryOptions{})
	must(t, "query", err)
	if got, _ := json.Marshal(res.Items); !jsonEqual(t, got, []byte(`[{"n":0}]`)) {
		t.Errorf("connected devices after a restart: %s, want none", got)
	}
}
