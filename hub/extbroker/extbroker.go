package extbroker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/mqttproto"
)

// Events receives device presence, as the embedded broker reports it.
// Calls are serialised.
type Events interface {
	Connected(deviceID string)
	Disconnected(deviceID string)
	Subscribed(deviceID, deviceFilter string)
	// BrokerUp says the hub's own connection to the broker was lost
	// (false) or is back, subscriptions restored (true).
	BrokerUp(up bool)
}

// Config configures a [Client].
type Config struct {
	// URL is the broker: mqtt://[user[:password]@]host:port[/root] or
	// mqtts://...
	URL string
	// TLS is used for mqtts:// URLs; nil means the system roots.
	TLS *tls.Config
	// Events receives presence; required.
	Events Events
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Client is the hub's connection to an external broker; it implements the
// device bus's transport.
type Client struct {
	url    mqttproto.BrokerURL
	c      paho.Client
	events Events
	log    *slog.Logger

	mu        sync.Mutex // serialises presence changes and their events
	devices   map[string]announced
	gateways  map[string]bool                // gateways online, by name
	byGateway map[string]map[string]struct{} // device ids, by gateway name

	subMu sync.Mutex
	subs  map[string][]func(string, []byte) // by filter (without root), resubscribed on reconnect

	lost atomic.Bool // the connection was lost and is not back yet
}

// Dial connects to the broker and subscribes to device presence; it
// returns once both are done or ctx ends.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	u, err := mqttproto.ParseBrokerURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Events == nil {
		return nil, errors.New("external broker: no Events configured")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cl := &Client{url: u, events: cfg.Events, log: log, devices: map[string]announced{}, gateways: map[string]bool{}, byGateway: map[string]map[string]struct{}{}, subs: map[string][]func(string, []byte){}}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	o := paho.NewClientOptions().
		AddBroker(u.Dial()).
		// Unique: a second hub (or a restart racing the old session) must
		// not take this connection over.
		SetClientID("iotjobs-hub-" + hex.EncodeToString(suffix[:])).
		SetUsername(u.Username).SetPassword(u.Password).
		SetCleanSession(true).
		SetProtocolVersion(4).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetOnConnectHandler(cl.resubscribe).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			log.Warn("lost the external broker; no device operation starts until it is back", "broker", u.String(), "err", err)
			cl.lost.Store(true)
			cl.events.BrokerUp(false)
			cl.forgetAll()
		})
	if u.TLS {
		tc := cfg.TLS
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.SetTLSConfig(tc)
	}
	cl.c = paho.NewClient(o)
	if err := wait(ctx, cl.c.Connect()); err != nil {
		return nil, fmt.Errorf("connect to external broker %s: %w", u, err)
	}
	// Gateways first, so that a gateway's devices, whose retained
	// announcements arrive next, find it online.
	for _, s := range []struct {
		filter string
		fn     func(string, []byte)
	}{{mqttproto.GatewayPresenceFilter, cl.onGatewayPresence}, {mqttproto.PresenceFilter, cl.onPresence}} {
		if err := cl.Subscribe(s.filter, s.fn); err != nil {
			cl.c.Disconnect(0)
			return nil, err
		}
	}
	return cl, nil
}

// Addr is the broker's URL, without password.
func (cl *Client) Addr() string { return cl.url.String() }

// Close disconnects from the broker.
func (cl *Client) Close() error {
	cl.c.Disconnect(250)
	return nil
}

// Publish sends payload on a device-scoped topic at QoS 0, as Azure sends
// method requests and twin responses. A publish that failed (the write to
// a connection that just broke, or no room to queue it) never reached the
// broker, so it says hub.ErrNotSent, and a method request is sent again
// once the broker is back; one still queued after 10 s may yet go out, so
// it is only an error.
func (cl *Client) Publish(topic string, payload []byte) error {
	if !cl.c.IsConnectionOpen() {
		return fmt.Errorf("publish %s: %w", topic, hub.ErrNotSent)
	}
	tok := cl.c.Publish(cl.url.Root+topic, 0, false, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("publish %s on external broker: %w", topic, errOrTimeout(nil))
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("publish %s on external broker: %v: %w", topic, err, hub.ErrNotSent)
	}
	return nil
}

