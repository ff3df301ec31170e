// The hub serve and simulate commands, and attaching a fleet file's
// simulated devices to a hub.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/hub/mqttproto"
	"github.com/iotjobs/iotjobs/hub/rest"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/plan/diag"
	"github.com/iotjobs/iotjobs/simulate"
)

func hubCmd() *cli.Command {
	return &cli.Command{
		Name:  "hub",
		Usage: "run the hub",
		Subcommands: []*cli.Command{{
			Name: "serve",
			Description: "Once it serves, it prints on stdout the path of the file that holds its owner connection string\n" +
				"(DATA/connection-string), never the key itself, and where it listens on stderr.\n\n" +
				"Examples:\n   iotjobs hub serve\n   iotjobs hub serve --data r1 --store \"postgres://postgres@127.0.0.1:5432/test?search_path=iotjobs\" --broker mqtt://127.0.0.1:1883",
			Usage: "serve the REST API over HTTPS and MQTT over TLS until interrupted",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "data", Value: ".iotjobs", Usage: "data directory (store, TLS CA, connection string); the same default as every other command's"},
				&cli.StringFlag{Name: "store", Usage: "the hub's state: a SQLite file (default DATA/hub.db) or a PostgreSQL URL, postgres://user[:password]@host:5432/db[?search_path=schema]"},
				&cli.StringFlag{Name: "https", Value: ":8443", Usage: "HTTPS listen address (:443 makes the Azure service SDKs work unchanged)"},
				&cli.StringFlag{Name: "mqtts", Value: ":8883", Usage: "MQTT-over-TLS listen address"},
				&cli.StringFlag{Name: "broker", Usage: "join this external MQTT broker, mqtt[s]://[user:pass@]host:port[/root], instead of running the embedded one (README \"External brokers\")"},
				&cli.StringFlag{Name: "hostname", Usage: "host name clients use (default localhost)"},
				&cli.StringFlag{Name: "tls-cert", Usage: "server certificate PEM (default: generated)"},
				&cli.StringFlag{Name: "tls-key", Usage: "server key PEM"},
				&cli.IntFlag{Name: "max-active-jobs", Value: engine.DefaultMaxActiveJobs, Usage: "jobs queued, scheduled or running at once; one more is refused with 429 (negative: no limit)"},
				&cli.Float64Flag{Name: "ops-per-second", Usage: "device operations (method calls, twin updates) jobs start per second, shared by all jobs (0: no limit)"},
				&cli.DurationFlag{Name: "lease-ttl", Value: engine.DefaultLeaseTTL, Usage: "with a PostgreSQL --store that several hubs share: how long a job's lease lasts unrenewed, so how soon another hub takes over the jobs of one that died"},
			},
			Action: func(c *cli.Context) error {
				if err := checkServeFlags(c); err != nil {
					return err
				}
				h, err := hubd.Open(c.Context, hubd.Config{
					DataDir: c.String("data"), StoreURL: c.String("store"),
					HTTPAddr: c.String("https"), MQTTAddr: c.String("mqtts"), Broker: c.String("broker"), HostName: c.String("hostname"),
					TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key"), Logger: slog.Default(),
					MaxActiveJobs: c.Int("max-active-jobs"), OpsPerSecond: c.Float64("ops-per-second"), LeaseTTL: c.Duration("lease-ttl"),
				})
				if owned, ok := errors.AsType[*hubd.OwnedError](err); ok {
					return fmt.Errorf("%w: stop it first, or give --data another directory", owned)
				}
				if err != nil {
					return err
				}
				defer h.Close()
				mqttLine := "mqtts://" + h.MQTTAddr() + " (and wss://" + h.HTTPAddr() + "/$iothub/websocket)"
				if c.String("broker") != "" {
					mqttLine = h.MQTTAddr() + " (external broker; devices use device-scoped topics)"
				}
				fmt.Fprintf(c.App.ErrWriter, "iotjobs hub serving\n  REST API  https://%s\n  MQTT      %s\n  CA        %s\n  connection string in %s\n",
					h.HTTPAddr(), mqttLine, h.CAFile(), h.ConnectionStringFile())
				// The owner key grants everything: it stays in its 0600
				// file, out of terminals, logs and CI output. Scripts wait
				// for this line, which says the file holds this run's
				// connection string.
				fmt.Fprintln(c.App.Writer, h.ConnectionStringFile())
				<-c.Context.Done()
				fmt.Fprintln(c.App.ErrWriter, "iotjobs hub stopping")
				return nil
			},
		}, caCmd()},
	}
}

