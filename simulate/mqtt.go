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
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/mqttproto"
	"github.com/iotjobs/iotjobs/hub/query"
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
	// Connections, when positive, plays the whole fleet over that many
	// MQTT connections (multiplexed), so that a very large fleet fits on
	// one machine: on the embedded broker as gateways ("$gateway/{name}",
	// with PolicyName's SAS token), on an external broker as clients whose
	// own presence stands for their devices'. Devices then use
	// device-scoped topics, as on an external broker.
	Connections int
	// AnnounceRate bounds how many devices a multiplexed simulator
	// announces online per second (default 10,000): a broker drops
	// messages for a subscriber that falls behind (Mosquitto, beyond
	// max_queued_messages), and the hub is one subscriber of them all.
	AnnounceRate float64
	// PolicyName and PolicyKey sign a multiplexed connection's SAS token
	// on the embedded broker (a shared access policy such as iothubowner).
	PolicyName, PolicyKey string
	// TwinTimeout bounds a device's twin GET when it (re)connects
	// (default 30 s, on Clock): a device not answered by then reports its
	// fleet file's values. A test on a fast clock gives the hub's real
	// latency room with a longer one.
	TwinTimeout time.Duration
	// OnMethod, when set, is told of every method request a device
	// receives, before it answers (tests count them).
	OnMethod func(deviceID, method string)
	Logger   *slog.Logger
}

// Register makes sure every device of the fleet exists on the hub with the
// fleet's tags and authentication kind: it creates missing devices (the
// hub generates their keys) and returns each sas device's primary key,
// read back through the service API exactly as an operator's
// provisioning script would. X.509 devices get new certificates (x509.go)
// that Connect presents; an existing device of another kind, or an X.509
// one (whose certificate is new), is updated to match.
func Register(ctx context.Context, c hub.Client, devs []*Device) (map[string]string, error) {
	keys := make(map[string]string, len(devs))
	var mu sync.Mutex
	var ca runCA
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, d := range devs {
		g.Go(func() error {
			want := hub.Authentication{Type: hub.AuthSAS}
			if hub.IsX509(d.Auth) {
				var err error
				if want, err = x509Auth(ctx, c, d, &ca); err != nil {
					return fmt.Errorf("register device %s: %w", d.ID, err)
				}
			}
			dev, err := c.GetDevice(ctx, d.ID)
			created := false
			if errors.Is(err, hub.ErrDeviceNotFound) {
				dev, err = c.CreateDevice(ctx, &hub.Device{DeviceID: d.ID, Authentication: want})
				created = err == nil
				if errors.Is(err, &hub.Error{Code: hub.CodeDeviceAlreadyExists}) {
					dev, err = c.GetDevice(ctx, d.ID) // another simulator won the race
				}
			}
			if err == nil && !created && authChanged(dev.Authentication, want) {
				dev, err = c.UpdateDevice(ctx, &hub.Device{DeviceID: d.ID, StatusReason: dev.StatusReason, Authentication: want}, "*")
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
			if !hub.IsX509(want.Type) {
				mu.Lock()
				keys[d.ID] = dev.Authentication.SymmetricKey.PrimaryKey
				mu.Unlock()
			}
			return nil
		})
	}
	return keys, g.Wait()
}

// authChanged reports whether a registered device's authentication must
// be updated to want: another kind, or a self-signed device's new
// certificate.
func authChanged(cur, want hub.Authentication) bool {
	if cur.Type == "" {
		cur.Type = hub.AuthSAS
	}
	return cur.Type != want.Type || want.Type == hub.AuthSelfSigned
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

// Sim is a set of simulated devices connected to a hub: one MQTT
// connection each, or a few shared ones (Options.Connections).
type Sim struct {
	opts    Options
	ext     *mqttproto.BrokerURL // the external broker, or nil
	devices []*simDevice
	muxes   []*muxConn

	online, calls, errors atomic.Int64
	// reactions are those the devices owe the hub; Settle waits for them.
	reactions reactions
}

// Stats are a simulator's live counts.
type Stats struct {
	Devices int   // devices simulated (not counting offline ones)
	Online  int64 // devices connected (or announced) now
	Calls   int64 // method calls received
	Errors  int64 // failed answers, reports and reconnects
}

// Stats returns the live counts.
func (s *Sim) Stats() Stats {
	return Stats{Devices: len(s.devices), Online: s.online.Load(), Calls: s.calls.Load(), Errors: s.errors.Load()}
}

// Connect connects every device that is not offline and waits until each
// is connected and subscribed. keys holds each device's key (unused when
// multiplexed).
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
	s := &Sim{opts: opts}
	if opts.Broker != "" {
		u, err := mqttproto.ParseBrokerURL(opts.Broker)
		if err != nil {
			return nil, err
		}
		s.ext = &u
	}
	var addr string
	var tlsConfig *tls.Config
	if opts.Connections <= 0 {
		var err error
		if addr, tlsConfig, err = s.endpoint(); err != nil {
			return nil, err
		}
	}
	for _, d := range devs {
		if d.Offline {
			continue
		}
		sd := &simDevice{spec: d, sim: s, rng: d.RNG()}
		if opts.Connections <= 0 {
			key, ok := keys[d.ID]
			if !ok && d.cert == nil {
				return nil, fmt.Errorf("no key for device %s", d.ID)
			}
			sd.w = newOwnWire(sd, key, addr, tlsConfig)
		}
		s.devices = append(s.devices, sd)
	}
	var err error
	if opts.Connections > 0 {
		err = s.connectMux(ctx)
	} else {
		err = s.connectOwn(ctx)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	for _, sd := range s.devices {
		sd.startFlapping()
		sd.startIncident()
	}
	return s, nil
}

// connectOwn connects each device on a connection of its own, Dialers at
// a time.
func (s *Sim) connectOwn(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Dialers)
	for _, sd := range s.devices {
		g.Go(func() error { return sd.w.(*ownWire).connect(gctx) })
	}
	return g.Wait()
}

// Len is the number of simulated devices (not counting offline ones).
func (s *Sim) Len() int { return len(s.devices) }

// IDs are the ids of the simulated devices.
func (s *Sim) IDs() []string {
	ids := make([]string, len(s.devices))
	for i, d := range s.devices {
		ids[i] = d.spec.ID
	}
	return ids
}

// Close disconnects every device.
func (s *Sim) Close() {
	// Concurrently: on an external broker each device's close is a few
	// round trips (presence withdrawn, session ended).
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, d := range s.devices {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			d.close()
			<-sem
		}()
	}
	wg.Wait()
	for _, m := range s.muxes {
		m.close()
	}
	s.devices, s.muxes = nil, nil
}

