package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/postgres"
	"github.com/iotjobs/iotjobs/hub/store/storetest"
	"github.com/iotjobs/iotjobs/internal/pgtest"
)

// TestLeaser runs the lease suite with two pools on one schema, as two
// hub processes on one database.
func TestLeaser(t *testing.T) {
	var mu sync.Mutex
	urls := map[store.Store]string{}
	openAt := func(t *testing.T, u string) *postgres.Store {
		s, err := postgres.Open(context.Background(), u)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	storetest.RunLeaser(t, func(t *testing.T) store.Store {
		_, u := pgtest.Schema(t)
		s := openAt(t, u)
		mu.Lock()
		urls[s] = u
		mu.Unlock()
		return s
	}, func(t *testing.T, s store.Store) store.Store {
		mu.Lock()
		u := urls[s]
		mu.Unlock()
		return openAt(t, u)
	})
}

// TestStalledWriterLosesItsLocks: a hub that stops in the middle of a
// fenced write (its link cut, its process frozen) holds its lease's row
// lock in an open transaction. The server ends that session after
// IdleInTransactionTimeout, so another replica takes the job over once
// the lease has expired, instead of waiting on the lock for as long as
// the server's TCP keep-alive takes to notice (hours).
func TestStalledWriterLosesItsLocks(t *testing.T) {
	_, u := pgtest.Schema(t)
	ctx := context.Background()
	open := func() *postgres.Store {
		s, err := postgres.Open(ctx, u)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	job := &hub.Job{JobID: "j", Type: hub.JobDeviceMethod, QueryCondition: "*", Status: hub.JobRunning,
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 30}}
	if err := a.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	const ttl = time.Second
	l, err := a.ClaimJob(ctx, "j", "r1", ttl)
	if err != nil {
		t.Fatal(err)
	}
	stalled, thaw := make(chan struct{}), make(chan struct{})
	defer close(thaw)
	a.SetAfterFence(func() {
		close(stalled)
		<-thaw
	})
	wrote := make(chan error, 1)
	go func() { wrote <- a.PutJob(store.WithLease(ctx, l), job) }()
	<-stalled
	cctx, cancel := context.WithTimeout(ctx, ttl+postgres.IdleInTransactionTimeout+10*time.Second)
	defer cancel()
	for {
		nl, err := b.ClaimJob(cctx, "j", "r2", ttl)
		if err == nil {
			if nl.Epoch != l.Epoch+1 {
				t.Errorf("takeover epoch %d, want %d", nl.Epoch, l.Epoch+1)
			}
			break
		}
		if !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("claim the stalled replica's job: %v (its transaction's locks were never released?)", err)
		}
		select {
		case <-cctx.Done():
			t.Fatal("the job was never taken over")
		case <-time.After(100 * time.Millisecond): // waiting out the lease
		}
	}
	a.SetAfterFence(nil)
	thaw <- struct{}{}
	if err := <-wrote; err == nil {
		t.Error("the stalled write committed after its session was ended")
	}
}
