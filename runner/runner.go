package runner

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"

	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/robfig/cron/v3"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/plan"
)

// Runner runs plans on one hub.
type Runner struct {
	// Hub is where jobs run. Required.
	Hub hub.Client
	// Clock is the time source. Required.
	Clock clock.Clock
	// HubName goes into the report ("embedded", or the hub's host name;
	// "unnamed" when empty).
	HubName string
	// Observer is told about progress; nil means none.
	Observer Observer
	// JobIDPrefix starts the id of every job the runner creates: a
	// dry-run's simulation sets SimulatedJobPrefix, so that its report's
	// job ids never pass for a hub's.
	JobIDPrefix string

	reached atomic.Bool // the hub answered once (outage)
}

// Observer receives progress while a plan runs, and the report once the
// run has ended (Finish, called by the caller of Apply or of Watch's
// callback: an observer that streams events writes the report as its
// last; one for people clears its live status and writes the summary).
type Observer interface {
	StepStarted(step *plan.Step, jobID string)
	JobChanged(step *plan.Step, job *hub.Job)
	StepFinished(step *StepReport)
	Finish(rep *Report) error
}

// Apply runs the plan's steps in order and monitors each to the end. It
// returns the report together with a *StepFailedError when a step did not
// succeed, or the hub's error when the hub could not be used; the report
// is complete as far as the run got in every case.
func (r *Runner) Apply(ctx context.Context, p *plan.Plan) (*Report, error) {
	// The hub records the plan with each job it creates (audit log).
	ctx = hub.WithPlan(ctx, hub.PlanRef{Name: p.Name, SHA256: p.SHA256})
	rep := &Report{
		ReportVersion: ReportVersion,
		Plan:          PlanRef{Name: p.Name, File: p.File, SHA256: p.SHA256},
		Hub:           hubName(r.HubName),
		StartedAt:     r.Clock.Now().UTC(),
		Steps:         []*StepReport{},
	}
	planStart := rep.StartedAt
	// Each step runs as soon as every step it is after has ended, so
	// independent steps run at the same time. mu guards what the steps'
	// goroutines share.
	var mu sync.Mutex
	ok := map[string]bool{}
	passed := map[string]map[string]bool{} // step → devices that passed it
	var failed []string
	var runErr error
	abortedAt := ""
	order := p.Order()
	ended := make(map[string]chan struct{}, len(order))
	for _, s := range order {
		ended[s.Name] = make(chan struct{})
		rep.Steps = append(rep.Steps, &StepReport{Name: s.Name, Type: string(jobType(s)), QueryCondition: s.Query, JobIDs: []string{}, Devices: []DeviceResult{},
			Rollback: newRollbackReport(s)})
	}
	var wg sync.WaitGroup
	for i, s := range order {
		sr := rep.Steps[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(ended[s.Name])
			for _, a := range s.After {
				if ch, found := ended[a]; found {
					<-ch
				}
			}
			mu.Lock()
			blocked := blockers(s, ok)
			skip := len(blocked) > 0 || runErr != nil || ctx.Err() != nil || abortedAt != ""
			if skip {
				sr.Status = StepSkipped
				switch {
				case runErr != nil || ctx.Err() != nil:
					sr.Reason = "the run stopped before this step"
				case abortedAt != "":
					sr.Reason = "the plan was aborted at step " + abortedAt
				default:
					sr.Reason = "runs after " + strings.Join(blocked, ", ") + ", which did not succeed"
				}
				failed = append(failed, s.Name)
				sr.finish(0)
			}
			var only map[string]bool
			if s.OnlyPassed {
				only = passedAll(s.After, passed)
			}
			mu.Unlock()
			if skip {
				return
			}
			var err error
			aborted := false
			if controlled(s) {
				aborted, err = r.runControlled(ctx, p, s, planStart, only, sr)
			} else {
				err = r.runStep(ctx, p, s, planStart, sr)
			}
			if sr.Summary.FailedByClass == nil { // it stopped before counting
				sr.finish(max(len(sr.Devices), sr.DeviceJobStatistics.DeviceCount))
			}
			if r.Observer != nil {
				r.Observer.StepFinished(sr)
			}
			mu.Lock()
			defer mu.Unlock()
			if aborted && abortedAt == "" {
				abortedAt = s.Name
			}
			switch {
			case err != nil:
				if runErr == nil {
					runErr = err
				}
				if sr.Status == "" {
					sr.Status = StatusError
					sr.Reason = err.Error()
				}
				failed = append(failed, s.Name)
			case sr.Status == StepCompleted:
				ok[s.Name] = true
			default:
				failed = append(failed, s.Name)
			}
			// A step after this one with onlyPassed runs on the devices
			// this one acted on and that passed: a no-op device was
			// handled by an earlier run, the steps after included (a
			// re-applied rollout reboots nobody again).
			passed[s.Name] = map[string]bool{}
			for _, d := range sr.Devices {
				if d.Succeeded && d.Status != DeviceNoop {
					passed[s.Name][d.DeviceID] = true
				}
			}
		}()
	}
	wg.Wait()
	if abortedAt != "" && ctx.Err() == nil {
		// The plan was aborted: the steps that ran before (or beside) the
		// one that aborted roll back when they ask for it on planAbort,
		// the latest first.
		for i := len(order) - 1; i >= 0; i-- {
			s, sr := order[i], rep.Steps[i]
			if s.Name == abortedAt || s.Rollback == nil || !slices.Contains(s.Rollback.On, plan.OnPlanAbort) || !sr.changedSomething() {
				continue
			}
			if err := r.rollback(ctx, p.Name, s, sr, plan.OnPlanAbort); err != nil && runErr == nil {
				runErr = err
			}
		}
	}
	// Failed steps in plan order, whatever order they ended in.
	slices.SortFunc(failed, func(a, b string) int { return slices.Index(stepNames(order), a) - slices.Index(stepNames(order), b) })
	rep.FinishedAt = r.Clock.Now().UTC()
	switch {
	case ctx.Err() != nil:
		rep.Status = StatusCancelled
		rep.Error = "interrupted"
		return rep, ctx.Err()
	case runErr != nil:
		rep.Status = StatusError
		rep.Error = runErr.Error()
		return rep, runErr
	case len(failed) > 0:
		rep.Status = StatusFailed
		return rep, &StepFailedError{Steps: failed}
	}
	rep.Status = StatusSucceeded
	return rep, nil
}

