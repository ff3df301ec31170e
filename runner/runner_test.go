package runner_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/store/sqlite"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
	"github.com/iotjobs/iotjobs/simulate"
)

const fleetYAML = `
version: 1
seed: 7
groups:
  - ids: [myDeviceId]
    tags: {building: "43"}
    methods:
      lockDoor: {status: 200, payload: {locked: true}}
      broken: {status: 500}
    desired: {report: true}
  - ids: "b43-{n:02}"
    count: 4
    tags: {building: "43"}
    methods:
      lockDoor: {status: 200}
      broken: {status: 500}
  - ids: [gone]
    tags: {building: "44"}
    offline: 100%
    methods:
      lockDoor: {status: 200}
`

// newHub is an engine on SQLite with the fleet above as in-process devices.
func newHub(t *testing.T, clk clock.Clock) hub.Client {
	t.Helper()
	return newFleetHub(t, clk, fleetYAML)
}

// newFleetHub is newHub with another fleet.
func newFleetHub(t *testing.T, clk clock.Clock, fleet string) hub.Client {
	t.Helper()
	ctx := context.Background()
	fl, diags := simulate.Parse("fleet.yaml", []byte(fleet))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hub.db"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := simulate.NewHub(ctx, fl.Devices(), clk, simulate.HubOptions{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		st.Close()
	})
	return e
}

func parse(t *testing.T, src string) *plan.Plan {
	t.Helper()
	p, diags := plan.Parse("plan.yaml", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("plan: %v", diags)
	}
	return p
}

const header = "version: 1\nname: test\nsteps:\n"

func TestApply(t *testing.T) {
	tests := []struct {
		name       string
		steps      string
		wantStatus string
		wantErr    bool
		check      func(t *testing.T, r *runner.Report)
	}{
		{
			name: "tutorial",
			steps: `  - name: lock-door
    query: "deviceId IN ['myDeviceId']"
    method: {name: lockDoor, responseTimeout: 15s}
  - name: set-building
    query: "deviceId IN ['myDeviceId']"
    twin: {desired: {building: "43", floor: 3}}
`,
			wantStatus: runner.StatusSucceeded,
			check: func(t *testing.T, r *runner.Report) {
				s := r.Steps[0]
				if s.Status != "completed" || len(s.Devices) != 1 || !s.Devices[0].Succeeded ||
					s.Devices[0].Outcome.DeviceMethodResponse.Status != 200 || string(s.Devices[0].Outcome.DeviceMethodResponse.Payload) != `{"locked":true}` {
					t.Errorf("lock-door %+v", s)
				}
				if r.Steps[1].Status != "completed" || r.Steps[1].Type != "scheduleUpdateTwin" {
					t.Errorf("set-building %+v", r.Steps[1])
				}
			},
		},
		{
			name: "offline device fails the step and skips what follows",
			steps: `  - name: lock
    query: "tags.building = '44'"
    method: {name: lockDoor}
  - name: after
    query: "*"
    method: {name: lockDoor}
`,
			wantStatus: runner.StatusFailed, wantErr: true,
			check: func(t *testing.T, r *runner.Report) {
				s := r.Steps[0]
				if s.Status != runner.StepFailed || s.Devices[0].Error == nil || s.Devices[0].Error.Code != hub.CodeDeviceNotOnline {
					t.Errorf("lock %+v", s)
				}
				if r.Steps[1].Status != runner.StepSkipped || len(r.Steps[1].JobIDs) != 0 {
					t.Errorf("after %+v", r.Steps[1])
				}
			},
		},
		{
			name: "device status 500 is not a success",
			steps: `  - name: broken
    query: "tags.building = '43'"
    method: {name: broken}
`,
			wantStatus: runner.StatusFailed, wantErr: true,
			check: func(t *testing.T, r *runner.Report) {
				s := r.Steps[0]
				if s.Status != runner.StepFailed || s.DeviceJobStatistics.SucceededCount != 5 || s.Success == nil || s.Success.SuccessRate != 0 {
					t.Errorf("broken %+v %+v", s, s.Success)
				}
			},
		},
		{
			name: "success criteria below 100%",
			steps: `  - name: most
    query: "*"
    method: {name: lockDoor}
    success: {minSuccessRate: 80%}
`,
			wantStatus: runner.StatusSucceeded,
			check: func(t *testing.T, r *runner.Report) {
				s := r.Steps[0]
				if s.Status != "completed" || len(s.Devices) != 6 || s.Success.SuccessRate < 0.83 || s.Success.SuccessRate > 0.84 {
					t.Errorf("most %+v %+v", s, s.Success)
				}
			},
		},
		{
			name: "a query that matches nothing fails",
			steps: `  - name: nobody
    query: "tags.building = '99'"
    method: {name: lockDoor}
`,
			wantStatus: runner.StatusFailed, wantErr: true,
			check: func(t *testing.T, r *runner.Report) {
				if s := r.Steps[0]; s.Status != runner.StepFailed || !strings.Contains(s.Reason, "matched no devices") {
					t.Errorf("nobody %+v", s)
				}
			},
		},
		{
			name: "unless the plan expects it",
			steps: `  - name: nobody
    query: "tags.building = '99'"
    method: {name: lockDoor}
    success: {minSuccessRate: 0%}
`,
			wantStatus: runner.StatusSucceeded,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &runner.Runner{Hub: newHub(t, clock.Real()), Clock: clock.Real(), HubName: "test"}
			rep, err := r.Apply(t.Context(), parse(t, header+tc.steps))
			checkSchema(t, rep)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			var sf *runner.StepFailedError
			if tc.wantErr && !errors.As(err, &sf) {
				t.Fatalf("err %T %v, want *StepFailedError", err, err)
			}
			if rep.Status != tc.wantStatus || rep.ReportVersion != 1 || rep.Hub != "test" || rep.Plan.SHA256 == "" {
				t.Fatalf("report status %q (want %q), %+v", rep.Status, tc.wantStatus, rep)
			}
			if tc.check != nil {
				tc.check(t, rep)
			}
		})
	}
}

