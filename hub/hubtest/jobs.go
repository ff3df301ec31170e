package hubtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

func testJobMethod(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 20*time.Second)
	c := h.Client
	j, err := c.CreateJob(ctx, &hub.Job{
		JobID: "lock-all", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor", Payload: json.RawMessage(`{"pin":1}`), ResponseTimeoutInSeconds: 10},
	})
	Must(t, "create job", err)
	if j.JobID != "lock-all" || j.Type != hub.JobDeviceMethod || j.Status.Terminal() {
		t.Errorf("created job: id %q type %q status %q", j.JobID, j.Type, j.Status)
	}
	done := WaitJob(ctx, t, c, "lock-all")
	want := hub.DeviceJobStatistics{DeviceCount: 4, SucceededCount: 3, FailedCount: 1}
	if done.Status != hub.JobCompleted || done.DeviceJobStatistics == nil || *done.DeviceJobStatistics != want {
		t.Errorf("finished job: status %q statistics %+v, want completed %+v", done.Status, done.DeviceJobStatistics, want)
	}
	if done.EndTime == nil || done.StartTime == nil || done.EndTime.Before(done.StartTime.Time) {
		t.Errorf("finished job: start %v end %v", done.StartTime, done.EndTime)
	}
	got, err := c.GetJob(ctx, "lock-all")
	Must(t, "get job", err)
	if !hub.SameJobState(got, done) {
		t.Errorf("GetJob after the end: %q %+v, WatchJob said %q %+v", got.Status, got.DeviceJobStatistics, done.Status, done.DeviceJobStatistics)
	}

	rows := DeviceJobs(ctx, t, c, "lock-all")
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
		} else if w.id == "lock-ok" && !JSONEqual(t, dj.Outcome.DeviceMethodResponse.Payload, []byte(`{"locked":true}`)) {
			t.Errorf("%s: payload %s", w.id, dj.Outcome.DeviceMethodResponse.Payload)
		}
		if dj.EndTimeUtc == nil || dj.StartTimeUtc == nil {
			t.Errorf("%s: start %v end %v, want both", w.id, dj.StartTimeUtc, dj.EndTimeUtc)
		}
	}

	// A finished job is not cancelled: cancelling it changes nothing.
	after, err := c.CancelJob(ctx, "lock-all")
	Must(t, "cancel finished job", err)
	if after.Status != hub.JobCompleted {
		t.Errorf("cancel of a finished job: status %q, want it to stay completed", after.Status)
	}
}

func testJobUpdateTwin(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 20*time.Second)
	c := h.Client
	before, err := c.GetTwin(ctx, "lock-offline")
	Must(t, "get twin", err)
	_, err = c.CreateJob(ctx, &hub.Job{
		JobID: "fw", Type: hub.JobUpdateTwin, QueryCondition: "tags.x = 'y'",
		UpdateTwin: &hub.TwinPatch{ETag: "*", Tags: map[string]any{"wave": 1.0},
			Properties: &hub.Properties{Desired: map[string]any{"fw": "2.0"}, Reported: map[string]any{"ignored": true}}},
	})
	Must(t, "create job", err)
	done := WaitJob(ctx, t, c, "fw")
	want := hub.DeviceJobStatistics{DeviceCount: 3, SucceededCount: 3}
	if done.Status != hub.JobCompleted || done.DeviceJobStatistics == nil || *done.DeviceJobStatistics != want {
		t.Errorf("finished job: status %q statistics %+v, want completed %+v", done.Status, done.DeviceJobStatistics, want)
	}
	for _, id := range []string{"lock-ok", "lock-fail", "echo"} {
		tw, err := c.GetTwin(ctx, id)
		Must(t, "get twin", err)
		if tw.Properties.Desired["fw"] != "2.0" || tw.Tags["wave"] != 1.0 {
			t.Errorf("%s after the job: desired %v tags %v, want fw 2.0 and wave 1", id, tw.Properties.Desired, tw.Tags)
		}
		if _, has := tw.Properties.Reported["ignored"]; has {
			t.Errorf("%s: the job wrote reported properties: %v", id, tw.Properties.Reported)
		}
	}
	after, err := c.GetTwin(ctx, "lock-offline")
	Must(t, "get twin", err)
	if after.ETag != before.ETag || after.Properties.Desired["fw"] != nil {
		t.Errorf("lock-offline is not matched but changed: etag %q→%q desired %v", before.ETag, after.ETag, after.Properties.Desired)
	}
	// The connected echo device hears the job's desired patch like any
	// other and reports it back.
	WaitTwin(ctx, t, c, "echo", func(tw *hub.Twin) bool { return tw.Properties.Reported["fw"] == "2.0" })

	rows := DeviceJobs(ctx, t, c, "fw")
	if len(rows) != 3 {
		t.Errorf("devices.jobs: %d rows, want 3", len(rows))
	}
	for id, dj := range rows {
		if dj.Status != hub.DeviceJobCompleted || dj.JobType != hub.JobUpdateTwin {
			t.Errorf("%s: status %q type %q", id, dj.Status, dj.JobType)
		}
	}
}

