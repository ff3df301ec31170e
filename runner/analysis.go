package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// A health gate: after a batch (and its verify), the step's analysis
// waits its bake time, then asks the hub how many of the batch's devices
// satisfy a twin condition, and, with a control, how many of a cohort of
// devices the step has not touched, with the same tags, of the batch's
// size. A batch worse than its control by more than maxDegradation fails,
// as does one below minPassRate that its control clears; a shortfall the
// control shares is the fleet's (an incident), not the update's, and does
// not stop the rollout. A failing analysis aborts the step, and its
// devices that failed the condition fail (the analysis class).

// AnalysisReport is the health analysis of one batch.
type AnalysisReport struct {
	Batch       int            `json:"batch"` // 1 for the first
	Query       string         `json:"query"`
	At          time.Time      `json:"at"` // when the health was read, after the bake
	Devices     int            `json:"devices"`
	Passed      int            `json:"passed"`
	PassRate    float64        `json:"passRate"`
	MinPassRate float64        `json:"minPassRate"`
	Control     *ControlReport `json:"control,omitempty"`
	Pass        bool           `json:"pass"`
	Reason      string         `json:"reason"`
	// FailedDevices are the batch's devices that did not satisfy the
	// condition.
	FailedDevices []string `json:"failedDevices"`
}

// ControlReport is how the control cohort of a batch fared.
type ControlReport struct {
	MatchTags      []string `json:"matchTags"`
	DeviceIDs      []string `json:"deviceIds"`
	Passed         int      `json:"passed"`
	PassRate       float64  `json:"passRate"`
	MaxDegradation float64  `json:"maxDegradation"`
}

// analyse runs the step's analysis over batch bi, whose results are
// sr.Devices[first:] and which ends the step's devices at to. It returns
// nil without an analysis.
func (w *wave) analyse(ctx context.Context, bi, first, to int) (*AnalysisReport, error) {
	a, sr := w.s.Analysis, w.sr
	if a == nil {
		return nil, nil
	}
	at := map[string]int{}
	var ids []string
	for i := first; i < len(sr.Devices); i++ {
		if d := sr.Devices[i]; d.Succeeded && d.Status != DeviceNoop {
			at[d.DeviceID] = i
			ids = append(ids, d.DeviceID)
		}
	}
	w.r.phase(w.s, w.sr, Progress{Phase: PhaseAnalysing, Until: w.r.Clock.Now().Add(a.Bake)})
	if err := w.r.sleepUntil(ctx, w.r.Clock.Now().Add(a.Bake)); err != nil {
		return nil, w.r.interrupted(sr, "", err)
	}
	rep := &AnalysisReport{Batch: bi + 1, Query: a.Query, At: w.r.Clock.Now().UTC(), Devices: len(ids), MinPassRate: a.MinPassRate, FailedDevices: []string{}}
	sr.Analysis = append(sr.Analysis, rep)
	passing, err := w.satisfying(ctx, a.Query, ids)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if passing[id] {
			rep.Passed++
		} else {
			rep.FailedDevices = append(rep.FailedDevices, id)
		}
	}
	rep.PassRate = rate(rep.Passed, rep.Devices)
	var control *float64
	if c := a.Control; c != nil && len(ids) > 0 {
		cohort, err := w.controlCohort(ctx, ids, to)
		if err != nil {
			return nil, err
		}
		cr := &ControlReport{MatchTags: c.MatchTags, DeviceIDs: cohort, MaxDegradation: c.MaxDegradation}
		rep.Control = cr
		ok, err := w.satisfying(ctx, a.Query, cohort)
		if err != nil {
			return nil, err
		}
		cr.Passed = len(ok)
		if len(cohort) > 0 {
			cr.PassRate = rate(cr.Passed, len(cohort))
			control = &cr.PassRate
		}
	}
	maxDeg := 0.0
	if a.Control != nil {
		maxDeg = a.Control.MaxDegradation
	}
	rep.Pass, rep.Reason = analysisVerdict(rep.Devices, rep.PassRate, a.MinPassRate, a.Control != nil, control, maxDeg)
	rep.Reason = fmt.Sprintf("analysis of batch %d: %d of %d devices satisfy %q after a %s bake (%.1f%%); %s",
		rep.Batch, rep.Passed, rep.Devices, a.Query, a.Bake, 100*rep.PassRate, rep.Reason)
	if !rep.Pass {
		for _, id := range rep.FailedDevices {
			d := &sr.Devices[at[id]]
			d.Succeeded = false
			d.Error = &hub.DeviceJobError{Code: CodeAnalysisFailed,
				Description: fmt.Sprintf("the twin did not satisfy %q after the batch's %s bake, and the batch's analysis failed", a.Query, a.Bake)}
		}
	}
	return rep, nil
}

