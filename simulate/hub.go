package simulate

import (
	"context"
	"fmt"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/memstore"
)

// In-process hubs: the engine over a store, its devices simulated in the
// same process on the engine's clock (Bus), for dry-runs and tests. The
// devices are written to the store directly, as a registry import would
// leave them, so that 100,000 devices load in a second.

// HubOptions configure NewHub.
type HubOptions struct {
	// Store holds the hub's state; nil means a new in-memory store.
	Store store.Store
	// Twins are twins a live hub holds for some of the devices, by id:
	// those devices start from them (tags, desired and reported
	// properties, version), with the fleet's reported values only where
	// the twin lacks one, as the simulated devices will when they connect
	// there (a device that reconnects keeps what an earlier update left
	// it with).
	Twins map[string]*hub.Twin
}

// NewHub is a hub whose registry holds devs, with their tags and reported
// properties, and whose devices are devs, in-process on clk. Close the
// engine when done.
func NewHub(ctx context.Context, devs []*Device, clk clock.Clock, opts HubOptions) (*engine.Engine, error) {
	st := opts.Store
	if st == nil {
		st = memstore.New()
	}
	now := clk.Now().UTC()
	for _, d := range devs {
		sd, err := registered(d, opts.Twins[d.ID], now)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", d.ID, err)
		}
		if err := st.CreateDevice(ctx, sd); err != nil {
			return nil, fmt.Errorf("device %s: %w", d.ID, err)
		}
	}
	return openConnected(ctx, st, devs, clk)
}

// NewSnapshotHub is a hub holding copies of twins (a live hub's, read
// for a dry-run), in-process on clk. Each device keeps the connection
// state the hub gave it: a device connected there answers every method
// 200 and echoes desired patches at once; any other (disconnected, or
// disabled, which the hub's broker refuses) stays offline for the whole
// simulation, so that methods to it fail with DeviceNotOnline after their
// connect timeout and the desired patches it is sent are stored but
// never reported back, as on the hub. Close the engine when done.
func NewSnapshotHub(ctx context.Context, twins []*hub.Twin, clk clock.Clock) (*engine.Engine, error) {
	st := memstore.New()
	var devs []*Device
	for _, t := range twins {
		sd := &store.Device{Device: hub.Device{DeviceID: t.DeviceID, Status: t.Status, ETag: "MA==", ConnectionState: hub.Disconnected,
			Authentication: hub.Authentication{Type: "sas"}},
			Tags: t.Tags, Desired: t.Properties.Desired, Reported: t.Properties.Reported, Version: t.Version}
		if err := st.CreateDevice(ctx, sd); err != nil {
			return nil, fmt.Errorf("device %s: %w", t.DeviceID, err)
		}
		devs = append(devs, &Device{ID: t.DeviceID, Tags: map[string]any{}, Reported: map[string]any{},
			Methods: map[string]*Method{"*": {Status: 200}}, Desired: &Desired{Report: true},
			Offline: !SnapshotOnline(t)})
	}
	return openConnected(ctx, st, devs, clk)
}

// SnapshotOnline reports whether NewSnapshotHub's device for twin t is
// online: connected on the hub the twin was read from, and enabled.
func SnapshotOnline(t *hub.Twin) bool {
	return t.ConnectionState == hub.Connected && t.Status != hub.StatusDisabled
}

// openConnected opens the engine over st with devs as its in-process
// devices, and records the devices online as the simulation starts as
// connected: once the engine has opened (it marks everyone disconnected
// first, as a starting hub must), so that the first query sees them.
func openConnected(ctx context.Context, st store.Store, devs []*Device, clk clock.Clock) (*engine.Engine, error) {
	bus := NewBus(devs, clk)
	e, err := openBus(ctx, st, bus, clk)
	if err != nil {
		return nil, err
	}
	at := hub.Time{Time: clk.Now().UTC()}
	for _, d := range devs {
		if !bus.Online(d.ID) {
			continue
		}
		if _, err := st.UpdateDevice(ctx, d.ID, func(sd *store.Device) error {
			sd.ConnectionState, sd.ConnectionStateUpdatedTime, sd.LastActivityTime = hub.Connected, at, at
			return nil
		}); err != nil {
			e.Close()
			return nil, fmt.Errorf("device %s: connection state: %w", d.ID, err)
		}
	}
	return e, nil
}

// openBus opens the engine over st with bus's in-process devices.
func openBus(ctx context.Context, st store.Store, bus *Bus, clk clock.Clock) (*engine.Engine, error) {
	e := engine.New(st, bus, clk)
	bus.SetEvents(e)
	if err := e.Open(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// registered is device d as the registry holds it: from its twin t on a
// live hub when t is not nil (see HubOptions.Twins; d's reported values
// become what it will have reported), else from the fleet alone.
func registered(d *Device, t *hub.Twin, now time.Time) (*store.Device, error) {
	if t == nil {
		reported := map[string]any{}
		if len(d.Reported) > 0 {
			if _, err := hub.MergeSection(reported, d.Reported, now, 1, false); err != nil {
				return nil, fmt.Errorf("reported properties: %w", err)
			}
			reported["$version"] = 1.0
		} else {
			reported["$version"] = 0.0
		}
		return &store.Device{
			Device: hub.Device{DeviceID: d.ID, Status: hub.StatusEnabled, ETag: "MA==", ConnectionState: hub.Disconnected,
				Authentication: hub.Authentication{Type: "sas"}},
			Tags: d.Tags, Desired: map[string]any{"$version": 1.0}, Reported: reported, Version: 1,
		}, nil
	}
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
