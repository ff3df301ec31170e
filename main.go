// Command iotjobs runs declarative job plans against IoT fleets and hosts
// the hub they run on. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/plan/diag"
	"github.com/iotjobs/iotjobs/runner"
)

// Exit codes, the same for every command (README "Exit codes").
const (
	exitOK      = 0
	exitFailed  = 1 // the plan ran and a step failed; drift found
	exitInvalid = 2 // invalid plan or usage
	exitInfra   = 3 // hub unreachable, authentication refused, infrastructure fault
	exitChanges = 4 // plan --detailed-exitcode: the plan would make changes
	// exitInterrupted: stopped by SIGINT or SIGTERM, as shells report a
	// command a signal ended (128+2); the report is still written.
	exitInterrupted = 130
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

func init() {
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintf(c.App.Writer, "iotjobs %s\n", c.App.Version) }
}

// run is the whole CLI; tests call it directly, one at a time: urfave/cli
// keeps state in package variables (its help and version flags).
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
		Commands: commands(),
		Version:  version(),
	}
	usageErrors(app.Commands, "iotjobs")
	if n := len(args); n >= 2 && args[n-1] == completeFlag {
		// A shell asks for completions of a half-typed command line,
		// which is neither checked nor run.
		complete(stdout, app.Commands, args[1:n-1])
		return exitOK
	}
	err := checkCommands(app, args)
	if err == nil {
		err = app.RunContext(ctx, interspersed(app, args))
	}
	code := exitCode(err)
	switch {
	case code == exitInterrupted:
		fmt.Fprintln(stderr, "iotjobs: interrupted; the hub jobs of the running steps were cancelled")
	case err != nil && !errors.As(err, new(diag.Diagnostics)):
		fmt.Fprintf(stderr, "iotjobs: %v\n", err)
	}
	return code
}

// commands are the CLI's commands, in --help's order.
func commands() []*cli.Command {
	return []*cli.Command{
		validateCmd(), planCmd(), checkCmd(), applyCmd(), rollbackCmd(), reportCmd(), hubCmd(), simulateCmd(), twinCmd(), methodCmd(), jobsCmd(), devicesCmd(), queryCmd(), auditCmd(), schemaCmd(), versionCmd(), completionCmd(),
	}
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
		herr   *hub.Error
		change changesError
		undone *runner.RollbackIncompleteError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &change):
		return exitChanges
	case errors.As(err, &diags), errors.As(err, &usage):
		return exitInvalid
	case errors.As(err, &failed), errors.As(err, &subj), errors.As(err, &drift), errors.As(err, &undone):
		return exitFailed
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &herr) && (herr.Code == hub.CodeArgumentInvalid || herr.Code == hub.CodeFormatError || herr.Code == hub.CodeGenericBadRequest):
		return exitInvalid // the hub refused what we sent: bad input
	case errors.As(err, &herr) && !hub.IsInfrastructure(err):
		return exitFailed
	}
	return exitInfra
}

// usageErrors makes every command's flag errors usage errors (exit 2),
// naming where to find the command's flags; urfave/cli would otherwise
// print its help on stdout and return an untyped error.
func usageErrors(cmds []*cli.Command, parent string) {
	for _, cmd := range cmds {
		name := parent + " " + cmd.Name
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
				return usageError{fmt.Errorf("%w (%s --help lists its flags)", err, name)}
			}
		}
		usageErrors(cmd.Subcommands, name)
	}
}

// outputFormat is a command's --output: text or json, refused otherwise
// before the command does any work.
func outputFormat(c *cli.Context) (string, error) {
	switch o := c.String("output"); o {
	case "text", "json":
		return o, nil
	case "markdown":
		return "", usagef("%s: --output markdown: only iotjobs plan writes markdown; use text or json", c.Command.FullName())
	default:
		return "", usagef("%s: --output %q: use text or json", c.Command.FullName(), o)
	}
}

// Flags shared by commands that talk to a hub. Each call makes new ones:
// urfave/cli writes into a flag while it parses, so two runs of the CLI
// in one process (tests) must not share them.
func hubFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "hub", EnvVars: []string{"IOTJOBS_HUB_CONNECTION_STRING"},
		Usage: "hub connection string (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...); none = the embedded hub"}
}

func caFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "ca", EnvVars: []string{"IOTJOBS_CA_FILE"}, Usage: "PEM file of the CA to trust for the hub's TLS certificate"}
}

func dataFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "data", Value: ".iotjobs", Usage: "data directory of the embedded hub"}
}

func jsonFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text or json"}
}

// connectionsFlag multiplexes a fleet (simulate.Options.Connections).
func connectionsFlag() *cli.IntFlag {
	return &cli.IntFlag{Name: "connections", Usage: "play the --fleet over N shared MQTT connections instead of one per device (100,000 devices fit on one machine); needs the hub's owner connection string"}
}

// brokerFlag names an external broker (README "External brokers").
func brokerFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "broker", Usage: "external MQTT broker, mqtt[s]://[user:pass@]host:port[/root]: the embedded hub runs on it, and --fleet devices connect to it"}
}
