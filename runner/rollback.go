package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan"
)

// Rollback undoes a step. A twin step restores, on every device it
// patched, the values its patch replaced, which the runner read before
// patching (for the no-op check) and keeps in the report, grouped by
// identical values. Each restore is guarded by the twin's etag as read
// right after the step's patch: a twin someone changed since is left
// alone (RollbackConflict). Restores run as hub jobs (one per group of
// devices with the same values and etag), so a hub that crashes in the
// middle resumes them and patches no twin twice; a restore found already
// done (its etag moved on, and the twin holds the values) counts as
// restored, so rolling back twice is harmless. A method step calls its
// compensating method on the devices whose call succeeded.

// Rollback statuses of a device.
const (
	RolledBack     = "restored"
	RollbackFailed = "failed"
	// RollbackConflicted is a twin changed by someone else since the
	// step's patch; its error code is RollbackConflict.
	RollbackConflicted = "conflict"
)

// Rollback triggers beyond the plan's (abort, planAbort).
const RollbackManual = "manual"

// RollbackReport is what a step keeps to undo itself, and how its
// rollback went when one ran.
type RollbackReport struct {
	// On are the plan's triggers (empty: none; iotjobs rollback can still
	// restore from the report).
	On []string `json:"on"`
	// Saved are, for a twin step, the values its patch replaced: per
	// distinct set of values, the devices that held them, by the twin
	// etag each had right after the patch.
	Saved []SavedValues `json:"saved,omitempty"`
	// Method is a method step's compensating method.
	Method *MethodCall `json:"method,omitempty"`
	// Trigger is what started the rollback (abort, planAbort, manual);
	// empty when none ran.
	Trigger   string     `json:"trigger,omitempty"`
	StartTime *time.Time `json:"startTime,omitempty"`
	EndTime   *time.Time `json:"endTime,omitempty"`
	Restored  int        `json:"restored"`
	Conflicts int        `json:"conflicts"`
	Failed    int        `json:"failed"`
	JobIDs    []string   `json:"jobIds"`
	// Devices are the devices the rollback acted on, with status
	// restored, conflict or failed.
	Devices []DeviceResult `json:"devices"`
}

// SavedValues are values a step's patch replaced, by dotted path
// ("properties.desired.firmware"; twin keys hold no dots), null where the
// twin had no value; ETags maps the etag each twin had right after the
// patch to the devices ("" for twins already changed by someone else by
// then, which a rollback leaves alone).
type SavedValues struct {
	Values map[string]any      `json:"values"`
	ETags  map[string][]string `json:"etags"`
}

// MethodCall is a compensating direct method.
type MethodCall struct {
	Name                     string          `json:"name"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds"`
}

// newRollbackReport is what a step keeps to undo itself: a twin step its
// replaced values (always, so that iotjobs rollback can undo any run), a
// method step its compensating method; nil for a method step without one.
func newRollbackReport(s *plan.Step) *RollbackReport {
	rb := &RollbackReport{On: []string{}, JobIDs: []string{}, Devices: []DeviceResult{}}
	if s.Rollback != nil {
		rb.On = slices.Clone(s.Rollback.On)
	}
	switch {
	case s.Twin != nil:
		rb.Saved = []SavedValues{}
	case s.Rollback != nil && s.Rollback.Method != nil:
		rb.Method = methodCall(s.Rollback.Method)
	default:
		return nil
	}
	return rb
}

func methodCall(m *plan.Method) *MethodCall {
	return &MethodCall{Name: m.Name, Payload: m.Payload,
		ResponseTimeoutInSeconds: int(m.ResponseTimeout / time.Second), ConnectTimeoutInSeconds: int(m.ConnectTimeout / time.Second)}
}

// saver collects a twin step's saved values as its jobs complete.
type saver struct {
	patch  *plan.Twin
	before map[string]*hub.Twin // tags and desired, read before the patch
	groups map[string]int       // values (as JSON) → index in Saved
}

func newSaver(patch *plan.Twin, before map[string]*hub.Twin) *saver {
	return &saver{patch: patch, before: before, groups: map[string]int{}}
}

