package hubd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/broker"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/extbroker"
	"github.com/iotjobs/iotjobs/hub/mqttbus"
	"github.com/iotjobs/iotjobs/hub/rest"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/postgres"
	"github.com/iotjobs/iotjobs/hub/store/sqlite"
)

// ownerStartWait is how long Open waits for another process that owns
// the data directory and is still starting to say where it serves.
const ownerStartWait = 30 * time.Second

// OwnerPolicy is the shared access policy with every right.
const OwnerPolicy = "iothubowner"

// Config says where a hub keeps its data and where it listens.
type Config struct {
	// DataDir holds the SQLite file, the TLS material (tls/ca.pem is the
	// CA clients trust), the policy keys and the owner connection string.
	DataDir string
	// StoreURL overrides the store; empty means DATA/hub.db.
	StoreURL string
	// HTTPAddr is the HTTPS listen address of the REST API; empty means no
	// REST API (the embedded default needs none).
	HTTPAddr string
	// MQTTAddr is the MQTT-over-TLS listen address for devices.
	MQTTAddr string
	// Broker, when set, is an external broker's URL
	// (mqtt[s]://[user:password@]host:port[/root]): the hub joins it
	// instead of running the embedded broker, and devices connect there
	// (package extbroker). MQTTAddr is then unused.
	Broker string
	// BrokerTLS verifies an mqtts:// broker; nil means the system roots.
	BrokerTLS *tls.Config
	// HostName is the name clients use for the hub (put into the
	// connection string and the certificate); empty means "localhost"
	// with the HTTPS port.
	HostName string
	// TLSCert and TLSKey replace the generated certificate when both set.
	TLSCert, TLSKey string
	// MaxActiveJobs bounds the jobs queued, scheduled or running at once
	// (0: engine.DefaultMaxActiveJobs, negative: no limit).
	MaxActiveJobs int
	// OpsPerSecond bounds the device operations jobs start per second,
	// shared by all jobs (0: no limit).
	OpsPerSecond float64
	// LeaseTTL is how long a job's lease lasts unrenewed when hubs share
	// the store (PostgreSQL): another replica takes over a dead one's
	// jobs after at most this long. 0 means engine.DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Clock defaults to the real clock.
	Clock  clock.Clock
	Logger *slog.Logger
}

// Hub is an assembled, running hub.
type Hub struct {
	cfg      Config
	store    store.Store
	broker   *broker.Broker    // the embedded broker, or nil
	ext      *extbroker.Client // the external broker, or nil
	bus      *mqttbus.Bus
	engine   *engine.Engine
	metrics  *rest.Metrics
	http     *http.Server
	httpAddr string
	caFile   string
	owner    string // owner policy key
	closers  []func() error
}

