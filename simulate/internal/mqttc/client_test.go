package mqttc

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/iotjobs/iotjobs/internal/testcert"
)

// waitTime bounds every wait for an event; tests never sleep.
const waitTime = 10 * time.Second

// testBroker is an in-process mochi broker on an ephemeral loopback port.
// It refuses the password "bad" and subscriptions to "forbidden/#", and
// reports every packet it reads from a client, as this package's codec
// reads it from the bytes on the connection.
type testBroker struct {
	srv   *mqtt.Server
	addr  string
	tls   *tls.Config // what a client needs to trust it, when it speaks TLS
	reads chan readEvent
}

// readEvent is a packet the broker read from a client.
type readEvent struct {
	client string // the client id of the connection's CONNECT
	h      header
	body   []byte
}

func startBroker(t *testing.T, useTLS bool) *testBroker {
	t.Helper()
	b := &testBroker{reads: make(chan readEvent, 1000)}
	b.srv = mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	ledger := &auth.Ledger{
		Auth: auth.AuthRules{{Password: "bad", Allow: false}, {Allow: true}},
		ACL:  auth.ACLRules{{Filters: auth.Filters{"forbidden/#": auth.Deny}}},
	}
	if err := b.srv.AddHook(new(auth.Hook), &auth.Options{Ledger: ledger}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	if useTLS {
		server, client := testCerts(t)
		ln = tls.NewListener(ln, server)
		b.tls = client
	}
	if err := b.srv.AddListener(listeners.NewNet("test", sniffListener{ln, b})); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// sniffListener hands the broker connections whose reads are also
// decoded into b.reads.
type sniffListener struct {
	net.Listener
	b *testBroker
}

func (l sniffListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go l.b.sniff(pr)
	return &sniffConn{Conn: nc, w: pw}, nil
}

type sniffConn struct {
	net.Conn
	w *io.PipeWriter
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.w.Write(p[:n]) // fails only once the sniffer has stopped
	}
	if err != nil {
		c.w.CloseWithError(err)
	}
	return n, err
}

func (c *sniffConn) Close() error {
	c.w.Close()
	return c.Conn.Close()
}

// sniff decodes the packets of one connection into b.reads.
func (b *testBroker) sniff(r *io.PipeReader) {
	defer r.CloseWithError(errors.New("sniffer stopped"))
	br := bufio.NewReader(r)
	client := ""
	for {
		h, err := readHeader(br)
		if err != nil {
			return
		}
		body := make([]byte, h.length)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		// CONNECT's variable header is 10 bytes; the client id follows.
		if h.typ == typeConnect && len(body) >= 12 {
			if n := int(body[10])<<8 | int(body[11]); 12+n <= len(body) {
				client = string(body[12 : 12+n])
			}
		}
		select {
		case b.reads <- readEvent{client: client, h: h, body: body}:
		default: // a test that does not look at reads must not block the broker
		}
	}
}

// waitRead waits for the broker to read a packet of type typ from client.
func (b *testBroker) waitRead(t *testing.T, client string, typ byte) readEvent {
	t.Helper()
	deadline := time.After(waitTime)
	for {
		select {
		case e := <-b.reads:
			if e.client == client && e.h.typ == typ {
				return e
			}
		case <-deadline:
			t.Fatalf("the broker read no %s from %s", packetName(typ), client)
		}
	}
}

// watch connects another client, "watcher", subscribed to filter at QoS
// 1, and returns the messages it receives.
func (b *testBroker) watch(t *testing.T, filter string) <-chan message {
	t.Helper()
	c, ev := newClient(t, b, "watcher", nil)
	ctx := testContext(t)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, map[string]byte{filter: 1}, ev.handler); err != nil {
		t.Fatal(err)
	}
	return ev.msgs
}

func testCerts(t *testing.T) (server, client *tls.Config) { return testcert.Pair(t) }

// events records a client's callbacks and messages.
type events struct {
	connects chan bool
	lost     chan error
	msgs     chan message
}

type message struct {
	topic   string
	payload string
}

// newClient returns a client of b with id, recording into its events; it
// is disconnected at the end of the test.
func newClient(t *testing.T, b *testBroker, id string, edit func(*Options)) (*Client, *events) {
	t.Helper()
	ev := &events{connects: make(chan bool, 10), lost: make(chan error, 10), msgs: make(chan message, 10)}
	o := Options{
		Addr:             b.addr,
		TLS:              b.tls,
		ClientID:         id,
		Credentials:      func() (string, string) { return id, "good" },
		ConnectTimeout:   waitTime,
		OnConnect:        func(first bool) { ev.connects <- first },
		OnConnectionLost: func(err error) { ev.lost <- err },
	}
	if edit != nil {
		edit(&o)
	}
	c := New(o)
	t.Cleanup(c.Disconnect)
	return c, ev
}