// topicFor is a device-side topic ("$iothub/...") of device id as it
// travels on the broker: unchanged when the device has its own connection
// to the embedded broker, device-scoped (under the external broker's
// root) otherwise.
func (s *Sim) topicFor(id, deviceTopic string, scoped bool) string {
	if !scoped {
		return deviceTopic
	}
	root := ""
	if s.ext != nil {
		root = s.ext.Root
	}
	return root + mqttproto.Scoped(id, deviceTopic)
}

// upFlag is whether one device counts as online, kept in step with
// Sim.online.
type upFlag struct {
	mu sync.Mutex
	up bool
}

func (f *upFlag) get() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.up
}

func (f *upFlag) set(s *Sim, up bool) {
	f.mu.Lock()
	changed := f.up != up
	f.up = up
	f.mu.Unlock()
	switch {
	case changed && up:
		s.online.Add(1)
	case changed:
		s.online.Add(-1)
	}
}

// subscriptions are the device-side filters every simulated device uses.
var subscriptions = []string{mqttproto.MethodsSubscription, mqttproto.DesiredSubscription, mqttproto.TwinResSubscription}

// wire is how one simulated device reaches the broker: a connection of
// its own, or its share of a multiplexed one.
type wire interface {
	// publish sends a message on a device-side topic ("$iothub/...") at
	// QoS 0 and returns once it is on its way.
	publish(ctx context.Context, deviceTopic string, payload []byte) error
	// down takes the device off line, up brings it back (connected and
	// subscribed, or announced) and close ends it.
	down()
	up(ctx context.Context) error
	close()
	// isUp reports whether the device is on line (connected and
	// subscribed, or announced).
	isUp() bool
}

// simDevice is one simulated device's behaviour, the same whichever wire
// carries it.
type simDevice struct {
	spec *Device
	sim  *Sim
	w    wire

	mu      sync.Mutex
	rng     *rand.Rand
	closed  bool
	rid     int
	pending map[string]chan twinReply

	// The device's view of its twin (twin.go), guarded by mu.
	reported    map[string]any         // what it knows it reported
	echoes      map[int]map[string]any // desired echoes owed, by order
	echoSeq     int
	degraded    bool // its degradation is scheduled: it fires once
	degradeOwed bool // its degradation came due off line: sent at the next connect
}

type twinReply struct {
	status  int
	payload []byte
}

const apiVersion = "2021-04-12"

