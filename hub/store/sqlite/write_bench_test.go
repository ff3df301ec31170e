package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/sqlite"
)

// The write-path benchmarks: what a job costs the store per device, in
// the groups the engine's writers form (BenchmarkUpdateDevices: a twin
// job's patch and record, 512 devices a transaction;
// BenchmarkPutDeviceJobs: a method job's records, 1,000 a transaction).
// Each op is one device.
//
//	go test -run '^$' -bench 'UpdateDevices|PutDeviceJobs' ./hub/store/sqlite

const writeFleet = 10_000

func writeStore(b *testing.B) *sqlite.Store {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "hub.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	ds := make([]*store.Device, writeFleet)
	for i := range ds {
		ds[i] = benchDevice(i, at)
	}
	if err := s.CreateDevices(ctx, ds); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkUpdateDevices(b *testing.B) {
	s := writeStore(b)
	ctx := context.Background()
	at := time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	const group = 512
	i := 0
	for b.Loop() {
		ups := make([]store.DeviceUpdate, 0, group)
		for range group {
			id := fmt.Sprintf("dev-%07d", i%writeFleet)
			i++
			now := &hub.Time{Time: at}
			ups = append(ups, store.DeviceUpdate{ID: id,
				Fn: func(d *store.Device) error {
					d.Version++
					_, err := hub.MergeSection(d.Desired, map[string]any{"run": float64(i)}, at, d.Version, true)
					return err
				},
				Recs: []*hub.DeviceJob{{JobID: "bench", DeviceID: id, JobType: hub.JobUpdateTwin, Status: hub.DeviceJobCompleted,
					CreatedDateTimeUtc: now, StartTimeUtc: now, EndTimeUtc: now, LastUpdatedDateTimeUtc: now, Outcome: &hub.DeviceJobOutcome{}}},
			})
		}
		if _, errs, err := s.UpdateDevices(ctx, ups); err != nil {
			b.Fatal(err)
		} else {
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/device")
}

func BenchmarkPutDeviceJobs(b *testing.B) {
	s := writeStore(b)
	ctx := context.Background()
	at := &hub.Time{Time: time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)}
	job := &hub.Job{JobID: "bench", Type: hub.JobDeviceMethod, Status: hub.JobRunning, CreatedTime: at}
	if err := s.CreateJob(ctx, job); err != nil {
		b.Fatal(err)
	}
	const group = 1000
	i := 0
	for b.Loop() {
		djs := make([]*hub.DeviceJob, 0, group)
		for range group {
			id := fmt.Sprintf("dev-%07d", i%writeFleet)
			i++
			djs = append(djs, &hub.DeviceJob{JobID: "bench", DeviceID: id, JobType: hub.JobDeviceMethod, Status: hub.DeviceJobCompleted,
				CreatedDateTimeUtc: at, StartTimeUtc: at, EndTimeUtc: at, LastUpdatedDateTimeUtc: at,
				Outcome: &hub.DeviceJobOutcome{DeviceMethodResponse: &hub.MethodResponse{Status: 200, Payload: []byte(`{"ok":true}`)}}})
		}
		if err := s.PutDeviceJobs(ctx, djs, job); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/device")
}
