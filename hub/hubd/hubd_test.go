package hubd_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/internal/pgtest"
	"github.com/iotjobs/iotjobs/simulate"
)

// conformance is the one table both hub.Client implementations must pass
// identically: each case gets a hub and a connected fleet of its own.
var conformance = []struct {
	name string
	run  func(t *testing.T, e *env)
}{
	{"devices", testDevices},
	{"twins", testTwins},
	{"desiredEcho", testDesiredEcho},
	{"methods", testMethods},
	{"methodConnectTimeout", testMethodConnectTimeout},
	{"deleteConnected", testDeleteConnected},
	{"query", testQuery},
	{"jobMethod", testJobMethod},
	{"jobUpdateTwin", testJobUpdateTwin},
	{"jobScheduleCancelList", testJobScheduleCancelList},
	{"jobErrors", testJobErrors},
	{"jobDefaults", testJobDefaults},
	{"jobTimeouts", testJobTimeouts},
	{"jobConnectTimeout", testJobConnectTimeout},
	{"jobCancelInFlight", testJobCancelInFlight},
	{"jobTwinETag", testJobTwinETag},
	{"jobLimits", testJobLimits},
	{"jobRecordsQuery", testJobRecordsQuery},
	{"disableDevice", testDisableDevice},
	{"bulkImport", testBulkImport},
	{"replaceTwin", testReplaceTwin},
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, tc := range conformance {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, k := range kinds {
				t.Run(k.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newEnv(t, k))
				})
			}
		})
	}
}

// TestConformancePostgres runs the conformance cases on a hub whose store
// is PostgreSQL (a schema of its own per case), through the REST client.
func TestConformancePostgres(t *testing.T) {
	t.Parallel()
	for _, tc := range conformance {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, u := pgtest.Schema(t)
			tc.run(t, newEnvOn(t, kinds[1], u))
		})
	}
}

func testDevices(t *testing.T, e *env) {
	ctx := testCtx(t, 10*time.Second)
	c := e.c

	d, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "new-1"})
	must(t, "create device", err)
	k := d.Authentication.SymmetricKey
	for name, key := range map[string]string{"primary": k.PrimaryKey, "secondary": k.SecondaryKey} {
		if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) < 16 {
			t.Errorf("generated %s key %q is not a base64 key of at least 16 bytes (err %v)", name, key, err)
		}
	}
	if k.PrimaryKey == k.SecondaryKey {
		t.Errorf("primary and secondary keys are the same: %q", k.PrimaryKey)
	}
	if d.DeviceID != "new-1" || d.Status != hub.StatusEnabled || d.ETag == "" {
		t.Errorf("created device = id %q status %q etag %q, want new-1, enabled, an etag", d.DeviceID, d.Status, d.ETag)
	}

	given := hub.SymmetricKey{PrimaryKey: sas.GenerateKey(), SecondaryKey: sas.GenerateKey()}
	d2, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "new-2", Authentication: hub.Authentication{SymmetricKey: given, Type: "sas"}})
	must(t, "create device with keys", err)
	if d2.Authentication.SymmetricKey != given {
		t.Errorf("create with keys: got %+v, want the given %+v", d2.Authentication.SymmetricKey, given)
	}

	got, err := c.GetDevice(ctx, "new-1")
	must(t, "get device", err)
	if got.Authentication.SymmetricKey != k || got.ETag != d.ETag {
		t.Errorf("get device: keys %+v etag %q, want %+v %q", got.Authentication.SymmetricKey, got.ETag, k, d.ETag)
	}

	conn, err := c.GetDevice(ctx, "lock-ok")
	must(t, "get connected device", err)
	off, err := c.GetDevice(ctx, "lock-offline")
	must(t, "get offline device", err)
	if conn.ConnectionState != hub.Connected || off.ConnectionState != hub.Disconnected {
		t.Errorf("connection states: lock-ok %q, lock-offline %q; want %s, %s",
			conn.ConnectionState, off.ConnectionState, hub.Connected, hub.Disconnected)
	}

	errCases := []struct {
		name string
		call func() error
		want string
	}{
		{"create duplicate", func() error { _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "new-1"}); return err }, hub.CodeDeviceAlreadyExists},
		{"create fleet duplicate", func() error { _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "echo"}); return err }, hub.CodeDeviceAlreadyExists},
		{"create bad id", func() error { _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "bad id"}); return err }, hub.CodeArgumentInvalid},
		{"get missing", func() error { _, err := c.GetDevice(ctx, "nope"); return err }, hub.CodeDeviceNotFound},
		{"delete missing", func() error { return c.DeleteDevice(ctx, "nope", "*") }, hub.CodeDeviceNotFound},
		{"delete stale etag", func() error { return c.DeleteDevice(ctx, "new-1", "AAAAAAAAAAA=") }, hub.CodePreconditionFailed},
	}
	for _, ec := range errCases {
		wantCode(t, ec.name, ec.call(), ec.want)
	}

	deletes := []struct{ id, etag string }{
		{"new-1", d.ETag},
		{"new-2", `"*"`},
	}
	for _, del := range deletes {
		if err := c.DeleteDevice(ctx, del.id, del.etag); err != nil {
			t.Errorf("delete %s with etag %q: %v", del.id, del.etag, err)
		}
		_, err := c.GetDevice(ctx, del.id)
		wantCode(t, "get deleted "+del.id, err, hub.CodeDeviceNotFound)
		_, err = c.GetTwin(ctx, del.id)
		wantCode(t, "get twin of deleted "+del.id, err, hub.CodeDeviceNotFound)
	}
	wantCode(t, "delete twice", c.DeleteDevice(ctx, "new-1", ""), hub.CodeDeviceNotFound)
}

