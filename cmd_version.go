// The version command, and the check that every command named exists.

package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/plan/diag"
)

// version is the module's version and the VCS revision it was built from
// (with "+dirty" for uncommitted changes), from the build info.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build info)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	// A build in a repository has a pseudo-version holding the revision
	// already (and +dirty); name it only when it does not.
	if rev != "" && !strings.Contains(v, rev) {
		v += " " + rev
		if dirty {
			v += "+dirty"
		}
	}
	extra := bi.GoVersion
	if at != "" {
		extra = at + ", " + extra
	}
	return v + " (" + extra + ")"
}

func versionCmd() *cli.Command {
	return &cli.Command{
		Name:        "version",
		Usage:       "print iotjobs's version: the module version and the revision it was built from",
		Description: "Example:\n   iotjobs version",
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return usagef("version: takes no arguments")
			}
			_, err := fmt.Fprintf(c.App.Writer, "iotjobs %s\n", version())
			return err
		},
	}
}

// checkCommands refuses a command name that does not exist (exit 2),
// suggesting the nearest, before urfave/cli answers "No help topic" for
// it: args are the command line, program name first.
func checkCommands(app *cli.App, args []string) error {
	cmds, path := app.Commands, "iotjobs"
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") || len(cmds) == 0 {
			return nil
		}
		var next *cli.Command
		var names []string
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
			names = append(names, c.Names()...)
		}
		if a == "help" || a == "h" {
			continue // help NAME: NAME is checked as a command of this level
		}
		if next == nil {
			hint := ""
			if m := diag.Suggest(a, names); m != "" {
				hint = fmt.Sprintf("; did you mean %q?", m)
			}
			where := strings.TrimPrefix(strings.TrimPrefix(path, "iotjobs"), " ")
			if where != "" {
				where += ": "
			}
			return usagef("%sunknown command %q%s (%s --help lists them)", where, a, hint, path)
		}
		cmds, path = next.Subcommands, path+" "+next.Name
	}
	return nil
}
