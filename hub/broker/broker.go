package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotjobs/iotjobs/hub/sas"
)

// Settings that are Azure's rules or this broker's policy rather than
// knobs.
const (
	// defaultMaxPendingWrites bounds each client's outbound queue. mochi's
	// default (8192) costs ~64 KB per connection (README "Performance").
	defaultMaxPendingWrites = 256
	// bufferSize is each client's read buffer (and the size at which
	// queued writes are flushed; the write buffer exists only while
	// writes queue). Device messages are small; 1 KB instead of mochi's
	// 2 KB saves 2 KB of the ~52 KB a connected device costs the hub
	// (README Performance), and larger packets are read through it.
	bufferSize = 1024
	// maxKeepalive caps a client's keep-alive so the server-side timeout,
	// 1.5 × keep-alive, is at most Azure's 1767 s; a client asking for 0
	// (no keep-alive) gets the cap too, so dead connections still end.
	maxKeepalive = 1178
	// sessionExpiry is how long a clean-session-0 session (its
	// subscriptions) outlives its connection. Device SDKs rely on it only
	// across the reconnect that renews their SAS token (seconds); after a
	// real outage they subscribe again.
	sessionExpiry = time.Hour
	// connectTimeout is how long a new connection may take to finish its
	// TLS handshake and CONNECT; afterwards the keep-alive governs.
	connectTimeout = 30 * time.Second
	// maxPacketSize admits Azure's largest device message (256 KB) plus
	// topic and headers, and stops a client from making the broker
	// allocate a huge packet buffer.
	maxPacketSize = 256*1024 + 4*1024
	// inlineClientID names the hub's inline client. It contains '/', which
	// no device id may, so no device can take over its session.
	inlineClientID = "$hub/inline"
)

// Config configures a [Broker].
type Config struct {
	// Addr is the listen address, e.g. "127.0.0.1:0". Required.
	Addr string
	// TLS is the server's TLS configuration; nil means plain TCP, which
	// only tests use.
	TLS *tls.Config
	// Authenticate checks a device's credentials (the SAS token in
	// password) after the broker has checked that username has the form
	// "{host}/{clientID}/...". An error refuses the connection with
	// CONNACK 5 "not authorized". Required. It runs on the connection's
	// goroutine, concurrently for different devices. A SAS token that
	// names a shared access policy (skn) never reaches it: see Policies.
	Authenticate func(clientID, username string, password []byte) error
	// AuthenticateCert, when set, replaces Authenticate (which may then be
	// nil): it is also given the certificate chain the client presented
	// in the TLS handshake, leaf first (nil without one, or without TLS),
	// so that X.509 devices can connect with no password. The TLS
	// configuration must request client certificates for there to be any
	// (tls.RequestClientCert: the handshake does not check them, this
	// does). MQTT over WebSocket passes the HTTPS connection's. A
	// connection admitted with no password (an X.509 device's) is closed
	// when its certificate expires, as one with a SAS token when the
	// token does (Expires).
	AuthenticateCert func(clientID, username string, password []byte, chain []*x509.Certificate) error
	// Expires, when set, tells when accepted credentials stop being
	// valid (the SAS token's se); the broker closes the connection then,
	// as Azure does. The zero time means never. Now is the clock it is
	// measured against (nil: time.Now).
	Expires func(password []byte) time.Time
	Now     func() time.Time
	// AuthenticateGateway checks the credentials of a gateway, a
	// connection with client id "$gateway/{name}" that plays many
	// devices (a protocol gateway, or the simulator's multiplexed mode):
	// a SAS token of a shared access policy allowed to connect devices.
	// Nil refuses gateways.
	AuthenticateGateway func(name, username string, password []byte) error
	// DeviceAllowed says whether a gateway, or a device connecting with
	// a policy's token (Policies), may play or connect as device id (it
	// exists and is enabled); nil allows any.
	DeviceAllowed func(id string) error
	// Policies looks up a shared access policy by name: its key and
	// rights. A device may connect with a SAS token of a policy that has
	// DeviceConnect (skn={name}, sr "{host}/devices/{id}" or a by-segment
	// prefix of it, such as "{host}"), as on Azure; the broker checks
	// such a token with [sas.Token.VerifyPolicy] (the policy's key and
	// rights, Hosts, expiry at Now), then DeviceAllowed, instead of
	// passing it to Authenticate: a token that names a policy is never
	// checked against the device's key. Nil refuses every device token
	// that names a policy (CONNACK 5). It runs on connection goroutines,
	// concurrently. Gateways are checked by AuthenticateGateway alone.
	Policies func(name string) (sas.Policy, bool)
	// Hosts returns the names a policy token's sr may give the hub
	// ("localhost", "localhost:8883", ...; compared without regard to
	// case). It is called for each such token, so it may include ports
	// bound after New. Nil accepts any host.
	Hosts func() []string
	// Events receives presence callbacks; nil means none.
	Events Events
	// MaxPendingWrites bounds each client's outbound queue; a message
	// that finds it full is dropped and counted in
	// [Stats].MessagesDropped. Zero means 256.
	MaxPendingWrites int
	// Logger receives the broker's logs; mochi's own logs are passed on
	// from Warn up. Nil means slog.Default() with "system"="broker".
	Logger *slog.Logger
}

