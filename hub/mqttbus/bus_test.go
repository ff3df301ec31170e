package mqttbus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/broker"
	"github.com/iotjobs/iotjobs/hub/mqttbus"
	"github.com/iotjobs/iotjobs/hub/mqttproto"
)

// wait bounds every wait for something that should happen; short deadlines
// are for calls that must end by their deadline.
const wait = 5 * time.Second

var allSubs = []string{mqttproto.MethodsSubscription, mqttproto.TwinResSubscription, mqttproto.DesiredSubscription}

// twinDoc is what the fake engine answers every twin GET with.
const twinDoc = `{"desired":{"fw":"2.0","$version":3},"reported":{"fw":"1.0","$version":4}}`

// fakeEvents is a recording hub.DeviceEvents.
type fakeEvents struct {
	fail  map[string]error // by device id; read-only once the harness runs
	conns chan presence
	// block, when set before devices send, holds every twin GET until it
	// is closed.
	block chan struct{}

	mu      sync.Mutex
	version int64
	patches []patchCall
}

type presence struct {
	id string
	up bool
}

type patchCall struct {
	id    string
	patch string
}

func (f *fakeEvents) DeviceConnected(id string, up bool) {
	// The broker calls this on its connection goroutines: never block.
	select {
	case f.conns <- presence{id, up}:
	default:
	}
}

func (f *fakeEvents) ReportedPatch(_ context.Context, id string, patch json.RawMessage) (int64, error) {
	if err := f.fail[id]; err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	f.patches = append(f.patches, patchCall{id, string(patch)})
	return f.version, nil
}

func (f *fakeEvents) TwinDocument(_ context.Context, id string) (json.RawMessage, error) {
	if f.block != nil {
		<-f.block
	}
	if err := f.fail[id]; err != nil {
		return nil, err
	}
	return json.RawMessage(twinDoc), nil
}

func (f *fakeEvents) recordedPatches() []patchCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]patchCall(nil), f.patches...)
}

// waitPresence waits for a presence event, skipping others.
func (f *fakeEvents) waitPresence(t *testing.T, id string, up bool) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case p := <-f.conns:
			if p == (presence{id, up}) {
				return
			}
		case <-deadline:
			t.Fatalf("device %s: no presence event %v", id, up)
		}
	}
}

// forward passes broker presence to the bus, which needs the broker first.
type forward struct{ bus *mqttbus.Bus }

func (f *forward) Connected(id string)          { f.bus.Connected(id) }
func (f *forward) Disconnected(id string)       { f.bus.Disconnected(id) }
func (f *forward) Subscribed(id, filter string) { f.bus.Subscribed(id, filter) }

type harness struct {
	broker *broker.Broker
	bus    *mqttbus.Bus
	ev     *fakeEvents
}

// start runs the embedded broker on 127.0.0.1:0 (plain TCP, any
// credentials) with a bus over it; fail makes the fake engine fail twin
// requests of the given devices.
func start(t *testing.T, fail map[string]error) *harness {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	h := &harness{ev: &fakeEvents{fail: fail, conns: make(chan presence, 1024), version: 4}}
	fw := &forward{}
	h.broker = broker.New(broker.Config{
		Addr:         "127.0.0.1:0",
		Authenticate: func(string, string, []byte) error { return nil },
		Events:       fw,
		Logger:       quiet,
	})
	h.bus = mqttbus.New(h.broker, h.ev)
	h.bus.Logger = quiet
	fw.bus = h.bus
	if err := h.bus.Open(); err != nil {
		t.Fatal(err)
	}
	if err := h.broker.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.broker.Close() })
	return h
}

type message struct {
	topic   string
	payload string
}

// dev is a device: a paho client as the Azure SDKs connect (clean
// session 0, MQTT 3.1.1).
type dev struct {
	id   string
	c    paho.Client
	msgs chan message
}

// connect connects device id and subscribes to subs. With respond set,
// every message goes to respond (on its own goroutine) instead of msgs.
func (h *harness) connect(t *testing.T, id string, respond func(*dev, message), subs ...string) *dev {
	t.Helper()
	d := &dev{id: id, msgs: make(chan message, 256)}
	o := paho.NewClientOptions().
		AddBroker("tcp://" + h.broker.Addr()).
		SetClientID(id).
		SetUsername("localhost/" + id + "/?api-version=2021-04-12").
		SetPassword("sas").
		SetCleanSession(false).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(wait).
		SetOrderMatters(false).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			msg := message{m.Topic(), string(m.Payload())}
			if respond != nil {
				respond(d, msg)
				return
			}
			d.msgs <- msg
		})
	d.c = paho.NewClient(o)
	if tok := d.c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { d.c.Disconnect(0) })
	for _, f := range subs {
		d.subscribe(t, f)
	}
	return d
}

