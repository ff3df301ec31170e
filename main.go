// Command iotjobs runs declarative job plans against IoT fleets and hosts
// the hub they run on. See README.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/hub/mqttproto"
	"github.com/iotjobs/iotjobs/hub/rest"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/plan/diag"
	"github.com/iotjobs/iotjobs/runner"
	"github.com/iotjobs/iotjobs/simulate"
)

// Exit codes, the same for every command (README "Exit codes").
const (
	exitOK      = 0
	exitFailed  = 1 // the plan ran and a step failed; drift found
	exitInvalid = 2 // invalid plan or usage
	exitInfra   = 3 // hub unreachable, authentication refused, infrastructure fault
	exitChanges = 4 // plan --detailed-exitcode: the plan would make changes
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// Second stage: the first signal cancelled ctx and the run is
		// winding down (cancelling jobs, writing the report); another
		// signal means the operator wants out now.
		<-ctx.Done()
		stop()
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		<-ch
		fmt.Fprintln(os.Stderr, "iotjobs: second interrupt, exiting now; hub jobs may still be running and the report may be missing")
		os.Exit(130)
	}()
	os.Exit(run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// failedError says a command's subject failed (exit 1).
type failedError struct{ msg string }

func (e failedError) Error() string { return e.msg }

// usageError marks errors in how a command was called (exit 2).
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// run is the whole CLI; tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	app := &cli.App{
		Name:           "iotjobs",
		Usage:          "declarative job runner for IoT fleets, and the hub it drives",
		Reader:         stdin,
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Commands: []*cli.Command{
			validateCmd(), planCmd(), checkCmd(), applyCmd(), rollbackCmd(), hubCmd(), simulateCmd(), twinCmd(), methodCmd(), jobsCmd(), devicesCmd(), queryCmd(),
		},
	}
	err := app.RunContext(ctx, interspersed(app, args))
	code := exitCode(err)
	if err != nil && !errors.As(err, new(diag.Diagnostics)) {
		fmt.Fprintf(stderr, "iotjobs: %v\n", err)
	}
	return code
}

