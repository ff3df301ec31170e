// Commands that read and change one hub by hand: twin, method, jobs,
// devices and query.

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub"
)

// printJSON prints v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// withTarget runs fn against the command's hub.
func withTarget(fn func(c *cli.Context, h hub.Client) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if _, err := outputFormat(c); err != nil {
			return err
		}
		t, err := openTarget(c)
		if err != nil {
			return err
		}
		defer t.Close()
		return fn(c, t.client)
	}
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", usagef("%s: name exactly one %s", c.Command.FullName(), what)
	}
	return c.Args().First(), nil
}

func jsonArg(c *cli.Context, flag string, dst any) error {
	if s := c.String(flag); s != "" {
		if err := json.Unmarshal([]byte(s), dst); err != nil {
			return usagef("--%s: not valid JSON: %w", flag, err)
		}
	}
	return nil
}

func twinCmd() *cli.Command {
	flags := []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag}
	return &cli.Command{
		Name:  "twin",
		Usage: "show or patch a device twin",
		Subcommands: []*cli.Command{
			{Name: "show", ArgsUsage: "ID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "device id")
				if err != nil {
					return err
				}
				tw, err := h.GetTwin(c.Context, id)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, tw)
			})},
			{Name: "patch", ArgsUsage: "ID", Flags: append(flags,
				&cli.StringFlag{Name: "desired", Usage: "JSON merge patch of desired properties"},
				&cli.StringFlag{Name: "tags", Usage: "JSON merge patch of tags"},
				&cli.StringFlag{Name: "etag", Value: "*", Usage: "only patch if the twin's etag matches"}),
				Action: withTarget(func(c *cli.Context, h hub.Client) error {
					id, err := oneArg(c, "device id")
					if err != nil {
						return err
					}
					p := &hub.TwinPatch{}
					var desired map[string]any
					if err := jsonArg(c, "desired", &desired); err != nil {
						return err
					}
					if err := jsonArg(c, "tags", &p.Tags); err != nil {
						return err
					}
					if desired != nil {
						p.Properties = &hub.Properties{Desired: desired}
					}
					if desired == nil && p.Tags == nil {
						return usagef("twin patch: give --desired and/or --tags")
					}
					tw, err := h.UpdateTwin(c.Context, id, p, c.String("etag"))
					if err != nil {
						return err
					}
					return printJSON(c.App.Writer, tw)
				})},
		},
	}
}

func methodCmd() *cli.Command {
	return &cli.Command{
		Name:  "method",
		Usage: "invoke a direct method",
		Subcommands: []*cli.Command{{
			Name: "invoke", ArgsUsage: "ID METHOD",
			Flags: []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag,
				&cli.StringFlag{Name: "payload", Value: "null", Usage: "JSON payload"},
				&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "response timeout (5s to 300s)"},
				&cli.DurationFlag{Name: "connect-timeout", Usage: "how long to wait for an offline device (0 to 300s)"}},
			Action: withTarget(func(c *cli.Context, h hub.Client) error {
				if c.NArg() != 2 {
					return usagef("method invoke: give ID and METHOD")
				}
				var payload json.RawMessage
				if err := jsonArg(c, "payload", &payload); err != nil {
					return err
				}
				resp, err := h.InvokeMethod(c.Context, c.Args().Get(0), &hub.MethodRequest{
					MethodName: c.Args().Get(1), Payload: payload,
					ResponseTimeoutInSeconds: int(c.Duration("timeout") / time.Second),
					ConnectTimeoutInSeconds:  int(c.Duration("connect-timeout") / time.Second),
				})
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, resp)
			}),
		}},
	}
}

func jobsCmd() *cli.Command {
	flags := []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag}
	return &cli.Command{
		Name:  "jobs",
		Usage: "list, show or cancel hub jobs",
		Subcommands: []*cli.Command{
			{Name: "list", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				var all []*hub.Job
				q := hub.JobQuery{}
				for {
					jobs, cont, err := h.QueryJobs(c.Context, q)
					if err != nil {
						return err
					}
					all = append(all, jobs...)
					if cont == "" {
						return printJSON(c.App.Writer, all)
					}
					q.Continuation = cont
				}
			})},
			{Name: "show", ArgsUsage: "JOBID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "job id")
				if err != nil {
					return err
				}
				j, err := h.GetJob(c.Context, id)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, j)
			})},
			{Name: "watch", ArgsUsage: "JOBID", Usage: "print a job's progress until it ends; exit 1 unless it completed with no failed device",
				Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
					id, err := oneArg(c, "job id")
					if err != nil {
						return err
					}
					var j *hub.Job
					// Statistics are omitempty in the contract: a job
					// that failed before it started has none.
					st := &hub.DeviceJobStatistics{}
					for j == nil || !j.Status.Terminal() {
						if j, err = h.WatchJob(c.Context, id, j); err != nil {
							return err
						}
						if st = j.DeviceJobStatistics; st == nil {
							st = &hub.DeviceJobStatistics{}
						}
						fmt.Fprintf(c.App.ErrWriter, "%s: %s, %d devices: %d succeeded, %d failed, %d running, %d pending\n",
							id, j.Status, st.DeviceCount, st.SucceededCount, st.FailedCount, st.RunningCount, st.PendingCount)
					}
					if err := printJSON(c.App.Writer, j); err != nil {
						return err
					}
					if j.Status != hub.JobCompleted || st.FailedCount > 0 {
						return failedError{fmt.Sprintf("job %s ended %s with %d failed device(s)", id, j.Status, st.FailedCount)}
					}
					return nil
				})},
			{Name: "cancel", ArgsUsage: "JOBID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "job id")
				if err != nil {
					return err
				}
				j, err := h.CancelJob(c.Context, id)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, j)
			})},
			{Name: "devices", ArgsUsage: "JOBID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "job id")
				if err != nil {
					return err
				}
				return printQuery(c, h, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+strings.ReplaceAll(id, "'", `\'`)+"'")
			})},
		},
	}
}

