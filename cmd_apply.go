// The apply command: validate, dry-run, execute and monitor a plan, and
// write its report.

package main

import (
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

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
)

func applyCmd() *cli.Command {
	return &cli.Command{
		Name:        "apply",
		Description: "Examples:\n   iotjobs apply --fleet examples/fleet.yaml examples/lock-door.yaml\n   iotjobs apply --hub \"$CS\" --report report.json --junit junit.xml plan.yaml\n   iotjobs apply --dry-run plan.yaml",
		Usage:       "run a plan on a hub, monitor every step, and write the JSON report",
		ArgsUsage:   "PLAN",
		Flags: append([]cli.Flag{hubFlag, caFlag, dataFlag, brokerFlag,
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
			// Progress for people on stderr, or as JSON lines on stdout,
			// the report the last.
			var obs runner.Observer = &runner.TextObserver{W: c.App.ErrWriter, Clock: clock.Real(), TTY: isTerminal(c.App.ErrWriter)}
			if output == "json" {
				obs = &runner.JSONObserver{W: c.App.Writer, Clock: clock.Real()}
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
					dry, _ = runner.MergeDryRun(pv, dry)
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
						dryErr = &runner.StepFailedError{Steps: dry.FailedSteps()}
					}
					return finishApply(c, dry, obs, output, dryErr)
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
			r := &runner.Runner{Hub: t.client, Clock: clock.Real(), HubName: t.name, Observer: obs}
			if c.Bool("watch") {
				return watch(c, r, p, output)
			}
			rep, runErr := r.Apply(c.Context, p)
			return finishApply(c, rep, obs, output, runErr)
		},
	}
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
func watch(c *cli.Context, r *runner.Runner, p *plan.Plan, output string) error {
	var writeErr error
	err := r.Watch(c.Context, p, func(rep *runner.Report) {
		if writeErr != nil {
			return
		}
		if c.String("report") == "" && c.String("junit") == "" {
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
