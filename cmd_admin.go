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

// adminAction is a command on one hub whose --output is text or json:
// hubAction with that flag checked first.
func adminAction[O any](parse func(c *cli.Context) (O, error), run func(c *cli.Context, h hub.Client, o O) error) cli.ActionFunc {
	return hubAction(func(c *cli.Context) (O, error) {
		if _, err := outputFormat(c); err != nil {
			var zero O
			return zero, err
		}
		return parse(c)
	}, run)
}

// hubAction is a command on one hub: parse reads and checks all of its
// arguments into a typed value first, before anything contacts a hub;
// run then does the work on the command's hub.
func hubAction[O any](parse func(c *cli.Context) (O, error), run func(c *cli.Context, h hub.Client, o O) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		o, err := parse(c)
		if err != nil {
			return err
		}
		t, err := openTarget(c)
		if err != nil {
			return err
		}
		defer t.Close()
		return run(c, t.client, o)
	}
}

// oneArg is the command's one argument, what.
func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", usagef("%s: name exactly one %s", c.Command.FullName(), what)
	}
	return c.Args().First(), nil
}

// deviceArg and jobArg parse a command whose one argument is a device id
// or a job id.
func deviceArg(c *cli.Context) (string, error) { return oneArg(c, "device id") }
func jobArg(c *cli.Context) (string, error)    { return oneArg(c, "job id") }

// noArgs parses a command that takes no arguments.
func noArgs(c *cli.Context) (struct{}, error) {
	if c.NArg() != 0 {
		return struct{}{}, usagef("%s: takes no arguments", c.Command.FullName())
	}
	return struct{}{}, nil
}

func jsonArg(c *cli.Context, flag string, dst any) error {
	if s := c.String(flag); s != "" {
		if err := json.Unmarshal([]byte(s), dst); err != nil {
			return usagef("--%s: not valid JSON: %w", flag, err)
		}
	}
	return nil
}

// twinPatchArgs are twin patch's arguments.
type twinPatchArgs struct {
	id, etag string
	patch    *hub.TwinPatch
}

func parseTwinPatch(c *cli.Context) (twinPatchArgs, error) {
	id, err := deviceArg(c)
	if err != nil {
		return twinPatchArgs{}, err
	}
	p := &hub.TwinPatch{}
	var desired map[string]any
	if err := jsonArg(c, "desired", &desired); err != nil {
		return twinPatchArgs{}, err
	}
	if err := jsonArg(c, "tags", &p.Tags); err != nil {
		return twinPatchArgs{}, err
	}
	if desired != nil {
		p.Properties = &hub.Properties{Desired: desired}
	}
	if desired == nil && p.Tags == nil {
		return twinPatchArgs{}, usagef("twin patch: give --desired and/or --tags")
	}
	return twinPatchArgs{id: id, etag: c.String("etag"), patch: p}, nil
}

func twinCmd() *cli.Command {
	flags := []cli.Flag{hubFlag(), caFlag(), dataFlag(), jsonFlag()}
	return &cli.Command{
		Name:  "twin",
		Usage: "show or patch a device twin",
		Subcommands: []*cli.Command{
			{Name: "show", ArgsUsage: "ID", Usage: "print a device's twin (tags, desired and reported properties) as JSON", Description: "Example:\n   iotjobs twin show lock-1", Flags: flags, Action: adminAction(deviceArg, func(c *cli.Context, h hub.Client, id string) error {
				tw, err := h.GetTwin(c.Context, id)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, tw)
			})},
			{Name: "patch", ArgsUsage: "ID", Usage: "merge a patch into a twin's desired properties and/or tags", Description: "Example:\n   iotjobs twin patch lock-1 --desired '{\"locked\": true}'", Flags: append(flags,
				&cli.StringFlag{Name: "desired", Usage: "JSON merge patch of desired properties"},
				&cli.StringFlag{Name: "tags", Usage: "JSON merge patch of tags"},
				&cli.StringFlag{Name: "etag", Value: "*", Usage: "only patch if the twin's etag matches"}),
				Action: adminAction(parseTwinPatch, func(c *cli.Context, h hub.Client, a twinPatchArgs) error {
					tw, err := h.UpdateTwin(c.Context, a.id, a.patch, a.etag)
					if err != nil {
						return err
					}
					return printJSON(c.App.Writer, tw)
				})},
		},
	}
}

