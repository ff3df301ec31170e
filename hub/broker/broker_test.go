package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotjobs/iotjobs/internal/testcert"
)

const wait = 5 * time.Second

func testTLS(t *testing.T) (server, client *tls.Config) { return testcert.Pair(t) }

// recorder is an Events that records every call, in order.
type recorder struct{ ch chan string }

func (r *recorder) Connected(id string)          { r.ch <- "connected " + id }
func (r *recorder) Disconnected(id string)       { r.ch <- "disconnected " + id }
func (r *recorder) Subscribed(id, filter string) { r.ch <- "subscribed " + id + " " + filter }

// expect reads the next events and compares them with want.
func (r *recorder) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-r.ch:
			if got != w {
				t.Fatalf("event %q, want %q", got, w)
			}
		case <-time.After(wait):
			t.Fatalf("no event, want %q", w)
		}
	}
}

// none fails if an event is pending.
func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case got := <-r.ch:
		t.Fatalf("unexpected event %q", got)
	default:
	}
}

type harness struct {
	b         *Broker
	ev        *recorder
	clientTLS *tls.Config
	authCalls atomic.Int64
	gone      chan string // device ids whose disconnect handling finished
}

// start opens a broker over TLS on 127.0.0.1:0 that accepts the password
// "key-{clientID}".
func start(t *testing.T) *harness {
	t.Helper()
	return startWith(t, nil)
}

// startWith is start with cfg changed by change before the broker opens.
func startWith(t *testing.T, change func(*Config)) *harness {
	t.Helper()
	serverTLS, clientTLS := testTLS(t)
	h := &harness{ev: &recorder{ch: make(chan string, 256)}, clientTLS: clientTLS, gone: make(chan string, 64)}
	h.b = New(Config{
		Addr: "127.0.0.1:0",
		TLS:  serverTLS,
		Authenticate: func(clientID, username string, password []byte) error {
			h.authCalls.Add(1)
			if string(password) != "key-"+clientID {
				return errors.New("bad key")
			}
			return nil
		},
		Events: h.ev,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if change != nil {
		change(&h.b.cfg)
	}
	h.b.afterDisconnect = func(id string) { h.gone <- id }
	if err := h.b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.b.Close() })
	return h
}

type message struct {
	topic   string
	payload string
}

type dev struct {
	c    paho.Client
	msgs chan message
	lost chan error
	tok  *paho.ConnectToken
}

type dialOpt func(*paho.ClientOptions)

func clean(o *paho.ClientOptions) { o.SetCleanSession(true) }

func username(u string) dialOpt {
	return func(o *paho.ClientOptions) { o.SetUsername(u) }
}

func password(p string) dialOpt {
	return func(o *paho.ClientOptions) { o.SetPassword(p) }
}

// connect connects device id as an Azure device SDK does (clean session 0)
// and returns once the CONNACK arrived; the connect error is in d.tok.
func (h *harness) connect(t *testing.T, id string, opts ...dialOpt) *dev {
	t.Helper()
	d := &dev{msgs: make(chan message, 64), lost: make(chan error, 1)}
	o := paho.NewClientOptions().
		AddBroker("ssl://" + h.b.Addr()).
		SetTLSConfig(h.clientTLS).
		SetClientID(id).
		SetUsername("localhost/" + id + "/?api-version=2021-04-12").
		SetPassword("key-" + id).
		SetCleanSession(false).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(wait).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			d.msgs <- message{m.Topic(), string(m.Payload())}
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) { d.lost <- err })
	for _, f := range opts {
		f(o)
	}
	d.c = paho.NewClient(o)
	d.tok = d.c.Connect().(*paho.ConnectToken)
	if !d.tok.WaitTimeout(wait) {
		t.Fatalf("connect %s: no CONNACK", id)
	}
	t.Cleanup(func() { d.c.Disconnect(0) })
	return d
}

// mustConnect is connect that fails the test on a refused connection.
func (h *harness) mustConnect(t *testing.T, id string, opts ...dialOpt) *dev {
	t.Helper()
	d := h.connect(t, id, opts...)
	if err := d.tok.Error(); err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return d
}

