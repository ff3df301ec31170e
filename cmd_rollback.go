package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/runner"
)

// rollbackOptions are iotjobs rollback's arguments, parsed and checked
// before any hub is contacted.
type rollbackOptions struct {
	reportFile string
	steps      []string
	out, junit string
}

func rollbackCmd() *cli.Command {
	return &cli.Command{
		Name:        "rollback",
		Description: "Example:\n   iotjobs rollback --report report.json plan.yaml",
		Usage:       "undo a finished run from its report: restore the twin values its twin steps replaced (etag-guarded) and call its method steps' compensating methods",
		ArgsUsage:   "REPORT.json",
		Flags: []cli.Flag{hubFlag(), caFlag(), dataFlag(),
			&cli.StringSliceFlag{Name: "step", Usage: "roll back only this step (repeatable); default: every step that changed something, the latest first"},
			&cli.StringFlag{Name: "report", Usage: "write the report with each step's rollback section to FILE instead of stdout"},
			&cli.StringFlag{Name: "junit", Usage: "also write the rollback's outcome as JUnit XML to FILE"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("rollback: name exactly one report file (the JSON that apply --report wrote)")
			}
			o := rollbackOptions{reportFile: c.Args().First(), steps: c.StringSlice("step"), out: c.String("report"), junit: c.String("junit")}
			rep, err := loadReport(o.reportFile)
			if err != nil {
				return err
			}
			if rep.DryRun {
				return usagef("rollback: %s is a dry-run's report; nothing was applied, so there is nothing to undo", o.reportFile)
			}
			for _, name := range o.steps {
				if !hasStep(rep, name) {
					return usagef("rollback: --step %q: the report has no such step", name)
				}
			}
			t, err := openTarget(c)
			if err != nil {
				return err
			}
			defer t.Close()
			r := &runner.Runner{Hub: t.client, Clock: clock.Real(), HubName: t.name,
				Observer: &runner.TextObserver{W: c.App.ErrWriter, Clock: clock.Real(), TTY: isTerminal(c.App.ErrWriter)}}
			got, runErr := r.RollBack(c.Context, rep, o.steps)
			if got == nil {
				return failedError{runErr.Error()}
			}
			if o.junit != "" {
				if err := writeFile(o.junit, got.WriteJUnit); err != nil {
					return errors.Join(runErr, fmt.Errorf("write JUnit report: %w", err))
				}
			}
			if o.out == "" {
				if err := got.WriteJSON(c.App.Writer); err != nil {
					return errors.Join(runErr, err)
				}
			} else if err := writeFile(o.out, got.WriteJSON); err != nil {
				return errors.Join(runErr, fmt.Errorf("write report: %w", err))
			}
			return runErr
		},
	}
}

// loadReport reads a run's JSON report.
func loadReport(path string) (*runner.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("read report: %w", err)
	}
	var rep runner.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, usagef("report %s is not an iotjobs JSON report: %v", path, err)
	}
	if rep.ReportVersion != runner.ReportVersion {
		return nil, usagef("report %s has reportVersion %d; this iotjobs reads version %d", path, rep.ReportVersion, runner.ReportVersion)
	}
	return &rep, nil
}

func hasStep(rep *runner.Report, name string) bool {
	for _, s := range rep.Steps {
		if s.Name == name {
			return true
		}
	}
	return false
}
