package simulate

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub/mqttproto"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/simulate/internal/mqttc"
)

// Token lifetime and renewal margin, as the Azure device SDK's defaults:
// a token valid for an hour, renewed (DISCONNECT, CONNECT with a new
// token, no SUBSCRIBE) 15 minutes before it expires.
const (
	tokenValidity = time.Hour
	renewBefore   = 15 * time.Minute
)

// ownWire is a device on an MQTT connection of its own: to the embedded
// broker over TLS ("$iothub/..." topics, a SAS token as password, as the
// Azure device SDKs connect), or to an external broker (device-scoped
// topics, presence announcements). Its client is mqttc's, not paho's: a
// fleet holds tens of thousands of them.
type ownWire struct {
	d      *simDevice
	key    string
	opts   mqttc.Options
	client *mqttc.Client
	online upFlag
}

// newOwnWire prepares device d's connection to addr (TLS when tlsConfig
// is set, shared by the fleet); connect opens it.
func newOwnWire(d *simDevice, key, addr string, tlsConfig *tls.Config) *ownWire {
	w := &ownWire{d: d, key: key}
	s, id := d.sim, d.spec.ID
	o := mqttc.Options{
		Addr:           addr,
		TLS:            tlsConfig,
		ClientID:       id,
		CleanSession:   false,
		KeepAlive:      180 * time.Second,
		ConnectTimeout: 30 * time.Second,
		OnConnect: func(first bool) {
			// Connect subscribes itself (up, connect) or relies on the
			// session (token renewal); an automatic reconnect (a hub
			// restart loses the session) subscribes again and reconciles
			// with the twin, as after a reboot.
			if !first {
				w.reconnected()
			}
		},
		OnConnectionLost: func(error) { w.setUp(false) },
	}
	switch {
	case s.ext == nil && d.spec.cert != nil && tlsConfig != nil:
		// An X.509 device: its certificate in the TLS handshake, no
		// password (and no token to renew).
		o.TLS = tlsConfig.Clone()
		o.TLS.Certificates = []tls.Certificate{*d.spec.cert}
		o.Credentials = func() (string, string) {
			return s.opts.HostName + "/" + id + "/?api-version=" + apiVersion, ""
		}
	case s.ext == nil:
		o.Credentials = func() (string, string) {
			// A fresh token at every (re)connect, as the Azure SDKs do.
			return s.opts.HostName + "/" + id + "/?api-version=" + apiVersion, w.token()
		}
	default:
		o.Credentials = func() (string, string) {
			if s.ext.Username != "" {
				return s.ext.Username, s.ext.Password
			}
			return id, w.token()
		}
		// A device that vanishes clears its presence (retained).
		o.Will = &mqttc.Will{Topic: w.topic(mqttproto.PresenceTopic(id)), QoS: 1, Retain: true}
	}
	w.opts = o
	w.client = mqttc.New(o)
	return w
}

func (w *ownWire) sim() *Sim { return w.d.sim }

func (w *ownWire) topic(deviceTopic string) string {
	return w.sim().topicFor(w.d.spec.ID, deviceTopic, w.sim().ext != nil)
}

func (w *ownWire) token() string {
	o := w.sim().opts
	tok, _ := sas.DeviceToken(o.HostName, w.d.spec.ID, w.key, o.Clock.Now().Add(tokenValidity))
	return tok
}

func (w *ownWire) connect(ctx context.Context) error {
	s, id := w.sim(), w.d.spec.ID
	if err := w.client.Connect(ctx); err != nil {
		return fmt.Errorf("connect device %s to %s: %w", id, s.brokerName(), err)
	}
	// Connect returns only once the device is subscribed, so that the
	// hub sees it online for methods.
	if err := w.subscribe(ctx); err != nil {
		return fmt.Errorf("subscribe device %s: %w", id, err)
	}
	if err := w.d.reconcile(ctx); err != nil {
		return fmt.Errorf("report initial properties of %s: %w", id, err)
	}
	if w.d.spec.cert == nil || s.ext != nil {
		w.scheduleRenewal()
	}
	return nil
}

// scheduleRenewal renews the SAS token before it expires, as the Azure
// device SDK does: a new connection with the same id and clean session 0,
// relying on the persistent session for the subscriptions.
func (w *ownWire) scheduleRenewal() {
	w.d.after(tokenValidity-renewBefore, func() {
		if w.online.get() {
			w.client.Disconnect()
			ctx, cancel := w.sim().opts.Clock.WithTimeout(context.Background(), 60*time.Second)
			if err := w.client.Connect(ctx); err != nil {
				w.setUp(false)
				w.sim().errors.Add(1)
				w.sim().opts.Logger.Warn("renew token", "device", w.d.spec.ID, "err", err)
			}
			cancel()
		}
		w.scheduleRenewal()
	})
}