// Open starts a hub: store, broker, bus, engine, REST API, in this order.
// If a part fails to start, the parts already started are closed again.
func Open(ctx context.Context, cfg Config) (_ *Hub, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("hub: no data directory given")
	}
	realClock := cfg.Clock == nil
	if realClock {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("hub data directory: %w", err)
	}
	h := &Hub{cfg: cfg}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	// One owner per data directory, before anything in it is read: a
	// second hub on the same store would resume and overwrite the
	// first's jobs.
	lock, err := lockDir(ctx, cfg.DataDir, ownerStartWait)
	if err != nil {
		return nil, err
	}
	h.closers = append(h.closers, lock.release) // the first in, the last out
	since := time.Now()
	if err := lock.record(h.ownerRecord(since, false)); err != nil {
		return nil, err
	}

	if h.owner, err = loadOrCreatePolicy(cfg.DataDir); err != nil {
		return nil, err
	}
	cert, caFile, err := loadOrCreateTLS(cfg.DataDir, []string{cfg.HostName})
	if err != nil {
		return nil, err
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		if cert, err = tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, fmt.Errorf("load --tls-cert/--tls-key: %w", err)
		}
	}
	h.caFile = caFile
	// Client certificates are requested, not required, and not checked in
	// the handshake: SAS devices and service clients send none; an X.509
	// device's is checked at CONNECT against the registry (x509.go).
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}

	path := cfg.StoreURL
	if path == "" {
		path = filepath.Join(cfg.DataDir, "hub.db")
	}
	st, err := openStore(ctx, path)
	if err != nil {
		return nil, err
	}
	h.store = st
	h.closers = append(h.closers, st.Close)

	// The HTTPS port is bound before devices can connect: it is part of
	// the host name in their tokens (localhost:8443), so a device that
	// reconnected before it was known would be refused.
	var httpLn net.Listener
	if cfg.HTTPAddr != "" {
		if httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("listen HTTPS on %s: %w", cfg.HTTPAddr, err)
		}
		h.httpAddr = httpLn.Addr().String()
		h.closers = append(h.closers, func() error {
			if h.http == nil {
				return httpLn.Close() // not served yet
			}
			return nil
		})
	}

	ev := &events{}
	var transport mqttbus.Transport
	if cfg.Broker == "" {
		h.broker = broker.New(broker.Config{
			Addr:                cfg.MQTTAddr,
			TLS:                 tlsCfg,
			AuthenticateCert:    h.authenticateDevice,
			AuthenticateGateway: h.authenticateGateway,
			DeviceAllowed:       h.deviceAllowed,
			// A device token that names a policy (skn) is checked
			// against that policy, which must grant DeviceConnect.
			Policies: func(name string) (sas.Policy, bool) {
				if name != OwnerPolicy {
					return sas.Policy{}, false
				}
				return sas.Policy{Key: h.owner, Rights: sas.RegistryRead | sas.RegistryWrite | sas.ServiceConnect | sas.DeviceConnect}, true
			},
			Hosts:   h.hostAliases, // a method value: ports bound later count too
			Expires: tokenExpiry,
			Now:     cfg.Clock.Now,
			Events:  ev,
			Logger:  cfg.Logger.With("system", "broker"),
		})
		transport = h.broker
	} else {
		// Presence arrives as soon as the connection is up, so the bus
		// must exist first: events are forwarded once ev.bus is set.
		ev.ready = make(chan struct{})
		if h.ext, err = extbroker.Dial(ctx, extbroker.Config{URL: cfg.Broker, TLS: cfg.BrokerTLS, Events: ev, Logger: cfg.Logger.With("system", "extbroker")}); err != nil {
			return nil, err
		}
		h.closers = append(h.closers, h.ext.Close)
		transport = h.ext
	}
	h.bus = mqttbus.New(transport, nil)
	h.bus.Logger = cfg.Logger.With("system", "mqttbus")
	h.engine = engine.New(st, h.bus, cfg.Clock)
	h.engine.Logger = cfg.Logger.With("system", "engine")
	h.engine.MaxActiveJobs, h.engine.OpsPerSecond = cfg.MaxActiveJobs, cfg.OpsPerSecond
	if realClock {
		h.engine.WriteLinger = engine.DefaultWriteLinger
	}
	if _, shared := st.(store.Leaser); shared && h.ext != nil {
		// Hubs on one database and one broker are replicas of one hub:
		// each device request goes to one of them.
		h.bus.ShareGroup = "iotjobs-hub"
	}
	if _, shared := st.(store.Leaser); shared {
		// A store replicas may share: jobs run under leases. The id is
		// the data directory's, so a hub restarted on it (which owns it,
		// so the previous process is gone) resumes its jobs at once
		// instead of waiting for their leases to expire.
		if h.engine.Replica, err = replicaID(cfg.DataDir); err != nil {
			return nil, err
		}
		h.engine.LeaseTTL = cfg.LeaseTTL
		if h.httpAddr != "" {
			h.engine.Endpoint = "https://" + h.httpAddr
		}
		if h.ext == nil {
			if err := aloneOnStore(ctx, st.(store.Leaser), h.engine.Replica, cfg.LeaseTTL); err != nil {
				return nil, err
			}
		}
	}
	h.metrics = &rest.Metrics{}
	h.engine.Metrics = newEngineMetrics(h.metrics.Registerer())
	h.bus.SetEvents(h.engine)
	ev.bus = h.bus
	if ev.ready != nil {
		close(ev.ready)
	}

	// The bus listens before devices can connect, so that no early twin
	// request or method answer goes unheard.
	if err := h.bus.Open(); err != nil {
		return nil, fmt.Errorf("subscribe device topics: %w", err)
	}
	if h.broker != nil {
		if err := h.broker.Open(ctx); err != nil {
			return nil, fmt.Errorf("start MQTT broker on %s: %w", cfg.MQTTAddr, err)
		}
		h.closers = append(h.closers, h.broker.Close)
	}
	if err := h.engine.Open(ctx); err != nil {
		return nil, fmt.Errorf("start jobs engine: %w", err)
	}
	h.closers = append(h.closers, h.engine.Close)

	if cfg.HTTPAddr != "" {
		if err := h.serveHTTP(tlsCfg, httpLn); err != nil {
			return nil, err
		}
	}
	// Whole or not at all: a script waiting for the file never reads half
	// a key.
	if err := writeAtomic(h.ConnectionStringFile(), []byte(h.ConnectionString()+"\n")); err != nil {
		return nil, fmt.Errorf("write connection string: %w", err)
	}
	if err := lock.record(h.ownerRecord(since, true)); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Hub) serveHTTP(tlsCfg *tls.Config, ln net.Listener) error {
	h.registerMetrics(h.metrics.Registerer())
	srv := &rest.Server{
		Hub:       h.engine,
		Authorize: rest.SASAuthorizer(map[string]string{OwnerPolicy: h.owner}, h.hostAliases(), h.cfg.Clock.Now),
		Logger:    h.cfg.Logger.With("system", "rest"),
		Metrics:   h.metrics,
		Endpoints: h.endpoints(),
		Ready: func() error {
			if h.ext != nil && !h.bus.Up() {
				return fmt.Errorf("the device broker %s is unreachable; jobs wait for it", h.ext.Addr())
			}
			return nil
		},
	}
	// MQTT over WebSocket shares the HTTPS port, as on Azure (devices
	// behind firewalls that pass only 443). "$" is literal in a pattern.
	mux := http.NewServeMux()
	if h.broker != nil {
		mux.Handle("/$iothub/websocket", h.broker.WebsocketHandler())
	}
	mux.Handle("/", srv.Handler())
	h.http = &http.Server{Handler: mux, TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		// ServeTLS rather than ListenAndServeTLS: the listener is already
		// bound, so the chosen port is known before Open returns.
		if err := h.http.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.cfg.Logger.Error("https server stopped", "err", err)
		}
	}()
	h.closers = append(h.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return h.http.Shutdown(ctx)
	})
	return nil
}