func testTwins(t *testing.T, e *env) {
	ctx := testCtx(t, 10*time.Second)
	c := e.c
	const id = "lock-ok"
	t0, err := c.GetTwin(ctx, id)
	must(t, "get twin", err)
	if t0.DeviceID != id || t0.ETag == "" || t0.Tags["x"] != "y" || t0.Tags["role"] != "lock" {
		t.Fatalf("initial twin: id %q etag %q tags %v; want the fleet's tags and an etag", t0.DeviceID, t0.ETag, t0.Tags)
	}

	// Each step patches with an etag form and must move etag and version
	// on (or fail with the code given).
	prev := t0
	steps := []struct {
		name  string
		patch *hub.TwinPatch
		etag  func(cur, first *hub.Twin) string
		want  string // error code; "" for success
		check func(*hub.Twin) bool
	}{
		{"bare etag", &hub.TwinPatch{Tags: map[string]any{"a": 1.0}},
			func(cur, _ *hub.Twin) string { return cur.ETag }, "",
			func(tw *hub.Twin) bool { return tw.Tags["a"] == 1.0 }},
		{"quoted etag", &hub.TwinPatch{Tags: map[string]any{"b": map[string]any{"c": "d"}}},
			func(cur, _ *hub.Twin) string { return `"` + cur.ETag + `"` }, "",
			func(tw *hub.Twin) bool {
				b, _ := tw.Tags["b"].(map[string]any)
				return b["c"] == "d" && tw.Tags["a"] == 1.0
			}},
		{"stale etag", &hub.TwinPatch{Tags: map[string]any{"a": 2.0}},
			func(_, first *hub.Twin) string { return first.ETag }, hub.CodePreconditionFailed, nil},
		{"stale quoted etag", &hub.TwinPatch{Tags: map[string]any{"a": 2.0}},
			func(_, first *hub.Twin) string { return `"` + first.ETag + `"` }, hub.CodePreconditionFailed, nil},
		{"star", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"mode": "eco"}}},
			func(_, _ *hub.Twin) string { return "*" }, "",
			func(tw *hub.Twin) bool { return tw.Properties.Desired["mode"] == "eco" }},
		{"quoted star", &hub.TwinPatch{Tags: map[string]any{"a": nil}},
			func(_, _ *hub.Twin) string { return `"*"` }, "",
			func(tw *hub.Twin) bool { _, has := tw.Tags["a"]; return !has && tw.Tags["x"] == "y" }},
		{"no etag, null deletes desired", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"mode": nil, "level": 3.0}}},
			func(_, _ *hub.Twin) string { return "" }, "",
			func(tw *hub.Twin) bool {
				_, has := tw.Properties.Desired["mode"]
				return !has && tw.Properties.Desired["level"] == 3.0
			}},
		{"nested null", &hub.TwinPatch{Tags: map[string]any{"b": map[string]any{"c": nil, "e": true}}},
			func(cur, _ *hub.Twin) string { return cur.ETag }, "",
			func(tw *hub.Twin) bool {
				b, _ := tw.Tags["b"].(map[string]any)
				_, has := b["c"]
				return !has && b["e"] == true
			}},
		{"tags over 8 KB", &hub.TwinPatch{Tags: map[string]any{"big1": strings.Repeat("a", 3000), "big2": strings.Repeat("b", 3000), "big3": strings.Repeat("c", 3000)}},
			func(_, _ *hub.Twin) string { return "*" }, hub.CodeMessageTooLarge, nil},
		{"string over 4 KB", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"s": strings.Repeat("s", 5000)}}},
			func(_, _ *hub.Twin) string { return "*" }, hub.CodeArgumentInvalid, nil},
		{"dollar key", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"$bad": 1.0}}},
			func(_, _ *hub.Twin) string { return "*" }, hub.CodeArgumentInvalid, nil},
		{"dotted tag key", &hub.TwinPatch{Tags: map[string]any{"a.b": 1.0}},
			func(_, _ *hub.Twin) string { return "*" }, hub.CodeArgumentInvalid, nil},
	}
	for _, s := range steps {
		tw, err := c.UpdateTwin(ctx, id, s.patch, s.etag(prev, t0))
		if s.want != "" {
			wantCode(t, s.name, err, s.want)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		if tw.ETag == prev.ETag || tw.Version != prev.Version+1 {
			t.Errorf("%s: etag %q→%q version %d→%d; want a new etag and version+1", s.name, prev.ETag, tw.ETag, prev.Version, tw.Version)
		}
		if !s.check(tw) {
			t.Errorf("%s: returned twin tags %v desired %v", s.name, tw.Tags, tw.Properties.Desired)
		}
		// What UpdateTwin answered is what GetTwin reads back.
		got, err := c.GetTwin(ctx, id)
		must(t, s.name+": get twin", err)
		if got.ETag != tw.ETag || got.Version != tw.Version || !s.check(got) {
			t.Errorf("%s: read back etag %q version %d tags %v desired %v; update answered etag %q version %d",
				s.name, got.ETag, got.Version, got.Tags, got.Properties.Desired, tw.ETag, tw.Version)
		}
		prev = tw
	}
	// Failed updates changed nothing.
	last, err := c.GetTwin(ctx, id)
	must(t, "get twin", err)
	if last.ETag != prev.ETag || last.Version != prev.Version {
		t.Errorf("after failed updates: etag %q version %d, want %q %d", last.ETag, last.Version, prev.ETag, prev.Version)
	}
	// Desired $version counts the desired patches only (two above).
	if v := num(last.Properties.Desired["$version"]); v != num(t0.Properties.Desired["$version"])+2 {
		t.Errorf("desired $version %v after two desired patches from %v", last.Properties.Desired["$version"], t0.Properties.Desired["$version"])
	}

	_, err = c.GetTwin(ctx, "nope")
	wantCode(t, "get missing twin", err, hub.CodeDeviceNotFound)
	_, err = c.UpdateTwin(ctx, "nope", &hub.TwinPatch{Tags: map[string]any{"a": 1.0}}, "*")
	wantCode(t, "update missing twin", err, hub.CodeDeviceNotFound)
}

func testDesiredEcho(t *testing.T, e *env) {
	ctx := testCtx(t, 15*time.Second)
	c := e.c
	const id = "echo"
	// The device reports its firmware when it connects.
	t0 := waitTwin(ctx, t, c, id, func(tw *hub.Twin) bool { return tw.Properties.Reported["firmware"] == "1.0" })
	rv0 := num(t0.Properties.Reported["$version"])
	dv0 := num(t0.Properties.Desired["$version"])

	patches := []map[string]any{
		{"interval": 5.0, "cfg": map[string]any{"mode": "fast"}},
		{"interval": 10.0, "cfg": map[string]any{"mode": nil, "level": 2.0}},
	}
	for i, p := range patches {
		tw, err := c.UpdateTwin(ctx, id, &hub.TwinPatch{Properties: &hub.Properties{Desired: p}}, "*")
		must(t, "update desired", err)
		dv := num(tw.Properties.Desired["$version"])
		if dv != dv0+float64(i+1) {
			t.Errorf("patch %d: desired $version %v, want %v", i, dv, dv0+float64(i+1))
		}
		want := p["interval"]
		got := waitTwin(ctx, t, c, id, func(tw *hub.Twin) bool { return tw.Properties.Reported["interval"] == want })
		if rv := num(got.Properties.Reported["$version"]); rv != rv0+float64(i+1) {
			t.Errorf("patch %d: reported $version %v, want %v (one report per patch)", i, rv, rv0+float64(i+1))
		}
		if _, has := got.Properties.Reported["$version"]; !has {
			t.Errorf("patch %d: reported has no $version", i)
		}
		if got.Properties.Reported["firmware"] != "1.0" {
			t.Errorf("patch %d: the echo lost reported.firmware: %v", i, got.Properties.Reported)
		}
	}
	final, err := c.GetTwin(ctx, id)
	must(t, "get twin", err)
	cfg, _ := final.Properties.Reported["cfg"].(map[string]any)
	if _, has := cfg["mode"]; has || cfg["level"] != 2.0 {
		t.Errorf("reported cfg = %v, want the null to have deleted mode and level 2", cfg)
	}
	if _, has := final.Properties.Reported["$metadata"]; !has {
		t.Errorf("reported has no $metadata: %v", final.Properties.Reported)
	}
}

