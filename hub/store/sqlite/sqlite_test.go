package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/sqlite"
	"github.com/iotjobs/iotjobs/hub/store/storetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := open(t, filepath.Join(t.TempDir(), "hub.db"))
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hub.db")
	s := open(t, path)
	dev := &store.Device{
		Device:   hub.Device{DeviceID: "d1", Status: hub.StatusEnabled, Authentication: hub.Authentication{Type: "sas", SymmetricKey: hub.SymmetricKey{PrimaryKey: "cA==", SecondaryKey: "cw=="}}},
		Tags:     map[string]any{"site": "Berlin"},
		Desired:  map[string]any{"$version": 2.0, "x": 1.0},
		Reported: map[string]any{"$version": 1.0},
		Version:  3,
	}
	job := &hub.Job{JobID: "j1", CreatedTime: hub.NewTime(time.Date(2024, 1, 2, 3, 4, 5, 600, time.UTC)), Type: hub.JobDeviceMethod, Status: hub.JobRunning,
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "m", Payload: json.RawMessage(`{"a":1}`)}}
	dj := &hub.DeviceJob{JobID: "j1", DeviceID: "d1", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobRunning}
	if err := s.CreateDevice(ctx, dev); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	if err := s.PutDeviceJobs(ctx, []*hub.DeviceJob{dj}); err != nil {
		t.Fatalf("PutDeviceJobs: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Opening the same file again migrates nothing away.
	s = open(t, path)
	defer s.Close()
	gotDev, err := s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatalf("GetDevice after reopen: %v", err)
	}
	if !reflect.DeepEqual(gotDev, dev) {
		t.Errorf("device after reopen = %+v, want %+v", gotDev, dev)
	}
	jobs, err := s.ListJobs(ctx)
	if err != nil {
		t.Fatalf("ListJobs after reopen: %v", err)
	}
	if len(jobs) != 1 || !reflect.DeepEqual(jobs[0], job) {
		t.Errorf("jobs after reopen = %+v, want [%+v]", jobs, job)
	}
	djs, err := s.ScanDeviceJobs(ctx, "j1", [2]string{}, 10)
	if err != nil {
		t.Fatalf("ScanDeviceJobs after reopen: %v", err)
	}
	if len(djs) != 1 || !reflect.DeepEqual(djs[0], dj) {
		t.Errorf("device jobs after reopen = %+v, want [%+v]", djs, dj)
	}
	if err := s.CreateDevice(ctx, dev); err != store.ErrConflict {
		t.Errorf("CreateDevice of a device stored before reopen: err = %v, want ErrConflict", err)
	}
}

