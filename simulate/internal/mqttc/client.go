package mqttc

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"
)

// Defaults of the zero Options.
const (
	defaultConnectTimeout = 30 * time.Second
	defaultMaxPacketSize  = 1 << 20
	// writeTimeout bounds one write: a broker that takes no bytes for
	// that long is gone, and the connection is dropped.
	writeTimeout = 30 * time.Second
	// Reconnect backoff: the first attempt after about minBackoff, then
	// doubling up to maxBackoff, each with jitter, so that a fleet that
	// lost its broker does not return in one burst.
	minBackoff = 250 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// ErrNotConnected is returned by Publish and Subscribe when the client
// has no open connection.
var ErrNotConnected = errors.New("not connected")

// Will is the message the broker publishes for the client when its
// connection ends without a DISCONNECT.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Options configure a [Client]. Addr and ClientID are required; the
// zero value of every other field is a sensible default.
type Options struct {
	// Addr is the broker's host:port.
	Addr string
	// TLS, when set, makes the connection MQTT over TLS with this
	// configuration. It is shared by every connection, not copied (a
	// copy per device costs memory), so it should name ServerName.
	TLS      *tls.Config
	ClientID string
	// Credentials, when set, returns the user name and password at every
	// connect and reconnect (a device makes a fresh SAS token each time).
	Credentials func() (username, password string)
	// CleanSession asks the broker to drop the session at disconnect.
	CleanSession bool
	// KeepAlive is the keepalive interval sent in CONNECT (whole
	// seconds); zero disables keepalive.
	KeepAlive time.Duration
	Will      *Will
	// ConnectTimeout bounds a connect: dial, TLS handshake and CONNACK
	// (default 30 s).
	ConnectTimeout time.Duration
	// MaxPacketSize is the largest packet accepted from the broker
	// (default 1 MiB); a larger one closes the connection.
	MaxPacketSize int
	// OnConnect is called after every successful connect, in the
	// goroutine that connected: first is true for [Client.Connect] and
	// false for an automatic reconnect. It may publish and subscribe.
	OnConnect func(first bool)
	// OnConnectionLost is called when an open connection ends other than
	// by [Client.Disconnect], before the client starts reconnecting.
	OnConnectionLost func(err error)
}

// Client is an MQTT 3.1.1 client. Its methods are safe for concurrent
// use.
type Client struct {
	opts Options

	mu      sync.Mutex
	cur     *conn       // the open connection, or nil
	want    bool        // reconnect when the connection is lost
	gen     uint32      // bumped by Connect and Disconnect: a stale reconnect gives up
	retry   *time.Timer // the pending reconnect, or nil
	fails   int         // failed reconnects in a row
	handler func(topic string, payload []byte)
}

// New returns a client for opts; it connects on [Client.Connect].
func New(opts Options) *Client {
	return &Client{opts: opts}
}

// ConnackError is a broker's refusal of a connection: the return code of
// its CONNACK.
type ConnackError struct {
	Code byte
}

func (e *ConnackError) Error() string {
	reason := "unknown return code"
	switch e.Code {
	case 1:
		reason = "unacceptable protocol version"
	case 2:
		reason = "identifier rejected"
	case 3:
		reason = "server unavailable"
	case 4:
		reason = "bad user name or password"
	case 5:
		reason = "not authorized"
	}
	return fmt.Sprintf("broker refused the connection: %s (CONNACK return code %d)", reason, e.Code)
}

// Connect opens a connection and waits for the broker's CONNACK; a
// refusal is a *[ConnackError]. From then on a lost connection is
// reopened automatically until [Client.Disconnect]. Connecting a
// connected client does nothing.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.cur != nil {
		c.mu.Unlock()
		return nil
	}
	c.gen++
	g := c.gen
	c.stopRetryLocked()
	c.mu.Unlock()

	cn, r, err := c.dial(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.gen != g {
		c.mu.Unlock()
		cn.nc.Close()
		return errors.New("connect: interrupted by Disconnect or another Connect")
	}
	c.want, c.fails = true, 0
	c.openLocked(cn)
	c.mu.Unlock()
	go cn.readLoop(r)
	if f := c.opts.OnConnect; f != nil {
		f(true)
	}
	return nil
}

