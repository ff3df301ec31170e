package mqttbus

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/mqttproto"
)

var (
	_ hub.DeviceBus = (*Bus)(nil)
	_ hub.BusState  = (*Bus)(nil)
)

// Transport is what the bus needs of a broker. Topics are device-scoped.
type Transport interface {
	// Publish sends at QoS 0; an error wrapping hub.ErrNotSent says
	// nothing was sent (the broker connection is down).
	Publish(topic string, payload []byte) error
	Subscribe(filter string, fn func(topic string, payload []byte)) error
	// Online reports whether a device is connected and subscribed to the
	// given device-side filter (e.g. "$iothub/methods/POST/#").
	Online(deviceID, deviceFilter string) bool
	Kick(deviceID string)
}

// SharedTransport is a Transport that can share a subscription among
// several hubs on one broker (each message to one of them).
type SharedTransport interface {
	SubscribeShared(group, filter string, fn func(topic string, payload []byte)) error
}

// DefaultWindow is the most method requests in flight across the hub.
// Without a bound, a burst overflows the broker's per-client queues and
// replies are silently lost (README "A method job over 10,000 connected devices").
const DefaultWindow = 1000

// MaxTwinRequests is the most twin requests (GET or reported patch) one
// device may have in process; more are answered 429 at once, as Azure
// throttles, so a flooding device costs the hub a bounded amount of work
// and cannot delay other devices' requests.
const MaxTwinRequests = 8

// Bus is a hub.DeviceBus over a Transport. Its Connected, Disconnected and
// Subscribed methods are the broker's presence events.
type Bus struct {
	Logger *slog.Logger
	// ShareGroup, when set on a SharedTransport before Open, shares the
	// device requests (twin GETs, reported patches, telemetry) among the
	// hubs of this group on the broker: each is handled by one of them.
	ShareGroup string

	t      Transport
	events hub.DeviceEvents
	window chan struct{}
	rid    atomic.Uint64

	telemetry atomic.Int64 // device-to-cloud messages received

	mu       sync.Mutex
	down     chan struct{}              // non-nil while the transport is down; closed when it is back
	calls    map[string]*call           // by $rid
	waiters  map[string][]chan struct{} // by device id, woken on presence changes
	twinBusy map[string]int             // twin requests in process, by device id
}

type call struct {
	deviceID string
	reply    chan reply
}

type reply struct {
	resp *hub.MethodResponse
	err  error
}

// New returns a bus over t that reports device events to events.
func New(t Transport, events hub.DeviceEvents) *Bus {
	b := &Bus{
		Logger:  slog.Default().With("system", "mqttbus"),
		t:       t,
		events:  events,
		window:  make(chan struct{}, DefaultWindow),
		calls:   map[string]*call{},
		waiters: map[string][]chan struct{}{},

		twinBusy: map[string]int{},
	}
	// Request ids start at a random point, not 1: hubs that share a
	// broker (replicas) then never reuse each other's for a device, and
	// a restarted hub never reuses its predecessor's (a late answer to
	// an old call must not answer a new one). They stay decimal numbers,
	// as Azure's are, for device SDKs that parse them.
	b.rid.Store(mrand.Uint64N(1 << 62))
	return b
}

// Telemetry is how many device-to-cloud messages devices have sent. The
// broker acknowledges them (QoS 1); storing or routing them is not part
// of the hub yet.
func (b *Bus) Telemetry() int64 { return b.telemetry.Load() }

func (b *Bus) onTelemetry(topic string, _ []byte) {
	if id, dt, ok := mqttproto.Unscope(topic); ok {
		if _, err := mqttproto.ParseTopic(dt); err != nil {
			b.Logger.Debug("telemetry with a malformed property bag", "device", id, "topic", dt, "err", err)
		}
	}
	b.telemetry.Add(1)
}

// SetEvents sets where device events go; the engine and the bus are built
// one after the other, so one of them is wired after construction.
func (b *Bus) SetEvents(ev hub.DeviceEvents) { b.events = ev }