func (ev *events) handler(topic string, payload []byte) { ev.msgs <- message{topic, string(payload)} }

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTime):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitTime)
	t.Cleanup(cancel)
	return ctx
}

func TestConnect(t *testing.T) {
	tests := []struct {
		name     string
		tls      bool
		password string
		wantCode byte // 0: connected
	}{
		{name: "tcp", password: "good"},
		{name: "tls", tls: true, password: "good"},
		{name: "bad credentials", password: "bad", wantCode: 5},
		{name: "bad credentials over tls", tls: true, password: "bad", wantCode: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, tt.tls)
			c, ev := newClient(t, b, "dev1", func(o *Options) {
				o.Credentials = func() (string, string) { return "dev1", tt.password }
			})
			err := c.Connect(testContext(t))
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}
				if first := wait(t, ev.connects, "OnConnect"); !first {
					t.Error("OnConnect(false) after Connect, want true")
				}
				if !c.IsConnected() {
					t.Error("IsConnected is false after Connect")
				}
				return
			}
			var ce *ConnackError
			if !errors.As(err, &ce) || ce.Code != tt.wantCode {
				t.Fatalf("Connect: %v, want a ConnackError with code %d", err, tt.wantCode)
			}
			if want := "CONNACK return code 5"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if c.IsConnected() {
				t.Error("IsConnected after a refused Connect")
			}
		})
	}
}

func TestConnectNoBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := New(Options{Addr: addr, ClientID: "x"})
	if err := c.Connect(testContext(t)); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("Connect to a closed port: %v, want an error", err)
	}
}

func TestReceive(t *testing.T) {
	for _, qos := range []byte{0, 1} {
		t.Run("qos"+string('0'+qos), func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, false)
			c, ev := newClient(t, b, "dev1", nil)
			ctx := testContext(t)
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.Subscribe(ctx, map[string]byte{"dev/+/in": 1, "other": 0}, ev.handler); err != nil {
				t.Fatal(err)
			}
			if err := b.srv.Publish("dev/1/in", []byte("hello"), false, qos); err != nil {
				t.Fatal(err)
			}
			if m := wait(t, ev.msgs, "the message"); m != (message{"dev/1/in", "hello"}) {
				t.Errorf("got %+v", m)
			}
			if qos == 1 {
				b.waitRead(t, "dev1", typePuback)
			}
		})
	}
}

func TestSubscribeRefused(t *testing.T) {
	b := startBroker(t, false)
	c, ev := newClient(t, b, "dev1", nil)
	ctx := testContext(t)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	err := c.Subscribe(ctx, map[string]byte{"allowed/#": 0, "forbidden/#": 0}, ev.handler)
	if err == nil || !strings.Contains(err.Error(), "forbidden/#") || strings.Contains(err.Error(), "allowed/#") {
		t.Fatalf("Subscribe: %v, want an error naming forbidden/# only", err)
	}
}

func TestPublish(t *testing.T) {
	for _, qos := range []byte{0, 1} {
		t.Run("qos"+string('0'+qos), func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, true)
			got := b.watch(t, "up/#")
			c, _ := newClient(t, b, "dev1", nil)
			ctx := testContext(t)
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			for i := range 3 { // packet ids advance
				payload := string(rune('a' + i))
				if err := c.Publish(ctx, "up/1", qos, false, []byte(payload)); err != nil {
					t.Fatalf("Publish %d: %v", i, err)
				}
				e := b.waitRead(t, "dev1", typePublish)
				pk, err := decodeBody(e.h, e.body)
				if err != nil || pk.topic != "up/1" || string(pk.payload) != payload || pk.qos != qos {
					t.Errorf("broker read %q %q at QoS %d (%v)", pk.topic, pk.payload, pk.qos, err)
				}
				if qos == 1 && pk.id != uint16(i+1) {
					t.Errorf("publish %d has packet id %d, want %d", i, pk.id, i+1)
				}
				if m := wait(t, got, "the message at the watcher"); m != (message{"up/1", payload}) {
					t.Errorf("watcher got %+v", m)
				}
			}
		})
	}
}

func TestPublishNotConnected(t *testing.T) {
	c := New(Options{Addr: "127.0.0.1:1", ClientID: "x"})
	if err := c.Publish(t.Context(), "t", 0, false, nil); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Publish: %v, want ErrNotConnected", err)
	}
	if err := c.Subscribe(t.Context(), map[string]byte{"t": 0}, nil); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Subscribe: %v, want ErrNotConnected", err)
	}
}

