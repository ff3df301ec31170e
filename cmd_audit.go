// iotjobs audit: the hub's audit log (README "Audit trail").

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub"
)

func auditCmd() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "list or verify the hub's audit log of mutating operations",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list the audit log's entries, oldest first",
				Description: "Examples:\n   iotjobs audit list --since 1h\n   iotjobs audit list --device lock-1 -o wide\n   iotjobs audit list --job lock-doors-lock-3f2a... -o json",
				Flags: append(listFlags(),
					&cli.StringFlag{Name: "since", Usage: "only entries from this time (RFC 3339) or this long ago (1h, 30m)"},
					&cli.StringFlag{Name: "device", Usage: "only entries about this device"},
					&cli.StringFlag{Name: "job", Usage: "only entries about this job"}),
				Action: listAction(parseAuditFilter, func(c *cli.Context, h hub.Client, format string, f hub.AuditFilter) error {
					entries, err := readAudit(c.Context, h, f)
					if err != nil {
						return err
					}
					return printList(c, format, "audit entries", entries, auditColumns)
				})},
			{Name: "verify", Usage: "check the audit log's hash chain from its first entry; exit 1 naming the first entry changed, removed or out of order",
				Description: "Prints the head (the last entry's seq and hash): keep it elsewhere, and compare it later, to\n   notice a log rewritten from some entry on or cut short at its end.\n\n   Example:\n   iotjobs audit verify",
				Flags:       []cli.Flag{hubFlag(), caFlag(), dataFlag()},
				Action: hubAction(noArgs, func(c *cli.Context, h hub.Client, _ struct{}) error {
					entries, err := readAudit(c.Context, h, hub.AuditFilter{})
					if err != nil {
						return err
					}
					if b := hub.VerifyAudit(entries); b != nil {
						return failedError{fmt.Sprintf("audit log: %v (%d entries read): the store was edited outside the hub", b, len(entries))}
					}
					if len(entries) == 0 {
						_, err := fmt.Fprintln(c.App.Writer, "0 entries, chain intact")
						return err
					}
					last := entries[len(entries)-1]
					_, err = fmt.Fprintf(c.App.Writer, "%d entries, chain intact\nhead: #%d %s\n", len(entries), last.Seq, last.Hash)
					return err
				})},
		},
	}
}

// parseAuditFilter reads audit list's flags.
func parseAuditFilter(c *cli.Context) (hub.AuditFilter, error) {
	if c.NArg() != 0 {
		return hub.AuditFilter{}, usagef("audit list: takes no arguments")
	}
	f := hub.AuditFilter{Device: c.String("device"), Job: c.String("job")}
	if s := c.String("since"); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			f.Since = t
		} else if d, derr := time.ParseDuration(s); derr == nil && d >= 0 {
			f.Since = time.Now().Add(-d)
		} else {
			return f, usagef("audit list: --since %q: give a time (2026-05-01T12:00:00Z) or a duration ago (1h, 30m)", s)
		}
	}
	return f, nil
}

// readAudit reads every entry f selects, following the pages.
func readAudit(ctx context.Context, h hub.Client, f hub.AuditFilter) ([]*hub.AuditEntry, error) {
	a, ok := h.(hub.AuditLog)
	if !ok {
		return nil, fmt.Errorf("this hub (%T) keeps no audit log", h)
	}
	out := []*hub.AuditEntry{}
	tok := ""
	for {
		page, err := a.AuditEntries(ctx, f, tok)
		if err != nil {
			// Azure answers 404: its trail is its diagnostic logs.
			return nil, fmt.Errorf("read the audit log (kept by iotjobs hubs only): %w", err)
		}
		out = append(out, page.Entries...)
		if tok = page.Continuation; tok == "" {
			return out, nil
		}
	}
}

var auditColumns = []column[*hub.AuditEntry]{
	{name: "seq", cell: func(e *hub.AuditEntry) string { return fmt.Sprint(e.Seq) }},
	{name: "time", cell: func(e *hub.AuditEntry) string { return e.Time.UTC().Format(time.RFC3339) }},
	{name: "actor", cell: func(e *hub.AuditEntry) string { return e.Actor }},
	{name: "operation", cell: func(e *hub.AuditEntry) string { return e.Operation }},
	{name: "target", cell: func(e *hub.AuditEntry) string { return e.Target }},
	{name: "result", cell: func(e *hub.AuditEntry) string { return e.Result }},
	{name: "devices", clip: true, cell: func(e *hub.AuditEntry) string { return strings.Join(e.Devices, ",") }},
	{name: "plan", wide: true, cell: func(e *hub.AuditEntry) string {
		if e.Plan == "" {
			return ""
		}
		return e.Plan + " sha256:" + e.PlanSHA256
	}},
	{name: "hash", wide: true, cell: func(e *hub.AuditEntry) string { return e.Hash }},
}
