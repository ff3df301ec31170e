package query

import (
	"encoding/json"
	"reflect"
	"testing"
)

// deviceJobsJSON is a small set of device-job records (devices.jobs rows).
const deviceJobsJSON = `[
 {"deviceId": "d1", "jobId": "j1", "jobType": "scheduleUpdateTwin", "status": "completed",
  "startTimeUtc": "2016-09-29T18:18:52.7418462", "outcome": {"deviceMethodResponse": null}},
 {"deviceId": "d2", "jobId": "j1", "jobType": "scheduleUpdateTwin", "status": "failed",
  "error": {"code": "DeviceNotOnline", "description": "offline"}},
 {"deviceId": "d1", "jobId": "j2", "jobType": "scheduleDeviceMethod", "status": "running"}
]`

func TestEval(t *testing.T) {
	docs := fleet(t)
	var jobs []map[string]any
	if err := json.Unmarshal([]byte(deviceJobsJSON), &jobs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		query string
		docs  []map[string]any
		want  []map[string]any
	}{
		{"select star returns the docs", "SELECT * FROM devices WHERE tags.location.region = 'US'", docs,
			[]map[string]any{docs[0], docs[2]}},
		{"no where", "SELECT * FROM devices", docs, docs},
		{"no match", "SELECT * FROM devices WHERE deviceId = 'nope'", docs, []map[string]any{}},
		{"top", "SELECT TOP 2 * FROM devices", docs, docs[:2]},
		{"top after where", "SELECT TOP 1 * FROM devices WHERE status = 'enabled' AND deviceId != 'd1'", docs,
			[]map[string]any{docs[2]}},
		{"top zero", "SELECT TOP 0 * FROM devices", docs, []map[string]any{}},
		{"projection omits undefined", "SELECT deviceId, tags.location.region FROM devices", docs, []map[string]any{
			{"deviceId": "d1", "region": "US"}, {"deviceId": "d2", "region": "EU"},
			{"deviceId": "d3", "region": "US"}, {"deviceId": "d4"}}},
		{"projection as", "SELECT deviceId AS id, properties.reported.telemetryConfig AS tc FROM devices WHERE deviceId IN ['d2']", docs,
			[]map[string]any{{"id": "d2", "tc": map[string]any{"status": "Pending"}}}},
		{"projection of system field any case", "SELECT LASTACTIVITYTIME, Status FROM devices WHERE deviceId = 'd1'", docs,
			[]map[string]any{{"status": "enabled"}}},
		{"count", "SELECT COUNT() AS numberOfDevices FROM devices", docs,
			[]map[string]any{{"numberOfDevices": 4.0}}},
		{"count unnamed", "SELECT COUNT() FROM devices WHERE status = 'enabled'", docs,
			[]map[string]any{{"$1": 3.0}}},
		{"count of nothing", "SELECT COUNT() AS n FROM devices WHERE false", docs,
			[]map[string]any{{"n": 0.0}}},
		{"count top zero", "SELECT TOP 0 COUNT() AS n FROM devices", docs, []map[string]any{}},
		{"group by", "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status", docs,
			[]map[string]any{
				{"status": "Success", "numberOfDevices": 2.0},
				{"status": "Pending", "numberOfDevices": 1.0},
				{"numberOfDevices": 1.0}, // d4 has no telemetryConfig: its own group
			}},
		{"group by with where and top", "SELECT status, COUNT() AS n FROM devices WHERE deviceId != 'd1' GROUP BY status", docs,
			[]map[string]any{{"status": "disabled", "n": 1.0}, {"status": "enabled", "n": 2.0}}},
		{"group by top", "SELECT TOP 1 status, COUNT() AS n FROM devices GROUP BY status", docs,
			[]map[string]any{{"status": "enabled", "n": 3.0}}},
		{"group by two paths", "SELECT status, tags.location.region AS region, COUNT() AS n FROM devices GROUP BY status, tags.location.region", docs,
			[]map[string]any{
				{"status": "enabled", "region": "US", "n": 2.0},
				{"status": "disabled", "region": "EU", "n": 1.0},
				{"status": "enabled", "n": 1.0},
			}},
		{"group by without aggregate is distinct", "SELECT status FROM devices GROUP BY status", docs,
			[]map[string]any{{"status": "enabled"}, {"status": "disabled"}}},
		{"group by over no docs", "SELECT status, COUNT() AS n FROM devices WHERE false GROUP BY status", docs,
			[]map[string]any{}},
		{"aggregates", "SELECT AVG(tags.floor) AS a, SUM(tags.floor) AS s, MIN(tags.floor) AS mn, MAX(tags.floor) AS mx, MAX(version) AS v FROM devices", docs,
			// floors are 3, "3", 7 and missing: AVG and SUM take the numbers;
			// MAX orders strings after numbers.
			[]map[string]any{{"a": 5.0, "s": 10.0, "mn": 3.0, "mx": "3", "v": 3.0}}},
		{"aggregates of nothing", "SELECT AVG(tags.x) AS a, SUM(tags.x) AS s, MIN(tags.x) AS mn FROM devices", docs,
			[]map[string]any{{"s": 0.0}}},
		{"min max strings", "SELECT MIN(deviceId) AS first, MAX(deviceId) AS last FROM devices", docs,
			[]map[string]any{{"first": "d1", "last": "d4"}}},
		{"aggregate per group", "SELECT tags.location.region AS region, MAX(tags.floor) AS highest FROM devices WHERE IS_DEFINED(tags) GROUP BY tags.location.region", docs,
			[]map[string]any{{"region": "US", "highest": 7.0}, {"region": "EU", "highest": "3"}}},
		{"jobs by job id", "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j1'", jobs, jobs[:2]},
		{"jobs bare path", "SELECT * FROM devices.jobs WHERE jobId = 'j1' AND devices.jobs.status = 'failed'", jobs, jobs[1:2]},
		{"jobs by device", "SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'd1' AND devices.jobs.jobType = 'scheduleDeviceMethod'", jobs, jobs[2:]},
		{"jobs nested", "SELECT * FROM devices.jobs WHERE devices.jobs.error.code = 'DeviceNotOnline'", jobs, jobs[1:2]},
		{"jobs all", "SELECT * FROM devices.jobs", jobs, jobs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := Parse(tc.query)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.query, err)
			}
			got, err := Eval(q, tc.docs)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Eval(%s):\n got %v\nwant %v", tc.query, got, tc.want)
			}
			// Rows must survive JSON, as the REST API sends them.
			if _, err := json.Marshal(got); err != nil {
				t.Errorf("rows do not marshal: %v", err)
			}
		})
	}
}