// invokeArgs are method invoke's arguments.
type invokeArgs struct {
	id  string
	req *hub.MethodRequest
}

func parseInvoke(c *cli.Context) (invokeArgs, error) {
	if c.NArg() != 2 {
		return invokeArgs{}, usagef("method invoke: give ID and METHOD")
	}
	var payload json.RawMessage
	if err := jsonArg(c, "payload", &payload); err != nil {
		return invokeArgs{}, err
	}
	// The contract's ranges (README "The hub"), checked here so that a
	// typo costs no hub call.
	if t := c.Duration("timeout"); t < 5*time.Second || t > 300*time.Second {
		return invokeArgs{}, usagef("method invoke: --timeout %s: give a response timeout from 5s to 300s", t)
	}
	if t := c.Duration("connect-timeout"); t < 0 || t > 300*time.Second {
		return invokeArgs{}, usagef("method invoke: --connect-timeout %s: give how long to wait for an offline device, from 0s to 300s", t)
	}
	return invokeArgs{id: c.Args().Get(0), req: &hub.MethodRequest{
		MethodName: c.Args().Get(1), Payload: payload,
		ResponseTimeoutInSeconds: int(c.Duration("timeout") / time.Second),
		ConnectTimeoutInSeconds:  int(c.Duration("connect-timeout") / time.Second),
	}}, nil
}

func methodCmd() *cli.Command {
	return &cli.Command{
		Name:  "method",
		Usage: "invoke a direct method",
		Subcommands: []*cli.Command{{
			Name: "invoke", ArgsUsage: "ID METHOD", Usage: "call a direct method on one device and print its answer",
			Description: "Example:\n   iotjobs method invoke lock-1 lockDoor --payload '{\"force\": true}'",
			Flags: []cli.Flag{hubFlag(), caFlag(), dataFlag(), jsonFlag(),
				&cli.StringFlag{Name: "payload", Value: "null", Usage: "JSON payload"},
				&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "response timeout (5s to 300s)"},
				&cli.DurationFlag{Name: "connect-timeout", Usage: "how long to wait for an offline device (0 to 300s)"}},
			Action: adminAction(parseInvoke, func(c *cli.Context, h hub.Client, a invokeArgs) error {
				resp, err := h.InvokeMethod(c.Context, a.id, a.req)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, resp)
			}),
		}},
	}
}

func jobsCmd() *cli.Command {
	flags := []cli.Flag{hubFlag(), caFlag(), dataFlag(), jsonFlag()}
	return &cli.Command{
		Name:  "jobs",
		Usage: "list, show or cancel hub jobs",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list the hub's jobs, newest first", Description: "Examples:\n   iotjobs jobs list\n   iotjobs jobs list -o wide", Flags: listFlags(),
				Action: listAction(noArgs, func(c *cli.Context, h hub.Client, format string, _ struct{}) error {
					jobs, err := readJobs(c.Context, h)
					if err != nil {
						return err
					}
					return printList(c, format, "jobs", jobs, jobColumns)
				})},
			{Name: "show", ArgsUsage: "JOBID", Usage: "print a job (status, statistics) as JSON", Description: "Example:\n   iotjobs jobs show lock-doors-lock", Flags: flags, Action: adminAction(jobArg, func(c *cli.Context, h hub.Client, id string) error {
				j, err := h.GetJob(c.Context, id)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, j)
			})},
			{Name: "watch", ArgsUsage: "JOBID", Usage: "print a job's progress until it ends; exit 1 unless it completed with no failed device",
				Description: "Example:\n   iotjobs jobs watch lock-doors-lock", Flags: flags, Action: adminAction(jobArg, watchJob)},
			{Name: "cancel", ArgsUsage: "JOBID", Usage: "cancel a job: devices not yet started are not", Description: "Example:\n   iotjobs jobs cancel lock-doors-lock", Flags: flags, Action: adminAction(jobArg, func(c *cli.Context, h hub.Client, id string) error {
				j, err := h.CancelJob(c.Context, id)
				if err != nil {
					return err
				}
				return printJSON(c.App.Writer, j)
			})},
			{Name: "devices", ArgsUsage: "JOBID", Usage: "list a job's device records: each device's status and outcome", Description: "Examples:\n   iotjobs jobs devices lock-doors-lock\n   iotjobs jobs devices lock-doors-lock -o jsonl", Flags: listFlags(),
				Action: listAction(jobArg, func(c *cli.Context, h hub.Client, format, id string) error {
					q := "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '" + strings.ReplaceAll(id, "'", `\'`) + "'"
					return printQuery(c, h, format, q, "device records of job "+id, false)
				})},
		},
	}
}