// analysisVerdict decides a batch's health: its pass rate against the
// floor, and, when the step has a control, against its control's (nil
// when no control device was left).
func analysisVerdict(devices int, batch, floor float64, hasControl bool, control *float64, maxDeg float64) (bool, string) {
	const eps = 1e-9
	pct := func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }
	switch {
	case devices == 0:
		return true, "no device of the batch is left to analyse"
	case control == nil && hasControl:
		if batch+eps >= floor {
			return true, fmt.Sprintf("no control device is left (the step has touched every device with the same tags); at least %s must", pct(floor))
		}
		return false, fmt.Sprintf("failed: no control device is left (the step has touched every device with the same tags), and at least %s must", pct(floor))
	case control == nil:
		if batch+eps >= floor {
			return true, fmt.Sprintf("at least %s must", pct(floor))
		}
		return false, fmt.Sprintf("failed: at least %s must", pct(floor))
	case batch+eps < *control-maxDeg:
		return false, fmt.Sprintf("failed: the control cohort's rate is %s, and the batch may be at most %.1f points worse", pct(*control), 100*maxDeg)
	case batch+eps < floor && *control+eps >= floor:
		return false, fmt.Sprintf("failed: at least %s must, and the control cohort clears that (%s)", pct(floor), pct(*control))
	case batch+eps < floor:
		return true, fmt.Sprintf("below the %s floor, but so is the control cohort (%s): the fleet's trouble, not the update's", pct(floor), pct(*control))
	}
	return true, fmt.Sprintf("the control cohort's rate is %s", pct(*control))
}

func rate(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// satisfying is the set of ids whose twins satisfy condition now.
func (w *wave) satisfying(ctx context.Context, condition string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for rest := ids; len(rest) > 0; {
		group := take(rest, 0)
		rest = rest[len(group):]
		ok, err := w.r.devicesOf(ctx, "("+condition+") AND "+inCondition(group))
		if err != nil {
			return nil, fmt.Errorf("step %s: analysis: %w", w.s.Name, err)
		}
		for _, id := range ok {
			out[id] = true
		}
	}
	return out, nil
}

// controlCohort picks, for the batch's devices, as many devices the step
// has not touched with the same values at the control's tags: first from
// the step's later batches, then from the rest of the fleet, by id.
func (w *wave) controlCohort(ctx context.Context, batch []string, to int) ([]string, error) {
	tags := w.s.Analysis.Control.MatchTags
	need := map[string]int{}
	conds := map[string]string{}
	for rest := batch; len(rest) > 0; {
		group := take(rest, 0)
		rest = rest[len(group):]
		err := eachRow(ctx, w.r.Hub, deviceQuery("deviceId, tags", inCondition(group)), func(row *struct {
			Tags map[string]any `json:"tags"`
		}) error {
			key, cond, ok := tagMatch(tags, row.Tags)
			if ok {
				need[key]++
				conds[key] = cond
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("step %s: analysis: read the batch's tags: %w", w.s.Name, err)
		}
	}
	touched := map[string]bool{}
	for _, d := range w.sr.Devices {
		touched[d.DeviceID] = true
	}
	for _, id := range w.ids[:to] {
		touched[id] = true
	}
	later := map[string]bool{}
	for _, id := range w.ids[to:] {
		later[id] = true
	}
	out := []string{}
	for _, key := range slices.Sorted(maps.Keys(need)) {
		ids, err := w.r.devicesOf(ctx, conds[key])
		if err != nil {
			return nil, fmt.Errorf("step %s: analysis: find control devices: %w", w.s.Name, err)
		}
		slices.Sort(ids)
		var first, rest []string
		for _, id := range ids {
			switch {
			case touched[id]:
			case later[id]:
				first = append(first, id)
			default:
				rest = append(rest, id)
			}
		}
		picked := append(first, rest...)
		out = append(out, picked[:min(len(picked), need[key])]...)
	}
	return out, nil
}

// tagMatch is a device's values at the tag paths, as a key and as the
// query condition that selects devices with the same values; ok is false
// when a value cannot be matched by a query (an object or an array).
func tagMatch(paths []string, tags map[string]any) (key, cond string, ok bool) {
	parts := make([]string, len(paths))
	vals := make([]any, len(paths))
	for i, p := range paths {
		full := "tags." + p
		v, defined := lookup(tags, strings.Split(p, "."))
		vals[i] = v
		switch x := v.(type) {
		case nil:
			parts[i] = "IS_NULL(" + full + ")"
			if !defined {
				vals[i], parts[i] = "\x00undefined", "NOT IS_DEFINED("+full+")"
			}
		case string:
			parts[i] = full + " = '" + quote(x) + "'"
		case float64:
			parts[i] = full + " = " + strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			parts[i] = full + " = " + strconv.FormatBool(x)
		default:
			return "", "", false
		}
	}
	b, _ := json.Marshal(vals)
	return string(b), strings.Join(parts, " AND "), true
}
