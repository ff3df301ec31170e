package engine_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite golden files")

// queryFleet is the fixture fleet of the Azure query-language examples:
// tags.location.region, reported telemetryConfig and connectivity.
var queryFleet = []struct {
	id       string
	tags     map[string]any
	reported map[string]any
	disabled bool
}{
	{"myDeviceId", map[string]any{"location": map[string]any{"region": "US", "plant": "Redmond43"}},
		map[string]any{"telemetryConfig": map[string]any{"sendFrequencyInSecs": 300.0, "status": "Success"}, "connectivity": "wifi"}, false},
	{"dev-eu-1", map[string]any{"location": map[string]any{"region": "EU", "plant": "Dublin1"}},
		map[string]any{"telemetryConfig": map[string]any{"sendFrequencyInSecs": 30.0, "status": "Pending"}, "connectivity": "wired"}, false},
	{"dev-us-2", map[string]any{"location": map[string]any{"region": "US", "plant": "Redmond44"}},
		map[string]any{"telemetryConfig": map[string]any{"sendFrequencyInSecs": 60.0, "status": "Success"}, "connectivity": "cellular"}, false},
	{"dev-us-3", map[string]any{"location": map[string]any{"region": "US"}},
		map[string]any{"telemetryConfig": map[string]any{"status": "Error"}}, true},
	{"dev-none", map[string]any{}, map[string]any{}, false},
}

// queryModules are the fixture fleet's modules.
var queryModules = []struct {
	device, module string
	tags, reported map[string]any
}{
	{"myDeviceId", "scanner", map[string]any{"location": map[string]any{"region": "US"}}, map[string]any{"status": "scanning"}},
	{"myDeviceId", "edgeAgent", map[string]any{}, map[string]any{"status": "running"}},
	{"dev-eu-1", "scanner", map[string]any{"location": map[string]any{"region": "EU"}}, map[string]any{"status": "scanning"}},
}

