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

// TestQueries: the store answers from query documents it caches (and
// builds without a full JSON round trip); the reference evaluator over a
// snapshot of its devices must agree on the whole corpus.
func TestQueries(t *testing.T) {
	storetest.RunQueries(t, func(t *testing.T) store.Store { return memstore.New() })
}

// plain is a store seen only as a store.Scanner: the reference evaluator
// over it builds every document afresh, without the store's cache.
type plain struct{ store.Scanner }

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
			want, err := store.EvalDevices(ctx, plain{s}, q, "", limit)
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
			want, err := store.EvalDeviceJobs(ctx, plain{s}, q, "", limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s (limit %d): %s, want %s", src, limit, got.Items, want.Items)
			}
		}
	}
}

// TestQueryAfterUpdate: a query sees a write made after an earlier query
// cached the device's document, and a caller changing the device it got
// back changes nothing stored.
func TestQueryAfterUpdate(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	if err := s.CreateDevice(ctx, &store.Device{Device: hub.Device{DeviceID: "a"}, Tags: map[string]any{"ring": "canary"}}); err != nil {
		t.Fatal(err)
	}
	q, err := query.Parse("SELECT deviceId, tags.ring AS ring FROM devices")
	if err != nil {
		t.Fatal(err)
	}
	ring := func() string {
		t.Helper()
		p, err := s.QueryDevices(ctx, q, "", 10)
		if err != nil || len(p.Items) != 1 {
			t.Fatalf("query: %v, %d rows", err, len(p.Items))
		}
		return string(p.Items[0])
	}
	if got := ring(); got != `{"deviceId":"a","ring":"canary"}` {
		t.Fatalf("before: %s", got)
	}
	d, err := s.UpdateDevice(ctx, "a", func(d *store.Device) error { d.Tags["ring"] = "broad"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got := ring(); got != `{"deviceId":"a","ring":"broad"}` {
		t.Fatalf("after update: %s", got)
	}
	d.Tags["ring"] = "changed by the caller"
	if got := ring(); got != `{"deviceId":"a","ring":"broad"}` {
		t.Fatalf("after the caller changed its copy: %s", got)
	}
}

func TestLeaser(t *testing.T) {
	storetest.RunLeaser(t, func(t *testing.T) store.Store { return memstore.New() }, nil)
}
