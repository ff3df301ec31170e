// The in-process hubs dry-runs play against: a fleet file's devices, or a
// snapshot of a live hub's twins.

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

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
// hub with default simulated devices.
func snapshotHub(ctx context.Context, src hub.Client, p *plan.Plan, clk clock.Clock) (*engine.Engine, func(), error) {
	var all []*hub.Twin
	seen := map[string]bool{}
	for _, s := range p.Steps {
		twins, err := runner.ReadTwins(ctx, src, s.Query)
		if err != nil {
			return nil, nil, fmt.Errorf("step %s: read its twins: %w", s.Name, err)
		}
		for _, t := range twins {
			if !seen[t.DeviceID] {
				seen[t.DeviceID] = true
				all = append(all, t)
			}
		}
	}
	e, err := simulate.NewSnapshotHub(ctx, all, clk)
	if err != nil {
		return nil, nil, err
	}
	return e, func() { e.Close() }, nil
}
