package hubd_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/simulate"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestTutorialJobsGolden runs the tutorial's two jobs (lockDoor on
// myDeviceId, then desired {building: '43', floor: 3} with etag '*') on a
// hub whose clock stands still, and compares the REST bodies a client
// reads (the jobs, and their devices.jobs rows) with
// testdata/tutorial-jobs.golden byte for byte: field names, values, times
// and order exactly as they go over the wire. go test ./hub/hubd -run
// TestTutorialJobsGolden -update rewrites it.
func TestTutorialJobsGolden(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ctx := testCtx(t, 20*time.Second)
	h, err := hubd.Open(ctx, hubd.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		Clock: clock.NewVirtual(t0), Logger: quiet})
	must(t, "open hub", err)
	t.Cleanup(func() { h.Close() })
	pool := caPool(t, h)

	f, ds := simulate.Parse("fleet.yaml", []byte(`
version: 1
groups:
  - ids: [myDeviceId]
    tags: {building: "43", floor: 3}
    methods:
      lockDoor: {status: 200, payload: {locked: true}}
    desired: {report: true}
`))
	if f == nil || ds.HasErrors() {
		t.Fatalf("fleet: %v", ds)
	}
	devs := f.Devices()
	c := restClient(t, h, pool, "")
	keys, err := simulate.Register(ctx, c, devs)
	must(t, "register", err)
	connectFleet(ctx, t, h, pool, devs, keys)

	jobs := []*hub.Job{
		{JobID: "lockDoorJob", Type: hub.JobDeviceMethod, QueryCondition: "deviceId IN ['myDeviceId']", MaxExecutionTimeInSeconds: 3600,
			CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor", Payload: json.RawMessage("null"), ResponseTimeoutInSeconds: 15}},
		{JobID: "updateTwinJob", Type: hub.JobUpdateTwin, QueryCondition: "deviceId IN ['myDeviceId']", MaxExecutionTimeInSeconds: 3600,
			UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"building": "43", "floor": 3}}}},
	}
	for _, j := range jobs {
		_, err := c.CreateJob(ctx, j)
		must(t, "create job", err)
	}
	for _, j := range jobs {
		waitJob(ctx, t, c, j.JobID)
	}

	cs, err := sas.ParseConnectionString(h.ConnectionString())
	must(t, "connection string", err)
	token, err := sas.ServiceToken(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	must(t, "token", err)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	raw := func(method, path, body string) []byte {
		req, err := http.NewRequestWithContext(ctx, method, "https://"+h.HTTPAddr()+path, strings.NewReader(body))
		must(t, "request", err)
		req.Header.Set("Authorization", token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json; charset=utf-8")
		}
		resp, err := hc.Do(req)
		must(t, method+" "+path, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		must(t, "read body", err)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			t.Fatalf("%s %s: body is not JSON: %s", method, path, b)
		}
		return out.Bytes()
	}
	var got bytes.Buffer
	for _, j := range jobs {
		got.WriteString("# GET /jobs/v2/" + j.JobID + "\n")
		got.Write(raw("GET", "/jobs/v2/"+j.JobID+"?api-version=2021-04-12", ""))
		q := "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '" + j.JobID + "'"
		got.WriteString("\n# POST /devices/query " + q + "\n")
		body, _ := json.Marshal(map[string]string{"query": q})
		got.Write(raw("POST", "/devices/query?api-version=2021-04-12", string(body)))
		got.WriteString("\n")
	}
	path := filepath.Join("testdata", "tutorial-jobs.golden")
	if *update {
		must(t, "write golden", os.WriteFile(path, got.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	must(t, "read golden (go test -run TestTutorialJobsGolden -update writes it)", err)
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("REST bodies differ from %s (-update rewrites it after review):\n%s", path, got.Bytes())
	}
}