// subscribe subscribes to filters at QoS 0 and returns the SUBACK codes.
func (d *dev) subscribe(t *testing.T, filters map[string]byte) map[string]byte {
	t.Helper()
	tok := d.c.SubscribeMultiple(filters, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %v: %v", filters, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()
}

func (d *dev) mustSubscribe(t *testing.T, filter string) {
	t.Helper()
	if code := d.subscribe(t, map[string]byte{filter: 0})[filter]; code != 0 {
		t.Fatalf("subscribe %s: SUBACK 0x%02x", filter, code)
	}
}

func (d *dev) publish(t *testing.T, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := d.c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// next returns the device's next message.
func (d *dev) next(t *testing.T) message {
	t.Helper()
	select {
	case m := <-d.msgs:
		return m
	case <-time.After(wait):
		t.Fatal("no message")
		return message{}
	}
}

func (d *dev) waitLost(t *testing.T) {
	t.Helper()
	select {
	case <-d.lost:
	case <-time.After(wait):
		t.Fatal("connection not closed")
	}
}

// inbox subscribes the hub side (inline client) to filter.
func inbox(t *testing.T, b *Broker, filter string) chan message {
	t.Helper()
	ch := make(chan message, 64)
	if err := b.Subscribe(filter, func(topic string, payload []byte) {
		ch <- message{topic, string(payload)}
	}); err != nil {
		t.Fatal(err)
	}
	return ch
}

func recv(t *testing.T, ch chan message) message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(wait):
		t.Fatal("no message")
		return message{}
	}
}

