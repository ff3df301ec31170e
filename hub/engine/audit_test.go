package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/sqlite"
)

// auditLines reads the whole log through the engine, in pages, and
// checks its chain.
func auditLines(t *testing.T, e *engine.Engine, f hub.AuditFilter) []string {
	t.Helper()
	var lines []string
	var all, merged []*hub.AuditEntry
	tok := ""
	for {
		page, err := e.AuditEntries(context.Background(), f, tok)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range page.Entries {
			if len(en.Devices) > 0 && len(merged) > 0 && merged[len(merged)-1].Operation == en.Operation && merged[len(merged)-1].Target == en.Target {
				// A job's devices may be stored in one write or several.
				merged[len(merged)-1].Devices = append(merged[len(merged)-1].Devices, en.Devices...)
				continue
			}
			c := *en
			merged = append(merged, &c)
		}
		all = append(all, page.Entries...)
		if tok = page.Continuation; tok == "" {
			break
		}
	}
	for _, en := range merged {
		{
			line := fmt.Sprintf("%s %s %s", en.Actor, en.Operation, en.Target)
			if len(en.Devices) == 0 {
				line += " " + en.Result
			}
			if en.Job != "" && en.Job != en.Target {
				line += " job=" + en.Job
			}
			if len(en.Devices) > 0 {
				d := slices.Clone(en.Devices)
				slices.Sort(d)
				line += " devices=" + strings.Join(d, ",")
			}
			if en.Plan != "" {
				line += " plan=" + en.Plan + "@" + en.PlanSHA256
			}
			lines = append(lines, line)
		}
	}
	if f == (hub.AuditFilter{}) {
		if b := hub.VerifyAudit(all); b != nil {
			t.Errorf("verify: %v", b)
		}
	}
	return lines
}

// TestAuditTrail: each kind of mutating call is recorded with its actor
// and result, refused calls too; a job's device operations are recorded
// per write with the devices, and its end with its counts.
func TestAuditTrail(t *testing.T) {
	bus := newTestBus("a", "b")
	e := newEngine(t, bus, clock.Real())
	ctx := hub.WithActor(context.Background(), "iothubowner")
	mustCreate(t, e, "a", "b", "c") // in-process: actor "local"
	if _, err := e.UpdateTwin(ctx, "a", &hub.TwinPatch{Tags: map[string]any{"k": "v"}}, "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpdateTwin(ctx, "a", &hub.TwinPatch{Tags: map[string]any{"k": "v"}}, `"nope"`); err == nil {
		t.Fatal("patch with a stale etag succeeded")
	}
	if _, err := e.InvokeMethod(ctx, "b", &hub.MethodRequest{MethodName: "fail", ResponseTimeoutInSeconds: 5}); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteDevice(ctx, "c", "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ReportedPatch(context.Background(), "b", []byte(`{"fw":"1.2"}`)); err != nil {
		t.Fatal(err)
	}
	pctx := hub.WithPlan(ctx, hub.PlanRef{Name: "lock-door", SHA256: "abc"})
	if _, err := e.CreateJob(pctx, &hub.Job{JobID: "m1", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "reboot", ResponseTimeoutInSeconds: 5}}); err != nil {
		t.Fatal(err)
	}
	waitEnd(t, e, "m1")
	if _, err := e.CreateJob(ctx, &hub.Job{JobID: "t1", Type: hub.JobUpdateTwin, QueryCondition: "*",
		UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"x": 1.0}}}}); err != nil {
		t.Fatal(err)
	}
	waitEnd(t, e, "t1")
	got := auditLines(t, e, hub.AuditFilter{})
	want := []string{
		"local device.create a 200",
		"local device.create b 200",
		"local device.create c 200",
		"iothubowner twin.patch a 200",
		"iothubowner twin.patch a PreconditionFailed",
		"iothubowner method.invoke b 500",
		"iothubowner device.delete c 200",
		"device:b twin.reported b 200",
		"iothubowner job.create m1 200 plan=lock-door@abc",
		"engine method.invoke m1 devices=a,b",
		"engine job.end m1 completed: 2 succeeded, 0 failed",
		"iothubowner job.create t1 200",
		"engine twin.patch t1 devices=a,b",
		"engine job.end t1 completed: 2 succeeded, 0 failed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := auditLines(t, e, hub.AuditFilter{Job: "t1"}); len(got) != 3 {
		t.Errorf("--job t1: %q", got)
	}
	if got := auditLines(t, e, hub.AuditFilter{Device: "b"}); len(got) != 5 {
		t.Errorf("--device b: %q", got)
	}
}

// BenchmarkAuditCost times a twin job over 10,000 devices with the audit
// log on and off, on SQLite, and reports on/off as the ratio.
func BenchmarkAuditCost(b *testing.B) {
	const n = 10000
	run := func(b *testing.B, noAudit bool) time.Duration {
		ctx := context.Background()
		st := openBenchStore(b, filepath.Join(b.TempDir(), "hub.db"), n)
		e := engine.New(st, newTestBus(), clock.Real())
		e.NoAudit = noAudit
		e.MaxActiveJobs = -1
		if err := e.Open(ctx); err != nil {
			b.Fatal(err)
		}
		defer func() {
			e.Close()
			st.Close()
		}()
		start := time.Now()
		id := fmt.Sprintf("bench-%v", noAudit)
		if _, err := e.CreateJob(ctx, &hub.Job{JobID: id, Type: hub.JobUpdateTwin, QueryCondition: "*",
			UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"fw": "2.0"}}}}); err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		j, err := e.WatchJob(wctx, id, nil)
		for err == nil && j.EndTime == nil {
			j, err = e.WatchJob(wctx, id, j)
		}
		if err != nil || j.DeviceJobStatistics.SucceededCount != n {
			b.Fatalf("job: %v %+v", err, j)
		}
		return time.Since(start)
	}
	var on, off time.Duration
	for b.Loop() {
		// Alternated, so that drift of the machine's speed hits both.
		off += run(b, true)
		on += run(b, false)
	}
	b.ReportMetric(float64(off.Milliseconds())/float64(b.N), "off-ms/job")
	b.ReportMetric(float64(on.Milliseconds())/float64(b.N), "on-ms/job")
	b.ReportMetric(float64(on)/float64(off), "on/off")
}

// openBenchStore opens a SQLite store at path holding n devices, loaded
// in one transaction.
func openBenchStore(b *testing.B, path string, n int) *sqlite.Store {
	b.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	meta := map[string]any{"$lastUpdated": "2026-01-01T00:00:00Z"}
	ds := make([]*store.Device, n)
	for i := range ds {
		ds[i] = &store.Device{Device: hub.Device{DeviceID: fmt.Sprintf("d%05d", i), Status: hub.StatusEnabled, ETag: "MQ=="},
			Tags: map[string]any{}, Desired: map[string]any{"$metadata": meta, "$version": 1.0},
			Reported: map[string]any{"$metadata": meta, "$version": 1.0}, Version: 1}
	}
	if err := st.CreateDevices(context.Background(), ds); err != nil {
		b.Fatal(err)
	}
	return st
}
