package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan"
)

// ReportVersion is the version of the report's JSON shape; it changes only
// when a field changes meaning or disappears.
const ReportVersion = 1

// Report statuses.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
	StatusError     = "error"
	// StatusStopped: apply stopped before touching anything (its dry-run
	// predicted a failure, or the operator did not confirm); the report
	// is the dry-run's.
	StatusStopped = "stopped"
	// StatusPlanned is the status of a dry-run that only read the hub
	// (plan --no-simulate): it predicts nothing, so it has no verdict.
	StatusPlanned = "planned"
)

// NotRun is the report of a run of p that ended before any step began,
// with status and why (Error): an unreachable hub, a refused
// certificate, an interrupt. Every step is skipped with that reason, so
// that CI archives a report whatever happened.
func NotRun(p *plan.Plan, hubName string, at time.Time, status, why string) *Report {
	rep := &Report{ReportVersion: ReportVersion, Plan: PlanRef{Name: p.Name, File: p.File, SHA256: p.SHA256},
		Hub: hubName, Status: status, Error: why, StartedAt: at.UTC(), FinishedAt: at.UTC(), Steps: []*StepReport{}}
	for _, s := range p.Order() {
		sr := &StepReport{Name: s.Name, Type: string(jobType(s)), QueryCondition: s.Query, JobIDs: []string{}, Devices: []DeviceResult{},
			Status: StepSkipped, Reason: "not run: " + why}
		sr.finish(0)
		rep.Steps = append(rep.Steps, sr)
	}
	return rep
}

// StepStatus is a step's status in a report: how its hub job ended, or
// the runner's verdict on it.
type StepStatus string

// Step statuses.
const (
	StepCompleted StepStatus = StepStatus(hub.JobCompleted) // its jobs completed and it met its success criteria
	StepFailed    StepStatus = "failed"                     // a job failed, or the step missed its criteria, or a pre-flight fails
	StepCancelled StepStatus = StepStatus(hub.JobCancelled) // the run was interrupted, its job cancelled
	StepAborted   StepStatus = "aborted"                    // its abort thresholds or analysis stopped it
	StepSkipped   StepStatus = "skipped"                    // a step it runs after did not succeed, or the plan was aborted
	StepPlanned   StepStatus = "planned"                    // a preview's: it would run
)

// Report is the outcome of running a plan (README "Report format").
type Report struct {
	ReportVersion int       `json:"reportVersion"`
	Plan          PlanRef   `json:"plan"`
	Hub           string    `json:"hub"`
	DryRun        bool      `json:"dryRun"`
	Status        string    `json:"status"`
	Error         string    `json:"error,omitempty"`
	StartedAt     time.Time `json:"startedAt"`
	FinishedAt    time.Time `json:"finishedAt"`
	// Simulation says, on a dry-run's report, what the plan was played
	// against and what the simulation took for granted.
	Simulation *Simulation `json:"simulation,omitempty"`
	// Occurrence is set on the reports of apply --watch: which occurrence
	// of which cron step the run was.
	Occurrence *OccurrenceReport `json:"occurrence,omitempty"`
	// Policy is how the plan measured against its policy (README
	// "Guardrails (policy)"); absent when no policy was checked.
	Policy *PolicyReport `json:"policy,omitempty"`
	Steps  []*StepReport `json:"steps"`
}

// Policy results, for people and for tools that render a report.
const (
	PolicyPassed     = "passed"     // no rule broken
	PolicyAdvisories = "advisories" // only advisory rules broken
	PolicyOverridden = "overridden" // soft rules broken, overridden with a reason; no hard one
	PolicyFailed     = "failed"     // a hard rule, or a soft one without an override
)

// PolicyReport is a plan's check against a policy file.
type PolicyReport struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	// Result is PolicyPassed, PolicyAdvisories, PolicyOverridden or
	// PolicyFailed.
	Result     string            `json:"result"`
	Violations []PolicyViolation `json:"violations"`
	// Unchecked names the rules the command could not check (validate
	// has no devices; README "Guardrails (policy)").
	Unchecked []string `json:"unchecked,omitempty"`
	// Override is --override-policy's: why soft rules were overridden.
	Override *PolicyOverride `json:"override,omitempty"`
}

// PolicyViolation is one rule a plan breaks, at the plan's value that
// breaks it.
type PolicyViolation struct {
	Rule    string `json:"rule"`
	Kind    string `json:"kind"`
	Level   string `json:"level"`
	Step    string `json:"step,omitempty"`
	Message string `json:"message"`
	// Position is FILE:LINE:COL in the plan.
	Position string `json:"position"`
	// Overridden is true for a soft violation that --override-policy let
	// pass.
	Overridden bool `json:"overridden,omitempty"`
}

// PolicyOverride is who overrode the policy's soft rules, and why.
type PolicyOverride struct {
	Reason string `json:"reason"`
	By     string `json:"by,omitempty"`
}

// Summary is the policy result in one line: "passed", "failed: 2 hard,
// 1 soft (3 violations)", "overridden (REASON): 1 soft".
func (pr *PolicyReport) Summary() string {
	if pr == nil {
		return ""
	}
	counts := map[string]int{}
	for _, v := range pr.Violations {
		counts[v.Level]++
	}
	var parts []string
	for _, l := range []string{"hard", "soft", "advisory"} {
		if counts[l] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[l], l))
		}
	}
	out := pr.Result
	if pr.Result == PolicyOverridden && pr.Override != nil {
		out += fmt.Sprintf(" (%s)", pr.Override.Reason)
	}
	if len(parts) > 0 {
		out += ": " + strings.Join(parts, ", ")
	}
	return out
}