// Subscribe calls fn for every message on a topic matching filter
// (device-scoped); fn sees topics without the URL's root. Several
// handlers may share a filter.
func (cl *Client) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	cl.subMu.Lock()
	cl.subs[filter] = append(cl.subs[filter], fn)
	first := len(cl.subs[filter]) == 1
	cl.subMu.Unlock()
	if !first {
		return nil // the broker already sends it; handler() fans out
	}
	tok := cl.c.Subscribe(cl.brokerFilter(filter), 0, cl.handler(filter))
	if err := waitTimeout(tok); err != nil {
		return fmt.Errorf("subscribe %s on external broker: %w", filter, err)
	}
	if code := tok.(*paho.SubscribeToken).Result()[cl.brokerFilter(filter)]; code > 2 {
		return fmt.Errorf("subscribe %s on external broker: refused (0x%02x); check the hub's ACL entry", filter, code)
	}
	return nil
}

// SubscribeShared is Subscribe through the shared subscription of group
// ($share/group/filter, MQTT 5's, which Mosquitto 2 and the clustered
// brokers also give MQTT 3.1.1 clients): each message goes to one of the
// group's subscribers, so hubs that share a broker (replicas) handle
// each device request once.
func (cl *Client) SubscribeShared(group, filter string, fn func(topic string, payload []byte)) error {
	return cl.Subscribe(sharePrefix+group+"/"+filter, fn)
}

// sharePrefix starts a shared subscription's filter.
const sharePrefix = "$share/"

// brokerFilter is a filter as the broker takes it: the URL's root goes
// after a shared subscription's prefix.
func (cl *Client) brokerFilter(filter string) string {
	if rest, ok := strings.CutPrefix(filter, sharePrefix); ok {
		if group, f, ok := strings.Cut(rest, "/"); ok {
			return sharePrefix + group + "/" + cl.url.Root + f
		}
	}
	return cl.url.Root + filter
}

// handler passes a filter's messages to each of its handlers.
func (cl *Client) handler(filter string) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) {
		topic, ok := strings.CutPrefix(m.Topic(), cl.url.Root)
		if !ok {
			return
		}
		cl.subMu.Lock()
		fns := cl.subs[filter]
		cl.subMu.Unlock()
		for _, fn := range fns {
			fn(topic, m.Payload())
		}
	}
}

// resubscribe restores the subscriptions after a reconnect (the session
// is clean, so the broker forgot them); the retained presence messages
// arrive again and bring the hub's view up to date.
func (cl *Client) resubscribe(c paho.Client) {
	cl.subMu.Lock()
	var toks []paho.Token
	for f := range cl.subs {
		toks = append(toks, c.Subscribe(cl.brokerFilter(f), 0, cl.handler(f)))
	}
	cl.subMu.Unlock()
	if !cl.lost.Swap(false) {
		return // Dial's own connect: nothing was lost
	}
	// Back only once the broker has taken the subscriptions again (in
	// another goroutine: paho calls this handler on its own, and a token
	// waited for here would wait for this very handler).
	go func() {
		for _, t := range toks {
			if err := waitTimeout(t); err != nil {
				cl.log.Warn("resubscribe after reconnecting to the external broker", "broker", cl.url.String(), "err", err)
			}
		}
		cl.log.Info("the external broker is back", "broker", cl.url.String())
		cl.events.BrokerUp(true)
	}()
}

// announced is what the hub knows of a device from its presence.
type announced struct {
	subs    []string
	gateway string // "" for a device on its own connection
}