func testMethods(t *testing.T, e *env) {
	ctx := testCtx(t, 15*time.Second)
	c := e.c
	cases := []struct {
		name    string
		id      string
		req     hub.MethodRequest
		status  int    // the device's status, when the call succeeds
		payload string // the device's payload, when the call succeeds
		code    string // the hub error code otherwise
	}{
		{"answers 200 with payload", "lock-ok", hub.MethodRequest{MethodName: "lockDoor", Payload: json.RawMessage(`{"pin":1234}`), ResponseTimeoutInSeconds: 10}, 200, `{"locked":true}`, ""},
		{"default timeouts", "lock-ok", hub.MethodRequest{MethodName: "lockDoor"}, 200, `{"locked":true}`, ""},
		{"device status 500 passes through", "lock-fail", hub.MethodRequest{MethodName: "lockDoor", Payload: json.RawMessage(`null`)}, 500, `{"message":"simulated failure"}`, ""},
		{"unimplemented method", "echo", hub.MethodRequest{MethodName: "reboot"}, 501, "", ""},
		{"offline device", "lock-offline", hub.MethodRequest{MethodName: "lockDoor"}, 0, "", hub.CodeDeviceNotOnline},
		{"offline device, connect timeout 1s", "lock-offline", hub.MethodRequest{MethodName: "lockDoor", ConnectTimeoutInSeconds: 1}, 0, "", hub.CodeDeviceNotOnline},
		{"unknown device", "nope", hub.MethodRequest{MethodName: "lockDoor"}, 0, "", hub.CodeDeviceNotFound},
		{"response timeout too small", "lock-ok", hub.MethodRequest{MethodName: "lockDoor", ResponseTimeoutInSeconds: 4}, 0, "", hub.CodeArgumentInvalid},
		{"response timeout too large", "lock-ok", hub.MethodRequest{MethodName: "lockDoor", ResponseTimeoutInSeconds: 301}, 0, "", hub.CodeArgumentInvalid},
		{"connect timeout too large", "lock-ok", hub.MethodRequest{MethodName: "lockDoor", ConnectTimeoutInSeconds: 301}, 0, "", hub.CodeArgumentInvalid},
		{"bad method name", "lock-ok", hub.MethodRequest{MethodName: "lock door"}, 0, "", hub.CodeArgumentInvalid},
	}
	for _, tc := range cases {
		start := time.Now()
		resp, err := c.InvokeMethod(ctx, tc.id, &tc.req)
		if tc.code != "" {
			wantCode(t, tc.name, err, tc.code)
			// Not online means not online now: no waiting for a device
			// that is not connected when connectTimeout is 0.
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("%s: took %v, want a quick answer", tc.name, el)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if resp.Status != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.Status, tc.status)
		}
		if tc.payload != "" && !jsonEqual(t, resp.Payload, []byte(tc.payload)) {
			t.Errorf("%s: payload %s, want %s", tc.name, resp.Payload, tc.payload)
		}
	}
}

func testQuery(t *testing.T, e *env) {
	ctx := testCtx(t, 10*time.Second)
	c := e.c

	items, itemType, pages := queryAll(ctx, t, c, "SELECT * FROM devices WHERE tags.x = 'y'", 1)
	var ids []string
	for _, it := range items {
		var tw hub.Twin
		if err := json.Unmarshal(it, &tw); err != nil {
			t.Fatalf("query item is not a twin: %s", it)
		}
		ids = append(ids, tw.DeviceID)
	}
	slices.Sort(ids)
	if want := []string{"echo", "lock-fail", "lock-ok"}; !slices.Equal(ids, want) {
		t.Errorf("paged query returned %v, want each of %v once", ids, want)
	}
	if pages != 3 || itemType != hub.ItemTwin {
		t.Errorf("paged query: %d pages of %q, want 3 pages (page size 1, no extra empty page) of %q", pages, itemType, hub.ItemTwin)
	}

	// Unpaged, the same twins in one page.
	all, _, pages := queryAll(ctx, t, c, "SELECT * FROM devices WHERE tags.x = 'y'", 0)
	if len(all) != 3 || pages != 1 {
		t.Errorf("unpaged query: %d items in %d pages, want 3 in 1", len(all), pages)
	}

	counts := []struct {
		query string
		want  string
	}{
		{"SELECT COUNT() AS n FROM devices", `[{"n":4}]`},
		{"SELECT COUNT() AS n FROM devices WHERE tags.role = 'lock'", `[{"n":3}]`},
		{"SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'", `[{"n":3}]`},
	}
	for _, cq := range counts {
		res, err := c.Query(ctx, cq.query, hub.QueryOptions{})
		if err != nil {
			t.Errorf("%s: %v", cq.query, err)
			continue
		}
		got, _ := json.Marshal(res.Items)
		if !jsonEqual(t, got, []byte(cq.want)) || res.ItemType != hub.ItemRaw || res.Continuation != "" {
			t.Errorf("%s: items %s type %q continuation %q, want %s of %q and no continuation", cq.query, got, res.ItemType, res.Continuation, cq.want, hub.ItemRaw)
		}
	}

	bad := []string{
		"SELEC * FROM devices",
		"SELECT * FROM devices WHERE",
		"SELECT * FROM devices WHERE tags.x = 'unterminated",
		"SELECT * FROM nowhere",
	}
	for _, q := range bad {
		_, err := c.Query(ctx, q, hub.QueryOptions{})
		wantCode(t, q, err, hub.CodeArgumentInvalid)
	}
}

// deviceJobs reads a job's per-device rows, by device id.
func deviceJobs(ctx context.Context, t *testing.T, c hub.Client, jobID string) map[string]*hub.DeviceJob {
	t.Helper()
	return deviceJobsPaged(ctx, t, c, jobID, 2)
}

// deviceJobsPaged is deviceJobs with pages of pageSize rows.
func deviceJobsPaged(ctx context.Context, t *testing.T, c hub.Client, jobID string, pageSize int) map[string]*hub.DeviceJob {
	t.Helper()
	items, itemType, _ := queryAll(ctx, t, c, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+jobID+"'", pageSize)
	if len(items) > 0 && itemType != hub.ItemDeviceJob {
		t.Errorf("devices.jobs item type %q, want %q", itemType, hub.ItemDeviceJob)
	}
	out := map[string]*hub.DeviceJob{}
	for _, it := range items {
		var dj hub.DeviceJob
		if err := json.Unmarshal(it, &dj); err != nil {
			t.Fatalf("devices.jobs item is not a device job: %s", it)
		}
		if out[dj.DeviceID] != nil {
			t.Errorf("devices.jobs: device %s listed twice for job %s", dj.DeviceID, jobID)
		}
		if dj.JobID != jobID {
			t.Errorf("devices.jobs: row of job %q in the rows of %q", dj.JobID, jobID)
		}
		out[dj.DeviceID] = &dj
	}
	return out
}

