package hubd_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/hub/hubtest"
	"github.com/iotjobs/iotjobs/hub/rest"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/simulate"
)

// fleetYAML is the test fleet, the conformance suite's: a device
// answering lockDoor with a payload (and pause after 1.5 s, slow after
// 20 s), one whose lockDoor always fails with 500, one that never
// connects, and one echoing desired patches into its reported properties.
// Three of them carry tags.x = 'y'.
const fleetYAML = hubtest.FleetYAML

// fleetIDs are the fleet's device ids, sorted.
var fleetIDs = []string{"echo", "lock-fail", "lock-offline", "lock-ok"}

// quiet is a logger that drops everything, so test output shows failures
// only.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openHub starts a hub on dir listening on loopback only and closes it
// when the test ends (Close is idempotent, so tests may close it earlier).
func openHub(t *testing.T, dir, httpAddr string) *hubd.Hub {
	t.Helper()
	return openHubOn(t, dir, httpAddr, "")
}

// openHubOn is openHub on the store of storeURL ("": DATA/hub.db).
func openHubOn(t *testing.T, dir, httpAddr, storeURL string) *hubd.Hub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := hubd.Open(ctx, hubd.Config{DataDir: dir, StoreURL: storeURL, HTTPAddr: httpAddr, MQTTAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatalf("open hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// caPool is the pool trusting a hub's generated CA.
func caPool(t *testing.T, h *hubd.Hub) *x509.CertPool {
	t.Helper()
	pool, err := hubd.LoadCA(h.CAFile())
	if err != nil {
		t.Fatalf("load CA: %v", err)
	}
	return pool
}

// restClient is a REST client for h from its connection string, with the
// policy key replaced by key when key is not empty.
func restClient(t *testing.T, h *hubd.Hub, pool *x509.CertPool, key string) *rest.Client {
	t.Helper()
	cs, err := sas.ParseConnectionString(h.ConnectionString())
	if err != nil {
		t.Fatalf("parse connection string %q: %v", h.ConnectionString(), err)
	}
	if key != "" {
		cs.SharedAccessKey = key
	}
	c, err := rest.NewClient(cs, rest.Options{RootCAs: pool, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("rest client: %v", err)
	}
	return c
}

// clientKind is one hub.Client implementation under test.
type clientKind struct {
	name string
	make func(t *testing.T, h *hubd.Hub) hub.Client
}

// kinds are the two implementations every conformance case runs against.
var kinds = []clientKind{
	{"engine", func(t *testing.T, h *hubd.Hub) hub.Client { return h.Client() }},
	{"rest", func(t *testing.T, h *hubd.Hub) hub.Client { return restClient(t, h, caPool(t, h), "") }},
}

// parseFleet parses fleetYAML.
func parseFleet(t *testing.T) []*simulate.Device {
	t.Helper()
	f, ds := simulate.Parse("fleet.yaml", []byte(fleetYAML))
	if f == nil || ds.HasErrors() {
		t.Fatalf("parse fleet: %v", ds)
	}
	return f.Devices()
}

// newHarness starts a hub of its own on the store of storeURL ("": a
// SQLite database in a temporary directory), registers the fleet through
// the in-process client, connects it over MQTT/TLS and returns the client
// of kind k, with a Connect that connects one device more over MQTT/TLS.
func newHarness(t *testing.T, k clientKind, storeURL string) *hubtest.Harness {
	t.Helper()
	h := openHubOn(t, t.TempDir(), "127.0.0.1:0", storeURL)
	pool := caPool(t, h)
	devs := parseFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	keys, err := simulate.Register(ctx, h.Client(), devs)
	if err != nil {
		t.Fatalf("register fleet: %v", err)
	}
	connectFleet(ctx, t, h, pool, devs, keys)
	byID := map[string]*simulate.Device{}
	for _, d := range devs {
		byID[d.ID] = d
	}
	return &hubtest.Harness{
		Client: k.make(t, h),
		Connect: func(ctx context.Context, id, key string) (func(), error) {
			dev := &simulate.Device{ID: id}
			if d := byID[id]; d != nil {
				cp := *d
				cp.Offline = false
				dev = &cp
			}
			sim, err := simulate.Connect(ctx, []*simulate.Device{dev}, map[string]string{id: key}, simOptions(h, pool))
			if err != nil {
				return nil, err
			}
			return sim.Close, nil
		},
	}
}

// connectFleet connects devs over MQTT/TLS and disconnects them when the
// test ends (before the hub closes: cleanups run last-in first-out).
func connectFleet(ctx context.Context, t *testing.T, h *hubd.Hub, pool *x509.CertPool, devs []*simulate.Device, keys map[string]string) *simulate.Sim {
	t.Helper()
	sim, err := simulate.Connect(ctx, devs, keys, simOptions(h, pool))
	if err != nil {
		t.Fatalf("connect fleet: %v", err)
	}
	t.Cleanup(sim.Close)
	// Connection states are recorded a moment after the connects.
	if err := sim.WaitConnected(ctx, h.Client()); err != nil {
		t.Fatalf("connect fleet: %v", err)
	}
	return sim
}

func simOptions(h *hubd.Hub, pool *x509.CertPool) simulate.Options {
	return simulate.Options{Addr: h.MQTTAddr(), HostName: h.HostName(), RootCAs: pool, Logger: quiet}
}

// testCtx is a context that ends with a deadline well inside the test's
// time budget.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// wantCode fails the test unless err carries the hub error code want.
func wantCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %s", what, want)
		return
	}
	if got := hub.ErrorCode(err); got != want {
		t.Errorf("%s: error code %s (%v), want %s", what, got, err, want)
	}
}

// must fails the test at once on an error.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJob watches a job until it has ended: a terminal status and its
// endTime (a cancelled job has its status at once, its endTime once its
// calls in flight are done).
func waitJob(ctx context.Context, t *testing.T, c hub.Client, id string) *hub.Job {
	t.Helper()
	var last *hub.Job
	for {
		j, err := c.WatchJob(ctx, id, last)
		if err != nil {
			t.Fatalf("watch job %s (last status %v): %v", id, statusOf(last), err)
		}
		if j.Status.Terminal() && j.EndTime != nil {
			return j
		}
		last = j
	}
}

// waitJobStatus watches a job until it has status want.
func waitJobStatus(ctx context.Context, t *testing.T, c hub.Client, id string, want hub.JobStatus) *hub.Job {
	t.Helper()
	var last *hub.Job
	for {
		j, err := c.WatchJob(ctx, id, last)
		if err != nil {
			t.Fatalf("watch job %s for %s (last status %v): %v", id, want, statusOf(last), err)
		}
		if j.Status == want {
			return j
		}
		last = j
	}
}

func statusOf(j *hub.Job) hub.JobStatus {
	if j == nil {
		return ""
	}
	return j.Status
}

// waitTwin polls a twin (there is no twin change feed in hub.Client) on a
// short ticker until ok accepts it or ctx ends.
func waitTwin(ctx context.Context, t *testing.T, c hub.Client, id string, ok func(*hub.Twin) bool) *hub.Twin {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var tw *hub.Twin
	for {
		var err error
		tw, err = c.GetTwin(ctx, id)
		if err == nil && ok(tw) {
			return tw
		}
		if errors.Is(err, hub.ErrDeviceNotFound) {
			t.Fatalf("wait for twin %s: %v", id, err)
		}
		select {
		case <-ctx.Done():
			b, _ := json.Marshal(tw)
			t.Fatalf("twin %s did not reach the expected state before the deadline (last error %v): %s", id, err, b)
		case <-tick.C:
		}
	}
}

// queryAll runs a query page by page and returns the items and the number
// of pages.
func queryAll(ctx context.Context, t *testing.T, c hub.Client, q string, pageSize int) ([]json.RawMessage, string, int) {
	t.Helper()
	var items []json.RawMessage
	opts := hub.QueryOptions{PageSize: pageSize}
	itemType := ""
	for pages := 1; ; pages++ {
		res, err := c.Query(ctx, q, opts)
		if err != nil {
			t.Fatalf("query %q page %d: %v", q, pages, err)
		}
		if pageSize > 0 && len(res.Items) > pageSize {
			t.Errorf("query %q page %d: %d items, page size %d", q, pages, len(res.Items), pageSize)
		}
		items = append(items, res.Items...)
		itemType = res.ItemType
		if res.Continuation == "" {
			return items, itemType, pages
		}
		if pages > 100 {
			t.Fatalf("query %q: more than 100 pages; the continuation never ends", q)
		}
		opts.Continuation = res.Continuation
	}
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Errorf("bad JSON %s: %v", a, err)
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Errorf("bad JSON %s: %v", b, err)
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// waitCount polls a "SELECT COUNT() AS n ..." query on a short ticker
// until it counts want or ctx ends.
func waitCount(ctx context.Context, t *testing.T, c hub.Client, q string, want int) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		res, err := c.Query(ctx, q, hub.QueryOptions{})
		var row struct{ N int }
		if err == nil && len(res.Items) == 1 && json.Unmarshal(res.Items[0], &row) == nil && row.N == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: count %d (error %v), want %d before the deadline", q, row.N, err, want)
		case <-tick.C:
		}
	}
}

