// The plan and check commands: what a plan would do (its preview merged
// with a dry-run), and whether a fleet complies with it.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
)

func planCmd() *cli.Command {
	return &cli.Command{
		Name:        "plan",
		Description: "Examples:\n   iotjobs plan --fleet examples/fleet.yaml examples/lock-door.yaml\n   iotjobs plan --hub \"$CS\" --rate 10 --out saved.json plan.yaml",
		Usage:       "dry-run a plan: the devices each step matches, the twin diff, the timeline and a pre-flight, read without changing anything",
		ArgsUsage:   "PLAN",
		Flags: append([]cli.Flag{hubFlag(), caFlag(), dataFlag(), policyFlag(), overridePolicyFlag(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text, json or markdown (a pull-request comment)"},
			&cli.StringFlag{Name: "fleet", Usage: "fleet file: plan against these simulated devices (in memory) instead of a hub's"},
			&cli.Float64Flag{Name: "rate", Usage: "the hub's device operations per second, for the pre-flight (e.g. 10 for an Azure S1 hub)"},
			&cli.StringFlag{Name: "report", Usage: "also write the dry-run report (JSON, dryRun: true) to FILE"},
			htmlFlag("the dry-run's report"),
			&cli.StringFlag{Name: "html-url", Usage: "with -o markdown: link the comment to the HTML report at URL (e.g. the CI artifact of --html)"},
			&cli.BoolFlag{Name: "no-simulate", Usage: "only read the hub (matches, twin diff, timeline, pre-flight); do not play the plan against simulated devices"},
			&cli.BoolFlag{Name: "detailed-exitcode", Usage: "exit 0 when the plan would change nothing, 4 when it would (1 still when a step would fail)"},
			&cli.StringFlag{Name: "out", Usage: "save the plan with the devices each step matches and their twin etags to FILE; apply FILE then acts on exactly those devices, and refuses if any changed"},
		}, varFlags()...),
		Action: func(c *cli.Context) error {
			o, err := parsePlanOptions(c)
			if err != nil {
				return err
			}
			return o.run(c)
		},
	}
}

// planClock is when a dry-run starts. Golden tests fix it: a window in
// a zone with summer time plays differently in July than in January.
var planClock clock.Clock = clock.Real()

// planOptions are plan's arguments, parsed and checked before any work.
type planOptions struct {
	path             string
	output           string // text, json or markdown
	fleet            string
	rate             float64
	report, out      string
	html, htmlURL    string
	noSimulate       bool
	detailedExitCode bool
}

func parsePlanOptions(c *cli.Context) (*planOptions, error) {
	if c.NArg() != 1 {
		return nil, usagef("plan: name exactly one plan file")
	}
	o := &planOptions{path: c.Args().First(), fleet: c.String("fleet"), rate: c.Float64("rate"),
		report: c.String("report"), out: c.String("out"), html: c.String("html"), htmlURL: c.String("html-url"), noSimulate: c.Bool("no-simulate"), detailedExitCode: c.Bool("detailed-exitcode")}
	switch o.output = c.String("output"); o.output {
	case "text", "json", "markdown":
	default:
		return nil, usagef("plan: --output %q: use text, json or markdown", o.output)
	}
	if o.htmlURL != "" && o.output != "markdown" {
		return nil, usagef("plan: --html-url links the Markdown comment to the HTML report: use it with -o markdown")
	}
	if o.rate < 0 {
		return nil, usagef("plan: --rate %g: give the hub's device operations per second (0: unknown)", o.rate)
	}
	if err := checkOverrideFlag(c); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *planOptions) run(c *cli.Context) error {
	p, saved, err := loadAnyPlan(c, o.path)
	if err != nil {
		return err
	}
	pol, err := policyFor(c, o.path)
	if err != nil {
		return err
	}
	h, err := openDryRunHub(c, o.fleet)
	if err != nil {
		return err
	}
	defer h.close()
	r := &runner.Runner{Hub: h.client, Clock: planClock, HubName: h.name}
	rep, runErr := r.Preview(c.Context, p, runner.PreviewOptions{OpsPerSecond: o.rate})
	if rep == nil {
		return runErr
	}
	if o.noSimulate {
		// Read only: no outcome is predicted, so the report claims none
		// (status "planned", or "failed" by a pre-flight).
		against := h.name // "fleet FILE"
		if h.current != nil {
			against = hubAgainst(h.name)
		}
		rep.Simulation = &runner.Simulation{Against: against, Assumptions: []string{}}
		if o.rate > 0 {
			rep.Simulation.Assumptions = append(rep.Simulation.Assumptions,
				fmt.Sprintf("the hub runs %g device operations per second (--rate): the pre-flight checks each step against it", o.rate))
		}
	} else {
		// The plan played in virtual time against a simulation of
		// the devices: the fleet file's, or the hub's twins with
		// devices that keep their connection state there.
		sim, err := simulateRun(c, p, h.client, h.current, h.name)
		if err != nil {
			return err
		}
		rep, runErr = runner.MergeDryRun(rep, sim)
	}
	pc, err := planPolicy(c, pol, p, saved, h.client)
	if err != nil {
		return err
	}
	if pc != nil {
		rep.Policy = pc.report
		runErr = errors.Join(runErr, pc.err())
	}
	if failed, ok := errors.AsType[*runner.StepFailedError](runErr); ok {
		// The details are in what this command shows, which is a report
		// only with --report or -o json.
		failed.Predicted = true
		switch {
		case o.report != "":
			failed.See = o.report
		case o.output != "json":
			failed.See = "the dry-run's output"
		}
	}
	if o.out != "" {
		var src []byte
		if saved != nil {
			src = []byte(saved.Source)
		} else if src, err = os.ReadFile(o.path); err != nil {
			return err
		}
		sp, err := r.Save(c.Context, p, src)
		if err != nil {
			return errors.Join(runErr, err)
		}
		if err := writeFile(o.out, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(sp)
		}); err != nil {
			return errors.Join(runErr, fmt.Errorf("write saved plan: %w", err))
		}
		fmt.Fprintf(c.App.ErrWriter, "saved plan written to %s; iotjobs apply %s acts on exactly these devices\n", o.out, o.out)
	}
	if o.report != "" {
		if err := writeFile(o.report, rep.WriteJSON); err != nil {
			return errors.Join(runErr, fmt.Errorf("write report: %w", err))
		}
	}
	if err := writeHTML(c, o.html, rep); err != nil {
		return errors.Join(runErr, err)
	}
	switch o.output {
	case "json":
		if err := rep.WriteJSON(c.App.Writer); err != nil {
			return errors.Join(runErr, err)
		}
	case "markdown":
		if err := rep.WriteMarkdown(c.App.Writer, runner.MarkdownOptions{HTMLURL: o.htmlURL}); err != nil {
			return errors.Join(runErr, err)
		}
	default:
		rep.WritePreview(c.App.Writer)
	}
	if runErr == nil && o.detailedExitCode {
		if n := rep.Changes(); n > 0 {
			return changesError{n}
		}
	}
	return runErr
}