func testJobMethod(t *testing.T, e *env) {
	ctx := testCtx(t, 20*time.Second)
	c := e.c
	j, err := c.CreateJob(ctx, &hub.Job{
		JobID: "lock-all", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor", Payload: json.RawMessage(`{"pin":1}`), ResponseTimeoutInSeconds: 10},
	})
	must(t, "create job", err)
	if j.JobID != "lock-all" || j.Type != hub.JobDeviceMethod || j.Status.Terminal() {
		t.Errorf("created job: id %q type %q status %q", j.JobID, j.Type, j.Status)
	}
	done := waitJob(ctx, t, c, "lock-all")
	want := hub.DeviceJobStatistics{DeviceCount: 4, SucceededCount: 3, FailedCount: 1}
	if done.Status != hub.JobCompleted || done.DeviceJobStatistics == nil || *done.DeviceJobStatistics != want {
		t.Errorf("finished job: status %q statistics %+v, want completed %+v", done.Status, done.DeviceJobStatistics, want)
	}
	if done.EndTime == nil || done.StartTime == nil || done.EndTime.Before(done.StartTime.Time) {
		t.Errorf("finished job: start %v end %v", done.StartTime, done.EndTime)
	}
	got, err := c.GetJob(ctx, "lock-all")
	must(t, "get job", err)
	if !hub.SameJobState(got, done) {
		t.Errorf("GetJob after the end: %q %+v, WatchJob said %q %+v", got.Status, got.DeviceJobStatistics, done.Status, done.DeviceJobStatistics)
	}

	rows := deviceJobs(ctx, t, c, "lock-all")
	wantRows := []struct {
		id      string
		status  hub.DeviceJobStatus
		method  int    // device's method status, when completed
		errCode string // error code, when failed
	}{
		{"lock-ok", hub.DeviceJobCompleted, 200, ""},
		{"lock-fail", hub.DeviceJobCompleted, 500, ""},
		{"echo", hub.DeviceJobCompleted, 501, ""},
		{"lock-offline", hub.DeviceJobFailed, 0, hub.CodeDeviceNotOnline},
	}
	if len(rows) != len(wantRows) {
		t.Errorf("devices.jobs: %d rows (%v), want one per fleet device", len(rows), slices.Sorted(maps.Keys(rows)))
	}
	for _, w := range wantRows {
		dj := rows[w.id]
		if dj == nil {
			t.Errorf("devices.jobs: no row for %s", w.id)
			continue
		}
		if dj.Status != w.status || dj.JobType != hub.JobDeviceMethod {
			t.Errorf("%s: status %q type %q, want %q %q", w.id, dj.Status, dj.JobType, w.status, hub.JobDeviceMethod)
		}
		if w.errCode != "" {
			if dj.Error == nil || dj.Error.Code != w.errCode {
				t.Errorf("%s: error %+v, want code %s", w.id, dj.Error, w.errCode)
			}
			continue
		}
		if dj.Outcome == nil || dj.Outcome.DeviceMethodResponse == nil || dj.Outcome.DeviceMethodResponse.Status != w.method {
			t.Errorf("%s: outcome %+v, want device status %d", w.id, dj.Outcome, w.method)
		} else if w.id == "lock-ok" && !jsonEqual(t, dj.Outcome.DeviceMethodResponse.Payload, []byte(`{"locked":true}`)) {
			t.Errorf("%s: payload %s", w.id, dj.Outcome.DeviceMethodResponse.Payload)
		}
		if dj.EndTimeUtc == nil || dj.StartTimeUtc == nil {
			t.Errorf("%s: start %v end %v, want both", w.id, dj.StartTimeUtc, dj.EndTimeUtc)
		}
	}

	// A finished job is not cancelled: cancelling it changes nothing.
	after, err := c.CancelJob(ctx, "lock-all")
	must(t, "cancel finished job", err)
	if after.Status != hub.JobCompleted {
		t.Errorf("cancel of a finished job: status %q, want it to stay completed", after.Status)
	}
}

func testJobUpdateTwin(t *testing.T, e *env) {
	ctx := testCtx(t, 20*time.Second)
	c := e.c
	before, err := c.GetTwin(ctx, "lock-offline")
	must(t, "get twin", err)
	_, err = c.CreateJob(ctx, &hub.Job{
		JobID: "fw", Type: hub.JobUpdateTwin, QueryCondition: "tags.x = 'y'",
		UpdateTwin: &hub.TwinPatch{ETag: "*", Tags: map[string]any{"wave": 1.0},
			Properties: &hub.Properties{Desired: map[string]any{"fw": "2.0"}, Reported: map[string]any{"ignored": true}}},
	})
	must(t, "create job", err)
	done := waitJob(ctx, t, c, "fw")
	want := hub.DeviceJobStatistics{DeviceCount: 3, SucceededCount: 3}
	if done.Status != hub.JobCompleted || done.DeviceJobStatistics == nil || *done.DeviceJobStatistics != want {
		t.Errorf("finished job: status %q statistics %+v, want completed %+v", done.Status, done.DeviceJobStatistics, want)
	}
	for _, id := range []string{"lock-ok", "lock-fail", "echo"} {
		tw, err := c.GetTwin(ctx, id)
		must(t, "get twin", err)
		if tw.Properties.Desired["fw"] != "2.0" || tw.Tags["wave"] != 1.0 {
			t.Errorf("%s after the job: desired %v tags %v, want fw 2.0 and wave 1", id, tw.Properties.Desired, tw.Tags)
		}
		if _, has := tw.Properties.Reported["ignored"]; has {
			t.Errorf("%s: the job wrote reported properties: %v", id, tw.Properties.Reported)
		}
	}
	after, err := c.GetTwin(ctx, "lock-offline")
	must(t, "get twin", err)
	if after.ETag != before.ETag || after.Properties.Desired["fw"] != nil {
		t.Errorf("lock-offline is not matched but changed: etag %q→%q desired %v", before.ETag, after.ETag, after.Properties.Desired)
	}
	// The connected echo device hears the job's desired patch like any
	// other and reports it back.
	waitTwin(ctx, t, c, "echo", func(tw *hub.Twin) bool { return tw.Properties.Reported["fw"] == "2.0" })

	rows := deviceJobs(ctx, t, c, "fw")
	if len(rows) != 3 {
		t.Errorf("devices.jobs: %d rows, want 3", len(rows))
	}
	for id, dj := range rows {
		if dj.Status != hub.DeviceJobCompleted || dj.JobType != hub.JobUpdateTwin {
			t.Errorf("%s: status %q type %q", id, dj.Status, dj.JobType)
		}
	}
}

func testJobScheduleCancelList(t *testing.T, e *env) {
	ctx := testCtx(t, 20*time.Second)
	c := e.c
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "now", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor"}})
	must(t, "create job", err)
	if j := waitJob(ctx, t, c, "now"); j.Status != hub.JobCompleted {
		t.Fatalf("job now: %q", j.Status)
	}

	later := hub.NewTime(time.Now().Add(time.Hour))
	_, err = c.CreateJob(ctx, &hub.Job{JobID: "later", Type: hub.JobUpdateTwin, QueryCondition: "*", StartTime: later,
		UpdateTwin: &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"late": true}}}})
	must(t, "create scheduled job", err)
	sched := waitJobStatus(ctx, t, c, "later", hub.JobScheduled)
	if sched.StartTime == nil || sched.StartTime.Sub(later.Time).Abs() > time.Second {
		t.Errorf("scheduled job start time %v, want %v", sched.StartTime, later)
	}

	cancelled, err := c.CancelJob(ctx, "later")
	must(t, "cancel job", err)
	if cancelled.Status != hub.JobCancelled {
		t.Errorf("cancel answered status %q, want %q", cancelled.Status, hub.JobCancelled)
	}
	got, err := c.GetJob(ctx, "later")
	must(t, "get cancelled job", err)
	if got.Status != hub.JobCancelled {
		t.Errorf("cancelled job reads back as %q", got.Status)
	}
	tw, err := c.GetTwin(ctx, "lock-ok")
	must(t, "get twin", err)
	if _, has := tw.Properties.Desired["late"]; has {
		t.Errorf("the cancelled job ran: desired %v", tw.Properties.Desired)
	}

	lists := []struct {
		name string
		q    hub.JobQuery
		want []string
	}{
		{"all, newest first", hub.JobQuery{}, []string{"later", "now"}},
		{"by type", hub.JobQuery{Type: hub.JobDeviceMethod}, []string{"now"}},
		{"by status", hub.JobQuery{Status: hub.JobCancelled}, []string{"later"}},
		{"by type and status", hub.JobQuery{Type: hub.JobUpdateTwin, Status: hub.JobCompleted}, nil},
		{"paged", hub.JobQuery{QueryOptions: hub.QueryOptions{PageSize: 1}}, []string{"later", "now"}},
	}
	for _, l := range lists {
		var ids []string
		q := l.q
		for pages := 0; ; pages++ {
			jobs, cont, err := c.QueryJobs(ctx, q)
			if err != nil {
				t.Errorf("%s: %v", l.name, err)
				break
			}
			for _, j := range jobs {
				ids = append(ids, j.JobID)
			}
			if cont == "" || pages > 10 {
				break
			}
			q.Continuation = cont
		}
		if !slices.Equal(ids, l.want) {
			t.Errorf("QueryJobs %s: %v, want %v", l.name, ids, l.want)
		}
	}
}

