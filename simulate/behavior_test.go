package simulate

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func mustParse(t *testing.T, src string) *Fleet {
	t.Helper()
	f, ds := Parse("test.yaml", []byte(src))
	if ds.HasErrors() {
		t.Fatalf("parse:\n%v", ds)
	}
	return f
}

func selected(devs []*Device) (offline, flapping []string) {
	for _, d := range devs {
		if d.Offline {
			offline = append(offline, d.ID)
		}
		if d.Flapping != nil {
			flapping = append(flapping, d.ID)
		}
	}
	return offline, flapping
}

func TestOfflineAndFlappingSelection(t *testing.T) {
	const src = `version: 1
seed: %d
groups:
  - ids: "d{n}"
    count: 1000
    offline: 5%%
    flapping: {fraction: 2%%, up: 10m, down: 1m}
  - ids: [solo]
    offline: 40%%
`
	fleet := func(seed int) []*Device { return mustParse(t, fmt.Sprintf(src, seed)).Devices() }
	a, b, c := fleet(42), fleet(42), fleet(43)
	offA, flapA := selected(a)
	offB, flapB := selected(b)
	offC, _ := selected(c)
	if len(offA) != 50 || len(flapA) != 20 {
		t.Errorf("offline %d, flapping %d; want 50 and 20", len(offA), len(flapA))
	}
	if !slices.Equal(offA, offB) || !slices.Equal(flapA, flapB) {
		t.Error("the same seed chose different devices")
	}
	if slices.Equal(offA, offC) {
		t.Error("a different seed chose the same offline devices")
	}
	for _, id := range flapA {
		if slices.Contains(offA, id) {
			t.Errorf("%s is both offline and flapping", id)
		}
	}
	// round(0.4 × 1) = 0: a one-device group with 40% offline stays online.
	if a[1000].ID != "solo" || a[1000].Offline {
		t.Errorf("solo = %+v", a[1000])
	}
	// Offline devices are spread over the group, not its first ids.
	first := 0
	for _, d := range a[:50] {
		if d.Offline {
			first++
		}
	}
	if first > 25 {
		t.Errorf("%d of the first 50 devices are offline: %v", first, offA)
	}
}

func TestDevicesAreIndependentCopies(t *testing.T) {
	f := mustParse(t, "version: 1\ngroups:\n  - ids: [a, b]\n    reported: {fw: {v: 1}}\n")
	devs := f.Devices()
	devs[0].Reported["fw"].(map[string]any)["v"] = 2.0
	devs[0].Tags["x"] = 1
	if devs[1].Reported["fw"].(map[string]any)["v"] != 1.0 || len(devs[1].Tags) != 0 {
		t.Errorf("devices share state: %v %v", devs[1].Reported, devs[1].Tags)
	}
	if f.Groups[0].Reported["fw"].(map[string]any)["v"] != 1.0 {
		t.Error("a device changed its group")
	}
}

func TestDeviceRNG(t *testing.T) {
	f := mustParse(t, "version: 1\nseed: 5\ngroups:\n  - ids: [a, b]\n")
	devs := f.Devices()
	again := mustParse(t, "version: 1\nseed: 5\ngroups:\n  - ids: [z, b]\n").Devices()
	other := mustParse(t, "version: 1\nseed: 6\ngroups:\n  - ids: [b]\n").Devices()
	draw := func(d *Device) uint64 { return d.RNG().Uint64() }
	if draw(devs[1]) != draw(again[1]) {
		t.Error("device b's generator depends on the other devices")
	}
	if draw(devs[0]) == draw(devs[1]) {
		t.Error("devices a and b share a generator")
	}
	if draw(devs[1]) == draw(other[0]) {
		t.Error("the fleet seed does not change the generator")
	}
}