// watchJob prints job id's progress until it ends.
func watchJob(c *cli.Context, h hub.Client, id string) error {
	var j *hub.Job
	var err error
	// Statistics are omitempty in the contract: a job that failed before
	// it started has none.
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
}

func queryCmd() *cli.Command {
	return &cli.Command{
		Name: "query", Usage: "run an IoT Hub query, e.g. \"SELECT * FROM devices WHERE tags.building = '43'\"",
		ArgsUsage:   "QUERY",
		Description: "Example:\n   iotjobs query \"SELECT deviceId, tags.building FROM devices WHERE tags.building = '43'\"",
		Flags:       listFlags(),
		Action: listAction(func(c *cli.Context) (string, error) { return oneArg(c, "query") }, func(c *cli.Context, h hub.Client, format, q string) error {
			return printQuery(c, h, format, q, "results", true)
		}),
	}
}

// statusArgs are devices enable's and disable's arguments.
type statusArgs struct {
	id, status string
	reason     *string
}

func parseStatus(status string) func(c *cli.Context) (statusArgs, error) {
	return func(c *cli.Context) (statusArgs, error) {
		id, err := deviceArg(c)
		if err != nil {
			return statusArgs{}, err
		}
		a := statusArgs{id: id, status: status}
		if status == hub.StatusDisabled && c.IsSet("reason") {
			r := c.String("reason")
			a.reason = &r
		}
		return a, nil
	}
}

// showKeysFlag: device keys are secrets, printed only when asked for.
func showKeysFlag() *cli.BoolFlag {
	return &cli.BoolFlag{Name: "show-keys", Usage: "print the devices' SAS keys too (hidden by default: they are secrets)"}
}

// hideKeys blanks the SAS keys of ds unless --show-keys, saying so on
// stderr once. It says so also when the hub did not send the keys (a
// listing past 1,000 devices reads twins), so that the operator learns
// how to get them either way.
func hideKeys(c *cli.Context, ds ...*hub.Device) {
	if c.Bool("show-keys") || len(ds) == 0 {
		return
	}
	for _, d := range ds {
		d.Authentication.SymmetricKey = hub.SymmetricKey{}
	}
	fmt.Fprintln(c.App.ErrWriter, "iotjobs: SAS keys hidden; --show-keys prints them")
}

