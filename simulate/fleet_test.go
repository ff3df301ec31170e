package simulate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/plan/diag"
)

const exampleFleet = "../examples/fleet.yaml"

func validFiles(t testing.TB) []string {
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no valid fixtures: %v", err)
	}
	return append(files, exampleFleet)
}

func TestParseValid(t *testing.T) {
	for _, file := range validFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			f, ds := Load(file)
			if len(ds) > 0 {
				t.Fatalf("unexpected diagnostics:\n%v", ds)
			}
			if f == nil || len(f.Groups) == 0 || f.File != file {
				t.Fatalf("fleet = %+v", f)
			}
			if len(f.Devices()) == 0 {
				t.Fatal("no devices")
			}
		})
	}
}

func TestParseSpecSample(t *testing.T) {
	f, ds := Load("testdata/valid/spec.yaml")
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	if f.Version != 1 || f.Seed != 42 || len(f.Groups) != 2 {
		t.Fatalf("fleet = %+v", f)
	}
	g := f.Groups[1]
	if len(g.IDs) != 250 || g.IDs[0] != "b43-0001" || g.IDs[249] != "b43-0250" {
		t.Errorf("ids = %d, %v … %v", len(g.IDs), g.IDs[0], g.IDs[len(g.IDs)-1])
	}
	if g.Range.Start.Line != 9 || g.Range.Filename != "testdata/valid/spec.yaml" {
		t.Errorf("range = %+v", g.Range)
	}
	want := &Method{
		Status: 200, Payload: json.RawMessage("null"),
		Latency:     Latency{Median: 200 * time.Millisecond, P99: 2 * time.Second},
		FailureRate: 0.02, FailureStatus: 500, DisconnectFor: 30 * time.Second,
	}
	if got := g.Methods["reboot"]; !reflect.DeepEqual(got, want) {
		t.Errorf("reboot = %+v, want %+v", got, want)
	}
	if got := g.Methods["*"]; got == nil || got.Status != 501 {
		t.Errorf(`"*" = %+v`, got)
	}
	if !reflect.DeepEqual(g.Desired, &Desired{Report: true, Delay: 5 * time.Second}) {
		t.Errorf("desired = %+v", g.Desired)
	}
	if g.Offline != 0.05 || !reflect.DeepEqual(g.Flapping, &Flapping{Fraction: 0.02, Up: 10 * time.Minute, Down: time.Minute}) {
		t.Errorf("offline = %v, flapping = %+v", g.Offline, g.Flapping)
	}
	if !reflect.DeepEqual(g.Reported, map[string]any{"firmware": "2.4.0"}) {
		t.Errorf("reported = %v", g.Reported)
	}
	if !reflect.DeepEqual(f.Groups[0].Tags, map[string]any{"building": "43", "floor": 3.0}) {
		t.Errorf("tags = %v", f.Groups[0].Tags)
	}
	if m := f.Groups[0].Methods["lockDoor"]; m.Latency != (Latency{20 * time.Millisecond, 20 * time.Millisecond}) {
		t.Errorf("lockDoor latency = %+v", m.Latency)
	}
}

// TestExampleFleet pins what the tutorial relies on.
func TestExampleFleet(t *testing.T) {
	f, ds := Load(exampleFleet)
	if len(ds) > 0 {
		t.Fatal(ds)
	}
	devs := f.Devices()
	if f.Seed != 42 || len(devs) != 301 {
		t.Fatalf("seed %d, %d devices", f.Seed, len(devs))
	}
	my := devs[0]
	if my.ID != "myDeviceId" || !reflect.DeepEqual(my.Tags, map[string]any{"building": "43", "floor": 3.0}) {
		t.Errorf("first device = %+v", my)
	}
	a := my.Answer("lockDoor", my.RNG())
	if a.Status != 200 || string(a.Payload) != `{"locked":true}` || a.Latency != 20*time.Millisecond {
		t.Errorf("lockDoor = %+v (payload %s)", a, a.Payload)
	}
	if my.Desired == nil || !my.Desired.Report {
		t.Errorf("desired = %+v", my.Desired)
	}
	buildings := map[any]int{}
	for _, d := range devs {
		if d.Offline || d.Flapping != nil {
			t.Errorf("%s is offline or flapping; the tutorial must be deterministic", d.ID)
		}
		buildings[d.Tags["building"]]++
	}
	if buildings["43"] != 151 || buildings["44"] != 150 {
		t.Errorf("buildings = %v", buildings)
	}
}

var errorMarker = regexp.MustCompile(`# ERROR: (.*)$`)

