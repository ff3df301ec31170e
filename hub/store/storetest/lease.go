package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// RunLeaser runs the conformance suite of store.Leaser. open returns a
// fresh, empty store that implements it; openShared, when not nil, opens
// a second handle on the same store (another replica's), so that claims
// race across connections as they would across processes.
func RunLeaser(t *testing.T, open func(t *testing.T) store.Store, openShared func(t *testing.T, s store.Store) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b store.Store)
	}{
		{"ClaimRenewRelease", testClaimRenewRelease},
		{"Takeover", testTakeover},
		{"Fencing", testFencing},
		{"ClaimRace", testClaimRace},
		{"Heartbeat", testHeartbeat},
		{"RequestCancel", testRequestCancel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := open(t)
			b := a
			if openShared != nil {
				b = openShared(t, a)
			}
			tt.fn(t, a, b)
		})
	}
}

func leaser(t *testing.T, s store.Store) store.Leaser {
	t.Helper()
	l, ok := s.(store.Leaser)
	if !ok {
		t.Fatalf("%T does not implement store.Leaser", s)
	}
	return l
}

// testClaimRenewRelease: the first claim starts epoch 1; the holder's
// claim renews it (same epoch, later expiry); another replica's claim is
// ErrLeaseLost; after a release, another replica gets epoch 2 at once.
func testClaimRenewRelease(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	if err := a.CreateJob(ctx, methodJob("j")); err != nil {
		t.Fatal(err)
	}
	la, lb := leaser(t, a), leaser(t, b)
	if _, err := la.ClaimJob(ctx, "missing", "r1", time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim of a job that is not stored: %v, want ErrNotFound", err)
	}
	l1, err := la.ClaimJob(ctx, "j", "r1", time.Minute)
	if err != nil || l1.Epoch != 1 || l1.Replica != "r1" || l1.JobID != "j" || time.Until(l1.Expires) < 30*time.Second {
		t.Fatalf("first claim: %+v, %v; want r1's, epoch 1, expiring in about a minute", l1, err)
	}
	l2, err := la.ClaimJob(ctx, "j", "r1", 2*time.Minute)
	if err != nil || l2.Epoch != 1 || !l2.Expires.After(l1.Expires) {
		t.Errorf("renewal: %+v, %v; want epoch 1 and a later expiry than %v", l2, err, l1.Expires)
	}
	if l, err := lb.ClaimJob(ctx, "j", "r2", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("another replica's claim of a held job: %+v, %v; want ErrLeaseLost", l, err)
	}
	if err := la.ReleaseJob(ctx, l2); err != nil {
		t.Fatalf("release: %v", err)
	}
	l3, err := lb.ClaimJob(ctx, "j", "r2", time.Minute)
	if err != nil || l3.Epoch != 2 || l3.Replica != "r2" {
		t.Fatalf("claim after a release: %+v, %v; want r2's, epoch 2", l3, err)
	}
	// A release under an old lease leaves the current one alone.
	if err := la.ReleaseJob(ctx, l2); err != nil {
		t.Fatalf("release of a superseded lease: %v", err)
	}
	if l, err := la.ClaimJob(ctx, "j", "r1", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("claim after a superseded lease's release: %+v, %v; want ErrLeaseLost (r2 holds it)", l, err)
	}
}

