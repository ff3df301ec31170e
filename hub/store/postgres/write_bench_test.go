package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/postgres"
)

// The write-path benchmarks, as the SQLite store's (same fleet, groups and
// records; each op is one device), for comparison:
//
//	go test -run '^$' -bench 'UpdateDevices|PutDeviceJobs' ./hub/store/postgres ./hub/store/sqlite

const (
	writeFleet   = 10_000
	benchVersion = 2
)

// The fleet generator is the SQLite benchmarks' (hub/store/sqlite/bench_test.go).
var (
	benchFirmware = []string{"2.4.1", "2.4.0", "2.3.9", "2.3.2", "2.2.0", "2.1.7", "1.9.3", "1.8.0"}
	benchRegions  = []string{"eu-west", "eu-north", "us-east", "us-west", "ap-south"}
	benchRings    = []string{"canary", "early", "broad"}
)

// benchDevice is device i of the benchmark fleet: 100 buildings with 20
// floors each, five regions, three rollout rings; reported firmware
// (skewed towards recent versions), temperature, battery and a nested
// connectivity object; the $version and $metadata a hub keeps.
func benchDevice(i int, at time.Time) *store.Device {
	r := rand.New(rand.NewPCG(uint64(i), benchVersion))
	tags := map[string]any{
		"building": fmt.Sprintf("b%03d", r.IntN(100)),
		"floor":    float64(1 + r.IntN(20)),
		"region":   benchRegions[r.IntN(len(benchRegions))],
		"ring":     benchRings[r.IntN(len(benchRings))],
		"model":    fmt.Sprintf("lock-%d", 100+r.IntN(4)*100),
	}
	desired := map[string]any{}
	if _, err := hub.MergeSection(desired, map[string]any{
		"telemetryInterval": float64(30 * (1 + r.IntN(4))),
		"firmware":          map[string]any{"version": benchFirmware[0]},
	}, at, 1, true); err != nil {
		panic(err)
	}
	fw := benchFirmware[min(r.IntN(12), len(benchFirmware)-1)]
	reported := map[string]any{}
	if _, err := hub.MergeSection(reported, map[string]any{
		"firmware":    map[string]any{"version": fw, "installedAt": at.Format(time.RFC3339)},
		"temperature": float64(150+r.IntN(300)) / 10,
		"battery":     float64(r.IntN(101)),
		"connectivity": map[string]any{
			"type": []string{"wifi", "lte", "ethernet"}[r.IntN(3)],
			"rssi": float64(-30 - r.IntN(60)),
		},
		"lastReboot": at.Add(-time.Duration(r.IntN(720)) * time.Hour).Format(time.RFC3339),
	}, at, 1+int64(r.IntN(50)), false); err != nil {
		panic(err)
	}
	reported["$version"] = float64(1 + r.IntN(50))
	return &store.Device{
		Device: hub.Device{
			DeviceID:          fmt.Sprintf("dev-%07d", i),
			ETag:              "MA==",
			Status:            hub.StatusEnabled,
			ConnectionState:   hub.Disconnected,
			StatusUpdatedTime: hub.Time{Time: at},
			LastActivityTime:  hub.Time{Time: at},
			Authentication: hub.Authentication{Type: "sas", SymmetricKey: hub.SymmetricKey{
				PrimaryKey: "cHJpbWFyeS1rZXktZm9yLWJlbmNobWFyaw==", SecondaryKey: "c2Vjb25kYXJ5LWtleS1mb3ItYmVuY2htYXJr",
			}},
		},
		Tags:     tags,
		Desired:  desired,
		Reported: reported,
		Version:  2,
	}
}

func writeStore(b *testing.B) *postgres.Store {
	ctx := context.Background()
	s := open(b)
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	ds := make([]*store.Device, writeFleet)
	for i := range ds {
		ds[i] = benchDevice(i, at)
	}
	if err := s.LoadDevices(ctx, ds); err != nil {
		b.Fatal(err)
	}
	if err := s.Exec(ctx, "ANALYZE"); err != nil {
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

// BenchmarkPutPendingRecords is a new job's first write: one "pending"
// record per device of the fleet, alike but for the device.
func BenchmarkPutPendingRecords(b *testing.B) {
	s := writeStore(b)
	ctx := context.Background()
	at := &hub.Time{Time: time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)}
	n := 0
	for b.Loop() {
		job := fmt.Sprintf("job-%d", n)
		djs := make([]*hub.DeviceJob, writeFleet)
		for i := range djs {
			djs[i] = &hub.DeviceJob{JobID: job, DeviceID: fmt.Sprintf("dev-%07d", i), JobType: hub.JobDeviceMethod,
				Status: hub.DeviceJobPending, CreatedDateTimeUtc: at}
		}
		if err := s.PutDeviceJobs(ctx, djs); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*writeFleet), "ns/device")
}
