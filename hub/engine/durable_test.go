package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
)

// watchUntil follows a job until ok holds for it.
func watchUntil(t *testing.T, e *engine.Engine, id string, ok func(*hub.Job) bool) *hub.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, err := e.WatchJob(ctx, id, nil)
	for err == nil && !ok(j) {
		j, err = e.WatchJob(ctx, id, j)
	}
	if err != nil {
		t.Fatalf("watch job %s: %v (last %+v)", id, err, j)
	}
	return j
}

// TestResumeMethodJob stops a hub with two method calls in flight and two
// devices not started, and opens it again: the calls in flight are
// recorded as of unknown outcome and not made again (at most once), the
// others run, and the statistics agree with the records.
func TestResumeMethodJob(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	ctx := context.Background()
	bus := newTestBus("a", "b", "c", "d")
	e := openEngine(t, path, bus, clock.Real(), func(e *engine.Engine) { e.Window = 2 })
	mustCreate(t, e, "a", "b", "c", "d")
	if _, err := e.CreateJob(ctx, &hub.Job{JobID: "m", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "hang", ResponseTimeoutInSeconds: 300}}); err != nil {
		t.Fatal(err)
	}
	first := map[string]bool{<-bus.calls: true, <-bus.calls: true}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	bus2 := newTestBus("a", "b", "c", "d")
	bus2.release = true
	e2 := openEngine(t, path, bus2, clock.Real(), nil)
	j := waitEnd(t, e2, "m")
	if want := (hub.DeviceJobStatistics{DeviceCount: 4, SucceededCount: 2, FailedCount: 2}); j.Status != hub.JobCompleted || *j.DeviceJobStatistics != want {
		t.Fatalf("resumed job %s %+v, want completed %+v", j.Status, j.DeviceJobStatistics, want)
	}
	close(bus2.calls)
	for id := range bus2.calls {
		if first[id] {
			t.Errorf("device %s called again after the restart", id)
		}
	}
	// The README's query for them finds exactly those.
	res, err := e2.Query(ctx, "SELECT * FROM devices.jobs WHERE devices.jobs.error.code = 'DeviceMethodOutcomeUnknown'", hub.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != len(first) {
		t.Errorf("query for unknown outcomes: %d rows, want %d", len(res.Items), len(first))
	}
	for id, dj := range deviceJobs(t, e2, "m") {
		switch {
		case first[id] && (dj.Status != hub.DeviceJobFailed || dj.Error == nil || dj.Error.Code != engine.CodeMethodOutcomeUnknown):
			t.Errorf("device %s, in flight at the stop: %s %+v", id, dj.Status, dj.Error)
		case !first[id] && dj.Status != hub.DeviceJobCompleted:
			t.Errorf("device %s, not started before the stop: %s %+v", id, dj.Status, dj.Error)
		}
	}
}

// TestResumeMarksAhead: a hub stopped with a full window of method calls
// in flight resumes with those calls, and at most a quarter window of
// devices the stored mark covered ahead, recorded of unknown outcome;
// every other device is called once after the restart.
func TestResumeMarksAhead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	ctx := context.Background()
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = fmt.Sprintf("d%02d", i)
	}
	const window = 8
	bus := newTestBus(ids...)
	e := openEngine(t, path, bus, clock.Real(), func(e *engine.Engine) { e.Window = window })
	mustCreate(t, e, ids...)
	if _, err := e.CreateJob(ctx, &hub.Job{JobID: "m", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "hang", ResponseTimeoutInSeconds: 300}}); err != nil {
		t.Fatal(err)
	}
	first := map[string]bool{}
	for range window {
		first[<-bus.calls] = true
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	bus2 := newTestBus(ids...)
	bus2.release = true
	e2 := openEngine(t, path, bus2, clock.Real(), nil)
	waitEnd(t, e2, "m")
	close(bus2.calls)
	second := map[string]bool{}
	for id := range bus2.calls {
		if first[id] || second[id] {
			t.Errorf("device %s called again", id)
		}
		second[id] = true
	}
	unknown := 0
	for id, dj := range deviceJobs(t, e2, "m") {
		switch {
		case dj.Status == hub.DeviceJobFailed && dj.Error != nil && dj.Error.Code == engine.CodeMethodOutcomeUnknown:
			unknown++
			if second[id] {
				t.Errorf("device %s recorded unknown but called after the restart", id)
			}
		case dj.Status != hub.DeviceJobCompleted || !second[id]:
			t.Errorf("device %s: %s %+v, called after the restart: %v", id, dj.Status, dj.Error, second[id])
		}
	}
	if unknown < window || unknown > window+window/4 {
		t.Errorf("%d devices of unknown outcome, want %d in flight and at most %d covered ahead", unknown, window, window/4)
	}
}

// TestResumeTwinJob stops a hub in the middle of a rate-limited twin job
// and opens it again: every twin's desired $version advances exactly once.
func TestResumeTwinJob(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	ctx := context.Background()
	clk := clock.NewVirtual(t0)
	ids := []string{"a", "b", "c", "d", "e"}
	e := openEngine(t, path, newTestBus(), clk, func(e *engine.Engine) { e.OpsPerSecond = 1 })
	mustCreate(t, e, ids...)
	if _, err := e.CreateJob(ctx, &hub.Job{JobID: "t", Type: hub.JobUpdateTwin, QueryCondition: "*",
		UpdateTwin: &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"fw": "2.0"}}}}); err != nil {
		t.Fatal(err)
	}
	// One device a second: the first is done at once, the rest wait.
	watchUntil(t, e, "t", func(j *hub.Job) bool {
		return j.DeviceJobStatistics != nil && j.DeviceJobStatistics.SucceededCount == 1
	})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := openEngine(t, path, newTestBus(), clk, nil)
	j := waitEnd(t, e2, "t")
	if want := (hub.DeviceJobStatistics{DeviceCount: 5, SucceededCount: 5}); j.Status != hub.JobCompleted || *j.DeviceJobStatistics != want {
		t.Fatalf("resumed job %s %+v, want completed %+v", j.Status, j.DeviceJobStatistics, want)
	}
	for _, id := range ids {
		tw, err := e2.GetTwin(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// A new twin's desired $version is 1; the job's patch makes it 2.
		if v := tw.Properties.Desired["$version"]; v != 2.0 || tw.Properties.Desired["fw"] != "2.0" {
			t.Errorf("twin %s: desired %v, want fw 2.0 at $version 2", id, tw.Properties.Desired)
		}
	}
}

