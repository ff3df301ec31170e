package plan

import (
	"container/heap"
	"encoding/json"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/plan/diag"
)

// Version is the only plan format version this package understands.
const Version = 1

// Built-in defaults, overridden by a plan's defaults: section and then by
// a step's own values.
const (
	DefaultMaxExecutionTime = time.Hour
	DefaultResponseTimeout  = 30 * time.Second
	DefaultConnectTimeout   = 0
)

// Azure IoT Hub's limits on direct-method timeouts, which we enforce so
// that a plan valid here is valid against Azure too.
const (
	MinResponseTimeout = 5 * time.Second
	MaxResponseTimeout = 300 * time.Second
	MaxConnectTimeout  = 300 * time.Second
)

// Plan is a decoded plan file: what to run, in which order. It is plain
// data; every node keeps the [diag.Range] it came from so that later
// stages (the runner, the dry-run) can point at the file too.
type Plan struct {
	Version     int
	Name        string
	Description string
	// File is the file name given to [Parse]; SHA256 is the hex digest of
	// the source bytes, so a report names exactly what ran.
	File   string
	SHA256 string
	// Defaults are the effective defaults: built-in values overridden by
	// the file's defaults: section. They are already copied into Steps.
	Defaults Defaults
	Steps    []*Step
	// Vars are the plan's variables after ${env.X} expansion, with the
	// values given by [WithVars] in place of the declared ones.
	Vars map[string]string
	// Overrides are the values given by [WithVars] (nil when none), which
	// a saved plan records so that it parses its source as it was planned.
	Overrides map[string]string
	Range     diag.Range

	// nodes holds the decoded value of each path, so that later checks
	// (a policy) can point at the file as validation does (RangeOf).
	nodes map[string]*diag.Node
	keys  map[string]*diag.Node
}

// RangeOf returns where the value at path (e.g. "steps[1].method.name",
// "steps[0].twin.desired.security") is in the file: that value, or the
// nearest enclosing value the file has, or the whole plan. A plan built
// in code has only paths, so its ranges are the zero Range.
func (p *Plan) RangeOf(path string) diag.Range {
	for {
		if n := p.nodes[path]; n != nil {
			// An object or a list starts on a line of its own: its key
			// says better where it is.
			if k := p.keys[path]; k != nil && (n.IsMapping() || n.IsList()) {
				return k.Range()
			}
			return n.Range()
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return p.Range
		}
		path = path[:i]
	}
}

// Defaults are values that steps inherit unless they set their own.
type Defaults struct {
	MaxExecutionTime time.Duration
	ResponseTimeout  time.Duration
	ConnectTimeout   time.Duration
	Range            diag.Range
}

// Step is one job (or, with rollout batches, one series of jobs) against
// the devices its query selects. Exactly one of Method and Twin is set.
type Step struct {
	Name        string
	Description string
	// Query is a twin query WHERE condition, or "*" for every device.
	Query string
	// After lists the steps that must finish first. When the file does not
	// say, it is the previous step (none for the first).
	After  []string
	Method *Method
	Twin   *Twin
	// Start says when a one-off step starts; it is the zero Start when
	// Cron is set. A step with neither starts now.
	Start Start
	// Cron is a standard 5-field cron expression; each occurrence runs the
	// step once. CronPolicy holds the long form's other fields.
	Cron             string
	CronPolicy       CronPolicy
	MaxExecutionTime time.Duration
	Rollout          *Rollout
	Abort            *Abort
	Success          *Success
	// Retry runs the devices that failed again; Verify is a condition
	// each device's twin must come to satisfy; OnlyPassed limits the step
	// to the devices that passed every step it is after.
	Retry      *Retry
	Verify     *Verify
	OnlyPassed bool
	// Window limits when the step may start devices: a maintenance window
	// for the whole step, or one per device read from a twin tag.
	Window *Window
	// Analysis is a health gate judged after each batch; Rollback undoes
	// the step when it (or a later step) aborts the plan.
	Analysis *Analysis
	Rollback *Rollback
	// Devices, when not nil, is the fixed device set of a saved plan: the
	// step acts on these devices instead of those its query matches now.
	Devices []string
	Range   diag.Range

	// path is the step's place in the file ("steps[2]"), for diagnostics.
	path                string
	cronLong            bool
	afterSet            bool
	maxExecutionTimeSet bool
}