// deviceJobs reads a job's per-device rows, by device id.
func deviceJobs(ctx context.Context, t *testing.T, c hub.Client, jobID string) map[string]*hub.DeviceJob {
	t.Helper()
	return deviceJobsPaged(ctx, t, c, jobID, 2)
}

// deviceJobsPaged is deviceJobs with pages of pageSize rows.
func deviceJobsPaged(ctx context.Context, t *testing.T, c hub.Client, jobID string, pageSize int) map[string]*hub.DeviceJob {
	t.Helper()
	items, itemType, _ := queryAll(ctx, t, c, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+jobID+"'", pageSize)
	if len(items) > 0 && itemType != hub.ItemDeviceJob {
		t.Errorf("devices.jobs item type %q, want %q", itemType, hub.ItemDeviceJob)
	}
	out := map[string]*hub.DeviceJob{}
	for _, it := range items {
		var dj hub.DeviceJob
		if err := json.Unmarshal(it, &dj); err != nil {
			t.Fatalf("devices.jobs item is not a device job: %s", it)
		}
		if out[dj.DeviceID] != nil {
			t.Errorf("devices.jobs: device %s listed twice for job %s", dj.DeviceID, jobID)
		}
		if dj.JobID != jobID {
			t.Errorf("devices.jobs: row of job %q in the rows of %q", dj.JobID, jobID)
		}
		out[dj.DeviceID] = &dj
	}
	return out
}