// Simulation is how a dry-run came to its predictions: what it played
// the plan against and what it assumed, so that a reader can tell a
// prediction from a fact. The job ids of a simulated report are those of
// the simulation's in-memory hub, and start with [SimulatedJobPrefix].
type Simulation struct {
	// Against is "fleet FILE" (a fleet file's simulated devices) or
	// "hub NAME" (copies of that hub's twins).
	Against string `json:"against"`
	// Simulated is false when the dry-run only read the hub (plan
	// --no-simulate): then no step has a predicted outcome.
	Simulated bool `json:"simulated"`
	// Assumptions are what the simulation took for granted, in words,
	// only those that bear on this run.
	Assumptions []string `json:"assumptions"`
}

// SimulatedJobPrefix starts every job id of a simulated run (see
// Runner.JobIDPrefix): those jobs never existed on a hub.
const SimulatedJobPrefix = "sim-"

// PlanRef names the plan that ran, exactly (its SHA-256).
type PlanRef struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// StepReport is the outcome of one step.
type StepReport struct {
	Name           string   `json:"name"`
	Type           string   `json:"type"`
	JobIDs         []string `json:"jobIds"`
	QueryCondition string   `json:"queryCondition"`
	// Status is the hub job's final status (completed, failed,
	// cancelled), or "failed" when the job completed but the step missed
	// its success criteria, "aborted" when its abort thresholds stopped
	// it, or "skipped" when a step it runs after did not succeed (or the
	// plan was aborted).
	Status              StepStatus              `json:"status"`
	Reason              string                  `json:"reason,omitempty"`
	StartTime           *time.Time              `json:"startTime,omitempty"`
	EndTime             *time.Time              `json:"endTime,omitempty"`
	DeviceJobStatistics hub.DeviceJobStatistics `json:"deviceJobStatistics"`
	Success             *SuccessReport          `json:"success,omitempty"`
	// Batches are the rollout batches (steps with a rollout or abort
	// thresholds), Abort how the step measured against its thresholds.
	Batches []BatchReport `json:"batches,omitempty"`
	Abort   *AbortReport  `json:"abort,omitempty"`
	Retries []RetryReport `json:"retries,omitempty"`
	// Noop counts the devices a twin step left alone because their twins
	// complied already (their status is "noop"), and that did not fail
	// verify afterwards (as Summary.Noop).
	Noop int `json:"noop,omitempty"`
	// Summary is the runner's verdict on the step's devices, counted
	// once each; every view (the human summary, progress, JUnit) shows it.
	Summary Summary `json:"summary"`
	// Analysis is the health analysis of each batch; Rollback what the
	// step keeps to undo itself (a twin step's replaced values, a method
	// step's compensating method) and how its rollback went.
	Analysis []*AnalysisReport `json:"analysis,omitempty"`
	Rollback *RollbackReport   `json:"rollback,omitempty"`
	// Preview is the dry-run's view of the step (iotjobs plan).
	Preview *StepPreview `json:"preview,omitempty"`
	// Occurrences are, in a dry-run, the simulated runs of a cron step (and
	// of the steps after it) over the horizon; the rest of the step's
	// report is its first run.
	Occurrences []OccurrenceOutcome `json:"occurrences,omitempty"`
	Devices     []DeviceResult      `json:"devices"`

	// live is the step's progress while it runs (progress.go).
	live *Progress
}

// SuccessReport is how a step measured against its success criteria.
type SuccessReport struct {
	MinSuccessRate float64 `json:"minSuccessRate"`
	SuccessRate    float64 `json:"successRate"`
	Met            bool    `json:"met"`
}

// DeviceResult is one device's result in a step. Succeeded is the
// runner's verdict: the hub completed the device's job and, for a method,
// the device answered with a 2xx status.
type DeviceResult struct {
	DeviceID  string                `json:"deviceId"`
	Status    string                `json:"status"`
	Succeeded bool                  `json:"succeeded"`
	Outcome   *hub.DeviceJobOutcome `json:"outcome,omitempty"`
	Error     *hub.DeviceJobError   `json:"error,omitempty"`
	// Verified says whether the device came to satisfy the step's verify
	// condition (absent without verify, or when the device failed before).
	Verified *bool `json:"verified,omitempty"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// OccurrenceOutcome is one simulated run of a cron step, in short.
type OccurrenceOutcome struct {
	ScheduledAt time.Time  `json:"scheduledAt"`
	Status      StepStatus `json:"status"`
	Reason      string     `json:"reason,omitempty"`
	StartTime   *time.Time `json:"startTime,omitempty"`
	EndTime     *time.Time `json:"endTime,omitempty"`
	Succeeded   int        `json:"succeeded"`
	Failed      int        `json:"failed"`
	Noop        int        `json:"noop"`
}

// Outcome sums a step report up as one occurrence scheduled at at.
func (sr *StepReport) Outcome(at time.Time) OccurrenceOutcome {
	o := OccurrenceOutcome{ScheduledAt: at, Status: sr.Status, Reason: sr.Reason, StartTime: sr.StartTime, EndTime: sr.EndTime}
	for _, d := range sr.Devices {
		switch {
		case d.Status == DeviceNoop:
			o.Noop++
		case d.Succeeded:
			o.Succeeded++
		default:
			o.Failed++
		}
	}
	return o
}