// keepETags saves the values of the devices of results that the step
// patched, with their twins' etags read now, right after the patch.
func (w *wave) keepETags(ctx context.Context, results []DeviceResult) error {
	var ids []string
	for _, d := range results {
		if d.Status == string(hub.DeviceJobCompleted) {
			ids = append(ids, d.DeviceID)
		}
	}
	after := map[string]*hub.Twin{}
	for rest := ids; len(rest) > 0; {
		group := take(rest, 0)
		rest = rest[len(group):]
		err := eachRow(ctx, w.r.Hub, deviceQuery("deviceId, etag, tags, properties.desired", inCondition(group)), func(row *struct {
			DeviceID string         `json:"deviceId"`
			ETag     string         `json:"etag"`
			Tags     map[string]any `json:"tags"`
			Desired  map[string]any `json:"desired"`
		}) error {
			after[row.DeviceID] = &hub.Twin{DeviceID: row.DeviceID, ETag: row.ETag, Tags: row.Tags, Properties: hub.Properties{Desired: row.Desired}}
			return nil
		})
		if err != nil {
			return fmt.Errorf("step %s: read the etags of its patched twins: %w", w.s.Name, err)
		}
	}
	sv, rb := w.saved, w.sr.Rollback
	for _, id := range ids {
		values := priorValues(sv.patch, sv.before[id])
		key, _ := json.Marshal(values)
		i, ok := sv.groups[string(key)]
		if !ok {
			i = len(rb.Saved)
			sv.groups[string(key)] = i
			rb.Saved = append(rb.Saved, SavedValues{Values: values, ETags: map[string][]string{}})
		}
		// A twin that no longer holds the patch was changed by someone
		// else already: its etag is not ours to restore under.
		etag := ""
		if t := after[id]; t != nil && len(divergent(sv.patch, t)) == 0 {
			etag = t.ETag
		}
		rb.Saved[i].ETags[etag] = append(rb.Saved[i].ETags[etag], id)
	}
	return nil
}

// priorValues are the values at the paths patch sets that t held: for
// each leaf the patch sets, the value at its path, or null at the
// shallowest part of the path t lacks (so a restore leaves no empty
// object behind), or the value of a part that is not an object (which the
// patch replaced with one).
func priorValues(patch *plan.Twin, t *hub.Twin) map[string]any {
	out := map[string]any{}
	if t == nil {
		t = &hub.Twin{}
	}
	doc := map[string]any{"tags": t.Tags, "properties": map[string]any{"desired": t.Properties.Desired}}
	for _, l := range patchLeaves(patch) {
		base := 1 // tags.…
		if l.path[0] == "properties" {
			base = 2 // properties.desired.…
		}
		for k := base + 1; k <= len(l.path); k++ {
			cur, ok := lookup(doc, l.path[:k])
			p := strings.Join(l.path[:k], ".")
			if !ok {
				out[p] = nil
				break
			}
			if _, isObject := cur.(map[string]any); k == len(l.path) || !isObject {
				out[p] = cur
				break
			}
		}
	}
	return out
}

// patchLeaves lists the values a twin patch sets, tags first.
func patchLeaves(patch *plan.Twin) []leaf {
	return append(leaves([]string{"tags"}, patch.Tags), leaves([]string{"properties", "desired"}, patch.Desired)...)
}

// restorePatch is the twin patch that puts values back.
func restorePatch(values map[string]any) *plan.Twin {
	out := &plan.Twin{ETag: "*"}
	for p, v := range values {
		path := strings.Split(p, ".")
		var section *map[string]any
		switch {
		case path[0] == "tags" && len(path) > 1:
			section, path = &out.Tags, path[1:]
		case len(path) > 2 && path[0] == "properties" && path[1] == "desired":
			section, path = &out.Desired, path[2:]
		default:
			continue // not a path a step patches
		}
		if *section == nil {
			*section = map[string]any{}
		}
		m := *section
		for _, k := range path[:len(path)-1] {
			sub, ok := m[k].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[k] = sub
			}
			m = sub
		}
		m[path[len(path)-1]] = v
	}
	return out
}

// rollbackOnAbort rolls a step that aborted back, when it asks for that.
func (r *Runner) rollbackOnAbort(ctx context.Context, p *plan.Plan, s *plan.Step, sr *StepReport) error {
	if s.Rollback == nil || !slices.Contains(s.Rollback.On, plan.OnAbort) {
		return nil
	}
	return r.rollback(ctx, p.Name, s, sr, plan.OnAbort)
}

