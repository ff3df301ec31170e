package simulate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/mqttproto"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/sas"
)

// Options say how simulated devices reach a hub over MQTT.
type Options struct {
	// Addr is the broker's host:port (MQTT over TLS).
	Addr string
	// Broker, when set, is an external broker's URL
	// (mqtt[s]://[user:password@]host:port[/root]) that a hub runs on
	// (hub serve --broker): devices connect there instead of Addr, use
	// device-scoped topics ("devices/{id}/$iothub/...") and announce their
	// presence (mqttproto.PresenceTopic). Each device's username is its id
	// and its password a SAS token, unless the URL names a user.
	Broker string
	// HostName is the hub's name as in its connection string; it goes into
	// the MQTT username and the SAS token's resource, like a real device's.
	HostName string
	// RootCAs verifies the broker's certificate; nil means the system pool.
	RootCAs *x509.CertPool
	// Clock paces method latency, desired-report delays and flapping; nil
	// means the real clock.
	Clock clock.Clock
	// Dialers is how many devices connect at once (default 64).
	Dialers int
	// OnMethod, when set, is told of every method request a device
	// receives, before it answers (tests count them).
	OnMethod func(deviceID, method string)
	Logger   *slog.Logger
}

// Register makes sure every device of the fleet exists on the hub with the
// fleet's tags: it creates missing devices (the hub generates their keys)
// and returns each device's primary key, read back through the service
// API exactly as an operator's provisioning script would.
func Register(ctx context.Context, c hub.Client, devs []*Device) (map[string]string, error) {
	keys := make(map[string]string, len(devs))
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, d := range devs {
		g.Go(func() error {
			dev, err := c.GetDevice(ctx, d.ID)
			if errors.Is(err, hub.ErrDeviceNotFound) {
				dev, err = c.CreateDevice(ctx, &hub.Device{DeviceID: d.ID})
				if errors.Is(err, &hub.Error{Code: hub.CodeDeviceAlreadyExists}) {
					dev, err = c.GetDevice(ctx, d.ID) // another simulator won the race
				}
			}
			if err != nil {
				return fmt.Errorf("register device %s: %w", d.ID, err)
			}
			if len(d.Tags) > 0 {
				tw, err := c.GetTwin(ctx, d.ID)
				if err != nil {
					return fmt.Errorf("read twin of %s: %w", d.ID, err)
				}
				if !reflect.DeepEqual(normalize(tw.Tags), normalize(d.Tags)) {
					if _, err := c.UpdateTwin(ctx, d.ID, &hub.TwinPatch{Tags: d.Tags}, "*"); err != nil {
						return fmt.Errorf("set tags of %s: %w", d.ID, err)
					}
				}
			}
			mu.Lock()
			keys[d.ID] = dev.Authentication.SymmetricKey.PrimaryKey
			mu.Unlock()
			return nil
		})
	}
	return keys, g.Wait()
}

// normalize round-trips a JSON value so that comparisons ignore Go types
// (int vs float64).
func normalize(v any) any {
	b, _ := json.Marshal(v)
	var out any
	json.Unmarshal(b, &out)
	if m, ok := out.(map[string]any); ok && len(m) == 0 {
		return nil
	}
	return out
}

// Sim is a set of simulated devices connected to a hub, one MQTT
// connection each.
type Sim struct {
	opts    Options
	devices []*simDevice
}

