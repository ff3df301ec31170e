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
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/engine"
	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/runner"
)

func planCmd() *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "dry-run a plan: the devices each step matches, the twin diff, the timeline and a pre-flight, read without changing anything",
		ArgsUsage: "PLAN",
		Flags: []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag,
			&cli.StringFlag{Name: "fleet", Usage: "fleet file: plan against these simulated devices (in memory) instead of a hub's"},
			&cli.Float64Flag{Name: "rate", Usage: "the hub's device operations per second, for the pre-flight (e.g. 10 for an Azure S1 hub)"},
			&cli.StringFlag{Name: "report", Usage: "also write the dry-run report (JSON, dryRun: true) to FILE"},
			&cli.BoolFlag{Name: "no-simulate", Usage: "only read the hub (matches, twin diff, timeline, pre-flight); do not play the plan against simulated devices"},
			&cli.BoolFlag{Name: "detailed-exitcode", Usage: "exit 0 when the plan would change nothing, 4 when it would (1 still when a step would fail)"},
			&cli.StringFlag{Name: "out", Usage: "save the plan with the devices each step matches and their twin etags to FILE; apply FILE then acts on exactly those devices, and refuses if any changed"},
		},
		Action: func(c *cli.Context) error {
			o, err := parsePlanOptions(c)
			if err != nil {
				return err
			}
			return o.run(c)
		},
	}
}

// planOptions are plan's arguments, parsed and checked before any work.
type planOptions struct {
	path             string
	output           string // text or json
	fleet            string
	rate             float64
	report, out      string
	noSimulate       bool
	detailedExitCode bool
}

func parsePlanOptions(c *cli.Context) (*planOptions, error) {
	if c.NArg() != 1 {
		return nil, usagef("plan: name exactly one plan file")
	}
	o := &planOptions{path: c.Args().First(), fleet: c.String("fleet"), rate: c.Float64("rate"),
		report: c.String("report"), out: c.String("out"), noSimulate: c.Bool("no-simulate"), detailedExitCode: c.Bool("detailed-exitcode")}
	var err error
	if o.output, err = outputFormat(c); err != nil {
		return nil, err
	}
	if o.rate < 0 {
		return nil, usagef("plan: --rate %g: give the hub's device operations per second (0: unknown)", o.rate)
	}
	return o, nil
}

