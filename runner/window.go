package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/iotjobs/iotjobs/plan"
)

// window is a parsed maintenance window.
type window struct {
	key   string // the same for the same window
	sched cron.Schedule
	loc   *time.Location
	dur   time.Duration
}

func newWindow(cronExpr string, dur time.Duration, tz string) (*window, error) {
	sched, err := cron.ParseStandard(cronExpr)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %w", cronExpr, err)
	}
	if dur <= 0 {
		return nil, fmt.Errorf("duration %v is not positive", dur)
	}
	loc := time.UTC
	if tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("time zone %q: %w", tz, err)
		}
	}
	return &window{key: cronExpr + "|" + dur.String() + "|" + loc.String(), sched: sched, loc: loc, dur: dur}, nil
}

// at says whether the window is open at now, and when it next opens (its
// current opening when open).
func (w *window) at(now time.Time) (open bool, opens time.Time) {
	// The first opening after now-dur is the one whose window covers now,
	// if it has begun.
	opens = w.sched.Next(now.Add(-w.dur).In(w.loc))
	return !opens.After(now), opens
}

// waitWindow waits until w is open (at once when it is, or w is nil).
func (r *Runner) waitWindow(ctx context.Context, w *window) error {
	if w == nil {
		return nil
	}
	open, opens := w.at(r.Clock.Now())
	if open {
		return nil
	}
	return r.sleepUntil(ctx, opens)
}

// tagWindow is the JSON a device's window tag holds.
type tagWindow struct {
	Cron     string          `json:"cron"`
	Duration json.RawMessage `json:"duration"`
	Timezone string          `json:"timezone"`
}

// deviceWindows reads each device's window from its twin tag (the step's
// window.fromTag). Devices whose tag holds no valid window are returned
// apart, with the reason.
func (r *Runner) deviceWindows(ctx context.Context, tag string, ids []string) (map[string]*window, map[string]string, error) {
	windows, bad := map[string]*window{}, map[string]string{}
	cache := map[string]*window{}
	for rest := ids; len(rest) > 0; {
		group := take(rest, 0)
		rest = rest[len(group):]
		q := "SELECT deviceId, " + tag + " AS w FROM devices WHERE " + inCondition(group)
		err := eachRow(ctx, r.Hub, q, func(row *struct {
			DeviceID string          `json:"deviceId"`
			W        json.RawMessage `json:"w"`
		}) error {
			if len(row.W) == 0 {
				bad[row.DeviceID] = "the twin has no " + tag
				return nil
			}
			w, ok := cache[string(row.W)]
			if !ok {
				var err error
				if w, err = parseTagWindow(row.W); err != nil {
					bad[row.DeviceID] = fmt.Sprintf("%s does not hold a window: %v", tag, err)
					return nil
				}
				cache[string(row.W)] = w
			}
			windows[row.DeviceID] = w
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	for _, id := range ids {
		if windows[id] == nil && bad[id] == "" {
			bad[id] = "the device is gone"
		}
	}
	return windows, bad, nil
}

func parseTagWindow(raw json.RawMessage) (*window, error) {
	var tw tagWindow
	if err := json.Unmarshal(raw, &tw); err != nil {
		return nil, fmt.Errorf(`want {"cron": "0 2 * * *", "duration": "2h", "timezone": "Europe/Berlin"}`)
	}
	var dur time.Duration
	var s string
	var secs float64
	switch {
	case json.Unmarshal(tw.Duration, &s) == nil:
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("duration %q: %w", s, err)
		}
		dur = d
	case json.Unmarshal(tw.Duration, &secs) == nil:
		dur = time.Duration(secs * float64(time.Second))
	default:
		return nil, fmt.Errorf("duration missing: give e.g. \"2h\"")
	}
	return newWindow(tw.Cron, dur, tw.Timezone)
}

// orderByWindow sorts ids so that devices of one window are together,
// windows in the order they next open (stable within a window).
func orderByWindow(ids []string, windows map[string]*window, now time.Time) {
	next := map[string]time.Time{}
	for _, w := range windows {
		if _, ok := next[w.key]; !ok {
			_, opens := w.at(now)
			next[w.key] = opens
		}
	}
	sort.SliceStable(ids, func(i, j int) bool {
		a, b := windows[ids[i]], windows[ids[j]]
		if a.key == b.key {
			return false
		}
		if !next[a.key].Equal(next[b.key]) {
			return next[a.key].Before(next[b.key])
		}
		return strings.Compare(a.key, b.key) < 0
	})
}

// sameWindow cuts group where the window changes.
func sameWindow(group []string, windows map[string]*window) []string {
	if windows == nil {
		return group
	}
	for i := 1; i < len(group); i++ {
		if windows[group[i]] != windows[group[0]] {
			return group[:i]
		}
	}
	return group
}

// stepWindow is a step's own window (not fromTag), or nil.
func stepWindow(s *plan.Step) (*window, error) {
	if s.Window == nil || s.Window.FromTag != "" {
		return nil, nil
	}
	return newWindow(s.Window.Cron, s.Window.Duration, s.Window.Timezone)
}