func (w *ownWire) filters() map[string]byte {
	m := make(map[string]byte, len(subscriptions))
	for _, f := range subscriptions {
		m[w.topic(f)] = 0
	}
	return m
}

func (w *ownWire) handler(topic string, payload []byte) {
	if s := w.sim(); s.ext != nil {
		if _, dt, ok := mqttproto.Unscope(strings.TrimPrefix(topic, s.ext.Root)); ok {
			topic = dt
		}
	}
	w.d.onMessage(topic, payload)
}

// reconnected restores the device after an automatic reconnect, in the
// reconnecting goroutine (mqttc's OnConnect may block).
func (w *ownWire) reconnected() {
	ctx, cancel := w.sim().opts.Clock.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.subscribe(ctx); err != nil {
		w.sim().opts.Logger.Debug("subscribe after reconnect", "device", w.d.spec.ID, "err", err)
		return
	}
	if err := w.d.reconcile(ctx); err != nil {
		w.sim().errors.Add(1)
		w.sim().opts.Logger.Debug("report properties after reconnecting", "device", w.d.spec.ID, "err", err)
	}
}

// subscribe subscribes and, on an external broker, then announces the
// device online: the hub calls it only once both are done.
func (w *ownWire) subscribe(ctx context.Context) error {
	if err := w.client.Subscribe(ctx, w.filters(), w.handler); err != nil {
		return err
	}
	if w.sim().ext != nil {
		if err := w.client.Publish(ctx, w.topic(mqttproto.PresenceTopic(w.d.spec.ID)), 1, true, mqttproto.PresencePayload(subscriptions, "")); err != nil {
			return err
		}
	}
	w.setUp(true)
	return nil
}

func (w *ownWire) setUp(up bool) { w.online.set(w.sim(), up) }

func (w *ownWire) isUp() bool { return w.online.get() }

func (w *ownWire) publish(ctx context.Context, deviceTopic string, payload []byte) error {
	return w.client.Publish(ctx, w.topic(deviceTopic), 0, false, payload)
}

// goOffline clears an external broker device's presence before a clean
// disconnect, which sends no Will.
func (w *ownWire) goOffline() {
	if w.sim().ext == nil || !w.client.IsConnected() {
		return
	}
	ctx, cancel := w.sim().opts.Clock.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.client.Publish(ctx, w.topic(mqttproto.PresenceTopic(w.d.spec.ID)), 1, true, []byte{}) // best effort: the device leaves anyway
}

func (w *ownWire) down() {
	w.goOffline()
	w.client.Disconnect()
	w.setUp(false)
}

func (w *ownWire) up(ctx context.Context) error {
	if err := w.client.Connect(ctx); err != nil {
		return err
	}
	return w.subscribe(ctx)
}

func (w *ownWire) close() {
	w.goOffline()
	w.client.Disconnect()
	w.setUp(false)
	if w.sim().ext != nil {
		w.endSession()
	}
}

// endSession has the external broker forget the device's persistent
// session (its subscriptions), by a clean-session connect: a simulated
// fleet that leaves for good must not leave a broker such as Mosquitto,
// which keeps sessions until told otherwise, one more session per
// device at every run. The embedded broker expires them itself.
func (w *ownWire) endSession() {
	o := w.opts
	o.CleanSession, o.Will, o.OnConnect, o.OnConnectionLost = true, nil, nil, nil
	c := mqttc.New(o)
	ctx, cancel := w.sim().opts.Clock.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		w.sim().opts.Logger.Debug("end the device's broker session", "device", w.d.spec.ID, "err", err)
		return
	}
	c.Disconnect()
}

// endpoint is where devices connect: the embedded broker over TLS
// (Options.Addr), or the external broker of Options.Broker; tlsConfig is
// nil for plain TCP. One configuration serves the whole fleet.
func (s *Sim) endpoint() (addr string, tlsConfig *tls.Config, err error) {
	addr, useTLS := s.opts.Addr, true
	if s.ext != nil {
		addr, useTLS = s.ext.Host, s.ext.TLS
	}
	if !useTLS {
		return addr, nil, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, fmt.Errorf("broker address %q: %w", addr, err)
	}
	// X25519 alone, as the TLS stacks of constrained devices offer it: Go's
	// default adds a post-quantum key share of 1.2 KB to every ClientHello
	// (and its answer), which both ends then keep in their buffers for the
	// connection's life, and costs a fleet's connect CPU.
	return addr, &tls.Config{RootCAs: s.opts.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12,
		CurvePreferences: []tls.CurveID{tls.X25519}}, nil
}

// brokerName is where devices connect, for messages (no password).
func (s *Sim) brokerName() string {
	if s.ext != nil {
		return s.ext.String()
	}
	return s.opts.Addr
}
