package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/hub/hubtest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// listHub is a data directory whose embedded hub holds three devices
// (one disabled, one tagged, with two modules), a finished twin job and a finished method
// job (all devices offline, so every call failed). It returns the
// directory and one device's primary key.
func listHub(t *testing.T) (string, string) {
	t.Helper()
	ctx := hubtest.TestCtx(t, time.Minute)
	data := filepath.Join(t.TempDir(), "data")
	h, err := hubd.Open(ctx, hubd.Config{DataDir: data, MQTTAddr: "127.0.0.1:0"})
	hubtest.Must(t, "open the hub", err)
	defer h.Close()
	c := h.Client()
	var key string
	for _, id := range []string{"lock-1", "lock-2", "lock-3"} {
		d, err := c.CreateDevice(ctx, &hub.Device{DeviceID: id})
		hubtest.Must(t, "create "+id, err)
		key = d.Authentication.SymmetricKey.PrimaryKey
	}
	d, err := c.GetDevice(ctx, "lock-2")
	hubtest.Must(t, "get lock-2", err)
	reason := "stolen"
	d.Status, d.StatusReason = hub.StatusDisabled, &reason
	_, err = c.UpdateDevice(ctx, d, "*")
	hubtest.Must(t, "disable lock-2", err)
	_, err = c.UpdateTwin(ctx, "lock-1", &hub.TwinPatch{Tags: map[string]any{"building": "43", "floor": 3.0, "owner": "facilities, north wing"}}, "*")
	hubtest.Must(t, "tag lock-1", err)
	for _, mod := range []string{"camera", "edge"} {
		_, err = c.(hub.Modules).CreateModule(ctx, &hub.Module{DeviceID: "lock-1", ModuleID: mod})
		hubtest.Must(t, "create module "+mod, err)
	}
	for _, j := range []*hub.Job{
		{JobID: "set-floor", Type: hub.JobUpdateTwin, QueryCondition: "deviceId IN ['lock-1', 'lock-3']",
			UpdateTwin: &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"floor": 3.0}}}},
		{JobID: "lock-doors", Type: hub.JobDeviceMethod, QueryCondition: "*",
			CloudToDeviceMethod: &hub.MethodRequest{MethodName: "lockDoor", Payload: json.RawMessage(`{"force":true}`), ResponseTimeoutInSeconds: 5}},
	} {
		_, err := c.CreateJob(ctx, j)
		hubtest.Must(t, "create job "+j.JobID, err)
		hubtest.WaitJob(ctx, t, c, j.JobID)
	}
	return data, key
}

// listCases are the list commands with the rows each prints from
// listHub's hub, identified by the value of field in each JSON item.
var listCases = []struct {
	name  string
	args  []string
	field string
	want  []string
}{
	{"devices list", []string{"devices", "list"}, "deviceId", []string{"lock-1", "lock-2", "lock-3"}},
	{"jobs list", []string{"jobs", "list"}, "jobId", []string{"lock-doors", "set-floor"}},
	{"devices modules", []string{"devices", "modules", "lock-1"}, "moduleId", []string{"camera", "edge"}},
	{"jobs devices", []string{"jobs", "devices", "lock-doors"}, "deviceId", []string{"lock-1", "lock-2", "lock-3"}},
	{"query twins", []string{"query", "SELECT * FROM devices"}, "deviceId", []string{"lock-1", "lock-2", "lock-3"}},
	{"query projection", []string{"query", "SELECT deviceId, tags.floor AS floor FROM devices WHERE status = 'enabled'"}, "deviceId", []string{"lock-1", "lock-3"}},
	{"query modules", []string{"query", "SELECT * FROM devices.modules"}, "moduleId", []string{"camera", "edge"}},
	{"query device jobs", []string{"query", "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'set-floor'"}, "deviceId", []string{"lock-1", "lock-3"}},
}

