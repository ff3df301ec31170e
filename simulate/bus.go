package simulate

import (
	"context"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
)

var _ hub.DeviceBus = (*Bus)(nil)

// Bus is an in-process hub.DeviceBus over simulated devices: no network,
// every latency and delay on the given clock. It is the device side of a
// dry-run's hub, and of tests that need devices but not MQTT. Devices
// behave as their fleet file says, as over MQTT.
type Bus struct {
	clock  clock.Clock
	start  time.Time
	events hub.DeviceEvents

	mu      sync.Mutex
	devices map[string]*busDevice
}

type busDevice struct {
	spec      *Device
	rng       *rand.Rand
	downUntil time.Time // after an answer with DisconnectFor
	// reported is what the device has reported, as it knows it: its fleet
	// file's values, then each patch it sent merged in. Degradations that
	// wait for an update look here.
	reported map[string]any
	// degraded is set once the device's degradation is scheduled: it
	// fires once.
	degraded bool
}

// NewBus returns a bus over devs; offline devices never answer. The
// simulation starts now: flapping cycles and degradations without a
// condition count from this time.
func NewBus(devs []*Device, clk clock.Clock) *Bus {
	b := &Bus{clock: clk, start: clk.Now(), devices: make(map[string]*busDevice, len(devs))}
	for _, d := range devs {
		// A copy of the top level only: mergeReported never changes a
		// nested object in place.
		b.devices[d.ID] = &busDevice{spec: d, rng: d.RNG(), reported: maps.Clone(d.Reported)}
	}
	return b
}

// SetEvents sets where devices' reported-property patches go (the
// engine). It also schedules the degradations that start with the
// simulation (no condition, or one the fleet file's reported values
// already meet), at their time counted from NewBus: they need somewhere to
// report to.
func (b *Bus) SetEvents(ev hub.DeviceEvents) {
	b.mu.Lock()
	b.events = ev
	var due []*busDevice
	for _, d := range b.devices {
		dg := d.spec.Degrade
		if dg == nil || d.spec.Offline || d.degraded {
			continue
		}
		if dg.When == nil || holdsAll(d.reported, dg.When) {
			d.degraded = true
			due = append(due, d)
		}
	}
	b.mu.Unlock()
	for _, d := range due {
		b.clock.AfterFunc(b.start.Add(d.spec.Degrade.After).Sub(b.clock.Now()), func() { b.degrade(d) })
	}
}

// report sends a reported-properties patch of device d to the engine
// and, once it is taken, merges it into what the device knows it reported;
// a patch that now meets the device's degradation condition starts it.
func (b *Bus) report(ctx context.Context, d *busDevice, body json.RawMessage) error {
	b.mu.Lock()
	ev := b.events
	b.mu.Unlock()
	if ev == nil {
		return nil
	}
	if _, err := ev.ReportedPatch(ctx, d.spec.ID, body); err != nil {
		return err
	}
	var patch map[string]any
	if err := json.Unmarshal(body, &patch); err != nil {
		return nil // the engine took it, so it is an object; never here
	}
	b.mu.Lock()
	mergeReported(d.reported, withoutMeta(patch))
	dg := d.spec.Degrade
	start := dg != nil && dg.When != nil && !d.degraded && holdsAll(d.reported, dg.When)
	if start {
		d.degraded = true
	}
	b.mu.Unlock()
	if start {
		b.clock.AfterFunc(dg.After, func() { b.degrade(d) })
	}
	return nil
}

// degrade sends device d's degradation report, once it is on line: a
// device that is rebooting or flapping down when it is due reports when it
// is back, as over MQTT.
func (b *Bus) degrade(d *busDevice) {
	b.mu.Lock()
	on, next := b.online(d, b.clock.Now())
	b.mu.Unlock()
	if !on {
		if !next.IsZero() {
			b.clock.AfterFunc(next.Sub(b.clock.Now()), func() { b.degrade(d) })
		}
		return
	}
	body, err := json.Marshal(d.spec.Degrade.Report)
	if err != nil {
		return // the fleet file's values, read from YAML as JSON; never here
	}
	// The device would see an error answer and move on.
	_ = b.report(context.Background(), d, body)
}