func testJobScheduleCancelList(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 20*time.Second)
	c := h.Client
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "now", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor"}})
	Must(t, "create job", err)
	if j := WaitJob(ctx, t, c, "now"); j.Status != hub.JobCompleted {
		t.Fatalf("job now: %q", j.Status)
	}

	later := hub.NewTime(time.Now().Add(time.Hour))
	_, err = c.CreateJob(ctx, &hub.Job{JobID: "later", Type: hub.JobUpdateTwin, QueryCondition: "*", StartTime: later,
		UpdateTwin: &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"late": true}}}})
	Must(t, "create scheduled job", err)
	sched := WaitJobStatus(ctx, t, c, "later", hub.JobScheduled)
	if sched.StartTime == nil || sched.StartTime.Sub(later.Time).Abs() > time.Second {
		t.Errorf("scheduled job start time %v, want %v", sched.StartTime, later)
	}

	cancelled, err := c.CancelJob(ctx, "later")
	Must(t, "cancel job", err)
	if cancelled.Status != hub.JobCancelled {
		t.Errorf("cancel answered status %q, want %q", cancelled.Status, hub.JobCancelled)
	}
	got, err := c.GetJob(ctx, "later")
	Must(t, "get cancelled job", err)
	if got.Status != hub.JobCancelled {
		t.Errorf("cancelled job reads back as %q", got.Status)
	}
	tw, err := c.GetTwin(ctx, "lock-ok")
	Must(t, "get twin", err)
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

func testJobErrors(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 10*time.Second)
	c := h.Client
	method := &hub.MethodRequest{MethodName: "lockDoor"}
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "dup", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'", CloudToDeviceMethod: method})
	Must(t, "create job", err)

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
		WantCode(t, tc.name, tc.call(), tc.want)
	}
	// None of the refused jobs exists.
	for _, id := range []string{"t1", "t2", "t3", "t4", "t5"} {
		_, err := c.GetJob(ctx, id)
		WantCode(t, "refused job "+id, err, hub.CodeJobNotFound)
	}
}

// The job lifecycle of Azure IoT Hub's jobs (README "The hub"), driven
// through hub.Client.

