package simulate

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotjobs/iotjobs/hub/mqttproto"
	"github.com/iotjobs/iotjobs/hub/sas"
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
// topics, presence announcements).
type ownWire struct {
	d   *simDevice
	key string

	mu       sync.Mutex
	client   paho.Client
	online   upFlag
	connects atomic.Int64 // OnConnect calls
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
	o := clientOptions(id).
		SetCleanSession(false).
		SetKeepAlive(180 * time.Second).
		SetOnConnectHandler(func(c paho.Client) {
			// The first connect subscribes in connect itself; later ones
			// (a hub restart loses the session) subscribe again here.
			if w.connects.Add(1) > 1 {
				go w.resubscribe(c)
			}
		}).
		SetConnectionLostHandler(func(paho.Client, error) { w.setUp(false) })
	if err := s.broker(o); err != nil {
		return err
	}
	if s.ext == nil {
		o.SetCredentialsProvider(func() (string, string) {
			// A fresh token at every (re)connect, as the Azure SDKs do.
			return s.opts.HostName + "/" + id + "/?api-version=" + apiVersion, w.token()
		})
	} else {
		o.SetCredentialsProvider(func() (string, string) {
			if s.ext.Username != "" {
				return s.ext.Username, s.ext.Password
			}
			return id, w.token()
		}).
			// A device that vanishes clears its presence (retained).
			SetBinaryWill(w.topic(mqttproto.PresenceTopic(id)), nil, 1, true)
	}
	c := paho.NewClient(o)
	w.mu.Lock()
	w.client = c
	w.mu.Unlock()
	if err := wait(ctx, c.Connect()); err != nil {
		return fmt.Errorf("connect device %s to %s: %w", id, s.brokerName(), err)
	}
	// The OnConnect handler subscribes asynchronously; subscribe here too
	// and wait, so that Connect returns only once the hub sees the device
	// online for methods.
	if err := w.subscribe(ctx, c); err != nil {
		return fmt.Errorf("subscribe device %s: %w", id, err)
	}
	if len(w.d.spec.Reported) > 0 {
		if err := w.d.report(ctx, w.d.spec.Reported); err != nil {
			return fmt.Errorf("report initial properties of %s: %w", id, err)
		}
	}
	w.scheduleRenewal()
	return nil
}

// scheduleRenewal renews the SAS token before it expires, as the Azure
// device SDK does: a new connection with the same id and clean session 0,
// relying on the persistent session for the subscriptions.
func (w *ownWire) scheduleRenewal() {
	w.d.after(tokenValidity-renewBefore, func() {
		w.mu.Lock()
		c := w.client
		w.mu.Unlock()
		if w.online.get() {
			c.Disconnect(0)
			ctx, cancel := w.sim().opts.Clock.WithTimeout(context.Background(), 60*time.Second)
			if err := wait(ctx, c.Connect()); err != nil {
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

func (w *ownWire) handler(_ paho.Client, msg paho.Message) {
	topic := msg.Topic()
	if s := w.sim(); s.ext != nil {
		if _, dt, ok := mqttproto.Unscope(strings.TrimPrefix(topic, s.ext.Root)); ok {
			topic = dt
		}
	}
	w.d.onMessage(topic, msg.Payload())
}

func (w *ownWire) resubscribe(c paho.Client) {
	ctx, cancel := w.sim().opts.Clock.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.subscribe(ctx, c); err != nil {
		w.sim().opts.Logger.Debug("subscribe after reconnect", "device", w.d.spec.ID, "err", err)
	}
}

// subscribe subscribes and, on an external broker, then announces the
// device online: the hub calls it only once both are done.
func (w *ownWire) subscribe(ctx context.Context, c paho.Client) error {
	if err := wait(ctx, c.SubscribeMultiple(w.filters(), w.handler)); err != nil {
		return err
	}
	if w.sim().ext != nil {
		if err := wait(ctx, c.Publish(w.topic(mqttproto.PresenceTopic(w.d.spec.ID)), 1, true, mqttproto.PresencePayload(subscriptions, ""))); err != nil {
			return err
		}
	}
	w.setUp(true)
	return nil
}

func (w *ownWire) setUp(up bool) { w.online.set(w.sim(), up) }

func (w *ownWire) publish(deviceTopic string, payload []byte) paho.Token {
	w.mu.Lock()
	c := w.client
	w.mu.Unlock()
	return c.Publish(w.topic(deviceTopic), 0, false, payload)
}

// goOffline clears an external broker device's presence before a clean
// disconnect, which sends no Will.
func (w *ownWire) goOffline(c paho.Client) {
	if w.sim().ext == nil || !c.IsConnectionOpen() {
		return
	}
	c.Publish(w.topic(mqttproto.PresenceTopic(w.d.spec.ID)), 1, true, []byte{}).WaitTimeout(5 * time.Second)
}

func (w *ownWire) down() {
	w.mu.Lock()
	c := w.client
	w.mu.Unlock()
	w.goOffline(c)
	c.Disconnect(0)
	w.setUp(false)
}

func (w *ownWire) up(ctx context.Context) error {
	w.mu.Lock()
	c := w.client
	w.mu.Unlock()
	if err := wait(ctx, c.Connect()); err != nil {
		return err
	}
	return w.subscribe(ctx, c)
}

func (w *ownWire) close() {
	w.mu.Lock()
	c := w.client
	w.mu.Unlock()
	if c != nil {
		w.goOffline(c)
		c.Disconnect(100)
		w.setUp(false)
	}
}

// clientOptions are what every simulator connection shares: MQTT 3.1.1,
// handlers run concurrently, and back on line within seconds of a hub
// restart, as a fleet would be, not after paho's ten-minute backoff
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

// broker points o at where devices connect: the embedded broker over TLS
// (Options.Addr), or the external broker of Options.Broker.
func (s *Sim) broker(o *paho.ClientOptions) error {
	addr, scheme := s.opts.Addr, "tls://"
	if s.ext != nil {
		addr, scheme = s.ext.Host, ""
		o.AddBroker(s.ext.Dial())
		if !s.ext.TLS {
			return nil
		}
	} else {
		o.AddBroker(scheme + addr)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("broker address %q: %w", addr, err)
	}
	o.SetTLSConfig(&tls.Config{RootCAs: s.opts.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12})
	return nil
}

// brokerName is where devices connect, for messages (no password).
func (s *Sim) brokerName() string {
	if s.ext != nil {
		return s.ext.String()
	}
	return s.opts.Addr
}