func printQuery(c *cli.Context, h hub.Client, q string) error {
	items := []json.RawMessage{}
	opts := hub.QueryOptions{PageSize: 1000}
	for {
		page, err := h.Query(c.Context, q, opts)
		if err != nil {
			return err
		}
		items = append(items, page.Items...)
		if page.Continuation == "" {
			break
		}
		opts.Continuation = page.Continuation
	}
	if c.String("output") == "json" {
		return printJSON(c.App.Writer, items)
	}
	// Text: one row per line, so that grep, wc and head work on it.
	for _, it := range items {
		if _, err := fmt.Fprintf(c.App.Writer, "%s\n", it); err != nil {
			return err
		}
	}
	return nil
}

func queryCmd() *cli.Command {
	return &cli.Command{
		Name: "query", Usage: "run an IoT Hub query, e.g. \"SELECT * FROM devices WHERE tags.building = '43'\"",
		ArgsUsage: "QUERY",
		Flags:     []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag},
		Action: withTarget(func(c *cli.Context, h hub.Client) error {
			q, err := oneArg(c, "query")
			if err != nil {
				return err
			}
			return printQuery(c, h, q)
		}),
	}
}

func devicesCmd() *cli.Command {
	flags := []cli.Flag{hubFlag, caFlag, dataFlag, jsonFlag}
	return &cli.Command{
		Name:  "devices",
		Usage: "create, list, show, enable, disable or delete device identities",
		Subcommands: []*cli.Command{
			{Name: "list", Flags: append(flags,
				&cli.IntFlag{Name: "top", Value: 1000, Usage: "list at most this many devices, in id order (1 to 1000)"}),
				Action: withTarget(func(c *cli.Context, h hub.Client) error {
					if c.NArg() != 0 {
						return usagef("devices list: takes no arguments")
					}
					if top := c.Int("top"); top < 1 || top > 1000 {
						return usagef("devices list: --top %d must be from 1 to 1000", top)
					}
					ds, err := h.ListDevices(c.Context, c.Int("top"))
					if err != nil {
						return err
					}
					if ds == nil {
						ds = []*hub.Device{}
					}
					return printJSON(c.App.Writer, ds)
				})},
			{Name: "enable", ArgsUsage: "ID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				return setStatus(c, h, hub.StatusEnabled, nil)
			})},
			{Name: "disable", ArgsUsage: "ID", Flags: append(flags,
				&cli.StringFlag{Name: "reason", Usage: "why, kept as the device's statusReason (at most 128 characters)"}),
				Action: withTarget(func(c *cli.Context, h hub.Client) error {
					var reason *string
					if c.IsSet("reason") {
						r := c.String("reason")
						reason = &r
					}
					return setStatus(c, h, hub.StatusDisabled, reason)
				})},
			{Name: "create", ArgsUsage: "ID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "device id")
				if err != nil {
					return err
				}
				d, err := h.CreateDevice(c.Context, &hub.Device{DeviceID: id})
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, d)
			})},
			{Name: "show", ArgsUsage: "ID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "device id")
				if err != nil {
					return err
				}
				d, err := h.GetDevice(c.Context, id)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, d)
			})},
			{Name: "delete", ArgsUsage: "ID", Flags: flags, Action: withTarget(func(c *cli.Context, h hub.Client) error {
				id, err := oneArg(c, "device id")
				if err != nil {
					return err
				}
				return h.DeleteDevice(c.Context, id, "*")
			})},
		},
	}
}

// setStatus enables or disables the device named by the command's
// argument. It updates the device as read, with its etag, so a concurrent
// change is refused rather than overwritten.
func setStatus(c *cli.Context, h hub.Client, status string, reason *string) error {
	id, err := oneArg(c, "device id")
	if err != nil {
		return err
	}
	d, err := h.GetDevice(c.Context, id)
	if err != nil {
		return err
	}
	d.Status, d.StatusReason = status, reason
	out, err := h.UpdateDevice(c.Context, d, d.ETag)
	if err != nil {
		return err
	}
	return printJSON(c.App.Writer, out)
}
