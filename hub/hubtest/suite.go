package hubtest

import (
	"context"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
)

// FleetYAML is the fleet file (the simulator's format) whose devices
// every hub under test holds: a device answering lockDoor with a payload
// (and pause after 1.5 s, slow after 20 s), one whose lockDoor always
// fails with 500, one that never connects, and one echoing desired
// patches into its reported properties. Three of them carry tags.x = 'y'.
const FleetYAML = `
version: 1
groups:
  - ids: [lock-ok]
    tags: {x: "y", role: lock}
    methods:
      lockDoor: {status: 200, payload: {locked: true}}
      pause: {status: 200, latency: 1500ms}
      slow: {status: 200, latency: 20s}
  - ids: [lock-fail]
    tags: {x: "y", role: lock}
    methods:
      lockDoor: {failureRate: 100%}
  - ids: [lock-offline]
    tags: {x: "z", role: lock}
    offline: 100%
    methods:
      lockDoor: {status: 200}
  - ids: [echo]
    tags: {x: "y", role: sensor}
    reported: {firmware: "1.0"}
    desired: {report: true}
`

// fleetIDs are FleetYAML's device ids, sorted.
var fleetIDs = []string{"echo", "lock-fail", "lock-offline", "lock-ok"}

// Harness is one hub under test, made for one case by the caller's open
// function (see [Run]).
type Harness struct {
	// Client is the implementation under test.
	Client hub.Client

	// Connect brings device id online, as a device that connects to the
	// hub with key (the primary key the hub holds for it): a device of
	// FleetYAML behaves as the file says, except that it connects even
	// where the file says it never does (lock-offline); any other id
	// answers no method (501). It returns once the device is connected
	// and subscribed (the hub may record its connection state a moment
	// later), with a function that disconnects it (safe to call more than
	// once), or an error when the hub refuses the device (a disabled one,
	// a wrong key).
	//
	// Connect is nil for a hub whose devices are online only as the fleet
	// file says, without connections or credentials (the dry-run's
	// in-process devices): the checks that need a device to come online,
	// to be refused or to lose its connection are then skipped, each
	// saying so.
	Connect func(ctx context.Context, id, key string) (disconnect func(), err error)

	// NoConnectionStates, when not empty, says why the hub does not record
	// its devices' connection states (every device reads Disconnected):
	// the checks that need a device recorded Connected are then skipped
	// with it as the reason.
	NoConnectionStates string
}

// Run runs the conformance suite of hub.Client: every case as a parallel
// subtest of t, on a hub of its own that open returns. open makes the
// hub, arranges for it to be closed when the test ends (t.Cleanup) and
// returns only once it holds FleetYAML's devices, each with the file's
// tags and reported properties and with enabled status, and every device
// the file does not say is offline is online (and, unless
// NoConnectionStates says otherwise, recorded Connected). The hub holds
// nothing else: no other device, no job.
//
// The cases pin the service API's answers as Azure IoT Hub gives them
// (README "The hub"): registry, twins with their etags and versions,
// direct methods with their timeouts, queries with paging, jobs from
// creation to their per-device records, and the error code of each
// refusal.
func Run(t *testing.T, open func(t *testing.T) *Harness) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
}

// cases is the suite: each case gets a hub and a fleet of its own.
var cases = []struct {
	name string
	run  func(t *testing.T, h *Harness)
}{
	{"devices", testDevices},
	{"twins", testTwins},
	{"desiredEcho", testDesiredEcho},
	{"methods", testMethods},
	{"methodConnectTimeout", testMethodConnectTimeout},
	{"deleteConnected", testDeleteConnected},
	{"query", testQuery},
	{"jobMethod", testJobMethod},
	{"jobUpdateTwin", testJobUpdateTwin},
	{"jobScheduleCancelList", testJobScheduleCancelList},
	{"jobErrors", testJobErrors},
	{"jobDefaults", testJobDefaults},
	{"jobTimeouts", testJobTimeouts},
	{"jobConnectTimeout", testJobConnectTimeout},
	{"jobCancelInFlight", testJobCancelInFlight},
	{"jobTwinETag", testJobTwinETag},
	{"jobLimits", testJobLimits},
	{"jobRecordsQuery", testJobRecordsQuery},
	{"disableDevice", testDisableDevice},
	{"bulkImport", testBulkImport},
	{"replaceTwin", testReplaceTwin},
	{"clearTwin", testClearTwin},
}

// needConnect skips the test unless the hub's devices can be brought
// online one by one.
func needConnect(t *testing.T, h *Harness, why string) {
	t.Helper()
	if h.Connect == nil {
		t.Skipf("%s; this hub's devices are online only as the fleet file says (Harness.Connect is nil)", why)
	}
}

// needConnectionStates skips the test unless the hub records its devices'
// connection states.
func needConnectionStates(t *testing.T, h *Harness) {
	t.Helper()
	if h.NoConnectionStates != "" {
		t.Skipf("the hub records no connection states: %s", h.NoConnectionStates)
	}
}

// connectOffline connects the fleet's lock-offline device after all, for
// the rest of the test.
func connectOffline(ctx context.Context, t *testing.T, h *Harness) {
	t.Helper()
	d, err := h.Client.GetDevice(ctx, "lock-offline")
	Must(t, "get lock-offline", err)
	disconnect, err := h.Connect(ctx, "lock-offline", d.Authentication.SymmetricKey.PrimaryKey)
	Must(t, "connect lock-offline", err)
	t.Cleanup(disconnect)
}
