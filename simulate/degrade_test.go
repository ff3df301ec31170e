package simulate

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestParseDegrade(t *testing.T) {
	f, ds := Load("testdata/valid/degrade.yaml")
	if len(ds) > 0 {
		t.Fatal(ds)
	}
	want := []*Degrade{
		{When: map[string]any{"firmware": "2.4.1"}, After: 10 * time.Minute, Fraction: 0.3,
			Report: map[string]any{"health": map[string]any{"crashes": 5.0}}},
		{After: time.Hour, Fraction: 1,
			Report: map[string]any{"health": map[string]any{"status": "degraded", "errors": []any{"E42"}}}},
	}
	for i, g := range f.Groups {
		if !reflect.DeepEqual(g.Degrade, want[i]) {
			t.Errorf("groups[%d].degrade = %+v, want %+v", i, g.Degrade, want[i])
		}
	}
	counts := map[*Degrade]int{}
	for _, d := range f.Devices() {
		if d.Degrade != nil {
			counts[d.Degrade]++
		}
	}
	if counts[f.Groups[0].Degrade] != 6 || counts[f.Groups[1].Degrade] != 3 {
		t.Errorf("degrading devices per group: %d and %d, want 6 (30%% of 20) and 3", counts[f.Groups[0].Degrade], counts[f.Groups[1].Degrade])
	}
}

// degrading is the ids of a fleet file's devices chosen to degrade.
func degrading(t *testing.T, src string) []string {
	t.Helper()
	f, ds := Parse("f.yaml", []byte(src))
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	var ids []string
	for _, d := range f.Devices() {
		if d.Degrade != nil {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// TestDegradeChoice: round(fraction × n) devices, the same for the same
// seed whatever the offline and flapping choices, and another set for
// another seed.
func TestDegradeChoice(t *testing.T) {
	fleet := func(seed int, fraction, extra string) string {
		return fmt.Sprintf("version: 1\nseed: %d\ngroups:\n  - ids: \"d-{n}\"\n    count: 40\n%s    degrade: {%s report: {h: 1}}\n", seed, extra, fraction)
	}
	tests := []struct {
		name     string
		fraction string
		want     int
	}{
		{"default is every device", "", 40},
		{"a percentage", "fraction: 30%,", 12},
		{"rounded", "fraction: 0.01,", 0},
		{"rounded up", "fraction: 0.02,", 1},
		{"all", "fraction: 100%,", 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := degrading(t, fleet(42, tt.fraction, "")); len(got) != tt.want {
				t.Errorf("%d devices degrade, want %d", len(got), tt.want)
			}
		})
	}
	base := degrading(t, fleet(42, "fraction: 25%,", ""))
	if again := degrading(t, fleet(42, "fraction: 25%,", "")); !slices.Equal(base, again) {
		t.Errorf("same file, other devices: %v then %v", base, again)
	}
	others := degrading(t, fleet(42, "fraction: 25%,", "    offline: 20%\n    flapping: {fraction: 30%, up: 1m, down: 1m}\n"))
	if !slices.Equal(base, others) {
		t.Errorf("offline and flapping devices changed the choice: %v, then %v", base, others)
	}
	if reseeded := degrading(t, fleet(43, "fraction: 25%,", "")); slices.Equal(base, reseeded) {
		t.Errorf("another seed chose the same devices %v", base)
	}
	// And the other way round: a degrade block leaves offline and flapping
	// devices as they were.
	choice := func(src string) (off, flap []string) {
		f, ds := Parse("f.yaml", []byte(src))
		if ds.HasErrors() {
			t.Fatal(ds)
		}
		for _, d := range f.Devices() {
			if d.Offline {
				off = append(off, d.ID)
			}
			if d.Flapping != nil {
				flap = append(flap, d.ID)
			}
		}
		return off, flap
	}
	const without = "version: 1\nseed: 42\ngroups:\n  - ids: \"d-{n}\"\n    count: 40\n    offline: 20%\n    flapping: {fraction: 30%, up: 1m, down: 1m}\n"
	off1, flap1 := choice(without)
	off2, flap2 := choice(without + "    degrade: {fraction: 50%, report: {h: 1}}\n")
	if !slices.Equal(off1, off2) || !slices.Equal(flap1, flap2) {
		t.Errorf("a degrade block changed offline %v → %v or flapping %v → %v", off1, off2, flap1, flap2)
	}
}