// onPresence takes a device's presence message.
func (cl *Client) onPresence(topic string, payload []byte) {
	id, ok := strings.CutSuffix(strings.TrimPrefix(topic, "devices/"), "/presence")
	if !ok || id == "" || strings.Contains(id, "/") {
		return
	}
	p, up, err := mqttproto.ParsePresence(payload)
	if err != nil {
		cl.log.Debug("ignore malformed presence", "device", id, "err", err)
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	old, had := cl.devices[id]
	wasOn := had && cl.effective(old)
	if had && old.gateway != "" {
		delete(cl.byGateway[old.gateway], id)
	}
	if !up {
		delete(cl.devices, id)
		if wasOn {
			cl.events.Disconnected(id)
		}
		return
	}
	a := announced{subs: p.Subscriptions, gateway: p.Gateway}
	cl.devices[id] = a
	if a.gateway != "" {
		if cl.byGateway[a.gateway] == nil {
			cl.byGateway[a.gateway] = map[string]struct{}{}
		}
		cl.byGateway[a.gateway][id] = struct{}{}
	}
	switch on := cl.effective(a); {
	case on && !wasOn:
		cl.connected(id, a.subs, nil)
	case on:
		cl.connected(id, a.subs, old.subs)
	case wasOn:
		cl.events.Disconnected(id)
	}
}

// onGatewayPresence takes a gateway's presence: its devices are online
// only while it is.
func (cl *Client) onGatewayPresence(topic string, payload []byte) {
	name, ok := strings.CutSuffix(strings.TrimPrefix(topic, "gateways/"), "/presence")
	if !ok || name == "" || strings.Contains(name, "/") {
		return
	}
	up := len(payload) > 0
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.gateways[name] == up {
		return
	}
	if up {
		cl.gateways[name] = true
	} else {
		delete(cl.gateways, name)
	}
	for id := range cl.byGateway[name] {
		if up {
			cl.connected(id, cl.devices[id].subs, nil)
		} else {
			cl.events.Disconnected(id)
		}
	}
}

// effective reports whether an announced device counts as online: on
// its own, or through a gateway that is.
func (cl *Client) effective(a announced) bool { return a.gateway == "" || cl.gateways[a.gateway] }

// connected reports a device online (when old is nil) and its
// subscriptions not in old.
func (cl *Client) connected(id string, subs, old []string) {
	if old == nil {
		cl.events.Connected(id)
	}
	for _, s := range subs {
		if !slices.Contains(old, s) {
			cl.events.Subscribed(id, s)
		}
	}
}

// forgetAll forgets every device's presence when the hub loses the
// broker: a broker that went away may have lost its devices too (and a
// crashed one sends no Will), so a device counts as online again only
// once it has announced itself after the reconnect (its retained presence
// comes back at once from a broker that kept it).
func (cl *Client) forgetAll() {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for id, a := range cl.devices {
		if cl.effective(a) {
			cl.events.Disconnected(id)
		}
	}
	cl.devices = map[string]announced{}
	cl.gateways = map[string]bool{}
	cl.byGateway = map[string]map[string]struct{}{}
}

// Online reports whether a device announced itself online and subscribed
// to deviceFilter ("$iothub/..." form).
func (cl *Client) Online(deviceID, deviceFilter string) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	a, ok := cl.devices[deviceID]
	return ok && cl.effective(a) && slices.Contains(a.subs, deviceFilter)
}

// Kick cannot close a connection on an external broker; it forgets the
// device's presence until the device announces itself again, so the hub
// stops calling it.
func (cl *Client) Kick(deviceID string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if a, ok := cl.devices[deviceID]; ok {
		delete(cl.devices, deviceID)
		if a.gateway != "" {
			delete(cl.byGateway[a.gateway], deviceID)
		}
		if cl.effective(a) {
			cl.events.Disconnected(deviceID)
		}
	}
	cl.log.Info("external broker: the device's connection stays open; revoke its broker credentials to cut it off", "device", deviceID)
}

func wait(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func waitTimeout(t paho.Token) error {
	if !t.WaitTimeout(10 * time.Second) {
		return errOrTimeout(nil)
	}
	return t.Error()
}

func errOrTimeout(err error) error {
	if err != nil {
		return err
	}
	return errors.New("no answer from the broker in 10 s")
}