// endpoints tells clients where devices connect.
func (h *Hub) endpoints() *rest.Endpoints {
	if h.ext != nil {
		return &rest.Endpoints{Broker: h.ext.Addr()}
	}
	return &rest.Endpoints{MQTT: h.advertisedMQTT()}
}

// advertisedMQTT is the broker address as clients should dial it: the
// hub's host name with the broker's port.
func (h *Hub) advertisedMQTT() string {
	_, port, err := net.SplitHostPort(h.broker.Addr())
	if err != nil {
		return h.broker.Addr()
	}
	host, _, err := net.SplitHostPort(h.HostName())
	if err != nil {
		host = h.HostName()
	}
	return net.JoinHostPort(host, port)
}

// registerMetrics adds the broker's health counters to /metrics; the two
// drop counters must stay zero (a non-zero value means lost messages).
func (h *Hub) registerMetrics(reg prometheus.Registerer) {
	gauge := func(name, help string, f func(broker.Stats) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(f(h.broker.Stats())) })
	}
	reg.MustRegister(jobsCollector{h.engine},
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "iotjobs_hub_telemetry_messages_total", Help: "Device-to-cloud messages received and acknowledged (not stored)."},
			func() float64 { return float64(h.bus.Telemetry()) }))
	if h.broker == nil {
		return
	}
	reg.MustRegister(
		gauge("iotjobs_broker_clients", "Device MQTT connections open now.", func(s broker.Stats) int64 { return s.Clients }),
		gauge("iotjobs_broker_inflight_dropped", "QoS 1 messages the broker dropped for in-flight quotas; must stay 0.", func(s broker.Stats) int64 { return s.InflightDropped }),
		gauge("iotjobs_broker_messages_dropped", "Messages the broker dropped for full client queues; must stay 0.", func(s broker.Stats) int64 { return s.MessagesDropped }),
	)
}

// aloneOnStore refuses a hub with its embedded broker on a database
// another live hub uses: its devices could reach only one of them, and a
// job adopted by the other would find every device offline. Hubs that
// share a database must share an external broker.
func aloneOnStore(ctx context.Context, l store.Leaser, replica string, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = engine.DefaultLeaseTTL
	}
	live, err := l.Heartbeat(ctx, replica, "", ttl)
	if err != nil {
		return fmt.Errorf("register with the store: %w", err)
	}
	for _, r := range live {
		if r.ID != replica {
			where := r.Endpoint
			if where == "" {
				where = "no REST API"
			}
			return fmt.Errorf("another hub (%s, %s) uses this database; hubs that share a database must share an external broker: start every one of them with the same --broker, or give this one a database (or schema) of its own", r.ID, where)
		}
	}
	return nil
}

// openStore opens the store a URL names: postgres:// or postgresql://
// (package postgres), or else a SQLite file's path.
func openStore(ctx context.Context, url string) (store.Store, error) {
	switch {
	case strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://"):
		return postgres.Open(ctx, url)
	case strings.Contains(url, "://"):
		return nil, fmt.Errorf("store %q: use a SQLite file's path or a postgres:// URL", redactURL(url))
	}
	return sqlite.Open(ctx, url)
}