// Disconnect sends DISCONNECT, closes the connection and stops
// reconnecting; the broker then discards the Will. A later Connect
// connects again.
func (c *Client) Disconnect() {
	c.mu.Lock()
	c.gen++
	c.want = false
	c.stopRetryLocked()
	cn := c.cur
	c.cur = nil
	if cn != nil {
		cn.closing = true
	}
	c.mu.Unlock()
	if cn == nil {
		return
	}
	_ = cn.send(func(b []byte) ([]byte, error) { return appendDisconnect(b), nil }) // closing anyway
	cn.nc.Close()
	<-cn.done
}

// IsConnected reports whether the client has an open connection.
func (c *Client) IsConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil
}

// Publish sends a message at QoS 0 (returning once it is written) or 1
// (returning once the broker acknowledged it). It returns
// [ErrNotConnected] without a connection, and an error if the connection
// is lost before the acknowledgement: nothing is sent again.
func (c *Client) Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) error {
	if qos > 1 {
		return fmt.Errorf("publish to %s: QoS %d not supported", topic, qos)
	}
	cn := c.conn()
	if cn == nil {
		return fmt.Errorf("publish to %s: %w", topic, ErrNotConnected)
	}
	pk := publishPacket{qos: qos, retain: retain, topic: topic, payload: payload}
	if qos == 0 {
		if err := cn.send(func(b []byte) ([]byte, error) { return appendPublish(b, &pk) }); err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		return nil
	}
	encode := func(b []byte, id uint16) ([]byte, error) {
		pk.id = id
		return appendPublish(b, &pk)
	}
	if _, err := cn.request(ctx, typePuback, encode); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// Subscribe subscribes to filters (filter → QoS) and waits for the
// SUBACK; a filter the broker refused (0x80) is an error naming it.
// handler, when not nil, becomes the handler of every message the client
// receives, whatever its subscription: it runs in a goroutine of its own
// per message (handlers may block), with a payload it owns.
func (c *Client) Subscribe(ctx context.Context, filters map[string]byte, handler func(topic string, payload []byte)) error {
	if handler != nil {
		c.mu.Lock()
		c.handler = handler
		c.mu.Unlock()
	}
	names := make([]string, 0, len(filters))
	for f := range filters {
		names = append(names, f)
	}
	slices.Sort(names)
	cn := c.conn()
	if cn == nil {
		return fmt.Errorf("subscribe %v: %w", names, ErrNotConnected)
	}
	subs := make([]subscription, len(names))
	for i, f := range names {
		subs[i] = subscription{filter: f, qos: filters[f]}
	}
	encode := func(b []byte, id uint16) ([]byte, error) { return appendSubscribe(b, id, subs) }
	codes, err := cn.request(ctx, typeSuback, encode)
	if err != nil {
		return fmt.Errorf("subscribe %v: %w", names, err)
	}
	if len(codes) != len(names) {
		return fmt.Errorf("subscribe %v: SUBACK has %d return codes for %d filters", names, len(codes), len(names))
	}
	for i, code := range codes {
		if code > 2 {
			return fmt.Errorf("subscribe %s: broker refused it (SUBACK return code %#02x)", names[i], code)
		}
	}
	return nil
}

// conn returns the open connection, or nil.
func (c *Client) conn() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

func (c *Client) messageHandler() func(string, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handler
}

// openLocked makes cn the client's connection and starts its keepalive.
func (c *Client) openLocked(cn *conn) {
	c.cur = cn
	if ka := c.opts.KeepAlive; ka > 0 {
		cn.ping = time.AfterFunc(ka, cn.keepalive)
	}
}

func (c *Client) stopRetryLocked() {
	if c.retry != nil {
		c.retry.Stop()
		c.retry = nil
	}
}

// dial opens a connection: TCP, TLS, CONNECT and CONNACK, within
// ConnectTimeout. It returns the reader that holds what the broker sent
// after the CONNACK, for the connection's read loop.
func (c *Client) dial(ctx context.Context) (*conn, *bufio.Reader, error) {
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(c.opts.ConnectTimeout, defaultConnectTimeout))
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.opts.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	if c.opts.TLS != nil {
		tc := tls.Client(nc, c.opts.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, nil, fmt.Errorf("connect: TLS handshake with %s: %w", c.opts.Addr, err)
		}
		nc = tc
	}
	// CONNECT and CONNACK happen here, before the read loop exists, under
	// the context's deadline; cancelling the context ends them at once.
	dl, _ := ctx.Deadline()
	nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	cn, r, err := c.handshake(nc)
	stop()
	if err == nil {
		err = nc.SetDeadline(time.Time{})
	}
	if err != nil {
		nc.Close()
		if ctx.Err() != nil && !errors.As(err, new(*ConnackError)) {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	return cn, r, nil
}

// handshake sends CONNECT on nc and reads the CONNACK.
func (c *Client) handshake(nc net.Conn) (*conn, *bufio.Reader, error) {
	cn := newConn(c, nc)
	pk := connectPacket{
		clientID:     c.opts.ClientID,
		cleanSession: c.opts.CleanSession,
		keepAlive:    uint16(min(c.opts.KeepAlive/time.Second, 0xffff)),
		will:         c.opts.Will,
	}
	if f := c.opts.Credentials; f != nil {
		pk.username, pk.password = f()
		pk.hasUsername = pk.username != "" || pk.password != ""
		pk.hasPassword = pk.password != ""
	}
	if err := cn.send(func(b []byte) ([]byte, error) { return appendConnect(b, &pk) }); err != nil {
		return nil, nil, fmt.Errorf("send CONNECT: %w", err)
	}
	r := bufio.NewReaderSize(nc, readBufferSize)
	var scratch [8]byte
	h, body, err := readPacket(r, c.maxPacketSize(), scratch[:])
	if err != nil {
		return nil, nil, fmt.Errorf("read CONNACK: %w", err)
	}
	cn.lastRead.Store(sinceEpoch())
	if h.typ != typeConnack {
		return nil, nil, fmt.Errorf("read CONNACK: broker sent %s first", packetName(h.typ))
	}
	ack, err := decodeBody(h, body)
	if err != nil {
		return nil, nil, fmt.Errorf("read %w", err)
	}
	if ack.code != 0 {
		return nil, nil, &ConnackError{Code: ack.code}
	}
	return cn, r, nil
}

func (c *Client) maxPacketSize() int { return cmp.Or(c.opts.MaxPacketSize, defaultMaxPacketSize) }

// lost ends cn after its read loop stopped with err: it fails the
// requests awaiting an answer, tells OnConnectionLost (unless Disconnect
// closed it) and schedules a reconnect.
func (c *Client) lost(cn *conn, err error) {
	c.mu.Lock()
	if cn.err == nil {
		cn.err = err
	}
	err = cn.err
	cn.dead = true
	if cn.ping != nil {
		cn.ping.Stop()
	}
	pending := cn.pending
	cn.pending = nil
	if c.cur == cn {
		c.cur = nil
	}
	closing, g := cn.closing, c.gen
	c.mu.Unlock()

	cn.nc.Close()
	for _, w := range pending {
		w.ch <- ack{err: fmt.Errorf("connection lost: %w", err)}
	}
	// Disconnect waits for this, and OnConnectionLost may call it.
	close(cn.done)
	if closing {
		return
	}
	if f := c.opts.OnConnectionLost; f != nil {
		f(err)
	}
	// Scheduled after OnConnectionLost, so that its news never arrives
	// after the reconnect's OnConnect.
	c.mu.Lock()
	if c.gen == g && c.want && c.cur == nil && c.retry == nil {
		c.scheduleLocked(g)
	}
	c.mu.Unlock()
}

// scheduleLocked arranges a reconnect attempt after the backoff.
func (c *Client) scheduleLocked(g uint32) {
	d := min(maxBackoff, minBackoff<<min(c.fails, 4))
	d = d/2 + rand.N(d/2+1)
	c.retry = time.AfterFunc(d, func() { c.reconnect(g) })
}

// reconnect is one automatic reconnect attempt, in a timer's goroutine.
func (c *Client) reconnect(g uint32) {
	c.mu.Lock()
	c.retry = nil
	ok := c.gen == g && c.want && c.cur == nil
	c.mu.Unlock()
	if !ok {
		return
	}
	cn, r, err := c.dial(context.Background())
	c.mu.Lock()
	if c.gen != g || !c.want || c.cur != nil {
		c.mu.Unlock()
		if cn != nil {
			cn.nc.Close()
		}
		return
	}
	if err != nil {
		c.fails++
		c.scheduleLocked(g)
		c.mu.Unlock()
		return
	}
	c.fails = 0
	c.openLocked(cn)
	c.mu.Unlock()
	go cn.readLoop(r)
	if f := c.opts.OnConnect; f != nil {
		f(false)
	}
}

// bufferPool holds encoding buffers (*[]byte): a write needs one only
// while it encodes and writes, so connections share them.
var bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}
