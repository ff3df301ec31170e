package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan"
)

// The first part of the dry-run (iotjobs plan): what a plan would do,
// read from the hub without changing anything on it — the devices each
// step's query matches now, the twin diff of twin steps, the timeline of
// batches and cron occurrences, and a pre-flight check of each step
// against the hub's device-operation rate. It only queries (reads); it
// creates no job, patches no twin and calls no method. Simulating the
// devices' answers comes with the virtual-time dry-run (issue 6).

// DefaultHorizon is how far ahead a dry-run looks for cron occurrences.
const DefaultHorizon = 7 * 24 * time.Hour

// PreviewOptions tune Preview.
type PreviewOptions struct {
	// OpsPerSecond is the hub's device-operation rate, for the pre-flight
	// (0: unknown, no pre-flight).
	OpsPerSecond float64
	// Horizon is how far ahead cron occurrences are listed (default 7
	// days); Samples how many matched device ids are shown (default 5).
	Horizon time.Duration
	Samples int
}

// StepPreview is what Preview finds for one step.
type StepPreview struct {
	Matched  int        `json:"matched"`
	Sample   []string   `json:"sampleDevices"`
	TwinDiff []PathDiff `json:"twinDiff,omitempty"`
	// Noop counts the matched twins that already comply with the whole
	// patch (a twin step would change nothing on them).
	Noop      int        `json:"noop,omitempty"`
	Timeline  Timeline   `json:"timeline"`
	Preflight *Preflight `json:"preflight,omitempty"`
	// After and OnlyPassed repeat the step's ordering: it starts once the
	// steps it is after end, and with onlyPassed runs only on the devices
	// that passed them (which the dry-run cannot know yet).
	After      []string `json:"after,omitempty"`
	OnlyPassed bool     `json:"onlyPassed,omitempty"`
	// Window repeats the step's maintenance window, which its start
	// waits for.
	Window *PreviewWindow `json:"window,omitempty"`
	// Method is the direct method a method step calls, and StartAt a
	// step's fixed start time (start: at), so that a rendering of the
	// report can say what the step does and when without the plan.
	Method  string     `json:"method,omitempty"`
	StartAt *time.Time `json:"startAt,omitempty"`
	// Cron and CronTimezone are a cron step's schedule and the zone it
	// is read in; Abort says the step has abort thresholds.
	Cron         string `json:"cron,omitempty"`
	CronTimezone string `json:"cronTimezone,omitempty"`
	Abort        bool   `json:"abort,omitempty"`
}

// PreviewWindow is a step's maintenance window: a schedule of openings
// and how long each lasts, or the twin tag that holds each device's own.
type PreviewWindow struct {
	Cron            string `json:"cron,omitempty"`
	DurationSeconds int64  `json:"durationSeconds,omitempty"`
	Timezone        string `json:"timezone,omitempty"`
	FromTag         string `json:"fromTag,omitempty"`
}

// String is the window for people: "0 3 * * * for 2h0m0s" (and its time
// zone), or "from tags.x".
func (pw *PreviewWindow) String() string {
	if pw.FromTag != "" {
		return "from " + pw.FromTag
	}
	out := fmt.Sprintf("%s for %s", pw.Cron, time.Duration(pw.DurationSeconds)*time.Second)
	if pw.Timezone != "" {
		out += " " + pw.Timezone
	}
	return out
}

// PathDiff is, for one path a twin step sets, how many matched twins it
// would change and from what, and how many already hold the value.
type PathDiff struct {
	Path   string       `json:"path"`
	To     any          `json:"to"`
	Comply int          `json:"comply"`
	Change int          `json:"change"`
	From   []ValueCount `json:"from"`
}

// ValueCount is a current value and how many twins hold it ("undefined"
// for none).
type ValueCount struct {
	Value any `json:"value"`
	Count int `json:"count"`
}

// Timeline is when a step would run: its start, its batches' sizes and
// starts as far as pauses decide them, and the cron occurrences within
// the horizon. Start is the earliest the step can begin: its start time,
// or its cron's next occurrence, not before the steps it runs after can
// have started (it begins once they end, which only a simulation knows),
// and at its maintenance window's next opening.
type Timeline struct {
	Start       time.Time   `json:"start"`
	Batches     []PlanBatch `json:"batches,omitempty"`
	Occurrences []time.Time `json:"cronOccurrences,omitempty"`
}

// PlanBatch is a rollout batch as planned: its devices and earliest start.
type PlanBatch struct {
	Devices int       `json:"devices"`
	Start   time.Time `json:"start"`
}

