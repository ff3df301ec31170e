package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
	"time"
)

// TestSameReportEmbeddedAndREST applies one plan (rollout, abort
// thresholds, verify, onlyPassed) to the embedded hub and to `hub serve`
// over REST with the same fleet: the reports are the same apart from job
// ids, times and the hub's name.
func TestSameReportEmbeddedAndREST(t *testing.T) {
	dir := t.TempDir()
	fleet, planFile := filepath.Join(dir, "fleet.yaml"), filepath.Join(dir, "plan.yaml")
	writeTestFile(t, fleet, `version: 1
groups:
  - ids: "r-{n:02}"
    count: 27
    tags: {ring: r}
    desired: {report: true, delay: 200ms}
    methods:
      reboot: {status: 200, payload: {ok: true}}
  - ids: "r-{n:02}-bad"
    count: 3
    tags: {ring: r}
    methods:
      reboot: {status: 500, payload: {ok: false}}
`)
	writeTestFile(t, planFile, `version: 1
name: same
steps:
  - name: reboot
    query: "tags.ring = 'r'"
    method: {name: reboot}
    rollout: {batches: ["20%", "100%"], pause: 1s}
    abort: {failureRate: 50%, minExecuted: 5}
    success: {minSuccessRate: 80%}
  - name: stamp
    query: "tags.ring = 'r'"
    onlyPassed: true
    twin: {desired: {rebooted: true}}
    verify: {query: "properties.reported.rebooted = true", timeout: 20s}
`)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	embedded := filepath.Join(dir, "embedded.json")
	if code, _, stderr := runCLI(t, ctx, "apply", "--data", filepath.Join(dir, "data"), "--fleet", fleet, "--report", embedded, planFile); code != 0 {
		t.Fatalf("embedded apply exit %d\n%s", code, stderr)
	}

	data := filepath.Join(dir, "hub")
	hubOut, hubDone := background(t, ctx, "hub", "serve", "--data", data, "--https", "127.0.0.1:0", "--mqtts", "127.0.0.1:0")
	cs := servedConnectionString(t, hubOut)
	go func() {
		for range hubOut {
		}
	}()
	ca := filepath.Join(data, "tls", "ca.pem")
	simCtx, stopSim := context.WithCancel(ctx)
	simOut, simDone := background(t, simCtx, "simulate", "--hub", cs, "--ca", ca, "--fleet", fleet)
	waitLine(t, simOut, regexp.MustCompile(`30 connected`))
	go func() {
		for range simOut {
		}
	}()
	remote := filepath.Join(dir, "rest.json")
	if code, _, stderr := runCLI(t, ctx, "apply", "--hub", cs, "--ca", ca, "--report", remote, planFile); code != 0 {
		t.Fatalf("apply over REST exit %d\n%s", code, stderr)
	}
	stopSim()
	<-simDone
	cancel()
	<-hubDone

	a, b := normalizedReport(t, embedded), normalizedReport(t, remote)
	if !reflect.DeepEqual(a, b) {
		ja, _ := json.MarshalIndent(a, "", " ")
		jb, _ := json.MarshalIndent(b, "", " ")
		t.Fatalf("reports differ beyond ids and times:\nembedded:\n%s\nREST:\n%s", ja, jb)
	}
	// And they are not trivially equal: both ran the whole plan.
	r := readReport(t, embedded)
	if len(r.Steps) != 2 || len(r.Steps[0].Devices) != 30 || len(r.Steps[1].Devices) != 27 {
		t.Errorf("embedded report: %d steps", len(r.Steps))
	}
}

// normalizedReport reads a report as generic JSON without what differs
// from hub to hub and run to run: job ids, times, the hub's name.
func normalizedReport(t *testing.T, path string) any {
	t.Helper()
	readReport(t, path) // checks the schema
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	drop := map[string]bool{"jobIds": true, "startedAt": true, "finishedAt": true, "startTime": true, "endTime": true, "hub": true}
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k := range v {
				if drop[k] {
					delete(v, k)
				} else {
					v[k] = walk(v[k])
				}
			}
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
		}
		return v
	}
	return walk(v)
}
