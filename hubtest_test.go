package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/hubtest"
)

// TestHubtestFleetHub runs the hub.Client conformance suite (hub/hubtest)
// against the dry-run's in-process hub, fleetHub: the engine over an
// in-memory store whose devices are the suite's fleet file's, simulated
// in process. It runs on the real clock, as plan and check with --fleet
// read it (the suite's deadlines and schedules are wall-clock ones); the
// dry-run's virtual clock changes when things happen, not what the hub
// answers.
//
// Its devices are online only as the fleet file says, with no credentials
// and no connection to drop, so the suite cannot bring one online (no
// Connect): the checks that need that skip, saying so.
func TestHubtestFleetHub(t *testing.T) {
	fleet := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(fleet, []byte(hubtest.FleetYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	hubtest.Run(t, func(t *testing.T) *hubtest.Harness {
		var stderr strings.Builder
		e, closeHub, err := fleetHub(context.Background(), &stderr, fleet, clock.Real(), nil)
		if err != nil {
			t.Fatalf("fleet hub: %v\n%s", err, stderr.String())
		}
		t.Cleanup(closeHub)
		return &hubtest.Harness{Client: e}
	})
}