// TestListFormats: every list command prints the same rows in every
// format, and each format parses back: json as one array, jsonl as one
// object a line, yaml as a list, table and wide as a header and a row per
// item. No SAS key is printed in any format without --show-keys.
func TestListFormats(t *testing.T) {
	data, key := listHub(t)
	for _, lc := range listCases {
		for _, format := range listFormats {
			t.Run(lc.name+" -o "+format, func(t *testing.T) {
				code, stdout, stderr := runCLI(t, t.Context(), append(lc.args, "--data", data, "-o", format)...)
				if code != 0 {
					t.Fatalf("exit %d\n%s", code, stderr)
				}
				if strings.Contains(stdout, key) {
					t.Errorf("a SAS key is printed:\n%s", stdout)
				}
				var items []map[string]any
				var err error
				switch format {
				case "json":
					err = json.Unmarshal([]byte(stdout), &items)
				case "jsonl":
					for line := range strings.Lines(stdout) {
						var item map[string]any
						if err = json.Unmarshal([]byte(line), &item); err != nil {
							break
						}
						items = append(items, item)
					}
				case "yaml":
					err = yaml.Unmarshal([]byte(stdout), &items)
				default:
					checkTable(t, stdout, lc.want)
					return
				}
				if err != nil {
					t.Fatalf("-o %s does not parse back: %v\n%s", format, err, stdout)
				}
				var got []string
				for _, it := range items {
					got = append(got, fmt.Sprint(it[lc.field]))
				}
				slices.Sort(got)
				if !slices.Equal(got, lc.want) {
					t.Errorf("-o %s: items with %s %q, want %q\n%s", format, lc.field, got, lc.want, stdout)
				}
			})
		}
	}
}

// checkTable checks a table: an upper-case header row, then one row per
// item, each starting with (or, for device job rows of a query, holding)
// the item's id.
func checkTable(t *testing.T, stdout string, ids []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != len(ids)+1 || lines[0] != strings.ToUpper(lines[0]) {
		t.Fatalf("want an upper-case header and %d rows:\n%s", len(ids), stdout)
	}
	var got []string
	for _, row := range lines[1:] {
		for _, f := range strings.Fields(row) {
			if slices.Contains(ids, f) {
				got = append(got, f)
				break
			}
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, ids) {
		t.Errorf("rows for %q, want %q:\n%s", got, ids, stdout)
	}
}

// goldenTimes are what varies between runs of listHub in a table: times
// and generation ids. They are replaced by as many characters, so that
// the columns stay aligned as they were.
var goldenTimes = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`), "YYYY-MM-DDThh:mm:ssZ"},
	{regexp.MustCompile(`\b\d{19}\b`), "GGGGGGGGGGGGGGGGGGG"},
}

// TestListTablesGolden: the table and wide output of the list commands
// against testdata/lists/*.txt: a transcript, whose first line is the
// command ("$ iotjobs ARGS", double quotes group an argument; --data is
// added) and the rest its stdout. go test -run TestListTablesGolden
// -update rewrites them.
func TestListTablesGolden(t *testing.T) {
	data, _ := listHub(t)
	files, _ := filepath.Glob("testdata/lists/*.txt")
	if len(files) == 0 {
		t.Fatal("no golden files in testdata/lists")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cmdline, want, _ := strings.Cut(string(b), "\n")
			args := splitArgs(strings.TrimPrefix(cmdline, "$ iotjobs "))
			code, stdout, stderr := runCLI(t, t.Context(), append(args, "--data", data)...)
			if code != 0 {
				t.Fatalf("%s: exit %d\n%s", cmdline, code, stderr)
			}
			for _, g := range goldenTimes {
				stdout = g.re.ReplaceAllString(stdout, g.with)
			}
			if strings.HasSuffix(cmdline, "-o table") {
				for line := range strings.Lines(stdout) {
					if n := utf8.RuneCountInString(strings.TrimSuffix(line, "\n")); n > 100 {
						t.Errorf("a table line of %d characters; tables fit 100: %q", n, line)
					}
				}
			}
			switch {
			case stdout == want:
			case *update:
				if err := os.WriteFile(file, []byte(cmdline+"\n"+stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			default:
				t.Errorf("%s:\n%s\nwant (%s):\n%s", cmdline, stdout, file, want)
			}
		})
	}
}

// splitArgs splits a command line at spaces, except inside double quotes.
func splitArgs(s string) []string {
	var args []string
	for i, part := range strings.Split(s, `"`) {
		if i%2 == 1 {
			args = append(args, part)
		} else {
			args = append(args, strings.Fields(part)...)
		}
	}
	return args
}

