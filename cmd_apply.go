// The apply command: validate, dry-run, execute and monitor a plan, and
// write its report.

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/plan/policy"
	"github.com/iotjobs/iotjobs/runner"
)

func applyCmd() *cli.Command {
	return &cli.Command{
		Name:        "apply",
		Description: "Examples:\n   iotjobs apply --fleet examples/fleet.yaml examples/lock-door.yaml\n   iotjobs apply --hub \"$CS\" --report report.json --junit junit.xml plan.yaml\n   iotjobs apply --dry-run plan.yaml",
		Usage:       "run a plan on a hub, monitor every step, and write the JSON report",
		ArgsUsage:   "PLAN",
		Flags: append([]cli.Flag{hubFlag(), caFlag(), dataFlag(), brokerFlag(),
			&cli.StringFlag{Name: "fleet", Usage: "fleet file: connect these simulated devices to the hub over MQTT first"},
			connectionsFlag(),
			&cli.StringFlag{Name: "mqtt", Usage: "broker host:port for --fleet devices on a remote hub (default: the hub's host, port 8883)"},
			&cli.StringFlag{Name: "report", Usage: "write the JSON report to FILE (without it: to stdout when stdout is not a terminal, or with -o json)"},
			&cli.StringFlag{Name: "junit", Usage: "also write the outcome as JUnit XML to FILE (a test case per device per step)"},
			htmlFlag("the run's report"),
			jsonFlag(),
			&cli.BoolFlag{Name: "watch", Usage: "stay up and run every occurrence of the plan's cron steps, one report each (FILE-STEP-TIME.json with --report, else JSON lines on stdout), until interrupted"},
			&cli.BoolFlag{Name: "dry-run", Usage: "only dry-run the plan (as iotjobs plan does) and write its report; touch nothing"},
			&cli.BoolFlag{Name: "skip-dry-run", Usage: "apply without dry-running first"},
			&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "apply without asking at a terminal, and even when the dry-run predicts that a step fails, aborts or misses its pre-flight"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "also show the hub's job ids and each job's status changes"},
			&cli.Float64Flag{Name: "rate", Usage: "the hub's device operations per second: the dry-run's pre-flight stops apply when a step cannot finish in its maxExecutionTime or window at that rate"},
			policyFlag(), overridePolicyFlag(),
		}, varFlags()...),
		Action: func(c *cli.Context) error {
			output, err := checkApplyFlags(c)
			if err != nil {
				return err
			}
			p, saved, err := loadAnyPlan(c, c.Args().First())
			if err != nil {
				return err
			}
			if c.Bool("watch") && !slices.ContainsFunc(p.Steps, func(s *plan.Step) bool { return s.Cron != "" }) {
				return usagef("apply --watch: plan %s has no cron step, so there is nothing to watch for; run it without --watch", p.Name)
			}
			pol, err := policyFor(c, c.Args().First())
			if err != nil {
				return err
			}
			a := &applyRun{c: c, p: p, saved: saved, pol: pol, output: output, obs: newObserver(c, output)}
			rep, err := a.run()
			if rep == nil && !c.Bool("watch") {
				// No step ran (the hub unreachable, a certificate refused,
				// an interrupt): CI still gets a report saying why.
				rep = a.notRun(err)
			}
			if rep != nil && a.policy != nil {
				rep.Policy = a.policy.report
			}
			return finishApply(c, rep, a.obs, output, err)
		},
	}
}

// newObserver is apply's progress: for people on stderr, or JSON lines
// on stdout with -o json.
func newObserver(c *cli.Context, output string) runner.Observer {
	if output == "json" {
		return &runner.JSONObserver{W: c.App.Writer, Clock: clock.Real()}
	}
	return &runner.TextObserver{W: c.App.ErrWriter, Clock: clock.Real(), TTY: isTerminal(c.App.ErrWriter),
		Verbose: c.Bool("verbose"), Width: terminalWidth(c.App.ErrWriter)}
}

// applyRun is one apply: validate → dry-run → confirm → execute.
type applyRun struct {
	c       *cli.Context
	p       *plan.Plan
	saved   *runner.SavedPlan
	output  string
	obs     runner.Observer
	hubName string
	// pol is the policy the plan is checked against (nil: none), policy
	// the check.
	pol    *policy.Policy
	policy *policyCheck
}