// testTakeover: a lease that is not renewed expires, and another replica
// takes the job over in a new epoch; the old holder's renewal then fails.
func testTakeover(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	if err := a.CreateJob(ctx, methodJob("j")); err != nil {
		t.Fatal(err)
	}
	la, lb := leaser(t, a), leaser(t, b)
	old, err := la.ClaimJob(ctx, "j", "r1", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var taken store.Lease
	deadline := time.Now().Add(10 * time.Second)
	for {
		taken, err = lb.ClaimJob(ctx, "j", "r2", time.Minute)
		if err == nil || !errors.Is(err, store.ErrLeaseLost) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling for the store's clock to pass the expiry
	}
	if err != nil || taken.Epoch != old.Epoch+1 || taken.Replica != "r2" {
		t.Fatalf("takeover after expiry: %+v, %v; want r2's, epoch %d", taken, err, old.Epoch+1)
	}
	if l, err := la.ClaimJob(ctx, "j", "r1", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("the old holder's renewal after a takeover: %+v, %v; want ErrLeaseLost", l, err)
	}
}

// testFencing: writes for a job under its current lease succeed; under a
// superseded one, every kind of write fails with ErrLeaseLost and stores
// nothing (records, job snapshot, twin with records); writes without a
// lease in the context are not fenced.
func testFencing(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	create(t, a, fullDevice("d1"))
	if err := a.CreateJob(ctx, methodJob("j")); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateJob(ctx, methodJob("other")); err != nil {
		t.Fatal(err)
	}
	la, lb := leaser(t, a), leaser(t, b)
	old, err := la.ClaimJob(ctx, "j", "r1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(status hub.DeviceJobStatus) *hub.DeviceJob {
		return &hub.DeviceJob{DeviceID: "d1", JobID: "j", JobType: hub.JobDeviceMethod, Status: status, CreatedDateTimeUtc: atp(0), LastUpdatedDateTimeUtc: atp(1)}
	}
	under := store.WithLease(ctx, old)
	if err := a.PutDeviceJobs(under, []*hub.DeviceJob{rec(hub.DeviceJobPending)}, methodJob("j")); err != nil {
		t.Fatalf("write under the current lease: %v", err)
	}
	if err := la.ReleaseJob(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.ClaimJob(ctx, "j", "r2", time.Minute); err != nil {
		t.Fatal(err)
	}
	stale := methodJob("j")
	stale.Status = hub.JobCompleted
	if err := a.PutDeviceJobs(under, []*hub.DeviceJob{rec(hub.DeviceJobCompleted)}, stale); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("PutDeviceJobs under a superseded lease: %v, want ErrLeaseLost", err)
	}
	if err := a.PutDeviceJobs(under, []*hub.DeviceJob{rec(hub.DeviceJobCompleted)}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("PutDeviceJobs of records alone under a superseded lease: %v, want ErrLeaseLost", err)
	}
	if err := a.PutJob(under, stale); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("PutJob under a superseded lease: %v, want ErrLeaseLost", err)
	}
	twin := rec(hub.DeviceJobCompleted)
	if _, err := a.UpdateDevice(under, "d1", func(d *store.Device) error { d.Tags["fenced"] = true; return nil }, twin); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("UpdateDevice with records under a superseded lease: %v, want ErrLeaseLost", err)
	}
	_, errs, err := a.UpdateDevices(under, []store.DeviceUpdate{{ID: "d1", Fn: func(d *store.Device) error { d.Tags["fenced"] = true; return nil }, Recs: []*hub.DeviceJob{twin}}})
	if err == nil && (len(errs) != 1 || !errors.Is(errs[0], store.ErrLeaseLost)) {
		t.Errorf("UpdateDevices with records under a superseded lease: %v %v, want ErrLeaseLost", errs, err)
	} else if err != nil && !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("UpdateDevices with records under a superseded lease: %v, want ErrLeaseLost", err)
	}
	// Nothing of it was stored.
	if got, _ := a.GetJob(ctx, "j"); got.Status != methodJob("j").Status {
		t.Errorf("job after fenced writes: %s, want it unchanged", got.Status)
	}
	if got := scanAll(t, a, "j"); len(got) != 1 || got[0].Status != hub.DeviceJobPending {
		t.Errorf("records after fenced writes: %+v, want the one pending record", got)
	}
	if d := get(t, a, "d1"); d.Tags["fenced"] != nil {
		t.Errorf("a fenced twin write was applied: tags %v", d.Tags)
	}
	// The lease of one job does not fence another's writes, nor does a
	// context without leases.
	if err := a.PutJob(under, methodJob("other")); err != nil {
		t.Errorf("PutJob of another job under j's lease: %v", err)
	}
	if err := a.PutJob(ctx, stale); err != nil {
		t.Errorf("PutJob without a lease: %v", err)
	}
}

