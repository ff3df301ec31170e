package hubd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// The job lifecycle of azure-contract.md §1.1, driven through hub.Client:
// every case runs against the engine and against the REST client.

// checkStatistics compares a finished job's deviceJobStatistics with its
// per-device records, which must be one final record per device.
func checkStatistics(ctx context.Context, t *testing.T, c hub.Client, j *hub.Job) map[string]*hub.DeviceJob {
	t.Helper()
	rows := deviceJobs(ctx, t, c, j.JobID)
	want := hub.DeviceJobStatistics{DeviceCount: len(rows)}
	for id, dj := range rows {
		switch dj.Status {
		case hub.DeviceJobCompleted:
			want.SucceededCount++
		case hub.DeviceJobFailed, hub.DeviceJobCanceled:
			want.FailedCount++
		default:
			t.Errorf("job %s, device %s: status %q after the job ended", j.JobID, id, dj.Status)
		}
	}
	if j.DeviceJobStatistics == nil || *j.DeviceJobStatistics != want {
		t.Errorf("job %s: deviceJobStatistics %+v, records say %+v", j.JobID, j.DeviceJobStatistics, want)
	}
	return rows
}

// testJobDefaults: a job created with only the required fields gets the
// contract's defaults, and its times are in order.
func testJobDefaults(t *testing.T, e *env) {
	ctx := testCtx(t, 20*time.Second)
	c := e.c
	created, err := c.CreateJob(ctx, &hub.Job{JobID: "defaults", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor"}})
	must(t, "create job", err)
	if created.Status != hub.JobQueued && created.Status != hub.JobRunning {
		t.Errorf("created job status %q, want queued (or already running)", created.Status)
	}
	j := waitJob(ctx, t, c, "defaults")
	m := j.CloudToDeviceMethod
	if j.MaxExecutionTimeInSeconds != hub.DefaultMaxExecutionTime || m == nil ||
		m.ResponseTimeoutInSeconds != hub.DefaultResponseTimeout || m.ConnectTimeoutInSeconds != 0 {
		t.Errorf("defaults: maxExecutionTimeInSeconds %d, method %+v; want 3600, response timeout 30, connect timeout 0", j.MaxExecutionTimeInSeconds, m)
	}
	if j.CreatedTime == nil || j.StartTime == nil || j.EndTime == nil ||
		j.StartTime.Before(j.CreatedTime.Time) || j.EndTime.Before(j.StartTime.Time) ||
		j.StartTime.Sub(j.CreatedTime.Time) > 5*time.Second {
		t.Errorf("times: created %v start %v end %v; want start = now (null startTime) and end after it", j.CreatedTime, j.StartTime, j.EndTime)
	}
	if j.Status != hub.JobCompleted || j.QueryCondition != "deviceId = 'lock-ok'" || j.Type != hub.JobDeviceMethod {
		t.Errorf("job %+v", j)
	}
	checkStatistics(ctx, t, c, j)
}

// testJobTimeouts: a device slower than the response timeout fails with
// GatewayTimeout (the job completes); a job whose maxExecutionTime passes
// first fails, its device with JobMaxExecutionTimeExceeded.
func testJobTimeouts(t *testing.T, e *env) {
	ctx := testCtx(t, 30*time.Second)
	c := e.c
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "response-timeout", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "slow", ResponseTimeoutInSeconds: hub.MinResponseTimeout}})
	must(t, "create job", err)
	_, err = c.CreateJob(ctx, &hub.Job{JobID: "max-time", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'",
		MaxExecutionTimeInSeconds: 1, CloudToDeviceMethod: &hub.MethodRequest{MethodName: "slow", ResponseTimeoutInSeconds: 60}})
	must(t, "create job", err)

	j := waitJob(ctx, t, c, "response-timeout")
	rows := checkStatistics(ctx, t, c, j)
	if dj := rows["lock-ok"]; j.Status != hub.JobCompleted || dj == nil || dj.Status != hub.DeviceJobFailed || dj.Error == nil || dj.Error.Code != hub.CodeGatewayTimeout {
		t.Errorf("response timeout: job %s, record %+v; want completed, the device failed with %s", j.Status, dj, hub.CodeGatewayTimeout)
	}
	j = waitJob(ctx, t, c, "max-time")
	rows = checkStatistics(ctx, t, c, j)
	if dj := rows["lock-ok"]; j.Status != hub.JobFailed || j.FailureReason == "" || dj == nil || dj.Status != hub.DeviceJobFailed ||
		dj.Error == nil || dj.Error.Code != "JobMaxExecutionTimeExceeded" {
		t.Errorf("max execution time: job %s (%q), record %+v; want failed, the device failed with JobMaxExecutionTimeExceeded", j.Status, j.FailureReason, dj)
	}
}