func testJobErrors(t *testing.T, e *env) {
	ctx := testCtx(t, 10*time.Second)
	c := e.c
	method := &hub.MethodRequest{MethodName: "lockDoor"}
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "dup", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'", CloudToDeviceMethod: method})
	must(t, "create job", err)

	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"get missing", func() error { _, err := c.GetJob(ctx, "nope"); return err }, hub.CodeJobNotFound},
		{"watch missing", func() error { _, err := c.WatchJob(ctx, "nope", nil); return err }, hub.CodeJobNotFound},
		{"cancel missing", func() error { _, err := c.CancelJob(ctx, "nope"); return err }, hub.CodeJobNotFound},
		{"duplicate id", func() error {
			_, err := c.CreateJob(ctx, &hub.Job{JobID: "dup", Type: hub.JobDeviceMethod, QueryCondition: "*", CloudToDeviceMethod: method})
			return err
		}, hub.CodeJobAlreadyExists},
		{"unknown type", func() error {
			_, err := c.CreateJob(ctx, &hub.Job{JobID: "t1", Type: "scheduleTwinUpdate", QueryCondition: "*"})
			return err
		}, hub.CodeGenericBadRequest},
		{"bad condition", func() error {
			_, err := c.CreateJob(ctx, &hub.Job{JobID: "t2", Type: hub.JobDeviceMethod, QueryCondition: "tags.x = ", CloudToDeviceMethod: method})
			return err
		}, hub.CodeArgumentInvalid},
		{"no condition", func() error {
			_, err := c.CreateJob(ctx, &hub.Job{JobID: "t3", Type: hub.JobDeviceMethod, CloudToDeviceMethod: method})
			return err
		}, hub.CodeArgumentInvalid},
		{"method timeout out of range", func() error {
			_, err := c.CreateJob(ctx, &hub.Job{JobID: "t4", Type: hub.JobDeviceMethod, QueryCondition: "*",
				CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor", ResponseTimeoutInSeconds: 1}})
			return err
		}, hub.CodeArgumentInvalid},
		{"empty twin update", func() error {
			_, err := c.CreateJob(ctx, &hub.Job{JobID: "t5", Type: hub.JobUpdateTwin, QueryCondition: "*", UpdateTwin: &hub.TwinPatch{}})
			return err
		}, hub.CodeArgumentInvalid},
	}
	for _, tc := range cases {
		wantCode(t, tc.name, tc.call(), tc.want)
	}
	// None of the refused jobs exists.
	for _, id := range []string{"t1", "t2", "t3", "t4", "t5"} {
		_, err := c.GetJob(ctx, id)
		wantCode(t, "refused job "+id, err, hub.CodeJobNotFound)
	}
}

func TestRESTAuth(t *testing.T) {
	t.Parallel()
	h := openHub(t, t.TempDir(), "127.0.0.1:0")
	pool := caPool(t, h)
	ctx := testCtx(t, 10*time.Second)
	cases := []struct {
		name   string
		client hub.Client
		want   string
	}{
		{"wrong key", restClient(t, h, pool, sas.GenerateKey()), hub.CodeUnauthorized},
		{"CA not trusted", restClient(t, h, nil, ""), hub.CodeUnreachable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := []struct {
				name string
				call func(c hub.Client) error
			}{
				{"GetDevice", func(c hub.Client) error { _, err := c.GetDevice(ctx, "x"); return err }},
				{"CreateDevice", func(c hub.Client) error { _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "x"}); return err }},
				{"Query", func(c hub.Client) error {
					_, err := c.Query(ctx, "SELECT * FROM devices", hub.QueryOptions{})
					return err
				}},
				{"QueryJobs", func(c hub.Client) error { _, _, err := c.QueryJobs(ctx, hub.JobQuery{}); return err }},
				{"GetJob", func(c hub.Client) error { _, err := c.GetJob(ctx, "j"); return err }},
			}
			for _, cl := range calls {
				err := cl.call(tc.client)
				wantCode(t, cl.name, err, tc.want)
				if !hub.IsInfrastructure(err) {
					t.Errorf("%s: %v is not an infrastructure error", cl.name, err)
				}
			}
		})
	}
	// Neither refused client created anything.
	if _, err := h.Client().GetDevice(ctx, "x"); !errors.Is(err, hub.ErrDeviceNotFound) {
		t.Errorf("device x after refused creates: %v, want DeviceNotFound", err)
	}
}

func TestBrokerAuth(t *testing.T) {
	t.Parallel()
	h := openHub(t, t.TempDir(), "127.0.0.1:0")
	pool := caPool(t, h)
	ctx := testCtx(t, 15*time.Second)
	devs := parseFleet(t)
	keys, err := simulate.Register(ctx, h.Client(), devs)
	must(t, "register", err)
	byID := map[string]*simulate.Device{}
	for _, d := range devs {
		byID[d.ID] = d
	}
	if !slices.Equal(slices.Sorted(maps.Keys(byID)), fleetIDs) {
		t.Fatalf("fleet ids %v, want %v", slices.Sorted(maps.Keys(byID)), fleetIDs)
	}
	other, err := h.Client().GetDevice(ctx, "lock-fail")
	must(t, "get device", err)

	cases := []struct {
		name   string
		dev    *simulate.Device
		key    string
		opts   func(simulate.Options) simulate.Options
		wantOK bool
	}{
		{"primary key", byID["lock-ok"], keys["lock-ok"], nil, true},
		{"another device's secondary key", byID["echo"], other.Authentication.SymmetricKey.SecondaryKey, nil, false},
		{"wrong key", byID["lock-fail"], sas.GenerateKey(), nil, false},
		{"another device's key", byID["lock-fail"], keys["lock-ok"], nil, false},
		{"unknown device", &simulate.Device{ID: "ghost"}, sas.GenerateKey(), nil, false},
		{"wrong host in token", byID["lock-fail"], keys["lock-fail"], func(o simulate.Options) simulate.Options {
			o.HostName = "elsewhere.azure-devices.net"
			return o
		}, false},
		{"CA not trusted", byID["lock-fail"], keys["lock-fail"], func(o simulate.Options) simulate.Options {
			o.RootCAs = nil
			return o
		}, false},
	}
	// Cases run one after another: a refused connect must not disturb a
	// later good one.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := simOptions(h, pool)
			if tc.opts != nil {
				opts = tc.opts(opts)
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			sim, err := simulate.Connect(cctx, []*simulate.Device{tc.dev}, map[string]string{tc.dev.ID: tc.key}, opts)
			if sim != nil {
				defer sim.Close()
			}
			if cctx.Err() != nil {
				t.Fatalf("connect did not finish in time: %v", err)
			}
			if tc.wantOK && err != nil {
				t.Fatalf("connect: %v", err)
			}
			if !tc.wantOK && err == nil {
				t.Fatalf("connect succeeded, want it refused")
			}
		})
	}
	t.Run("secondary key of its own", func(t *testing.T) {
		d, err := h.Client().GetDevice(ctx, "lock-fail")
		must(t, "get device", err)
		sim, err := simulate.Connect(ctx, []*simulate.Device{byID["lock-fail"]},
			map[string]string{"lock-fail": d.Authentication.SymmetricKey.SecondaryKey}, simOptions(h, pool))
		if err != nil {
			t.Fatalf("connect with the secondary key: %v", err)
		}
		sim.Close()
	})
	// Disabled devices are refused: see the disableDevice conformance case.
}

func TestReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := openHub(t, dir, "127.0.0.1:0")
	pool := caPool(t, h)
	cs := h.ConnectionString()
	httpAddr := h.HTTPAddr()
	ctx := testCtx(t, 20*time.Second)
	devs := parseFleet(t)
	keys, err := simulate.Register(ctx, h.Client(), devs)
	must(t, "register", err)
	sim, err := simulate.Connect(ctx, devs, keys, simOptions(h, pool))
	must(t, "connect fleet", err)

	c := h.Client()
	_, err = c.UpdateTwin(ctx, "lock-ok", &hub.TwinPatch{Tags: map[string]any{"kept": "yes"},
		Properties: &hub.Properties{Desired: map[string]any{"d": 1.0}}}, "*")
	must(t, "update twin", err)
	_, err = c.CreateJob(ctx, &hub.Job{JobID: "before", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor"}})
	must(t, "create job", err)
	job := waitJob(ctx, t, c, "before")
	_, err = c.CreateJob(ctx, &hub.Job{JobID: "pending", Type: hub.JobUpdateTwin, QueryCondition: "*",
		StartTime:  hub.NewTime(time.Now().Add(time.Hour)),
		UpdateTwin: &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"p": 1.0}}}})
	must(t, "create scheduled job", err)
	waitJobStatus(ctx, t, c, "pending", hub.JobScheduled)
	twin, err := c.GetTwin(ctx, "lock-ok")
	must(t, "get twin", err)
	dev, err := c.GetDevice(ctx, "lock-ok")
	must(t, "get device", err)

	sim.Close()
	must(t, "close hub", h.Close())

	// Same data directory and HTTPS address: a restarted hub.
	h2 := openHub(t, dir, httpAddr)
	if got := h2.ConnectionString(); got != cs {
		t.Errorf("connection string changed over a restart: %q → %q", cs, got)
	}
	clients := []struct {
		name string
		c    hub.Client
	}{
		{"engine", h2.Client()},
		// The CA from before the restart still verifies the hub.
		{"rest", restClient(t, h2, pool, "")},
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			c := cl.c
			d2, err := c.GetDevice(ctx, "lock-ok")
			must(t, "get device", err)
			if d2.Authentication.SymmetricKey != dev.Authentication.SymmetricKey || d2.ETag != dev.ETag {
				t.Errorf("device changed over a restart: %+v → %+v", dev.Authentication.SymmetricKey, d2.Authentication.SymmetricKey)
			}
			t2, err := c.GetTwin(ctx, "lock-ok")
			must(t, "get twin", err)
			if t2.ETag != twin.ETag || t2.Version != twin.Version || t2.Tags["kept"] != "yes" || t2.Properties.Desired["d"] != 1.0 {
				t.Errorf("twin changed over a restart: etag %q→%q version %d→%d tags %v desired %v",
					twin.ETag, t2.ETag, twin.Version, t2.Version, t2.Tags, t2.Properties.Desired)
			}
			res, err := c.Query(ctx, "SELECT COUNT() AS n FROM devices", hub.QueryOptions{})
			must(t, "count", err)
			if got, _ := json.Marshal(res.Items); !jsonEqual(t, got, []byte(`[{"n":4}]`)) {
				t.Errorf("device count after restart: %s", got)
			}
			j, err := c.GetJob(ctx, "before")
			must(t, "get finished job", err)
			if !hub.SameJobState(j, job) || j.EndTime == nil {
				t.Errorf("finished job changed over a restart: %q %+v → %q %+v", job.Status, job.DeviceJobStatistics, j.Status, j.DeviceJobStatistics)
			}
			if rows := deviceJobs(ctx, t, c, "before"); len(rows) != 4 {
				t.Errorf("devices.jobs of the finished job after restart: %d rows, want 4", len(rows))
			}
			p, err := c.GetJob(ctx, "pending")
			must(t, "get scheduled job", err)
			if p.Status != hub.JobScheduled && p.Status != hub.JobQueued {
				t.Errorf("job scheduled for later is %q after a restart, want it still waiting", p.Status)
			}
		})
	}
	// The fleet connects to the restarted hub with the keys it had.
	sim2, err := simulate.Connect(ctx, devs, keys, simOptions(h2, pool))
	must(t, "reconnect fleet", err)
	defer sim2.Close()
	resp, err := h2.Client().InvokeMethod(ctx, "lock-ok", &hub.MethodRequest{MethodName: "lockDoor"})
	must(t, "invoke after restart", err)
	if resp.Status != 200 {
		t.Errorf("method after restart: status %d", resp.Status)
	}
}

func testMethodConnectTimeout(t *testing.T, e *env) {
	ctx := testCtx(t, 20*time.Second)
	type result struct {
		resp *hub.MethodResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := e.c.InvokeMethod(ctx, "lock-offline", &hub.MethodRequest{MethodName: "lockDoor", ConnectTimeoutInSeconds: 15})
		done <- result{resp, err}
	}()
	// The "offline" device comes online while the call waits for it.
	connectOffline(ctx, t, e)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("invoke with a connect timeout on a device that connects meanwhile: %v", r.err)
		}
		if r.resp.Status != 200 {
			t.Errorf("status %d, want 200", r.resp.Status)
		}
	case <-ctx.Done():
		t.Fatal("no answer before the deadline")
	}
}

// TestRestartResetsConnectionState: a hub that restarts has no device
// connected, so every twin must read Disconnected until its device
// connects again.
func TestRestartResetsConnectionState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := openHub(t, dir, "127.0.0.1:0")
	pool := caPool(t, h)
	ctx := testCtx(t, 15*time.Second)
	devs := parseFleet(t)
	keys, err := simulate.Register(ctx, h.Client(), devs)
	must(t, "register", err)
	connectFleet(ctx, t, h, pool, devs, keys)
	must(t, "close hub", h.Close())

	h2 := openHub(t, dir, "127.0.0.1:0") // new ports: nobody can reconnect
	for _, id := range fleetIDs {
		tw, err := h2.Client().GetTwin(ctx, id)
		must(t, "get twin", err)
		if tw.ConnectionState != hub.Disconnected {
			t.Errorf("%s after a restart: connectionState %q, want %q", id, tw.ConnectionState, hub.Disconnected)
		}
	}
	res, err := h2.Client().Query(ctx, "SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'", hub.QueryOptions{})
	must(t, "query", err)
	if got, _ := json.Marshal(res.Items); !jsonEqual(t, got, []byte(`[{"n":0}]`)) {
		t.Errorf("connected devices after a restart: %s, want none", got)
	}
}

// testDeleteConnected deletes a connected device and registers the id
// again with new keys: the old connection must be gone, so the new
// identity is not online until a device with the new keys connects.
func testDeleteConnected(t *testing.T, e *env) {
	ctx := testCtx(t, 15*time.Second)
	c := e.c
	lock := &hub.MethodRequest{MethodName: "lockDoor"}
	if _, err := c.InvokeMethod(ctx, "lock-ok", lock); err != nil {
		t.Fatalf("invoke before delete: %v", err)
	}
	must(t, "delete connected device", c.DeleteDevice(ctx, "lock-ok", "*"))
	_, err := c.InvokeMethod(ctx, "lock-ok", lock)
	wantCode(t, "invoke deleted device", err, hub.CodeDeviceNotFound)

	d, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "lock-ok"})
	must(t, "create device again", err)
	if d.Authentication.SymmetricKey.PrimaryKey == e.keys["lock-ok"] {
		t.Fatal("the new identity got the old key")
	}
	tw, err := c.GetTwin(ctx, "lock-ok")
	must(t, "get new twin", err)
	if tw.Tags["x"] != nil || tw.ConnectionState == hub.Connected {
		t.Errorf("new identity: tags %v state %q, want a fresh disconnected twin", tw.Tags, tw.ConnectionState)
	}
	_, err = c.InvokeMethod(ctx, "lock-ok", lock)
	wantCode(t, "invoke re-created device before it connects", err, hub.CodeDeviceNotOnline)
}