// Method invokes a direct method on each device.
type Method struct {
	Name string
	// Payload is the JSON request payload, "null" when absent.
	Payload         json.RawMessage
	ResponseTimeout time.Duration
	ConnectTimeout  time.Duration
	Range           diag.Range

	responseTimeoutSet bool
	connectTimeoutSet  bool
}

// Twin patches each device's twin: desired properties and/or tags, with
// an optional ETag precondition ("*" means any).
type Twin struct {
	ETag string
	// Desired and Tags are JSON merge patches; nil means absent (at least
	// one is set).
	Desired map[string]any
	Tags    map[string]any
	Range   diag.Range
}

// Start is when a one-off step starts: now, at a fixed time, or a delay
// after the plan starts. At most one field is set; the zero Start means now.
type Start struct {
	Now   bool
	At    time.Time
	After time.Duration
}

// Resolve returns the start time for a plan that starts at now.
func (s Start) Resolve(now time.Time) time.Time {
	switch {
	case !s.At.IsZero():
		return s.At
	case s.After > 0:
		return now.Add(s.After)
	default:
		return now
	}
}

// Rollout spreads a step over batches of growing size with a pause
// between them, and caps the device-operation rate. The runner enforces
// it, so it also works against hubs without rollouts (Azure IoT Hub).
type Rollout struct {
	// Batches are cumulative targets: each batch brings the number of
	// devices reached up to its Percent of the matched devices or to its
	// Count. They are increasing and of one kind.
	Batches      []Batch
	Pause        time.Duration
	MaxPerMinute int
	// Exponential starts devices at a rate that grows (AWS IoT Jobs'
	// exponential rollout); nil for none.
	Exponential *Exponential
	Range       diag.Range
}

// Exponential is a start rate that grows by IncrementFactor each time
// NotifiedDevices devices have been started, or SucceededDevices have
// succeeded, since the last increase (whichever criteria are set).
type Exponential struct {
	BaseRatePerMinute int
	IncrementFactor   float64
	NotifiedDevices   int
	SucceededDevices  int
	Range             diag.Range
}

// Batch is one rollout batch: a percentage (0 < Percent ≤ 100) of the
// matched devices or a device Count (> 0). Exactly one is non-zero.
type Batch struct {
	Percent float64
	Count   int
}

// Abort stops a step when too many devices fail.
type Abort struct {
	// FailureRate is the fraction (0..1) of failed devices above which the
	// step is aborted, once at least MinExecuted devices have finished;
	// Failures, instead, a number of failed devices that aborts it. One of
	// the two is set (HasRate says which).
	FailureRate float64
	Failures    int
	HasRate     bool
	MinExecuted int
	// On lists the failure classes that count (AbortClasses); all of them
	// by default.
	On    []string
	Range diag.Range
}

// Success is what a step must reach to count as succeeded.
type Success struct {
	// MinSuccessRate is the fraction (0..1) of devices that must succeed.
	MinSuccessRate float64
	Range          diag.Range
}

// Overlap policies of a cron step (as Kubernetes CronJob's).
const (
	ForbidOverlap  = "forbid"  // an occurrence due while the last still runs is skipped
	ReplaceOverlap = "replace" // it cancels the one still running
	AllowOverlap   = "allow"   // both run
)

// CronPolicy is how a cron step's occurrences are placed and overlap.
type CronPolicy struct {
	// Timezone is the IANA zone the schedule is read in ("" is UTC).
	Timezone string
	// Concurrency is ForbidOverlap (the default), ReplaceOverlap or
	// AllowOverlap.
	Concurrency string
	// StartingDeadline: an occurrence that cannot start within this long
	// of its time is missed (0: no deadline).
	StartingDeadline time.Duration
}

// Location is the zone the schedule is read in.
func (c CronPolicy) Location() *time.Location {
	if c.Timezone == "" {
		return time.UTC
	}
	if loc, err := time.LoadLocation(c.Timezone); err == nil {
		return loc
	}
	return time.UTC
}

// Window is a maintenance window: it opens at every occurrence of Cron
// (read in Timezone) and stays open for Duration. With FromTag, each
// device has its own, held in the twin at that path (e.g.
// "tags.maintenance") as {cron, duration, timezone}.
type Window struct {
	Cron     string
	Duration time.Duration
	Timezone string
	FromTag  string
	Range    diag.Range
}

