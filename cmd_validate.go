// The validate command, and loading plan files and saved plans for every
// command that takes one.

package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/plan/diag"
	"github.com/iotjobs/iotjobs/runner"
)

// loadPlan parses and validates a plan, rendering diagnostics to stderr.
func loadPlan(c *cli.Context, path string) (*plan.Plan, error) {
	p, _, err := loadAnyPlan(c, path)
	return p, err
}

// loadAnyPlan loads a plan file with the values of --var and --var-file,
// or a saved plan (iotjobs plan --out), which it returns too: its plan is
// parsed from the source and the values it saved.
func loadAnyPlan(c *cli.Context, path string) (*plan.Plan, *runner.SavedPlan, error) {
	vars, err := planVars(c)
	if err != nil {
		return nil, nil, err
	}
	// A saved plan is a JSON object with savedPlanVersion; a plan file is
	// YAML, which is no such object even when written as JSON.
	var probe struct {
		Version *int `json:"savedPlanVersion"`
	}
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &probe) == nil && probe.Version != nil {
		if vars != nil {
			return nil, nil, usagef("%s: %s is a saved plan, which keeps the variable values it was planned with; --var and --var-file go to iotjobs plan --out", c.Command.FullName(), path)
		}
		var sp runner.SavedPlan
		if err := json.Unmarshal(b, &sp); err != nil {
			return nil, nil, usagef("saved plan %s: %v", path, err)
		}
		if sp.Version != runner.SavedPlanVersion {
			return nil, nil, usagef("saved plan %s has version %d; this iotjobs reads version %d", path, sp.Version, runner.SavedPlanVersion)
		}
		p, diags := plan.Parse(sp.File, []byte(sp.Source), plan.WithVars(sp.Vars))
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
	p, err := loadPlanFile(c, path, vars)
	return p, nil, err
}

func loadPlanFile(c *cli.Context, path string, vars map[string]string) (*plan.Plan, error) {
	p, diags := plan.Load(path, plan.WithVars(vars))
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
		Name:        "validate",
		Description: "Example:\n   iotjobs validate examples/*.yaml",
		Usage:       "check plans; diagnostics as FILE:LINE:COL: message",
		ArgsUsage:   "PLAN...",
		Flags:       append([]cli.Flag{jsonFlag(), policyFlag()}, varFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("validate: name at least one plan file")
			}
			output, err := outputFormat(c)
			if err != nil {
				return err
			}
			vars, all, err := varValues(c)
			if err != nil {
				return err
			}
			sources := varFileSource(c)
			// all holds the --var-file's problems: with errors there, the
			// plans are not checked without its values.
			if !all.HasErrors() {
				for _, path := range c.Args().Slice() {
					p, diags := plan.Load(path, plan.WithVars(vars))
					all.Extend(diags)
					sources[path], _ = os.ReadFile(path)
					if p == nil {
						continue
					}
					pol, err := policyFor(c, path)
					if err != nil {
						return err
					}
					all.Extend(validatePolicy(c, pol, p, output))
				}
			}
			all.Sort()
			if output == "json" {
				diag.WriteJSON(c.App.Writer, all)
			} else {
				diag.WriteText(c.App.ErrWriter, all, sources)
			}
			if all.HasErrors() {
				return all
			}
			if output != "json" {
				fmt.Fprintf(c.App.Writer, "%d plan(s) valid\n", c.NArg())
			}
			return nil
		},
	}
}