// Events receives device presence from the broker. Calls are serialised
// (one at a time, in the order the broker decided them) and run on the
// broker's connection goroutines, so they must return quickly; they may
// call [Broker.Online], [Broker.Publish] and [Broker.Kick].
type Events interface {
	// Connected is called once a device's CONNACK was accepted and its
	// session (with any persistent subscriptions) restored.
	Connected(deviceID string)
	// Disconnected is called when a device's connection ends, but not for
	// a connection that a newer connection of the same device took over:
	// the device is still online then.
	Disconnected(deviceID string)
	// Subscribed is called for each subscription the broker grants a
	// device, in the device-side form (e.g. "$iothub/methods/POST/#"),
	// and after Connected for each subscription restored from a
	// persistent session.
	Subscribed(deviceID, deviceFilter string)
}

// Stats are the broker's counters. InflightDropped and MessagesDropped
// count messages lost to per-client quotas; they must stay zero.
type Stats struct {
	Clients         int64 // device connections open now
	InflightDropped int64 // QoS 1 messages dropped: client in-flight quota or packet ids exhausted
	MessagesDropped int64 // messages dropped: client outbound queue full
}

// Broker is the embedded MQTT broker. Create it with [New], start it with
// [Broker.Open] and stop it with [Broker.Close].
type Broker struct {
	cfg     Config
	log     *slog.Logger
	events  Events
	srv     *mqtt.Server
	inline  *mqtt.Client
	hookErr error

	subID atomic.Int64

	// expiry holds the timer that ends each connection when its
	// credentials expire, by *mqtt.Client, so a connection that ends
	// first stops its timer.
	expiry sync.Map

	mu       sync.RWMutex
	devices  map[string]*device                   // by device id; guarded by mu
	gateways map[*mqtt.Client]map[string]struct{} // devices each gateway plays; guarded by mu

	// evMu serialises Events calls together with the state change that
	// caused them, so a device's Connected and Disconnected are delivered
	// in the order they happened even when two connections race.
	evMu sync.Mutex

	lifeMu sync.Mutex
	opened bool
	closed atomic.Bool
	addr   string

	// afterDisconnect, when set (by tests), runs at the end of every
	// connection's disconnect handling.
	afterDisconnect func(deviceID string)
}

// device is what the broker tracks per device id.
type device struct {
	cl *mqtt.Client // the current connection, nil when there is none
	up bool         // Connected was reported for cl (or for gw)
	// gw is the gateway playing the device when it has no connection of
	// its own, with the subscriptions it announced (device-side form).
	gw   *mqtt.Client
	subs []string
	// filters are the device filters its own connections subscribed to,
	// indexed under deviceRoute; they outlive connections, as the
	// session's route does. subscribing holds those of the SUBSCRIBE
	// being processed, by position, from OnSubscribe to OnSubscribed.
	filters     filterSet
	subscribing []filterSet
	// long records that the device subscribed in the device-scoped form
	// ("devices/{id}/$iothub/..."), so deliveries keep that form instead
	// of being rewritten to "$iothub/...". It outlives connections, as
	// the subscriptions do.
	long bool
}