// online reports whether a device is connected at now; when it is not but
// will be, it also returns when.
func (b *Bus) online(d *busDevice, now time.Time) (bool, time.Time) {
	if d.spec.Offline {
		return false, time.Time{}
	}
	if now.Before(d.downUntil) {
		return false, d.downUntil
	}
	if f := d.spec.Flapping; f != nil && f.Up > 0 && f.Down > 0 {
		period := f.Up + f.Down
		phase := now.Sub(b.start) % period
		if phase >= f.Up {
			return false, now.Add(period - phase)
		}
	}
	return true, time.Time{}
}

// Online reports whether device id is connected now (for its initial
// connection state in an in-process hub's registry). Flapping devices
// change later without a word to the hub; devices that disconnect after
// an answer are reported.
func (b *Bus) Online(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.devices[id]
	if d == nil {
		return false
	}
	on, _ := b.online(d, b.clock.Now())
	return on
}

// InvokeMethod implements hub.DeviceBus.
func (b *Bus) InvokeMethod(ctx context.Context, id, method string, payload json.RawMessage) (*hub.MethodResponse, error) {
	b.mu.Lock()
	d := b.devices[id]
	if d == nil {
		b.mu.Unlock()
		return nil, hub.ErrDeviceNotOnline
	}
	if on, _ := b.online(d, b.clock.Now()); !on {
		b.mu.Unlock()
		return nil, hub.ErrDeviceNotOnline
	}
	ans := d.spec.Answer(method, d.rng)
	b.mu.Unlock()
	if ans.Latency > 0 {
		t := b.clock.NewTimer(ans.Latency)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	if ans.DisconnectFor > 0 {
		b.mu.Lock()
		d.downUntil = b.clock.Now().Add(ans.DisconnectFor)
		ev := b.events
		b.mu.Unlock()
		// The hub sees the device go and come back, as over MQTT.
		if ev != nil {
			ev.DeviceConnected(id, false)
			b.clock.AfterFunc(ans.DisconnectFor, func() {
				b.mu.Lock()
				on, _ := b.online(d, b.clock.Now())
				b.mu.Unlock()
				if on {
					ev.DeviceConnected(id, true)
				}
			})
		}
	}
	p := ans.Payload
	if len(p) == 0 {
		p = json.RawMessage("null")
	}
	return &hub.MethodResponse{Status: ans.Status, Payload: p}, nil
}

// WaitOnline implements hub.DeviceBus.
func (b *Bus) WaitOnline(ctx context.Context, id string) error {
	for {
		b.mu.Lock()
		d := b.devices[id]
		var on bool
		var next time.Time
		if d != nil {
			on, next = b.online(d, b.clock.Now())
		}
		b.mu.Unlock()
		if on {
			return nil
		}
		if next.IsZero() {
			<-ctx.Done()
			return ctx.Err()
		}
		t := b.clock.NewTimer(next.Sub(b.clock.Now()))
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// PushDesired implements hub.DeviceBus: a device whose fleet entry says so
// echoes the patch into its reported properties after its delay.
func (b *Bus) PushDesired(ctx context.Context, id string, patch json.RawMessage, version int64) error {
	b.mu.Lock()
	d := b.devices[id]
	on := false
	if d != nil {
		on, _ = b.online(d, b.clock.Now())
	}
	ev := b.events
	b.mu.Unlock()
	if !on || d.spec.Desired == nil || !d.spec.Desired.Report || ev == nil {
		return nil
	}
	report := func() {
		// The device would see an error answer and move on.
		_ = b.report(context.Background(), d, patch)
	}
	if d.spec.Desired.Delay <= 0 {
		go report() // not inline: the engine may still hold the twin
		return nil
	}
	b.clock.AfterFunc(d.spec.Desired.Delay, report)
	return nil
}

// Kick implements hub.DeviceBus: the hub closes the connection of a
// device it disables or deletes, so the device reads disconnected. An
// in-process device has no connection to try again with: it stays so in
// the registry.
func (b *Bus) Kick(id string) {
	b.mu.Lock()
	ev := b.events
	b.mu.Unlock()
	if ev != nil {
		ev.DeviceConnected(id, false)
	}
}