func (d *dev) subscribe(t *testing.T, filter string) {
	t.Helper()
	tok := d.c.Subscribe(filter, 0, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("%s: subscribe %s: %v", d.id, filter, tok.Error())
	}
	if code := tok.(*paho.SubscribeToken).Result()[filter]; code > 1 {
		t.Fatalf("%s: subscribe %s: SUBACK 0x%02x", d.id, filter, code)
	}
}

func (d *dev) publish(t *testing.T, topic, payload string) {
	t.Helper()
	tok := d.c.Publish(topic, 0, false, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("%s: publish %s: %v", d.id, topic, tok.Error())
	}
}

func (d *dev) next(t *testing.T) message {
	t.Helper()
	select {
	case m := <-d.msgs:
		return m
	case <-time.After(wait):
		t.Fatalf("%s: no message", d.id)
		return message{}
	}
}

var syncN atomic.Int64

// sync makes a twin GET round trip. The broker handles a connection's
// packets in order and the bus sees them synchronously, so everything the
// device published before has been handled once the answer is here; and
// the hub's publishes to the device before it are delivered first, so the
// answer must be the next message.
func (d *dev) sync(t *testing.T) {
	t.Helper()
	rid := "sync-" + strconv.FormatInt(syncN.Add(1), 10)
	d.publish(t, mqttproto.TwinGetTopic(rid), " ")
	if m := d.next(t); m.topic != mqttproto.TwinResponseTopic(200, rid, 0) {
		t.Fatalf("%s: got %s %s, want the answer to twin GET %s", d.id, m.topic, m.payload, rid)
	}
}

// request reads a method request and returns its method name and $rid.
func (d *dev) request(t *testing.T) (method, rid, payload string) {
	t.Helper()
	m := d.next(t)
	msg, err := mqttproto.ParseTopic(m.topic)
	if err != nil || msg.Kind != mqttproto.MethodRequest {
		t.Fatalf("%s: got %s %s, want a method request (%v)", d.id, m.topic, m.payload, err)
	}
	return msg.Method, msg.RID, m.payload
}

type result struct {
	resp *hub.MethodResponse
	err  error
}

func invoke(ctx context.Context, bus *mqttbus.Bus, id, method string, payload json.RawMessage) chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := bus.InvokeMethod(ctx, id, method, payload)
		ch <- result{resp, err}
	}()
	return ch
}

func await(t *testing.T, ch chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		t.Fatal("InvokeMethod did not return")
		return result{}
	}
}