// onMessage handles a message for the device, on its device-side topic.
func (d *simDevice) onMessage(deviceTopic string, payload []byte) {
	m, err := mqttproto.ParseTopic(deviceTopic)
	if err != nil {
		d.sim.opts.Logger.Debug("ignore message", "device", d.spec.ID, "topic", deviceTopic, "err", err)
		return
	}
	switch m.Kind {
	case mqttproto.MethodRequest:
		d.onMethod(m)
	case mqttproto.DesiredPatch:
		d.onDesired(payload)
	case mqttproto.TwinResponse:
		d.mu.Lock()
		ch := d.pending[m.RID]
		delete(d.pending, m.RID)
		d.mu.Unlock()
		if ch != nil {
			ch <- twinReply{status: m.Status, payload: payload}
		}
	}
}

func (d *simDevice) onMethod(m mqttproto.Message) {
	d.sim.calls.Add(1)
	if f := d.sim.opts.OnMethod; f != nil {
		f(d.spec.ID, m.Method)
	}
	d.mu.Lock()
	ans := d.spec.Answer(m.Method, d.rng)
	d.mu.Unlock()
	d.react(ans.Latency, func() {
		payload := ans.Payload
		if len(payload) == 0 {
			payload = json.RawMessage("null")
		}
		// No timeout of our own: a QoS 0 publish ends once written or
		// once the connection fails, and a clock timer per answer would
		// be one more pending timer on a virtual clock. A failure is not
		// counted: the hub times the call out.
		if err := d.w.publish(context.Background(), mqttproto.MethodResponseTopic(ans.Status, m.RID), []byte(payload)); err != nil {
			d.sim.opts.Logger.Debug("answer method", "device", d.spec.ID, "method", m.Method, "err", err)
		}
		if ans.DisconnectFor > 0 {
			d.bounce(ans.DisconnectFor, true)
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
	d.echo(patch)
}

// reportAsync reports patch, counting a failure.
func (d *simDevice) reportAsync(patch map[string]any) {
	ctx, cancel := d.sim.opts.Clock.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.report(ctx, patch); err != nil {
		d.sim.errors.Add(1)
		d.sim.opts.Logger.Debug("report", "device", d.spec.ID, "err", err)
	}
}

// report sends a reported-properties patch and waits for the hub's 204;
// the device then knows the patch reported.
func (d *simDevice) report(ctx context.Context, patch map[string]any) error {
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	r, err := d.request(ctx, mqttproto.ReportedPatchTopic, body)
	if err != nil {
		return err
	}
	if r.status != 204 {
		return fmt.Errorf("hub answered %d: %s", r.status, r.payload)
	}
	d.noteReported(patch)
	return nil
}

// request sends a twin request (a GET or a reported patch) on the topic
// topic makes of a new request id, and waits for the hub's answer.
func (d *simDevice) request(ctx context.Context, topic func(rid string) string, body []byte) (twinReply, error) {
	ch := make(chan twinReply, 1)
	d.mu.Lock()
	d.rid++
	rid := "r" + strconv.Itoa(d.rid)
	if d.pending == nil {
		d.pending = map[string]chan twinReply{}
	}
	d.pending[rid] = ch
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.pending, rid)
		d.mu.Unlock()
	}()
	if err := d.w.publish(ctx, topic(rid), body); err != nil {
		return twinReply{}, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return twinReply{}, ctx.Err()
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
	d.sim.opts.Clock.AfterFunc(dur, func() {
		d.mu.Lock()
		closed := d.closed
		d.mu.Unlock()
		if !closed {
			f()
		}
	})
}

// bounce takes the device off line and brings it back after dur, when it
// reconciles with its twin; a device that rebooted then reports when
// (lastReboot), as real ones do.
func (d *simDevice) bounce(dur time.Duration, reboot bool) {
	d.w.down()
	d.after(dur, func() {
		ctx, cancel := d.sim.opts.Clock.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := d.w.up(ctx); err != nil {
			d.sim.errors.Add(1)
			d.sim.opts.Logger.Warn("reconnect device", "device", d.spec.ID, "err", err)
			return
		}
		if err := d.reconcile(ctx); err != nil {
			d.sim.errors.Add(1)
			d.sim.opts.Logger.Warn("report properties after reconnecting", "device", d.spec.ID, "err", err)
		}
		if reboot {
			d.reportAsync(map[string]any{"lastReboot": d.sim.opts.Clock.Now().UTC().Format(time.RFC3339Nano)})
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
		d.bounce(f.Down, false)
		d.after(f.Down+f.Up, cycle)
	}
	d.after(f.Up, cycle)
}

func (d *simDevice) close() {
	d.mu.Lock()
	already := d.closed
	d.closed = true
	d.mu.Unlock()
	if !already && d.w != nil {
		d.w.close()
	}
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
