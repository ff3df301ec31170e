package simulate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"

	"github.com/iotjobs/iotjobs/hub/mqttproto"
	"github.com/iotjobs/iotjobs/hub/sas"
)

// gatewayTokenValidity is how long a multiplexed connection's policy
// token lasts: renewing it means reconnecting, which takes every device
// of the connection off line for a moment, so it is long.
const gatewayTokenValidity = 7 * 24 * time.Hour

// muxConn is one multiplexed connection: it plays many devices with
// device-scoped topics and presence announcements (external-broker
// form). On the embedded broker it is a gateway ("$gateway/{name}"); on
// an external broker a plain client whose own presence
// (mqttproto.GatewayPresenceTopic, cleared by its Will) stands for its
// devices.
type muxConn struct {
	s       *Sim
	name    string
	devices map[string]*simDevice // read-only once connected

	mu       sync.Mutex
	client   paho.Client
	connects atomic.Int64 // OnConnect calls
}

// connectMux spreads the devices over Options.Connections connections,
// connects them and announces every device.
func (s *Sim) connectMux(ctx context.Context) error {
	n := min(s.opts.Connections, max(len(s.devices), 1))
	var r [4]byte
	_, _ = rand.Read(r[:])
	prefix := "sim-" + hex.EncodeToString(r[:])
	for i := range n {
		s.muxes = append(s.muxes, &muxConn{s: s, name: fmt.Sprintf("%s-%d", prefix, i), devices: map[string]*simDevice{}})
	}
	for i, d := range s.devices {
		m := s.muxes[i%n]
		m.devices[d.spec.ID] = d
		d.w = &muxWire{m: m, d: d}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, m := range s.muxes {
		g.Go(func() error { return m.connect(gctx) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Each device reconciles with its twin, as devices on their own
	// connections do once connected.
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(muxReconcilers)
	for _, d := range s.devices {
		g.Go(func() error {
			if err := d.reconcile(gctx); err != nil {
				return fmt.Errorf("report initial properties of %s: %w", d.spec.ID, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// muxReconcilers is how many devices of a multiplexed fleet reconcile
// with their twins at once: each is a round trip or two, and the hub
// answers a few hundred in flight without queueing.
const muxReconcilers = 256

func (m *muxConn) clientID() string {
	if m.s.ext != nil {
		return m.name
	}
	return "$gateway/" + m.name
}

func (m *muxConn) topic(id, deviceTopic string) string { return m.s.topicFor(id, deviceTopic, true) }

func (m *muxConn) connect(ctx context.Context) error {
	s := m.s
	o := clientOptions(m.clientID()).
		SetCleanSession(true).
		SetKeepAlive(60 * time.Second).
		SetOnConnectHandler(func(c paho.Client) {
			// The first connect announces in connect itself; later ones
			// (after the broker or hub went away) announce again here.
			if m.connects.Add(1) > 1 {
				go m.reannounce(c)
			}
		})
	if err := s.broker(o); err != nil {
		return err
	}
	if s.ext == nil {
		if s.opts.PolicyName == "" || s.opts.PolicyKey == "" {
			return fmt.Errorf("multiplexed devices on the embedded broker need a shared access policy (its name and key)")
		}
		o.SetCredentialsProvider(func() (string, string) {
			tok, _ := sas.ServiceToken(s.opts.HostName, s.opts.PolicyName, s.opts.PolicyKey, s.opts.Clock.Now().Add(gatewayTokenValidity))
			return s.opts.HostName + "/" + m.clientID() + "/?api-version=" + apiVersion, tok
		})
	} else {
		o.SetUsername(s.ext.Username).SetPassword(s.ext.Password).
			SetBinaryWill(s.ext.Root+mqttproto.GatewayPresenceTopic(m.name), nil, 1, true)
	}
	c := paho.NewClient(o)
	m.mu.Lock()
	m.client = c
	m.mu.Unlock()
	if err := wait(ctx, c.Connect()); err != nil {
		return fmt.Errorf("connect multiplexed connection %s to %s: %w", m.name, s.brokerName(), err)
	}
	return m.announceAll(ctx, c)
}

// announceAll subscribes for every device of the connection and
// announces each online: the hub calls them only once both are done.
func (m *muxConn) announceAll(ctx context.Context, c paho.Client) error {
	filters := make(map[string]byte, len(subscriptions))
	for _, f := range subscriptions {
		filters[m.topic("+", f)] = 0
	}
	if err := wait(ctx, c.SubscribeMultiple(filters, m.handler)); err != nil {
		return fmt.Errorf("subscribe %s: %w", m.name, err)
	}
	if ext := m.s.ext; ext != nil {
		if err := wait(ctx, c.Publish(ext.Root+mqttproto.GatewayPresenceTopic(m.name), 1, true, []byte("online"))); err != nil {
			return fmt.Errorf("announce %s: %w", m.name, err)
		}
	}
	// Announced at the connection's share of AnnounceRate, in chunks
	// whose acknowledgements are awaited.
	rate := m.s.opts.AnnounceRate
	if rate <= 0 {
		rate = 10_000
	}
	rate /= float64(len(m.s.muxes))
	clk := m.s.opts.Clock
	start := clk.Now()
	var toks []paho.Token
	n := 0
	flush := func() error {
		for _, t := range toks {
			if err := wait(ctx, t); err != nil {
				return fmt.Errorf("announce the devices of %s: %w", m.name, err)
			}
		}
		toks = toks[:0]
		if ahead := time.Duration(float64(n)/rate*float64(time.Second)) - clk.Since(start); ahead > 0 {
			t := clk.NewTimer(ahead)
			defer t.Stop()
			select {
			case <-t.C():
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	for _, d := range m.devices {
		if w := d.w.(*muxWire); w.wanted() {
			toks = append(toks, w.announce(c, true))
			if n++; len(toks) == 100 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// reannounce restores the devices after the connection came back: each
// is announced again and reconciles with its twin, as after a reboot.
func (m *muxConn) reannounce(c paho.Client) {
	ctx, cancel := m.s.opts.Clock.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.announceAll(ctx, c); err != nil {
		m.s.errors.Add(1)
		m.s.opts.Logger.Warn("reconnect multiplexed connection", "connection", m.name, "err", err)
		return
	}
	var g errgroup.Group
	g.SetLimit(muxReconcilers)
	for _, d := range m.devices {
		if d.w.isUp() {
			g.Go(func() error {
				if err := d.reconcile(ctx); err != nil {
					m.s.errors.Add(1)
					m.s.opts.Logger.Debug("report properties after reconnecting", "device", d.spec.ID, "err", err)
				}
				return nil
			})
		}
	}
	g.Wait()
}

func (m *muxConn) handler(_ paho.Client, msg paho.Message) {
	topic := msg.Topic()
	if ext := m.s.ext; ext != nil {
		topic = strings.TrimPrefix(topic, ext.Root)
	}
	id, dt, ok := mqttproto.Unscope(topic)
	if !ok {
		return
	}
	if d := m.devices[id]; d != nil {
		d.onMessage(dt, msg.Payload())
	}
}

func (m *muxConn) conn() paho.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.client
}

// close withdraws every device (on an external broker, their retained
// announcements too) and disconnects.
func (m *muxConn) close() {
	c := m.conn()
	if c == nil || !c.IsConnectionOpen() {
		return
	}
	if ext := m.s.ext; ext != nil {
		var toks []paho.Token
		for _, d := range m.devices {
			toks = append(toks, c.Publish(m.topic(d.spec.ID, mqttproto.PresenceTopic(d.spec.ID)), 1, true, []byte{}))
		}
		toks = append(toks, c.Publish(ext.Root+mqttproto.GatewayPresenceTopic(m.name), 1, true, []byte{}))
		for _, t := range toks {
			t.WaitTimeout(5 * time.Second)
		}
	}
	c.Disconnect(250)
}

// muxWire is one device's share of a multiplexed connection: going off
// line and back is withdrawing and announcing its presence.
type muxWire struct {
	m *muxConn
	d *simDevice

	online upFlag      // announced
	off    atomic.Bool // taken off line (down or close): not announced again
}

// wanted reports whether the device should be announced.
func (w *muxWire) wanted() bool { return !w.off.Load() }

// announce publishes the device's presence (or its withdrawal).
func (w *muxWire) announce(c paho.Client, up bool) paho.Token {
	id := w.d.spec.ID
	var payload []byte
	if up {
		payload = mqttproto.PresencePayload(subscriptions, w.m.name)
	}
	// Retained on an external broker, so a hub that starts later learns
	// it; the embedded broker takes it as the gateway's word and keeps
	// nothing.
	t := c.Publish(w.m.topic(id, mqttproto.PresenceTopic(id)), 1, w.m.s.ext != nil, payload)
	w.online.set(w.m.s, up)
	return t
}

func (w *muxWire) publish(ctx context.Context, deviceTopic string, payload []byte) error {
	return wait(ctx, w.m.conn().Publish(w.m.topic(w.d.spec.ID, deviceTopic), 0, false, payload))
}

func (w *muxWire) down() {
	w.off.Store(true) // not re-announced if the connection comes back meanwhile
	w.announce(w.m.conn(), false).WaitTimeout(5 * time.Second)
}

func (w *muxWire) up(ctx context.Context) error {
	w.off.Store(false)
	return wait(ctx, w.announce(w.m.conn(), true))
}

func (w *muxWire) isUp() bool { return w.online.get() }

// close is the connection's business (muxConn.close); the device only
// stops counting.
func (w *muxWire) close() {
	w.off.Store(true)
	w.online.set(w.m.s, false)
}

// wait turns a paho token into a context-aware call.
func wait(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clientOptions are what every multiplexed connection shares: MQTT
// 3.1.1, handlers run concurrently, and back on line within seconds of a
// hub restart, as a fleet would be, not after paho's ten-minute backoff
// ceiling.
func clientOptions(clientID string) *paho.ClientOptions {
	return paho.NewClientOptions().
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(2 * time.Second).
		SetConnectRetry(false).
		SetConnectTimeout(30 * time.Second)
}

// broker points paho's options o at [Sim.endpoint].
func (s *Sim) broker(o *paho.ClientOptions) error {
	addr, tlsConfig, err := s.endpoint()
	if err != nil {
		return err
	}
	if s.ext != nil {
		o.AddBroker(s.ext.Dial())
	} else {
		o.AddBroker("tls://" + addr)
	}
	if tlsConfig != nil {
		o.SetTLSConfig(tlsConfig)
	}
	return nil
}