// interspersed moves flags that follow positional arguments in front of
// them: urfave/cli v2 stops parsing flags at the first argument, and
// `iotjobs apply plan.yaml --report r.json` must not ignore --report.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	cmds := app.Commands
	var cmd *cli.Command
	for len(rest) > 0 {
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(rest[0]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		cmd, cmds = next, next.Subcommands
		out = append(out, rest[0])
		rest = rest[1:]
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, pos []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			pos = append(pos, rest[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
			flags = append(flags, rest[i+1])
			i++
		}
	}
	out = append(out, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}

// exitCode decides the exit code from the error type, in one place.
func exitCode(err error) int {
	var (
		diags  diag.Diagnostics
		usage  usageError
		failed *runner.StepFailedError
		drift  *runner.DriftError
		subj   failedError
		unsup  *runner.UnsupportedError
		herr   *hub.Error
		change changesError
		undone *runner.RollbackIncompleteError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &change):
		return exitChanges
	case errors.As(err, &diags), errors.As(err, &usage), errors.As(err, &unsup):
		return exitInvalid
	case errors.As(err, &failed), errors.As(err, &subj), errors.As(err, &drift), errors.As(err, &undone):
		return exitFailed
	case errors.Is(err, context.Canceled):
		return exitFailed
	case errors.As(err, &herr) && (herr.Code == hub.CodeArgumentInvalid || herr.Code == hub.CodeFormatError || herr.Code == hub.CodeGenericBadRequest):
		return exitInvalid // the hub refused what we sent: bad input
	case errors.As(err, &herr) && !hub.IsInfrastructure(err):
		return exitFailed
	}
	if strings.Contains(err.Error(), "flag provided but not defined") || strings.Contains(err.Error(), "Required flag") {
		return exitInvalid
	}
	return exitInfra
}

// Flags shared by commands that talk to a hub.
var (
	hubFlag = &cli.StringFlag{Name: "hub", EnvVars: []string{"IOTJOBS_HUB_CONNECTION_STRING"},
		Usage: "hub connection string (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...); none = the embedded hub"}
	caFlag   = &cli.StringFlag{Name: "ca", EnvVars: []string{"IOTJOBS_CA_FILE"}, Usage: "PEM file of the CA to trust for the hub's TLS certificate"}
	dataFlag = &cli.StringFlag{Name: "data", Value: ".iotjobs", Usage: "data directory of the embedded hub"}
	jsonFlag = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text or json"}
	// connectionsFlag multiplexes a fleet (simulate.Options.Connections).
	connectionsFlag = &cli.IntFlag{Name: "connections", Usage: "play the --fleet over N shared MQTT connections instead of one per device (100,000 devices fit on one machine); needs the hub's owner connection string"}
	// brokerFlag names an external broker (README "External brokers").
	brokerFlag = &cli.StringFlag{Name: "broker", Usage: "external MQTT broker, mqtt[s]://[user:pass@]host:port[/root]: the embedded hub runs on it, and --fleet devices connect to it"}
)

// loadPlan parses and validates a plan, rendering diagnostics to stderr.
func loadPlan(c *cli.Context, path string) (*plan.Plan, error) {
	p, _, err := loadAnyPlan(c, path)
	return p, err
}

// loadAnyPlan loads a plan file, or a saved plan (iotjobs plan --out),
// which it returns too: its plan is parsed from the source it saved.
func loadAnyPlan(c *cli.Context, path string) (*plan.Plan, *runner.SavedPlan, error) {
	if b, err := os.ReadFile(path); err == nil && bytes.Contains(b[:min(len(b), 200)], []byte(`"savedPlanVersion"`)) {
		var sp runner.SavedPlan
		if err := json.Unmarshal(b, &sp); err != nil {
			return nil, nil, usagef("saved plan %s: %v", path, err)
		}
		if sp.Version != runner.SavedPlanVersion {
			return nil, nil, usagef("saved plan %s has version %d; this iotjobs reads version %d", path, sp.Version, runner.SavedPlanVersion)
		}
		p, diags := plan.Parse(sp.File, []byte(sp.Source))
		if len(diags) > 0 {
			diag.WriteText(c.App.ErrWriter, diags, map[string][]byte{sp.File: []byte(sp.Source)})
		}
		if diags.HasErrors() {
			return nil, nil, diags
		}
		if err := sp.Fix(p); err != nil {
			return nil, nil, usagef("saved plan %s: %v", path, err)
		}
		return p, &sp, nil
	}
	p, err := loadPlanFile(c, path)
	return p, nil, err
}

func loadPlanFile(c *cli.Context, path string) (*plan.Plan, error) {
	p, diags := plan.Load(path)
	if len(diags) > 0 {
		src, _ := os.ReadFile(path)
		diag.WriteText(c.App.ErrWriter, diags, map[string][]byte{path: src})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return p, nil
}

func validateCmd() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check plans; diagnostics as FILE:LINE:COL: message",
		ArgsUsage: "PLAN...",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("validate: name at least one plan file")
			}
			var all diag.Diagnostics
			sources := map[string][]byte{}
			for _, path := range c.Args().Slice() {
				_, diags := plan.Load(path)
				all.Extend(diags)
				sources[path], _ = os.ReadFile(path)
			}
			all.Sort()
			if c.String("output") == "json" {
				diag.WriteJSON(c.App.Writer, all)
			} else {
				diag.WriteText(c.App.ErrWriter, all, sources)
			}
			if all.HasErrors() {
				return all
			}
			if c.String("output") != "json" {
				fmt.Fprintf(c.App.Writer, "%d plan(s) valid\n", c.NArg())
			}
			return nil
		},
	}
}

