package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/hub"
)

// TestDeviceJobDoc: the direct encoding of a device-job record is
// byte for byte queryDoc's, for records with every field, none, and the
// strings and payloads that encoders treat specially.
func TestDeviceJobDoc(t *testing.T) {
	for i, dj := range sampleDeviceJobs() {
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

// sampleDeviceJobs are records with every field, none, and the strings
// and payloads that encoders treat specially.
func sampleDeviceJobs() []*hub.DeviceJob {
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
	return recs
}

// TestDeviceJobJSON: the direct wire form of a record is json.Marshal's,
// byte for byte where its strings are valid UTF-8, and decodes alike
// where they are not.
func TestDeviceJobJSON(t *testing.T) {
	for i, dj := range sampleDeviceJobs() {
		checkDeviceJobJSON(t, fmt.Sprint("record ", i), dj)
	}
}

func checkDeviceJobJSON(t *testing.T, name string, dj *hub.DeviceJob) {
	t.Helper()
	want, werr := json.Marshal(dj)
	got, gerr := DeviceJobJSON(dj)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%s: DeviceJobJSON error %v, json.Marshal error %v", name, gerr, werr)
	}
	if werr != nil {
		return
	}
	valid := utf8.ValidString(dj.DeviceID + dj.JobID + string(dj.JobType) + string(dj.Status))
	if e := dj.Error; e != nil {
		valid = valid && utf8.ValidString(e.Code+e.Description)
	}
	if valid && string(got) != string(want) {
		t.Errorf("%s:\n got %s\nwant %s", name, got, want)
	}
	var g, w hub.DeviceJob
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %s does not decode: %v", name, got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: decodes to %+v, json.Marshal's to %+v", name, g, w)
	}
}

// FuzzDeviceJobJSON holds DeviceJobJSON to json.Marshal for any strings,
// status and payload.
func FuzzDeviceJobJSON(f *testing.F) {
	f.Add("dev-1", "job", "completed", "DeviceNotOnline", "<&> \xff", 200, []byte(`{"a": [1, 2.50]}`), int64(0), true)
	f.Add("", "", "", "", "", -1, []byte(`nul`), int64(1e18), false)
	f.Fuzz(func(t *testing.T, id, job, status, code, desc string, st int, payload []byte, sec int64, outcome bool) {
		at := &hub.Time{Time: time.Unix(sec%(1<<35), sec%1e9)}
		dj := &hub.DeviceJob{DeviceID: id, JobID: job, JobType: hub.JobDeviceMethod, Status: hub.DeviceJobStatus(status),
			StartTimeUtc: at, LastUpdatedDateTimeUtc: at}
		if outcome {
			dj.Outcome = &hub.DeviceJobOutcome{DeviceMethodResponse: &hub.MethodResponse{Status: st, Payload: payload}}
		} else {
			dj.Error = &hub.DeviceJobError{Code: code, Description: desc}
		}
		checkDeviceJobJSON(t, "fuzzed record", dj)
	})
}
