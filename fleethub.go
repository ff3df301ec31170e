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
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/memstore"
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
	st := memstore.New()
	now := clk.Now().UTC()
	for _, d := range devs {
		if t := twins[d.ID]; t != nil {
			sd, err := storedTwin(d, t, now)
			if err != nil {
				return nil, nil, fmt.Errorf("fleet %s: device %s: %w", path, d.ID, err)
			}
			if err := st.CreateDevice(ctx, sd); err != nil {
				return nil, nil, fmt.Errorf("fleet %s: device %s: %w", path, d.ID, err)
			}
			continue
		}
		reported := map[string]any{}
		if len(d.Reported) > 0 {
			if _, err := hub.MergeSection(reported, d.Reported, now, 1, false); err != nil {
				return nil, nil, fmt.Errorf("fleet %s: device %s: reported properties: %w", path, d.ID, err)
			}
			reported["$version"] = 1.0
		} else {
			reported["$version"] = 0.0
		}
		sd := &store.Device{
			Device: hub.Device{DeviceID: d.ID, Status: hub.StatusEnabled, ETag: "MA==", ConnectionState: hub.Disconnected,
				Authentication: hub.Authentication{Type: "sas"}},
			Tags: d.Tags, Desired: map[string]any{"$version": 1.0}, Reported: reported, Version: 1,
		}
		if err := st.CreateDevice(ctx, sd); err != nil {
			return nil, nil, fmt.Errorf("fleet %s: device %s: %w", path, d.ID, err)
		}
	}
	bus := simulate.NewBus(devs, clk)
	e := engine.New(st, bus, clk)
	bus.SetEvents(e)
	if err := e.Open(ctx); err != nil {
		return nil, nil, err
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

// storedTwin is a simulated device d as its twin t on a hub leaves it,
// with the fleet file's reported values t lacks; d's reported values
// become what it will have reported.
func storedTwin(d *simulate.Device, t *hub.Twin, now time.Time) (*store.Device, error) {
	reported := t.Properties.Reported
	if reported == nil {
		reported = map[string]any{"$version": 0.0}
	}
	missing := map[string]any{}
	for k, v := range d.Reported {
		if _, ok := reported[k]; !ok {
			missing[k] = v
		}
	}
	if len(missing) > 0 {
		v, _ := reported["$version"].(float64)
		if _, err := hub.MergeSection(reported, missing, now, int64(v)+1, false); err != nil {
			return nil, fmt.Errorf("reported properties: %w", err)
		}
		reported["$version"] = v + 1
	}
	d.Reported = hub.StripMeta(reported)
	if t.Tags != nil {
		d.Tags = t.Tags
	}
	desired := t.Properties.Desired
	if desired == nil {
		desired = map[string]any{"$version": 1.0}
	}
	return &store.Device{
		Device: hub.Device{DeviceID: d.ID, Status: hub.StatusEnabled, ETag: "MA==", ConnectionState: hub.Disconnected,
			Authentication: hub.Authentication{Type: "sas"}},
		Tags: d.Tags, Desired: desired, Reported: reported, Version: t.Version,
	}, nil
}

// snapshotHub copies the twins p's steps match on src into an in-memory
// hub with default simulated devices.
func snapshotHub(ctx context.Context, src hub.Client, p *plan.Plan, clk clock.Clock) (*engine.Engine, func(), error) {
	st := memstore.New()
	var devs []*simulate.Device
	seen := map[string]bool{}
	for _, s := range p.Steps {
		twins, err := runner.ReadTwins(ctx, src, s.Query)
		if err != nil {
			return nil, nil, fmt.Errorf("step %s: read its twins: %w", s.Name, err)
		}
		for _, t := range twins {
			if seen[t.DeviceID] {
				continue
			}
			seen[t.DeviceID] = true
			sd := &store.Device{Device: hub.Device{DeviceID: t.DeviceID, Status: t.Status, ETag: "MA==", ConnectionState: hub.Disconnected,
				Authentication: hub.Authentication{Type: "sas"}},
				Tags: t.Tags, Desired: t.Properties.Desired, Reported: t.Properties.Reported, Version: t.Version}
			if err := st.CreateDevice(ctx, sd); err != nil {
				return nil, nil, err
			}
			devs = append(devs, &simulate.Device{ID: t.DeviceID, Tags: map[string]any{}, Reported: map[string]any{},
				Methods: map[string]*simulate.Method{"*": {Status: 200}}, Desired: &simulate.Desired{Report: true}})
		}
	}
	bus := simulate.NewBus(devs, clk)
	e := engine.New(st, bus, clk)
	bus.SetEvents(e)
	if err := e.Open(ctx); err != nil {
		return nil, nil, err
	}
	return e, func() { e.Close() }, nil
}