func TestApplyFutureStartOnVirtualClock(t *testing.T) {
	clk := clock.NewVirtual(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	h := newHub(t, clk)
	p := parse(t, header+`  - name: later
    query: "deviceId = 'myDeviceId'"
    method: {name: lockDoor}
    start: +2h
`)
	r := &runner.Runner{Hub: h, Clock: clk}
	done := applying(t, r, p)
	// The job waits for its start time; move the clock there once the
	// engine has armed its timer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if at, ok := clk.Peek(); ok && at.Equal(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job never armed its start timer")
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	clk.AdvanceTo(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	rep := awaitReport(t, t.Context(), done)
	s := rep.Steps[0]
	if rep.Status != runner.StatusSucceeded || s.StartTime == nil || !s.StartTime.Equal(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("report %s, step %+v", rep.Status, s)
	}
}

func TestApplyInterrupted(t *testing.T) {
	h := newHub(t, clock.Real())
	p := parse(t, header+`  - name: forever
    query: "*"
    method: {name: lockDoor}
    start: +1h
  - name: next
    query: "*"
    method: {name: lockDoor}
`)
	ctx, cancel := context.WithCancel(t.Context())
	obs := &startObserver{started: make(chan string, 1)}
	r := &runner.Runner{Hub: h, Clock: clock.Real(), Observer: obs}
	done := make(chan error, 1)
	var rep *runner.Report
	go func() {
		var err error
		rep, err = r.Apply(ctx, p)
		done <- err
	}()
	jobID := <-obs.started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if rep.Status != runner.StatusCancelled || rep.Steps[0].Status != "cancelled" || rep.Steps[1].Status != runner.StepSkipped {
		t.Fatalf("report %s, steps %+v %+v", rep.Status, rep.Steps[0], rep.Steps[1])
	}
	j, err := h.GetJob(context.Background(), jobID)
	if err != nil || j.Status != hub.JobCancelled {
		t.Fatalf("hub job after the interrupt: %+v %v", j, err)
	}
}

type startObserver struct{ started chan string }

func (o *startObserver) StepStarted(_ *plan.Step, id string) { o.started <- id }
func (o *startObserver) JobChanged(*plan.Step, *hub.Job)     {}
func (o *startObserver) StepFinished(*runner.StepReport)     {}
func (o *startObserver) Finish(*runner.Report) error         { return nil }

// applying runs r.Apply(p) in the background; the channel gets its report.
func applying(t *testing.T, r *runner.Runner, p *plan.Plan) <-chan *runner.Report {
	t.Helper()
	done := make(chan *runner.Report, 1)
	go func() {
		rep, _ := r.Apply(t.Context(), p)
		done <- rep
	}()
	return done
}

// awaitReport waits for a report from applying until ctx ends, and checks
// it against the report schema.
func awaitReport(t *testing.T, ctx context.Context, done <-chan *runner.Report) *runner.Report {
	t.Helper()
	select {
	case rep := <-done:
		checkSchema(t, rep)
		return rep
	case <-ctx.Done():
		t.Fatal("the plan did not finish")
		return nil
	}
}