// Preflight compares a step's work with the hub's rate.
type Preflight struct {
	OpsPerSecond float64       `json:"opsPerSecond"`
	Needed       time.Duration `json:"neededNanos"`
	Available    time.Duration `json:"availableNanos"`
	OK           bool          `json:"ok"`
	Message      string        `json:"message"`
}

// Preview returns the dry-run report of p as far as it can be read from
// the hub: status "planned" when every step's pre-flight passes (it
// predicts no outcome; MergeDryRun adds a simulation's), else "failed"
// (StepFailedError names the steps).
func (r *Runner) Preview(ctx context.Context, p *plan.Plan, o PreviewOptions) (*Report, error) {
	if o.Horizon <= 0 {
		o.Horizon = DefaultHorizon
	}
	if o.Samples <= 0 {
		o.Samples = 5
	}
	now := r.Clock.Now()
	rep := &Report{
		ReportVersion: ReportVersion,
		Plan:          PlanRef{Name: p.Name, File: p.File, SHA256: p.SHA256},
		Hub:           hubName(r.HubName),
		DryRun:        true,
		StartedAt:     now.UTC(),
		Steps:         []*StepReport{},
	}
	var failed []string
	earliest := map[string]time.Time{} // each step's Timeline.Start
	for _, s := range p.Order() {
		sr := &StepReport{Name: s.Name, Type: string(jobType(s)), QueryCondition: s.Query, JobIDs: []string{}, Devices: []DeviceResult{}, Status: StepPlanned,
			Rollback: newRollbackReport(s)}
		rep.Steps = append(rep.Steps, sr)
		notBefore := now
		for _, a := range s.After {
			if t := earliest[a]; t.After(notBefore) {
				notBefore = t
			}
		}
		pv, err := r.previewStep(ctx, p, s, now, notBefore, o)
		if err != nil {
			rep.Status, rep.Error = StatusError, err.Error()
			rep.FinishedAt = r.Clock.Now().UTC()
			return rep, err
		}
		sr.Preview = pv
		earliest[s.Name] = pv.Timeline.Start
		sr.DeviceJobStatistics.DeviceCount = pv.Matched
		if pv.Preflight != nil && !pv.Preflight.OK {
			sr.Status, sr.Reason = StepFailed, pv.Preflight.Message
			failed = append(failed, s.Name)
		}
	}
	rep.FinishedAt = r.Clock.Now().UTC()
	if len(failed) > 0 {
		rep.Status = StatusFailed
		return rep, &StepFailedError{Steps: failed}
	}
	rep.Status = StatusPlanned
	return rep, nil
}

// previewStep reads what step s would do if the plan started at now; the
// steps it runs after start at notBefore at the earliest.
func (r *Runner) previewStep(ctx context.Context, p *plan.Plan, s *plan.Step, now, notBefore time.Time, o PreviewOptions) (*StepPreview, error) {
	pv := &StepPreview{Sample: []string{}, After: s.After, OnlyPassed: s.OnlyPassed}
	if s.Method != nil {
		pv.Method = s.Method.Name
	}
	if s.Cron != "" {
		pv.Cron, pv.CronTimezone = s.Cron, s.CronPolicy.Location().String()
	}
	pv.Abort = s.Abort != nil
	if at := s.Start.At; !at.IsZero() {
		at = at.UTC()
		pv.StartAt = &at
	}
	if w := s.Window; w != nil {
		pv.Window = &PreviewWindow{Cron: w.Cron, DurationSeconds: int64(w.Duration / time.Second), Timezone: w.Timezone, FromTag: w.FromTag}
	}
	if s.Twin != nil {
		// The diff needs what the patch changes of every matched twin.
		twins, err := r.patchedSections(ctx, s.Query)
		if err != nil {
			return nil, fmt.Errorf("step %s: read its devices: %w", s.Name, err)
		}
		pv.Matched = len(twins)
		for _, t := range twins[:min(len(twins), o.Samples)] {
			pv.Sample = append(pv.Sample, t.DeviceID)
		}
		pv.TwinDiff, pv.Noop = twinDiff(s.Twin, twins)
	} else {
		// A method step needs only how many match, and a few of them.
		n, sample, err := r.countAndSample(ctx, s.Query, o.Samples)
		if err != nil {
			return nil, fmt.Errorf("step %s: count its devices: %w", s.Name, err)
		}
		pv.Matched, pv.Sample = n, sample
	}
	start, err := startTime(s, now, notBefore)
	if err != nil {
		return nil, err
	}
	if s.Cron != "" {
		sched, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return nil, err
		}
		loc := s.CronPolicy.Location()
		for t := sched.Next(now.In(loc)); !t.After(now.Add(o.Horizon)) && len(pv.Timeline.Occurrences) < 100; t = sched.Next(t) {
			pv.Timeline.Occurrences = append(pv.Timeline.Occurrences, t.UTC())
		}
		start = sched.Next(notBefore.In(loc))
	}
	// The runner starts no device outside the step's window: the step
	// begins when it next opens. A window per device (fromTag) has no
	// one opening; the text says so.
	win, err := stepWindow(s)
	if err != nil {
		return nil, fmt.Errorf("step %s: window: %w", s.Name, err)
	}
	if win != nil {
		if open, opens := win.at(start); !open {
			start = opens
		}
	}
	pv.Timeline.Start = start.UTC()
	if s.Rollout != nil && len(s.Rollout.Batches) > 0 {
		at, done := pv.Timeline.Start, 0
		for i, target := range batchTargets(s.Rollout, pv.Matched) {
			if i > 0 {
				at = at.Add(s.Rollout.Pause)
			}
			pv.Timeline.Batches = append(pv.Timeline.Batches, PlanBatch{Devices: target - done, Start: at.UTC()})
			done = target
		}
	}
	if o.OpsPerSecond > 0 {
		pv.Preflight = preflight(s, pv.Matched, o.OpsPerSecond)
	}
	return pv, nil
}

