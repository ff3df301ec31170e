// The schema command: the JSON Schemas of the files iotjobs reads, for
// editors and other tools.

package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/plan/diag"
	"github.com/iotjobs/iotjobs/plan/policy"
	"github.com/iotjobs/iotjobs/runner"
)

// schemas are the schemas the command prints, by name.
var schemas = map[string]func() ([]byte, error){
	"plan":       plan.Schema,
	"policy":     policy.Schema,
	"saved-plan": runner.SavedPlanSchema,
}

func schemaCmd() *cli.Command {
	names := slices.Sorted(maps.Keys(schemas))
	return &cli.Command{
		Name:      "schema",
		Usage:     "print the JSON Schema of plan files, policy files or saved plans, for editors and other tools",
		ArgsUsage: strings.Join(names, "|"),
		Description: "The schemas are committed as docs/plan.schema.json (reference: docs/plan.md),\n" +
			"docs/policy.schema.json (docs/policy.md) and docs/saved-plan.schema.json (plan --out's JSON,\n" +
			"which OPA/conftest policies read: examples/policy/README.md).\n" +
			"A plan whose first line is\n" +
			"   # yaml-language-server: $schema=PATH/TO/plan.schema.json\n" +
			"is completed and checked as you type by editors with the YAML language server.\n\n" +
			"Examples:\n" +
			"   iotjobs schema plan\n" +
			"   iotjobs schema plan > docs/plan.schema.json\n" +
			"   iotjobs schema saved-plan > docs/saved-plan.schema.json",
		Action: func(c *cli.Context) error {
			known := strings.Join(names, ", ")
			if c.NArg() != 1 {
				return usagef("schema: name one schema: %s", known)
			}
			name := c.Args().First()
			gen, ok := schemas[name]
			if !ok {
				hint := ""
				if m := diag.Suggest(name, names); m != "" {
					hint = fmt.Sprintf("did you mean %q? ", m)
				}
				return usagef("schema: unknown schema %q; %sthe schemas are: %s", name, hint, known)
			}
			b, err := gen()
			if err != nil {
				return err
			}
			_, err = c.App.Writer.Write(b)
			return err
		},
	}
}