// changesError is plan --detailed-exitcode's answer when the plan would
// make changes (exit 4).
type changesError struct{ devices int }

func (e changesError) Error() string {
	return fmt.Sprintf("the plan would act on %d devices (exit 4: changes)", e.devices)
}

// simulateRun plays p in virtual time against simulated devices: those of
// --fleet (starting from their twins on current, when not nil), or a copy
// of the twins the plan's steps match on src (read with queries only),
// whose devices keep their connection state there: the online ones answer
// every method with 200 and report desired properties back at once, the
// offline ones stay offline. Nothing touches the hub. The report is a
// dry-run's: it names what it was played against and what it assumed,
// and its job ids are the simulation's (runner.SimulatedJobPrefix).
func simulateRun(c *cli.Context, p *plan.Plan, src, current hub.Client, name string) (*runner.Report, error) {
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	vclk := clock.NewVirtual(planClock.Now().UTC())
	d := dryRun{fleet: c.String("fleet"), hubName: name, current: current != nil, rate: c.Float64("rate")}
	var e *engine.Engine
	var closeHub func()
	var err error
	if d.fleet != "" {
		e, closeHub, err = fleetHub(ctx, io.Discard, d.fleet, vclk, current)
	} else {
		e, closeHub, d.snap, err = snapshotHub(ctx, src, p, vclk)
	}
	if err != nil {
		return nil, fmt.Errorf("dry-run: %w", err)
	}
	defer closeHub()
	// A fleet's devices are the file's wherever their twins start from:
	// the report's hub names the file, not a hub they never ran on.
	hubName := name
	if d.fleet != "" {
		hubName = d.against()
	}
	r := &runner.Runner{Hub: e, Clock: vclk, HubName: hubName, JobIDPrefix: runner.SimulatedJobPrefix}
	rep, err := r.ApplyVirtual(ctx, p, vclk.Now().Add(runner.DefaultHorizon))
	if rep == nil {
		return nil, fmt.Errorf("dry-run: %w", err)
	}
	// A failing step is in the report; the dry-run's own verdict comes
	// from it (runner.MergeDryRun).
	rep.DryRun = true
	rep.Simulation = &runner.Simulation{Against: d.against(), Simulated: true, Assumptions: d.assumptions(p)}
	return rep, nil
}

func checkCmd() *cli.Command {
	return &cli.Command{
		Name:        "check",
		Description: "Example:\n   iotjobs check --hub \"$CS\" plan.yaml",
		Usage:       "drift: the devices whose twins do not comply with the plan's twin steps (exit 0 compliant, 1 drift)",
		ArgsUsage:   "PLAN",
		Flags: append([]cli.Flag{hubFlag(), caFlag(), dataFlag(), jsonFlag(),
			&cli.StringFlag{Name: "fleet", Usage: "fleet file: check these simulated devices (in memory) instead of a hub's"},
		}, varFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("check: name exactly one plan file")
			}
			output, err := outputFormat(c)
			if err != nil {
				return err
			}
			p, _, err := loadAnyPlan(c, c.Args().First())
			if err != nil {
				return err
			}
			h, err := openDryRunHub(c, c.String("fleet"))
			if err != nil {
				return err
			}
			defer h.close()
			client := h.client
			res, err := (&runner.Runner{Hub: client, Clock: clock.Real()}).Check(c.Context, p)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				res.WriteText(c.App.Writer)
			}
			if !res.Compliant {
				n := 0
				for _, s := range res.Steps {
					n += len(s.Drifting)
				}
				return failedError{fmt.Sprintf("%d devices drift from plan %s", n, p.Name)}
			}
			return nil
		},
	}
}