func devicesCmd() *cli.Command {
	flags := []cli.Flag{hubFlag(), caFlag(), dataFlag(), jsonFlag()}
	return &cli.Command{
		Name:  "devices",
		Usage: "create, list, show, enable, disable or delete device identities, or list their modules",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list device identities in id order (keys hidden unless --show-keys)", Description: "Examples:\n   iotjobs devices list --top 100\n   iotjobs devices list --all -o jsonl", Flags: append(listFlags(),
				&cli.IntFlag{Name: "top", Value: registryPage, Usage: "list at most this many devices"},
				&cli.BoolFlag{Name: "all", Usage: "list every device (past 1,000, page through the query API)"},
				&cli.BoolFlag{Name: "show-keys", Usage: "print the devices' SAS keys too (hidden by default: they are secrets); past 1,000 devices this reads each device, one call each"}),
				Action: listAction(parseDevicesList, runDevicesList)},
			{Name: "enable", ArgsUsage: "ID", Usage: "let a disabled device connect and be called again", Description: "Example:\n   iotjobs devices enable lock-1", Flags: flags, Action: adminAction(parseStatus(hub.StatusEnabled), setStatus)},
			{Name: "disable", ArgsUsage: "ID", Usage: "refuse a device's connections and calls (jobs skip it)", Description: "Example:\n   iotjobs devices disable lock-1 --reason 'stolen'", Flags: append(flags,
				&cli.StringFlag{Name: "reason", Usage: "why, kept as the device's statusReason (at most 128 characters)"}),
				Action: adminAction(parseStatus(hub.StatusDisabled), setStatus)},
			{Name: "create", ArgsUsage: "ID", Usage: "register a device identity with generated keys, printed once", Description: "Examples:\n   iotjobs devices create lock-9\n   iotjobs devices create gw-1 --edge\n   iotjobs devices create lock-10 --parent gw-1", Flags: append(flags,
				&cli.BoolFlag{Name: "edge", Usage: "an IoT Edge device (capabilities.iotEdge): the hub generates its deviceScope"},
				&cli.StringFlag{Name: "parent", Usage: "the IoT Edge device this one stands below (a leaf's deviceScope, a nested edge device's parentScopes)"}),
				Action: adminAction(deviceArg, createDevice)},
			{Name: "show", ArgsUsage: "ID", Usage: "print a device identity as JSON (keys hidden unless --show-keys)", Description: "Example:\n   iotjobs devices show lock-1 --show-keys", Flags: append(flags, showKeysFlag()), Action: adminAction(deviceArg, func(c *cli.Context, h hub.Client, id string) error {
				d, err := h.GetDevice(c.Context, id)
				if err != nil {
					return err
				}
				hideKeys(c, d)
				return printJSON(c.App.Writer, d)
			})},
			{Name: "delete", ArgsUsage: "ID", Usage: "delete a device identity, its twin and its modules", Description: "Example:\n   iotjobs devices delete lock-9", Flags: flags, Action: adminAction(deviceArg, func(c *cli.Context, h hub.Client, id string) error {
				return h.DeleteDevice(c.Context, id, "*")
			})},
			modulesListCmd(),
		},
	}
}

// createDevice registers a device, an IoT Edge device with --edge, under
// the edge device --parent names.
func createDevice(c *cli.Context, h hub.Client, id string) error {
	d := &hub.Device{DeviceID: id, Capabilities: hub.Capabilities{IotEdge: c.Bool("edge")}}
	if name := c.String("parent"); name != "" {
		p, err := h.GetDevice(c.Context, name)
		if err != nil {
			return fmt.Errorf("--parent %s: %w", name, err)
		}
		if !p.Capabilities.IotEdge || p.DeviceScope == "" {
			return fmt.Errorf("--parent %s: not an IoT Edge device (create it with --edge)", name)
		}
		d.ParentScopes = hub.MakeScopes(p.DeviceScope)
	}
	out, err := h.CreateDevice(c.Context, d)
	if err != nil {
		return err
	}
	return printJSON(c.App.Writer, out)
}

// setStatus enables or disables a device. It updates the device as read,
// with its etag, so a concurrent change is refused rather than
// overwritten.
func setStatus(c *cli.Context, h hub.Client, a statusArgs) error {
	d, err := h.GetDevice(c.Context, a.id)
	if err != nil {
		return err
	}
	d.Status, d.StatusReason = a.status, a.reason
	out, err := h.UpdateDevice(c.Context, d, d.ETag)
	if err != nil {
		return err
	}
	return printJSON(c.App.Writer, out)
}
