package hubd_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/internal/mqtttest"
	"github.com/iotjobs/iotjobs/internal/pgtest"
	"github.com/iotjobs/iotjobs/simulate"
)

// TestReplicasOnOneBroker: two hubs on one PostgreSQL schema and one
// Mosquitto serve one fleet as one hub. A method job created through one
// and a twin job through the other each run once; every device request
// (twin GET at connect, the reported echo of each desired patch) is
// handled by one replica, so each reported patch counts once in the
// twin's $version; then the replica running a job stops mid-job and the
// other finishes it.
func TestReplicasOnOneBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("two hubs, a broker and 300 devices")
	}
	_, storeURL := pgtest.Schema(t)
	m := mqtttest.Start(t)
	broker := m.URL()
	ctx := testCtx(t, 3*time.Minute)
	var reps []*hubd.Hub
	for range 2 {
		h, err := hubd.Open(ctx, hubd.Config{DataDir: t.TempDir(), StoreURL: storeURL, HTTPAddr: "127.0.0.1:0", Broker: broker,
			Logger: quiet, LeaseTTL: 2 * time.Second, OpsPerSecond: 200})
		must(t, "open replica", err)
		t.Cleanup(func() { h.Close() })
		reps = append(reps, h)
	}
	a, b := reps[0].Client(), reps[1].Client()
	const n = 300
	var devs []*simulate.Device
	for i := range n {
		devs = append(devs, &simulate.Device{ID: fmt.Sprintf("rp-%04d", i), Tags: map[string]any{"fleet": "rp"}, Reported: map[string]any{},
			Methods: map[string]*simulate.Method{"ping": {Status: 200, Latency: simulate.Latency{Median: 20 * time.Millisecond}}},
			Desired: &simulate.Desired{Report: true}})
	}
	keys, err := simulate.Register(ctx, a, devs)
	must(t, "register", err)
	var mu sync.Mutex
	calls := map[string]int{}
	sim, err := simulate.Connect(ctx, devs, keys, simulate.Options{Broker: broker, HostName: reps[0].HostName(), Logger: quiet,
		OnMethod: func(id, _ string) {
			mu.Lock()
			calls[id]++
			mu.Unlock()
		}})
	must(t, "connect", err)
	t.Cleanup(sim.Close)
	must(t, "presence on replica 1", sim.WaitConnected(ctx, a))
	must(t, "presence on replica 2", sim.WaitConnected(ctx, b))

	// One job through each replica; each replica watches the other's.
	_, err = a.CreateJob(ctx, &hub.Job{JobID: "rp-ping", Type: hub.JobDeviceMethod, QueryCondition: "tags.fleet = 'rp'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 30}})
	must(t, "method job through replica 1", err)
	_, err = b.CreateJob(ctx, &hub.Job{JobID: "rp-twin", Type: hub.JobUpdateTwin, QueryCondition: "tags.fleet = 'rp'",
		UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"mode": "eco"}}}})
	must(t, "twin job through replica 2", err)
	for _, w := range []struct {
		c  hub.Client
		id string
	}{{b, "rp-ping"}, {a, "rp-twin"}} {
		j := waitJob(ctx, t, w.c, w.id)
		if j.Status != hub.JobCompleted || j.DeviceJobStatistics.SucceededCount != n {
			t.Errorf("%s: %s %+v, want completed with %d succeeded", w.id, j.Status, j.DeviceJobStatistics, n)
		}
	}
	// The echo of the one desired patch is one reported patch: version 2
	// (1 at registration), not one per replica.
	waitCount(ctx, t, a, "SELECT COUNT() AS n FROM devices WHERE tags.fleet = 'rp' AND properties.reported.mode = 'eco'", n)
	waitCount(ctx, t, b, "SELECT COUNT() AS n FROM devices WHERE tags.fleet = 'rp' AND properties.reported.$version = 2 AND properties.desired.$version = 2", n)

	// The replica that runs the next job stops mid-job; the other takes
	// it over once the lease expires and finishes it.
	_, err = a.CreateJob(ctx, &hub.Job{JobID: "rp-again", Type: hub.JobDeviceMethod, QueryCondition: "tags.fleet = 'rp'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 30}})
	must(t, "second method job", err)
	j, err := a.GetJob(ctx, "rp-again")
	for err == nil && (j.DeviceJobStatistics == nil || j.DeviceJobStatistics.SucceededCount < n/3) {
		j, err = a.WatchJob(ctx, "rp-again", j)
	}
	must(t, "watch the second job", err)
	reps[0].Close()
	j = waitJob(ctx, t, b, "rp-again")
	rows := deviceJobsPaged(ctx, t, b, "rp-again", 1000)
	unknown := 0
	for _, dj := range rows {
		if dj.Status != hub.DeviceJobCompleted {
			if dj.Error == nil || dj.Error.Code != "DeviceMethodOutcomeUnknown" {
				t.Errorf("device %s: %s %+v", dj.DeviceID, dj.Status, dj.Error)
			}
			unknown++
		}
	}
	t.Logf("taken over: %s %+v, %d outcome unknown", j.Status, *j.DeviceJobStatistics, unknown)
	if len(rows) != n || j.Status != hub.JobCompleted {
		t.Errorf("the job taken over: %d records, %s; want %d, completed", len(rows), j.Status, n)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, k := range calls {
		if k > 2 {
			t.Errorf("device %s called %d times by two jobs", id, k)
		}
	}
	checkReplicasAudit(ctx, t, b.(hub.AuditLog), n)
}

// checkReplicasAudit checks the audit log both replicas appended to: one
// chain, and every device of the first two jobs in their entries once.
func checkReplicasAudit(ctx context.Context, t *testing.T, log hub.AuditLog, n int) {
	t.Helper()
	var all []*hub.AuditEntry
	for cont := ""; ; {
		page, err := log.AuditEntries(ctx, hub.AuditFilter{}, cont)
		must(t, "read the audit log", err)
		all = append(all, page.Entries...)
		if cont = page.Continuation; cont == "" {
			break
		}
	}
	if b := hub.VerifyAudit(all); b != nil {
		t.Errorf("the replicas' audit log: %v", b)
	}
	devices, ends := map[string]int{}, map[string]int{}
	for _, e := range all {
		switch {
		case e.Operation == hub.AuditJobEnd:
			ends[e.Job]++
		case e.Job == "rp-ping" && e.Operation == hub.AuditMethodInvoke, e.Job == "rp-twin" && e.Operation == hub.AuditTwinPatch:
			devices[e.Job] += len(e.Devices)
		}
	}
	for _, id := range []string{"rp-ping", "rp-twin"} {
		if devices[id] != n || ends[id] != 1 {
			t.Errorf("audit entries of %s: %d devices, %d ends; want %d and 1", id, devices[id], ends[id], n)
		}
	}
	if ends["rp-again"] == 0 {
		t.Error("the job taken over has no job.end entry")
	}
}

// TestLoadBalancerHostName: a hub given --hostname host:port (a load
// balancer's, in front of replicas listening elsewhere) accepts tokens
// for that name and port.
func TestLoadBalancerHostName(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	h, err := hubd.Open(ctx, hubd.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", HostName: "hub.example:9443", Logger: quiet})
	must(t, "open hub", err)
	t.Cleanup(func() { h.Close() })
	cs, err := sas.ParseConnectionString(h.ConnectionString())
	must(t, "connection string", err)
	web := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool(t, h), ServerName: "localhost"}}}
	for _, tc := range []struct {
		host string
		want int
	}{{"hub.example:9443", 200}, {"hub.example:9444", 401}} {
		tok, err := sas.ServiceToken(tc.host, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
		must(t, "token", err)
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+h.HTTPAddr()+"/devices?api-version=2021-04-12", nil)
		req.Header.Set("Authorization", tok)
		resp, err := web.Do(req)
		must(t, "GET /devices", err)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("token for %s: %d, want %d", tc.host, resp.StatusCode, tc.want)
		}
	}
}

// TestEmbeddedBrokerRefusesSharedStore: a second hub with its embedded
// broker on a database another live hub uses is refused, naming the
// other and what to do; nothing of the first changes.
func TestEmbeddedBrokerRefusesSharedStore(t *testing.T) {
	_, storeURL := pgtest.Schema(t)
	ctx := testCtx(t, 30*time.Second)
	first := openHubOn(t, t.TempDir(), "127.0.0.1:0", storeURL)
	_, err := hubd.Open(ctx, hubd.Config{DataDir: t.TempDir(), StoreURL: storeURL, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "hubs that share a database must share an external broker") || !strings.Contains(err.Error(), first.HTTPAddr()) {
		t.Fatalf("second hub on the same database with its embedded broker: %v, want a refusal naming the first", err)
	}
	if _, err := first.Client().ListDevices(ctx, 10); err != nil {
		t.Errorf("the first hub after the refusal: %v", err)
	}
}