// checkStatistics compares a finished job's deviceJobStatistics with its
// per-device records, which must be one final record per device.
func checkStatistics(ctx context.Context, t *testing.T, c hub.Client, j *hub.Job) map[string]*hub.DeviceJob {
	t.Helper()
	rows := DeviceJobs(ctx, t, c, j.JobID)
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
func testJobDefaults(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 20*time.Second)
	c := h.Client
	created, err := c.CreateJob(ctx, &hub.Job{JobID: "defaults", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor"}})
	Must(t, "create job", err)
	if created.Status != hub.JobQueued && created.Status != hub.JobRunning {
		t.Errorf("created job status %q, want queued (or already running)", created.Status)
	}
	j := WaitJob(ctx, t, c, "defaults")
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
func testJobTimeouts(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 30*time.Second)
	c := h.Client
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "response-timeout", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "slow", ResponseTimeoutInSeconds: hub.MinResponseTimeout}})
	Must(t, "create job", err)
	_, err = c.CreateJob(ctx, &hub.Job{JobID: "max-time", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'",
		MaxExecutionTimeInSeconds: 1, CloudToDeviceMethod: &hub.MethodRequest{MethodName: "slow", ResponseTimeoutInSeconds: 60}})
	Must(t, "create job", err)

	j := WaitJob(ctx, t, c, "response-timeout")
	rows := checkStatistics(ctx, t, c, j)
	if dj := rows["lock-ok"]; j.Status != hub.JobCompleted || dj == nil || dj.Status != hub.DeviceJobFailed || dj.Error == nil || dj.Error.Code != hub.CodeGatewayTimeout {
		t.Errorf("response timeout: job %s, record %+v; want completed, the device failed with %s", j.Status, dj, hub.CodeGatewayTimeout)
	}
	j = WaitJob(ctx, t, c, "max-time")
	rows = checkStatistics(ctx, t, c, j)
	if dj := rows["lock-ok"]; j.Status != hub.JobFailed || j.FailureReason == "" || dj == nil || dj.Status != hub.DeviceJobFailed ||
		dj.Error == nil || dj.Error.Code != "JobMaxExecutionTimeExceeded" {
		t.Errorf("max execution time: job %s (%q), record %+v; want failed, the device failed with JobMaxExecutionTimeExceeded", j.Status, j.FailureReason, dj)
	}
}

// testJobConnectTimeout: with connectTimeoutInSeconds the job waits for
// an offline device, which answers once it connects.
func testJobConnectTimeout(t *testing.T, h *Harness) {
	needConnect(t, h, "lock-offline cannot come online while the job waits for it")
	ctx := TestCtx(t, 30*time.Second)
	c := h.Client
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "wait-for-it", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-offline'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor", ConnectTimeoutInSeconds: 20}})
	Must(t, "create job", err)
	running := WaitJobStatus(ctx, t, c, "wait-for-it", hub.JobRunning)
	if s := running.DeviceJobStatistics; s == nil || s.DeviceCount != 1 {
		t.Fatalf("running job statistics %+v", s)
	}
	connectOffline(ctx, t, h)
	j := WaitJob(ctx, t, c, "wait-for-it")
	rows := checkStatistics(ctx, t, c, j)
	if dj := rows["lock-offline"]; j.Status != hub.JobCompleted || dj == nil || dj.Status != hub.DeviceJobCompleted ||
		dj.Outcome == nil || dj.Outcome.DeviceMethodResponse == nil || dj.Outcome.DeviceMethodResponse.Status != 200 {
		t.Errorf("job %s, record %+v; want the device to answer once connected", j.Status, dj)
	}
}

// testJobCancelInFlight: cancel answers "cancelled" at once; the call in
// flight finishes, and the job's endTime comes after it.
func testJobCancelInFlight(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 30*time.Second)
	c := h.Client
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "cancel-running", Type: hub.JobDeviceMethod, QueryCondition: "deviceId = 'lock-ok'",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "pause"}})
	Must(t, "create job", err)
	var last *hub.Job
	for last == nil || last.DeviceJobStatistics == nil || last.DeviceJobStatistics.RunningCount == 0 {
		last, err = c.WatchJob(ctx, "cancel-running", last)
		Must(t, "watch job", err)
		if last.EndTime != nil {
			t.Fatalf("job ended before it could be cancelled: %+v", last)
		}
	}
	cancelled, err := c.CancelJob(ctx, "cancel-running")
	Must(t, "cancel", err)
	if cancelled.Status != hub.JobCancelled {
		t.Errorf("cancel answered %q, want %q", cancelled.Status, hub.JobCancelled)
	}
	j := WaitJob(ctx, t, c, "cancel-running")
	rows := checkStatistics(ctx, t, c, j)
	if dj := rows["lock-ok"]; j.Status != hub.JobCancelled || dj == nil || dj.Status != hub.DeviceJobCompleted {
		t.Errorf("job %s, record %+v; want cancelled, with the call in flight completed", j.Status, dj)
	}
}