// checkServeFlags checks hub serve's arguments and flag combinations
// before it opens anything.
func checkServeFlags(c *cli.Context) error {
	switch {
	case c.NArg() != 0:
		return usagef("hub serve: takes no arguments (flags only)")
	case (c.String("tls-cert") == "") != (c.String("tls-key") == ""):
		return usagef("hub serve: --tls-cert and --tls-key go together: give both, or neither for a generated certificate")
	case c.Float64("ops-per-second") < 0:
		return usagef("hub serve: --ops-per-second %g: give a rate, or 0 for no limit", c.Float64("ops-per-second"))
	case c.Duration("lease-ttl") < time.Second:
		return usagef("hub serve: --lease-ttl %s: give at least 1s (default %s)", c.Duration("lease-ttl"), engine.DefaultLeaseTTL)
	}
	return nil
}

func simulateCmd() *cli.Command {
	return &cli.Command{
		Name:        "simulate",
		Description: "Example:\n   iotjobs simulate --hub \"$(cat .iotjobs/connection-string)\" --ca .iotjobs/tls/ca.pem --fleet examples/fleet.yaml",
		Usage:       "connect a fleet of simulated devices to a hub over MQTT until interrupted",
		Flags: []cli.Flag{
			// The simulator plays devices of a hub that runs elsewhere
			// (hub serve, Azure): it needs its connection string.
			&cli.StringFlag{Name: "hub", EnvVars: hubFlag().EnvVars,
				Usage: "hub connection string (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...), required: hub serve writes it to DATA/connection-string"},
			caFlag(), brokerFlag(),
			&cli.StringFlag{Name: "fleet", Usage: "fleet file (required)"},
			connectionsFlag(),
			&cli.DurationFlag{Name: "every", Value: 5 * time.Second, Usage: "how often to print the live counts (connected, calls, errors)"},
			&cli.StringFlag{Name: "mqtt", Usage: "broker host:port (default: the hub's host, port 8883)"},
		},
		Action: func(c *cli.Context) error {
			if c.String("fleet") == "" {
				return usagef("simulate: --fleet FILE is required: the fleet file of the devices to connect")
			}
			if c.String("hub") == "" {
				return usagef("simulate: --hub (or IOTJOBS_HUB_CONNECTION_STRING) is required")
			}
			if c.Int("connections") < 0 {
				return usagef("simulate: --connections %d: give a number of MQTT connections, or leave it out", c.Int("connections"))
			}
			if c.Duration("every") <= 0 {
				return usagef("simulate: --every %s: give how often to print the counts, e.g. 5s", c.Duration("every"))
			}
			t, err := openTarget(c)
			if err != nil {
				return err
			}
			defer t.Close()
			sim, err := attachFleet(c, t, c.String("fleet"))
			if err != nil {
				return err
			}
			defer sim.Close()
			liveCounts(c.Context, c.App.ErrWriter, sim, c.Duration("every"))
			fmt.Fprintln(c.App.ErrWriter, "simulate: stopping, disconnecting the fleet")
			return nil
		},
	}
}

