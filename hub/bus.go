package hub

import (
	"context"
	"encoding/json"
	"errors"
)

// DeviceBus is how the engine reaches devices: over MQTT through the
// embedded or an external broker, or in-process to simulated devices for a
// dry-run. Deadlines come from ctx (made with the engine's Clock).
type DeviceBus interface {
	// InvokeMethod sends a method request to a device and waits for its
	// answer until ctx ends. Errors: DeviceNotOnline when the device is
	// not connected and subscribed to methods; GatewayTimeout when ctx
	// ends first.
	InvokeMethod(ctx context.Context, deviceID, method string, payload json.RawMessage) (*MethodResponse, error)
	// WaitOnline returns nil once the device is connected and subscribed
	// to method requests, or ctx.Err() when ctx ends first. A device online
	// already gives nil even when ctx has ended, so an ended ctx asks
	// "online now?" without waiting.
	WaitOnline(ctx context.Context, deviceID string) error
	// PushDesired delivers a desired-properties patch (with "$version") to
	// a device if it is connected and subscribed; otherwise it does
	// nothing, as Azure does not queue them.
	PushDesired(ctx context.Context, deviceID string, patch json.RawMessage, version int64) error
	// Kick disconnects a device, e.g. after it was disabled or deleted.
	Kick(deviceID string)
}

// ErrNotSent is returned (wrapped) by a DeviceBus for a request it could
// not send at all because it is down: the device was not asked, so it
// may be asked once the bus is back.
var ErrNotSent = errors.New("the device bus is down: the request was not sent")

// BusState is implemented by a DeviceBus that can lose its way to the
// devices as a whole (the hub's connection to an external broker): the
// engine starts no device operation while it is down, and goes on when it
// is back, so an outage costs waiting, not results.
type BusState interface {
	// Up reports whether devices can be reached now.
	Up() bool
	// WaitUp returns nil once they can (at once when they can now), or
	// ctx.Err() when ctx ends first.
	WaitUp(ctx context.Context) error
}

// DeviceEvents is what a DeviceBus reports to the engine: presence and the
// twin requests devices make.
type DeviceEvents interface {
	// DeviceConnected records a device's connection state.
	DeviceConnected(deviceID string, connected bool)
	// ReportedPatch merges a device's reported-properties patch into its
	// twin and returns the new reported $version.
	ReportedPatch(ctx context.Context, deviceID string, patch json.RawMessage) (int64, error)
	// TwinDocument returns the device's {"desired":…,"reported":…} as the
	// device protocol's twin GET answers it.
	TwinDocument(ctx context.Context, deviceID string) (json.RawMessage, error)
}
