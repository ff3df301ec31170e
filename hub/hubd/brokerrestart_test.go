package hubd_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/internal/mqtttest"
	"github.com/iotjobs/iotjobs/simulate"
)

// TestBrokerRestart: the hub on an external broker that is killed at 40%
// of a 1,000-device method job and restarted 2 s later. While it is down
// no call starts (the job says it waits for the broker, /healthz says the
// hub is not ready); after the restart the job goes on. Every device has
// one final result, only calls in flight at the kill may fail, and no
// device is called twice (counted on the devices). Then the same for a
// twin job: every twin patched exactly once.
func TestBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a broker under two 1,000-device jobs")
	}
	m := mqtttest.Start(t)
	broker := m.URL()
	ctx := testCtx(t, 4*time.Minute)
	h, err := hubd.Open(ctx, hubd.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Broker: broker, Logger: quiet, OpsPerSecond: 100})
	must(t, "open hub", err)
	t.Cleanup(func() { h.Close() })
	c := h.Client()
	const n = 1000
	var devs []*simulate.Device
	for i := range n {
		devs = append(devs, &simulate.Device{ID: fmt.Sprintf("r-%04d", i), Tags: map[string]any{"fleet": "r"}, Reported: map[string]any{},
			Methods: map[string]*simulate.Method{"ping": {Status: 200}}, Desired: &simulate.Desired{Report: true}})
	}
	keys, err := simulate.Register(ctx, c, devs)
	must(t, "register", err)
	var mu sync.Mutex
	calls := map[string]int{}
	sim, err := simulate.Connect(ctx, devs, keys, simulate.Options{Broker: broker, HostName: h.HostName(), Logger: quiet,
		OnMethod: func(id, _ string) {
			mu.Lock()
			calls[id]++
			mu.Unlock()
		}})
	must(t, "connect", err)
	t.Cleanup(sim.Close)
	must(t, "wait for presence", sim.WaitConnected(ctx, c))

	web := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool(t, h)}}}
	healthz := func() int {
		resp, err := web.Get("https://" + h.HTTPAddr() + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// outage kills the broker once the job is 40% done, checks that the
	// hub waits, and restarts the broker 2 s later. It returns the job's
	// statistics just before the kill and how many calls were in flight
	// at the loss: running then, or started before the hub noticed.
	outage := func(jobID string) (hub.DeviceJobStatistics, int) {
		j, err := c.WatchJob(ctx, jobID, nil)
		for err == nil {
			if s := j.DeviceJobStatistics; s != nil && s.SucceededCount+s.FailedCount >= 2*n/5 {
				break
			}
			j, err = c.WatchJob(ctx, jobID, j)
		}
		must(t, "watch "+jobID, err)
		killed := *j.DeviceJobStatistics
		m.Kill()
		// The hub notices (the closed socket, or its keep-alive), says
		// the job waits, and that it is not ready.
		for j.StatusMessage == "" {
			if j, err = c.WatchJob(ctx, jobID, j); err != nil {
				t.Fatalf("watch %s during the outage: %v", jobID, err)
			}
		}
		at := *j.DeviceJobStatistics
		t.Logf("%s when the hub noticed: %+v; %q", jobID, at, j.StatusMessage)
		if at.WaitingForBrokerCount != at.PendingCount || at.PendingCount == 0 {
			t.Errorf("statistics during the outage: %+v, want every pending device counted as waiting for the broker", at)
		}
		if code := healthz(); code != 503 {
			t.Errorf("/healthz during the outage: %d, want 503", code)
		}
		<-time.After(2 * time.Second) // the outage itself, not a wait for anything
		if now, err := c.GetJob(ctx, jobID); err != nil || now.DeviceJobStatistics.PendingCount != at.PendingCount {
			t.Errorf("devices started while the broker was down: %+v then %+v", at, now.DeviceJobStatistics)
		}
		m.Start()
		return killed, killed.RunningCount + killed.PendingCount - at.PendingCount
	}

	_, err = c.CreateJob(ctx, &hub.Job{JobID: "restart-ping", Type: hub.JobDeviceMethod, QueryCondition: "tags.fleet = 'r'", MaxExecutionTimeInSeconds: 600,
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 30, ConnectTimeoutInSeconds: 60}})
	must(t, "create method job", err)
	killed, inflight := outage("restart-ping")
	j := waitJob(ctx, t, c, "restart-ping")
	if code := healthz(); code != 200 {
		t.Errorf("/healthz after the restart: %d", code)
	}
	rows := deviceJobsPaged(ctx, t, c, "restart-ping", 1000)
	codes := map[string]int{}
	for _, dj := range rows {
		if dj.Status != hub.DeviceJobCompleted && dj.Error != nil {
			codes[dj.Error.Code]++
		}
	}
	mu.Lock()
	twice := 0
	for _, k := range calls {
		if k > 1 {
			twice++
		}
	}
	mu.Unlock()
	failedAfter := j.DeviceJobStatistics.FailedCount - killed.FailedCount
	t.Logf("method job: %s %+v; failures %v; %d in flight at the loss", j.Status, *j.DeviceJobStatistics, codes, inflight)
	if len(rows) != n || failedAfter > inflight || twice > 0 {
		t.Errorf("%d records of %d devices, %d failed from the kill on (in flight at the loss: %d), %d devices called twice", len(rows), n, failedAfter, inflight, twice)
	}

	_, err = c.CreateJob(ctx, &hub.Job{JobID: "restart-twin", Type: hub.JobUpdateTwin, QueryCondition: "tags.fleet = 'r'", MaxExecutionTimeInSeconds: 600,
		UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"mode": "eco"}}}})
	must(t, "create twin job", err)
	outage("restart-twin")
	j = waitJob(ctx, t, c, "restart-twin")
	if want := (hub.DeviceJobStatistics{DeviceCount: n, SucceededCount: n}); *j.DeviceJobStatistics != want {
		t.Errorf("twin job: %+v, want every device patched", *j.DeviceJobStatistics)
	}
	// Each twin patched once (the devices' echoes go to reported, which
	// leaves desired's version alone).
	waitCount(ctx, t, c, "SELECT COUNT() AS n FROM devices WHERE tags.fleet = 'r' AND properties.desired.$version = 2", n)
}
