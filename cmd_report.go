package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/runner"
)

// reportCmd turns a JSON report into what a person reads: its summary,
// or with --html a self-contained page (README "The HTML report").
func reportCmd() *cli.Command {
	return &cli.Command{
		Name:        "report",
		Usage:       "show a JSON report (of apply, plan or rollback) as its summary, or write it as a self-contained HTML page",
		ArgsUsage:   "REPORT.json",
		Description: "Examples:\n   iotjobs report run.json\n   iotjobs report run.json --html run.html",
		Flags:       []cli.Flag{htmlFlag("the report")},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("report: name exactly one JSON report")
			}
			rep, err := loadReport(c.Args().First())
			if err != nil {
				return err
			}
			if path := c.String("html"); path != "" {
				return writeHTML(c, path, rep)
			}
			return rep.WriteSummary(c.App.Writer)
		},
	}
}

// htmlFlag is --html FILE, for what the page shows.
func htmlFlag(what string) *cli.StringFlag {
	return &cli.StringFlag{Name: "html", Usage: "also write " + what + " as a self-contained HTML page (timeline, steps, every device) to FILE"}
}

// htmlWriter writes rep's HTML page, stamped with the time it is written.
func htmlWriter(rep *runner.Report) func(io.Writer) error {
	return func(w io.Writer) error { return rep.WriteHTML(w, runner.HTMLOptions{Now: time.Now()}) }
}

// writeHTML writes rep's HTML page to path, if any, and says where.
func writeHTML(c *cli.Context, path string, rep *runner.Report) error {
	if path == "" {
		return nil
	}
	if err := writeFile(path, htmlWriter(rep)); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	fmt.Fprintf(c.App.ErrWriter, "HTML report written to %s\n", path)
	return nil
}
