package plan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/plan/diag"
)

// testEnv is the environment the fixtures see.
var testEnv = map[string]string{"IOTJOBS_TEST_SITE": "hq", "IOTJOBS_TEST_REGION": "eu"}

// testOptions fixes the environment the fixtures see.
func testOptions() []Option {
	return []Option{WithEnv(func(k string) (string, bool) { v, ok := testEnv[k]; return v, ok })}
}

func files(t testing.TB, pattern string) []string {
	t.Helper()
	names, err := filepath.Glob(pattern)
	if err != nil || len(names) == 0 {
		t.Fatalf("no files match %s: %v", pattern, err)
	}
	return names
}

func TestValid(t *testing.T) {
	t.Parallel()
	names := append(files(t, "testdata/valid/*.yaml"), "../examples/lock-door.yaml")
	for _, name := range names {
		t.Run(filepath.Base(name), func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			p, ds := Parse(name, src, testOptions()...)
			if len(ds) != 0 {
				var b bytes.Buffer
				diag.WriteText(&b, ds, map[string][]byte{name: src})
				t.Fatalf("unexpected diagnostics:\n%s", b.String())
			}
			if p == nil || len(p.Steps) == 0 {
				t.Fatal("no plan")
			}
			if vds := p.Validate(); len(vds) != 0 {
				t.Errorf("Validate of a parsed plan reports %v", vds)
			}
		})
	}
}

// marker is an expectation written in a fixture as
// "# ERROR: summary substring" or "# ERROR: summary | hint substring".
type marker struct{ summary, hint string }

func readMarkers(t *testing.T, src []byte) map[int]marker {
	t.Helper()
	want := map[int]marker{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for line := 1; sc.Scan(); line++ {
		_, m, ok := strings.Cut(sc.Text(), "# ERROR: ")
		if !ok {
			continue
		}
		summary, hint, _ := strings.Cut(m, " | ")
		want[line] = marker{strings.TrimSpace(summary), strings.TrimSpace(hint)}
	}
	return want
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	for _, name := range files(t, "testdata/invalid/*.yaml") {
		t.Run(filepath.Base(name), func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			want := readMarkers(t, src)
			if len(want) == 0 {
				t.Fatal("fixture has no # ERROR: markers")
			}
			p, ds := Parse(name, src, testOptions()...)
			if p != nil {
				t.Error("Parse returned a plan despite errors")
			}
			got := map[int][]*diag.Diagnostic{}
			for _, d := range ds {
				if d.Severity != diag.Error {
					continue
				}
				got[d.Range.Start.Line] = append(got[d.Range.Start.Line], d)
				if d.Range.Filename != name {
					t.Errorf("%s: filename %q", d.Range, d.Range.Filename)
				}
				if d.Detail == "" {
					t.Errorf("%s: %q has no hint", d.Range, d.Summary)
				}
				if d.Range.Start.Column < 1 || d.Range.Start.Byte > len(src) {
					t.Errorf("%s: bad position %+v", d.Range, d.Range.Start)
				}
			}
			for line, m := range want {
				ds := got[line]
				if len(ds) != 1 {
					t.Errorf("line %d: want one error containing %q, got %d: %s", line, m.summary, len(ds), describe(ds))
					continue
				}
				if !strings.Contains(ds[0].Summary, m.summary) {
					t.Errorf("line %d: error %q does not contain %q", line, ds[0].Summary, m.summary)
				}
				if !strings.Contains(ds[0].Detail, m.hint) {
					t.Errorf("line %d: hint %q does not contain %q", line, ds[0].Detail, m.hint)
				}
			}
			for line, ds := range got {
				if _, ok := want[line]; !ok {
					t.Errorf("line %d: unexpected %s", line, describe(ds))
				}
			}
		})
	}
}

func describe(ds []*diag.Diagnostic) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("[%s: %s (hint: %s)]", d.Range, d.Summary, d.Detail))
	}
	return strings.Join(s, " ")
}

