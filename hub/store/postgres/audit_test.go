package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/postgres"
	"github.com/iotjobs/iotjobs/hub/store/storetest"
	"github.com/iotjobs/iotjobs/internal/pgtest"
)

func TestAudit(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) (store.Store, storetest.Tamper) {
		_, u := pgtest.Schema(t)
		s, err := postgres.Open(context.Background(), u)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s, func(t *testing.T, stmts ...string) {
			ctx := context.Background()
			c, err := pgx.Connect(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			for _, st := range stmts {
				if _, err := c.Exec(ctx, st); err != nil {
					t.Fatalf("%s: %v", st, err)
				}
			}
		}
	})
}

// TestAuditReplicas: two stores on one schema (two replicas) append at
// once, from several goroutines each, writes with entries and entries
// alone; the log is one chain, without gaps, holding every entry once.
func TestAuditReplicas(t *testing.T) {
	ctx := context.Background()
	_, u := pgtest.Schema(t)
	var replicas [2]*postgres.Store
	for i := range replicas {
		s, err := postgres.Open(ctx, u)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		replicas[i] = s
	}
	const workers, each = 4, 50 // per replica: 200 writes
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	for r, s := range replicas {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					id := fmt.Sprintf("r%d-w%d-%d", r, w, i)
					e := &hub.AuditEntry{Time: time.Now(), Actor: fmt.Sprintf("replica%d", r), Operation: hub.AuditDeviceCreate, Target: id, Result: "200"}
					var err error
					if i%2 == 0 {
						err = s.CreateDevice(store.WithAudit(ctx, e), &store.Device{Device: hub.Device{DeviceID: id}})
					} else {
						e.Operation, e.Result = hub.AuditMethodInvoke, "404"
						err = s.AppendAudit(ctx, e)
					}
					if err != nil {
						errs <- fmt.Errorf("%s: %w", id, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var all []*hub.AuditEntry
	var after int64
	for {
		page, err := replicas[1].AuditLog(ctx, hub.AuditFilter{}, after, 150)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 150 {
			break
		}
		after = page[len(page)-1].Seq
	}
	if len(all) != 2*workers*each {
		t.Fatalf("%d entries, want %d", len(all), 2*workers*each)
	}
	targets := map[string]bool{}
	for i, e := range all {
		if e.Seq != int64(i+1) {
			t.Fatalf("entry %d has seq %d", i+1, e.Seq)
		}
		targets[e.Target] = true
	}
	if len(targets) != len(all) {
		t.Errorf("%d distinct targets in %d entries", len(targets), len(all))
	}
	if b := hub.VerifyAudit(all); b != nil {
		t.Errorf("verify: %v", b)
	}
}

// TestAuditNewestDeleted: entries deleted from the log's end leave the
// head where it was, so that the next append shows the gap.
func TestAuditNewestDeleted(t *testing.T) {
	ctx := context.Background()
	_, u := pgtest.Schema(t)
	s, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	appendOne := func(target string) {
		t.Helper()
		if err := s.AppendAudit(ctx, &hub.AuditEntry{Time: time.Now(), Actor: "iothubowner", Operation: hub.AuditMethodInvoke, Target: target, Result: "404"}); err != nil {
			t.Fatal(err)
		}
	}
	verify := func() *hub.AuditBreak {
		t.Helper()
		all, err := s.AuditLog(ctx, hub.AuditFilter{}, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return hub.VerifyAudit(all)
	}
	for _, d := range []string{"d1", "d2", "d3"} {
		appendOne(d)
	}
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `DELETE FROM audit WHERE seq >= 2`); err != nil {
		t.Fatal(err)
	}
	if b := verify(); b != nil {
		t.Fatalf("before the next append: %v (the log's end is not anchored in it)", b)
	}
	appendOne("d4")
	if b := verify(); b == nil || *b != (hub.AuditBreak{Seq: 2, How: "removed"}) {
		t.Errorf("after the next append: %v, want entry #2 removed", b)
	}
}
