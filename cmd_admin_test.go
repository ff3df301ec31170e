package main

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/urfave/cli/v2"
)

// TestJobsWatchWithoutStatistics: deviceJobStatistics is optional in the
// contract (a job that failed before it started has none); jobs watch
// reports such a job as ended, exit 1, instead of crashing.
func TestJobsWatchWithoutStatistics(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/jobs/v2/nostats" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write([]byte(`{"jobId":"nostats","type":"scheduleDeviceMethod","status":"failed","failureReason":"invalid queryCondition",` +
			`"queryCondition":"x","createdTime":"2026-12-03T10:00:00Z","endTime":"2026-12-03T10:00:01Z","maxExecutionTimeInSeconds":60}`))
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cs := "HostName=" + strings.TrimPrefix(srv.URL, "https://") + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" +
		base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	code, stdout, stderr := runCLI(t, t.Context(), "jobs", "watch", "nostats", "--hub", cs, "--ca", ca)
	if code != exitFailed || !strings.Contains(stderr, "job nostats ended failed with 0 failed device(s)") || !strings.Contains(stdout, `"nostats"`) {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 saying the job ended failed", code, stdout, stderr)
	}
}

// TestOutputCheckedFirst: a bad --output is refused (exit 2, naming the
// flag) before the command reads a plan or a fleet or contacts a hub:
// here the hub is unreachable and the plan file missing, which would
// otherwise answer first.
func TestOutputCheckedFirst(t *testing.T) {
	unreachable := "HostName=127.0.0.1:1;SharedAccessKeyName=iothubowner;SharedAccessKey=" + base64.StdEncoding.EncodeToString([]byte("k"))
	for _, args := range [][]string{
		{"plan", "missing.yaml", "-o", "bogus", "--hub", unreachable},
		{"plan", "missing.yaml", "-o", "bogus", "--fleet", "missing-fleet.yaml"},
		{"check", "missing.yaml", "-o", "bogus", "--hub", unreachable},
		{"apply", "missing.yaml", "-o", "bogus", "--hub", unreachable},
		{"validate", "missing.yaml", "-o", "bogus"},
		// The list commands' -o has more formats: TestListUsageErrors.
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, t.Context(), args...)
			if code != exitInvalid || !regexp.MustCompile(`--output "bogus": use text(, json or markdown| or json)`).MatchString(stderr) {
				t.Errorf("iotjobs %s: exit %d, stderr %q; want exit 2 naming --output", strings.Join(args, " "), code, stderr)
			}
		})
	}
}

// TestApplyFlagCombinations: apply refuses flag combinations that would
// run for real what the operator asked only to dry-run (and other
// contradictions), with exit 2, before it reads the plan or contacts a
// hub: the plan here is missing and the hub unreachable.
func TestApplyFlagCombinations(t *testing.T) {
	unreachable := "HostName=127.0.0.1:1;SharedAccessKeyName=iothubowner;SharedAccessKey=" + base64.StdEncoding.EncodeToString([]byte("k"))
	for _, tt := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--dry-run", "--watch"}, "--dry-run with --watch"},
		{[]string{"--dry-run", "--skip-dry-run"}, "contradict each other"},
		{[]string{"--rate", "-1"}, "--rate -1"},
		{[]string{"--connections", "10"}, "give --fleet too"},
		{[]string{"--mqtt", "127.0.0.1:8883"}, "give --fleet too"},
	} {
		t.Run(strings.Join(tt.flags, " "), func(t *testing.T) {
			args := append([]string{"apply", "missing.yaml", "--hub", unreachable}, tt.flags...)
			code, _, stderr := runCLI(t, t.Context(), args...)
			if code != exitInvalid || !strings.Contains(stderr, tt.want) {
				t.Errorf("iotjobs %s: exit %d, stderr %q; want exit 2 saying %q", strings.Join(args, " "), code, stderr, tt.want)
			}
		})
	}
}

