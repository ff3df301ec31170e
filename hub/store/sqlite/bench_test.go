package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/sqlite"
)

// The query benchmark runs over a fleet of benchTwins() generated twins
// (1,000,000 unless IOTJOBS_BENCH_TWINS says otherwise). Loading a million
// twins takes minutes, so the database is built once and kept in
// IOTJOBS_BENCH_DIR (default: the user cache directory), named by size and
// generator version; delete it to rebuild.
//
//	go test -run '^$' -bench BenchmarkQuery -benchtime 5x -timeout 60m ./hub/store/sqlite
//
// Each query is timed to its last row, paging as the engine does (1,000
// rows a page, each page a new statement continuing after the last key).
// BenchmarkQuery/baselineOneLookup is the baseline: one pass over every
// twin with one JSON lookup each, the least any query that no index can
// narrow must pay.

// benchVersion changes whenever benchDevice changes, so a cached database
// of an older fleet is not reused.
const benchVersion = 2

func benchTwins(tb testing.TB) int {
	s := os.Getenv("IOTJOBS_BENCH_TWINS")
	if s == "" {
		return 1_000_000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1000 {
		tb.Fatalf("IOTJOBS_BENCH_TWINS=%q: want a number of twins of at least 1000", s)
	}
	return n
}

var (
	benchFirmware = []string{"2.4.1", "2.4.0", "2.3.9", "2.3.2", "2.2.0", "2.1.7", "1.9.3", "1.8.0"}
	benchRegions  = []string{"eu-west", "eu-north", "us-east", "us-west", "ap-south"}
	benchRings    = []string{"canary", "early", "broad"}
)

// benchDevice is device i of the benchmark fleet: 100 buildings with 20
// floors each, five regions, three rollout rings; reported firmware
// (skewed towards recent versions), temperature, battery and a nested
// connectivity object; the $version and $metadata a hub keeps.
func benchDevice(i int, at time.Time) *store.Device {
	r := rand.New(rand.NewPCG(uint64(i), benchVersion))
	tags := map[string]any{
		"building": fmt.Sprintf("b%03d", r.IntN(100)),
		"floor":    float64(1 + r.IntN(20)),
		"region":   benchRegions[r.IntN(len(benchRegions))],
		"ring":     benchRings[r.IntN(len(benchRings))],
		"model":    fmt.Sprintf("lock-%d", 100+r.IntN(4)*100),
	}
	desired := map[string]any{}
	if _, err := hub.MergeSection(desired, map[string]any{
		"telemetryInterval": float64(30 * (1 + r.IntN(4))),
		"firmware":          map[string]any{"version": benchFirmware[0]},
	}, at, 1, true); err != nil {
		panic(err)
	}
	fw := benchFirmware[min(r.IntN(12), len(benchFirmware)-1)]
	reported := map[string]any{}
	if _, err := hub.MergeSection(reported, map[string]any{
		"firmware":    map[string]any{"version": fw, "installedAt": at.Format(time.RFC3339)},
		"temperature": float64(150+r.IntN(300)) / 10,
		"battery":     float64(r.IntN(101)),
		"connectivity": map[string]any{
			"type": []string{"wifi", "lte", "ethernet"}[r.IntN(3)],
			"rssi": float64(-30 - r.IntN(60)),
		},
		"lastReboot": at.Add(-time.Duration(r.IntN(720)) * time.Hour).Format(time.RFC3339),
	}, at, 1+int64(r.IntN(50)), false); err != nil {
		panic(err)
	}
	reported["$version"] = float64(1 + r.IntN(50))
	return &store.Device{
		Device: hub.Device{
			DeviceID:          fmt.Sprintf("dev-%07d", i),
			ETag:              "MA==",
			Status:            hub.StatusEnabled,
			ConnectionState:   hub.Disconnected,
			StatusUpdatedTime: hub.Time{Time: at},
			LastActivityTime:  hub.Time{Time: at},
			Authentication: hub.Authentication{Type: "sas", SymmetricKey: hub.SymmetricKey{
				PrimaryKey: "cHJpbWFyeS1rZXktZm9yLWJlbmNobWFyaw==", SecondaryKey: "c2Vjb25kYXJ5LWtleS1mb3ItYmVuY2htYXJr",
			}},
		},
		Tags:     tags,
		Desired:  desired,
		Reported: reported,
		Version:  2,
	}
}

// benchStore opens the cached benchmark database, building it first if
// it is missing (into a temporary file renamed at the end, so an
// interrupted build is never mistaken for a complete one).
func benchStore(b *testing.B, n int) *sqlite.Store {
	b.Helper()
	dir := os.Getenv("IOTJOBS_BENCH_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			b.Fatalf("no cache directory for the benchmark database (set IOTJOBS_BENCH_DIR): %v", err)
		}
		dir = filepath.Join(cache, "iotjobs-bench")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("twins-%d-v%d.db", n, benchVersion))
	ctx := context.Background()
	if _, err := os.Stat(path); err != nil {
		tmp := path + ".building"
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(tmp + suffix)
		}
		b.Logf("building %s: %d twins (once; later runs reuse it)", path, n)
		start := time.Now()
		s, err := sqlite.Open(ctx, tmp)
		if err != nil {
			b.Fatal(err)
		}
		at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
		const batch = 10_000
		ds := make([]*store.Device, 0, batch)
		for i := 0; i < n; i++ {
			ds = append(ds, benchDevice(i, at))
			if len(ds) == batch || i == n-1 {
				if err := s.CreateDevices(ctx, ds); err != nil {
					b.Fatal(err)
				}
				ds = ds[:0]
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		b.Logf("built in %s", time.Since(start).Round(time.Second))
	}
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchIDs is an IN list of 100 device ids spread over the fleet.
func benchIDs(n int) string {
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("'dev-%07d'", i*(n/100)+37)
	}
	return "[" + strings.Join(ids, ", ") + "]"
}

func BenchmarkQuery(b *testing.B) {
	n := benchTwins(b)
	s := benchStore(b, n)
	ctx := context.Background()
	cases := []struct{ name, q string }{
		{"baselineOneLookup", "SELECT COUNT() AS n FROM devices WHERE IS_DEFINED(tags.building)"},
		{"tagEquality", "SELECT * FROM devices WHERE tags.building = 'b042'"},
		{"reportedRange", "SELECT * FROM devices WHERE properties.reported.temperature > 44.5"},
		{"in100Ids", "SELECT * FROM devices WHERE deviceId IN " + benchIDs(n)},
		{"groupByCount", "SELECT properties.reported.firmware.version AS fw, COUNT() AS n FROM devices GROUP BY properties.reported.firmware.version"},
	}
	for _, tc := range cases {
		q, err := query.Parse(tc.q)
		if err != nil {
			b.Fatalf("%s: %v", tc.name, err)
		}
		b.Run(tc.name, func(b *testing.B) {
			var rows int
			for b.Loop() {
				rows = 0
				after := ""
				for {
					page, err := s.QueryDevices(ctx, q, after, 1000)
					if err != nil {
						b.Fatal(err)
					}
					rows += len(page.Items)
					if page.After == "" {
						break
					}
					after = page.After
				}
			}
			b.ReportMetric(float64(rows), "rows")
		})
	}
}