// New returns a broker configured by cfg. It validates cfg in Open.
func New(cfg Config) *Broker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxPendingWrites <= 0 {
		cfg.MaxPendingWrites = defaultMaxPendingWrites
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default().With("system", "broker")
	}
	events := cfg.Events
	if events == nil {
		events = noEvents{}
	}
	b := &Broker{cfg: cfg, log: log, events: events, devices: make(map[string]*device), gateways: make(map[*mqtt.Client]map[string]struct{})}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(min(cfg.MaxPendingWrites, 1<<30))
	caps.MaximumSessionExpiryInterval = uint32(sessionExpiry / time.Second)
	caps.MaximumPacketSize = maxPacketSize
	caps.MaximumQos = 1             // Azure grants QoS 1 for QoS 2 subscriptions
	caps.MinimumProtocolVersion = 4 // MQTT 3.1.1; OnPacketRead refuses other levels first
	caps.TopicAliasMaximum = 0
	caps.SharedSubAvailable = 0
	caps.SubIDAvailable = 0
	// RetainAvailable stays 1 so a retained Will does not fail CONNECT;
	// the hook clears RETAIN on everything a device sends, so nothing is
	// stored.
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetReadBufferSize:  bufferSize,
		ClientNetWriteBufferSize: bufferSize,
		Logger:                   slog.New(minLevel{h: log.Handler(), min: slog.LevelWarn, closed: &b.closed}),
		// $SYS topics are unreachable for devices; publishing them reads
		// runtime.MemStats (a stop-the-world), so rarely.
		SysTopicResendInterval: 3600,
	})
	// mochi's own inline client is named "inline", a valid device id; a
	// device of that name would take its session over. This one is the
	// same kind of client (inline=true: no connection, no ACL, no
	// in-flight quota) under a name no device can use.
	b.inline = b.srv.NewClient(nil, mqtt.LocalListener, inlineClientID, true)
	b.hookErr = b.srv.AddHook(&hook{b: b}, nil)
	return b
}

// Open starts listening on cfg.Addr and returns once the listener is bound.
func (b *Broker) Open(ctx context.Context) error {
	switch {
	case b.cfg.Addr == "":
		return errors.New("open broker: no listen address configured")
	case b.cfg.Authenticate == nil && b.cfg.AuthenticateCert == nil:
		return errors.New("open broker: no Authenticate function configured")
	case b.hookErr != nil:
		return fmt.Errorf("open broker: %w", b.hookErr)
	}
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	if b.opened || b.closed.Load() {
		return errors.New("open broker: already opened or closed")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", b.cfg.Addr)
	if err != nil {
		return fmt.Errorf("open broker: listen on %s: %w", b.cfg.Addr, err)
	}
	var l net.Listener = deadlineListener{ln}
	if b.cfg.TLS != nil {
		l = tls.NewListener(l, b.cfg.TLS)
	}
	if err := b.srv.AddListener(listeners.NewNet("mqtt", l)); err != nil {
		_ = ln.Close()
		return fmt.Errorf("open broker: %w", err)
	}
	if err := b.srv.Serve(); err != nil {
		_ = b.srv.Close()
		return fmt.Errorf("open broker: %w", err)
	}
	b.opened = true
	b.addr = ln.Addr().String()
	return nil
}

// Addr returns the address the broker listens on ("host:port"), or "" before
// Open.
func (b *Broker) Addr() string {
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	return b.addr
}

// Close disconnects every client, stops listening and waits for the
// connections' goroutines. It is safe to call more than once.
func (b *Broker) Close() error {
	b.lifeMu.Lock()
	already := b.closed.Swap(true)
	b.lifeMu.Unlock()
	if already {
		return nil
	}
	return b.srv.Close() // closes listeners and clients, and waits for them
}

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("broker closed")

// Publish sends payload on a device-scoped topic (e.g.
// "devices/d1/$iothub/methods/POST/reboot/?$rid=1") at QoS 0, as Azure sends
// method requests and twin responses. Devices that are not connected and
// subscribed do not get it. It returns once the message is queued to every
// subscriber.
func (b *Broker) Publish(topic string, payload []byte) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if topic == "" || !mqtt.IsValidFilter(topic, true) {
		return fmt.Errorf("publish: invalid topic %q", topic)
	}
	err := b.srv.InjectPacket(b.inline, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
	})
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe calls fn for every message published on a topic matching
// filter (device-scoped, e.g. "devices/+/$iothub/methods/res/#"). fn runs
// synchronously on the publishing device's connection goroutine, so it must
// not block; it must not modify payload, which other subscribers share.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	if fn == nil {
		return errors.New("subscribe: nil handler")
	}
	if !mqtt.IsValidFilter(filter, false) {
		return fmt.Errorf("subscribe: invalid filter %q", filter)
	}
	b.srv.Topics.InlineSubscribe(mqtt.InlineSubscription{
		Subscription: packets.Subscription{Filter: filter, Identifier: int(b.subID.Add(1))},
		Handler: func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
			fn(pk.TopicName, pk.Payload)
		},
	})
	return nil
}

