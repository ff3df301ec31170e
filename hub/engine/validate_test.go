package engine_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
)

// The engine checks what it is handed itself, whoever calls it (the REST
// server, the runner in-process, the dry-run): ids, etags, nil and
// malformed arguments and job limits are refused before anything is
// stored. These tests call it directly, with what the REST server would
// refuse first, and check that nothing changed.

// engineState is the engine's state as text, for before/after checks.
func engineState(t *testing.T, e *engine.Engine) string {
	t.Helper()
	ctx := context.Background()
	devs, err := e.ListDevices(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var twins []*hub.Twin
	for _, d := range devs {
		tw, err := e.GetTwin(ctx, d.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		twins = append(twins, tw)
	}
	jobs, _, err := e.QueryJobs(ctx, hub.JobQuery{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal([]any{devs, twins, jobs})
	return string(b)
}

func TestEngineRefusesBadArguments(t *testing.T) {
	clk := clock.NewVirtual(t0)
	e := newEngine(t, newTestBus(), clk)
	ctx := context.Background()
	mustCreate(t, e, "dev1")
	if _, err := e.UpdateTwin(ctx, "dev1", &hub.TwinPatch{Tags: map[string]any{"site": "A"}}, ""); err != nil {
		t.Fatal(err)
	}
	method := &hub.MethodRequest{MethodName: "m"}
	job := func(mod func(j *hub.Job)) *hub.Job {
		j := &hub.Job{JobID: "j", Type: hub.JobDeviceMethod, QueryCondition: "*", CloudToDeviceMethod: method}
		mod(j)
		return j
	}
	twinJob := func(u *hub.TwinPatch) *hub.Job {
		return &hub.Job{JobID: "j", Type: hub.JobUpdateTwin, QueryCondition: "*", UpdateTwin: u}
	}
	at := func(d time.Duration) *hub.Time { return &hub.Time{Time: t0.Add(d)} }
	desired := func(m map[string]any) *hub.TwinPatch {
		return &hub.TwinPatch{Properties: &hub.Properties{Desired: m}}
	}
	tests := []struct {
		name string
		call func() error
		code string
		in   string // substring of the message
	}{
		// Nil and empty arguments.
		{"nil device", func() error { _, err := e.CreateDevice(ctx, nil); return err }, hub.CodeArgumentInvalid, "missing"},
		{"nil device update", func() error { _, err := e.UpdateDevice(ctx, nil, "*"); return err }, hub.CodeArgumentInvalid, "missing"},
		{"nil patch", func() error { _, err := e.UpdateTwin(ctx, "dev1", nil, "*"); return err }, hub.CodeArgumentInvalid, "missing"},
		{"nil twin", func() error { _, err := e.ReplaceTwin(ctx, "dev1", nil, "*"); return err }, hub.CodeArgumentInvalid, "missing"},
		{"nil job", func() error { _, err := e.CreateJob(ctx, nil); return err }, hub.CodeArgumentInvalid, "missing"},
		{"no bulk entries", func() error { _, err := e.ImportDevices(ctx, nil); return err }, hub.CodeArgumentInvalid, "no devices"},

		// Ids, on every operation that takes one.
		{"create device id", func() error { _, err := e.CreateDevice(ctx, &hub.Device{DeviceID: "a\x00b"}); return err }, hub.CodeArgumentInvalid, "byte 0x00"},
		{"update device id", func() error { _, err := e.UpdateDevice(ctx, &hub.Device{DeviceID: "a\nb"}, "*"); return err }, hub.CodeArgumentInvalid, "byte 0x0A"},
		{"get device id", func() error { _, err := e.GetDevice(ctx, "a\x7fb"); return err }, hub.CodeArgumentInvalid, "byte 0x7F"},
		{"delete device id", func() error { return e.DeleteDevice(ctx, "a/b", "*") }, hub.CodeArgumentInvalid, `'/'`},
		{"get twin id", func() error { _, err := e.GetTwin(ctx, ""); return err }, hub.CodeArgumentInvalid, "empty"},
		{"update twin id", func() error {
			_, err := e.UpdateTwin(ctx, strings.Repeat("d", 129), &hub.TwinPatch{Tags: map[string]any{"a": 1.0}}, "*")
			return err
		}, hub.CodeArgumentInvalid, "129 characters"},
		{"replace twin id", func() error { _, err := e.ReplaceTwin(ctx, "é", &hub.TwinPatch{}, "*"); return err }, hub.CodeArgumentInvalid, "byte 0xC3"},
		{"create job id", func() error { _, err := e.CreateJob(ctx, job(func(j *hub.Job) { j.JobID = "a\x01b" })); return err }, hub.CodeArgumentInvalid, "byte 0x01"},
		{"create job id with #", func() error { _, err := e.CreateJob(ctx, job(func(j *hub.Job) { j.JobID = "a#b" })); return err }, hub.CodeArgumentInvalid, `'#'`},
		{"get job id", func() error { _, err := e.GetJob(ctx, "a?b"); return err }, hub.CodeArgumentInvalid, `'?'`},
		{"cancel job id", func() error { _, err := e.CancelJob(ctx, "a%b"); return err }, hub.CodeArgumentInvalid, `'%'`},
		{"watch job id", func() error { _, err := e.WatchJob(ctx, "a b", nil); return err }, hub.CodeArgumentInvalid, "a space"},

		// Etags.
		{"update device etag", func() error { _, err := e.UpdateDevice(ctx, &hub.Device{DeviceID: "dev1"}, `"a b"`); return err }, hub.CodeArgumentInvalid, "etag"},
		{"delete device etag", func() error { return e.DeleteDevice(ctx, "dev1", `""`) }, hub.CodeArgumentInvalid, "empty"},
		{"update twin etag", func() error {
			_, err := e.UpdateTwin(ctx, "dev1", &hub.TwinPatch{Tags: map[string]any{"a": 1.0}}, "W/\"x\"")
			return err
		}, hub.CodeArgumentInvalid, "etag"},
		{"update twin patch etag", func() error {
			_, err := e.UpdateTwin(ctx, "dev1", &hub.TwinPatch{ETag: "a\tb", Tags: map[string]any{"a": 1.0}}, "")
			return err
		}, hub.CodeArgumentInvalid, "etag"},
		{"replace twin etag", func() error { _, err := e.ReplaceTwin(ctx, "dev1", &hub.TwinPatch{}, `"`); return err }, hub.CodeArgumentInvalid, "etag"},
		{"twin job etag", func() error {
			_, err := e.CreateJob(ctx, twinJob(&hub.TwinPatch{ETag: "a,b", Tags: map[string]any{"a": 1.0}}))
			return err
		}, hub.CodeArgumentInvalid, "updateTwin.etag"},

		// Job numbers and times.
		{"max execution time past a year", func() error {
			_, err := e.CreateJob(ctx, job(func(j *hub.Job) { j.MaxExecutionTimeInSeconds = hub.MaxJobExecutionTime + 1 }))
			return err
		}, hub.CodeArgumentInvalid, "maxExecutionTimeInSeconds must be within [1; 31536000]"},
		{"max execution time overflowing a duration", func() error {
			_, err := e.CreateJob(ctx, job(func(j *hub.Job) { j.MaxExecutionTimeInSeconds = 1 << 62 }))
			return err
		}, hub.CodeArgumentInvalid, "maxExecutionTimeInSeconds"},
		{"negative max execution time", func() error {
			_, err := e.CreateJob(ctx, job(func(j *hub.Job) { j.MaxExecutionTimeInSeconds = -1 }))
			return err
		}, hub.CodeArgumentInvalid, "It was -1"},
		{"start too far ahead", func() error {
			_, err := e.CreateJob(ctx, job(func(j *hub.Job) { j.StartTime = at(hub.MaxJobStartAhead + time.Second) }))
			return err
		}, hub.CodeArgumentInvalid, "startTime"},
		{"deadline passed", func() error {
			_, err := e.CreateJob(ctx, job(func(j *hub.Job) { j.StartTime, j.MaxExecutionTimeInSeconds = at(-time.Hour), 3600 }))
			return err
		}, hub.CodeArgumentInvalid, "could never run"},
		{"method response timeout", func() error {
			_, err := e.CreateJob(ctx, job(func(j *hub.Job) {
				j.CloudToDeviceMethod = &hub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 1e10}
			}))
			return err
		}, hub.CodeArgumentInvalid, "[5; 300]"},

		// Twin job patches, checked as PATCH /twins checks them.
		{"twin job $ key", func() error { _, err := e.CreateJob(ctx, twinJob(desired(map[string]any{"$x": 1.0}))); return err }, hub.CodeArgumentInvalid, "updateTwin: property \"$x\" is read-only"},
		{"twin job key with a dot", func() error {
			_, err := e.CreateJob(ctx, twinJob(&hub.TwinPatch{Tags: map[string]any{"a.b": 1.0}}))
			return err
		}, hub.CodeArgumentInvalid, "tags.a.b"},
		{"twin job too deep", func() error {
			var v any = 1.0
			for range 12 {
				v = map[string]any{"k": v}
			}
			_, err := e.CreateJob(ctx, twinJob(desired(v.(map[string]any))))
			return err
		}, hub.CodeArgumentInvalid, "nested"},
		{"twin job too large", func() error {
			big := map[string]any{}
			for _, k := range "abcdefghi" {
				big[string(k)] = strings.Repeat("x", 1000)
			}
			_, err := e.CreateJob(ctx, twinJob(&hub.TwinPatch{Tags: big}))
			return err
		}, hub.CodeMessageTooLarge, "updateTwin: tags is"},
		{"twin job integer out of range", func() error {
			_, err := e.CreateJob(ctx, twinJob(desired(map[string]any{"n": float64(1 << 53)})))
			return err
		}, hub.CodeArgumentInvalid, "4503599627370495"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := engineState(t, e)
			err := tc.call()
			wantCode(t, err, tc.code)
			if !strings.Contains(hub.ErrorMessage(err), tc.in) {
				t.Errorf("message %q does not contain %q", hub.ErrorMessage(err), tc.in)
			}
			if after := engineState(t, e); after != before {
				t.Errorf("the refused call changed the engine:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestEngineEmptyPatchChangesNothing: a patch with nothing in it (what a
// JSON null would decode to, were it let through) leaves the twin's etag
// and versions alone.
func TestEngineEmptyPatchChangesNothing(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.NewVirtual(t0))
	ctx := context.Background()
	mustCreate(t, e, "dev1")
	before := engineState(t, e)
	for _, p := range []*hub.TwinPatch{{}, {Properties: &hub.Properties{}}, {Tags: map[string]any{}}, {Properties: &hub.Properties{Reported: map[string]any{"a": 1.0}}}} {
		if _, err := e.UpdateTwin(ctx, "dev1", p, "*"); err != nil {
			t.Fatal(err)
		}
	}
	if after := engineState(t, e); after != before {
		t.Errorf("empty patches changed the twin:\nbefore %s\nafter  %s", before, after)
	}
}

// TestTwinJobSameErrorAsPatch: the job and the PATCH refuse a patch with
// the same code and message.
func TestTwinJobSameErrorAsPatch(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.NewVirtual(t0))
	ctx := context.Background()
	mustCreate(t, e, "dev1")
	for _, p := range []*hub.TwinPatch{
		{Tags: map[string]any{"$b": 1.0, "$a": 1.0}},
		{Properties: &hub.Properties{Desired: map[string]any{"o": map[string]any{"a b": 1.0}}}},
		{Properties: &hub.Properties{Desired: map[string]any{"s": strings.Repeat("s", 4097)}}},
	} {
		_, perr := e.UpdateTwin(ctx, "dev1", p, "*")
		_, jerr := e.CreateJob(ctx, &hub.Job{JobID: "j", Type: hub.JobUpdateTwin, QueryCondition: "*", UpdateTwin: p})
		if perr == nil || hub.ErrorCode(jerr) != hub.ErrorCode(perr) || hub.ErrorMessage(jerr) != "updateTwin: "+hub.ErrorMessage(perr) {
			t.Errorf("PATCH: %v\njob:   %v", perr, jerr)
		}
	}
}