// Open subscribes to what devices send the hub.
func (b *Bus) Open() error {
	subs := []struct {
		filter string
		fn     func(string, []byte)
		shared bool // a device request: handled by one hub of several
	}{
		// Every hub hears every method answer, and takes those whose
		// request id is its own: the answer reaches the hub waiting.
		{"devices/+/$iothub/methods/res/#", b.onMethodResponse, false},
		{"devices/+/$iothub/twin/GET/#", b.onTwinRequest, true},
		{"devices/+/$iothub/twin/PATCH/properties/reported/#", b.onTwinRequest, true},
		{"devices/+/messages/events/#", b.onTelemetry, true},
		// Modules' (client id "{deviceId}/{moduleId}"): their scoped
		// topics have one level more, and their telemetry Azure's form.
		{"devices/+/+/$iothub/methods/res/#", b.onMethodResponse, false},
		{"devices/+/+/$iothub/twin/GET/#", b.onTwinRequest, true},
		{"devices/+/+/$iothub/twin/PATCH/properties/reported/#", b.onTwinRequest, true},
		{"devices/+/modules/+/messages/events/#", b.onTelemetry, true},
	}
	st, sharing := b.t.(SharedTransport)
	for _, s := range subs {
		var err error
		if s.shared && sharing && b.ShareGroup != "" {
			err = st.SubscribeShared(b.ShareGroup, s.filter, s.fn)
		} else {
			err = b.t.Subscribe(s.filter, s.fn)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// InvokeMethod implements hub.DeviceBus.
func (b *Bus) InvokeMethod(ctx context.Context, deviceID, method string, payload json.RawMessage) (*hub.MethodResponse, error) {
	select {
	case b.window <- struct{}{}:
		defer func() { <-b.window }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if !b.Up() {
		return nil, hub.ErrNotSent // the bus went down since the device was seen online
	}
	if !b.online(deviceID, mqttproto.MethodsSubscription) {
		return nil, hub.ErrDeviceNotOnline
	}
	rid := strconv.FormatUint(b.rid.Add(1), 10)
	c := &call{deviceID: deviceID, reply: make(chan reply, 1)}
	b.mu.Lock()
	b.calls[rid] = c
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.calls, rid)
		b.mu.Unlock()
	}()
	topic := mqttproto.Scoped(deviceID, mqttproto.MethodRequestTopic(method, rid))
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	if err := b.t.Publish(topic, payload); err != nil {
		if errors.Is(err, hub.ErrNotSent) {
			return nil, err
		}
		return nil, hub.Errorf(hub.CodeServerError, "publish method request: %v", err)
	}
	select {
	case r := <-c.reply:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *Bus) onMethodResponse(topic string, payload []byte) {
	id, dt, ok := mqttproto.Unscope(topic)
	if !ok {
		return
	}
	m, err := mqttproto.ParseTopic(dt)
	if err != nil || m.Kind != mqttproto.MethodResponse {
		b.Logger.Debug("ignore malformed method response", "device", id, "topic", dt, "err", err)
		return
	}
	b.mu.Lock()
	c := b.calls[m.RID]
	b.mu.Unlock()
	if c == nil || c.deviceID != id {
		// Late, duplicate, or another device's $rid: never cross-deliver.
		return
	}
	var r reply
	if len(payload) > hub.MaxMethodPayload {
		r.err = hub.Errorf(hub.CodeMessageTooLarge, "device '%s' answered with %d bytes; a method response may have at most %d", id, len(payload), hub.MaxMethodPayload)
	} else if p, err := mqttproto.ParseMethodPayload(payload); err != nil {
		r.err = hub.Errorf(hub.CodeBadDeviceResponse, "device '%s' answered method with invalid JSON: %v", id, err)
	} else {
		r.resp = &hub.MethodResponse{Status: m.Status, Payload: p}
	}
	select {
	case c.reply <- r:
	default:
	}
}

// onTwinRequest answers a device's twin GET or reported patch. It runs the
// store work off the broker's goroutine.
func (b *Bus) onTwinRequest(topic string, payload []byte) {
	id, dt, ok := mqttproto.Unscope(topic)
	if !ok || b.events == nil {
		return
	}
	m, err := mqttproto.ParseTopic(dt)
	if err != nil {
		b.Logger.Debug("ignore malformed twin request", "device", id, "topic", dt, "err", err)
		return
	}
	if m.Kind != mqttproto.TwinGet && m.Kind != mqttproto.ReportedPatch {
		return
	}
	b.mu.Lock()
	busy := b.twinBusy[id]
	if busy < MaxTwinRequests {
		b.twinBusy[id] = busy + 1
	}
	b.mu.Unlock()
	if busy >= MaxTwinRequests {
		status, body := errReply(hub.Errorf(hub.CodeThrottling, "device '%s' has %d twin requests in process; wait for their responses", id, busy))
		if err := b.t.Publish(mqttproto.Scoped(id, mqttproto.TwinResponseTopic(status, m.RID, 0)), body); err != nil {
			b.Logger.Warn("publish twin response", "device", id, "err", err)
		}
		return
	}
	payload = append([]byte(nil), payload...)
	go func() {
		defer func() {
			b.mu.Lock()
			if b.twinBusy[id]--; b.twinBusy[id] <= 0 {
				delete(b.twinBusy, id)
			}
			b.mu.Unlock()
		}()
		ctx := context.Background()
		var status int
		var body []byte
		var version int64
		switch m.Kind {
		case mqttproto.TwinGet:
			doc, err := b.events.TwinDocument(ctx, id)
			status, body = 200, doc
			if err != nil {
				status, body = errReply(err)
			}
		case mqttproto.ReportedPatch:
			v, err := b.events.ReportedPatch(ctx, id, payload)
			status, version = 204, v
			if err != nil {
				status, body = errReply(err)
				version = 0
			}
		default:
			return
		}
		resp := mqttproto.Scoped(id, mqttproto.TwinResponseTopic(status, m.RID, version))
		if err := b.t.Publish(resp, body); err != nil {
			b.Logger.Warn("publish twin response", "device", id, "err", err)
		}
	}()
}

func errReply(err error) (int, []byte) {
	code := hub.ErrorCode(err)
	return hub.HTTPStatus(code), mqttproto.ErrorBody(hub.CodeNumber(code), hub.ErrorMessage(err))
}

// WaitOnline implements hub.DeviceBus.
func (b *Bus) WaitOnline(ctx context.Context, deviceID string) error {
	if b.online(deviceID, mqttproto.MethodsSubscription) {
		return nil // the common case, without registering a waiter
	}
	for {
		ch := make(chan struct{})
		b.mu.Lock()
		b.waiters[deviceID] = append(b.waiters[deviceID], ch)
		b.mu.Unlock()
		// Checked after registering, so a change in between still wakes us.
		if b.online(deviceID, mqttproto.MethodsSubscription) {
			b.wake(deviceID)
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			b.wake(deviceID)
			return ctx.Err()
		}
	}
}

func (b *Bus) wake(deviceID string) {
	b.mu.Lock()
	ws := b.waiters[deviceID]
	delete(b.waiters, deviceID)
	b.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

// PushDesired implements hub.DeviceBus.
func (b *Bus) PushDesired(ctx context.Context, deviceID string, patch json.RawMessage, version int64) error {
	if !b.online(deviceID, mqttproto.DesiredSubscription) {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(patch, &m); err != nil {
		return hub.Errorf(hub.CodeArgumentInvalid, "desired patch: %v", err)
	}
	body, err := mqttproto.DesiredPatchPayload(m, version)
	if err != nil {
		return err
	}
	return b.t.Publish(mqttproto.Scoped(deviceID, mqttproto.DesiredPatchTopic(version)), body)
}

// Kick implements hub.DeviceBus.
func (b *Bus) Kick(deviceID string) { b.t.Kick(deviceID) }

// Connected is the broker's event for a device that connected.
func (b *Bus) Connected(deviceID string) {
	if b.events != nil {
		b.events.DeviceConnected(deviceID, true)
	}
	b.wake(deviceID)
}

// Disconnected is the broker's event for a device whose connection ended.
func (b *Bus) Disconnected(deviceID string) {
	if b.events != nil {
		b.events.DeviceConnected(deviceID, false)
	}
	b.wake(deviceID)
}

// Subscribed is the broker's event for a device subscription.
func (b *Bus) Subscribed(deviceID, filter string) { b.wake(deviceID) }

// BrokerUp is the transport's event for its connection to the broker
// lost (false) or back (true). While it is down no device is online:
// waiters for a device wait (their connect timeout runs), and the engine,
// which asks Up, starts no operation.
func (b *Bus) BrokerUp(up bool) {
	b.mu.Lock()
	var back chan struct{}
	switch {
	case !up && b.down == nil:
		b.down = make(chan struct{})
	case up && b.down != nil:
		back, b.down = b.down, nil
	}
	var ws []chan struct{}
	if up {
		for id, chs := range b.waiters {
			ws = append(ws, chs...)
			delete(b.waiters, id)
		}
	}
	b.mu.Unlock()
	if back != nil {
		close(back)
	}
	for _, ch := range ws {
		close(ch) // they look again, now that devices may be reached
	}
}

// Up implements hub.BusState.
func (b *Bus) Up() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.down == nil
}

// WaitUp implements hub.BusState.
func (b *Bus) WaitUp(ctx context.Context) error {
	b.mu.Lock()
	down := b.down
	b.mu.Unlock()
	if down == nil {
		return nil
	}
	select {
	case <-down:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// online is whether a device can be reached now with deviceFilter.
func (b *Bus) online(deviceID, deviceFilter string) bool {
	return b.Up() && b.t.Online(deviceID, deviceFilter)
}