// preflight checks that a step's devices fit its maximum execution time
// (and its window) at the hub's rate. Each job the step runs has the
// step's maxExecutionTime; a rollout's batches each get theirs, so the
// largest batch is what must fit.
func preflight(s *plan.Step, matched int, rate float64) *Preflight {
	largest := matched
	if s.Rollout != nil && len(s.Rollout.Batches) > 0 {
		done := 0
		largest = 0
		for _, t := range batchTargets(s.Rollout, matched) {
			largest = max(largest, t-done)
			done = t
		}
	}
	needed := time.Duration(math.Ceil(float64(largest)/rate*1e9)) * time.Nanosecond
	available, what := s.MaxExecutionTime, "maxExecutionTime"
	if w := s.Window; w != nil && w.FromTag == "" && w.Duration < available {
		available, what = w.Duration, "maintenance window"
	}
	pf := &Preflight{OpsPerSecond: rate, Needed: needed, Available: available, OK: needed <= available}
	if pf.OK {
		pf.Message = fmt.Sprintf("%d devices at %g operations/s take %s, within the %s of %s", largest, rate, round(needed), what, available)
	} else {
		pf.Message = fmt.Sprintf("%d devices at %g operations/s take %s, longer than the %s of %s; raise it, split the step into batches, or raise the hub's rate",
			largest, rate, round(needed), what, available)
	}
	return pf
}