// TestListsEmptyAndDefault: with nothing to list, a table prints nothing
// on stdout and says so on stderr, json prints [] and yaml []; the
// default is json when stdout is not a terminal (as in these tests) and a
// table when it is one.
func TestListsEmptyAndDefault(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, tt := range []struct {
		args           []string
		stdout, stderr string
	}{
		{[]string{"jobs", "list", "-o", "table"}, "", "no jobs\n"},
		{[]string{"jobs", "list", "-o", "wide"}, "", "no jobs\n"},
		{[]string{"devices", "list", "-o", "table"}, "", "no devices\n"},
		{[]string{"jobs", "devices", "nojob", "-o", "table"}, "", "no device records of job nojob\n"},
		{[]string{"query", "SELECT * FROM devices", "-o", "table"}, "", "no results\n"},
		{[]string{"jobs", "list", "-o", "json"}, "[]\n", ""},
		{[]string{"jobs", "list", "-o", "jsonl"}, "", ""},
		{[]string{"jobs", "list", "-o", "yaml"}, "[]\n", ""},
		{[]string{"devices", "list"}, "[]\n", ""},
		{[]string{"query", "SELECT * FROM devices"}, "[]\n", ""},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, t.Context(), append(tt.args, "--data", data)...)
			if code != 0 || stdout != tt.stdout || stderr != tt.stderr {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0, %q, %q", code, stdout, stderr, tt.stdout, tt.stderr)
			}
		})
	}

	listsToTerminal = func(any) bool { return true }
	t.Cleanup(func() { listsToTerminal = isTerminal })
	runCLI(t, t.Context(), "devices", "create", "lock-1", "--data", data)
	code, stdout, stderr := runCLI(t, t.Context(), "devices", "list", "--data", data)
	if code != 0 || !strings.HasPrefix(stdout, "DEVICE ID ") || !strings.Contains(stdout, "\nlock-1 ") {
		t.Errorf("devices list at a terminal: exit %d, stdout %q, stderr %q; want a table", code, stdout, stderr)
	}
}

// TestListShowKeys: --show-keys prints the keys in every format (a
// table gets key columns).
func TestListShowKeys(t *testing.T) {
	data, key := listHub(t)
	for _, format := range listFormats {
		code, stdout, stderr := runCLI(t, t.Context(), "devices", "list", "--data", data, "--show-keys", "-o", format)
		if code != 0 || !strings.Contains(stdout, key) || strings.Contains(stderr, "hidden") {
			t.Errorf("-o %s --show-keys: exit %d, stdout %q, stderr %q; want the keys", format, code, stdout, stderr)
		}
	}
}

// TestListUsageErrors: a list command refuses a bad --output, and
// devices list a bad --top or --top with --all, with exit 2, before it
// opens a hub (the data directory is not created).
func TestListUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"devices", "list", "-o", "bogus"}, `devices list: --output "bogus": use table, wide, json, jsonl or yaml`},
		{[]string{"jobs", "list", "-o", "bogus"}, `jobs list: --output "bogus": use table, wide, json, jsonl or yaml`},
		{[]string{"jobs", "devices", "j1", "--output", "text"}, `jobs devices: --output "text": use table, wide, json, jsonl or yaml`},
		{[]string{"query", "SELECT * FROM devices", "-o", "csv"}, `query: --output "csv": use table, wide, json, jsonl or yaml`},
		{[]string{"devices", "list", "--top", "0"}, "--top 0: give at least 1, or --all for every device"},
		{[]string{"devices", "list", "--top", "-3"}, "--top -3: give at least 1"},
		{[]string{"devices", "list", "--top", "5", "--all"}, "give --top N or --all, not both"},
		{[]string{"devices", "list", "extra"}, "takes no arguments"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) { checkedFirst(t, tt.args, tt.want) })
	}
}