// testDisableDevice disables a connected device: it is disconnected at
// once, cannot connect or be called while disabled, and connects again
// once enabled.
func testDisableDevice(t *testing.T, e *env) {
	ctx := testCtx(t, 30*time.Second)
	c := e.c
	// The fleet leaves lock-offline unconnected, so this test owns its
	// only connection (a fleet device would reconnect on its own).
	const id = "lock-offline"
	var dev simulate.Device
	for _, d := range e.devs {
		if d.ID == id {
			dev = *d
		}
	}
	dev.Offline = false
	connect := func() (*simulate.Sim, error) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		sim, err := simulate.Connect(cctx, []*simulate.Device{&dev}, e.keys, simOptions(e.h, e.pool))
		if cctx.Err() != nil && ctx.Err() == nil {
			t.Fatalf("connect %s did not finish in time: %v", id, err)
		}
		return sim, err
	}
	lock := &hub.MethodRequest{MethodName: "lockDoor", ConnectTimeoutInSeconds: 5}

	sim, err := connect()
	must(t, "connect before disabling", err)
	defer sim.Close()
	_, err = c.InvokeMethod(ctx, id, lock)
	must(t, "invoke before disabling", err)

	before, err := c.GetDevice(ctx, id)
	must(t, "get device", err)
	reason := "lost in transit"
	upd := *before
	upd.Status, upd.StatusReason = hub.StatusDisabled, &reason
	off, err := c.UpdateDevice(ctx, &upd, before.ETag)
	must(t, "disable", err)
	if off.Status != hub.StatusDisabled || off.StatusReason == nil || *off.StatusReason != reason ||
		off.ETag == before.ETag || off.StatusUpdatedTime.IsZero() || off.Authentication.SymmetricKey != before.Authentication.SymmetricKey {
		t.Errorf("disabled device: status %q reason %v etag %q→%q status time %v keys kept %v",
			off.Status, off.StatusReason, before.ETag, off.ETag, off.StatusUpdatedTime, off.Authentication.SymmetricKey == before.Authentication.SymmetricKey)
	}
	start := time.Now()
	_, err = c.InvokeMethod(ctx, id, lock)
	wantCode(t, "invoke disabled device", err, hub.CodeDeviceNotOnline)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("invoke disabled device took %v; it must not wait for the connect timeout", el)
	}
	waitTwin(ctx, t, c, id, func(tw *hub.Twin) bool {
		return tw.ConnectionState == hub.Disconnected && tw.Status == hub.StatusDisabled
	})
	sim.Close()
	if s2, err := connect(); err == nil {
		s2.Close()
		t.Fatal("a disabled device connected over MQTT")
	}

	errCases := []struct {
		name string
		dev  hub.Device
		etag string
		want string
	}{
		{"stale etag", hub.Device{DeviceID: id, Status: hub.StatusEnabled}, before.ETag, hub.CodePreconditionFailed},
		{"stale quoted etag", hub.Device{DeviceID: id, Status: hub.StatusEnabled}, `"` + before.ETag + `"`, hub.CodePreconditionFailed},
		{"unknown device", hub.Device{DeviceID: "nope", Status: hub.StatusEnabled}, "*", hub.CodeDeviceNotFound},
		{"bad status", hub.Device{DeviceID: id, Status: "paused"}, "*", hub.CodeArgumentInvalid},
		{"reason too long", hub.Device{DeviceID: id, StatusReason: new(strings.Repeat("r", 129))}, "*", hub.CodeArgumentInvalid},
	}
	for _, ec := range errCases {
		_, err := c.UpdateDevice(ctx, &ec.dev, ec.etag)
		wantCode(t, ec.name, err, ec.want)
	}

	on, err := c.UpdateDevice(ctx, &hub.Device{DeviceID: id, Status: hub.StatusEnabled}, "*")
	must(t, "enable", err)
	if on.Status != hub.StatusEnabled || on.ETag == off.ETag || on.StatusReason != nil {
		t.Errorf("enabled device: status %q etag %q (disabled %q) reason %v", on.Status, on.ETag, off.ETag, on.StatusReason)
	}
	sim2, err := connect()
	must(t, "connect after enabling", err)
	defer sim2.Close()
	resp, err := c.InvokeMethod(ctx, id, lock)
	must(t, "invoke after enabling", err)
	if resp.Status != 200 {
		t.Errorf("method after enabling: status %d", resp.Status)
	}
}