func TestInvokeMethod(t *testing.T) {
	h := start(t, nil)
	d := h.connect(t, "d1", nil, allSubs...)
	cases := []struct {
		name        string
		method      string
		payload     json.RawMessage
		wantRequest string
		status      int
		answer      string
		want        string // the response payload
	}{
		{name: "object", method: "reboot", payload: json.RawMessage(`{"delay":0}`), wantRequest: `{"delay":0}`,
			status: 200, answer: `{"rebooted":true}`, want: `{"rebooted":true}`},
		{name: "no payload is null", method: "ping", wantRequest: "null", status: 200, answer: `1`, want: `1`},
		{name: "empty payload is null", method: "ping", payload: json.RawMessage{}, wantRequest: "null",
			status: 200, answer: `"pong"`, want: `"pong"`},
		{name: "empty answer is null", method: "fire-and.forget_2", payload: json.RawMessage(`[1,2]`),
			wantRequest: `[1,2]`, status: 404, answer: "", want: "null"},
		{name: "blank answer is null", method: "m", payload: json.RawMessage(`"x"`), wantRequest: `"x"`,
			status: 500, answer: " \n ", want: "null"},
		{name: "answer is trimmed", method: "m", payload: json.RawMessage(`null`), wantRequest: `null`,
			status: 201, answer: ` {"a": [true]} `, want: `{"a": [true]}`},
		{name: "device status passes through", method: "m", payload: json.RawMessage(`{}`), wantRequest: `{}`,
			status: 999, answer: `{}`, want: `{}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			ch := invoke(ctx, h.bus, "d1", tc.method, tc.payload)
			method, rid, body := d.request(t)
			if method != tc.method || body != tc.wantRequest {
				t.Errorf("device got method %q body %q, want %q %q", method, body, tc.method, tc.wantRequest)
			}
			d.publish(t, mqttproto.MethodResponseTopic(tc.status, rid), tc.answer)
			r := await(t, ch)
			if r.err != nil {
				t.Fatalf("InvokeMethod: %v", r.err)
			}
			if r.resp.Status != tc.status || string(r.resp.Payload) != tc.want {
				t.Errorf("got %d %s, want %d %s", r.resp.Status, r.resp.Payload, tc.status, tc.want)
			}
		})
	}
}

func TestInvokeMethodInvalidAnswer(t *testing.T) {
	h := start(t, nil)
	d := h.connect(t, "d1", nil, allSubs...)
	cases := []struct{ name, answer string }{
		{"truncated", `{"a":`},
		{"text", `not json`},
		{"invalid UTF-8", "\xff"},
		{"trailing data", `{"a":1}}`},
		{"two values", `1 2`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			ch := invoke(ctx, h.bus, "d1", "m", nil)
			_, rid, _ := d.request(t)
			d.publish(t, mqttproto.MethodResponseTopic(200, rid), tc.answer)
			r := await(t, ch)
			if code := hub.ErrorCode(r.err); code != hub.CodeBadDeviceResponse || r.resp != nil {
				t.Fatalf("got %v, %v (code %q), want a %s error", r.resp, r.err, code, hub.CodeBadDeviceResponse)
			}
		})
	}
}

// TestInvokeMethodForeignReply checks that replies that are not the
// device's answer to this call never complete it.
func TestInvokeMethodForeignReply(t *testing.T) {
	cases := []struct {
		name string
		// act sends the stray replies while d1 holds the request $rid.
		act func(t *testing.T, h *harness, d1, d2 *dev, rid string)
	}{
		{"unknown rid", func(t *testing.T, h *harness, d1, d2 *dev, rid string) {
			d1.publish(t, mqttproto.MethodResponseTopic(200, "999999"), `{}`)
			d1.publish(t, mqttproto.MethodResponseTopic(200, rid+"0"), `{}`)
			d1.publish(t, mqttproto.MethodResponseTopic(200, "x"+rid), `{}`)
			d1.sync(t)
		}},
		{"another device with the right rid", func(t *testing.T, h *harness, d1, d2 *dev, rid string) {
			d2.publish(t, mqttproto.MethodResponseTopic(200, rid), `{"from":"d2"}`)
			d2.sync(t)
		}},
		{"another device on the first one's scoped topic", func(t *testing.T, h *harness, d1, d2 *dev, rid string) {
			d2.publish(t, mqttproto.Scoped("d1", mqttproto.MethodResponseTopic(200, rid)), `{"from":"d2"}`)
			d2.sync(t)
		}},
		{"malformed status", func(t *testing.T, h *harness, d1, d2 *dev, rid string) {
			d1.publish(t, "$iothub/methods/res/ok/?$rid="+rid, `{}`)
			d1.publish(t, "$iothub/methods/res/200/?$rid="+rid+"&$rid=1", `{}`)
			d1.sync(t)
		}},
		{"duplicate reply to an earlier call", func(t *testing.T, h *harness, d1, d2 *dev, rid string) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			ch := invoke(ctx, h.bus, "d1", "first", nil)
			_, first, _ := d1.request(t)
			d1.publish(t, mqttproto.MethodResponseTopic(200, first), `{"n":1}`)
			d1.publish(t, mqttproto.MethodResponseTopic(201, first), `{"n":2}`)
			d1.sync(t)
			r := await(t, ch)
			if r.err != nil || r.resp.Status != 200 || string(r.resp.Payload) != `{"n":1}` {
				t.Fatalf("first call: got %+v, %v, want 200 {\"n\":1}", r.resp, r.err)
			}
			d1.publish(t, mqttproto.MethodResponseTopic(202, first), `{"n":3}`)
			d1.sync(t)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, nil)
			d1 := h.connect(t, "d1", nil, allSubs...)
			d2 := h.connect(t, "d2", nil, allSubs...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			ch := invoke(ctx, h.bus, "d1", "m", nil)
			_, rid, _ := d1.request(t)
			tc.act(t, h, d1, d2, rid)
			r := await(t, ch)
			if !errors.Is(r.err, context.DeadlineExceeded) || r.resp != nil {
				t.Fatalf("got %+v, %v; want the call to end by its deadline", r.resp, r.err)
			}
		})
	}
}

func TestInvokeMethodNotOnline(t *testing.T) {
	h := start(t, nil)
	cases := []struct {
		name  string
		setup func(t *testing.T)
	}{
		{"never connected", func(t *testing.T) {}},
		{"connected without subscriptions", func(t *testing.T) {
			h.connect(t, "connected-without-subscriptions", nil)
		}},
		{"subscribed to twin only", func(t *testing.T) {
			h.connect(t, "subscribed-to-twin-only", nil, mqttproto.TwinResSubscription, mqttproto.DesiredSubscription)
		}},
		{"disconnected", func(t *testing.T) {
			d := h.connect(t, "disconnected", nil, allSubs...)
			d.c.Disconnect(0)
			h.ev.waitPresence(t, "disconnected", false)
		}},
		{"kicked", func(t *testing.T) {
			h.connect(t, "kicked", nil, allSubs...)
			h.bus.Kick("kicked")
			h.ev.waitPresence(t, "kicked", false)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			// A deadline far beyond the test's wait: the answer must not
			// come from it.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r := await(t, invoke(ctx, h.bus, strings.ReplaceAll(tc.name, " ", "-"), "m", nil))
			if !errors.Is(r.err, hub.ErrDeviceNotOnline) || r.resp != nil {
				t.Fatalf("got %+v, %v, want %v", r.resp, r.err, hub.ErrDeviceNotOnline)
			}
		})
	}
}

func TestWaitOnline(t *testing.T) {
	h := start(t, nil)
	waitOnline := func(ctx context.Context, id string) chan error {
		ch := make(chan error, 1)
		go func() { ch <- h.bus.WaitOnline(ctx, id) }()
		return ch
	}
	awaitErr := func(t *testing.T, ch chan error) error {
		t.Helper()
		select {
		case err := <-ch:
			return err
		case <-time.After(wait):
			t.Fatal("WaitOnline did not return")
			return nil
		}
	}
	pending := func(t *testing.T, ch chan error) {
		t.Helper()
		select {
		case err := <-ch:
			t.Fatalf("WaitOnline returned %v before the device subscribed to methods", err)
		default:
		}
	}
	cases := []struct {
		name string
		run  func(t *testing.T, id string)
	}{
		{"connects and subscribes later", func(t *testing.T, id string) {
			chs := []chan error{waitOnline(t.Context(), id), waitOnline(t.Context(), id), waitOnline(t.Context(), id)}
			d := h.connect(t, id, nil, mqttproto.TwinResSubscription, mqttproto.DesiredSubscription)
			d.sync(t)
			for _, ch := range chs {
				pending(t, ch)
			}
			d.subscribe(t, mqttproto.MethodsSubscription)
			for _, ch := range chs {
				if err := awaitErr(t, ch); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"already online", func(t *testing.T, id string) {
			h.connect(t, id, nil, allSubs...)
			if err := awaitErr(t, waitOnline(t.Context(), id)); err != nil {
				t.Fatal(err)
			}
		}},
		{"reconnects with its session", func(t *testing.T, id string) {
			d := h.connect(t, id, nil, allSubs...)
			d.c.Disconnect(0)
			h.ev.waitPresence(t, id, false)
			ch := waitOnline(t.Context(), id)
			h.connect(t, id, nil) // the session brings the subscriptions back
			if err := awaitErr(t, ch); err != nil {
				t.Fatal(err)
			}
		}},
		{"never comes", func(t *testing.T, id string) {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			if err := awaitErr(t, waitOnline(ctx, id)); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want %v", err, context.DeadlineExceeded)
			}
		}},
		{"comes without subscribing to methods", func(t *testing.T, id string) {
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			ch := waitOnline(ctx, id)
			h.connect(t, id, nil, mqttproto.TwinResSubscription)
			if err := awaitErr(t, ch); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want %v", err, context.DeadlineExceeded)
			}
		}},
		{"cancelled", func(t *testing.T, id string) {
			ctx, cancel := context.WithCancel(t.Context())
			ch := waitOnline(ctx, id)
			cancel()
			if err := awaitErr(t, ch); !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want %v", err, context.Canceled)
			}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, "w"+strconv.Itoa(i)) })
	}
}

// TestInvokeMethodConcurrent runs twice the window's worth of calls at
// once across 20 devices that answer each with what they were asked.
func TestInvokeMethodConcurrent(t *testing.T) {
	const devices, calls = 20, 2 * mqttbus.DefaultWindow
	h := start(t, nil)
	echo := func(d *dev, m message) {
		msg, err := mqttproto.ParseTopic(m.topic)
		if err != nil || msg.Kind != mqttproto.MethodRequest {
			return
		}
		status, _ := strconv.Atoi(msg.Method[1:]) // "s201" answers 201
		body := `{"dev":"` + d.id + `","req":` + m.payload + `}`
		d.c.Publish(mqttproto.MethodResponseTopic(status, msg.RID), 0, false, body) // not waited for: a handler must not block
	}
	for i := range devices {
		h.connect(t, fmt.Sprintf("c%02d", i), echo, mqttproto.MethodsSubscription)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			id := fmt.Sprintf("c%02d", i%devices)
			status := 200 + i%5
			resp, err := h.bus.InvokeMethod(ctx, id, "s"+strconv.Itoa(status), json.RawMessage(`{"i":`+strconv.Itoa(i)+`}`))
			want := `{"dev":"` + id + `","req":{"i":` + strconv.Itoa(i) + `}}`
			switch {
			case err != nil:
				errs <- fmt.Errorf("call %d: %w", i, err)
			case resp.Status != status || !bytes.Equal(resp.Payload, []byte(want)):
				errs <- fmt.Errorf("call %d: got %d %s, want %d %s", i, resp.Status, resp.Payload, status, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Errorf("%d of %d calls failed", n, calls)
	}
	if s := h.broker.Stats(); s.MessagesDropped != 0 || s.InflightDropped != 0 {
		t.Errorf("broker dropped messages: %+v", s)
	}
}

func TestPushDesired(t *testing.T) {
	h := start(t, nil)
	cases := []struct {
		name     string
		subs     []string // nil: the device never connects
		patch    string
		version  int64
		want     string // the notification's payload; "" for none
		wantCode string // the error's code; "" for none
	}{
		{name: "subscribed", subs: allSubs, patch: `{"fw":"2.1","route":null,"n":{"a":1}}`, version: 8,
			want: `{"fw":"2.1","route":null,"n":{"a":1},"$version":8}`},
		{name: "empty patch", subs: allSubs, patch: `{}`, version: 1, want: `{"$version":1}`},
		{name: "not subscribed to desired", subs: []string{mqttproto.MethodsSubscription, mqttproto.TwinResSubscription},
			patch: `{"fw":"2.1"}`, version: 9},
		{name: "offline", patch: `{"fw":"2.1"}`, version: 9},
		{name: "invalid patch", subs: allSubs, patch: `{"fw":`, version: 2, wantCode: hub.CodeArgumentInvalid},
		{name: "patch not an object", subs: allSubs, patch: `[1]`, version: 2, wantCode: hub.CodeArgumentInvalid},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "p" + strconv.Itoa(i)
			var d *dev
			if tc.subs != nil {
				d = h.connect(t, id, nil, tc.subs...)
			}
			err := h.bus.PushDesired(t.Context(), id, json.RawMessage(tc.patch), tc.version)
			if code := hub.ErrorCode(err); code != tc.wantCode {
				t.Fatalf("PushDesired: %v (code %q), want code %q", err, code, tc.wantCode)
			}
			if d == nil {
				return
			}
			if tc.want != "" {
				m := d.next(t)
				if m.topic != "$iothub/twin/PATCH/properties/desired/?$version="+strconv.FormatInt(tc.version, 10) {
					t.Errorf("topic %s", m.topic)
				}
				if !jsonEqual(t, m.payload, tc.want) {
					t.Errorf("payload %s, want %s", m.payload, tc.want)
				}
			}
			d.sync(t) // fails on any further message
		})
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func TestTwinRequests(t *testing.T) {
	fail := map[string]error{
		"gone":   hub.Errorf(hub.CodeDeviceNotFound, "device 'gone' not found"),
		"bad":    hub.Errorf(hub.CodeArgumentInvalid, "reported patch: too deep"),
		"broken": errors.New("disk on fire"),
	}
	h := start(t, fail)
	cases := []struct {
		name      string
		device    string
		topic     string
		payload   string
		wantTopic string
		want      string // the answer's payload, compared as JSON; "" for empty
		wantPatch string // what the engine got; "" for nothing
	}{
		{name: "GET", device: "t1", topic: "$iothub/twin/GET/?$rid=x", payload: " ",
			wantTopic: "$iothub/twin/res/200/?$rid=x", want: twinDoc},
		{name: "GET with escaped rid", device: "t1", topic: "$iothub/twin/GET/?$rid=a%26b%3Dc", payload: "",
			wantTopic: "$iothub/twin/res/200/?$rid=a%26b%3Dc", want: twinDoc},
		{name: "reported patch", device: "t1", topic: "$iothub/twin/PATCH/properties/reported/?$rid=y",
			payload: `{"battery":88,"fw":null}`, wantTopic: "$iothub/twin/res/204/?$rid=y&$version=5",
			wantPatch: `{"battery":88,"fw":null}`},
		{name: "second reported patch", device: "t2", topic: "$iothub/twin/PATCH/properties/reported/?$rid=543444ab-dc0d-4822-a697-3d795e684786",
			payload: `{"a":1}`, wantTopic: "$iothub/twin/res/204/?$rid=543444ab-dc0d-4822-a697-3d795e684786&$version=6",
			wantPatch: `{"a":1}`},
		{name: "GET of an unknown device", device: "gone", topic: "$iothub/twin/GET/?$rid=1",
			wantTopic: "$iothub/twin/res/404/?$rid=1", want: `{"errorCode":404001,"message":"device 'gone' not found"}`},
		{name: "rejected reported patch", device: "bad", topic: "$iothub/twin/PATCH/properties/reported/?$rid=2",
			payload: `{"a":{"b":{}}}`, wantTopic: "$iothub/twin/res/400/?$rid=2",
			want: `{"errorCode":400004,"message":"reported patch: too deep"}`},
		{name: "internal error", device: "broken", topic: "$iothub/twin/GET/?$rid=3",
			wantTopic: "$iothub/twin/res/500/?$rid=3", want: `{"errorCode":500001,"message":"disk on fire"}`},
	}
	devs := map[string]*dev{}
	for _, tc := range cases {
		if devs[tc.device] == nil {
			devs[tc.device] = h.connect(t, tc.device, nil, allSubs...)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := devs[tc.device]
			before := len(h.ev.recordedPatches())
			d.publish(t, tc.topic, tc.payload)
			m := d.next(t)
			if m.topic != tc.wantTopic {
				t.Errorf("topic %s, want %s", m.topic, tc.wantTopic)
			}
			if tc.want == "" && m.payload != "" || tc.want != "" && !jsonEqual(t, m.payload, tc.want) {
				t.Errorf("payload %q, want %q", m.payload, tc.want)
			}
			patches := h.ev.recordedPatches()[before:]
			switch {
			case tc.wantPatch == "" && len(patches) != 0:
				t.Errorf("engine got patches %v, want none", patches)
			case tc.wantPatch != "" && (len(patches) != 1 || patches[0] != patchCall{tc.device, tc.wantPatch}):
				t.Errorf("engine got patches %v, want %s from %s", patches, tc.wantPatch, tc.device)
			}
		})
	}
}

func TestPresence(t *testing.T) {
	h := start(t, nil)
	next := func(t *testing.T) presence {
		t.Helper()
		select {
		case p := <-h.ev.conns:
			return p
		case <-time.After(wait):
			t.Fatal("no presence event")
			return presence{}
		}
	}
	cases := []struct {
		name string
		end  func(d *dev)
	}{
		{"device disconnects", func(d *dev) { d.c.Disconnect(0) }},
		{"hub kicks", func(d *dev) { h.bus.Kick(d.id) }},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "e" + strconv.Itoa(i)
			d := h.connect(t, id, nil, mqttproto.MethodsSubscription)
			if p := next(t); p != (presence{id, true}) {
				t.Fatalf("got %+v, want %s connected", p, id)
			}
			tc.end(d)
			if p := next(t); p != (presence{id, false}) {
				t.Fatalf("got %+v, want %s disconnected", p, id)
			}
		})
	}
}

// TestTwinRequestFlood: a device with MaxTwinRequests twin requests in
// process gets 429 with an errorCode body for more at once, while another
// device's requests are still taken; when the work ends, every request
// has had an answer.
func TestTwinRequestFlood(t *testing.T) {
	h := start(t, nil)
	h.ev.block = make(chan struct{})
	flood := h.connect(t, "flood", nil, mqttproto.TwinResSubscription)
	calm := h.connect(t, "calm", nil, mqttproto.TwinResSubscription)
	const n = mqttbus.MaxTwinRequests + 5
	for i := range n {
		flood.publish(t, mqttproto.TwinGetTopic(fmt.Sprint("f", i)), " ")
	}
	for range n - mqttbus.MaxTwinRequests {
		m := flood.next(t)
		if !strings.HasPrefix(m.topic, "$iothub/twin/res/429/") || !strings.Contains(m.payload, `"errorCode":429001`) {
			t.Fatalf("over the limit: got %+v, want 429 with errorCode 429001", m)
		}
	}
	calm.publish(t, mqttproto.TwinGetTopic("c"), " ")
	close(h.ev.block)
	if m := calm.next(t); m.topic != "$iothub/twin/res/200/?$rid=c" {
		t.Errorf("the other device got %+v, want its twin", m)
	}
	for range mqttbus.MaxTwinRequests {
		if m := flood.next(t); !strings.HasPrefix(m.topic, "$iothub/twin/res/200/") {
			t.Errorf("admitted request answered %+v, want 200", m)
		}
	}
	// The limit is per request in process, not per connection lifetime.
	flood.publish(t, mqttproto.TwinGetTopic("again"), " ")
	if m := flood.next(t); m.topic != "$iothub/twin/res/200/?$rid=again" {
		t.Errorf("after the flood: got %+v, want the twin", m)
	}
}

// TestTelemetry: device-to-cloud messages are acknowledged (a QoS 1
// publish completes) and counted, with or without a property bag.
func TestTelemetry(t *testing.T) {
	h := start(t, nil)
	d := h.connect(t, "t1", nil, mqttproto.TwinResSubscription)
	for _, topic := range []string{"devices/t1/messages/events/", "devices/t1/messages/events/%24.ct=application%2Fjson&alert=no", "devices/t1/messages/events/bad%zzbag"} {
		tok := d.c.Publish(topic, 1, false, `{"temp":21}`)
		if !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish %s: not acknowledged: %v", topic, tok.Error())
		}
	}
	// Another device's telemetry topic is dropped by the broker, still
	// acknowledged, and not counted.
	if tok := d.c.Publish("devices/t2/messages/events/", 1, false, "x"); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish to another device: %v", tok.Error())
	}
	// The broker reads a connection's packets in order: once a later
	// twin GET is answered, the telemetry before it has been handled.
	d.publish(t, mqttproto.TwinGetTopic("barrier"), " ")
	d.next(t)
	if got := h.bus.Telemetry(); got != 3 {
		t.Errorf("Telemetry() = %d, want 3", got)
	}
}

// TestBrokerDown: while the transport has lost the broker no device is
// online: a call is refused as not sent (so it may be made again), a
// waiter waits, and the bus says it is down; when the broker is back
// the waiter looks again and the bus is up.
func TestBrokerDown(t *testing.T) {
	h := start(t, nil)
	h.connect(t, "bd", nil, allSubs...)
	if err := h.bus.WaitOnline(t.Context(), "bd"); err != nil {
		t.Fatal(err)
	}
	h.bus.BrokerUp(false)
	if h.bus.Up() {
		t.Fatal("Up while the broker is down")
	}
	if _, err := h.bus.InvokeMethod(t.Context(), "bd", "m", nil); !errors.Is(err, hub.ErrNotSent) {
		t.Fatalf("call while down: %v, want %v", err, hub.ErrNotSent)
	}
	online := make(chan error, 1)
	go func() { online <- h.bus.WaitOnline(t.Context(), "bd") }()
	up := make(chan error, 1)
	go func() { up <- h.bus.WaitUp(t.Context()) }()
	select {
	case err := <-online:
		t.Fatalf("WaitOnline returned %v while the broker is down", err)
	case err := <-up:
		t.Fatalf("WaitUp returned %v while the broker is down", err)
	default:
	}
	h.bus.BrokerUp(true)
	for what, ch := range map[string]chan error{"WaitUp": up, "WaitOnline": online} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
		case <-time.After(wait):
			t.Fatalf("%s did not return once the broker was back", what)
		}
	}
}