// TestParseInvalid checks the fixtures in testdata/invalid: each line
// marked "# ERROR: text" must get exactly one error diagnostic whose
// summary contains text, and unmarked lines none.
func TestParseInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no invalid fixtures")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want := map[int]string{}
			for i, line := range strings.Split(string(src), "\n") {
				if m := errorMarker.FindStringSubmatch(line); m != nil {
					want[i+1] = strings.TrimSpace(m[1])
				}
			}
			f, ds := Parse(file, src)
			if f != nil {
				t.Error("Parse returned a fleet despite errors")
			}
			got := map[int][]*diag.Diagnostic{}
			for _, d := range ds {
				if d.Severity != diag.Error {
					continue
				}
				if d.Range.Filename != file || d.Detail == "" {
					t.Errorf("diagnostic without file or hint: %v", d)
				}
				got[d.Range.Start.Line] = append(got[d.Range.Start.Line], d)
			}
			for line, text := range want {
				switch g := got[line]; {
				case len(g) == 0:
					t.Errorf("line %d: no error, want %q", line, text)
				case len(g) > 1:
					t.Errorf("line %d: %d errors, want one:\n%v", line, len(g), diag.Diagnostics(g))
				case !strings.Contains(g[0].Summary, text):
					t.Errorf("line %d: got %q, want it to contain %q", line, g[0].Summary, text)
				}
			}
			for line, g := range got {
				if _, ok := want[line]; !ok {
					t.Errorf("line %d: unexpected error(s):\n%v", line, diag.Diagnostics(g))
				}
			}
		})
	}
}

func TestPatternExpansion(t *testing.T) {
	tests := []struct {
		name, pattern string
		count         int
		want          []string // the first ids
		last          string
	}{
		{"plain", "dev{n}", 12, []string{"dev1", "dev2"}, "dev12"},
		{"padded", "b43-{n:04}", 250, []string{"b43-0001", "b43-0002"}, "b43-0250"},
		{"overflow", "x{n:02}y", 120, []string{"x01y", "x02y"}, "x120y"},
		{"leading", "{n:03}", 3, []string{"001", "002", "003"}, "003"},
		{"one", "solo-{n}", 1, []string{"solo-1"}, "solo-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "version: 1\ngroups:\n  - ids: \"" + tt.pattern + "\"\n    count: " + itoa(tt.count) + "\n"
			f, ds := Parse("p.yaml", []byte(src))
			if ds.HasErrors() {
				t.Fatal(ds)
			}
			ids := f.Groups[0].IDs
			if len(ids) != tt.count || !reflect.DeepEqual(ids[:len(tt.want)], tt.want) || ids[len(ids)-1] != tt.last {
				t.Errorf("ids = %d: %v … %v", len(ids), ids[:min(3, len(ids))], ids[len(ids)-1])
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestDiagnosticPositions checks that a bad character is pointed at
// exactly, not just at the start of its value.
func TestDiagnosticPositions(t *testing.T) {
	src := "version: 1\ngroups:\n  - ids: \"abc/{n}\"\n    count: 2\n"
	_, ds := Parse("p.yaml", []byte(src))
	if len(ds) != 1 {
		t.Fatalf("diagnostics:\n%v", ds)
	}
	if r := ds[0].Range; r.Start.Line != 3 || r.Start.Column != 14 || r.End.Column != 15 || ds[0].Path != "groups[0].ids" {
		t.Errorf("range = %+v, path %q", r, ds[0].Path)
	}
}

func TestLoadMissingFile(t *testing.T) {
	f, ds := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if f != nil || len(ds) != 1 || !strings.Contains(ds[0].Summary, "cannot read fleet file") || ds[0].Detail == "" {
		t.Fatalf("f = %v, diagnostics:\n%v", f, ds)
	}
}

func TestFleetSizeLimit(t *testing.T) {
	src := "version: 1\ngroups:\n  - ids: \"a{n}\"\n    count: 5\n  - ids: \"b{n}\"\n    count: 999999\n"
	_, ds := Parse("big.yaml", []byte(src))
	if len(ds) != 1 || ds[0].Range.Start.Line != 6 || !strings.Contains(ds[0].Summary, "exceeds 1000000 devices") {
		t.Fatalf("diagnostics:\n%v", ds)
	}
}

func FuzzParseFleet(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	seeds = append(seeds, exampleFleet)
	for _, file := range seeds {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		fleet, ds := Parse("fuzz.yaml", src)
		if (fleet == nil) != ds.HasErrors() {
			t.Fatalf("fleet %v with diagnostics:\n%v", fleet != nil, ds)
		}
		// yaml.v3 counts a lone CR as a line break and plan/diag does not,
		// so byte offsets are only checked for files without one.
		loneCR := bytes.Contains(bytes.ReplaceAll(src, []byte("\r\n"), nil), []byte("\r"))
		for _, d := range ds {
			r := d.Range
			if r.Filename != "fuzz.yaml" || r.Start.Line < 1 ||
				!loneCR && (r.Start.Byte > len(src) || r.End.Byte < r.Start.Byte && r.End.Line != 0) {
				t.Fatalf("bad range %+v for %q", r, d.Summary)
			}
		}
		if fleet == nil {
			return
		}
		n := 0
		for _, g := range fleet.Groups {
			n += len(g.IDs)
		}
		if n > 10000 {
			return // expanding is linear and tested elsewhere; keep the fuzzer fast
		}
		for _, d := range fleet.Devices() {
			for name := range d.Methods {
				d.Answer(name, d.RNG())
			}
			d.Answer("unknown", d.RNG())
		}
	})
}
