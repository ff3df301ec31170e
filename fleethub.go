// The in-process hubs dry-runs play against: a fleet file's devices, or a
// snapshot of a live hub's twins.

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/plan/diag"
	"github.com/iotjobs/iotjobs/runner"
	"github.com/iotjobs/iotjobs/simulate"
)

// fleetHub is an in-memory hub holding a fleet file's devices (with their
// tags and reported properties) as in-process simulated devices. They are
// loaded into the store directly, as a registry import would leave them,
// so that a fleet of 100,000 devices loads in a second.
//
// With current (apply's dry-run), the fleet's devices that current holds
// already start from their twins there, as the simulated devices will
// when they connect: its tags and desired properties, and its reported
// values, the fleet file's only where the twin lacks one (a device that
// reconnects keeps what an earlier update left it with).
func fleetHub(ctx context.Context, stderr io.Writer, path string, clk clock.Clock, current hub.Client) (*engine.Engine, func(), error) {
	fl, diags := simulate.Load(path)
	if len(diags) > 0 {
		src, _ := os.ReadFile(path)
		diag.WriteText(stderr, diags, map[string][]byte{path: src})
	}
	if diags.HasErrors() {
		return nil, nil, diags
	}
	devs := fl.Devices()
	var twins map[string]*hub.Twin
	if current != nil {
		var err error
		if twins, err = currentTwins(ctx, current, devs); err != nil {
			return nil, nil, fmt.Errorf("fleet %s: read its devices' twins on the hub: %w", path, err)
		}
	}
	e, err := simulate.NewHub(ctx, devs, clk, simulate.HubOptions{Twins: twins})
	if err != nil {
		return nil, nil, fmt.Errorf("fleet %s: %w", path, err)
	}
	return e, func() { e.Close() }, nil
}

// currentTwins reads the twins of devs that c holds, by id.
func currentTwins(ctx context.Context, c hub.Client, devs []*simulate.Device) (map[string]*hub.Twin, error) {
	out := map[string]*hub.Twin{}
	const chunk = 300 // ids per query, well inside the query's length
	for i := 0; i < len(devs); i += chunk {
		quoted := make([]string, 0, chunk)
		for _, d := range devs[i:min(i+chunk, len(devs))] {
			quoted = append(quoted, "'"+query.Escape(d.ID)+"'")
		}
		ts, err := runner.ReadTwins(ctx, c, "deviceId IN ["+strings.Join(quoted, ", ")+"]")
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			out[t.DeviceID] = t
		}
	}
	return out, nil
}

// snapshotHub copies the twins p's steps match on src into an in-memory
// hub whose devices keep their connection state there
// (simulate.NewSnapshotHub). It also returns how many of them are online.
func snapshotHub(ctx context.Context, src hub.Client, p *plan.Plan, clk clock.Clock) (*engine.Engine, func(), snapshot, error) {
	var all []*hub.Twin
	var snap snapshot
	seen := map[string]bool{}
	for _, s := range p.Steps {
		twins, err := runner.ReadTwins(ctx, src, s.Query)
		if err != nil {
			return nil, nil, snap, fmt.Errorf("step %s: read its twins: %w", s.Name, err)
		}
		for _, t := range twins {
			if seen[t.DeviceID] {
				continue
			}
			seen[t.DeviceID] = true
			all = append(all, t)
			if simulate.SnapshotOnline(t) {
				snap.online++
			} else {
				snap.offline++
			}
		}
	}
	e, err := simulate.NewSnapshotHub(ctx, all, clk)
	if err != nil {
		return nil, nil, snap, err
	}
	return e, func() { e.Close() }, snap, nil
}

// snapshot counts the devices of a snapshotHub by connection state.
type snapshot struct{ online, offline int }

// dryRun says what a dry-run plays a plan against.
type dryRun struct {
	fleet   string   // the fleet file, or "" for a snapshot of the hub
	hubName string   // the hub read: the snapshot's, or the one the fleet's twins start from
	current bool     // the fleet's devices start from their twins on the hub
	snap    snapshot // a snapshot's devices
	rate    float64  // --rate, or 0
}

// against is what the dry-run played the plan against, for its report.
func (d dryRun) against() string {
	if d.fleet != "" {
		return "fleet " + d.fleet
	}
	return hubAgainst(d.hubName)
}

// hubAgainst is "hub NAME" for a target's name ("embedded", a host
// name, or "hub of process …" already).
func hubAgainst(name string) string {
	if strings.HasPrefix(name, "hub ") {
		return name
	}
	return "hub " + name
}

// assumptions are what a dry-run of p takes for granted, in words: only
// those that bear on this plan and these devices, so that a reader sees
// which predictions rest on what.
func (d dryRun) assumptions(p *plan.Plan) []string {
	var methods, twins, cronSteps bool
	var timeouts []string
	seenTimeout := map[time.Duration]bool{}
	for _, s := range p.Steps {
		if s.Method != nil {
			methods = true
			timeouts = append(timeouts, fmt.Sprintf("%s %s", s.Name, s.Method.ConnectTimeout))
			seenTimeout[s.Method.ConnectTimeout] = true
		}
		if s.Rollback != nil && s.Rollback.Method != nil {
			methods = true
		}
		twins = twins || s.Twin != nil
		cronSteps = cronSteps || s.Cron != ""
	}
	out := []string{}
	if d.fleet != "" {
		out = append(out, fmt.Sprintf("played against fleet %s: its devices behave as the file says", d.fleet))
		if d.current {
			out = append(out, fmt.Sprintf("the fleet's devices that %s holds start from their twins there", hubAgainst(d.hubName)))
		}
	} else {
		on, off := d.snap.online, d.snap.offline
		if on > 0 && methods {
			out = append(out, fmt.Sprintf("devices online on %s (%d) stay online and answer every method with status 200 at once", hubAgainst(d.hubName), on))
		}
		if on > 0 && twins {
			out = append(out, fmt.Sprintf("devices online on %s apply desired properties and report them back at once", hubAgainst(d.hubName)))
		}
		if off > 0 {
			a := fmt.Sprintf("devices offline on %s (%d: disconnected or disabled) stay offline for the whole run", hubAgainst(d.hubName), off)
			if methods {
				timeout := "the step's connectTimeout (" + strings.Join(timeouts, ", ") + ")"
				if len(seenTimeout) == 1 {
					for t := range seenTimeout {
						timeout = "connectTimeout " + t.String()
					}
				}
				a += "; methods to them fail with DeviceNotOnline after " + timeout
			}
			if twins {
				a += "; twin patches to them are stored (their device job completes) but never reported back, so a verify of them times out"
			}
			out = append(out, a)
		}
		out = append(out, "no device joins or leaves the hub, and no one else changes its twins, during the run")
	}
	if d.rate > 0 {
		out = append(out, fmt.Sprintf("the hub runs %g device operations per second (--rate): the pre-flight checks each step against it; the simulation does not throttle", d.rate))
	} else {
		out = append(out, "the hub does not throttle device operations (--rate gives its rate for a pre-flight)")
	}
	if cronSteps {
		out = append(out, fmt.Sprintf("cron steps run every occurrence in the next %d days", runner.DefaultHorizon/(24*time.Hour)))
	}
	return out
}