func TestAuthenticate(t *testing.T) {
	h := start(t)
	for _, tc := range []struct {
		name      string
		id        string
		opts      []dialOpt
		wantCode  byte
		wantCalls int64 // Authenticate calls
	}{
		{"accepted", "d1", nil, 0, 1},
		{"username without question mark", "d2", []dialOpt{username("localhost/d2/api-version=2020-09-30")}, 0, 1},
		{"wrong key", "d3", []dialOpt{password("key-d4")}, 5, 1},
		{"username names another device", "d4", []dialOpt{username("localhost/d5/?api-version=2021-04-12")}, 5, 0},
		{"username without host", "d5", []dialOpt{username("d5/?api-version=2021-04-12")}, 5, 0},
		{"no username", "d6", []dialOpt{username("")}, 5, 0},
		{"client id with wildcard", "d+7", nil, 2, 0},
		{"module identity", "d8/m1", nil, 0, 1},
		{"module username names its device", "d9/m1", []dialOpt{username("localhost/d9/?api-version=2021-04-12")}, 5, 0},
		{"module id with wildcard", "d9/m+1", nil, 2, 0},
		{"module id empty", "d9/", nil, 2, 0},
		{"module key with two slashes", "d9/m1/x", nil, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.authCalls.Load()
			d := h.connect(t, tc.id, tc.opts...)
			if got := d.tok.ReturnCode(); got != tc.wantCode {
				t.Errorf("CONNACK %d, want %d (err %v)", got, tc.wantCode, d.tok.Error())
			}
			if got := h.authCalls.Load() - before; got != tc.wantCalls {
				t.Errorf("Authenticate called %d times, want %d", got, tc.wantCalls)
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	h := start(t)
	responses := inbox(t, h.b, "devices/+/$iothub/methods/res/#")
	telemetry := inbox(t, h.b, "devices/+/messages/events/#")

	d1 := h.mustConnect(t, "d1")
	d1.mustSubscribe(t, "$iothub/methods/POST/#")
	// A device (or simulator) using the device-scoped form keeps it.
	d3 := h.mustConnect(t, "d3")
	d3.mustSubscribe(t, "devices/d3/$iothub/methods/POST/#")

	for _, tc := range []struct {
		name      string
		d         *dev
		publish   string
		wantTopic string
	}{
		{"short form", d1, "devices/d1/$iothub/methods/POST/m/?$rid=1", "$iothub/methods/POST/m/?$rid=1"},
		{"device-scoped form", d3, "devices/d3/$iothub/methods/POST/m/?$rid=2", "devices/d3/$iothub/methods/POST/m/?$rid=2"},
	} {
		t.Run("to device "+tc.name, func(t *testing.T) {
			if err := h.b.Publish(tc.publish, []byte(`{"a":1}`)); err != nil {
				t.Fatal(err)
			}
			if got, want := tc.d.next(t), (message{tc.wantTopic, `{"a":1}`}); got != want {
				t.Errorf("device got %+v, want %+v", got, want)
			}
		})
	}

	t.Run("from device", func(t *testing.T) {
		d1.publish(t, "$iothub/methods/res/200/?$rid=1", 0, false, `{"ok":true}`)
		if got, want := recv(t, responses), (message{"devices/d1/$iothub/methods/res/200/?$rid=1", `{"ok":true}`}); got != want {
			t.Errorf("hub got %+v, want %+v", got, want)
		}
		d3.publish(t, "devices/d3/$iothub/methods/res/500/?$rid=2", 0, false, ``)
		if got, want := recv(t, responses), (message{"devices/d3/$iothub/methods/res/500/?$rid=2", ``}); got != want {
			t.Errorf("hub got %+v, want %+v", got, want)
		}
	})

	t.Run("telemetry retain is not stored", func(t *testing.T) {
		d1.publish(t, "devices/d1/messages/events/%24.ct=application%2Fjson", 1, true, `{"temp":21}`)
		if got, want := recv(t, telemetry), (message{"devices/d1/messages/events/%24.ct=application%2Fjson", `{"temp":21}`}); got != want {
			t.Errorf("hub got %+v, want %+v", got, want)
		}
		for topic := range h.b.srv.Topics.Retained.GetAll() {
			if strings.HasPrefix(topic, devicesPrefix) {
				t.Errorf("retained message stored on %s", topic)
			}
		}
	})
}

func TestIsolation(t *testing.T) {
	h := start(t)
	d1 := h.mustConnect(t, "d1")
	d1.mustSubscribe(t, "$iothub/methods/POST/#")
	d2 := h.mustConnect(t, "d2")
	d2.mustSubscribe(t, "$iothub/methods/POST/#")

	t.Run("subscriptions", func(t *testing.T) {
		codes := d2.subscribe(t, map[string]byte{
			"#":                                 0,
			"devices/d1/#":                      0,
			"devices/d1/$iothub/methods/POST/#": 0,
			"devices/+/$iothub/methods/POST/#":  0,
			"$iothub/#":                         0,
			"$iothub/methods/POST/reboot":       0,
			"$SYS/#":                            0,
			"devices/d2/#":                      0,
			"devices/d2/messages/events/#":      0,
			"$iothub/twin/res/#":                0,
			"$iothub/twin/PATCH/properties/desired/#": 2,
			"devices/d2/messages/devicebound/#":       1,
		})
		want := map[string]byte{
			"#":                                 0x80,
			"devices/d1/#":                      0x80,
			"devices/d1/$iothub/methods/POST/#": 0x80,
			"devices/+/$iothub/methods/POST/#":  0x80,
			"$iothub/#":                         0x80,
			"$iothub/methods/POST/reboot":       0x80,
			"$SYS/#":                            0x80,
			"devices/d2/#":                      0x80,
			"devices/d2/messages/events/#":      0x80,
			"$iothub/twin/res/#":                0,
			"$iothub/twin/PATCH/properties/desired/#": 1, // QoS 2 granted as 1
			"devices/d2/messages/devicebound/#":       1,
		}
		for f, w := range want {
			if codes[f] != w {
				t.Errorf("SUBACK for %q = 0x%02x, want 0x%02x", f, codes[f], w)
			}
		}
	})

	t.Run("d2 does not get d1's method requests", func(t *testing.T) {
		if err := h.b.Publish("devices/d1/$iothub/methods/POST/m/?$rid=1", []byte("for d1")); err != nil {
			t.Fatal(err)
		}
		if err := h.b.Publish("devices/d2/$iothub/methods/POST/m/?$rid=2", []byte("for d2")); err != nil {
			t.Fatal(err)
		}
		if got := d1.next(t); got.payload != "for d1" {
			t.Errorf("d1 got %+v", got)
		}
		// Messages to d2 arrive in order, so d1's would come first.
		if got := d2.next(t); got.payload != "for d2" {
			t.Errorf("d2 got %+v, want only its own request", got)
		}
	})

	t.Run("d2 cannot publish as d1", func(t *testing.T) {
		all := inbox(t, h.b, "devices/#")
		for _, topic := range []string{
			"devices/d1/messages/events/x",
			"devices/d1/$iothub/methods/res/200/?$rid=1",
			"$iothub/methods/POST/m/?$rid=3", // hub-to-device topic
			"elsewhere",
		} {
			d2.publish(t, topic, 1, false, "forged")
			d2.publish(t, topic, 0, false, "forged")
		}
		d2.publish(t, "$iothub/methods/res/200/?$rid=2", 0, false, "real")
		// d2's publishes are routed in order, so a forged one would come first.
		if got, want := recv(t, all), (message{"devices/d2/$iothub/methods/res/200/?$rid=2", "real"}); got != want {
			t.Errorf("hub got %+v, want %+v", got, want)
		}
		if err := h.b.Publish("devices/d1/$iothub/methods/POST/m/?$rid=4", []byte("sentinel")); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, all); got.payload != "sentinel" {
			t.Errorf("hub got %+v, want the sentinel", got)
		}
		if got := d1.next(t); got.payload != "sentinel" {
			t.Errorf("d1 got %+v, want only the sentinel", got)
		}
	})
}

func TestPresence(t *testing.T) {
	h := start(t)
	const methods = "$iothub/methods/POST/#"
	if h.b.Online("d1", methods) {
		t.Fatal("online before connecting")
	}
	d1 := h.mustConnect(t, "d1")
	h.ev.expect(t, "connected d1")
	if h.b.Online("d1", methods) {
		t.Error("online before subscribing")
	}
	d1.mustSubscribe(t, methods)
	h.ev.expect(t, "subscribed d1 "+methods)
	for _, f := range []string{methods, "devices/d1/$iothub/methods/POST/#"} {
		if !h.b.Online("d1", f) {
			t.Errorf("Online(d1, %s) = false after subscribing", f)
		}
	}
	if h.b.Online("d1", "$iothub/twin/res/#") {
		t.Error("online for a filter not subscribed")
	}
	if h.b.Online("d2", methods) {
		t.Error("another device online")
	}
	if s := h.b.Stats(); s.Clients != 1 || s.InflightDropped != 0 || s.MessagesDropped != 0 {
		t.Errorf("Stats = %+v, want 1 client and no drops", s)
	}

	tok := d1.c.Unsubscribe(methods)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if h.b.Online("d1", methods) {
		t.Error("online after unsubscribing")
	}
	d1.mustSubscribe(t, methods)
	h.ev.expect(t, "subscribed d1 "+methods)

	d1.c.Disconnect(100)
	h.ev.expect(t, "disconnected d1")
	if h.b.Online("d1", methods) {
		t.Error("online after disconnecting")
	}
	h.ev.none(t)
}

func TestTakeover(t *testing.T) {
	h := start(t)
	const methods = "$iothub/methods/POST/#"
	old := h.mustConnect(t, "d1")
	old.mustSubscribe(t, methods)
	h.ev.expect(t, "connected d1", "subscribed d1 "+methods)

	// The SDK's token renewal: a new connection, same id, clean=0, no
	// SUBSCRIBE.
	cur := h.mustConnect(t, "d1", password("key-d1"))
	if !cur.tok.SessionPresent() {
		t.Error("session not present")
	}
	old.waitLost(t)
	select {
	case <-h.gone:
	case <-time.After(wait):
		t.Fatal("old connection's disconnect not handled")
	}
	h.ev.expect(t, "connected d1", "subscribed d1 "+methods)
	if !h.b.Online("d1", methods) {
		t.Error("offline after takeover")
	}
	if err := h.b.Publish("devices/d1/$iothub/methods/POST/m/?$rid=1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := cur.next(t); got.topic != "$iothub/methods/POST/m/?$rid=1" {
		t.Errorf("new connection got %+v", got)
	}

	cur.c.Disconnect(100)
	h.ev.expect(t, "disconnected d1")
	if err := h.b.Close(); err != nil { // waits for every connection goroutine
		t.Fatal(err)
	}
	h.ev.none(t)
}

func TestPersistentSession(t *testing.T) {
	h := start(t)
	const methods = "$iothub/methods/POST/#"
	first := h.mustConnect(t, "d1")
	first.mustSubscribe(t, methods)
	first.c.Disconnect(100)
	h.ev.expect(t, "connected d1", "subscribed d1 "+methods, "disconnected d1")

	again := h.mustConnect(t, "d1") // no SUBSCRIBE
	if !again.tok.SessionPresent() {
		t.Error("session not present")
	}
	h.ev.expect(t, "connected d1", "subscribed d1 "+methods)
	if !h.b.Online("d1", methods) {
		t.Error("offline with a restored subscription")
	}
	if err := h.b.Publish("devices/d1/$iothub/methods/POST/reboot/?$rid=2", []byte(`{"delay":0}`)); err != nil {
		t.Fatal(err)
	}
	if got, want := again.next(t), (message{"$iothub/methods/POST/reboot/?$rid=2", `{"delay":0}`}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	again.c.Disconnect(100)
	h.ev.expect(t, "disconnected d1")

	// A clean session drops the stored subscriptions.
	fresh := h.mustConnect(t, "d1", clean)
	if fresh.tok.SessionPresent() {
		t.Error("session present for a clean session")
	}
	h.ev.expect(t, "connected d1")
	if h.b.Online("d1", methods) {
		t.Error("clean session kept the subscription")
	}
	fresh.mustSubscribe(t, "$iothub/twin/res/#")
	_ = h.b.Publish("devices/d1/$iothub/methods/POST/reboot/?$rid=3", []byte("stale"))
	_ = h.b.Publish("devices/d1/$iothub/twin/res/200/?$rid=4", []byte("sentinel"))
	if got := fresh.next(t); got.payload != "sentinel" {
		t.Errorf("got %+v, want only the sentinel", got)
	}
}

// TestTokenExpiry: the broker closes a connection when its credentials
// expire, and not before; a connection that ends first leaves no timer.
func TestTokenExpiry(t *testing.T) {
	expires := map[string]time.Time{}
	var mu sync.Mutex
	h := startWith(t, func(c *Config) {
		c.Expires = func(password []byte) time.Time {
			mu.Lock()
			defer mu.Unlock()
			return expires[string(password)]
		}
	})
	mu.Lock()
	expires["key-short"] = time.Now().Add(time.Second)
	expires["key-long"] = time.Now().Add(time.Hour)
	mu.Unlock()
	short := h.mustConnect(t, "short")
	h.ev.expect(t, "connected short")
	long := h.mustConnect(t, "long")
	h.ev.expect(t, "connected long")
	short.waitLost(t)
	h.ev.expect(t, "disconnected short")
	if !long.c.IsConnectionOpen() {
		t.Error("the connection with an hour left was closed too")
	}
	long.c.Disconnect(100)
	h.ev.expect(t, "disconnected long")
	n := 0
	h.b.expiry.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d expiry timers left after every connection ended", n)
	}
}

func TestQoS2PublishDisconnects(t *testing.T) {
	h := start(t)
	responses := inbox(t, h.b, "devices/+/$iothub/methods/res/#")
	d1 := h.mustConnect(t, "d1")
	h.ev.expect(t, "connected d1")
	d1.c.Publish("$iothub/methods/res/200/?$rid=1", 2, false, "x")
	d1.waitLost(t)
	h.ev.expect(t, "disconnected d1")
	select {
	case m := <-responses:
		t.Errorf("QoS 2 publish was routed: %+v", m)
	default:
	}
}

func TestKick(t *testing.T) {
	h := start(t)
	h.b.Kick("nobody") // no connection: nothing happens
	d1 := h.mustConnect(t, "d1")
	d1.mustSubscribe(t, "$iothub/methods/POST/#")
	h.ev.expect(t, "connected d1", "subscribed d1 $iothub/methods/POST/#")
	h.b.Kick("d1")
	d1.waitLost(t)
	h.ev.expect(t, "disconnected d1")
	if h.b.Online("d1", "$iothub/methods/POST/#") {
		t.Error("online after Kick")
	}
	// The session survives a kick.
	again := h.mustConnect(t, "d1")
	if !again.tok.SessionPresent() {
		t.Error("session lost by Kick")
	}
	h.ev.expect(t, "connected d1", "subscribed d1 $iothub/methods/POST/#")
}

func TestAPIErrors(t *testing.T) {
	t.Run("open without Authenticate", func(t *testing.T) {
		b := New(Config{Addr: "127.0.0.1:0"})
		defer b.Close()
		if err := b.Open(context.Background()); err == nil {
			t.Error("Open succeeded")
		}
	})
	t.Run("open without address", func(t *testing.T) {
		b := New(Config{Authenticate: func(string, string, []byte) error { return nil }})
		defer b.Close()
		if err := b.Open(context.Background()); err == nil {
			t.Error("Open succeeded")
		}
	})
	h := start(t)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"publish wildcard", h.b.Publish("devices/+/x", nil)},
		{"publish empty topic", h.b.Publish("", nil)},
		{"publish $SYS", h.b.Publish("$SYS/x", nil)},
		{"subscribe bad filter", h.b.Subscribe("a/#/b", func(string, []byte) {})},
		{"subscribe nil handler", h.b.Subscribe("a/#", nil)},
		{"open twice", h.b.Open(context.Background())},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := h.b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := h.b.Publish("devices/d1/x", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
}

func TestWill(t *testing.T) {
	h := start(t)
	all := inbox(t, h.b, "devices/#")
	will := func(topic string) dialOpt {
		return func(o *paho.ClientOptions) { o.SetWill(topic, "gone", 0, true) }
	}
	// Refused Wills: after each device is dropped, a message from a
	// well-behaved device is the next thing the hub sees. (Whether mochi
	// sends an allowed Will on a broker-side Kick is racy in mochi itself:
	// its read loop skips the Will when it finds the client stopped between
	// two reads; the Will topic rules are what this test is about.)
	probe := h.mustConnect(t, "probe")
	h.ev.expect(t, "connected probe")
	for _, tc := range []struct {
		name, id, will string
	}{
		{"another device's method request", "d2", "devices/d3/$iothub/methods/POST/m/?$rid=1"},
		{"own method request", "d4", "$iothub/methods/POST/m/?$rid=1"},
		{"another device's telemetry", "d5", "devices/d6/messages/events/x=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := h.mustConnect(t, tc.id, will(tc.will))
			h.ev.expect(t, "connected "+tc.id)
			h.b.Kick(tc.id)
			d.waitLost(t)
			h.ev.expect(t, "disconnected "+tc.id)
			sentinel := "devices/probe/messages/events/after=" + tc.id
			probe.publish(t, sentinel, 1, false, "x")
			if m := recv(t, all); m.topic != sentinel {
				t.Errorf("hub got %+v before the probe's message: a refused Will was published", m)
			}
		})
	}
	for topic := range h.b.srv.Topics.Retained.GetAll() {
		if strings.HasPrefix(topic, devicesPrefix) {
			t.Errorf("retained will stored on %s", topic)
		}
	}
}

func TestKeepaliveCapped(t *testing.T) {
	h := start(t)
	for _, tc := range []struct {
		name      string
		keepalive time.Duration
		want      uint16
	}{
		{"sdk default", 180 * time.Second, 180},
		{"none", 0, maxKeepalive},
		{"above azure's cap", time.Hour, maxKeepalive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "k" + strings.ReplaceAll(tc.name, " ", "-")
			h.mustConnect(t, id, func(o *paho.ClientOptions) { o.SetKeepAlive(tc.keepalive) })
			h.b.mu.RLock()
			got := h.b.devices[id].cl.State.Keepalive
			h.b.mu.RUnlock()
			if got != tc.want {
				t.Errorf("keep-alive %d, want %d", got, tc.want)
			}
		})
	}
}