// testClaimRace: replicas claiming one free job at once: exactly one gets
// it.
func testClaimRace(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	if err := a.CreateJob(ctx, methodJob("j")); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  []string
		errs []error
	)
	for i, s := range []store.Store{a, b, a, b, a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "r" + string(rune('0'+i))
			_, err := leaser(t, s).ClaimJob(ctx, "j", id, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won = append(won, id)
			} else if !errors.Is(err, store.ErrLeaseLost) {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 || len(errs) != 0 {
		t.Errorf("8 replicas claiming one job: %v won, errors %v; want exactly one winner", won, errs)
	}
}

// testHeartbeat: replicas list each other while their heartbeats are
// fresh, in id order.
func testHeartbeat(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	la, lb := leaser(t, a), leaser(t, b)
	if _, err := la.Heartbeat(ctx, "r2", "https://10.0.0.2:8443", time.Minute); err != nil {
		t.Fatal(err)
	}
	live, err := lb.Heartbeat(ctx, "r1", "https://10.0.0.1:8443", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 2 || live[0].ID != "r1" || live[1].ID != "r2" || live[1].Endpoint != "https://10.0.0.2:8443" {
		t.Errorf("live replicas: %+v, want r1 and r2 with their endpoints", live)
	}
	// With a ttl shorter than the time since r2's heartbeat, r2 is gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		live, err = lb.Heartbeat(ctx, "r1", "https://10.0.0.1:8443", 200*time.Millisecond)
		if err != nil || len(live) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling for the store's clock to pass r2's heartbeat
	}
	if err != nil || len(live) != 1 || live[0].ID != "r1" {
		t.Errorf("live replicas once r2's heartbeat is stale: %+v, %v; want r1 alone", live, err)
	}
}

// testRequestCancel: a cancel asked for through any replica shows in the
// holder's next claim, and in the claim of whoever takes the job over;
// it may come before anyone holds the job.
func testRequestCancel(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	for _, id := range []string{"held", "free"} {
		if err := a.CreateJob(ctx, methodJob(id)); err != nil {
			t.Fatal(err)
		}
	}
	la, lb := leaser(t, a), leaser(t, b)
	if err := lb.RequestCancel(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cancel of a job that is not stored: %v, want ErrNotFound", err)
	}
	l, err := la.ClaimJob(ctx, "held", "r1", time.Minute)
	if err != nil || l.Cancel {
		t.Fatalf("claim: %+v, %v; want no cancel yet", l, err)
	}
	if err := lb.RequestCancel(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	if l, err = la.ClaimJob(ctx, "held", "r1", time.Minute); err != nil || !l.Cancel || l.Epoch != 1 {
		t.Errorf("renewal after a cancel request: %+v, %v; want Cancel in epoch 1", l, err)
	}
	if err := la.ReleaseJob(ctx, l); err != nil {
		t.Fatal(err)
	}
	if l, err = lb.ClaimJob(ctx, "held", "r2", time.Minute); err != nil || !l.Cancel || l.Epoch != 2 {
		t.Errorf("takeover after a cancel request: %+v, %v; want Cancel in epoch 2", l, err)
	}
	if err := lb.RequestCancel(ctx, "free"); err != nil {
		t.Fatal(err)
	}
	if l, err = la.ClaimJob(ctx, "free", "r1", time.Minute); err != nil || !l.Cancel || l.Epoch != 1 {
		t.Errorf("first claim of a job cancelled before anyone held it: %+v, %v; want Cancel in epoch 1", l, err)
	}
}