func (o *planOptions) run(c *cli.Context) error {
	p, saved, err := loadAnyPlan(c, o.path)
	if err != nil {
		return err
	}
	h, err := openDryRunHub(c, o.fleet)
	if err != nil {
		return err
	}
	defer h.close()
	r := &runner.Runner{Hub: h.client, Clock: clock.Real(), HubName: h.name}
	rep, runErr := r.Preview(c.Context, p, runner.PreviewOptions{OpsPerSecond: o.rate})
	if rep == nil {
		return runErr
	}
	if !o.noSimulate {
		// The plan played in virtual time against a simulation of
		// the devices: the fleet file's, or the hub's twins with
		// devices that answer 200 and converge at once.
		sim, err := simulateRun(c, p, h.client, h.current, h.name)
		if err != nil {
			return err
		}
		rep, runErr = mergeDryRun(rep, sim)
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
	if o.output == "json" {
		if err := rep.WriteJSON(c.App.Writer); err != nil {
			return errors.Join(runErr, err)
		}
	} else {
		writePreview(c.App.Writer, rep)
	}
	if runErr == nil && o.detailedExitCode {
		if n := changes(rep); n > 0 {
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

// changes counts what a plan would do, by its dry-run report: the twins
// its twin steps would patch (not those that comply already) and the
// devices its method steps would call.
func changes(rep *runner.Report) int {
	n := 0
	for _, s := range rep.Steps {
		if pv := s.Preview; pv != nil {
			n += pv.Matched
			if s.Type == string(hub.JobUpdateTwin) {
				n -= pv.Noop
			}
		}
	}
	return n
}

// simulateRun plays p in virtual time against simulated devices: those of
// --fleet (starting from their twins on current, when not nil), or a copy
// of the twins the plan's steps match on src (read with queries only),
// whose devices answer every method with 200 and report desired
// properties back at once. Nothing touches the hub.
func simulateRun(c *cli.Context, p *plan.Plan, src, current hub.Client, name string) (*runner.Report, error) {
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	vclk := clock.NewVirtual(time.Now().UTC())
	var e *engine.Engine
	var closeHub func()
	var err error
	if f := c.String("fleet"); f != "" {
		e, closeHub, err = fleetHub(ctx, io.Discard, f, vclk, current)
	} else {
		e, closeHub, err = snapshotHub(ctx, src, p, vclk)
	}
	if err != nil {
		return nil, fmt.Errorf("dry-run: %w", err)
	}
	defer closeHub()
	rep, err := (&runner.Runner{Hub: e, Clock: vclk, HubName: name}).ApplyVirtual(ctx, p, vclk.Now().Add(runner.DefaultHorizon))
	if rep == nil {
		return nil, fmt.Errorf("dry-run: %w", err)
	}
	// A failing step is in the report; the dry-run's own verdict comes
	// from it (mergeDryRun).
	return rep, nil
}

// mergeDryRun is the dry-run report: the simulated run's, each step with
// what was read from the hub (its preview), failed where the pre-flight
// fails.
func mergeDryRun(preview, sim *runner.Report) (*runner.Report, error) {
	sim.DryRun = true
	sim.Hub = preview.Hub
	for i, s := range sim.Steps {
		if i < len(preview.Steps) && preview.Steps[i].Name == s.Name {
			s.Preview = preview.Steps[i].Preview
			if pf := s.Preview.Preflight; pf != nil && !pf.OK {
				s.Status, s.Reason = runner.StepFailed, pf.Message
			}
		}
	}
	if failed := sim.FailedSteps(); len(failed) > 0 {
		sim.Status = runner.StatusFailed
		return sim, &runner.StepFailedError{Steps: failed}
	}
	sim.Status = runner.StatusSucceeded
	return sim, nil
}

// writePreview prints a dry-run report for people.
func writePreview(w io.Writer, rep *runner.Report) {
	fmt.Fprintf(w, "plan %s (dry run against %s): %s\n", rep.Plan.Name, rep.Hub, rep.Status)
	for _, s := range rep.Steps {
		pv := s.Preview
		if pv == nil {
			continue
		}
		fmt.Fprintf(w, "\nstep %s (%s): %d devices match %s", s.Name, s.Type, pv.Matched, s.QueryCondition)
		if len(pv.Sample) > 0 {
			more := ""
			if pv.Matched > len(pv.Sample) {
				more = ", …"
			}
			fmt.Fprintf(w, " (%s%s)", strings.Join(pv.Sample, ", "), more)
		}
		fmt.Fprintln(w)
		for _, d := range pv.TwinDiff {
			to, _ := json.Marshal(d.To)
			var from []string
			for _, f := range d.From {
				v, _ := json.Marshal(f.Value)
				if f.Value == "undefined" {
					v = []byte("undefined")
				}
				from = append(from, fmt.Sprintf("%d from %s", f.Count, v))
			}
			fmt.Fprintf(w, "  %s → %s: %d change", d.Path, to, d.Change)
			if len(from) > 0 {
				fmt.Fprintf(w, " (%s)", strings.Join(from, ", "))
			}
			fmt.Fprintf(w, ", %d comply\n", d.Comply)
		}
		if s.Type == string(hub.JobUpdateTwin) {
			fmt.Fprintf(w, "  %d twins comply with the whole patch already\n", pv.Noop)
		}
		switch {
		case len(pv.After) > 0:
			fmt.Fprintf(w, "  starts after %s\n", strings.Join(pv.After, ", "))
		default:
			fmt.Fprintf(w, "  starts %s\n", pv.Timeline.Start.Format("2006-01-02 15:04 MST"))
		}
		if pv.OnlyPassed {
			fmt.Fprintf(w, "  only on the devices that pass %s (the matched count is an upper bound)\n", strings.Join(pv.After, ", "))
		}
		for i, b := range pv.Timeline.Batches {
			switch {
			case i < len(s.Batches):
				// As played: each batch ends with its verify and analysis
				// before the pause and the next begin.
				played := s.Batches[i]
				fmt.Fprintf(w, "  batch %d: %d devices", i+1, played.Devices)
				if played.StartTime != nil {
					fmt.Fprintf(w, ", starts %s", played.StartTime.Format("2006-01-02 15:04:05 MST"))
				}
				if played.EndTime != nil {
					fmt.Fprintf(w, ", ends %s", played.EndTime.Format("15:04:05 MST"))
				}
				fmt.Fprintln(w)
			case s.Status != "planned":
				fmt.Fprintf(w, "  batch %d: %d devices, not started\n", i+1, b.Devices)
			default:
				fmt.Fprintf(w, "  batch %d: %d devices, %s at the earliest\n", i+1, b.Devices, b.Start.Format("2006-01-02 15:04 MST"))
			}
		}
		if n := len(pv.Timeline.Occurrences); n > 0 {
			fmt.Fprintf(w, "  cron: %d occurrences in the next 7 days, first %s\n", n, pv.Timeline.Occurrences[0].Format("2006-01-02 15:04 MST"))
		}
		writeSafetyNet(w, s)
		if s.Status != "planned" {
			fmt.Fprintf(w, "  simulated: %s — %s", s.Status, s.Summary)
			if s.EndTime != nil {
				fmt.Fprintf(w, ", ends %s", s.EndTime.Format("2006-01-02 15:04 MST"))
			}
			fmt.Fprintln(w)
			if s.Reason != "" {
				fmt.Fprintf(w, "    %s\n", s.Reason)
			}
			for _, a := range s.Analysis {
				if !a.Pass && !strings.Contains(s.Reason, a.Reason) {
					fmt.Fprintf(w, "    %s\n", a.Reason)
				}
			}
			if rb := s.Rollback; rb != nil && rb.Trigger != "" {
				fmt.Fprintf(w, "  simulated rollback (%s): %d restored, %d conflicts, %d failed\n", rb.Trigger, rb.Restored, rb.Conflicts, rb.Failed)
			}
		}
		if n := len(s.Occurrences); n > 0 {
			fmt.Fprintf(w, "  simulated runs in the next 7 days (%d):\n", n)
			for i, o := range s.Occurrences {
				if i == 10 {
					fmt.Fprintf(w, "    … and %d more (--report lists all)\n", n-10)
					break
				}
				fmt.Fprintf(w, "    %s: %s — %d succeed, %d fail, %d no-op", o.ScheduledAt.Format("2006-01-02 15:04 MST"), o.Status, o.Succeeded, o.Failed, o.Noop)
				if o.EndTime != nil {
					fmt.Fprintf(w, ", ends %s", o.EndTime.Format("15:04 MST"))
				}
				if o.Reason != "" && o.Status != string(hub.JobCompleted) {
					fmt.Fprintf(w, " (%s)", o.Reason)
				}
				fmt.Fprintln(w)
			}
		}
		if pf := pv.Preflight; pf != nil {
			verdict := "ok"
			if !pf.OK {
				verdict = "FAILS"
			}
			fmt.Fprintf(w, "  pre-flight %s: %s\n", verdict, pf.Message)
		}
	}
}

// writeSafetyNet prints what undoes a step, for the reviewer: per path
// a twin step sets, the values a rollback would put back and on how many
// devices (those it would change), or a method step's compensating method.
func writeSafetyNet(w io.Writer, s *runner.StepReport) {
	rb := s.Rollback
	if rb == nil || len(rb.On) == 0 {
		return
	}
	on := strings.Join(rb.On, ", ")
	if rb.Method != nil {
		fmt.Fprintf(w, "  rollback on %s: calls %s on the devices whose call succeeded\n", on, rb.Method.Name)
		return
	}
	fmt.Fprintf(w, "  rollback on %s restores, etag-guarded:\n", on)
	for _, d := range s.Preview.TwinDiff {
		var parts []string
		for _, f := range d.From {
			if f.Value == "undefined" {
				parts = append(parts, fmt.Sprintf("deletes it on %d", f.Count))
				continue
			}
			v, _ := json.Marshal(f.Value)
			parts = append(parts, fmt.Sprintf("%s on %d", v, f.Count))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "    %s: %s\n", d.Path, strings.Join(parts, ", "))
		}
	}
}

func checkCmd() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "drift: the devices whose twins do not comply with the plan's twin steps (exit 0 compliant, 1 drift)",
		ArgsUsage: "PLAN",
		Flags: []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag,
			&cli.StringFlag{Name: "fleet", Usage: "fleet file: check these simulated devices (in memory) instead of a hub's"},
		},
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
				writeCompliance(c.App.Writer, res)
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

// writeCompliance prints a drift check for people.
func writeCompliance(w io.Writer, res *runner.Compliance) {
	verdict := "compliant"
	if !res.Compliant {
		verdict = "drift"
	}
	fmt.Fprintf(w, "plan %s: %s\n", res.Plan.Name, verdict)
	for _, s := range res.Steps {
		fmt.Fprintf(w, "  step %s: %d of %d devices drift\n", s.Name, len(s.Drifting), s.Matched)
		for i, d := range s.Drifting {
			if i == 20 {
				fmt.Fprintf(w, "    … and %d more (-o json lists all)\n", len(s.Drifting)-20)
				break
			}
			why := strings.Join(d.Paths, ", ")
			if d.FailsVerify {
				why = strings.TrimPrefix(why+", fails verify", ", ")
			}
			fmt.Fprintf(w, "    %s: %s\n", d.DeviceID, why)
		}
	}
}
