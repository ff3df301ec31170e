package simulate_test

import (
	"context"
	"encoding/json"
	"testing"
	"testing/synctest"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/simulate"
)

// TestSnapshotHubConnectionState: the dry-run's copy of a live hub keeps
// each device's connection state there. A connected device answers a
// method job 200 at once and reports a desired patch back; a disconnected
// or disabled one fails the method with DeviceNotOnline once the job's
// connect timeout has passed (as the hub's engine does), and its twin
// patch is stored, the device job completed, but never reported back.
// It runs in a synctest bubble on the real clock, so the 30 s connect
// timeout passes in no time and exactly.
func TestSnapshotHubConnectionState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		twins := []*hub.Twin{
			{DeviceID: "on", Status: hub.StatusEnabled, ConnectionState: hub.Connected, Version: 1},
			{DeviceID: "off", Status: hub.StatusEnabled, ConnectionState: hub.Disconnected, Version: 1},
			{DeviceID: "disabled", Status: hub.StatusDisabled, ConnectionState: hub.Disconnected, Version: 1},
		}
		e, err := simulate.NewSnapshotHub(ctx, twins, clock.Real())
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		for _, tw := range twins {
			got, err := e.GetTwin(ctx, tw.DeviceID)
			if err != nil {
				t.Fatal(err)
			}
			if got.ConnectionState != tw.ConnectionState || simulate.SnapshotOnline(tw) != (tw.DeviceID == "on") {
				t.Errorf("%s: connectionState %s in the snapshot, %s on the hub", tw.DeviceID, got.ConnectionState, tw.ConnectionState)
			}
		}

		start := time.Now()
		method := run(t, e, &hub.Job{JobID: "m", Type: hub.JobDeviceMethod, QueryCondition: "*",
			CloudToDeviceMethod: &hub.MethodRequest{MethodName: "reboot", Payload: json.RawMessage("null"), ResponseTimeoutInSeconds: 30, ConnectTimeoutInSeconds: 30}})
		for id, want := range map[string]string{"on": "", "off": hub.CodeDeviceNotOnline, "disabled": hub.CodeDeviceNotOnline} {
			dj := method[id]
			switch {
			case dj == nil:
				t.Errorf("%s: no device job", id)
			case want == "" && (dj.Status != hub.DeviceJobCompleted || dj.Outcome == nil || dj.Outcome.DeviceMethodResponse == nil || dj.Outcome.DeviceMethodResponse.Status != 200):
				t.Errorf("%s: %+v, want completed with 200", id, dj)
			case want != "" && (dj.Status != hub.DeviceJobFailed || dj.Error == nil || dj.Error.Code != want):
				t.Errorf("%s: %+v, want failed with %s", id, dj, want)
			case want != "" && dj.EndTimeUtc.Sub(start) != 30*time.Second:
				t.Errorf("%s: failed %s after the job started, want after its connect timeout of 30s", id, dj.EndTimeUtc.Sub(start))
			}
		}

		patch := run(t, e, &hub.Job{JobID: "t", Type: hub.JobUpdateTwin, QueryCondition: "*",
			UpdateTwin: &hub.TwinPatch{ETag: "*", Properties: &hub.Properties{Desired: map[string]any{"stamp": 7.0}}}})
		synctest.Wait() // the online device's echo
		for _, tw := range twins {
			id := tw.DeviceID
			if dj := patch[id]; dj == nil || dj.Status != hub.DeviceJobCompleted {
				t.Errorf("%s: twin patch %+v, want completed (the hub stores it whether or not the device is online)", id, dj)
			}
			got, err := e.GetTwin(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if echoed := got.Properties.Reported["stamp"] == 7.0; echoed != (id == "on") {
				t.Errorf("%s: reported %v; only the online device reports the patch back", id, got.Properties.Reported)
			}
		}
	})
}

// run creates job j on e, waits for it to end and returns its device
// jobs by device id.
func run(t *testing.T, e hub.Client, j *hub.Job) map[string]*hub.DeviceJob {
	t.Helper()
	ctx := context.Background()
	job, err := e.CreateJob(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	for job.EndTime == nil {
		if job, err = e.WatchJob(ctx, j.JobID, job); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]*hub.DeviceJob{}
	page, err := e.Query(ctx, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+j.JobID+"'", hub.QueryOptions{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range page.Items {
		var dj hub.DeviceJob
		if err := json.Unmarshal(it, &dj); err != nil {
			t.Fatal(err)
		}
		out[dj.DeviceID] = &dj
	}
	return out
}