func TestEvalSelectStarIsTheDocument(t *testing.T) {
	docs := fleet(t)
	q, err := Parse("SELECT * FROM devices WHERE deviceId = 'd3'")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Eval(q, docs)
	if err != nil || len(rows) != 1 {
		t.Fatalf("Eval = %v, %v", rows, err)
	}
	rows[0]["marker"] = true
	if docs[2]["marker"] != true {
		t.Error("SELECT * row is a copy, want the document itself")
	}
}

func TestEvalNil(t *testing.T) {
	if _, err := Eval(nil, nil); err == nil {
		t.Error("Eval(nil) succeeded")
	}
	if _, err := Eval(&Query{Top: -1, GroupBy: []Path{{Segments: []string{"status"}}}}, nil); err == nil {
		t.Error("Eval of GROUP BY with SELECT * succeeded")
	}
}

// TestContractExamples runs the example queries of Azure IoT Hub's query
// documentation and of README "Queries" through Parse and Eval.
func TestContractExamples(t *testing.T) {
	docs := fleet(t)
	for _, src := range []string{
		"SELECT * FROM devices WHERE tags.location.region = 'US'",
		"SELECT COUNT() AS numberOfDevices FROM devices",
		"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'myJobId'",
		"SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning'",
		"SELECT LastActivityTime FROM devices WHERE status = 'enabled'",
		"Select * from devices where deviceId in ['a', 'b']",
		"SELECT * FROM devices WHERE properties.desired.$version > 1 AND capabilities.iotEdge = false",
		"SELECT * FROM devices WHERE STARTSWITH(deviceId, 'dev') AND NOT IS_DEFINED(tags.[[group]])",
	} {
		t.Run(src, func(t *testing.T) {
			q, err := Parse(src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if _, err := Eval(q, docs); err != nil {
				t.Fatalf("Eval: %v", err)
			}
		})
	}
	for _, src := range []string{"deviceId IN ['a','b']", "tags.floor >= 3 AND NOT IS_DEFINED(properties.reported.x)", "*",
		"deviceId IN ['myDeviceId']"} {
		if _, err := ParseCondition(src); err != nil {
			t.Errorf("ParseCondition(%q): %v", src, err)
		}
	}
}