func TestAnswer(t *testing.T) {
	f := mustParse(t, `version: 1
groups:
  - ids: [dev]
    methods:
      lockDoor: {payload: {locked: true}, latency: 20ms}
      reboot: {status: 202, disconnectFor: 30s, failureRate: 100%, failureStatus: 503}
      ping: {}
      "*": {status: 404, payload: "nope", latency: {median: 1ms}}
  - ids: [bare]
`)
	devs := f.Devices()
	dev, bare := devs[0], devs[1]
	tests := []struct {
		name   string
		d      *Device
		method string
		want   Answer
	}{
		{"fixed latency and payload", dev, "lockDoor", Answer{Status: 200, Payload: json.RawMessage(`{"locked":true}`), Latency: 20 * time.Millisecond}},
		{"defaults", dev, "ping", Answer{Status: 200, Payload: json.RawMessage(`null`)}},
		{"failure", dev, "reboot", Answer{Status: 503, Payload: json.RawMessage(`{"message":"simulated failure"}`)}},
		{"star fallback", dev, "other", Answer{Status: 404, Payload: json.RawMessage(`"nope"`), Latency: time.Millisecond}},
		{"not implemented", bare, "lockDoor", Answer{Status: 501,
			Payload: json.RawMessage(`{"message":"method 'lockDoor' is not implemented by this simulated device"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.d.Answer(tt.method, tt.d.RNG())
			if got.Status != tt.want.Status || string(got.Payload) != string(tt.want.Payload) ||
				got.Latency != tt.want.Latency || got.DisconnectFor != tt.want.DisconnectFor {
				t.Errorf("got %+v (%s), want %+v (%s)", got, got.Payload, tt.want, tt.want.Payload)
			}
		})
	}
	if a := dev.Answer("ping", nil); a.Status != 200 {
		t.Errorf("nil rng: %+v", a)
	}
}

func TestAnswerStatistics(t *testing.T) {
	const draws = 10000
	m := &Method{
		Status: 200, Payload: json.RawMessage(`{}`), FailureRate: 0.1, FailureStatus: 500,
		Latency:       Latency{Median: 200 * time.Millisecond, P99: 2 * time.Second},
		DisconnectFor: time.Minute,
	}
	d := &Device{ID: "stats", Methods: map[string]*Method{"reboot": m}, Seed: 7}
	rng := rand.New(rand.NewPCG(1, 2))
	failures := 0
	lat := make([]time.Duration, 0, draws)
	for range draws {
		a := d.Answer("reboot", rng)
		switch a.Status {
		case 500:
			failures++
			if a.DisconnectFor != 0 {
				t.Fatal("a failed call disconnects")
			}
		case 200:
			if a.DisconnectFor != time.Minute {
				t.Fatal("a successful call does not disconnect")
			}
		default:
			t.Fatalf("status %d", a.Status)
		}
		lat = append(lat, a.Latency)
	}
	// Binomial(10000, 0.1) has a standard deviation of 30; allow 4 of them.
	if failures < 880 || failures > 1120 {
		t.Errorf("%d failures in %d calls, want about 1000", failures, draws)
	}
	slices.Sort(lat)
	median, p99 := lat[draws/2], lat[draws*99/100]
	if rel(median, m.Latency.Median) > 0.05 {
		t.Errorf("median latency %v, want about %v", median, m.Latency.Median)
	}
	if rel(p99, m.Latency.P99) > 0.15 {
		t.Errorf("p99 latency %v, want about %v", p99, m.Latency.P99)
	}
	if lat[0] <= 0 || lat[draws-1] > 100*m.Latency.P99 {
		t.Errorf("latency range %v … %v", lat[0], lat[draws-1])
	}
}

func rel(got, want time.Duration) float64 {
	return math.Abs(float64(got-want)) / float64(want)
}

func TestLatencySampleEdges(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name string
		l    Latency
		want time.Duration
	}{
		{"zero", Latency{}, 0},
		{"fixed", Latency{Median: time.Second, P99: time.Second}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				if got := tt.l.Sample(rng); got != tt.want {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
	huge := Latency{Median: time.Duration(math.MaxInt64 / 4), P99: time.Duration(math.MaxInt64 / 2)}
	for range 1000 {
		if huge.Sample(rng) < 0 {
			t.Fatal("overflow")
		}
	}
}