func stepNames(steps []*plan.Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name
	}
	return out
}

// hubName is the report's hub: the name given, or "unnamed".
func hubName(name string) string {
	if name == "" {
		return "unnamed"
	}
	return name
}

// passedAll is the set of devices that passed every one of steps.
func passedAll(steps []string, passed map[string]map[string]bool) map[string]bool {
	out := map[string]bool{}
	for i, name := range steps {
		for id := range passed[name] {
			if i == 0 {
				out[id] = true
			}
		}
		if i > 0 {
			for id := range out {
				if !passed[name][id] {
					delete(out, id)
				}
			}
		}
	}
	return out
}

// blockers returns the steps s runs after that did not succeed.
func blockers(s *plan.Step, ok map[string]bool) []string {
	var out []string
	for _, a := range s.After {
		if !ok[a] {
			out = append(out, a)
		}
	}
	return out
}

func jobType(s *plan.Step) hub.JobType {
	if s.Method != nil {
		return hub.JobDeviceMethod
	}
	return hub.JobUpdateTwin
}

// jobFor builds the hub job of a step.
func (r *Runner) jobFor(p *plan.Plan, s *plan.Step, start time.Time) *hub.Job {
	id := r.jobID(p.Name, s.Name)
	j := &hub.Job{
		JobID:                     id,
		Type:                      jobType(s),
		QueryCondition:            s.Query,
		StartTime:                 &hub.Time{Time: start.UTC()},
		MaxExecutionTimeInSeconds: int64(s.MaxExecutionTime / time.Second),
	}
	if s.Method != nil {
		payload := s.Method.Payload
		if len(payload) == 0 {
			payload = json.RawMessage("null")
		}
		j.CloudToDeviceMethod = &hub.MethodRequest{
			MethodName:               s.Method.Name,
			Payload:                  payload,
			ResponseTimeoutInSeconds: int(s.Method.ResponseTimeout / time.Second),
			ConnectTimeoutInSeconds:  int(s.Method.ConnectTimeout / time.Second),
		}
	} else {
		et := s.Twin.ETag
		if et == "" {
			et = "*"
		}
		j.UpdateTwin = &hub.TwinPatch{ETag: et, Tags: s.Twin.Tags}
		if s.Twin.Desired != nil {
			j.UpdateTwin.Properties = &hub.Properties{Desired: s.Twin.Desired}
		}
	}
	return j
}

// jobID makes a job id that says where it came from and never collides,
// within the hub's 128 characters.
func (r *Runner) jobID(planName, step string) string {
	id := r.JobIDPrefix + planName + "-" + step
	if len(id) > 90 {
		id = id[:90]
	}
	return id + "-" + uuid.NewString()
}

