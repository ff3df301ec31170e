package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/postgres"
	"github.com/iotjobs/iotjobs/internal/pgtest"
)

// schemaRows returns the versions recorded in a schema's version table.
func schemaRows(t *testing.T, schema string) []int {
	t.Helper()
	ctx := context.Background()
	c := pgtest.Admin(t)
	defer c.Close(ctx)
	rows, err := c.Query(ctx, "SELECT version FROM "+schema+".iotjobs_schema ORDER BY version")
	if err != nil {
		t.Fatalf("read the version table: %v", err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func allVersions() []int {
	var out []int
	for v := 1; v <= postgres.LatestSchema(); v++ {
		out = append(out, v)
	}
	return out
}

func TestRefuseNewerSchema(t *testing.T) {
	tests := []struct {
		name  string
		ahead int
	}{
		{"one version ahead", 1},
		{"many versions ahead", 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			schema, u := pgtest.Schema(t)
			s, err := postgres.Open(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			newer := postgres.LatestSchema() + tt.ahead
			c := pgtest.Admin(t)
			defer c.Close(ctx)
			if _, err := c.Exec(ctx, "INSERT INTO "+schema+".iotjobs_schema (version, what) VALUES ($1, 'from a newer iotjobs')", newer); err != nil {
				t.Fatal(err)
			}
			s, err = postgres.Open(ctx, u)
			if err == nil {
				s.Close()
				t.Fatalf("Open of a database at schema %d succeeded; this code knows %d", newer, postgres.LatestSchema())
			}
			want := fmt.Sprintf("this database was written by a newer iotjobs (schema %d; this one knows %d): upgrade iotjobs", newer, postgres.LatestSchema())
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Open: %v\nwant it to say %q", err, want)
			}
			if got := schemaRows(t, schema); !slices.Equal(got, append(allVersions(), newer)) {
				t.Errorf("version table after the refusal: %v", got)
			}
		})
	}
}

// TestMigrateFromOlder opens a database left at each older schema version
// (its later migrations undone) and checks that Open applies the rest, in
// order, keeping the data.
func TestMigrateFromOlder(t *testing.T) {
	// undo takes a schema at version v back to v-1.
	undo := map[int]string{
		2: "DROP FUNCTION iotjobs_mod(float8, float8)",
		3: "DROP TABLE job_leases; DROP TABLE replicas",
		4: "DROP TABLE audit; DROP TABLE audit_head",
		5: "DROP TABLE certificates",
	}
	for from := 1; from < postgres.LatestSchema(); from++ {
		t.Run(fmt.Sprintf("from %d", from), func(t *testing.T) {
			ctx := context.Background()
			schema, u := pgtest.Schema(t)
			s, err := postgres.Open(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CreateDevice(ctx, &store.Device{Device: hub.Device{DeviceID: "d1"}, Tags: map[string]any{"n": 7.0}}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			c := pgtest.Admin(t)
			defer c.Close(ctx)
			for v := postgres.LatestSchema(); v > from; v-- {
				if undo[v] == "" {
					t.Fatalf("this test does not know how to undo migration %d: add it to undo", v)
				}
				if _, err := c.Exec(ctx, "SET search_path = "+schema+"; "+undo[v]+"; DELETE FROM iotjobs_schema WHERE version = "+fmt.Sprint(v)); err != nil {
					t.Fatalf("undo migration %d: %v", v, err)
				}
			}
			s, err = postgres.Open(ctx, u)
			if err != nil {
				t.Fatalf("Open of a database at version %d: %v", from, err)
			}
			defer s.Close()
			if got := schemaRows(t, schema); !slices.Equal(got, allVersions()) {
				t.Errorf("version table: %v, want %v", got, allVersions())
			}
			q, err := query.Parse("SELECT deviceId FROM devices WHERE tags.n % 4 = 3")
			if err != nil {
				t.Fatal(err)
			}
			page, err := s.QueryDevices(ctx, q, "", 10)
			if err != nil || len(page.Items) != 1 {
				t.Fatalf("query after the migration: %v, %v", page, err)
			}
		})
	}
}

// TestConcurrentOpenMigratesOnce starts several Opens on an empty schema
// and holds the first to take the migration lock until every one of them
// has found the schema out of date: all of them contend for the lock, one
// migrates, the others find the work done.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	const n = 6
	ctx := context.Background()
	schema, u := pgtest.Schema(t)
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	var mu sync.Mutex
	var found []int // the versions each Open found under the lock
	restore := postgres.SetMigrateHooks(arrived.Done, func(v int) {
		select {
		case <-all:
		case <-time.After(30 * time.Second):
			t.Error("not every Open reached the migration lock within 30s")
		}
		mu.Lock()
		found = append(found, v)
		mu.Unlock()
	})
	defer restore()

	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			s, err := postgres.Open(ctx, u)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	slices.Sort(found)
	want := []int{0}
	for range n - 1 {
		want = append(want, postgres.LatestSchema())
	}
	if !slices.Equal(found, want) {
		t.Errorf("versions found under the lock: %v, want one empty schema (0) and the rest migrated: %v", found, want)
	}
	if got := schemaRows(t, schema); !slices.Equal(got, allVersions()) {
		t.Errorf("version table: %v, want each migration once: %v", got, allVersions())
	}

	// An up-to-date database is opened without the lock.
	found = nil
	s, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if len(found) != 0 {
		t.Errorf("Open of an up-to-date database took the migration lock")
	}
}

func TestOpenErrors(t *testing.T) {
	pgtest.Admin(t).Close(context.Background()) // skip without a server
	_, u := pgtest.Schema(t)
	missing := strings.Replace(u, "search_path=iotjobs_test_", "search_path=missing_", 1)
	tests := []struct {
		name, url, want string
	}{
		{"no schema", missing, "search_path names no existing schema"},
		{"bad URL", "postgres://%zz", "want a URL such as"},
		{"no server", "postgres://postgres@127.0.0.1:1/test?connect_timeout=5", "is the server running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := postgres.Open(context.Background(), tt.url)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: %v\nwant it to say %q", err, tt.want)
			}
		})
	}
}
