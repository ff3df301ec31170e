package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// TestDeviceJobDoc: the direct encoding of a device-job record is
// byte for byte queryDoc's, for records with every field, none, and the
// strings and payloads that encoders treat specially.
func TestDeviceJobDoc(t *testing.T) {
	at := func(sec int) *hub.Time {
		return &hub.Time{Time: time.Date(2026, 11, 25, 10, 0, 0, 123456700, time.UTC).Add(time.Duration(sec) * time.Second)}
	}
	odd := "<&> \"quoted\" \\ \u2028 ☃ \x01 \xff\xfe ok \xe2\x82"
	recs := []*hub.DeviceJob{
		{DeviceID: "d", JobID: "j", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobPending},
		{DeviceID: odd, JobID: odd, JobType: hub.JobUpdateTwin, Status: hub.DeviceJobRunning, StartTimeUtc: at(1), CreatedDateTimeUtc: at(0), LastUpdatedDateTimeUtc: at(1)},
		{DeviceID: "d", JobID: "j", JobType: hub.JobUpdateTwin, Status: hub.DeviceJobCompleted, Outcome: &hub.DeviceJobOutcome{}, EndTimeUtc: at(2)},
		{DeviceID: "d", JobID: "j", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobFailed, Outcome: &hub.DeviceJobOutcome{},
			Error: &hub.DeviceJobError{Code: hub.CodeGatewayTimeout, Description: odd}},
		{DeviceID: "d", JobID: "j", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobCompleted, StartTimeUtc: &hub.Time{}},
	}
	for _, p := range []string{`null`, `{"locked":true,"b":[1,2.50,1e21,12345678901234567890,-0]}`, `"<&>"`, `{"z":{"y":{"x":"\u00e9"}},"a":null}`, `42`, `[]`} {
		for _, st := range []int{200, 500, -1} {
			recs = append(recs, &hub.DeviceJob{DeviceID: "d", JobID: "j", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobCompleted,
				Outcome: &hub.DeviceJobOutcome{DeviceMethodResponse: &hub.MethodResponse{Status: st, Payload: json.RawMessage(p)}}})
		}
	}
	for i, dj := range recs {
		doc, err := Doc(dj)
		if err != nil {
			t.Fatal(err)
		}
		wantB, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		want := string(wantB)
		got, err := DeviceJobDoc(dj)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("record %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