// run applies the plan and returns its report: the run's, or the
// dry-run's when apply stops before touching anything. The report is
// nil when apply ended before it had one.
func (a *applyRun) run() (*runner.Report, error) {
	c, p := a.c, a.p
	t, err := openTarget(c)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	a.hubName = t.name
	if a.saved != nil {
		// A saved plan acts on the devices it saw, as they were.
		if err := (&runner.Runner{Hub: t.client, Clock: clock.Real()}).CheckDrift(c.Context, a.saved); err != nil {
			return nil, err
		}
	}
	if err := a.checkPolicy(t); err != nil {
		pe, ok := errors.AsType[policyError](err)
		if !ok {
			return nil, err
		}
		pe.msg += "; nothing was applied"
		return runner.NotRun(p, t.name, time.Now(), runner.StatusStopped, pe.msg), pe
	}
	if !c.Bool("watch") && !c.Bool("skip-dry-run") {
		// validate → dry-run → execute: the plan plays first against
		// simulated devices (--fleet's, or the hub's twins read with
		// queries only); a predicted failure stops it here, before
		// anything touches the hub.
		dry, stop, err := a.dryRun(t)
		if err != nil {
			return nil, err
		}
		switch {
		case c.Bool("dry-run"):
			var dryErr error
			if dry.Status != runner.StatusSucceeded {
				dryErr = a.predicted(dry)
			}
			return dry, dryErr
		case stop != "" && !c.Bool("yes"):
			fmt.Fprintf(c.App.ErrWriter, "apply: %s; nothing was applied (--yes applies anyway, --skip-dry-run skips the dry-run)\n", stop)
			dry.Status, dry.Error = runner.StatusStopped, stop+"; nothing was applied"
			return dry, a.predicted(dry)
		}
		if a.interactive() && !c.Bool("yes") {
			dry.WritePreview(c.App.ErrWriter)
			if !a.confirm(t.name) {
				dry.Status, dry.Error = runner.StatusStopped, "not confirmed at the prompt; nothing was applied"
				return dry, failedError{"apply cancelled: nothing was applied"}
			}
		}
	} else if a.interactive() && !c.Bool("yes") {
		fmt.Fprintf(c.App.ErrWriter, "plan %s (%s), not dry-run:\n", p.Name, p.File)
		for _, s := range p.Order() {
			fmt.Fprintf(c.App.ErrWriter, "  step %s: %s on %s\n", s.Name, stepAction(s), s.Query)
		}
		if !a.confirm(t.name) {
			return runner.NotRun(p, t.name, time.Now(), runner.StatusStopped, "not confirmed at the prompt; nothing was applied"),
				failedError{"apply cancelled: nothing was applied"}
		}
	}
	if f := c.String("fleet"); f != "" {
		sim, err := attachFleet(c, t, f)
		if err != nil {
			return nil, err
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
	r := &runner.Runner{Hub: t.client, Clock: clock.Real(), HubName: t.name, Observer: a.obs}
	if c.Bool("watch") {
		return nil, watch(c, r, p, a.output)
	}
	return r.Apply(c.Context, p)
}

// dryRun plays the plan against simulated devices, with the pre-flight
// when --rate is given, and says why apply must stop ("" to go on): the
// first step it predicts fails, aborts, or cannot finish in time.
func (a *applyRun) dryRun(t *target) (dry *runner.Report, stop string, err error) {
	c, p := a.c, a.p
	dry, err = simulateRun(c, p, t.client, t.client, t.name)
	if err != nil {
		return nil, "", err
	}
	dry.DryRun = true
	// What plan shows (matched devices, twin changes, timeline) and,
	// with --rate, the pre-flight: each step's devices at the hub's
	// rate, read with queries only, from the devices the dry-run played
	// (--fleet's, which apply registers next).
	src := t.client
	if f := c.String("fleet"); f != "" {
		e, closeFleet, err := fleetHub(c.Context, io.Discard, f, clock.Real(), t.client)
		if err != nil {
			return nil, "", err
		}
		defer closeFleet()
		src = e
	}
	pv, err := (&runner.Runner{Hub: src, Clock: clock.Real(), HubName: t.name}).Preview(c.Context, p, runner.PreviewOptions{OpsPerSecond: c.Float64("rate")})
	if pv == nil {
		return nil, "", err
	}
	dry, _ = runner.MergeDryRun(pv, dry)
	for _, s := range dry.Steps {
		if pf := s.Preview; pf != nil && pf.Preflight != nil && !pf.Preflight.OK {
			return dry, fmt.Sprintf("the pre-flight fails for step %s: %s", s.Name, pf.Preflight.Message), nil
		}
	}
	for _, s := range dry.Steps {
		switch {
		case s.Status == runner.StepAborted:
			return dry, fmt.Sprintf("the dry-run predicts that step %s aborts: %s", s.Name, s.Reason), nil
		case s.Failed() && s.Status != runner.StepSkipped:
			return dry, fmt.Sprintf("the dry-run predicts that step %s fails (%s): %s", s.Name, s.Summary, s.Reason), nil
		}
	}
	return dry, "", nil
}

// predicted is the error of a dry-run that predicts failed steps.
func (a *applyRun) predicted(dry *runner.Report) error {
	see := a.c.String("report")
	if see == "" {
		see = "the summary above"
	}
	return &runner.StepFailedError{Steps: dry.FailedSteps(), Predicted: true, See: see}
}

// interactive reports whether a person is at the terminal to confirm:
// stdin and stderr are terminals, as Terraform asks.
func (a *applyRun) interactive() bool {
	return isTerminal(a.c.App.Reader) && isTerminal(a.c.App.ErrWriter)
}

// confirm asks the operator to type yes.
func (a *applyRun) confirm(hubName string) bool {
	fmt.Fprintf(a.c.App.ErrWriter, "\nApply plan %s on %s? Only 'yes' will be accepted (--yes skips this question): ", a.p.Name, hubName)
	line, err := bufio.NewReader(a.c.App.Reader).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(a.c.App.ErrWriter)
	}
	return strings.TrimSpace(line) == "yes"
}

// notRun is the report of an apply that ended before any step ran; nil
// for a mistake in how it was called (there is nothing to report).
func (a *applyRun) notRun(err error) *runner.Report {
	var usage usageError
	if err == nil || errors.As(err, &usage) {
		return nil
	}
	name := a.hubName
	if name == "" {
		name = "embedded"
		if cs, perr := sas.ParseConnectionString(a.c.String("hub")); perr == nil {
			name = cs.HostName
		}
	}
	status, why := runner.StatusError, err.Error()
	if errors.Is(err, context.Canceled) {
		status, why = runner.StatusCancelled, "interrupted before any step began"
	}
	return runner.NotRun(a.p, name, time.Now(), status, why)
}

// stepAction is what a step does, in a few words.
func stepAction(s *plan.Step) string {
	if s.Method != nil {
		return "method " + s.Method.Name
	}
	return "twin patch"
}

// checkApplyFlags checks apply's arguments and every combination of its
// flags before any work, and returns its --output. A combination that
// would apply what the operator asked only to dry-run is refused.
func checkApplyFlags(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", usagef("apply: name exactly one plan file")
	}
	output, err := outputFormat(c)
	if err != nil {
		return "", err
	}
	switch {
	case c.Bool("dry-run") && c.Bool("skip-dry-run"):
		return "", usagef("apply: --dry-run and --skip-dry-run contradict each other: give one")
	case c.Bool("dry-run") && c.Bool("watch"):
		return "", usagef("apply: --dry-run with --watch: --watch runs the plan's cron steps for real; dry-run a week of them with iotjobs plan")
	case c.Float64("rate") < 0:
		return "", usagef("apply: --rate %g: give the hub's device operations per second (0: unknown)", c.Float64("rate"))
	case c.Int("connections") < 0:
		return "", usagef("apply: --connections %d: give a number of MQTT connections, or leave it out", c.Int("connections"))
	case c.Int("connections") > 0 && c.String("fleet") == "":
		return "", usagef("apply: --connections multiplexes the --fleet devices: give --fleet too")
	case c.String("mqtt") != "" && c.String("fleet") == "":
		return "", usagef("apply: --mqtt is where the --fleet devices connect: give --fleet too")
	}
	if err := checkOverrideFlag(c); err != nil {
		return "", err
	}
	return output, nil
}

