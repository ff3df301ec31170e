package runner

import (
	"context"
	"fmt"

	"github.com/iotjobs/iotjobs/plan"
)

// Compliance is what iotjobs check finds: per twin step, the matched
// devices whose twins do not hold what the step sets (tags and desired
// properties) or, where the step has verify, do not satisfy its
// condition. Method steps have nothing to comply with and are left out.
type Compliance struct {
	Plan      PlanRef          `json:"plan"`
	Compliant bool             `json:"compliant"`
	Steps     []StepCompliance `json:"steps"`
}

// StepCompliance is one twin step's drift.
type StepCompliance struct {
	Name     string         `json:"name"`
	Matched  int            `json:"matched"`
	Drifting []DriftingTwin `json:"drifting"`
}

// DriftingTwin is a device out of line with a step, and why: the paths
// whose value differs, and whether it fails the verify condition.
type DriftingTwin struct {
	DeviceID    string   `json:"deviceId"`
	Paths       []string `json:"paths,omitempty"`
	FailsVerify bool     `json:"failsVerify,omitempty"`
}

// Check reads, without changing anything, which devices do not comply
// with the plan's twin steps.
func (r *Runner) Check(ctx context.Context, p *plan.Plan) (*Compliance, error) {
	out := &Compliance{Plan: PlanRef{Name: p.Name, File: p.File, SHA256: p.SHA256}, Compliant: true, Steps: []StepCompliance{}}
	for _, s := range p.Order() {
		if s.Twin == nil {
			continue
		}
		twins, err := r.matchedTwins(ctx, s.Query)
		if err != nil {
			return nil, fmt.Errorf("step %s: read its devices: %w", s.Name, err)
		}
		sc := StepCompliance{Name: s.Name, Matched: len(twins), Drifting: []DriftingTwin{}}
		byID := map[string]*DriftingTwin{}
		var order []string
		for _, t := range twins {
			if paths := divergent(s.Twin, t); len(paths) > 0 {
				byID[t.DeviceID] = &DriftingTwin{DeviceID: t.DeviceID, Paths: paths}
				order = append(order, t.DeviceID)
			}
		}
		if v := s.Verify; v != nil && len(twins) > 0 {
			ids := make([]string, len(twins))
			for i, t := range twins {
				ids[i] = t.DeviceID
			}
			ok := map[string]bool{}
			for rest := ids; len(rest) > 0; {
				group := take(rest, 0)
				rest = rest[len(group):]
				passing, err := r.devicesOf(ctx, "("+v.Query+") AND "+inCondition(group))
				if err != nil {
					return nil, fmt.Errorf("step %s: verify condition: %w", s.Name, err)
				}
				for _, id := range passing {
					ok[id] = true
				}
			}
			for _, id := range ids {
				if ok[id] {
					continue
				}
				if byID[id] == nil {
					byID[id] = &DriftingTwin{DeviceID: id}
					order = append(order, id)
				}
				byID[id].FailsVerify = true
			}
		}
		for _, t := range twins { // in id order
			if d := byID[t.DeviceID]; d != nil {
				sc.Drifting = append(sc.Drifting, *d)
			}
		}
		if len(sc.Drifting) > 0 {
			out.Compliant = false
		}
		out.Steps = append(out.Steps, sc)
	}
	return out, nil
}