// testJobTwinETag: a twin job with the twin's current etag applies; one
// with a stale etag fails the device with PreconditionFailed.
func testJobTwinETag(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 20*time.Second)
	c := h.Client
	tw, err := c.GetTwin(ctx, "echo")
	Must(t, "get twin", err)
	for _, tc := range []struct {
		id, etag string
		want     hub.DeviceJobStatus
	}{
		{"etag-current", tw.ETag, hub.DeviceJobCompleted},
		{"etag-stale", tw.ETag, hub.DeviceJobFailed}, // the first job changed the twin
	} {
		_, err := c.CreateJob(ctx, &hub.Job{JobID: tc.id, Type: hub.JobUpdateTwin, QueryCondition: "deviceId = 'echo'",
			UpdateTwin: &hub.TwinPatch{ETag: tc.etag, Tags: map[string]any{"job": tc.id}}})
		Must(t, "create job", err)
		j := WaitJob(ctx, t, c, tc.id)
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
	Must(t, "get twin", err)
	if after.Tags["job"] != "etag-current" || after.Version != tw.Version+1 {
		t.Errorf("twin after both jobs: tags %v version %d (was %d); want the first job's patch only", after.Tags, after.Version, tw.Version)
	}
}

// testJobLimits: job ids are checked; one job more than the hub runs at
// once is refused with 429 ThrottlingMaxActiveJobCountExceeded until one
// ends.
func testJobLimits(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 20*time.Second)
	c := h.Client
	method := &hub.MethodRequest{MethodName: "lockDoor"}
	_, err := c.CreateJob(ctx, &hub.Job{JobID: strings.Repeat("j", 129), Type: hub.JobDeviceMethod, QueryCondition: "*", CloudToDeviceMethod: method})
	WantCode(t, "job id of 129 characters", err, hub.CodeArgumentInvalid)

	later := hub.NewTime(time.Now().Add(time.Hour))
	var ids []string
	for i := 0; ; i++ {
		id := fmt.Sprintf("held-%02d", i)
		_, err := c.CreateJob(ctx, &hub.Job{JobID: id, Type: hub.JobDeviceMethod, QueryCondition: "*", StartTime: later, CloudToDeviceMethod: method})
		if err != nil {
			WantCode(t, "one job too many", err, hub.CodeTooManyJobs)
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
	WantCode(t, "the refused job", err, hub.CodeJobNotFound)
	_, err = c.CancelJob(ctx, ids[0])
	Must(t, "cancel", err)
	WaitJob(ctx, t, c, ids[0])
	_, err = c.CreateJob(ctx, &hub.Job{JobID: "after-one-ended", Type: hub.JobDeviceMethod, QueryCondition: "*", StartTime: later, CloudToDeviceMethod: method})
	Must(t, "create a job after one ended", err)
	for _, id := range append(ids[1:], "after-one-ended") {
		_, err := c.CancelJob(ctx, id)
		Must(t, "cancel", err)
	}
}

// testJobRecordsQuery: per-device records answer devices.jobs queries on
// their fields.
func testJobRecordsQuery(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 20*time.Second)
	c := h.Client
	_, err := c.CreateJob(ctx, &hub.Job{JobID: "rec", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor"}})
	Must(t, "create job", err)
	checkStatistics(ctx, t, c, WaitJob(ctx, t, c, "rec"))
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
		items, _, _ := QueryAll(ctx, t, c, "SELECT * FROM devices.jobs WHERE "+tc.where, 0)
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
