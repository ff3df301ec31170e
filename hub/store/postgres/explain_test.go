package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
)

// planNode is the part of EXPLAIN (FORMAT JSON) the test reads.
type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Index    string     `json:"Index Name"`
	Plans    []planNode `json:"Plans"`
}

// walk lists the nodes of a plan as "Node Type [relation] [index]".
func (n planNode) walk(out []string) []string {
	out = append(out, strings.TrimSpace(n.NodeType+" "+n.Relation+" "+n.Index))
	for _, c := range n.Plans {
		out = c.walk(out)
	}
	return out
}

const indexFleet = 100_000

// count is how many devices of the fleet of TestIndexes match.
func count(match func(i int) bool) int {
	n := 0
	for i := range indexFleet {
		if match(i) {
			n++
		}
	}
	return n
}

// TestIndexes fills 100,000 twins and 100,000 device-job records and
// checks that PostgreSQL's planner answers the query shapes operators use
// from an index, not by reading the whole table: equality on tags and
// reported properties (jsonb containment, the GIN index devices_twin),
// device ids and devices.jobs of one job (the primary keys).
func TestIndexes(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 100,000 twins")
	}
	ctx := context.Background()
	s := open(t)
	began := time.Now()
	at := hub.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	ds := make([]*store.Device, 0, 10_000)
	for i := range indexFleet {
		ds = append(ds, &store.Device{
			Device: hub.Device{DeviceID: fmt.Sprintf("dev-%06d", i), Status: hub.StatusEnabled, LastActivityTime: at},
			Tags: map[string]any{
				"site":  fmt.Sprintf("site-%03d", i%1000),
				"floor": float64(i % 20),
				"ring":  []string{"canary", "early", "broad"}[i%3],
			},
			Desired:  map[string]any{"$version": 1.0, "interval": 30.0},
			Reported: map[string]any{"$version": 3.0, "fw": fmt.Sprintf("1.%d.%d", i%50, i%23), "temperature": float64(i%400) / 10},
			Version:  2,
		})
		if len(ds) == cap(ds) {
			if err := s.LoadDevices(ctx, ds); err != nil {
				t.Fatalf("load devices: %v", err)
			}
			ds = ds[:0]
		}
	}
	djs := make([]*hub.DeviceJob, 0, indexFleet)
	for i := range indexFleet {
		djs = append(djs, &hub.DeviceJob{JobID: fmt.Sprintf("job-%02d", i%50), DeviceID: fmt.Sprintf("dev-%06d", i),
			JobType: hub.JobUpdateTwin, Status: hub.DeviceJobPending, CreatedDateTimeUtc: &at})
	}
	if err := s.PutDeviceJobs(ctx, djs); err != nil {
		t.Fatalf("PutDeviceJobs: %v", err)
	}
	if err := s.Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %d twins and %d records in %v", indexFleet, len(djs), time.Since(began).Round(time.Millisecond))

	tests := []struct {
		name  string
		query string
		index string // the index the plan must use
		rows  int    // the rows the query answers
	}{
		{"tag equality", "SELECT * FROM devices WHERE tags.site = 'site-042'", "devices_twin", 100},
		{"tag equality, constant first", "SELECT deviceId FROM devices WHERE 'site-042' = tags.site", "devices_twin", 100},
		{"tag IN", "SELECT deviceId FROM devices WHERE tags.site IN ['site-001', 'site-002']", "devices_twin", 200},
		{"reported equality", "SELECT * FROM devices WHERE properties.reported.fw = '1.7.3'", "devices_twin", count(func(i int) bool { return i%50 == 7 && i%23 == 3 })},
		{"two tags", "SELECT deviceId FROM devices WHERE tags.site = 'site-007' AND tags.floor = 7", "devices_twin", 100},
		{"tag and range", "SELECT deviceId FROM devices WHERE tags.site = 'site-007' AND properties.reported.temperature > 10", "devices_twin", count(func(i int) bool { return i%1000 == 7 && i%400 > 100 })},
		{"count by tag", "SELECT COUNT() AS n FROM devices WHERE tags.site = 'site-042'", "devices_twin", 1},
		{"group by tag", "SELECT tags.ring, COUNT() AS n FROM devices WHERE tags.site = 'site-042' GROUP BY tags.ring", "devices_twin", 3},
		{"device id", "SELECT * FROM devices WHERE deviceId = 'dev-000042'", "devices_pkey", 1},
		{"device ids", "SELECT * FROM devices WHERE deviceId IN ['dev-000042', 'dev-000043']", "devices_pkey", 2},
		{"job id", "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'job-07'", "device_jobs_pkey", indexFleet / 50},
		{"job id and status", "SELECT deviceId FROM devices.jobs WHERE jobId = 'job-07' AND status = 'pending'", "device_jobs_pkey", indexFleet / 50},
		{"job status counts", "SELECT status, COUNT() AS n FROM devices.jobs WHERE jobId = 'job-07' GROUP BY status", "device_jobs_pkey", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := query.Parse(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := s.ExplainPlan(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var plans []struct {
				Plan planNode `json:"Plan"`
			}
			if err := json.Unmarshal(raw, &plans); err != nil || len(plans) != 1 {
				t.Fatalf("read the plan %s: %v", raw, err)
			}
			nodes := plans[0].Plan.walk(nil)
			t.Logf("plan: %s", strings.Join(nodes, " / "))
			for _, n := range nodes {
				if strings.HasPrefix(n, "Seq Scan devices") || strings.HasPrefix(n, "Seq Scan device_jobs") {
					t.Errorf("the plan reads the whole table (%s): %s", n, strings.Join(nodes, " / "))
				}
			}
			if !slices.ContainsFunc(nodes, func(n string) bool { return strings.HasSuffix(n, " "+tt.index) }) {
				t.Errorf("the plan does not use %s: %s", tt.index, strings.Join(nodes, " / "))
			}
			run := s.QueryDevices
			if q.From == query.DevicesJobs {
				run = s.QueryDeviceJobs
			}
			page, err := run(ctx, q, "", 5000)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) != tt.rows || page.After != "" {
				t.Errorf("%d rows (after %q), want %d", len(page.Items), page.After, tt.rows)
			}
		})
	}
}