// TestResumeCancelledJob: a job cancelled just before the hub stopped
// resumes as cancelled and ends.
func TestResumeCancelledJob(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	ctx := context.Background()
	bus := newTestBus("a", "b", "c")
	e := openEngine(t, path, bus, clock.Real(), func(e *engine.Engine) { e.Window = 1 })
	mustCreate(t, e, "a", "b", "c")
	if _, err := e.CreateJob(ctx, &hub.Job{JobID: "c", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "hang", ResponseTimeoutInSeconds: 300}}); err != nil {
		t.Fatal(err)
	}
	inflight := <-bus.calls
	if j, err := e.CancelJob(ctx, "c"); err != nil || j.Status != hub.JobCancelled {
		t.Fatalf("cancel: %+v %v", j, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := openEngine(t, path, newTestBus("a", "b", "c"), clock.Real(), nil)
	j := waitEnd(t, e2, "c")
	if want := (hub.DeviceJobStatistics{DeviceCount: 3, FailedCount: 3}); j.Status != hub.JobCancelled || *j.DeviceJobStatistics != want {
		t.Fatalf("resumed cancelled job %s %+v, want cancelled %+v", j.Status, j.DeviceJobStatistics, want)
	}
	for id, dj := range deviceJobs(t, e2, "c") {
		want := hub.DeviceJobCanceled
		if id == inflight {
			want = hub.DeviceJobFailed
		}
		if dj.Status != want {
			t.Errorf("device %s: %s, want %s", id, dj.Status, want)
		}
	}
}

// TestMaxActiveJobs: one job more than the limit is refused with 429
// ThrottlingMaxActiveJobCountExceeded until one ends.
func TestMaxActiveJobs(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewVirtual(t0)
	e := openEngine(t, filepath.Join(t.TempDir(), "hub.db"), newTestBus(), clk, func(e *engine.Engine) { e.MaxActiveJobs = 2 })
	later := &hub.Time{Time: t0.Add(time.Hour)}
	job := func(id string) *hub.Job {
		return &hub.Job{JobID: id, Type: hub.JobDeviceMethod, QueryCondition: "*", StartTime: later,
			CloudToDeviceMethod: &hub.MethodRequest{MethodName: "m"}}
	}
	for _, id := range []string{"j1", "j2"} {
		if _, err := e.CreateJob(ctx, job(id)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.CreateJob(ctx, job("j3"))
	wantCode(t, err, hub.CodeTooManyJobs)
	if hub.HTTPStatus(hub.ErrorCode(err)) != 429 {
		t.Errorf("status %d, want 429", hub.HTTPStatus(hub.ErrorCode(err)))
	}
	if _, err := e.CancelJob(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	waitEnd(t, e, "j1")
	if _, err := e.CreateJob(ctx, job("j3")); err != nil {
		t.Fatalf("create after one ended: %v", err)
	}
}

// TestRateSharedByJobs: two jobs under one hub rate take turns, and
// together they take at least as long as the rate allows.
func TestRateSharedByJobs(t *testing.T) {
	ctx := context.Background()
	var ids1, ids2 []string
	for i := range 20 {
		ids1 = append(ids1, "a"+string(rune('A'+i)))
		ids2 = append(ids2, "b"+string(rune('A'+i)))
	}
	bus := newTestBus(append(ids1, ids2...)...)
	const rate = 200.0
	e := openEngine(t, filepath.Join(t.TempDir(), "hub.db"), bus, clock.Real(), func(e *engine.Engine) { e.OpsPerSecond = rate })
	mustCreate(t, e, ids1...)
	mustCreate(t, e, ids2...)
	start := time.Now()
	for _, j := range []struct{ id, prefix string }{{"j1", "a"}, {"j2", "b"}} {
		if _, err := e.CreateJob(ctx, &hub.Job{JobID: j.id, Type: hub.JobDeviceMethod, QueryCondition: "STARTSWITH(deviceId, '" + j.prefix + "')",
			CloudToDeviceMethod: &hub.MethodRequest{MethodName: "m"}}); err != nil {
			t.Fatal(err)
		}
	}
	var order []byte
	for range 40 {
		order = append(order, (<-bus.calls)[0])
	}
	elapsed := time.Since(start)
	waitEnd(t, e, "j1")
	waitEnd(t, e, "j2")
	// 40 operations at 200 a second: the 40th starts 39/200 s after the first.
	if min := time.Duration(39 / rate * float64(time.Second)); elapsed < min {
		t.Errorf("40 operations in %v at %v a second, want at least %v", elapsed, rate, min)
	}
	// Taking turns: by the time half the operations ran, each job had a
	// fair part of them (the second job starts a moment later).
	n := map[byte]int{}
	for _, c := range order[:20] {
		n[c]++
	}
	if n['a'] < 6 || n['b'] < 6 {
		t.Errorf("first 20 operations %q: not shared between the jobs", order[:20])
	}
}
