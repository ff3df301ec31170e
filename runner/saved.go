package runner

import (
	"context"
	_ "embed"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/plan"
)

//go:embed saved-plan.schema.json
var savedPlanSchema []byte

// SavedPlanSchema returns the JSON Schema of saved plans (iotjobs schema
// saved-plan, committed as docs/saved-plan.schema.json), which tools such
// as OPA/conftest policies are written against.
func SavedPlanSchema() ([]byte, error) { return savedPlanSchema, nil }

// SavedPlanVersion is the version of the saved-plan format.
const SavedPlanVersion = 1

// SavedPlan is what iotjobs plan --out writes: the plan's source, and per
// step the devices its query matched with the twin etag each had, so that
// applying the saved plan acts on exactly those devices, and refuses when
// any of them changed since.
type SavedPlan struct {
	Version int    `json:"savedPlanVersion"`
	File    string `json:"file"`
	SHA256  string `json:"sha256"`
	// Source is the plan file's text, as it was when saved.
	Source string `json:"source"`
	// Vars are the values the plan's variables were given from outside
	// (plan --var, --var-file), which parsing Source again needs.
	Vars    map[string]string `json:"vars,omitempty"`
	SavedAt time.Time         `json:"savedAt"`
	Steps   []SavedStep       `json:"steps"`
}

// SavedStep is one step's device set as saved.
type SavedStep struct {
	Name    string        `json:"name"`
	Devices []SavedDevice `json:"devices"`
}

// SavedDevice is a device and the twin etag it had when the plan was
// saved.
type SavedDevice struct {
	ID   string `json:"id"`
	ETag string `json:"etag"`
}

// Save resolves every step's devices and their twin etags on the hub
// (reads only), for iotjobs plan --out.
func (r *Runner) Save(ctx context.Context, p *plan.Plan, source []byte) (*SavedPlan, error) {
	sp := &SavedPlan{Version: SavedPlanVersion, File: p.File, SHA256: p.SHA256, Source: string(source), Vars: p.Overrides, SavedAt: r.Clock.Now().UTC()}
	for _, s := range p.Steps {
		twins, err := r.matchedTwins(ctx, s.Query)
		if err != nil {
			return nil, fmt.Errorf("step %s: read its devices: %w", s.Name, err)
		}
		st := SavedStep{Name: s.Name, Devices: make([]SavedDevice, len(twins))}
		for i, t := range twins {
			st.Devices[i] = SavedDevice{ID: t.DeviceID, ETag: t.ETag}
		}
		sp.Steps = append(sp.Steps, st)
	}
	return sp, nil
}

// Drift is a saved device whose twin is not as it was.
type Drift struct {
	ID, Saved, Now string // etags; Now is "" for a device that is gone
}

func (d Drift) String() string {
	if d.Now == "" {
		return d.ID + " (gone)"
	}
	return fmt.Sprintf("%s (etag %s, now %s)", d.ID, d.Saved, d.Now)
}

// DriftError says a saved plan's devices changed since it was saved.
type DriftError struct{ Devices []Drift }

func (e *DriftError) Error() string {
	names := make([]string, 0, min(len(e.Devices), 20))
	for _, d := range e.Devices[:min(len(e.Devices), 20)] {
		names = append(names, d.String())
	}
	more := ""
	if len(e.Devices) > 20 {
		more = fmt.Sprintf(" and %d more", len(e.Devices)-20)
	}
	return fmt.Sprintf("the fleet changed since the plan was saved; %d devices differ: %s%s. Run iotjobs plan --out again to review the change",
		len(e.Devices), strings.Join(names, ", "), more)
}

// CheckDrift compares the saved devices' twin etags with the hub's now.
func (r *Runner) CheckDrift(ctx context.Context, sp *SavedPlan) error {
	saved := map[string]string{}
	for _, st := range sp.Steps {
		for _, d := range st.Devices {
			saved[d.ID] = d.ETag
		}
	}
	ids := make([]string, 0, len(saved))
	for id := range saved {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	now := map[string]string{}
	for rest := ids; len(rest) > 0; {
		group := take(rest, 0)
		rest = rest[len(group):]
		err := eachRow(ctx, r.Hub, "SELECT deviceId, etag FROM devices WHERE "+inCondition(group), func(row *struct {
			DeviceID string `json:"deviceId"`
			ETag     string `json:"etag"`
		}) error {
			now[row.DeviceID] = row.ETag
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the saved devices' twins: %w", err)
		}
	}
	var drift []Drift
	for _, id := range ids {
		if now[id] != saved[id] {
			drift = append(drift, Drift{ID: id, Saved: saved[id], Now: now[id]})
		}
	}
	if len(drift) > 0 {
		return &DriftError{Devices: drift}
	}
	return nil
}

// Fix sets each step of p (parsed from sp.Source) to act on exactly its
// saved devices.
func (sp *SavedPlan) Fix(p *plan.Plan) error {
	byName := map[string]SavedStep{}
	for _, st := range sp.Steps {
		byName[st.Name] = st
	}
	for _, s := range p.Steps {
		st, ok := byName[s.Name]
		if !ok {
			return fmt.Errorf("the saved plan has no devices for step %s", s.Name)
		}
		s.Devices = make([]string, len(st.Devices))
		for i, d := range st.Devices {
			s.Devices[i] = d.ID
		}
	}
	return nil
}