// rollback undoes the step of sr as its report says.
func (r *Runner) rollback(ctx context.Context, planName string, s *plan.Step, sr *StepReport, trigger string) error {
	rb := sr.Rollback
	if rb == nil {
		return nil
	}
	start := r.Clock.Now().UTC()
	rb.Trigger, rb.StartTime = trigger, &start
	r.phase(s, sr, Progress{Phase: PhaseRollingBack})
	var err error
	if rb.Method != nil {
		err = r.compensate(ctx, planName, s, sr)
	} else {
		err = r.restore(ctx, planName, s, rb)
	}
	end := r.Clock.Now().UTC()
	rb.EndTime = &end
	rb.Restored, rb.Conflicts, rb.Failed = 0, 0, 0
	for _, d := range rb.Devices {
		switch d.Status {
		case RolledBack:
			rb.Restored++
		case RollbackConflicted:
			rb.Conflicts++
		default:
			rb.Failed++
		}
	}
	if r.Observer != nil {
		r.Observer.StepFinished(sr)
	}
	if err != nil {
		return fmt.Errorf("step %s: rollback: %w", s.Name, err)
	}
	return nil
}

// restore puts a twin step's saved values back, etag-guarded.
func (r *Runner) restore(ctx context.Context, planName string, s *plan.Step, rb *RollbackReport) error {
	rb.Devices = []DeviceResult{}
	for _, sv := range rb.Saved {
		patch := restorePatch(sv.Values)
		for _, etag := range slices.Sorted(maps.Keys(sv.ETags)) {
			ids := sv.ETags[etag]
			if etag == "" {
				for _, id := range ids {
					rb.Devices = append(rb.Devices, conflict(id, "the twin was changed by someone else right after the step's patch"))
				}
				continue
			}
			for rest := ids; len(rest) > 0; {
				group := take(rest, 0)
				rest = rest[len(group):]
				j := &hub.Job{JobID: r.jobID(planName, s.Name+"-rollback"), Type: hub.JobUpdateTwin, QueryCondition: inCondition(group),
					StartTime: &hub.Time{Time: r.Clock.Now().UTC()}, MaxExecutionTimeInSeconds: maxSeconds(s),
					UpdateTwin: &hub.TwinPatch{ETag: etag, Tags: patch.Tags}}
				if patch.Desired != nil {
					j.UpdateTwin.Properties = &hub.Properties{Desired: patch.Desired}
				}
				res, err := r.rollbackJob(ctx, s, j, rb)
				if err != nil {
					return err
				}
				var moved []string
				got := map[string]bool{}
				for _, d := range res.Devices {
					got[d.DeviceID] = true
					switch {
					case d.Status == string(hub.DeviceJobCompleted):
						rb.Devices = append(rb.Devices, DeviceResult{DeviceID: d.DeviceID, Status: RolledBack, Succeeded: true})
					case d.Error != nil && d.Error.Code == hub.CodePreconditionFailed:
						moved = append(moved, d.DeviceID)
					default:
						d.Status, d.Succeeded = RollbackFailed, false
						rb.Devices = append(rb.Devices, d)
					}
				}
				for _, id := range group {
					if !got[id] { // deleted since, say
						rb.Devices = append(rb.Devices, DeviceResult{DeviceID: id, Status: RollbackFailed,
							Error: &hub.DeviceJobError{Code: hub.CodeDeviceNotFound, Description: "the restore job did not reach the device"}})
					}
				}
				if err := r.settleMoved(ctx, moved, patch, rb); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// settleMoved sorts the devices whose etag moved on since the step's
// patch: restored already (an earlier rollback, or one a hub restart
// resumed) when the twin holds the saved values, a conflict otherwise.
func (r *Runner) settleMoved(ctx context.Context, ids []string, patch *plan.Twin, rb *RollbackReport) error {
	if len(ids) == 0 {
		return nil
	}
	twins := map[string]*hub.Twin{}
	for rest := ids; len(rest) > 0; {
		group := take(rest, 0)
		rest = rest[len(group):]
		ts, err := r.patchedSections(ctx, inCondition(group))
		if err != nil {
			return fmt.Errorf("read twins changed since the patch: %w", err)
		}
		for _, t := range ts {
			twins[t.DeviceID] = t
		}
	}
	for _, id := range ids {
		if t := twins[id]; t != nil && len(divergent(patch, t)) == 0 {
			rb.Devices = append(rb.Devices, DeviceResult{DeviceID: id, Status: RolledBack, Succeeded: true})
			continue
		}
		rb.Devices = append(rb.Devices, conflict(id, "the twin was changed by someone else since the step's patch; left as it is"))
	}
	return nil
}

func conflict(id, why string) DeviceResult {
	return DeviceResult{DeviceID: id, Status: RollbackConflicted, Error: &hub.DeviceJobError{Code: CodeRollbackConflict, Description: why}}
}

// compensate calls a method step's compensating method on the devices
// whose call succeeded (and that no earlier rollback compensated).
func (r *Runner) compensate(ctx context.Context, planName string, s *plan.Step, sr *StepReport) error {
	rb := sr.Rollback
	done := map[string]bool{}
	var kept []DeviceResult
	for _, d := range rb.Devices {
		if d.Status == RolledBack {
			done[d.DeviceID] = true
			kept = append(kept, d)
		}
	}
	rb.Devices = append([]DeviceResult{}, kept...)
	var ids []string
	for _, d := range sr.Devices {
		if d.Succeeded && !done[d.DeviceID] {
			ids = append(ids, d.DeviceID)
		}
	}
	m := rb.Method
	for rest := ids; len(rest) > 0; {
		group := take(rest, 0)
		rest = rest[len(group):]
		j := &hub.Job{JobID: r.jobID(planName, s.Name+"-rollback"), Type: hub.JobDeviceMethod, QueryCondition: inCondition(group),
			StartTime: &hub.Time{Time: r.Clock.Now().UTC()}, MaxExecutionTimeInSeconds: maxSeconds(s),
			CloudToDeviceMethod: &hub.MethodRequest{MethodName: m.Name, Payload: m.Payload,
				ResponseTimeoutInSeconds: m.ResponseTimeoutInSeconds, ConnectTimeoutInSeconds: m.ConnectTimeoutInSeconds}}
		if len(j.CloudToDeviceMethod.Payload) == 0 {
			j.CloudToDeviceMethod.Payload = json.RawMessage("null")
		}
		res, err := r.rollbackJob(ctx, s, j, rb)
		if err != nil {
			return err
		}
		for _, d := range res.Devices {
			if d.Succeeded {
				d.Status = RolledBack
			} else {
				d.Status = RollbackFailed
			}
			rb.Devices = append(rb.Devices, d)
		}
	}
	return nil
}

// rollbackJob runs one job of a rollback, noting its id, and returns its
// devices' results.
func (r *Runner) rollbackJob(ctx context.Context, s *plan.Step, j *hub.Job, rb *RollbackReport) (*StepReport, error) {
	res := &StepReport{}
	job, err := r.execJob(ctx, s, j, res)
	if job != nil {
		rb.JobIDs = append(rb.JobIDs, job.JobID)
	}
	return res, err
}

func maxSeconds(s *plan.Step) int64 {
	if s.MaxExecutionTime <= 0 {
		return int64(plan.DefaultMaxExecutionTime / time.Second)
	}
	return int64(s.MaxExecutionTime / time.Second)
}

// RollBack restores, by hand, the steps of a finished run from its report
// (every step that kept what it replaced, or only those named), the
// latest step first, as an automatic rollback would; it fills each step's
// rollback section and returns the report. A step rolled back already is
// harmless to roll back again.
func (r *Runner) RollBack(ctx context.Context, rep *Report, steps []string) (*Report, error) {
	var todo []*StepReport
	for _, sr := range rep.Steps {
		if len(steps) > 0 && !slices.Contains(steps, sr.Name) {
			continue
		}
		if rb := sr.Rollback; rb != nil && (len(rb.Saved) > 0 || rb.Method != nil) {
			todo = append(todo, sr)
		}
	}
	for _, name := range steps {
		if !slices.ContainsFunc(todo, func(sr *StepReport) bool { return sr.Name == name }) {
			return nil, fmt.Errorf("step %q: the report holds nothing to roll back for it (no such step, or it changed nothing)", name)
		}
	}
	var failed []string
	for i := len(todo) - 1; i >= 0; i-- {
		sr := todo[i]
		s := &plan.Step{Name: sr.Name, MaxExecutionTime: plan.DefaultMaxExecutionTime}
		if err := r.rollback(ctx, rep.Plan.Name, s, sr, RollbackManual); err != nil {
			return rep, err
		}
		if sr.Rollback.Conflicts+sr.Rollback.Failed > 0 {
			failed = append(failed, sr.Name)
		}
	}
	if len(failed) > 0 {
		return rep, &RollbackIncompleteError{Steps: failed}
	}
	return rep, nil
}

// RollbackIncompleteError says a rollback left devices as they were
// (conflicts) or failed on some (exit code 1).
type RollbackIncompleteError struct{ Steps []string }

func (e *RollbackIncompleteError) Error() string {
	return fmt.Sprintf("the rollback of %s did not restore every device (conflicts or failures; see the report)", strings.Join(e.Steps, ", "))
}