// TestAdminArgsCheckedFirst: the commands on one hub check all their
// arguments before they open a hub: with bad arguments, the embedded
// hub's data directory is not even created.
func TestAdminArgsCheckedFirst(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"twin", "patch", "d1", "--desired", "{bad"}, "--desired: not valid JSON"},
		{[]string{"twin", "patch", "d1"}, "give --desired and/or --tags"},
		{[]string{"twin", "show"}, "name exactly one device id"},
		{[]string{"method", "invoke", "d1"}, "give ID and METHOD"},
		{[]string{"method", "invoke", "d1", "m", "--payload", "nope"}, "--payload: not valid JSON"},
		{[]string{"jobs", "list", "extra"}, "takes no arguments"},
		{[]string{"jobs", "watch"}, "name exactly one job id"},
		{[]string{"devices", "list", "--top", "0"}, "--top 0: give at least 1"},
		{[]string{"devices", "disable"}, "name exactly one device id"},
		{[]string{"query"}, "name exactly one query"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) { checkedFirst(t, tt.args, tt.want) })
	}
}

// TestServeFlagsCheckedFirst: hub serve refuses bad flags (exit 2) before
// it creates its data directory or listens.
func TestServeFlagsCheckedFirst(t *testing.T) {
	for _, tt := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--tls-cert", "cert.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", "key.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--ops-per-second", "-5"}, "--ops-per-second -5"},
		{[]string{"--lease-ttl", "100ms"}, "--lease-ttl 100ms: give at least 1s"},
	} {
		t.Run(strings.Join(tt.flags, " "), func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			code, _, stderr := runCLI(t, t.Context(), append([]string{"hub", "serve", "--data", data, "--https", "127.0.0.1:0", "--mqtts", "127.0.0.1:0"}, tt.flags...)...)
			if code != exitInvalid || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 saying %q", code, stderr, tt.want)
			}
			if _, err := os.Stat(data); err == nil {
				t.Errorf("hub serve created %s before checking its flags", data)
			}
		})
	}
}

// TestCLIConventions: version and --version print the build's version;
// an unknown command or subcommand exits 2 with a did-you-mean; every
// command that does something has a description and an example in its
// --help.
func TestCLIConventions(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := runCLI(t, t.Context(), args...)
		if code != exitOK || !strings.HasPrefix(stdout, "iotjobs ") || stderr != "" {
			t.Errorf("iotjobs %s: exit %d, stdout %q, stderr %q", args[0], code, stdout, stderr)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"aply", "plan.yaml"}, `unknown command "aply"; did you mean "apply"?`},
		{[]string{"jobs", "lsit"}, `jobs: unknown command "lsit"; did you mean "list"?`},
		{[]string{"hub", "srve"}, `hub: unknown command "srve"; did you mean "serve"?`},
	} {
		code, _, stderr := runCLI(t, t.Context(), tt.args...)
		if code != exitInvalid || !strings.Contains(stderr, tt.want) {
			t.Errorf("iotjobs %s: exit %d, stderr %q; want exit 2 saying %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
	}
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			name := path + " " + c.Name
			if c.Usage == "" {
				t.Errorf("%s has no description (Usage)", name)
			}
			if c.Action != nil && !strings.Contains(c.Description, "iotjobs "+strings.TrimPrefix(name, "iotjobs ")) {
				t.Errorf("%s --help has no example of itself", name)
			}
			walk(name, c.Subcommands)
		}
	}
	walk("iotjobs", commands())
}

// TestWatchWithoutCron: apply --watch of a plan without a cron step exits
// 2 before it opens a hub (the embedded hub's directory is not created).
func TestWatchWithoutCron(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, _, stderr := runCLI(t, t.Context(), "apply", "--watch", "--data", data, "examples/lock-door.yaml")
	if code != exitInvalid || !strings.Contains(stderr, "has no cron step") {
		t.Errorf("exit %d, stderr %q; want exit 2 saying the plan has no cron step", code, stderr)
	}
	if _, err := os.Stat(data); err == nil {
		t.Errorf("apply --watch opened the embedded hub (%s exists) before refusing", data)
	}
}