// redactURL hides a URL's password for messages.
func redactURL(s string) string {
	u, err := neturl.Parse(s)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return u.Redacted()
}

// Close stops the parts in reverse order of starting.
func (h *Hub) Close() error {
	var errs []error
	for i := len(h.closers) - 1; i >= 0; i-- {
		errs = append(errs, h.closers[i]())
	}
	h.closers = nil
	return errors.Join(errs...)
}

// Telemetry is how many device-to-cloud messages devices have sent.
func (h *Hub) Telemetry() int64 { return h.bus.Telemetry() }

// Client is the in-process hub.Client (the engine itself).
func (h *Hub) Client() hub.Client { return h.engine }

// MQTTAddr is the embedded broker's actual listen address, or the
// external broker's URL (without password).
func (h *Hub) MQTTAddr() string {
	if h.ext != nil {
		return h.ext.Addr()
	}
	return h.broker.Addr()
}

// HTTPAddr is the REST API's actual listen address ("" without one).
func (h *Hub) HTTPAddr() string { return h.httpAddr }

// CAFile is the PEM file of the CA that signed the hub's certificate.
func (h *Hub) CAFile() string { return h.caFile }

// HostName is the hub's name in its connection string: the configured
// host name, or localhost with the HTTPS port.
func (h *Hub) HostName() string {
	if h.cfg.HostName != "" {
		return h.cfg.HostName
	}
	if h.httpAddr == "" {
		return "localhost"
	}
	_, port, _ := net.SplitHostPort(h.httpAddr)
	if port == "443" {
		return "localhost"
	}
	return "localhost:" + port
}

// ConnectionString is the owner policy's connection string.
func (h *Hub) ConnectionString() string {
	cs := sas.ConnectionString{HostName: h.HostName(), SharedAccessKeyName: OwnerPolicy, SharedAccessKey: h.owner}
	return cs.String()
}

// ConnectionStringFile is the file in the data directory that holds
// [Hub.ConnectionString] (mode 0600), written when Open has bound every
// listener: the way to hand the key to scripts without printing it.
func (h *Hub) ConnectionStringFile() string {
	return filepath.Join(h.cfg.DataDir, "connection-string")
}

// hostAliases are the names a token's sr may use for this hub.
func (h *Hub) hostAliases() []string {
	names := []string{"localhost", "127.0.0.1", "[::1]"}
	if hn, err := os.Hostname(); err == nil {
		names = append(names, hn)
	}
	if h.cfg.HostName != "" {
		hn, _, err := net.SplitHostPort(h.cfg.HostName)
		if err != nil {
			hn = h.cfg.HostName
		}
		names = append(names, hn)
	}
	var out []string
	if strings.Contains(h.cfg.HostName, ":") {
		// The name clients use, as given: a load balancer's host and
		// port, which differ from this replica's own.
		out = append(out, h.cfg.HostName)
	}
	ports := []string{""}
	for _, a := range []string{h.httpAddr, h.MQTTAddr()} {
		if _, p, err := net.SplitHostPort(a); err == nil {
			ports = append(ports, ":"+p)
		}
	}
	for _, n := range names {
		for _, p := range ports {
			out = append(out, n+p)
		}
	}
	return out
}

// authenticateDevice checks a device's credentials as its registry entry
// says: an X.509 device's certificate chain (checkCertificate), any
// other device's (or module's) SAS token against its keys. Each kind is
// refused the other's credentials.
func (h *Hub) authenticateDevice(clientID, username string, password []byte, chain []*x509.Certificate) error {
	if _, _, module := hub.SplitModuleKey(clientID); !module {
		d, err := h.engine.GetDevice(context.Background(), clientID)
		if err != nil {
			return err
		}
		if hub.IsX509(d.Authentication.Type) {
			if d.Status == hub.StatusDisabled {
				return fmt.Errorf("device %q is disabled", clientID)
			}
			if len(password) > 0 {
				return fmt.Errorf("device %q authenticates with an X.509 certificate (%s), not a password", clientID, d.Authentication.Type)
			}
			return h.checkCertificate(d, chain)
		}
	}
	tok, err := sas.ParseToken(string(password))
	if err != nil {
		return fmt.Errorf("password is not a SAS token (%q authenticates with sas): %w", clientID, err)
	}
	if tok.ClientID() != clientID {
		return fmt.Errorf("token is for %q, not %q", tok.ClientID(), clientID)
	}
	if !hostOK(tok.Host(), h.hostAliases()) {
		return fmt.Errorf("token is for host %q, not this hub", tok.Host())
	}
	k, err := h.connectKeys(clientID)
	if err != nil {
		return err
	}
	now := h.cfg.Clock.Now()
	if err := tok.Verify(k.PrimaryKey, now); err == nil {
		return nil
	}
	return tok.Verify(k.SecondaryKey, now)
}