func applyCmd() *cli.Command {
	return &cli.Command{
		Name:      "apply",
		Usage:     "run a plan on a hub, monitor every step, and write the JSON report",
		ArgsUsage: "PLAN",
		Flags: []cli.Flag{hubFlag, caFlag, dataFlag, brokerFlag,
			&cli.StringFlag{Name: "fleet", Usage: "fleet file: connect these simulated devices to the hub over MQTT first"},
			connectionsFlag,
			&cli.StringFlag{Name: "mqtt", Usage: "broker host:port for --fleet devices on a remote hub (default: the hub's host, port 8883)"},
			&cli.StringFlag{Name: "report", Usage: "write the JSON report to FILE instead of stdout"},
			&cli.StringFlag{Name: "junit", Usage: "also write the outcome as JUnit XML to FILE (a test case per device per step)"},
			jsonFlag,
			&cli.BoolFlag{Name: "watch", Usage: "stay up and run every occurrence of the plan's cron steps, one report each (FILE-STEP-TIME.json with --report, else JSON lines on stdout), until interrupted"},
			&cli.BoolFlag{Name: "dry-run", Usage: "only dry-run the plan (as iotjobs plan does) and write its report; touch nothing"},
			&cli.BoolFlag{Name: "skip-dry-run", Usage: "apply without dry-running first"},
			&cli.BoolFlag{Name: "yes", Usage: "apply even when the dry-run predicts that an abort trips or the pre-flight fails"},
			&cli.Float64Flag{Name: "rate", Usage: "the hub's device operations per second: the dry-run's pre-flight stops apply when a step cannot finish in its maxExecutionTime or window at that rate"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("apply: name exactly one plan file")
			}
			if o := c.String("output"); o != "text" && o != "json" {
				return usagef("apply: --output %q: use text or json", o)
			}
			p, saved, err := loadAnyPlan(c, c.Args().First())
			if err != nil {
				return err
			}
			if err := runner.Check(p); err != nil {
				return err
			}
			t, err := openTarget(c)
			if err != nil {
				return err
			}
			defer t.Close()
			if saved != nil {
				// A saved plan acts on the devices it saw, as they were.
				if err := (&runner.Runner{Hub: t.client, Clock: clock.Real()}).CheckDrift(c.Context, saved); err != nil {
					return err
				}
			}
			var events *runner.JSONObserver
			if c.String("output") == "json" {
				events = &runner.JSONObserver{W: c.App.Writer, Clock: clock.Real()}
			}
			if !c.Bool("watch") && !c.Bool("skip-dry-run") {
				// validate → dry-run → execute: the plan plays first against
				// simulated devices (--fleet's, or the hub's twins read with
				// queries only); a predicted abort stops it here, before
				// anything touches the hub.
				dry, err := simulateRun(c, p, t.client, t.client, t.name)
				if err != nil {
					return err
				}
				dry.DryRun = true
				stop := ""
				for _, s := range dry.Steps {
					if s.Status == runner.StepAborted {
						stop = fmt.Sprintf("the dry-run predicts that step %s aborts: %s", s.Name, s.Reason)
						break
					}
				}
				if rate := c.Float64("rate"); rate > 0 {
					// The pre-flight: each step's devices at the hub's rate,
					// read with queries only, from the devices the dry-run
					// played (--fleet's, which apply registers next).
					src := t.client
					if f := c.String("fleet"); f != "" {
						e, closeFleet, err := fleetHub(c.Context, io.Discard, f, clock.Real(), t.client)
						if err != nil {
							return err
						}
						defer closeFleet()
						src = e
					}
					pv, err := (&runner.Runner{Hub: src, Clock: clock.Real(), HubName: t.name}).Preview(c.Context, p, runner.PreviewOptions{OpsPerSecond: rate})
					if pv == nil {
						return err
					}
					dry, _ = mergeDryRun(pv, dry)
					for _, s := range dry.Steps {
						if s.Preview == nil {
							continue
						}
						if pf := s.Preview.Preflight; stop == "" && pf != nil && !pf.OK {
							stop = fmt.Sprintf("the pre-flight fails for step %s: %s", s.Name, pf.Message)
						}
					}
				}
				if c.Bool("dry-run") || (stop != "" && !c.Bool("yes")) {
					if stop != "" && !c.Bool("dry-run") {
						fmt.Fprintf(c.App.ErrWriter, "apply: %s; nothing was applied (--yes applies anyway, --skip-dry-run skips the dry-run)\n", stop)
					}
					var dryErr error
					if dry.Status != runner.StatusSucceeded {
						var failed []string
						for _, s := range dry.Steps {
							if s.Status != string(hub.JobCompleted) {
								failed = append(failed, s.Name)
							}
						}
						dryErr = &runner.StepFailedError{Steps: failed}
					}
					return finishApply(c, dry, events, dryErr)
				}
			}
			if f := c.String("fleet"); f != "" {
				sim, err := attachFleet(c, t, f)
				if err != nil {
					return err
				}
				defer func() {
					// A job completes once the hub has published its desired
					// patch, which the devices may not have echoed yet: the
					// fleet closes only after they sent what they owe.
					ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
					defer cancel()
					if err := sim.Settle(ctx); err != nil {
						slog.Warn("simulated fleet closed before settling", "err", err)
					}
					sim.Close()
				}()
			}
			r := &runner.Runner{Hub: t.client, Clock: clock.Real(), HubName: t.name}
			r.Observer = &runner.TextObserver{W: c.App.ErrWriter, Clock: r.Clock, TTY: isTerminal(c.App.ErrWriter)}
			if events != nil {
				// Progress as JSON lines on stdout; the report is the last.
				r.Observer = events
			}
			if c.Bool("watch") {
				return watch(c, r, p)
			}
			rep, runErr := r.Apply(c.Context, p)
			return finishApply(c, rep, events, runErr)
		},
	}
}