// Online reports whether device deviceID is connected now and subscribed
// to deviceFilter, given in either form ("$iothub/methods/POST/#" or
// "devices/{id}/$iothub/methods/POST/#"). During a takeover by a newer
// connection it is briefly false, until the new session is established.
func (b *Broker) Online(deviceID, deviceFilter string) bool {
	canonical, _, ok := canonicalFilter(deviceID, deviceFilter)
	if !ok {
		return false
	}
	b.mu.RLock()
	d := b.devices[deviceID]
	var cl, gw *mqtt.Client
	var subs []string
	var filters filterSet
	if d != nil && d.up {
		cl, gw, subs, filters = d.cl, d.gw, d.subs, d.filters
	}
	b.mu.RUnlock()
	if cl == nil {
		return gw != nil && !gw.Closed() && slices.Contains(subs, deviceForm(deviceID, canonical))
	}
	if cl.Closed() {
		return false
	}
	rest, _ := scopedRest(canonical, deviceID)
	if filters&filterBit(rest) == 0 {
		return false
	}
	_, ok = cl.State.Subscriptions.Get(deviceRoute(deviceID))
	return ok
}

// Kick closes the device's connection, if any. Its persistent session is
// kept; Events.Disconnected follows as for any disconnect.
func (b *Broker) Kick(deviceID string) {
	b.mu.RLock()
	var cl, gw *mqtt.Client
	if d := b.devices[deviceID]; d != nil {
		cl, gw = d.cl, d.gw
	}
	b.mu.RUnlock()
	if cl == nil && gw != nil {
		// A gateway's device has no connection to close: it counts as
		// offline until the gateway announces it again.
		b.withdraw(gw, deviceID)
		return
	}
	if cl != nil {
		// Stop closes the connection without a DISCONNECT packet, which
		// MQTT 3.1.1 does not let a server send.
		cl.Stop(packets.ErrAdministrativeAction)
	}
}

// errTokenExpired ends a connection whose credentials expired.
var errTokenExpired = errors.New("SAS token or certificate expired")

// expireAt closes cl after d, unless it ends first (OnDisconnect stops
// the timer). A connection made with an already expired token was
// refused by Authenticate; d ≤ 0 here only by clock skew, and ends it at
// once.
func (b *Broker) expireAt(cl *mqtt.Client, d time.Duration) {
	t := time.AfterFunc(max(d, 0), func() {
		b.expiry.Delete(cl)
		b.log.Debug("disconnecting device: its SAS token or certificate expired", "device", cl.ID)
		cl.Stop(errTokenExpired)
	})
	b.expiry.Store(cl, t)
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	return Stats{
		Clients:         atomic.LoadInt64(&b.srv.Info.ClientsConnected),
		InflightDropped: atomic.LoadInt64(&b.srv.Info.InflightDropped),
		MessagesDropped: atomic.LoadInt64(&b.srv.Info.MessagesDropped),
	}
}

// deadlineListener gives each new connection connectTimeout to finish its
// TLS handshake and CONNECT: mochi sets no deadline before CONNECT, so a
// silent client would hold its goroutine forever. mochi replaces the
// deadline with the keep-alive one once CONNECT is read.
type deadlineListener struct{ net.Listener }

func (l deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(connectTimeout))
	return c, nil
}

type noEvents struct{}

func (noEvents) Connected(string)          {}
func (noEvents) Disconnected(string)       {}
func (noEvents) Subscribed(string, string) {}

// minLevel passes on only records at or above min: mochi logs every
// connection and hook at Info and Debug. After Close it passes on nothing:
// mochi's per-connection goroutines outlive Server.Close and report the
// closed connections as errors, which is noise (and would write to a log
// its owner may already have closed).
type minLevel struct {
	h      slog.Handler
	min    slog.Level
	closed *atomic.Bool
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && !m.closed.Load() && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(as), min: m.min, closed: m.closed}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h: m.h.WithGroup(name), min: m.min, closed: m.closed}
}
