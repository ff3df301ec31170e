package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/memstore"
	"github.com/iotjobs/iotjobs/hub/store/postgres"
	"github.com/iotjobs/iotjobs/internal/pgtest"
)

// The tests of this file run several engines (replicas) on one shared
// store, as hub processes on one PostgreSQL do, with one fleet of devices
// that every replica reaches (as through a shared broker), and count
// every method call and twin patch on the devices' side.

// fleetBus is the devices every replica reaches: each answers a method
// after a short delay and counts its calls.
type fleetBus struct {
	mu    sync.Mutex
	calls map[string]int
	delay time.Duration
}

func (b *fleetBus) InvokeMethod(ctx context.Context, id, method string, payload json.RawMessage) (*hub.MethodResponse, error) {
	b.mu.Lock()
	b.calls[id]++
	b.mu.Unlock()
	select {
	case <-time.After(b.delay): // the device's work
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &hub.MethodResponse{Status: 200, Payload: json.RawMessage(`{}`)}, nil
}

func (b *fleetBus) WaitOnline(context.Context, string) error                          { return nil }
func (b *fleetBus) PushDesired(context.Context, string, json.RawMessage, int64) error { return nil }
func (b *fleetBus) Kick(string)                                                       {}

// cutStore is a replica's connection to the shared store, which the test
// can cut: every call fails at once (the link down, the error seen), or
// hangs until its context ends or the link is back (packets lost without
// a word, as on a cut cable).
type cutStore struct {
	store.Store
	leaser store.Leaser
	mu     sync.Mutex
	mode   string        // "", "cut" or "hung"
	back   chan struct{} // closed when the link is restored
}

var errCut = errors.New("link to the store is cut")

// set cuts the link ("cut", "hung") or restores it ("").
func (c *cutStore) set(mode string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if mode == "" && c.back != nil {
		close(c.back)
	}
	c.mode, c.back = mode, nil
	if mode != "" {
		c.back = make(chan struct{})
	}
}

func (c *cutStore) err(ctx context.Context) error {
	c.mu.Lock()
	mode, back := c.mode, c.back
	c.mu.Unlock()
	switch mode {
	case "cut":
		return errCut
	case "hung":
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-back:
		}
	}
	return nil
}

func (c *cutStore) ClaimJob(ctx context.Context, id, replica string, ttl time.Duration) (store.Lease, error) {
	if err := c.err(ctx); err != nil {
		return store.Lease{}, err
	}
	return c.leaser.ClaimJob(ctx, id, replica, ttl)
}
func (c *cutStore) ReleaseJob(ctx context.Context, l store.Lease) error {
	if err := c.err(ctx); err != nil {
		return err
	}
	return c.leaser.ReleaseJob(ctx, l)
}
func (c *cutStore) RequestCancel(ctx context.Context, id string) error {
	if err := c.err(ctx); err != nil {
		return err
	}
	return c.leaser.RequestCancel(ctx, id)
}
func (c *cutStore) Heartbeat(ctx context.Context, replica, endpoint string, ttl time.Duration) ([]store.Replica, error) {
	if err := c.err(ctx); err != nil {
		return nil, err
	}
	return c.leaser.Heartbeat(ctx, replica, endpoint, ttl)
}
func (c *cutStore) PutDeviceJobs(ctx context.Context, djs []*hub.DeviceJob, jobs ...*hub.Job) error {
	if err := c.err(ctx); err != nil {
		return err
	}
	return c.Store.PutDeviceJobs(ctx, djs, jobs...)
}
func (c *cutStore) UpdateDevices(ctx context.Context, ups []store.DeviceUpdate) ([]*store.Device, []error, error) {
	if err := c.err(ctx); err != nil {
		return nil, nil, err
	}
	return c.Store.UpdateDevices(ctx, ups)
}
func (c *cutStore) ListJobs(ctx context.Context) ([]*hub.Job, error) {
	if err := c.err(ctx); err != nil {
		return nil, err
	}
	return c.Store.ListJobs(ctx)
}

// cutBus is a replica's link to the devices: while down, requests are not
// sent (hub.ErrNotSent) and nobody is online; late counts the requests it
// sends once back up.
type cutBus struct {
	*fleetBus
	mu   sync.Mutex
	down chan struct{} // non-nil while down; closed when back
	was  bool          // it has been down
	late atomic.Int32
}

func (b *cutBus) set(down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if down {
		b.down, b.was = make(chan struct{}), true
	} else if b.down != nil {
		close(b.down)
		b.down = nil
	}
}

func (b *cutBus) state() (chan struct{}, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.down, b.was
}