// TestDeviceKeysHidden: devices list and show print no SAS key unless
// --show-keys; devices create prints the generated keys (the one time
// they are needed).
func TestDeviceKeysHidden(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := runCLI(t, t.Context(), "devices", "create", "--data", data, "k-1")
	var created hub.Device
	if code != 0 || json.Unmarshal([]byte(stdout), &created) != nil || created.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("devices create: exit %d, %q %q", code, stdout, stderr)
	}
	key := created.Authentication.SymmetricKey.PrimaryKey
	for _, args := range [][]string{{"devices", "list"}, {"devices", "show", "k-1"}} {
		code, stdout, stderr := runCLI(t, t.Context(), append(args, "--data", data)...)
		if code != 0 || strings.Contains(stdout, key) || !strings.Contains(stderr, "--show-keys prints them") {
			t.Errorf("iotjobs %s: exit %d, stdout %q, stderr %q; want no key, and a word on stderr", strings.Join(args, " "), code, stdout, stderr)
		}
		code, stdout, _ = runCLI(t, t.Context(), append(args, "--data", data, "--show-keys")...)
		if code != 0 || !strings.Contains(stdout, key) {
			t.Errorf("iotjobs %s --show-keys: exit %d, stdout %q; want the key", strings.Join(args, " "), code, stdout)
		}
	}
}

// checkedFirst runs a command that must refuse its arguments (exit 2,
// saying want) before it opens the embedded hub under --data.
func checkedFirst(t *testing.T, args []string, want string) {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	code, _, stderr := runCLI(t, t.Context(), append(args, "--data", data)...)
	if code != exitInvalid || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want exit 2 saying %q", code, stderr, want)
	}
	if _, err := os.Stat(data); err == nil {
		t.Errorf("the embedded hub was opened (%s exists) before the arguments were checked", data)
	}
}

// TestDevicesCreateEdge: --edge makes an IoT Edge device with its
// generated scope; --parent puts a device below one, and names the
// problem when the parent is no edge device.
func TestDevicesCreateEdge(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	create := func(args ...string) (hub.Device, int, string) {
		code, stdout, stderr := runCLI(t, t.Context(), append([]string{"devices", "create", "--data", data}, args...)...)
		var d hub.Device
		if code == 0 {
			if err := json.Unmarshal([]byte(stdout), &d); err != nil {
				t.Fatalf("devices create %v: %v in %q", args, err, stdout)
			}
		}
		return d, code, stderr
	}
	gw, code, stderr := create("--edge", "gw-1")
	if code != 0 || !gw.Capabilities.IotEdge || !strings.HasPrefix(gw.DeviceScope, "ms-azure-iot-edge://gw-1-") {
		t.Fatalf("--edge: exit %d %q, device %+v", code, stderr, gw)
	}
	for _, tc := range []struct{ id, edge string }{{"leaf-1", ""}, {"gw-2", "--edge"}} {
		args := []string{"--parent", "gw-1", tc.id}
		if tc.edge != "" {
			args = append([]string{tc.edge}, args...)
		}
		d, code, stderr := create(args...)
		if code != 0 || d.ParentScopes.List0() != gw.DeviceScope {
			t.Errorf("%s --parent gw-1: exit %d %q, parentScopes %v", tc.id, code, stderr, d.ParentScopes.List())
		}
	}
	if _, code, stderr := create("--parent", "leaf-1", "leaf-2"); code == 0 || !strings.Contains(stderr, "not an IoT Edge device") {
		t.Errorf("--parent of a leaf: exit %d, stderr %q", code, stderr)
	}
	if _, code, stderr := create("--parent", "nope", "leaf-3"); code == 0 || !strings.Contains(stderr, "--parent nope") {
		t.Errorf("--parent of a missing device: exit %d, stderr %q", code, stderr)
	}
}