// finishApply writes a run's report (the events' last line, or --report
// or stdout; --junit) and its summary, and returns runErr.
func finishApply(c *cli.Context, rep *runner.Report, events *runner.JSONObserver, runErr error) error {
	if rep == nil {
		return runErr
	}
	if events == nil {
		rep.WriteSummary(c.App.ErrWriter)
	}
	if events != nil && c.String("report") == "" {
		if err := events.Report(rep); err != nil {
			return errors.Join(runErr, fmt.Errorf("write events: %w", err))
		}
		if path := c.String("junit"); path != "" {
			if err := writeFile(path, rep.WriteJUnit); err != nil {
				return errors.Join(runErr, fmt.Errorf("write JUnit report: %w", err))
			}
		}
		return runErr
	}
	if err := writeReport(c, rep); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

// watch runs apply --watch until interrupted: each report goes to its
// own file next to --report (or as a JSON line to stdout) as soon as its
// occurrence ends.
func watch(c *cli.Context, r *runner.Runner, p *plan.Plan) error {
	var writeErr error
	err := r.Watch(c.Context, p, func(rep *runner.Report) {
		if writeErr != nil {
			return
		}
		if c.String("report") == "" && c.String("junit") == "" {
			if ev, ok := r.Observer.(*runner.JSONObserver); ok {
				writeErr = ev.Report(rep)
				return
			}
			b, err := json.Marshal(rep)
			if err == nil {
				_, err = fmt.Fprintf(c.App.Writer, "%s\n", b)
			}
			writeErr = err
			return
		}
		for _, out := range []struct {
			flag  string
			write func(io.Writer) error
		}{{"report", rep.WriteJSON}, {"junit", rep.WriteJUnit}} {
			if base := c.String(out.flag); base != "" {
				path := occurrencePath(base, rep.Occurrence)
				if err := writeFile(path, out.write); err != nil {
					writeErr = fmt.Errorf("write %s: %w", path, err)
					return
				}
				fmt.Fprintf(c.App.ErrWriter, "%s written to %s (status %s)\n", out.flag, path, rep.Status)
			}
		}
	})
	if writeErr != nil {
		return writeErr
	}
	if c.Context.Err() != nil {
		return nil // stopped by the operator: the way a watch ends
	}
	return err
}

// isTerminal reports whether w is a terminal (for progress drawn in place).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// occurrencePath is the file of one occurrence's report: base with the
// step and the scheduled time (UTC) before its extension; base itself for
// the run of the steps without cron.
func occurrencePath(base string, o *runner.OccurrenceReport) string {
	if o == nil {
		return base
	}
	ext := filepath.Ext(base)
	return strings.TrimSuffix(base, ext) + "-" + o.Step + "-" + o.ScheduledAt.UTC().Format("20060102T150405Z") + ext
}

func writeReport(c *cli.Context, rep *runner.Report) error {
	if path := c.String("junit"); path != "" {
		if err := writeFile(path, rep.WriteJUnit); err != nil {
			return fmt.Errorf("write JUnit report: %w", err)
		}
	}
	path := c.String("report")
	if path == "" {
		return rep.WriteJSON(c.App.Writer)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := rep.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("write report %s: %w", path, err)
	}
	fmt.Fprintf(c.App.ErrWriter, "report written to %s (status %s)\n", path, rep.Status)
	return f.Close()
}

// writeFile writes a file with write, reporting a failed close too.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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

func hubCmd() *cli.Command {
	return &cli.Command{
		Name:  "hub",
		Usage: "run the hub",
		Subcommands: []*cli.Command{{
			Name:  "serve",
			Usage: "serve the REST API over HTTPS and MQTT over TLS until interrupted",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "data", Value: ".iotjobs-hub", Usage: "data directory (store, TLS CA, connection string)"},
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
				fmt.Fprintf(c.App.ErrWriter, "iotjobs hub serving\n  REST API  https://%s\n  MQTT      %s\n  CA        %s\n  connection string in %s/connection-string\n",
					h.HTTPAddr(), mqttLine, h.CAFile(), c.String("data"))
				fmt.Fprintln(c.App.Writer, h.ConnectionString())
				<-c.Context.Done()
				fmt.Fprintln(c.App.ErrWriter, "iotjobs hub stopping")
				return nil
			},
		}},
	}
}

