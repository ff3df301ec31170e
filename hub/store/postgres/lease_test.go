package postgres_test

import (
	"context"
	"sync"
	"testing"

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
