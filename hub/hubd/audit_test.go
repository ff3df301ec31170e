package hubd_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/rest"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/internal/pgtest"
)

// TestAuditOverREST reads a hub's audit log over HTTPS with the REST
// client, on SQLite and on PostgreSQL: the owner lists it with filters
// and pages, the plan a job was created for reaches its job.create entry
// through the X-Iotjobs-Plan header, and other callers are refused.
func TestAuditOverREST(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { _, u := pgtest.Schema(t); return u }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testAuditOverREST(t, tc.store(t))
		})
	}
}

func testAuditOverREST(t *testing.T, storeURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := openHubOn(t, t.TempDir(), "127.0.0.1:0", storeURL)
	pool := caPool(t, h)
	c := restClient(t, h, pool, "")
	for _, id := range []string{"d1", "d2"} {
		if _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeleteDevice(ctx, "d2", "*"); err != nil {
		t.Fatal(err)
	}
	// More entries than a page holds (1,000), made in-process: each a
	// method call refused for a device that does not exist.
	const calls = 1000
	for range calls {
		if _, err := h.Client().InvokeMethod(ctx, "ghost", &hub.MethodRequest{MethodName: "m"}); err == nil {
			t.Fatal("InvokeMethod of a device that does not exist succeeded")
		}
	}

	first, err := c.AuditEntries(ctx, hub.AuditFilter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Entries) != 1000 || first.Continuation == "" {
		t.Fatalf("first page: %d entries, continuation %q; want 1000 and a token", len(first.Entries), first.Continuation)
	}
	second, err := c.AuditEntries(ctx, hub.AuditFilter{}, first.Continuation)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Entries) != 3 || second.Continuation != "" {
		t.Fatalf("second page: %d entries, continuation %q; want 3 and none", len(second.Entries), second.Continuation)
	}
	all := append(first.Entries, second.Entries...)
	for i, e := range all {
		if e.Seq != int64(i+1) {
			t.Fatalf("entry %d has seq %d", i+1, e.Seq)
		}
	}
	if b := hub.VerifyAudit(all); b != nil {
		t.Errorf("verify over REST: %v", b)
	}
	var got []string
	for _, e := range all[:4] {
		got = append(got, fmt.Sprintf("%s %s %s %s", e.Actor, e.Operation, e.Target, e.Result))
	}
	want := []string{"iothubowner device.create d1 200", "iothubowner device.create d2 200", "iothubowner device.delete d2 200",
		"local method.invoke ghost " + hub.CodeDeviceNotFound}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("first entries:\n%q\nwant\n%q", got, want)
	}

	for name, f := range map[string]struct {
		f    hub.AuditFilter
		want []int64
	}{
		"device": {hub.AuditFilter{Device: "d2"}, []int64{2, 3}},
		"since":  {hub.AuditFilter{Since: all[len(all)-1].Time}, []int64{calls + 3}},
		"none":   {hub.AuditFilter{Since: time.Now().Add(time.Hour)}, nil},
	} {
		page, err := c.AuditEntries(ctx, f.f, "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var seqs []int64
		for _, e := range page.Entries {
			seqs = append(seqs, e.Seq)
		}
		if fmt.Sprint(seqs) != fmt.Sprint(f.want) || page.Continuation != "" {
			t.Errorf("%s: %v (continuation %q), want %v", name, seqs, page.Continuation, f.want)
		}
	}

	// A job created through the REST client for a plan; it starts in an
	// hour, so that nothing else is recorded for it meanwhile.
	plan := hub.PlanRef{Name: "rollout.iotjobs.yaml", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
	if _, err := c.CreateJob(hub.WithPlan(ctx, plan), &hub.Job{JobID: "j1", Type: hub.JobUpdateTwin, QueryCondition: "*",
		StartTime:  hub.NewTime(time.Now().Add(time.Hour)),
		UpdateTwin: &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"fw": "2.0"}}}}); err != nil {
		t.Fatal(err)
	}
	page, err := c.AuditEntries(ctx, hub.AuditFilter{Job: "j1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 {
		t.Fatalf("entries of job j1: %d, want 1", len(page.Entries))
	}
	if e := page.Entries[0]; e.Operation != hub.AuditJobCreate || e.Actor != "iothubowner" || e.Plan != plan.Name || e.PlanSHA256 != plan.SHA256 || e.Seq != calls+4 {
		t.Errorf("job.create entry: %+v, want plan %v by iothubowner at #%d", e, plan, calls+4)
	}

	// A policy the hub does not have, and a device's token: refused.
	cs, err := sas.ParseConnectionString(h.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	cs.SharedAccessKeyName = "registryRead"
	other, err := rest.NewClient(cs, rest.Options{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.AuditEntries(ctx, hub.AuditFilter{}, ""); hub.ErrorCode(err) != hub.CodeUnauthorized {
		t.Errorf("AuditEntries with policy registryRead: %v, want %s", err, hub.CodeUnauthorized)
	}
	d, err := c.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.DeviceToken(cs.HostName, "d1", d.Authentication.SymmetricKey.PrimaryKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+cs.HostName+"/iotjobs/audit?api-version=2021-04-12", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", tok)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /iotjobs/audit with a device token: %s, want 401", resp.Status)
	}
}