func simulateCmd() *cli.Command {
	return &cli.Command{
		Name:  "simulate",
		Usage: "connect a fleet of simulated devices to a hub over MQTT until interrupted",
		Flags: []cli.Flag{hubFlag, caFlag, dataFlag, brokerFlag,
			&cli.StringFlag{Name: "fleet", Required: true, Usage: "fleet file"},
			connectionsFlag,
			&cli.DurationFlag{Name: "every", Value: 5 * time.Second, Usage: "how often to print the live counts (connected, calls, errors)"},
			&cli.StringFlag{Name: "mqtt", Usage: "broker host:port (default: the hub's host, port 8883)"},
		},
		Action: func(c *cli.Context) error {
			if c.String("hub") == "" {
				return usagef("simulate: --hub (or IOTJOBS_HUB_CONNECTION_STRING) is required")
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

// printJSON prints v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// withTarget runs fn against the command's hub.
func withTarget(fn func(c *cli.Context, h hub.Client) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if o := c.String("output"); o != "" && o != "text" && o != "json" {
			return usagef("--output %q: use text or json", o)
		}
		t, err := openTarget(c)
		if err != nil {
			return err
		}
		defer t.Close()
		return fn(c, t.client)
	}
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", usagef("%s: name exactly one %s", c.Command.FullName(), what)
	}
	return c.Args().First(), nil
}

func jsonArg(c *cli.Context, flag string, dst any) error {
	if s := c.String(flag); s != "" {
		if err := json.Unmarshal([]byte(s), dst); err != nil {
			return usagef("--%s: not valid JSON: %w", flag, err)
		}
	}
	return nil
}

func twinCmd() *cli.Command {
	flags := []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag}
	return &cli.Command{
		Name:  "twin",
		Usage: "show or patch a device twin",
		Subcommands: []*cli.Command{
			{Name: "show", ArgsUsage: "ID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "device id")
				if err != nil {
					return err
				}
				tw, err := h.GetTwin(c.Context, id)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, tw)
			})},
			{Name: "patch", ArgsUsage: "ID", Flags: append(flags,
				&cli.StringFlag{Name: "desired", Usage: "JSON merge patch of desired properties"},
				&cli.StringFlag{Name: "tags", Usage: "JSON merge patch of tags"},
				&cli.StringFlag{Name: "etag", Value: "*", Usage: "only patch if the twin's etag matches"}),
				Action: withTarget(func(c *cli.Context, h hub.Client) error {
					id, err := oneArg(c, "device id")
					if err != nil {
						return err
					}
					p := &hub.TwinPatch{}
					var desired map[string]any
					if err := jsonArg(c, "desired", &desired); err != nil {
						return err
					}
					if err := jsonArg(c, "tags", &p.Tags); err != nil {
						return err
					}
					if desired != nil {
						p.Properties = &hub.Properties{Desired: desired}
					}
					if desired == nil && p.Tags == nil {
						return usagef("twin patch: give --desired and/or --tags")
					}
					tw, err := h.UpdateTwin(c.Context, id, p, c.String("etag"))
					if err != nil {
						return err
					}
					return printJSON(c.App.Writer, tw)
				})},
		},
	}
}