func round(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// countAndSample counts the devices a query matches and returns the first
// few ids (by id).
func (r *Runner) countAndSample(ctx context.Context, query string, n int) (int, []string, error) {
	count, rows := 0, 0
	err := eachRow(ctx, r.Hub, deviceQuery("COUNT() AS n", query), func(row *struct {
		N int `json:"n"`
	}) error {
		count, rows = row.N, rows+1
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	if rows != 1 {
		return 0, nil, fmt.Errorf("the hub answered a COUNT() query with %d rows", rows)
	}
	// One page of TOP n is all that is read.
	page, err := r.Hub.Query(ctx, deviceQuery(fmt.Sprintf("TOP %d deviceId", n), query), hub.QueryOptions{PageSize: n})
	if err != nil {
		return 0, nil, err
	}
	sample := []string{}
	for _, item := range page.Items {
		var row idRow
		if err := json.Unmarshal(item, &row); err != nil {
			return 0, nil, fmt.Errorf("decode query row: %w", err)
		}
		sample = append(sample, row.DeviceID)
	}
	return count, sample, nil
}

// matchedTwins reads the twins a query matches now, in id order.
func (r *Runner) matchedTwins(ctx context.Context, query string) ([]*hub.Twin, error) {
	return ReadTwins(ctx, r.Hub, query)
}

// patchedSections reads, for the devices a query condition matches, what
// a twin patch can change (tags and desired properties): a twin without
// its reported properties, which are most of it. In id order.
func (r *Runner) patchedSections(ctx context.Context, query string) ([]*hub.Twin, error) {
	var out []*hub.Twin
	err := eachRow(ctx, r.Hub, deviceQuery("deviceId, tags, properties.desired", query), func(row *struct {
		DeviceID string         `json:"deviceId"`
		Tags     map[string]any `json:"tags"`
		Desired  map[string]any `json:"desired"`
	}) error {
		out = append(out, &hub.Twin{DeviceID: row.DeviceID, Tags: row.Tags, Properties: hub.Properties{Desired: row.Desired}})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return out, err
}

// ReadTwins reads the twins a query condition ("*" for all) matches now,
// in id order, with queries only.
func ReadTwins(ctx context.Context, c hub.Client, query string) ([]*hub.Twin, error) {
	var out []*hub.Twin
	err := eachRow(ctx, c, deviceQuery("*", query), func(t *hub.Twin) error {
		out = append(out, t)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
	return out, err
}

// leaf is one value a twin patch sets.
type leaf struct {
	path []string // from the twin's root: tags.x or properties.desired.y
	to   any
}

// leaves lists the values a patch sets, depth first in key order; a
// patch value that is an object is merged (JSON merge patch), so only its
// leaves are set; null deletes.
func leaves(prefix []string, m map[string]any) []leaf {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []leaf
	for _, k := range keys {
		p := append(slices.Clone(prefix), k)
		if sub, ok := m[k].(map[string]any); ok && len(sub) > 0 {
			out = append(out, leaves(p, sub)...)
			continue
		}
		out = append(out, leaf{path: p, to: m[k]})
	}
	return out
}

// twinDiff counts, per path the patch sets, the twins that would change
// and from what, and the twins that comply already with all of it.
func twinDiff(patch *plan.Twin, twins []*hub.Twin) ([]PathDiff, int) {
	var ls []leaf
	ls = append(ls, leaves([]string{"tags"}, patch.Tags)...)
	ls = append(ls, leaves([]string{"properties", "desired"}, patch.Desired)...)
	diffs := make([]PathDiff, len(ls))
	from := make([]map[string]*ValueCount, len(ls))
	for i, l := range ls {
		diffs[i] = PathDiff{Path: strings.Join(l.path, "."), To: l.to, From: []ValueCount{}}
		from[i] = map[string]*ValueCount{}
	}
	noop := 0
	for _, t := range twins {
		var doc map[string]any
		b, _ := json.Marshal(t)
		json.Unmarshal(b, &doc)
		all := true
		for i, l := range ls {
			cur, defined := lookup(doc, l.path)
			if complies(cur, defined, l.to) {
				diffs[i].Comply++
				continue
			}
			all = false
			diffs[i].Change++
			var v any = "undefined"
			if defined {
				v = cur
			}
			key, _ := json.Marshal(v)
			vc := from[i][string(key)]
			if vc == nil {
				vc = &ValueCount{Value: v}
				from[i][string(key)] = vc
			}
			vc.Count++
		}
		if all {
			noop++
		}
	}
	for i := range diffs {
		for _, vc := range from[i] {
			diffs[i].From = append(diffs[i].From, *vc)
		}
		slices.SortFunc(diffs[i].From, func(a, b ValueCount) int {
			if a.Count != b.Count {
				return b.Count - a.Count
			}
			ka, _ := json.Marshal(a.Value)
			kb, _ := json.Marshal(b.Value)
			return strings.Compare(string(ka), string(kb))
		})
	}
	return diffs, noop
}

// divergent lists the paths a twin patch sets that the twin does not hold.
func divergent(patch *plan.Twin, t *hub.Twin) []string {
	// The twin came from JSON: its sections are JSON values as they are.
	doc := map[string]any{"tags": t.Tags, "properties": map[string]any{"desired": t.Properties.Desired}}
	var out []string
	for _, l := range append(leaves([]string{"tags"}, patch.Tags), leaves([]string{"properties", "desired"}, patch.Desired)...) {
		cur, defined := lookup(doc, l.path)
		if !complies(cur, defined, l.to) {
			out = append(out, strings.Join(l.path, "."))
		}
	}
	return out
}

func lookup(doc map[string]any, path []string) (any, bool) {
	var cur any = doc
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// complies reports whether a twin's current value already is what the
// patch sets: equal JSON, or absent when the patch deletes (null).
func complies(cur any, defined bool, to any) bool {
	if to == nil {
		return !defined
	}
	if !defined {
		return false
	}
	a, _ := json.Marshal(cur)
	b, _ := json.Marshal(to)
	return string(a) == string(b)
}
