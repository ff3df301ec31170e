// --var and --var-file: values for a plan's vars, for every command that
// loads a plan (README "Variables").

package main

import (
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/plan"
	"github.com/iotjobs/iotjobs/plan/diag"
)

// varFlags are --var and --var-file. They are made per command because a
// --var's value accumulates in its flag.
func varFlags() []cli.Flag {
	return []cli.Flag{
		&cli.GenericFlag{Name: "var", Value: &varList{}, Usage: "give a variable the plan declares (under vars:) a value, `NAME=VALUE`, taken as a string; repeatable: a later --var wins, and any --var over --var-file"},
		&cli.StringFlag{Name: "var-file", Usage: "set the plan's variables from `FILE`, YAML with NAME: VALUE per line (strings, numbers, booleans)"},
	}
}

// varList holds the --var flags in the order given. A StringSliceFlag
// would split each value at commas, and a value may hold some.
type varList struct{ vals []string }

func (v *varList) Set(s string) error {
	v.vals = append(v.vals, s)
	return nil
}

// String is empty so that --help shows no default.
func (v *varList) String() string { return "" }

// planVars is [varValues] with the --var-file's diagnostics rendered on
// stderr, for the commands whose diagnostics are text.
func planVars(c *cli.Context) (map[string]string, error) {
	vars, diags, err := varValues(c)
	if len(diags) > 0 {
		diag.WriteText(c.App.ErrWriter, diags, varFileSource(c))
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return vars, err
}

// varFileSource is the --var-file's text by its name, for rendering its
// diagnostics.
func varFileSource(c *cli.Context) map[string][]byte {
	path := c.String("var-file")
	if path == "" {
		return map[string][]byte{}
	}
	src, _ := os.ReadFile(path)
	return map[string][]byte{path: src}
}

// varValues merges --var-file and the --var flags into the values for
// plan.WithVars (nil when neither is given). A malformed --var is a usage
// error; the problems of the file are its diagnostics.
func varValues(c *cli.Context) (map[string]string, diag.Diagnostics, error) {
	vars := map[string]string{}
	if path := c.String("var-file"); path != "" {
		fromFile, diags := plan.LoadVarFile(path)
		if diags.HasErrors() {
			return nil, diags, nil
		}
		vars = fromFile
	}
	var given []string
	if v, ok := c.Generic("var").(*varList); ok {
		given = v.vals
	}
	for _, kv := range given {
		name, value, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return nil, nil, usagef("%s: --var %q: write NAME=VALUE, e.g. --var version=2.4.1", c.Command.FullName(), kv)
		case !plan.ValidVarName(name):
			return nil, nil, usagef("%s: --var %q: %q is not a variable name: use letters, digits, '_' and '-', starting with a letter", c.Command.FullName(), kv, name)
		}
		vars[name] = value
	}
	if len(vars) == 0 {
		return nil, nil, nil
	}
	return vars, nil, nil
}
