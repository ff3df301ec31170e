package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// TestPutAlike: records alike but for their device, stored with one
// statement, are stored byte for byte as one by one; runs broken by a
// record that differs, or by an id that needs escaping, fall back to one
// by one.
func TestPutAlike(t *testing.T) {
	ctx := context.Background()
	at := &hub.Time{Time: time.Date(2026, 11, 26, 10, 0, 0, 123456700, time.UTC)}
	var djs []*hub.DeviceJob
	for i := range 300 {
		id := fmt.Sprintf("dev-%04d", i)
		switch i {
		case 100:
			id = "odd<&>\"id" // not a valid device id, but a store must still store it
		case 200:
			id = "dev-ü"
		}
		dj := &hub.DeviceJob{JobID: "job-1", DeviceID: id, JobType: hub.JobDeviceMethod, Status: hub.DeviceJobPending,
			CreatedDateTimeUtc: at, LastUpdatedDateTimeUtc: at}
		if i == 150 {
			dj.Status = hub.DeviceJobCanceled
		}
		djs = append(djs, dj)
	}
	// One that stores in one call (bulk runs) and one that stores a record
	// per call (never a run).
	open := func() *Store {
		s, err := Open(ctx, filepath.Join(t.TempDir(), "hub.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.CreateJob(ctx, &hub.Job{JobID: "job-1", CreatedTime: at, Type: hub.JobDeviceMethod}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	bulk, single := open(), open()
	if err := bulk.PutDeviceJobs(ctx, djs); err != nil {
		t.Fatal(err)
	}
	for _, dj := range djs {
		if err := single.PutDeviceJobs(ctx, []*hub.DeviceJob{dj}); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(s *Store) map[string]string {
		res, err := s.db.QueryContext(ctx, `SELECT device_id, doc, json(qdoc) FROM device_jobs ORDER BY device_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		out := map[string]string{}
		for res.Next() {
			var id, doc, qdoc string
			if err := res.Scan(&id, &doc, &qdoc); err != nil {
				t.Fatal(err)
			}
			out[id] = doc + "\n" + qdoc
		}
		return out
	}
	got, want := rows(bulk), rows(single)
	if len(got) != len(djs) || len(want) != len(djs) {
		t.Fatalf("%d and %d rows, want %d", len(got), len(want), len(djs))
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("device %q:\n bulk %s\nsingle %s", id, got[id], w)
		}
	}
	// Stored again (the upsert), the same.
	if err := bulk.PutDeviceJobs(ctx, djs); err != nil {
		t.Fatal(err)
	}
	if again := rows(bulk); len(again) != len(djs) || again["dev-0042"] != want["dev-0042"] {
		t.Errorf("after storing again: %d rows, dev-0042 %s", len(again), again["dev-0042"])
	}
}