func methodCmd() *cli.Command {
	return &cli.Command{
		Name:  "method",
		Usage: "invoke a direct method",
		Subcommands: []*cli.Command{{
			Name: "invoke", ArgsUsage: "ID METHOD",
			Flags: []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag,
				&cli.StringFlag{Name: "payload", Value: "null", Usage: "JSON payload"},
				&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "response timeout (5s to 300s)"},
				&cli.DurationFlag{Name: "connect-timeout", Usage: "how long to wait for an offline device (0 to 300s)"}},
			Action: withTarget(func(c *cli.Context, h hub.Client) error {
				if c.NArg() != 2 {
					return usagef("method invoke: give ID and METHOD")
				}
				var payload json.RawMessage
				if err := jsonArg(c, "payload", &payload); err != nil {
					return err
				}
				resp, err := h.InvokeMethod(c.Context, c.Args().Get(0), &hub.MethodRequest{
					MethodName: c.Args().Get(1), Payload: payload,
					ResponseTimeoutInSeconds: int(c.Duration("timeout") / time.Second),
					ConnectTimeoutInSeconds:  int(c.Duration("connect-timeout") / time.Second),
				})
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, resp)
			}),
		}},
	}
}

func jobsCmd() *cli.Command {
	flags := []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag}
	return &cli.Command{
		Name:  "jobs",
		Usage: "list, show or cancel hub jobs",
		Subcommands: []*cli.Command{
			{Name: "list", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				var all []*hub.Job
				q := hub.JobQuery{}
				for {
					jobs, cont, err := h.QueryJobs(c.Context, q)
					if err != nil {
						return err
					}
					all = append(all, jobs...)
					if cont == "" {
						return printJSON(c.App.Writer, all)
					}
					q.Continuation = cont
				}
			})},
			{Name: "show", ArgsUsage: "JOBID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "job id")
				if err != nil {
					return err
				}
				j, err := h.GetJob(c.Context, id)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, j)
			})},
			{Name: "watch", ArgsUsage: "JOBID", Usage: "print a job's progress until it ends; exit 1 unless it completed with no failed device",
				Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
					id, err := oneArg(c, "job id")
					if err != nil {
						return err
					}
					var j *hub.Job
					for j == nil || !j.Status.Terminal() {
						if j, err = h.WatchJob(c.Context, id, j); err != nil {
							return err
						}
						st := j.DeviceJobStatistics
						if st == nil {
							st = &hub.DeviceJobStatistics{}
						}
						fmt.Fprintf(c.App.ErrWriter, "%s: %s, %d devices: %d succeeded, %d failed, %d running, %d pending\n",
							id, j.Status, st.DeviceCount, st.SucceededCount, st.FailedCount, st.RunningCount, st.PendingCount)
					}
					if err := printJSON(c.App.Writer, j); err != nil {
						return err
					}
					if j.Status != hub.JobCompleted || (j.DeviceJobStatistics != nil && j.DeviceJobStatistics.FailedCount > 0) {
						return failedError{fmt.Sprintf("job %s ended %s with %d failed device(s)", id, j.Status, j.DeviceJobStatistics.FailedCount)}
					}
					return nil
				})},
			{Name: "cancel", ArgsUsage: "JOBID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "job id")
				if err != nil {
					return err
				}
				j, err := h.CancelJob(c.Context, id)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, j)
			})},
			{Name: "devices", ArgsUsage: "JOBID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "job id")
				if err != nil {
					return err
				}
				return printQuery(c, h, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+strings.ReplaceAll(id, "'", `\'`)+"'")
			})},
		},
	}
}

