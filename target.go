package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/hub/rest"
	"github.com/iotjobs/iotjobs/hub/sas"
)

// target is the hub a command works on, and how to stop using it.
type target struct {
	client   hub.Client
	name     string
	embedded *hubd.Hub
	cs       *sas.ConnectionString
	caFile   string // the CA of a remote hub's certificate, if not the system's
}

func (t *target) Close() {
	if t.embedded != nil {
		t.embedded.Close()
	}
}

// openTarget connects to the hub named by --hub, or opens the embedded
// default under --data. When another process owns --data (hub serve, or
// an apply that runs there), it talks to that process's hub through its
// API instead, and never opens the store under it.
func openTarget(c *cli.Context) (*target, error) {
	if c.String("hub") == "" {
		// The embedded hub serves its API on loopback, so that commands
		// in other shells given the same --data can reach it.
		h, err := hubd.Open(c.Context, hubd.Config{DataDir: c.String("data"), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
			Broker: c.String("broker"), Logger: slog.Default()})
		if owned, ok := errors.AsType[*hubd.OwnedError](err); ok {
			return ownedTarget(c, owned)
		}
		if err != nil {
			return nil, fmt.Errorf("open the embedded hub in %s: %w", c.String("data"), err)
		}
		return &target{client: h.Client(), name: "embedded", embedded: h}, nil
	}
	cs, err := sas.ParseConnectionString(c.String("hub"))
	if err != nil {
		return nil, usagef("--hub: %w", err)
	}
	opts := rest.Options{}
	if f := c.String("ca"); f != "" {
		if opts.RootCAs, err = hubd.LoadCA(f); err != nil {
			return nil, usagef("--ca: %w", err)
		}
	}
	cl, err := rest.NewClient(cs, opts)
	if err != nil {
		return nil, usagef("--hub: %w", err)
	}
	return &target{client: cl, name: cs.HostName, cs: cs, caFile: c.String("ca")}, nil
}

// ownedTarget is the hub of the process that owns --data, reached through
// the API it recorded there.
func ownedTarget(c *cli.Context, owned *hubd.OwnedError) (*target, error) {
	o := owned.Owner
	if o == nil || !o.Ready || o.ConnectionString == "" {
		return nil, fmt.Errorf("%w: it serves no API this command can use; wait for it to finish or stop it", owned)
	}
	cs, err := sas.ParseConnectionString(o.ConnectionString)
	if err != nil {
		return nil, fmt.Errorf("%w: its record has a bad connection string: %v", owned, err)
	}
	pool, err := hubd.LoadCA(owned.CAFile())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", owned, err)
	}
	cl, err := rest.NewClient(cs, rest.Options{RootCAs: pool})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", owned, err)
	}
	fmt.Fprintf(c.App.ErrWriter, "note: %s; using its hub through that API\n", owned)
	return &target{client: cl, name: fmt.Sprintf("hub of process %d (%s)", o.PID, o.Command), cs: cs, caFile: owned.CAFile()}, nil
}

// dryRunHub is the hub plan and check read: a fleet file's devices in
// memory (--fleet without --hub), or the command's target. current is
// the live hub a dry-run's simulation starts from (nil for a fleet).
type dryRunHub struct {
	client, current hub.Client
	name            string
	close           func()
}

func openDryRunHub(c *cli.Context, fleet string) (*dryRunHub, error) {
	if fleet != "" && c.String("hub") == "" {
		e, closeHub, err := fleetHub(c.Context, c.App.ErrWriter, fleet, clock.Real(), nil)
		if err != nil {
			return nil, err
		}
		return &dryRunHub{client: e, name: "fleet " + fleet, close: closeHub}, nil
	}
	t, err := openTarget(c)
	if err != nil {
		return nil, err
	}
	return &dryRunHub{client: t.client, current: t.client, name: t.name, close: t.Close}, nil
}