// checkCertificate checks an X.509 device's certificate chain at the
// hub's time, a CA device's against the verified CAs the store holds now
// (so that a CA added counts at the next connect).
func (h *Hub) checkCertificate(d *hub.Device, chain []*x509.Certificate) error {
	var roots *x509.CertPool
	if d.Authentication.Type == hub.AuthCertificateAuthority && len(chain) > 0 {
		var err error
		if roots, err = h.engine.VerifiedCAs(context.Background()); err != nil {
			return err
		}
	}
	return hub.CheckDeviceCertificate(d, chain, roots, h.cfg.Clock.Now())
}

// authenticateGateway checks a gateway's token: signed with the owner
// policy's key for this hub (a policy with DeviceConnect, in Azure's
// terms), so it may connect any device.
func (h *Hub) authenticateGateway(name, username string, password []byte) error {
	tok, err := sas.ParseToken(string(password))
	if err != nil {
		return fmt.Errorf("password is not a SAS token: %w", err)
	}
	if tok.KeyName != OwnerPolicy {
		return fmt.Errorf("gateway %q: the token must be signed by the %s policy, not %q", name, OwnerPolicy, tok.KeyName)
	}
	if !hostOK(tok.Resource, h.hostAliases()) {
		return fmt.Errorf("gateway %q: token is for %q, not this hub", name, tok.Resource)
	}
	return tok.Verify(h.owner, h.cfg.Clock.Now())
}

// deviceAllowed lets a gateway play registered, enabled devices only, and
// a policy's token connect registered modules of enabled devices.
func (h *Hub) deviceAllowed(id string) error {
	_, err := h.connectKeys(id)
	return err
}

// connectKeys returns the keys of the device or module (client id
// "{deviceId}/{moduleId}") that may connect with client id id: it must be
// registered, and its device enabled (a module has no status of its own
// on Azure; disabling its device stops it too).
func (h *Hub) connectKeys(id string) (hub.SymmetricKey, error) {
	ctx := context.Background()
	dev, mod, module := hub.SplitModuleKey(id)
	var keys hub.SymmetricKey
	if module {
		m, err := h.engine.GetModule(ctx, dev, mod)
		if err != nil {
			return keys, err
		}
		keys = m.Authentication.SymmetricKey
	}
	d, err := h.engine.GetDevice(ctx, dev)
	if err != nil {
		return keys, err
	}
	if d.Status == hub.StatusDisabled {
		return keys, fmt.Errorf("device %q is disabled", dev)
	}
	if !module {
		keys = d.Authentication.SymmetricKey
	}
	return keys, nil
}

// tokenExpiry is when an accepted device's SAS token expires: the broker
// closes its connection then, as Azure does; device SDKs renew before.
func tokenExpiry(password []byte) time.Time {
	tok, err := sas.ParseToken(string(password))
	if err != nil {
		return time.Time{}
	}
	return tok.Expiry
}

func hostOK(host string, aliases []string) bool {
	for _, a := range aliases {
		if strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}

// events forwards broker presence to the bus, which is built after the
// broker. An external broker may report presence before the bus exists;
// ready, when set, holds such events until it does.
type events struct {
	bus   *mqttbus.Bus
	ready chan struct{}
}

func (e *events) wait() *mqttbus.Bus {
	if e.ready != nil {
		<-e.ready
	}
	return e.bus
}

func (e *events) Connected(id string)          { e.wait().Connected(id) }
func (e *events) Disconnected(id string)       { e.wait().Disconnected(id) }
func (e *events) Subscribed(id, filter string) { e.wait().Subscribed(id, filter) }
func (e *events) BrokerUp(up bool)             { e.wait().BrokerUp(up) }

// loadOrCreatePolicy returns the owner policy key kept in DATA/policies.json.
func loadOrCreatePolicy(dir string) (string, error) {
	path := filepath.Join(dir, "policies.json")
	var policies map[string]string
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &policies); err != nil {
			return "", fmt.Errorf("read %s: %w (fix or delete it)", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		policies = map[string]string{OwnerPolicy: sas.GenerateKey()}
		b, _ := json.MarshalIndent(policies, "", "  ")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
	default:
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if policies[OwnerPolicy] == "" {
		return "", fmt.Errorf("%s has no %s key", path, OwnerPolicy)
	}
	return policies[OwnerPolicy], nil
}
