package memstore_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"

	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/memstore"
	"github.com/iotjobs/iotjobs/hub/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
}

// The differential query test (storetest.RunQueries) would compare this
// store's answers with the reference evaluator over this store: the same
// code, so it is not run here.

// TestQueriesByID: the fast path for deviceId IN [...] gives what the
// reference gives over the whole store.
func TestQueriesByID(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		if err := s.CreateDevice(ctx, &store.Device{Device: hub.Device{DeviceID: id}, Tags: map[string]any{"n": float64(len(id)), "id": id}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, src := range []string{
		"SELECT * FROM devices WHERE deviceId IN ['d', 'b', 'x', 'b']",
		"SELECT deviceId FROM devices WHERE tags.id != 'b' AND deviceId IN ['a', 'b', 'c']",
		"SELECT deviceId FROM devices WHERE deviceId IN ['a', 'b'] AND (tags.id = 'a' OR tags.id = 'b')",
		"SELECT COUNT() AS n FROM devices WHERE DEVICEID IN ['a', 'e']",
	} {
		q, err := query.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{1, 2, 100} {
			got, err := s.QueryDevices(ctx, q, "", limit)
			if err != nil {
				t.Fatal(err)
			}
			want, err := store.EvalDevices(ctx, s, q, "", limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s (limit %d): %s, want %s", src, limit, got.Items, want.Items)
			}
		}
	}
}

// TestQueriesByJob: the fast path for one job's records gives what the
// reference gives over every record.
func TestQueriesByJob(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	for _, j := range []string{"j1", "j2"} {
		if err := s.CreateJob(ctx, &hub.Job{JobID: j}); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"a", "b", "c"} {
			st := hub.DeviceJobCompleted
			if d == "b" {
				st = hub.DeviceJobFailed
			}
			if err := s.PutDeviceJobs(ctx, []*hub.DeviceJob{{JobID: j, DeviceID: d, Status: st}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, src := range []string{
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j2'",
		"SELECT * FROM devices.jobs WHERE devices.jobs.status = 'failed' AND 'j1' = devices.jobs.jobId",
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'none'",
	} {
		q, err := query.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{1, 100} {
			got, err := s.QueryDeviceJobs(ctx, q, "", limit)
			if err != nil {
				t.Fatal(err)
			}
			want, err := store.EvalDeviceJobs(ctx, s, q, "", limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s (limit %d): %s, want %s", src, limit, got.Items, want.Items)
			}
		}
	}
}