// attachFleet registers a fleet file's devices on the target hub and
// connects the online ones over MQTT.
func attachFleet(c *cli.Context, t *target, path string) (*simulate.Sim, error) {
	fl, diags := simulate.Load(path)
	if len(diags) > 0 {
		src, _ := os.ReadFile(path)
		diag.WriteText(c.App.ErrWriter, diags, map[string][]byte{path: src})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	devs := fl.Devices()
	keys, err := simulate.Register(c.Context, t.client, devs)
	if err != nil {
		return nil, err
	}
	opts := simulate.Options{Clock: clock.Real(), Logger: slog.Default(), Connections: c.Int("connections")}
	var caFile string
	opts.Broker = c.String("broker")
	if t.embedded != nil {
		opts.Addr, opts.HostName, caFile = t.embedded.MQTTAddr(), t.embedded.HostName(), t.embedded.CAFile()
		if cs, err := sas.ParseConnectionString(t.embedded.ConnectionString()); err == nil {
			opts.PolicyName, opts.PolicyKey = cs.SharedAccessKeyName, cs.SharedAccessKey
		}
	} else {
		opts.PolicyName, opts.PolicyKey = t.cs.SharedAccessKeyName, t.cs.SharedAccessKey
		opts.HostName, caFile = t.cs.HostName, t.caFile
		opts.Addr = c.String("mqtt")
		if opts.Addr == "" && opts.Broker == "" {
			opts.Addr, opts.Broker = deviceEndpoint(c.Context, t)
		}
	}
	if caFile != "" {
		if opts.RootCAs, err = hubd.LoadCA(caFile); err != nil {
			return nil, usagef("--ca: %w", err)
		}
	}
	sim, err := simulate.Connect(c.Context, devs, keys, opts)
	if err != nil {
		return nil, err
	}
	where := opts.Addr
	if opts.Broker != "" {
		where = opts.Broker
		if u, err := mqttproto.ParseBrokerURL(opts.Broker); err == nil {
			where = u.String() // without the password
		}
	}
	// On an external broker the hub learns of devices from their presence
	// messages, a moment after they connect; a plan started before that
	// would find them offline.
	wctx, cancel := context.WithTimeout(c.Context, 2*time.Minute)
	defer cancel()
	if err := sim.WaitConnected(wctx, t.client); err != nil {
		sim.Close()
		return nil, fmt.Errorf("fleet %s connected to %s, but the hub does not see it: %w", path, where, err)
	}
	how := ""
	if opts.Connections > 0 {
		how = fmt.Sprintf(" over %d multiplexed connections", opts.Connections)
	}
	fmt.Fprintf(c.App.ErrWriter, "fleet %s: %d devices registered, %d connected to %s%s\n", path, len(devs), sim.Len(), where, how)
	return sim, nil
}

// liveCounts prints the simulator's counts every period until ctx ends
// (Ctrl-C), and once more at the end.
func liveCounts(ctx context.Context, w io.Writer, sim *simulate.Sim, every time.Duration) {
	if every <= 0 {
		every = 5 * time.Second
	}
	print := func() {
		st := sim.Stats()
		fmt.Fprintf(w, "simulate: %d of %d devices connected, %d method calls, %d errors\n", st.Online, st.Devices, st.Calls, st.Errors)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			print()
			return
		case <-tick.C:
			print()
		}
	}
}

// deviceEndpoint finds where a remote hub's devices connect: our hub says
// so (GET /iotjobs/endpoints: its MQTT listener, or the external broker it
// runs on); an Azure IoT Hub listens on its host, 8883.
func deviceEndpoint(ctx context.Context, t *target) (addr, broker string) {
	if rc, ok := t.client.(*rest.Client); ok {
		if ep, err := rc.Endpoints(ctx); err == nil && (ep.MQTT != "" || ep.Broker != "") {
			return ep.MQTT, ep.Broker
		}
	}
	host, _, err := net.SplitHostPort(t.cs.HostName)
	if err != nil {
		host = t.cs.HostName
	}
	return net.JoinHostPort(host, "8883"), ""
}