// Connect connects every device that is not offline and waits until each
// is connected and subscribed. keys holds each device's key.
func Connect(ctx context.Context, devs []*Device, keys map[string]string, opts Options) (*Sim, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default().With("system", "simulate")
	}
	if opts.Dialers <= 0 {
		opts.Dialers = 64
	}
	var ext *mqttproto.BrokerURL
	if opts.Broker != "" {
		u, err := mqttproto.ParseBrokerURL(opts.Broker)
		if err != nil {
			return nil, err
		}
		ext = &u
	}
	s := &Sim{opts: opts}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Dialers)
	for _, d := range devs {
		if d.Offline {
			continue
		}
		key, ok := keys[d.ID]
		if !ok {
			s.Close()
			return nil, fmt.Errorf("no key for device %s", d.ID)
		}
		sd := &simDevice{spec: d, key: key, opts: &s.opts, ext: ext, rng: d.RNG(), pending: map[string]chan twinReply{}}
		g.Go(func() error {
			if err := sd.connect(gctx); err != nil {
				return err
			}
			mu.Lock()
			s.devices = append(s.devices, sd)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		s.Close()
		return nil, err
	}
	for _, sd := range s.devices {
		sd.startFlapping()
	}
	return s, nil
}

// Len is the number of connected devices.
func (s *Sim) Len() int { return len(s.devices) }

// Close disconnects every device.
func (s *Sim) Close() {
	for _, d := range s.devices {
		d.close()
	}
	s.devices = nil
}

// simDevice is one simulated device on its own paho connection. paho is
// wrapped here and nowhere else on the device side.
type simDevice struct {
	spec *Device
	key  string
	opts *Options
	ext  *mqttproto.BrokerURL // the external broker, or nil

	mu      sync.Mutex
	rng     *rand.Rand
	client  paho.Client
	closed  bool
	rid     int
	pending map[string]chan twinReply
}

type twinReply struct {
	status  int
	payload []byte
}

const apiVersion = "2021-04-12"

func (d *simDevice) connect(ctx context.Context) error {
	id := d.spec.ID
	o := paho.NewClientOptions().
		SetClientID(id).
		SetCleanSession(false).
		SetProtocolVersion(4).
		SetKeepAlive(180 * time.Second).
		SetOrderMatters(false).
		SetAutoReconnect(true).
		// Back on line within seconds of a hub restart, as a fleet would
		// be, not after paho's ten-minute backoff ceiling.
		SetMaxReconnectInterval(2 * time.Second).
		SetConnectRetry(false).
		SetConnectTimeout(30 * time.Second).
		SetOnConnectHandler(func(c paho.Client) { go d.subscribe(c) })
	if d.ext == nil {
		host, _, err := net.SplitHostPort(d.opts.Addr)
		if err != nil {
			return fmt.Errorf("broker address %q: %w", d.opts.Addr, err)
		}
		o.AddBroker("tls://" + d.opts.Addr).
			SetTLSConfig(&tls.Config{RootCAs: d.opts.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12}).
			SetCredentialsProvider(func() (string, string) {
				// A fresh token at every (re)connect, as the Azure SDKs do.
				return d.opts.HostName + "/" + id + "/?api-version=" + apiVersion, d.token()
			})
	} else {
		o.AddBroker(d.ext.Dial()).
			SetCredentialsProvider(func() (string, string) {
				if d.ext.Username != "" {
					return d.ext.Username, d.ext.Password
				}
				return id, d.token()
			}).
			// A device that vanishes clears its presence (retained).
			SetBinaryWill(d.topic(mqttproto.PresenceTopic(id)), nil, 1, true)
		if d.ext.TLS {
			host, _, _ := net.SplitHostPort(d.ext.Host)
			o.SetTLSConfig(&tls.Config{RootCAs: d.opts.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12})
		}
	}
	c := paho.NewClient(o)
	d.mu.Lock()
	d.client = c
	d.mu.Unlock()
	if err := wait(ctx, c.Connect()); err != nil {
		return fmt.Errorf("connect device %s to %s: %w", id, d.brokerName(), err)
	}
	// The OnConnect handler subscribes asynchronously; subscribe here too
	// and wait, so that Connect returns only once the hub sees the device
	// online for methods.
	if err := d.subscribeWait(ctx, c); err != nil {
		return fmt.Errorf("subscribe device %s: %w", id, err)
	}
	if len(d.spec.Reported) > 0 {
		if err := d.report(ctx, d.spec.Reported); err != nil {
			return fmt.Errorf("report initial properties of %s: %w", id, err)
		}
	}
	return nil
}

func (d *simDevice) brokerName() string {
	if d.ext != nil {
		return d.ext.String()
	}
	return d.opts.Addr
}

func (d *simDevice) token() string {
	tok, _ := sas.DeviceToken(d.opts.HostName, d.spec.ID, d.key, d.opts.Clock.Now().Add(time.Hour))
	return tok
}

// subscriptions are the device-side filters every simulated device uses.
var subscriptions = []string{mqttproto.MethodsSubscription, mqttproto.DesiredSubscription, mqttproto.TwinResSubscription}

// topic is a device-side topic ("$iothub/...") as this device publishes
// or subscribes to it: unchanged on the embedded broker, device-scoped
// (under the URL's root) on an external one.
func (d *simDevice) topic(deviceTopic string) string {
	if d.ext == nil {
		return deviceTopic
	}
	return d.ext.Root + mqttproto.Scoped(d.spec.ID, deviceTopic)
}

// deviceTopic is the inverse of topic for a received message.
func (d *simDevice) deviceTopic(topic string) string {
	if d.ext == nil {
		return topic
	}
	if _, dt, ok := mqttproto.Unscope(strings.TrimPrefix(topic, d.ext.Root)); ok {
		return dt
	}
	return topic
}

func (d *simDevice) filters() map[string]byte {
	m := make(map[string]byte, len(subscriptions))
	for _, f := range subscriptions {
		m[d.topic(f)] = 0
	}
	return m
}

func (d *simDevice) subscribe(c paho.Client) {
	ctx, cancel := d.opts.Clock.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.subscribeWait(ctx, c); err != nil {
		d.opts.Logger.Debug("subscribe after reconnect", "device", d.spec.ID, "err", err)
	}
}

// subscribeWait subscribes and, on an external broker, then announces
// the device online: the hub calls it only once both are done.
func (d *simDevice) subscribeWait(ctx context.Context, c paho.Client) error {
	if err := wait(ctx, c.SubscribeMultiple(d.filters(), d.onMessage)); err != nil {
		return err
	}
	if d.ext == nil {
		return nil
	}
	return wait(ctx, c.Publish(d.topic(mqttproto.PresenceTopic(d.spec.ID)), 1, true, mqttproto.PresencePayload(subscriptions)))
}

// goOffline clears an external broker device's presence before a clean
// disconnect, which sends no Will.
func (d *simDevice) goOffline(c paho.Client) {
	if d.ext == nil || !c.IsConnectionOpen() {
		return
	}
	c.Publish(d.topic(mqttproto.PresenceTopic(d.spec.ID)), 1, true, []byte{}).WaitTimeout(5 * time.Second)
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

func (d *simDevice) onMessage(c paho.Client, msg paho.Message) {
	m, err := mqttproto.ParseTopic(d.deviceTopic(msg.Topic()))
	if err != nil {
		d.opts.Logger.Debug("ignore message", "device", d.spec.ID, "topic", msg.Topic(), "err", err)
		return
	}
	switch m.Kind {
	case mqttproto.MethodRequest:
		d.onMethod(c, m)
	case mqttproto.DesiredPatch:
		d.onDesired(msg.Payload())
	case mqttproto.TwinResponse:
		d.mu.Lock()
		ch := d.pending[m.RID]
		delete(d.pending, m.RID)
		d.mu.Unlock()
		if ch != nil {
			ch <- twinReply{status: m.Status, payload: msg.Payload()}
		}
	}
}

func (d *simDevice) onMethod(c paho.Client, m mqttproto.Message) {
	if d.opts.OnMethod != nil {
		d.opts.OnMethod(d.spec.ID, m.Method)
	}
	d.mu.Lock()
	ans := d.spec.Answer(m.Method, d.rng)
	d.mu.Unlock()
	d.after(ans.Latency, func() {
		payload := ans.Payload
		if len(payload) == 0 {
			payload = json.RawMessage("null")
		}
		c.Publish(d.topic(mqttproto.MethodResponseTopic(ans.Status, m.RID)), 0, false, []byte(payload))
		if ans.DisconnectFor > 0 {
			d.bounce(ans.DisconnectFor)
		}
	})
}

func (d *simDevice) onDesired(payload []byte) {
	if d.spec.Desired == nil || !d.spec.Desired.Report {
		return
	}
	var patch map[string]any
	if err := json.Unmarshal(payload, &patch); err != nil {
		return
	}
	delete(patch, "$version")
	d.after(d.spec.Desired.Delay, func() {
		ctx, cancel := d.opts.Clock.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.report(ctx, patch); err != nil {
			d.opts.Logger.Debug("report desired", "device", d.spec.ID, "err", err)
		}
	})
}

// report sends a reported-properties patch and waits for the hub's 204.
func (d *simDevice) report(ctx context.Context, patch map[string]any) error {
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	ch := make(chan twinReply, 1)
	d.mu.Lock()
	d.rid++
	rid := "r" + strconv.Itoa(d.rid)
	d.pending[rid] = ch
	c := d.client
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.pending, rid)
		d.mu.Unlock()
	}()
	if err := wait(ctx, c.Publish(d.topic(mqttproto.ReportedPatchTopic(rid)), 0, false, body)); err != nil {
		return err
	}
	select {
	case r := <-ch:
		if r.status != 204 {
			return fmt.Errorf("hub answered %d: %s", r.status, r.payload)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// after runs f after dur on the clock, unless the device is closed.
func (d *simDevice) after(dur time.Duration, f func()) {
	if dur <= 0 {
		f()
		return
	}
	// No handle is kept: a timer that fires after Close finds the device
	// closed and does nothing, and keeping handles would grow without end.
	d.opts.Clock.AfterFunc(dur, func() {
		d.mu.Lock()
		closed := d.closed
		d.mu.Unlock()
		if !closed {
			f()
		}
	})
}

// bounce disconnects the device and reconnects it after dur, like a
// device that reboots.
func (d *simDevice) bounce(dur time.Duration) {
	d.mu.Lock()
	c := d.client
	d.mu.Unlock()
	d.goOffline(c)
	c.Disconnect(0)
	d.after(dur, func() {
		ctx, cancel := d.opts.Clock.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := wait(ctx, c.Connect()); err != nil {
			d.opts.Logger.Warn("reconnect device", "device", d.spec.ID, "err", err)
		}
	})
}

// startFlapping makes a flapping device go down and up for ever.
func (d *simDevice) startFlapping() {
	f := d.spec.Flapping
	if f == nil || f.Up <= 0 || f.Down <= 0 {
		return
	}
	var cycle func()
	cycle = func() {
		d.bounce(f.Down)
		d.after(f.Down+f.Up, cycle)
	}
	d.after(f.Up, cycle)
}

func (d *simDevice) close() {
	d.mu.Lock()
	d.closed = true
	c := d.client
	d.mu.Unlock()
	if c != nil {
		d.goOffline(c)
		c.Disconnect(100)
	}
}

// IDs are the ids of the connected devices.
func (s *Sim) IDs() []string {
	ids := make([]string, len(s.devices))
	for i, d := range s.devices {
		ids[i] = d.spec.ID
	}
	return ids
}

// WaitConnected waits until the hub's registry shows every connected
// device connected. On the embedded broker that is so when Connect returns; on an
// external broker the hub learns it from the devices' presence messages,
// a moment later, and a job started before would find them offline.
func (s *Sim) WaitConnected(ctx context.Context, c hub.Client) error {
	ids := s.IDs()
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		quoted := make([]string, n)
		for i, id := range ids[:n] {
			quoted[i] = "'" + query.Escape(id) + "'"
		}
		q := "SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected' AND deviceId IN [" + strings.Join(quoted, ",") + "]"
		for {
			res, err := c.Query(ctx, q, hub.QueryOptions{})
			if err != nil {
				return fmt.Errorf("wait for devices to be connected: %w", err)
			}
			var row struct{ N int }
			if len(res.Items) == 1 && json.Unmarshal(res.Items[0], &row) == nil && row.N == n {
				break
			}
			t := s.opts.Clock.NewTimer(50 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("wait for %d devices to be connected (from %s on): %w", n, ids[0], ctx.Err())
			case <-t.C():
			}
		}
		ids = ids[n:]
	}
	return nil
}