func TestWillOnAbruptClose(t *testing.T) {
	b := startBroker(t, false)
	wills := b.watch(t, "will/#")
	c, ev := newClient(t, b, "dev1", func(o *Options) {
		o.Will = &Will{Topic: "will/dev1", Payload: []byte("gone"), QoS: 1}
	})
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	c.conn().nc.Close() // no DISCONNECT: the broker must publish the Will
	if m := wait(t, wills, "the Will"); m != (message{"will/dev1", "gone"}) {
		t.Errorf("Will %+v", m)
	}
	wait(t, ev.lost, "OnConnectionLost")
}

func TestReconnectAfterKick(t *testing.T) {
	b := startBroker(t, true)
	c, ev := newClient(t, b, "dev1", nil)
	ctx := testContext(t)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	wait(t, ev.connects, "OnConnect")
	if err := c.Subscribe(ctx, map[string]byte{"dev/1/in": 1}, ev.handler); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		cl, ok := b.srv.Clients.Get("dev1")
		if !ok {
			t.Fatal("the broker does not know dev1")
		}
		cl.Stop(errors.New("kicked by the test"))
		if err := wait(t, ev.lost, "OnConnectionLost"); err == nil {
			t.Error("OnConnectionLost(nil)")
		}
		if first := wait(t, ev.connects, "OnConnect after the reconnect"); first {
			t.Errorf("round %d: OnConnect(true) after a reconnect, want false", round)
		}
		// The session (clean session 0) kept the subscription.
		if err := b.srv.Publish("dev/1/in", []byte("again"), false, 1); err != nil {
			t.Fatal(err)
		}
		if m := wait(t, ev.msgs, "a message after the reconnect"); m.payload != "again" {
			t.Errorf("got %+v", m)
		}
		if err := c.Publish(ctx, "up", 1, false, nil); err != nil {
			t.Errorf("Publish after the reconnect: %v", err)
		}
	}
}

func TestDisconnectThenConnect(t *testing.T) {
	b := startBroker(t, false)
	c, ev := newClient(t, b, "dev1", nil)
	ctx := testContext(t)
	for round := range 3 {
		if err := c.Connect(ctx); err != nil {
			t.Fatalf("round %d: Connect: %v", round, err)
		}
		if first := wait(t, ev.connects, "OnConnect"); !first {
			t.Errorf("round %d: OnConnect(false) after Connect", round)
		}
		if err := c.Publish(ctx, "up", 1, false, nil); err != nil {
			t.Fatalf("round %d: Publish: %v", round, err)
		}
		c.Disconnect()
		b.waitRead(t, "dev1", typeDisconnect)
		if c.IsConnected() {
			t.Fatalf("round %d: IsConnected after Disconnect", round)
		}
		if err := c.Publish(ctx, "up", 0, false, nil); !errors.Is(err, ErrNotConnected) {
			t.Errorf("round %d: Publish after Disconnect: %v, want ErrNotConnected", round, err)
		}
	}
	select {
	case err := <-ev.lost:
		t.Errorf("OnConnectionLost(%v) after Disconnect", err)
	default:
	}
}

func TestKeepaliveKeepsIdleConnection(t *testing.T) {
	b := startBroker(t, false)
	// mochi closes a connection silent for 1.5 keepalives, rounded down
	// to whole seconds (1 s for a keepalive of 1 s, hence 2 s): two pings
	// in a row mean the client kept it open for longer than that.
	c, ev := newClient(t, b, "dev1", func(o *Options) { o.KeepAlive = 2 * time.Second })
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		b.waitRead(t, "dev1", typePingreq)
	}
	select {
	case err := <-ev.lost:
		t.Fatalf("connection lost: %v", err)
	default:
	}
	if !c.IsConnected() {
		t.Error("not connected")
	}
}

// TestKeepaliveDetectsSilentBroker runs against a broker that accepts the
// connection and then never answers: the client must give up on it after
// one and a half keepalives.
func TestKeepaliveDetectsSilentBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				nc.Write([]byte{typeConnack << 4, 2, 0, 0})
				io.Copy(io.Discard, nc)
			}()
		}
	}()
	lost := make(chan error, 10)
	c := New(Options{Addr: ln.Addr().String(), ClientID: "x", KeepAlive: time.Second,
		OnConnectionLost: func(err error) { lost <- err }})
	t.Cleanup(c.Disconnect)
	if err := c.Connect(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, lost, "OnConnectionLost"); !strings.Contains(err.Error(), "no packet from the broker") {
		t.Errorf("OnConnectionLost(%v), want the keepalive's error", err)
	}
}
