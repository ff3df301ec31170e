package simulate

import (
	"context"
	"encoding/json"
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
}

// NewBus returns a bus over devs; offline devices never answer.
func NewBus(devs []*Device, clk clock.Clock) *Bus {
	b := &Bus{clock: clk, start: clk.Now(), devices: make(map[string]*busDevice, len(devs))}
	for _, d := range devs {
		b.devices[d.ID] = &busDevice{spec: d, rng: d.RNG()}
	}
	return b
}

// SetEvents sets where devices' reported-property patches go (the engine).
func (b *Bus) SetEvents(ev hub.DeviceEvents) { b.events = ev }

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
		b.mu.Unlock()
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
	b.mu.Unlock()
	if !on || d.spec.Desired == nil || !d.spec.Desired.Report || b.events == nil {
		return nil
	}
	report := func() {
		ctx := context.Background()
		if _, err := b.events.ReportedPatch(ctx, id, patch); err != nil {
			return // the device would see an error answer and move on
		}
	}
	if d.spec.Desired.Delay <= 0 {
		go report() // not inline: the engine may still hold the twin
		return nil
	}
	b.clock.AfterFunc(d.spec.Desired.Delay, report)
	return nil
}

// Kick implements hub.DeviceBus; simulated devices have no connection to
// drop.
func (b *Bus) Kick(string) {}