// TestDevicesListPaging: past the registry's 1,000 devices, devices list
// pages through the query API: --all lists all 1,500 once each, --top N
// stops at N; a listing that stops short says on stderr how many there
// are.
func TestDevicesListPaging(t *testing.T) {
	const total = 1500
	ctx := hubtest.TestCtx(t, 2*time.Minute)
	data := filepath.Join(t.TempDir(), "data")
	h, err := hubd.Open(ctx, hubd.Config{DataDir: data, MQTTAddr: "127.0.0.1:0"})
	hubtest.Must(t, "open the hub", err)
	var batch []*hub.ImportDevice
	for i := range total {
		batch = append(batch, &hub.ImportDevice{ID: fmt.Sprintf("dev-%04d", i), ImportMode: hub.ImportCreate})
		if len(batch) == hub.MaxImportDevices {
			res, err := h.Client().ImportDevices(ctx, batch)
			if err != nil || !res.IsSuccessful {
				t.Fatalf("import: %v %+v", err, res)
			}
			batch = nil
		}
	}
	h.Close()

	for _, tt := range []struct {
		args []string
		n    int
		note string
		keys bool
	}{
		{nil, 1000, "showing 1000 of 1500 devices; --all or --top N shows more\n", false},
		{[]string{"--top", "1200"}, 1200, "showing 1200 of 1500 devices; --all or --top N shows more\n", false},
		{[]string{"--top", "1500"}, 1500, "", false},
		{[]string{"--top", "2000"}, 1500, "", false},
		{[]string{"--all"}, 1500, "", false},
		{[]string{"--all", "--show-keys"}, 1500, "", true},
		{[]string{"--top", "7"}, 7, "showing 7 of 1500 devices; --all or --top N shows more\n", false},
	} {
		t.Run(cmp.Or(strings.Join(tt.args, " "), "default"), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, t.Context(), append([]string{"devices", "list", "--data", data, "-o", "jsonl"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			var ids []string
			for line := range strings.Lines(stdout) {
				var d hub.Device
				if err := json.Unmarshal([]byte(line), &d); err != nil {
					t.Fatalf("%v: %s", err, line)
				}
				if hasKey := d.Authentication.SymmetricKey.PrimaryKey != ""; hasKey != tt.keys {
					t.Fatalf("device %s has a key: %v, want %v", d.DeviceID, hasKey, tt.keys)
				}
				ids = append(ids, d.DeviceID)
			}
			if len(ids) != tt.n || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != tt.n || ids[0] != "dev-0000" {
				t.Errorf("%d devices, sorted %v, first %s; want dev-0000 and on, %d distinct, in id order", len(ids), slices.IsSorted(ids), ids[0], tt.n)
			}
			note := strings.ReplaceAll(stderr, "iotjobs: SAS keys hidden; --show-keys prints them\n", "")
			if note != tt.note {
				t.Errorf("stderr %q, want %q", note, tt.note)
			}
		})
	}
}

// TestYAMLFromJSON: -o yaml is the JSON items in YAML: the same values
// (strings that look like numbers or bools stay strings, numbers keep
// their text), keys in the JSON's order.
func TestYAMLFromJSON(t *testing.T) {
	for _, tt := range []struct {
		name, json, yaml string
	}{
		{"empty", `[]`, "[]\n"},
		{"scalars", `[{"s":"true","n":"123","i":1000000,"f":1.5,"e":1e5,"b":false,"z":null}]`,
			"- s: \"true\"\n  n: \"123\"\n  i: 1000000\n  f: 1.5\n  e: 1e5\n  b: false\n  z: null\n"},
		{"order and nesting", `[{"z":{"b":[1,{"c":"d"}],"a":{}},"a":[]}]`,
			"- z:\n    b:\n      - 1\n      - c: d\n    a: {}\n  a: []\n"},
		{"multi-line", `[{"m":"a\nb"}]`, "- m: |-\n    a\n    b\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var items []json.RawMessage
			if err := json.Unmarshal([]byte(tt.json), &items); err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := printYAML(&b, items); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.yaml {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tt.yaml)
			}
			var fromYAML, fromJSON any
			if err := yaml.Unmarshal(b.Bytes(), &fromYAML); err != nil {
				t.Fatal(err)
			}
			json.Unmarshal([]byte(tt.json), &fromJSON)
			y, _ := json.Marshal(fromYAML)
			j, _ := json.Marshal(fromJSON)
			if !bytes.Equal(y, j) {
				t.Errorf("YAML reads back as %s, want %s", y, j)
			}
		})
	}
}

// TestHeader: JSON keys become column headers word by word.
func TestHeader(t *testing.T) {
	for key, want := range map[string]string{
		"deviceId": "device Id", "lastActivityTime": "last Activity Time", "x509Thumbprint": "x509 Thumbprint",
		"n": "n", "$version": "$version", "URL": "URL",
	} {
		if got := header(key); got != want {
			t.Errorf("header(%q) = %q, want %q", key, got, want)
		}
	}
}