func TestParseResult(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("testdata/valid/features.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, ds := Parse("features.yaml", src, testOptions()...)
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	canary, record, nightly, at := p.Steps[0], p.Steps[1], p.Steps[2], p.Steps[3]
	check := func(name string, got, want any) {
		t.Helper()
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if string(gb) != string(wb) {
			t.Errorf("%s = %s, want %s", name, gb, wb)
		}
	}
	check("description", p.Description, "Roll firmware 2.4.1 out to building 43, canary first.")
	check("vars", p.Vars, map[string]string{"building": "43", "floor": "3", "version": "2.4.1", "site": "hq"})
	check("query", canary.Query, "tags.building = '43' AND properties.reported.firmware != '2.4.1'")
	check("payload", canary.Method.Payload, json.RawMessage(`{"delays":[1,2.5],"force":true,"note":null,"reason":"firmware 2.4.1"}`))
	check("responseTimeout from defaults", canary.Method.ResponseTimeout, 20*time.Second)
	check("explicit connectTimeout 0 beats defaults", canary.Method.ConnectTimeout, time.Duration(0))
	check("connectTimeout from defaults", at.Method.ConnectTimeout, 10*time.Second)
	check("responseTimeout in seconds", at.Method.ResponseTimeout, 300*time.Second)
	check("maxExecutionTime from defaults", canary.MaxExecutionTime, 2*time.Hour)
	check("maxExecutionTime", nightly.MaxExecutionTime, 90*time.Minute)
	check("start delay", canary.Start, Start{After: 10 * time.Minute})
	check("default start", record.Start, Start{Now: true})
	check("cron step has no start", nightly.Start, Start{})
	check("start time", at.Start.At.Equal(time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)), true)
	check("rollout", canary.Rollout.Batches, []Batch{{Count: 5}, {Count: 50}, {Count: 500}})
	check("pause in seconds", canary.Rollout.Pause, 30*time.Second)
	check("abort", []any{canary.Abort.FailureRate, canary.Abort.MinExecuted}, []any{0.05, 0})
	check("tags with re-typed var and literal", record.Twin.Tags, map[string]any{"site": "hq", "floor": 3.0, "literal": "${vars.building}"})
	check("default etag", record.Twin.ETag, "*")
	check("etag", nightly.Twin.ETag, "AAAAAAAAAAE=")
	check("after defaults to the previous step", record.After, []string{"canary"})
	check("explicit empty after", nightly.After, []string{})
	check("first step after", canary.After, []string{})
	check("block query", nightly.Query, "deviceId IN ['a', 'b']\n")
	if len(p.SHA256) != 64 || p.File != "features.yaml" {
		t.Errorf("file %q sha %q", p.File, p.SHA256)
	}
	if canary.Range.Start.Line != 17 || canary.Method.Range.Start.Line != 23 {
		t.Errorf("ranges: step %s method %s", canary.Range, canary.Method.Range)
	}
}

func TestLockDoorExample(t *testing.T) {
	t.Parallel()
	p, ds := Load("../examples/lock-door.yaml", testOptions()...)
	if len(ds) != 0 {
		t.Fatal(ds)
	}
	if p.Name != "lock-doors" || len(p.Steps) != 2 {
		t.Fatalf("plan %q with %d steps", p.Name, len(p.Steps))
	}
	lock, set := p.Steps[0], p.Steps[1]
	if lock.Name != "lock-door" || lock.Method == nil || lock.Method.Name != "lockDoor" ||
		string(lock.Method.Payload) != "null" || lock.Method.ResponseTimeout != 15*time.Second ||
		lock.Query != "deviceId IN ['myDeviceId']" || !lock.Start.Now || lock.MaxExecutionTime != time.Hour {
		t.Errorf("lock-door step = %+v, method %+v", lock, lock.Method)
	}
	if set.Name != "set-building" || set.Twin == nil || set.Twin.ETag != "*" || set.Query != lock.Query ||
		len(set.After) != 1 || set.After[0] != "lock-door" || set.Cron != "" || set.Rollout != nil ||
		set.Twin.Desired["building"] != "43" || set.Twin.Desired["floor"] != 3.0 || set.MaxExecutionTime != time.Hour {
		t.Errorf("set-building step = %+v, twin %+v", set, set.Twin)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	p, ds := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if p != nil || len(ds) != 1 || !strings.Contains(ds[0].Summary, "cannot read plan") || ds.Err() == nil {
		t.Fatalf("got %v, %v", p, ds)
	}
}

func TestEnvDefaultIsProcessEnvironment(t *testing.T) {
	t.Setenv("IOTJOBS_PLAN_TEST_NAME", "from-env")
	src := []byte("version: 1\nname: ${env.IOTJOBS_PLAN_TEST_NAME}\nsteps: [{name: a, query: '*', method: {name: m}}]\n")
	p, ds := Parse("p.yaml", src)
	if ds.HasErrors() || p.Name != "from-env" {
		t.Fatalf("got %v, %v", p, ds)
	}
}

func TestQueryErrorPosition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		query  string // as written after "query: "
		line   int
		column int
	}{
		{"plain", "deviceId = @", 6, 23},
		{"double quoted", `"deviceId = \"x\" OR @"`, 6, 33},
		{"single quoted", `'deviceId IN [''a'', @]'`, 6, 33},
		{"literal block", "|\n      deviceId = 'a'\n      OR @", 8, 10},
		{"folded block", ">-\n      deviceId = 'a'\n        OR tags.x = @", 8, 21},
		{"expanded value points at the scalar", `"${vars.v} = @"`, 6, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := "version: 1\nname: q\nvars: {v: deviceId}\nsteps:\n  - name: a\n    query: " + tt.query + "\n    method: {name: m}\n"
			_, ds := Parse("q.yaml", []byte(src))
			if len(ds) != 1 || !strings.Contains(ds[0].Summary, "invalid query: unexpected character '@'") {
				t.Fatalf("got %s", describe(ds))
			}
			if r := ds[0].Range; r.Start.Line != tt.line || r.Start.Column != tt.column {
				t.Errorf("error at %d:%d, want %d:%d", r.Start.Line, r.Start.Column, tt.line, tt.column)
			}
			if ds[0].Path != "steps[0].query" {
				t.Errorf("path %q", ds[0].Path)
			}
		})
	}
}