// TestHostileValues pins that ids and JSON travel as parameters: SQL in
// them is data, and quotes and NUL bytes come back verbatim.
func TestHostileValues(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "hub.db"))
	defer s.Close()
	hostile := []string{
		`'); DROP TABLE devices;--`,
		`" OR 1=1 --`,
		`x' OR 'x'='x`,
		"nul\x00byte",
		"\x00",
		`back\slash`,
		`%_*`,
		"; DELETE FROM jobs; SELECT '",
	}
	for _, id := range hostile {
		t.Run(id, func(t *testing.T) {
			dev := &store.Device{
				Device: hub.Device{DeviceID: id, StatusReason: &id},
				Tags:   map[string]any{id: id, "nested": map[string]any{id: []any{id}}},
				Desired: map[string]any{
					"$version": 1.0, "q": `'"` + "\x00",
				},
				Reported: map[string]any{"sql": "'); DROP TABLE device_jobs;--"},
			}
			if err := s.CreateDevice(ctx, dev); err != nil {
				t.Fatalf("CreateDevice: %v", err)
			}
			got, err := s.GetDevice(ctx, id)
			if err != nil {
				t.Fatalf("GetDevice: %v", err)
			}
			if !reflect.DeepEqual(got, dev) {
				t.Fatalf("GetDevice = %#v, want %#v", got, dev)
			}
			job := &hub.Job{JobID: id, QueryCondition: "deviceId = '" + id + "'", Type: hub.JobUpdateTwin,
				UpdateTwin: &hub.TwinPatch{Tags: map[string]any{id: nil}}}
			if err := s.CreateJob(ctx, job); err != nil {
				t.Fatalf("CreateJob: %v", err)
			}
			gotJob, err := s.GetJob(ctx, id)
			if err != nil {
				t.Fatalf("GetJob: %v", err)
			}
			if !reflect.DeepEqual(gotJob, job) {
				t.Fatalf("GetJob = %#v, want %#v", gotJob, job)
			}
			dj := &hub.DeviceJob{JobID: id, DeviceID: id, Error: &hub.DeviceJobError{Code: id, Description: id}}
			if err := s.PutDeviceJobs(ctx, []*hub.DeviceJob{dj}); err != nil {
				t.Fatalf("PutDeviceJobs: %v", err)
			}
			djs, err := s.ScanDeviceJobs(ctx, id, [2]string{}, 10)
			if err != nil {
				t.Fatalf("ScanDeviceJobs: %v", err)
			}
			if len(djs) != 1 || !reflect.DeepEqual(djs[0], dj) {
				t.Fatalf("ScanDeviceJobs = %#v, want [%#v]", djs, dj)
			}
		})
	}
	// Every table is still there with every row, and the NUL-bearing ids
	// are distinct keys rather than truncated at the NUL.
	devs, err := s.ScanDevices(ctx, "", 100)
	if err != nil {
		t.Fatalf("ScanDevices: %v", err)
	}
	jobs, err := s.ListJobs(ctx)
	if err != nil {
		t.Fatalf("ListJobs: %v", err)
	}
	djs, err := s.ScanDeviceJobs(ctx, "", [2]string{}, 100)
	if err != nil {
		t.Fatalf("ScanDeviceJobs: %v", err)
	}
	if len(devs) != len(hostile) || len(jobs) != len(hostile) || len(djs) != len(hostile) {
		t.Fatalf("stored %d devices, %d jobs, %d device jobs; want %d of each", len(devs), len(jobs), len(djs), len(hostile))
	}
	for _, id := range []string{"nul", "nul\x00", ""} {
		if _, err := s.GetDevice(ctx, id); err != store.ErrNotFound {
			t.Errorf("GetDevice(%q): err = %v, want ErrNotFound (NUL must not truncate ids)", id, err)
		}
	}
}

// TestOddPath opens a database in a directory whose name holds the
// characters a SQLite URI would read as syntax.
func TestOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a%20b?c#d 100%")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hub.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %s: %v", path, err)
	}
}

func TestQueries(t *testing.T) {
	storetest.RunQueries(t, func(t *testing.T) store.Store {
		s := open(t, filepath.Join(t.TempDir(), "hub.db"))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestSchemaVersion: a new file gets the current schema version; a file
// of a newer version than this code knows is refused with a message
// that names both and says what to do, and is left as it was.
func TestSchemaVersion(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hub.db")
	s := open(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil || v != 3 {
		t.Fatalf("schema version of a new file: %d, %v; want 3", v, err)
	}
	if _, err := db.ExecContext(ctx, `PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), "newer iotjobs (schema 99; this one knows 3)") || !strings.Contains(err.Error(), "upgrade iotjobs") {
		t.Fatalf("Open of a schema-99 file: %v, want a refusal naming both versions", err)
	}
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil || v != 99 {
		t.Errorf("schema version after the refusal: %d, %v; want 99 untouched", v, err)
	}
}

func TestAudit(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) (store.Store, storetest.Tamper) {
		path := filepath.Join(t.TempDir(), "hub.db")
		s := open(t, path)
		t.Cleanup(func() { s.Close() })
		return s, func(t *testing.T, stmts ...string) {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, st := range stmts {
				if _, err := db.Exec(st); err != nil {
					t.Fatalf("%s: %v", st, err)
				}
			}
		}
	})
}