// testBulkImport registers 250 devices in three bulk calls, then checks
// statistics, listing, per-device errors and the 100-entry limit.
func testBulkImport(t *testing.T, e *env) {
	ctx := testCtx(t, 60*time.Second)
	c := e.c
	var ids []string
	for i := range 250 {
		ids = append(ids, fmt.Sprintf("bulk-%03d", i))
	}
	calls := 0
	for start := 0; start < len(ids); start += hub.MaxImportDevices {
		var devs []*hub.ImportDevice
		for i, id := range ids[start:min(start+hub.MaxImportDevices, len(ids))] {
			d := &hub.ImportDevice{ID: id, ImportMode: hub.ImportCreate}
			if i%2 == 1 {
				d.ImportMode = hub.ImportCreateOrUpdate
			}
			if (start+i)%10 == 0 {
				d.Status = hub.StatusDisabled
			}
			devs = append(devs, d)
		}
		res, err := c.ImportDevices(ctx, devs)
		must(t, "bulk create", err)
		calls++
		if !res.IsSuccessful || len(res.Errors) != 0 {
			t.Fatalf("bulk create from %d: %+v", start, res)
		}
	}
	if calls != 3 {
		t.Errorf("%d bulk calls for 250 devices, want 3", calls)
	}
	st, err := c.DeviceStatistics(ctx)
	must(t, "statistics", err)
	want := hub.RegistryStatistics{TotalDeviceCount: 254, EnabledDeviceCount: 229, DisabledDeviceCount: 25}
	if *st != want {
		t.Errorf("statistics %+v, want %+v (250 bulk devices, 25 disabled, and the fleet of 4)", *st, want)
	}

	all, err := c.ListDevices(ctx, 0)
	must(t, "list devices", err)
	var listed []string
	for _, d := range all {
		listed = append(listed, d.DeviceID)
	}
	wantIDs := slices.Sorted(slices.Values(append(slices.Clone(ids), fleetIDs...)))
	if !slices.Equal(listed, wantIDs) {
		t.Errorf("list devices: %d ids (first %v), want all %d in id order", len(listed), listed[:min(5, len(listed))], len(wantIDs))
	}
	top, err := c.ListDevices(ctx, 10)
	must(t, "list top 10", err)
	if len(top) != 10 || top[0].DeviceID != "bulk-000" || top[9].DeviceID != "bulk-009" {
		t.Errorf("list top 10: %d devices", len(top))
	}
	d5, err := c.GetDevice(ctx, "bulk-005")
	must(t, "get bulk device", err)
	k := d5.Authentication.SymmetricKey
	if k.PrimaryKey == "" || k.SecondaryKey == "" || k.PrimaryKey == k.SecondaryKey || d5.Status != hub.StatusEnabled {
		t.Errorf("bulk-created device: status %q keys %+v; want enabled with two generated keys", d5.Status, k)
	}
	// The generated key lets the device connect.
	sim, err := simulate.Connect(ctx, []*simulate.Device{{ID: "bulk-005"}}, map[string]string{"bulk-005": k.PrimaryKey}, simOptions(e.h, e.pool))
	must(t, "connect a bulk-created device", err)
	sim.Close()

	d2, err := c.GetDevice(ctx, "bulk-002")
	must(t, "get bulk device", err)
	res, err := c.ImportDevices(ctx, []*hub.ImportDevice{
		{ID: "bulk-000", ImportMode: hub.ImportCreate},
		{ID: "bulk-001", ImportMode: hub.ImportDelete},
		{ID: "bulk-002", ImportMode: hub.ImportDeleteIfMatchETag, ETag: "c3RhbGU="},
		{ID: "bulk-003", ImportMode: "Delete"}, // the Node SDK's spelling
		{ID: "nope", ImportMode: hub.ImportDelete},
		{ID: "bulk-004", ImportMode: hub.ImportUpdate, Status: hub.StatusDisabled},
	})
	must(t, "bulk with failures", err)
	wantErrs := []hub.DeviceImportError{
		{DeviceID: "bulk-000", ErrorCode: hub.CodeDeviceAlreadyExists},
		{DeviceID: "bulk-002", ErrorCode: hub.CodePreconditionFailed},
		{DeviceID: "nope", ErrorCode: hub.CodeDeviceNotFound},
	}
	if res.IsSuccessful || len(res.Errors) != len(wantErrs) || res.Warnings == nil {
		t.Fatalf("bulk with failures: %+v, want %d errors", res, len(wantErrs))
	}
	for i, w := range wantErrs {
		if g := res.Errors[i]; g.DeviceID != w.DeviceID || g.ErrorCode != w.ErrorCode || g.ErrorStatus == "" {
			t.Errorf("bulk error %d = %+v, want %s %s with a message", i, g, w.DeviceID, w.ErrorCode)
		}
	}
	if got, err := c.GetDevice(ctx, "bulk-002"); err != nil || got.ETag != d2.ETag {
		t.Errorf("bulk-002 after a stale deleteIfMatchETag: %v", err)
	}
	st, err = c.DeviceStatistics(ctx)
	must(t, "statistics", err)
	want = hub.RegistryStatistics{TotalDeviceCount: 252, EnabledDeviceCount: 226, DisabledDeviceCount: 26}
	if *st != want {
		t.Errorf("statistics after deletes %+v, want %+v", *st, want)
	}

	tooMany := make([]*hub.ImportDevice, hub.MaxImportDevices+1)
	for i := range tooMany {
		tooMany[i] = &hub.ImportDevice{ID: fmt.Sprintf("many-%03d", i), ImportMode: hub.ImportCreate}
	}
	_, err = c.ImportDevices(ctx, tooMany)
	wantCode(t, "bulk of 101", err, hub.CodeArgumentInvalid)
	_, err = c.GetDevice(ctx, "many-000")
	wantCode(t, "device of a refused bulk", err, hub.CodeDeviceNotFound)
}

// testReplaceTwin replaces the echo device's tags and desired properties:
// nothing of the old ones is left, reported is untouched, and the device
// gets the new desired document.
func testReplaceTwin(t *testing.T, e *env) {
	ctx := testCtx(t, 15*time.Second)
	c := e.c
	const id = "echo"
	t0 := waitTwin(ctx, t, c, id, func(tw *hub.Twin) bool { return tw.Properties.Reported["firmware"] == "1.0" })
	t1, err := c.UpdateTwin(ctx, id, &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"old": 1.0}}}, t0.ETag)
	must(t, "patch desired", err)

	repl := &hub.TwinPatch{Tags: map[string]any{"role": "replaced"},
		Properties: &hub.Properties{Desired: map[string]any{"interval": 7.0, "cfg": map[string]any{"mode": "slow"}}}}
	tw, err := c.ReplaceTwin(ctx, id, repl, `"`+t1.ETag+`"`)
	must(t, "replace twin", err)
	dv := num(tw.Properties.Desired["$version"])
	if tw.Version != t1.Version+1 || tw.ETag == t1.ETag || dv != num(t1.Properties.Desired["$version"])+1 {
		t.Errorf("replaced twin: version %d→%d etag %q→%q desired $version %v; want +1, a new etag, +1",
			t1.Version, tw.Version, t1.ETag, tw.ETag, tw.Properties.Desired["$version"])
	}
	if !maps.Equal(tw.Tags, map[string]any{"role": "replaced"}) {
		t.Errorf("tags %v, want only the replacement", tw.Tags)
	}
	got := map[string]any{}
	maps.Copy(got, tw.Properties.Desired)
	delete(got, "$metadata")
	delete(got, "$version")
	if b, _ := json.Marshal(got); !jsonEqual(t, b, []byte(`{"interval":7,"cfg":{"mode":"slow"}}`)) {
		t.Errorf("desired %s, want exactly the replacement", b)
	}
	if tw.Properties.Reported["firmware"] != "1.0" {
		t.Errorf("reported %v, want it untouched", tw.Properties.Reported)
	}
	// The device got the new document and echoes it into reported.
	waitTwin(ctx, t, c, id, func(tw *hub.Twin) bool {
		cfg, _ := tw.Properties.Reported["cfg"].(map[string]any)
		return tw.Properties.Reported["interval"] == 7.0 && cfg["mode"] == "slow"
	})
	back, err := c.GetTwin(ctx, id)
	must(t, "get twin", err)
	if back.ETag != tw.ETag || back.Version != tw.Version || !maps.Equal(back.Tags, tw.Tags) {
		t.Errorf("read back etag %q version %d tags %v; replace answered %q %d %v", back.ETag, back.Version, back.Tags, tw.ETag, tw.Version, tw.Tags)
	}
	// Metadata as stored (the engine's own answer holds int64 versions).
	meta, _ := back.Properties.Desired["$metadata"].(map[string]any)
	cfgMeta, _ := meta["cfg"].(map[string]any)
	modeMeta, _ := cfgMeta["mode"].(map[string]any)
	if num(modeMeta["$lastUpdatedVersion"]) != dv || modeMeta["$lastUpdated"] == nil || meta["old"] != nil || num(meta["$lastUpdatedVersion"]) != dv {
		t.Errorf("desired $metadata %v: want every new leaf stamped with version %v and none for removed keys", meta, dv)
	}

	errCases := []struct {
		name string
		id   string
		t    *hub.TwinPatch
		etag string
		want string
	}{
		{"stale etag", id, &hub.TwinPatch{}, t1.ETag, hub.CodePreconditionFailed},
		{"unknown device", "nope", &hub.TwinPatch{}, "*", hub.CodeDeviceNotFound},
		{"dollar key", id, &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"a": map[string]any{"$b": 1.0}}}}, "*", hub.CodeArgumentInvalid},
		{"tags over 8 KB", id, &hub.TwinPatch{Tags: map[string]any{"a": strings.Repeat("a", 3000), "b": strings.Repeat("b", 3000), "c": strings.Repeat("c", 3000)}}, "*", hub.CodeMessageTooLarge},
	}
	for _, ec := range errCases {
		_, err := c.ReplaceTwin(ctx, ec.id, ec.t, ec.etag)
		wantCode(t, ec.name, err, ec.want)
	}
	if last, err := c.GetTwin(ctx, id); err != nil || last.ETag != tw.ETag {
		t.Errorf("failed replacements changed the twin (etag %q → %v, %v)", tw.ETag, last, err)
	}
}