func (b *cutBus) InvokeMethod(ctx context.Context, id, method string, payload json.RawMessage) (*hub.MethodResponse, error) {
	down, was := b.state()
	if down != nil {
		return nil, hub.ErrNotSent
	}
	if was {
		b.late.Add(1)
	}
	return b.fleetBus.InvokeMethod(ctx, id, method, payload)
}

func (b *cutBus) WaitOnline(ctx context.Context, id string) error {
	if down, _ := b.state(); down != nil {
		select {
		case <-down:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// cluster is n replicas on one shared store, with leases of ttl.
type cluster struct {
	st    store.Store // a handle of the test's own on the shared store
	bus   *fleetBus
	links []*cutStore
	buses []*cutBus
	reps  []*engine.Engine
}

// shared opens n+1 handles on one new store: the replicas' and the
// test's.
type shared func(t *testing.T, n int) []store.Store

// sharedStores are the stores replicas can share: memory (one store,
// several references) and PostgreSQL (one schema, a pool per replica, as
// separate processes would have).
var sharedStores = []struct {
	name string
	open shared
}{
	{"memory", func(t *testing.T, n int) []store.Store {
		st := memstore.New()
		out := make([]store.Store, n)
		for i := range out {
			out[i] = st
		}
		return out
	}},
	{"postgres", func(t *testing.T, n int) []store.Store {
		_, u := pgtest.Schema(t)
		out := make([]store.Store, n)
		for i := range out {
			st, err := postgres.Open(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			out[i] = st
		}
		return out
	}},
}

func newCluster(t *testing.T, open shared, n, devices int, ttl time.Duration, opsPerSecond float64) *cluster {
	t.Helper()
	ctx := context.Background()
	handles := open(t, n+1)
	c := &cluster{st: handles[n], bus: &fleetBus{calls: map[string]int{}, delay: 20 * time.Millisecond}}
	for i := range n {
		link := &cutStore{Store: handles[i], leaser: handles[i].(store.Leaser)}
		bus := &cutBus{fleetBus: c.bus}
		e := engine.New(link, bus, clock.Real())
		e.Replica, e.LeaseTTL, e.OpsPerSecond = fmt.Sprintf("r%d", i+1), ttl, opsPerSecond
		e.Logger = slog.New(slog.DiscardHandler)
		if err := e.Open(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		c.links, c.buses, c.reps = append(c.links, link), append(c.buses, bus), append(c.reps, e)
	}
	for i := range devices {
		if _, err := c.reps[0].CreateDevice(ctx, &hub.Device{DeviceID: fmt.Sprintf("d%04d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// records are a job's stored device records, by device.
func (c *cluster) records(t *testing.T, jobID string) map[string]*hub.DeviceJob {
	t.Helper()
	out := map[string]*hub.DeviceJob{}
	after := [2]string{}
	for {
		batch, err := c.st.ScanDeviceJobs(context.Background(), jobID, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, dj := range batch {
			if out[dj.DeviceID] != nil {
				t.Errorf("device %s has two records in job %s", dj.DeviceID, jobID)
			}
			out[dj.DeviceID] = dj
		}
		if len(batch) < 500 {
			return out
		}
		after = [2]string{batch[len(batch)-1].JobID, batch[len(batch)-1].DeviceID}
	}
}

// waitRounds waits until replica id's claimer has run k rounds from now
// (each begins with a heartbeat).
func (c *cluster) waitRounds(ctx context.Context, t *testing.T, id string, k int) {
	t.Helper()
	since := time.Now()
	for range k {
		for {
			live, err := c.st.(store.Leaser).Heartbeat(ctx, "observer", "", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(live, func(r store.Replica) bool { return r.ID == id })
			if i >= 0 && live[i].Seen.After(since) {
				since = live[i].Seen
				break
			}
			select {
			case <-time.After(20 * time.Millisecond): // polling the store for the replica's heartbeat
			case <-ctx.Done():
				t.Fatalf("replica %s did not run its claimer: %v", id, ctx.Err())
			}
		}
	}
}

// waitDone waits, through replica e, for a job to end.
func waitDone(ctx context.Context, t *testing.T, e *engine.Engine, id string) *hub.Job {
	t.Helper()
	j, err := e.GetJob(ctx, id)
	for err == nil && (!j.Status.Terminal() || j.EndTime == nil) {
		j, err = e.WatchJob(ctx, id, j)
	}
	if err != nil {
		t.Fatalf("wait for job %s: %v", id, err)
	}
	return j
}

// TestReplicasShareJobs: jobs created through one replica run once, on
// one replica, and any replica answers for them: their progress, their
// end, a cancel.
func TestReplicasShareJobs(t *testing.T) {
	for _, ss := range sharedStores {
		t.Run(ss.name, func(t *testing.T) { replicasShareJobs(t, ss.open) })
	}
}

func replicasShareJobs(t *testing.T, open shared) {
	const n = 300
	c := newCluster(t, open, 3, n, time.Second, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.reps[1].CreateJob(ctx, &hub.Job{JobID: "m", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "ping"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.reps[2].CreateJob(ctx, &hub.Job{JobID: "t", Type: hub.JobUpdateTwin, QueryCondition: "*",
		UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"mode": "eco"}}}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m", "t"} {
		j := waitDone(ctx, t, c.reps[0], id) // watched through a replica that runs neither
		if j.Status != hub.JobCompleted || j.DeviceJobStatistics.SucceededCount != n {
			t.Errorf("job %s through r1: %s %+v, want completed with %d succeeded", id, j.Status, j.DeviceJobStatistics, n)
		}
		if recs := c.records(t, id); len(recs) != n {
			t.Errorf("job %s: %d records, want %d", id, len(recs), n)
		}
	}
	c.bus.mu.Lock()
	for id, k := range c.bus.calls {
		if k != 1 {
			t.Errorf("device %s called %d times", id, k)
		}
	}
	got := len(c.bus.calls)
	c.bus.mu.Unlock()
	if got != n {
		t.Errorf("%d devices called, want %d", got, n)
	}
	for i := range n {
		d, err := c.st.GetDevice(ctx, fmt.Sprintf("d%04d", i))
		if err != nil || d.Desired["$version"] != 2.0 {
			t.Errorf("device %d: desired $version %v (%v), want 2: patched once", i, d.Desired["$version"], err)
			break
		}
	}

	// A cancel through a replica that does not run the job stops it
	// within a tick, and every replica says so.
	c.bus.delay = 0
	if _, err := c.reps[0].CreateJob(ctx, &hub.Job{JobID: "later", Type: hub.JobDeviceMethod, QueryCondition: "*",
		StartTime: &hub.Time{Time: time.Now().Add(time.Hour)}, CloudToDeviceMethod: &hub.MethodRequest{MethodName: "ping"}}); err != nil {
		t.Fatal(err)
	}
	j, err := c.reps[2].CancelJob(ctx, "later")
	if err != nil || j.Status != hub.JobCancelled {
		t.Fatalf("cancel through r3: %+v, %v", j, err)
	}
	if j := waitDone(ctx, t, c.reps[1], "later"); j.Status != hub.JobCancelled {
		t.Errorf("job cancelled through r3, seen through r2: %s", j.Status)
	}
}

// TestReplicaStopsJobTakenOver: the replica running a method job and a
// twin job stops mid-job without a word (its engine closes, as in a
// crash: its leases are not released); another replica takes both over
// once the leases expire and finishes them. Every device has one final
// record, none is called twice, only calls in flight at the stop end
// DeviceMethodOutcomeUnknown, and every twin is patched once.
func TestReplicaStopsJobTakenOver(t *testing.T) {
	for _, ss := range sharedStores {
		for _, how := range []string{"stopped", "cut off", "isolated"} {
			t.Run(ss.name+" "+how, func(t *testing.T) { replicaStops(t, ss.open, how) })
		}
	}
}

func replicaStops(t *testing.T, open shared, how string) {
	const n = 400
	// 400 ops/s shared by two replicas: each job takes about 2 s.
	c := newCluster(t, open, 2, n, 500*time.Millisecond, 400)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := c.reps[0]
	for _, j := range []*hub.Job{
		{JobID: "m", Type: hub.JobDeviceMethod, QueryCondition: "*", CloudToDeviceMethod: &hub.MethodRequest{MethodName: "ping", ConnectTimeoutInSeconds: 60}},
		{JobID: "t", Type: hub.JobUpdateTwin, QueryCondition: "*", UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"mode": "eco"}}}},
	} {
		if _, err := first.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	// Stop r1 once both jobs are a quarter done.
	for _, id := range []string{"m", "t"} {
		j, err := first.GetJob(ctx, id)
		for err == nil && j.DeviceJobStatistics.SucceededCount < n/4 {
			j, err = first.WatchJob(ctx, id, j)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	switch how {
	case "stopped":
		first.Close()
	case "cut off":
		c.links[0].set("cut")
	case "isolated":
		// Store calls hang and the devices are out of reach: what
		// r1 had started waits for the bus, and must not go out
		// when it is back, the lease long lost.
		c.links[0].set("hung")
		c.buses[0].set(true)
	}
	for _, id := range []string{"m", "t"} {
		j := waitDone(ctx, t, c.reps[1], id)
		recs := c.records(t, id)
		unknown := 0
		for _, dj := range recs {
			if dj.Status != hub.DeviceJobCompleted {
				if dj.Error == nil || dj.Error.Code != engine.CodeMethodOutcomeUnknown {
					t.Errorf("job %s, device %s: %s %+v", id, dj.DeviceID, dj.Status, dj.Error)
				}
				unknown++
			}
		}
		t.Logf("job %s: %s %+v, %d outcome unknown", id, j.Status, *j.DeviceJobStatistics, unknown)
		if len(recs) != n || j.Status != hub.JobCompleted {
			t.Errorf("job %s: %d records, %s; want %d, completed", id, len(recs), j.Status, n)
		}
		if id == "t" && unknown > 0 {
			t.Errorf("twin job: %d devices without a result", unknown)
		}
	}
	if how != "stopped" {
		// Back on the link, r1 writes nothing for the jobs and calls
		// no device: its lease is gone.
		before := c.records(t, "m")
		c.links[0].set("")
		c.buses[0].set(false)
		c.waitRounds(ctx, t, "r1", 2) // r1's claimer has been back twice: nothing may change
		after := c.records(t, "m")
		for id, dj := range before {
			if after[id].Status != dj.Status {
				t.Errorf("device %s changed after the takeover: %s to %s", id, dj.Status, after[id].Status)
			}
		}
		if n := c.buses[0].late.Load(); n > 0 {
			t.Errorf("r1 sent %d method requests once back, its leases lost", n)
		}
	}
	c.bus.mu.Lock()
	defer c.bus.mu.Unlock()
	for id, k := range c.bus.calls {
		if k != 1 {
			t.Errorf("device %s called %d times", id, k)
		}
	}
	for i := range n {
		d, err := c.st.GetDevice(ctx, fmt.Sprintf("d%04d", i))
		if err != nil || d.Desired["$version"] != 2.0 {
			t.Errorf("device %d: desired $version %v (%v), want 2: patched once", i, d.Desired["$version"], err)
			break
		}
	}
}

// TestReplicasShareLimits: --max-active-jobs and --ops-per-second hold
// for the hub as a whole. With a limit of two active jobs, a third job is
// refused through any replica; and three replicas, each running a job at
// once, together start no more device operations a second than the hub's
// rate (each replica takes a third of it).
func TestReplicasShareLimits(t *testing.T) {
	for _, ss := range sharedStores {
		t.Run(ss.name, func(t *testing.T) { replicasShareLimits(t, ss.open) })
	}
}

func replicasShareLimits(t *testing.T, open shared) {
	const n, rate = 300, 150.0
	c := newCluster(t, open, 3, n, time.Second, rate)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, r := range c.reps {
		c.waitRounds(ctx, t, r.Replica, 2) // each has seen the others alive
	}

	// Three jobs at once, one through each replica, a third of the fleet
	// each: 300 operations at 150 a second take 2 s; were the rate each
	// replica's own, they would take 0.7 s.
	started := time.Now()
	for i, r := range c.reps {
		cond := fmt.Sprintf("deviceId >= 'd%04d' AND deviceId < 'd%04d'", i*n/3, (i+1)*n/3)
		if _, err := r.CreateJob(ctx, &hub.Job{JobID: fmt.Sprintf("rate-%d", i), Type: hub.JobDeviceMethod, QueryCondition: cond,
			CloudToDeviceMethod: &hub.MethodRequest{MethodName: "ping"}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range c.reps {
		if j := waitDone(ctx, t, r, fmt.Sprintf("rate-%d", i)); j.DeviceJobStatistics.SucceededCount != n/3 {
			t.Errorf("job rate-%d: %+v", i, j.DeviceJobStatistics)
		}
	}
	// Only a lower bound: a slow machine makes it longer, never shorter.
	if took, least := time.Since(started), time.Duration(float64(n)/rate*0.75*float64(time.Second)); took < least {
		t.Errorf("%d operations through three replicas took %s; at the hub's %g a second they take at least %s", n, took.Round(time.Millisecond), rate, least)
	}

	// Two active jobs (scheduled an hour ahead, so they stay active),
	// created through two replicas: the third replica refuses a third.
	for _, r := range c.reps {
		r.MaxActiveJobs = 2
	}
	later := &hub.Time{Time: time.Now().Add(time.Hour)}
	for i, r := range c.reps[:2] {
		if _, err := r.CreateJob(ctx, &hub.Job{JobID: fmt.Sprintf("active-%d", i), Type: hub.JobDeviceMethod, QueryCondition: "*",
			StartTime: later, CloudToDeviceMethod: &hub.MethodRequest{MethodName: "ping"}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.reps[2].CreateJob(ctx, &hub.Job{JobID: "one-too-many", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "ping"}})
	if !errors.Is(err, &hub.Error{Code: hub.CodeTooManyJobs}) {
		t.Errorf("a third active job through r3: %v, want %s", err, hub.CodeTooManyJobs)
	}
}