// finishApply ends a run: the observer shows its report (the events'
// last line, or the summary), unless JSON output goes to --report
// instead; the report goes to --report or stdout; --junit. It returns
// runErr.
func finishApply(c *cli.Context, rep *runner.Report, obs runner.Observer, output string, runErr error) error {
	if rep == nil {
		return runErr
	}
	events := output == "json"
	if !events || c.String("report") == "" {
		if err := obs.Finish(rep); err != nil {
			return errors.Join(runErr, fmt.Errorf("write events: %w", err))
		}
	}
	if events && c.String("report") == "" {
		if path := c.String("junit"); path != "" {
			if err := writeFile(path, rep.WriteJUnit); err != nil {
				return errors.Join(runErr, fmt.Errorf("write JUnit report: %w", err))
			}
		}
		return errors.Join(runErr, writeHTML(c, c.String("html"), rep))
	}
	if err := writeReport(c, rep); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

// watch runs apply --watch until interrupted: each report goes to its
// own file next to --report (or as a JSON line to stdout) as soon as its
// occurrence ends.
func watch(c *cli.Context, r *runner.Runner, p *plan.Plan, output string) error {
	var writeErr error
	err := r.Watch(c.Context, p, func(rep *runner.Report) {
		if writeErr != nil {
			return
		}
		if c.String("report") == "" && c.String("junit") == "" && c.String("html") == "" {
			if output == "json" {
				writeErr = r.Observer.Finish(rep)
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
		}{{"report", rep.WriteJSON}, {"junit", rep.WriteJUnit}, {"html", htmlWriter(rep)}} {
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

// isTerminal reports whether a command's stdin, stdout or stderr is a
// terminal (for progress drawn in place, and questions).
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// terminalWidth is the width of the terminal w is (0 when unknown).
func terminalWidth(w io.Writer) int {
	file, ok := w.(*os.File)
	if !ok {
		return 0
	}
	width, _, err := term.GetSize(int(file.Fd()))
	if err != nil {
		return 0
	}
	return width
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
	if err := writeHTML(c, c.String("html"), rep); err != nil {
		return err
	}
	path := c.String("report")
	if path == "" {
		if isTerminal(c.App.Writer) {
			// A person reads the summary; the JSON report is for files
			// and pipes.
			fmt.Fprintf(c.App.ErrWriter, "(the JSON report goes to --report FILE, or to stdout when it is not a terminal)\n")
			return nil
		}
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
