package hubd_test

import (
	"context"
	"crypto/x509"
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

// The suite's helpers, shared with the hubd tests (hub/hubtest).
var (
	testCtx         = hubtest.TestCtx
	wantCode        = hubtest.WantCode
	must            = hubtest.Must
	waitJob         = hubtest.WaitJob
	waitJobStatus   = hubtest.WaitJobStatus
	waitTwin        = hubtest.WaitTwin
	queryAll        = hubtest.QueryAll
	jsonEqual       = hubtest.JSONEqual
	waitCount       = hubtest.WaitCount
	deviceJobs      = hubtest.DeviceJobs
	deviceJobsPaged = hubtest.DeviceJobsPaged
)
