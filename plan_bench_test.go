package main

import (
	"context"
	"io"
	"os"
	"testing"
)

// BenchmarkDryRunWeek is the dry-run of a week of a nightly staged
// rollout over 10,000 simulated devices (testdata/bench): what
// `iotjobs plan --fleet testdata/bench/fleet-10k.yaml
// testdata/bench/week.yaml` does, in process. IOTJOBS_BENCH_PLAN names
// another plan for the same fleet (testdata/bench/week-method.yaml is the
// one-step week).
func BenchmarkDryRunWeek(b *testing.B) {
	planFile := "testdata/bench/week.yaml"
	if p := os.Getenv("IOTJOBS_BENCH_PLAN"); p != "" {
		planFile = p
	}
	for b.Loop() {
		code := run(context.Background(), []string{"iotjobs", "plan", "--fleet", "testdata/bench/fleet-10k.yaml", planFile}, nil, io.Discard, io.Discard)
		if code > 1 {
			b.Fatalf("plan exited %d", code)
		}
	}
}