// testJobConnectTimeout: with connectTimeoutInSeconds the job waits for
// an offline device, which answers once it connects.
func testJobConnectTimeout(t *testing.T, e *env) {
	ctx := testCtx(t, 30*time.Second)
	c := e.c
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "wait-for-it", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-offline'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor", ConnectTimeoutInSeconds: 20}})
	must(t, "create job", err)
	running := waitJobStatus(ctx, t, c, "wait-for-it", hub.JobRunning)
	if s := running.DeviceJobStatistics; s == nil || s.DeviceCount != 1 {
		t.Fatalf("running job statistics %+v", s)
	}
	connectOffline(ctx, t, e)
	j := waitJob(ctx, t, c, "wait-for-it")
	rows := checkStatistics(ctx, t, c, j)
	if dj := rows["lock-offline"]; j.Status != hub.JobCompleted || dj == nil || dj.Status != hub.DeviceJobCompleted ||
		dj.Outcome == nil || dj.Outcome.DeviceMethodResponse == nil || dj.Outcome.DeviceMethodResponse.Status != 200 {
		t.Errorf("job %s, record %+v; want the device to answer once connected", j.Status, dj)
	}
}

// testJobCancelInFlight: cancel answers "cancelled" at once; the call in
// flight finishes, and the job's endTime comes after it.
func testJobCancelInFlight(t *testing.T, e *env) {
	ctx := testCtx(t, 30*time.Second)
	c := e.c
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "cancel-running", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "pause"}})
	must(t, "create job", err)
	var last *hub.Job
	for last == nil || last.DeviceJobStatistics == nil || last.DeviceJobStatistics.RunningCount == 0 {
		last, err = c.WatchJob(ctx, "cancel-running", last)
		must(t, "watch job", err)
		if last.EndTime != nil {
			t.Fatalf("job ended before it could be cancelled: %+v", last)
		}
	}
	cancelled, err := c.CancelJob(ctx, "cancel-running")
	must(t, "cancel", err)
	if cancelled.Status != hub.JobCancelled {
		t.Errorf("cancel answered %q, want %q", cancelled.Status, hub.JobCancelled)
	}
	j := waitJob(ctx, t, c, "cancel-running")
	rows := checkStatistics(ctx, t, c, j)
	if dj := rows["lock-ok"]; j.Status != hub.JobCancelled || dj == nil || dj.Status != hub.DeviceJobCompleted {
		t.Errorf("job %s, record %+v; want cancelled, with the call in flight completed", j.Status, dj)
	}
}

// testJobTwinETag: a twin job with the twin's current etag applies; one
// with a stale etag fails the device with PreconditionFailed.
func testJobTwinETag(t *testing.T, e *env) {
	ctx := testCtx(t, 20*time.Second)
	c := e.c
	tw, err := c.GetTwin(ctx, "echo")
	must(t, "get twin", err)
	for _, tc := range []struct {
		id, etag string
		want     hub.DeviceJobStatus
	}{
		{"etag-current", tw.ETag, hub.DeviceJobCompleted},
		{"etag-stale", tw.ETag, hub.DeviceJobFailed}, // the first job changed the twin
	} {
		_, err := c.CreateJob(ctx, &hub.Job{JobID: tc.id, Type: hub.JobUpdateTwin, QueryCondition: "deviceId = 'echo'",
			UpdateTwin: &hub.TwinPatch{ETag: tc.etag, Tags: map[string]any{"job": tc.id}}})
		must(t, "create job", err)
		j := waitJob(ctx, t, c, tc.id)
		rows := checkStatistics(ctx, t, c, j)
		dj := rows["echo"]
		if j.Status != hub.JobCompleted || dj == nil || dj.Status != tc.want {
			t.Errorf("%s: job %s, record %+v; want the device %s", tc.id, j.Status, dj, tc.want)
			continue
		}
		if tc.want == hub.DeviceJobFailed && (dj.Error == nil || dj.Error.Code != hub.CodePreconditionFailed) {
			t.Errorf("%s: error %+v, want %s", tc.id, dj.Error, hub.CodePreconditionFailed)
		}
	}
	after, err := c.GetTwin(ctx, "echo")
	must(t, "get twin", err)
	if after.Tags["job"] != "etag-current" || after.Version != tw.Version+1 {
		t.Errorf("twin after both jobs: tags %v version %d (was %d); want the first job's patch only", after.Tags, after.Version, tw.Version)
	}
}

