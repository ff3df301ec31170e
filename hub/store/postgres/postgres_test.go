package postgres_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/postgres"
	"github.com/iotjobs/iotjobs/hub/store/storetest"
	"github.com/iotjobs/iotjobs/internal/pgtest"
)

// The tests run against the PostgreSQL of internal/pgtest (the machine's
// own unless IOTJOBS_POSTGRES_URL says otherwise), each in a schema of its
// own that it drops afterwards; without a server they skip, or fail under
// IOTJOBS_REQUIRE_POSTGRES (CI).

// open opens a store on a fresh schema, closed when t ends (before the
// schema is dropped).
func open(t testing.TB) *postgres.Store {
	t.Helper()
	_, u := pgtest.Schema(t)
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func TestQueries(t *testing.T) {
	storetest.RunQueries(t, func(t *testing.T) store.Store { return open(t) })
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	_, u := pgtest.Schema(t)
	s, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	dev := &store.Device{
		Device:   hub.Device{DeviceID: "d1", Status: hub.StatusEnabled},
		Tags:     map[string]any{"site": "Berlin", "big": int64(1)<<62 + 5},
		Desired:  map[string]any{"$version": 2.0, "x": 1.0},
		Reported: map[string]any{"$version": 1.0},
		Version:  3,
	}
	if err := s.CreateDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = postgres.Open(ctx, u)
	if err != nil {
		t.Fatalf("Open again: %v", err)
	}
	defer s.Close()
	got, err := s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	// Go integers read back as the float64s of their JSON round trip, as
	// from every store that keeps JSON.
	dev.Tags["big"] = float64(int64(1)<<62 + 5)
	if !reflect.DeepEqual(got, dev) {
		t.Errorf("device after reopen = %#v, want %#v", got, dev)
	}
}

// TestHostileValues pins that ids and JSON travel as parameters: SQL in
// them is data, and quotes come back verbatim. NUL characters, which
// PostgreSQL text cannot hold, are refused in ids (the hub never makes
// such ids) and kept in twins and records.
func TestHostileValues(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	hostile := []string{
		`'); DROP TABLE devices;--`,
		`" OR 1=1 --`,
		`x' OR 'x'='x`,
		`back\slash`,
		`%_*`,
		"; DELETE FROM jobs; SELECT '",
		`\u0000`,
	}
	for _, id := range hostile {
		t.Run(id, func(t *testing.T) {
			nul := id + "\x00nul"
			dev := &store.Device{
				Device: hub.Device{DeviceID: id, StatusReason: &nul},
				Tags:   map[string]any{id: id, "nested": map[string]any{id: []any{id, nul}}, nul: nul},
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
			job := &hub.Job{JobID: id, QueryCondition: "deviceId = '" + nul + "'", Type: hub.JobUpdateTwin,
				UpdateTwin: &hub.TwinPatch{Tags: map[string]any{nul: nil}}}
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
			dj := &hub.DeviceJob{JobID: id, DeviceID: id, Error: &hub.DeviceJobError{Code: id, Description: nul}}
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

	// Keys PostgreSQL cannot hold: never stored, never found, and as page
	// keys they sort where Go sorts them.
	for _, id := range []string{"nul\x00byte", "\x00", "bad\xffutf8"} {
		if err := s.CreateDevice(ctx, &store.Device{Device: hub.Device{DeviceID: id}}); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateDevice(%q): err = %v, want a refusal", id, err)
		}
		if err := s.CreateJob(ctx, &hub.Job{JobID: id}); err == nil {
			t.Errorf("CreateJob(%q) succeeded", id)
		}
		if err := s.PutDeviceJobs(ctx, []*hub.DeviceJob{{JobID: "j", DeviceID: id}}); err == nil {
			t.Errorf("PutDeviceJobs of device %q succeeded", id)
		}
		if _, err := s.GetDevice(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetDevice(%q): err = %v, want ErrNotFound", id, err)
		}
		if _, err := s.GetJob(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetJob(%q): err = %v, want ErrNotFound", id, err)
		}
		if err := s.DeleteDevice(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteDevice(%q): err = %v, want ErrNotFound", id, err)
		}
		if _, err := s.UpdateDevice(ctx, id, func(*store.Device) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateDevice(%q): err = %v, want ErrNotFound", id, err)
		}
	}
	for _, after := range []string{"x'\x00", "\\\xff", "\x00", "%_*\x00z"} {
		page, err := s.ScanDevices(ctx, after, 100)
		if err != nil {
			t.Fatalf("ScanDevices(%q): %v", after, err)
		}
		var want []string
		for _, d := range devs {
			if d.DeviceID > after {
				want = append(want, d.DeviceID)
			}
		}
		var got []string
		for _, d := range page {
			got = append(got, d.DeviceID)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ScanDevices(%q) = %q, want %q", after, got, want)
		}
	}
}

// TestConcurrentGroups runs groups of updates over overlapping devices in
// opposite orders, which would deadlock if groups did not lock in one
// order.
func TestConcurrentGroups(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	ids := []string{"a", "b", "c", "d", "e", "f"}
	for _, id := range ids {
		if err := s.CreateDevice(ctx, &store.Device{Device: hub.Device{DeviceID: id}}); err != nil {
			t.Fatal(err)
		}
	}
	const rounds = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for g := range 4 {
		wg.Go(func() {
			for range rounds {
				var ups []store.DeviceUpdate
				for j := range ids {
					id := ids[j]
					if g%2 == 1 {
						id = ids[len(ids)-1-j]
					}
					ups = append(ups, store.DeviceUpdate{ID: id, Fn: func(d *store.Device) error { d.Version++; return nil },
						Recs: []*hub.DeviceJob{{JobID: "j", DeviceID: id, Status: hub.DeviceJobCompleted}}})
				}
				if _, _, err := s.UpdateDevices(ctx, ups); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("UpdateDevices: %v", err)
	}
	for _, id := range ids {
		d, err := s.GetDevice(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Version != 4*rounds {
			t.Errorf("%s: version %d, want %d", id, d.Version, 4*rounds)
		}
	}
}