// startTime resolves when a step starts: its start, or the next
// occurrence of its cron expression.
func startTime(s *plan.Step, planStart, now time.Time) (time.Time, error) {
	if s.Cron != "" {
		sched, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return time.Time{}, fmt.Errorf("step %s: cron %q: %w", s.Name, s.Cron, err)
		}
		// Read in the step's time zone (UTC by default), as --watch and
		// the dry-run read it, not in the machine's.
		return sched.Next(now.In(s.CronPolicy.Location())), nil
	}
	t := s.Start.Resolve(planStart)
	if t.Before(now) {
		t = now
	}
	return t, nil
}

// runStep creates the step's job, follows it to its end, and fills sr
// with its outcome.
func (r *Runner) runStep(ctx context.Context, p *plan.Plan, s *plan.Step, planStart time.Time, sr *StepReport) error {
	start, err := startTime(s, planStart, r.Clock.Now())
	if err != nil {
		return err
	}
	if start.After(r.Clock.Now()) {
		r.phase(s, sr, Progress{Phase: PhaseWaiting, Until: start, Cron: s.Cron})
	} else {
		r.phase(s, sr, Progress{Phase: PhaseRunning})
	}
	job, err := r.runJob(ctx, p, s, s.Query, start, sr)
	if err != nil {
		return err
	}
	sr.Status = StepStatus(job.Status)
	if job.FailureReason != "" {
		sr.Reason = job.FailureReason
	}
	if job.DeviceJobStatistics != nil {
		sr.DeviceJobStatistics = *job.DeviceJobStatistics
	}
	judge(s, sr)
	sr.finish(len(sr.Devices))
	return nil
}

// cancel cancels a hub job on the way out of an interrupted run; the run's
// own context is already done, so it gets a short one of its own.
func (r *Runner) cancel(jobID string) {
	ctx, cancel := r.Clock.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.Hub.CancelJob(ctx, jobID)
}

// judge applies the step's success criteria (default: every device) to a
// completed job.
func judge(s *plan.Step, sr *StepReport) {
	if sr.Status != StepCompleted {
		return
	}
	min := 1.0
	if s.Success != nil {
		min = s.Success.MinSuccessRate
	}
	n, ok := len(sr.Devices), 0
	for _, d := range sr.Devices {
		if d.Succeeded {
			ok++
		}
	}
	// No device at all counts as a 0% success rate: a query that matches
	// nothing is far more often a mistake than a goal. A plan that expects
	// it says so with success.minSuccessRate: 0%.
	rate := 0.0
	if n > 0 {
		rate = float64(ok) / float64(n)
	}
	sr.Success = &SuccessReport{MinSuccessRate: min, SuccessRate: rate, Met: rate >= min}
	switch {
	case sr.Success.Met:
	case n == 0:
		sr.Status = StepFailed
		sr.Reason = "the query matched no devices, so nothing was done (set success.minSuccessRate: 0% if that is expected)"
	default:
		sr.Status = StepFailed
		sr.Reason = fmt.Sprintf("a success rate of %.1f%% is below the step's minSuccessRate of %.1f%%", rate*100, min*100)
	}
}

// deviceResults reads every device's result of a job through the query
// API, as it works against any hub.
func (r *Runner) deviceResults(ctx context.Context, jobID string) ([]DeviceResult, error) {
	out := []DeviceResult{}
	err := eachRow(ctx, r.Hub, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+quote(jobID)+"'", func(dj *hub.DeviceJob) error {
		out = append(out, result(dj))
		return nil
	})
	return out, err
}

func result(dj *hub.DeviceJob) DeviceResult {
	d := DeviceResult{DeviceID: dj.DeviceID, Status: string(dj.Status), Outcome: dj.Outcome, Error: dj.Error}
	d.Succeeded = dj.Status == hub.DeviceJobCompleted
	if d.Succeeded && dj.JobType == hub.JobDeviceMethod {
		resp := dj.Outcome
		d.Succeeded = resp != nil && resp.DeviceMethodResponse != nil &&
			resp.DeviceMethodResponse.Status >= 200 && resp.DeviceMethodResponse.Status < 300
	}
	return d
}

// quote escapes a string for a single-quoted query literal.
func quote(s string) string { return query.Escape(s) }

// changedSomething reports whether a step's rollback has anything to
// undo: twins it patched, or devices whose method call succeeded.
func (sr *StepReport) changedSomething() bool {
	rb := sr.Rollback
	switch {
	case rb == nil:
		return false
	case rb.Method != nil:
		return succeededIn(sr.Devices) > 0
	}
	return len(rb.Saved) > 0
}