// testJobLimits: job ids are checked; one job more than the hub runs at
// once is refused with 429 ThrottlingMaxActiveJobCountExceeded until one
// ends.
func testJobLimits(t *testing.T, e *env) {
	ctx := testCtx(t, 20*time.Second)
	c := e.c
	method := &hub.MethodRequest{MethodName: "lockDoor"}
	_, err := c.CreateJob(ctx, &hub.Job{JobID: strings.Repeat("j", 129), Type: hub.JobDeviceMethod, QueryCondition: "*", CloudToDeviceMethod: method})
	wantCode(t, "job id of 129 characters", err, hub.CodeArgumentInvalid)

	later := hub.NewTime(time.Now().Add(time.Hour))
	var ids []string
	for i := 0; ; i++ {
		id := fmt.Sprintf("held-%02d", i)
		_, err := c.CreateJob(ctx, &hub.Job{JobID: id, Type: hub.JobDeviceMethod, QueryCondition: "*", StartTime: later, CloudToDeviceMethod: method})
		if err != nil {
			wantCode(t, "one job too many", err, hub.CodeTooManyJobs)
			if st := hub.HTTPStatus(hub.ErrorCode(err)); st != 429 {
				t.Errorf("one job too many: HTTP status %d, want 429", st)
			}
			break
		}
		ids = append(ids, id)
		if i > 100 {
			t.Fatal("more than 100 jobs at once and no 429")
		}
	}
	if len(ids) == 0 {
		t.Fatal("no job accepted")
	}
	_, err = c.GetJob(ctx, fmt.Sprintf("held-%02d", len(ids)))
	wantCode(t, "the refused job", err, hub.CodeJobNotFound)
	_, err = c.CancelJob(ctx, ids[0])
	must(t, "cancel", err)
	waitJob(ctx, t, c, ids[0])
	_, err = c.CreateJob(ctx, &hub.Job{JobID: "after-one-ended", Type: hub.JobDeviceMethod, QueryCondition: "*", StartTime: later, CloudToDeviceMethod: method})
	must(t, "create a job after one ended", err)
	for _, id := range append(ids[1:], "after-one-ended") {
		_, err := c.CancelJob(ctx, id)
		must(t, "cancel", err)
	}
}

// testJobRecordsQuery: per-device records answer devices.jobs queries on
// their fields.
func testJobRecordsQuery(t *testing.T, e *env) {
	ctx := testCtx(t, 20*time.Second)
	c := e.c
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "rec", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor"}})
	must(t, "create job", err)
	checkStatistics(ctx, t, c, waitJob(ctx, t, c, "rec"))
	for _, tc := range []struct {
		where string
		want  []string
	}{
		{"devices.jobs.jobId = 'rec' AND devices.jobs.status = 'failed'", []string{"lock-offline"}},
		{"devices.jobs.jobId = 'rec' AND devices.jobs.error.code = 'DeviceNotOnline'", []string{"lock-offline"}},
		{"devices.jobs.jobId = 'rec' AND devices.jobs.outcome.deviceMethodResponse.status = 500", []string{"lock-fail"}},
		{"devices.jobs.jobId = 'rec' AND devices.jobs.jobType = 'scheduleDeviceMethod' AND devices.jobs.status = 'completed'", []string{"echo", "lock-fail", "lock-ok"}},
		{"devices.jobs.jobId = 'rec' AND IS_DEFINED(devices.jobs.endTimeUtc)", []string{"echo", "lock-fail", "lock-offline", "lock-ok"}},
	} {
		items, _, _ := queryAll(ctx, t, c, "SELECT * FROM devices.jobs WHERE "+tc.where, 0)
		var got []string
		for _, it := range items {
			var dj hub.DeviceJob
			if err := json.Unmarshal(it, &dj); err != nil {
				t.Fatal(err)
			}
			got = append(got, dj.DeviceID)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("WHERE %s: %v, want %v", tc.where, got, tc.want)
		}
	}
}