func TestStartResolve(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	at := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		start Start
		want  time.Time
	}{
		"zero is now": {Start{}, now},
		"now":         {Start{Now: true}, now},
		"at":          {Start{At: at}, at},
		"after":       {Start{After: time.Hour}, now.Add(time.Hour)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tt.start.Resolve(now); !got.Equal(tt.want) {
				t.Errorf("Resolve = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOrder(t *testing.T) {
	t.Parallel()
	step := func(name string, after ...string) *Step { return &Step{Name: name, After: after} }
	tests := map[string]struct {
		steps []*Step
		want  string
	}{
		"file order":       {[]*Step{step("a"), step("b", "a"), step("c", "b")}, "a b c"},
		"dependency first": {[]*Step{step("a", "c"), step("b"), step("c")}, "b c a"},
		"diamond":          {[]*Step{step("d", "b", "c"), step("c", "a"), step("b", "a"), step("a")}, "a c b d"},
		"unknown ignored":  {[]*Step{step("a", "zzz"), step("b")}, "a b"},
		"cycle goes last":  {[]*Step{step("a", "b"), step("b", "a"), step("c")}, "c a b"},
		"empty":            {nil, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, s := range (&Plan{Steps: tt.steps}).Order() {
				got = append(got, s.Name)
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("Order = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestValidateCodeBuiltPlan(t *testing.T) {
	t.Parallel()
	p := &Plan{
		Version: 1,
		Name:    "code",
		Steps: []*Step{
			{Name: "a", Query: "*", After: []string{"b"}, MaxExecutionTime: time.Hour,
				Method: &Method{Name: "m", ResponseTimeout: time.Second}},
			{Name: "b", Query: "*", After: []string{"a"}, MaxExecutionTime: time.Hour,
				Twin: &Twin{ETag: "*"}, Cron: "bad", Start: Start{After: time.Minute}},
			{Name: "c", Query: "*", Rollout: &Rollout{Batches: []Batch{{Percent: 50}, {Percent: 10}}}},
		},
	}
	var got []string
	for _, d := range p.Validate() {
		got = append(got, d.Path+": "+d.Summary)
	}
	want := []string{
		`steps[0].method.responseTimeout: responseTimeout 1s is out of range`,
		`steps[1].twin: twin patch has neither desired nor tags`,
		`steps[1].cron: start and cron cannot both be set`,
		`steps[1].cron: invalid cron expression "bad": expected exactly 5 fields, found 1: [bad]`,
		`steps[2]: step "c" has no action`,
		`steps[2].maxExecutionTime: maxExecutionTime must be more than zero`,
		`steps[2].rollout.batches[1]: batches must increase: 10% is not more than 50% (batches[0])`,
		`steps[0].after[0]: steps form a cycle: a → b → a`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseRetryVerify(t *testing.T) {
	t.Parallel()
	p, ds := Load("testdata/valid/retry-verify.yaml", testOptions()...)
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	fw, rb := p.Steps[0], p.Steps[1]
	if r := fw.Retry; r == nil || r.Attempts != 2 || r.Backoff != time.Minute || len(r.On) != 1 || r.On[0] != OfflineClass {
		t.Errorf("firmware retry %+v", fw.Retry)
	}
	if v := fw.Verify; v == nil || v.Query != "properties.reported.firmware = '2.4.1'" || v.Timeout != 15*time.Minute {
		t.Errorf("firmware verify %+v", fw.Verify)
	}
	if fw.OnlyPassed || !rb.OnlyPassed {
		t.Errorf("onlyPassed: firmware %v reboot %v", fw.OnlyPassed, rb.OnlyPassed)
	}
	// Defaults: every failure class, no backoff; verify waits 10 minutes.
	if r := rb.Retry; r == nil || r.Attempts != 3 || r.Backoff != 0 || len(r.On) != 3 {
		t.Errorf("reboot retry %+v", rb.Retry)
	}
	if v := rb.Verify; v == nil || v.Timeout != 10*time.Minute {
		t.Errorf("reboot verify %+v", rb.Verify)
	}
}

func TestParseCronLong(t *testing.T) {
	t.Parallel()
	p, ds := Load("testdata/valid/cron-long.yaml", testOptions()...)
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	sync, ping := p.Steps[0], p.Steps[1]
	want := CronPolicy{Timezone: "Europe/Berlin", Concurrency: ReplaceOverlap, StartingDeadline: 10 * time.Minute}
	if sync.Cron != "0 2 * * *" || sync.CronPolicy != want || sync.CronPolicy.Location().String() != "Europe/Berlin" {
		t.Errorf("long form: %q %+v", sync.Cron, sync.CronPolicy)
	}
	if ping.Cron != "*/30 * * * *" || ping.CronPolicy != (CronPolicy{Concurrency: ForbidOverlap}) || ping.CronPolicy.Location() != time.UTC {
		t.Errorf("short form: %q %+v", ping.Cron, ping.CronPolicy)
	}
}
