package simulate

import (
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
)

// Device is one simulated device, expanded from its group.
type Device struct {
	ID string
	// Tags and Reported are the device's own copies of its group's values
	// (never nil), so a simulator may change them.
	Tags, Reported map[string]any
	// Methods is shared with the device's group and must not be changed.
	Methods map[string]*Method
	// Desired is nil when the device does not echo desired patches.
	Desired *Desired
	// Offline devices never connect.
	Offline bool
	// Flapping is non-nil only for devices chosen to flap.
	Flapping *Flapping
	// Degrade is non-nil only for devices chosen to degrade; it is shared
	// with the device's group and must not be changed.
	Degrade *Degrade
	// Seed seeds the device's own random generator; see [Device.RNG].
	Seed int64
	// Auth is the device's authentication kind, its group's (hub.AuthSAS,
	// hub.AuthSelfSigned or hub.AuthCertificateAuthority; "" is sas).
	Auth string
	// cert is an X.509 device's certificate, made by Register.
	cert *tls.Certificate
}

// Answer is a device's reply to one direct-method call: the status and
// payload to send after Latency, and for how long to disconnect
// afterwards (zero for not at all).
type Answer struct {
	Status        int
	Payload       json.RawMessage
	Latency       time.Duration
	DisconnectFor time.Duration
}

// Devices expands every group into its devices, in file order. Which
// devices of a group are offline or flap is chosen from the fleet's seed:
// round(fraction × size) of them, so the same file always gives the same
// fleet. Flapping devices are chosen among those that are not offline.
// Degrading devices are chosen apart, from a random stream of their own,
// so adding or changing a group's degrade block changes neither which
// devices are offline or flap nor the other way round (an offline device
// may be chosen, and then never degrades, as it never connects).
func (f *Fleet) Devices() []*Device {
	total := 0
	for _, g := range f.Groups {
		total += len(g.IDs)
	}
	out := make([]*Device, 0, total)
	for gi, g := range f.Groups {
		n := len(g.IDs)
		rng := rand.New(rand.NewPCG(uint64(f.Seed), 0x5eed_0000_0000+uint64(gi)))
		// A partial Fisher–Yates shuffle: the first nOff indices are the
		// offline devices, the next nFlap the flapping ones.
		order := make([]int32, n)
		for i := range order {
			order[i] = int32(i)
		}
		nOff := pick(g.Offline, n)
		nFlap := 0
		if g.Flapping != nil {
			nFlap = min(pick(g.Flapping.Fraction, n), n-nOff)
		}
		for i := 0; i < nOff+nFlap; i++ {
			j := i + rng.IntN(n-i)
			order[i], order[j] = order[j], order[i]
		}
		offline := make(map[int32]bool, nOff)
		flapping := make(map[int32]bool, nFlap)
		for _, i := range order[:nOff] {
			offline[i] = true
		}
		for _, i := range order[nOff : nOff+nFlap] {
			flapping[i] = true
		}
		degrading := chooseDegrading(f.Seed, gi, g.Degrade, n)
		for i, id := range g.IDs {
			d := &Device{
				ID:       id,
				Tags:     cloneObject(g.Tags),
				Reported: cloneObject(g.Reported),
				Methods:  g.Methods,
				Desired:  g.Desired,
				Offline:  offline[int32(i)],
				Seed:     deviceSeed(f.Seed, id),
				Auth:     g.Auth,
			}
			if flapping[int32(i)] {
				d.Flapping = g.Flapping
			}
			if degrading != nil && degrading[i] {
				d.Degrade = g.Degrade
			}
			out = append(out, d)
		}
	}
	return out
}

// chooseDegrading marks which of a group's n devices degrade: round(
// fraction × n) of them, by a partial Fisher–Yates shuffle on the group's
// degrade stream of the fleet seed. It is nil when the group has no
// degrade block.
func chooseDegrading(seed int64, group int, dg *Degrade, n int) []bool {
	if dg == nil {
		return nil
	}
	chosen := make([]bool, n)
	k := pick(dg.Fraction, n)
	if k == n {
		for i := range chosen {
			chosen[i] = true
		}
		return chosen
	}
	// A stream apart from the offline/flapping one (0x5eed…), so that the
	// two choices do not depend on each other.
	rng := rand.New(rand.NewPCG(uint64(seed), 0xde9a_0000_0000+uint64(group)))
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	for i := 0; i < k; i++ {
		j := i + rng.IntN(n-i)
		order[i], order[j] = order[j], order[i]
	}
	for _, i := range order[:k] {
		chosen[i] = true
	}
	return chosen
}

// pick is how many of n devices a fraction selects.
func pick(fraction float64, n int) int {
	k := int(math.Round(fraction * float64(n)))
	return min(max(k, 0), n)
}

// deviceSeed derives a device's seed from the fleet seed and its id, so
// that a device behaves the same whatever else is in the fleet.
func deviceSeed(fleetSeed int64, id string) int64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(fleetSeed))
	h.Write(b[:])
	h.Write([]byte(id))
	return int64(h.Sum64())
}

// RNG returns a random generator seeded from the device's seed (the fleet
// seed and the device id). Every call returns a new generator in the same
// initial state; keep the one you get.
func (d *Device) RNG() *rand.Rand {
	return rand.New(rand.NewPCG(uint64(d.Seed), 0x9e37_79b9_7f4a_7c15))
}

// Answer decides what the device answers to a call of method name: the
// behaviour listed for name, or for "*" when name is not listed; with
// neither, status 501 and a message saying the method is not implemented.
// A call fails with the method's FailureStatus and payload
// {"message":"simulated failure"} with probability FailureRate; only a
// successful call disconnects the device afterwards. The latency is
// sampled from the method's distribution. rng supplies all randomness (a
// nil rng uses a fresh [Device.RNG]).
func (d *Device) Answer(name string, rng *rand.Rand) Answer {
	if rng == nil {
		rng = d.RNG()
	}
	m := d.Methods[name]
	if m == nil {
		m = d.Methods["*"]
	}
	if m == nil {
		msg, _ := json.Marshal(map[string]string{
			"message": fmt.Sprintf("method '%s' is not implemented by this simulated device", name),
		})
		return Answer{Status: 501, Payload: msg}
	}
	a := Answer{Latency: m.Latency.Sample(rng)}
	if m.FailureRate > 0 && rng.Float64() < m.FailureRate {
		a.Status = m.FailureStatus
		a.Payload = json.RawMessage(`{"message":"simulated failure"}`)
		return a
	}
	a.Status = m.Status
	a.Payload = m.Payload
	if a.Payload == nil {
		a.Payload = json.RawMessage("null")
	}
	a.DisconnectFor = m.DisconnectFor
	return a
}

// z99 is the 99th percentile of the standard normal distribution.
const z99 = 2.3263478740408408

// Sample draws one latency: the median itself when the distribution is
// fixed, otherwise a log-normal draw with the given median and 99th
// percentile (capped at 100 × p99, so a freak draw cannot stall a run).
func (l Latency) Sample(rng *rand.Rand) time.Duration {
	if l.P99 <= l.Median || l.Median <= 0 {
		return l.Median
	}
	mu := math.Log(float64(l.Median))
	sigma := math.Log(float64(l.P99)/float64(l.Median)) / z99
	v := math.Exp(mu + sigma*rng.NormFloat64())
	if limit := 100 * float64(l.P99); v > limit || math.IsNaN(v) {
		v = limit
	}
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(v)
}

func cloneObject(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneJSON(v)
	}
	return out
}

func cloneJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneObject(v)
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = cloneJSON(x)
		}
		return s
	}
	return v
}