// Failure classes: why a device did not succeed. Retry takes on the
// first three (a device's job failed); abort counts all five.
const (
	FailedClass   = "failed"   // the device failed otherwise (e.g. a method answered non-2xx)
	TimedOutClass = "timedOut" // the device did not answer in time
	OfflineClass  = "offline"  // the device was not connected
	VerifyClass   = "verify"   // the device did not come to satisfy verify in time
	AnalysisClass = "analysis" // the device failed the health condition of a batch whose analysis failed
)

// RetryClasses are the failure classes retry may take on; AbortClasses
// those abort counts (its default).
var (
	RetryClasses = []string{FailedClass, TimedOutClass, OfflineClass}
	AbortClasses = []string{FailedClass, TimedOutClass, OfflineClass, VerifyClass, AnalysisClass}
)

// Rollback triggers.
const (
	OnAbort     = "abort"     // the step itself aborted
	OnPlanAbort = "planAbort" // a later step aborted the plan
)

// Rollback undoes what a step did when the plan is aborted: a twin step
// restores, etag-guarded, the values its patch replaced; a method step
// calls a compensating Method on the devices whose call succeeded.
type Rollback struct {
	// On lists the triggers (OnAbort, OnPlanAbort); default [abort].
	On []string
	// Method is the compensating method of a method step (nil for a twin
	// step).
	Method *Method
	Range  diag.Range
}

// Analysis is a health gate: after each batch (and its verify), wait
// Bake, then count the batch's devices whose twins satisfy Query; with a
// Control, count the same over as many untouched devices with the same
// tags. A failing analysis aborts the step.
type Analysis struct {
	Query string
	Bake  time.Duration
	// MinPassRate (0..1) is the share of the batch that must pass: 100%
	// by default, 0% by default with a control (the comparison is the
	// test). With a control, a floor the control misses too is not held
	// against the batch: that is the fleet's trouble, not the update's.
	MinPassRate float64
	Control     *Control
	Range       diag.Range
}

// Control is the cohort a batch's health is compared with: devices the
// step has not touched, with the same values at MatchTags (tag paths
// under tags, e.g. "model", "location.region").
type Control struct {
	MatchTags []string
	// MaxDegradation (0..1, percentage points) is how much lower the
	// batch's pass rate may be than the control's; 5% by default.
	MaxDegradation float64
	Range          diag.Range
}

// Retry runs a step's failed devices again, as new jobs over them.
type Retry struct {
	// Attempts is how many times more a device may be tried (at least 1).
	Attempts int
	// Backoff is the wait before each retry.
	Backoff time.Duration
	// On lists the failure classes retried (default: all three).
	On    []string
	Range diag.Range
}

// Verify is a post-condition: every device the step succeeded on must
// satisfy Query (a twin query condition) within Timeout, or it fails.
type Verify struct {
	Query   string
	Timeout time.Duration
	Range   diag.Range
}

// Step returns the step with the given name, or nil.
func (p *Plan) Step(name string) *Step {
	for _, s := range p.Steps {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Order returns the steps in execution order: a topological order of the
// "after" graph in which, among the steps that are ready, the one earlier
// in the file goes first. Steps caught in a cycle (only possible in a plan
// that failed validation) come last, in file order.
func (p *Plan) Order() []*Step {
	index := make(map[string]int, len(p.Steps))
	for i, s := range p.Steps {
		if _, dup := index[s.Name]; !dup {
			index[s.Name] = i
		}
	}
	waiting := make([]int, len(p.Steps))
	next := make([][]int, len(p.Steps))
	for i, s := range p.Steps {
		for _, a := range s.After {
			if j, ok := index[a]; ok && j != i {
				waiting[i]++
				next[j] = append(next[j], i)
			}
		}
	}
	// Ready steps wait in a min-heap of file indexes, so that among the
	// steps that may run the earliest in the file goes first.
	ready := &intHeap{}
	for i := range p.Steps {
		if waiting[i] == 0 {
			heap.Push(ready, i)
		}
	}
	done := make([]bool, len(p.Steps))
	order := make([]*Step, 0, len(p.Steps))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		done[i] = true
		order = append(order, p.Steps[i])
		for _, n := range next[i] {
			if waiting[n]--; waiting[n] == 0 {
				heap.Push(ready, n)
			}
		}
	}
	for i, s := range p.Steps {
		if !done[i] {
			order = append(order, s)
		}
	}
	return order
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