// TestQueryGolden runs the query language's documented examples through
// hub.Client on the fixture fleet; testdata/queries.golden holds the
// expected rows (go test ./hub/engine -run TestQueryGolden -update).
func TestQueryGolden(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewVirtual(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hub.db"))
	if err != nil {
		t.Fatal(err)
	}
	bus := newTestBus("myDeviceId", "dev-eu-1")
	e := engine.New(st, bus, clk)
	if err := e.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); st.Close() })
	for _, d := range queryFleet {
		status := hub.StatusEnabled
		if d.disabled {
			status = hub.StatusDisabled
		}
		if _, err := e.CreateDevice(ctx, &hub.Device{DeviceID: d.id, Status: status}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.UpdateTwin(ctx, d.id, &hub.TwinPatch{Tags: d.tags}, "*"); err != nil {
			t.Fatal(err)
		}
		if len(d.reported) > 0 {
			b, _ := json.Marshal(d.reported)
			if _, err := e.ReportedPatch(ctx, d.id, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Modules, some tagged like devices the jobs target: FROM devices and
	// the jobs must leave them out.
	for _, m := range queryModules {
		if _, err := e.CreateModule(ctx, &hub.Module{DeviceID: m.device, ModuleID: m.module}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.UpdateModuleTwin(ctx, m.device, m.module, &hub.TwinPatch{Tags: m.tags}, "*"); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(m.reported)
		if _, err := e.ReportedPatch(ctx, hub.ModuleKey(m.device, m.module), b); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range []*hub.Job{
		{JobID: "myJobId", Type: hub.JobUpdateTwin, QueryCondition: "tags.location.region = 'US'",
			UpdateTwin: &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"x": 1.0}}}},
		{JobID: "rebootJob", Type: hub.JobDeviceMethod, QueryCondition: "deviceId IN ['myDeviceId', 'dev-eu-1', 'dev-none']",
			CloudToDeviceMethod: &hub.MethodRequest{MethodName: "reboot"}},
	} {
		if _, err := e.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		waitJob(t, e, j.JobID)
	}

	queries := []string{
		"SELECT * FROM devices",
		"SELECT * FROM devices WHERE tags.location.region = 'US'",
		"SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60",
		"SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi']",
		"SELECT * FROM devices WHERE properties.reported.connectivity NIN ['wired', 'wifi']",
		"SELECT * FROM devices WHERE is_defined(properties.reported.connectivity)",
		"SELECT * FROM devices WHERE NOT IS_DEFINED(tags.location)",
		"SELECT * FROM devices WHERE STARTSWITH(tags.location.plant, 'Redmond')",
		"SELECT * FROM devices WHERE ENDSWITH(deviceId, '-1')",
		"select * from devices where deviceId in ['myDeviceId', 'dev-us-3']",
		"SELECT * FROM devices WHERE status = 'disabled' OR properties.reported.telemetryConfig.sendFrequencyInSecs < 60",
		"SELECT TOP 2 * FROM devices WHERE tags.location.region = 'US'",
		"SELECT COUNT() AS numberOfDevices FROM devices",
		"SELECT COUNT() AS numberOfDevices FROM devices WHERE tags.location.region = 'US'",
		"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
		"SELECT tags.location.region AS region, COUNT() AS n FROM devices GROUP BY tags.location.region",
		"SELECT deviceId, tags.location.plant AS plant FROM devices WHERE tags.location.region = 'US'",
		"SELECT LastActivityTime FROM devices WHERE status = 'enabled' AND deviceId = 'myDeviceId'",
		"SELECT MAX(properties.reported.telemetryConfig.sendFrequencyInSecs) AS slowest, MIN(properties.reported.telemetryConfig.sendFrequencyInSecs) AS fastest FROM devices",
		"SELECT * FROM devices.modules",
		"SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning'",
		"SELECT * FROM devices.modules WHERE devices.modules.moduleId = 'scanner' AND tags.location.region = 'US'",
		"SELECT deviceId, moduleId FROM devices.modules WHERE deviceId = 'myDeviceId'",
		"SELECT moduleId, COUNT() AS n FROM devices.modules GROUP BY moduleId",
		"SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'myDeviceId'",
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'rebootJob' AND devices.jobs.status = 'failed'",
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobType = 'scheduleUpdateTwin' AND devices.jobs.status = 'completed'",
		"SELECT * FROM devices.jobs WHERE devices.jobs.outcome.deviceMethodResponse.status = 200",
		"SELECT * FROM devices WHERE tags.location.region = 'US",
		"SELECT * FROM devices WHERE deviceId IN ('a')",
		"SELECT * FROM devices GROUP BY status",
	}
	var b strings.Builder
	for _, q := range queries {
		fmt.Fprintf(&b, "-- %s\n", q)
		var rows []string
		opts := hub.QueryOptions{PageSize: 2}
		for {
			res, err := e.Query(ctx, q, opts)
			if err != nil {
				fmt.Fprintf(&b, "error %s: %s\n", hub.ErrorCode(err), hub.ErrorMessage(err))
				break
			}
			for _, it := range res.Items {
				rows = append(rows, summarize(t, res.ItemType, it))
			}
			if res.Continuation == "" {
				break
			}
			opts.Continuation = res.Continuation
		}
		for _, r := range rows {
			b.WriteString(r + "\n")
		}
	}
	golden := filepath.Join("testdata", "queries.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("query results differ from %s (rerun with -update and review the diff):\n%s", golden, got)
	}
}

// summarize renders a row for the golden file: a twin by id, region and
// version; a device job by its key fields; raw rows as JSON.
func summarize(t *testing.T, itemType string, item json.RawMessage) string {
	switch itemType {
	case hub.ItemTwin:
		var tw hub.Twin
		if err := json.Unmarshal(item, &tw); err != nil {
			t.Fatal(err)
		}
		id := tw.DeviceID
		if tw.ModuleID != "" {
			id = hub.ModuleKey(tw.DeviceID, tw.ModuleID)
		}
		return fmt.Sprintf("twin %s status=%s version=%d etag=%s", id, tw.Status, tw.Version, tw.ETag)
	case hub.ItemDeviceJob:
		var dj hub.DeviceJob
		if err := json.Unmarshal(item, &dj); err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("deviceJob %s/%s %s %s", dj.JobID, dj.DeviceID, dj.JobType, dj.Status)
		if dj.Error != nil {
			s += " error=" + dj.Error.Code
		}
		if dj.Outcome != nil && dj.Outcome.DeviceMethodResponse != nil {
			s += fmt.Sprintf(" outcome=%d", dj.Outcome.DeviceMethodResponse.Status)
		}
		return s
	}
	return "row " + string(item)
}