func printQuery(c *cli.Context, h hub.Client, q string) error {
	items := []json.RawMessage{}
	opts := hub.QueryOptions{PageSize: 1000}
	for {
		page, err := h.Query(c.Context, q, opts)
		if err != nil {
			return err
		}
		items = append(items, page.Items...)
		if page.Continuation == "" {
			break
		}
		opts.Continuation = page.Continuation
	}
	if c.String("output") == "json" {
		return printJSON(c.App.Writer, items)
	}
	// Text: one row per line, so that grep, wc and head work on it.
	for _, it := range items {
		if _, err := fmt.Fprintf(c.App.Writer, "%s\n", it); err != nil {
			return err
		}
	}
	return nil
}

func queryCmd() *cli.Command {
	return &cli.Command{
		Name: "query", Usage: "run an IoT Hub query, e.g. \"SELECT * FROM devices WHERE tags.building = '43'\"",
		ArgsUsage: "QUERY",
		Flags:     []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag},
		Action: withTarget(func(c *cli.Context, h hub.Client) error {
			q, err := oneArg(c, "query")
			if err != nil {
				return err
			}
			return printQuery(c, h, q)
		}),
	}
}

func devicesCmd() *cli.Command {
	flags := []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag}
	return &cli.Command{
		Name:  "devices",
		Usage: "create, list, show, enable, disable or delete device identities",
		Subcommands: []*cli.Command{
			{Name: "list", Flags: append(flags,
				&cli.IntFlag{Name: "top", Value: 1000, Usage: "list at most this many devices, in id order (1 to 1000)"}),
				Action: withTarget(func(c *cli.Context, h hub.Client) error {
					if c.NArg() != 0 {
						return usagef("devices list: takes no arguments")
					}
					if top := c.Int("top"); top < 1 || top > 1000 {
						return usagef("devices list: --top %d must be from 1 to 1000", top)
					}
					ds, err := h.ListDevices(c.Context, c.Int("top"))
					if err != nil {
						return err
					}
					if ds == nil {
						ds = []*hub.Device{}
					}
					return printJSON(c.App.Writer, ds)
				})},
			{Name: "enable", ArgsUsage: "ID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				return setStatus(c, h, hub.StatusEnabled, nil)
			})},
			{Name: "disable", ArgsUsage: "ID", Flags: append(flags,
				&cli.StringFlag{Name: "reason", Usage: "why, kept as the device's statusReason (at most 128 characters)"}),
				Action: withTarget(func(c *cli.Context, h hub.Client) error {
					var reason *string
					if c.IsSet("reason") {
						r := c.String("reason")
						reason = &r
					}
					return setStatus(c, h, hub.StatusDisabled, reason)
				})},
			{Name: "create", ArgsUsage: "ID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "device id")
				if err != nil {
					return err
				}
				d, err := h.CreateDevice(c.Context, &hub.Device{DeviceID: id})
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, d)
			})},
			{Name: "show", ArgsUsage: "ID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "device id")
				if err != nil {
					return err
				}
				d, err := h.GetDevice(c.Context, id)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, d)
			})},
			{Name: "delete", ArgsUsage: "ID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "device id")
				if err != nil {
					return err
				}
				return h.DeleteDevice(c.Context, id, "*")
			})},
		},
	}
}

// setStatus enables or disables the device named by the command's
// argument. It updates the device as read, with its etag, so a concurrent
// change is refused rather than overwritten.
func setStatus(c *cli.Context, h hub.Client, status string, reason *string) error {
	id, err := oneArg(c, "device id")
	if err != nil {
		return err
	}
	d, err := h.GetDevice(c.Context, id)
	if err != nil {
		return err
	}
	d.Status, d.StatusReason = status, reason
	out, err := h.UpdateDevice(c.Context, d, d.ETag)
	if err != nil {
		return err
	}
	return printJSON(c.App.Writer, out)
}
