package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
)

// IoT Edge scopes: an edge device's is generated; a leaf names its parent
// edge device by scope; edge devices nest by parentScopes; every bad
// reference is refused with a message naming it.
func TestEdgeScopes(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.Real())
	ctx := context.Background()
	create := func(d hub.Device) (*hub.Device, error) { return e.CreateDevice(ctx, &d) }
	edge := hub.Capabilities{IotEdge: true}

	gw, err := create(hub.Device{DeviceID: "gw-1", Capabilities: edge})
	if err != nil {
		t.Fatal(err)
	}
	if want := "ms-azure-iot-edge://gw-1-" + gw.GenerationID; gw.DeviceScope != want || !gw.ParentScopes.IsZero() {
		t.Fatalf("edge device scope %q parents %v, want %q and none", gw.DeviceScope, gw.ParentScopes.List(), want)
	}
	leaf, err := create(hub.Device{DeviceID: "leaf", DeviceScope: gw.DeviceScope})
	if err != nil {
		t.Fatal(err)
	}
	if leaf.DeviceScope != gw.DeviceScope || leaf.ParentScopes.List0() != gw.DeviceScope {
		t.Errorf("leaf scope %q parents %v, want the gateway's", leaf.DeviceScope, leaf.ParentScopes.List())
	}
	byParents, err := create(hub.Device{DeviceID: "leaf2", ParentScopes: hub.MakeScopes(gw.DeviceScope)})
	if err != nil || byParents.DeviceScope != gw.DeviceScope {
		t.Errorf("leaf by parentScopes: %v, scope %q", err, byParents.DeviceScope)
	}
	nested, err := create(hub.Device{DeviceID: "gw-2", Capabilities: edge, ParentScopes: hub.MakeScopes(gw.DeviceScope)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(nested.DeviceScope, "ms-azure-iot-edge://gw-2-") || nested.ParentScopes.List0() != gw.DeviceScope {
		t.Errorf("nested edge scope %q parents %v", nested.DeviceScope, nested.ParentScopes.List())
	}
	tw, err := e.GetTwin(ctx, "gw-2")
	if err != nil || tw.DeviceScope != nested.DeviceScope || tw.ParentScopes.List0() != gw.DeviceScope || !tw.Capabilities.IotEdge {
		t.Errorf("nested edge twin: %v %+v", err, tw)
	}
	// The query language sees the scopes.
	page, err := e.Query(ctx, "SELECT deviceId FROM devices WHERE deviceScope = '"+gw.DeviceScope+"' AND capabilities.iotEdge = false", hub.QueryOptions{PageSize: 100})
	if err != nil || len(page.Items) != 2 {
		t.Errorf("query by deviceScope: %v, %d rows, want 2 leaves", err, len(page.Items))
	}

	// A leaf moved under the nested gateway by update.
	moved, err := e.UpdateDevice(ctx, &hub.Device{DeviceID: "leaf", DeviceScope: nested.DeviceScope}, "*")
	if err != nil || moved.DeviceScope != nested.DeviceScope || moved.ParentScopes.List0() != nested.DeviceScope {
		t.Errorf("move leaf: %v %+v", err, moved)
	}
	// An update that names no scope keeps them.
	kept, err := e.UpdateDevice(ctx, &hub.Device{DeviceID: "leaf", Status: hub.StatusDisabled}, "*")
	if err != nil || kept.DeviceScope != nested.DeviceScope {
		t.Errorf("update without scopes: %v, scope %q", err, kept.DeviceScope)
	}

	for _, tc := range []struct {
		name string
		dev  hub.Device
		want string // in the message
	}{
		{"edge scope given", hub.Device{DeviceID: "gw-x", Capabilities: edge, DeviceScope: gw.DeviceScope}, "generates an edge device's scope"},
		{"not a scope", hub.Device{DeviceID: "l-x", DeviceScope: "gw-1"}, "not an IoT Edge device scope"},
		{"missing parent", hub.Device{DeviceID: "l-x", DeviceScope: "ms-azure-iot-edge://nope-1"}, "does not exist"},
		{"leaf as parent", hub.Device{DeviceID: "l-x", DeviceScope: "ms-azure-iot-edge://leaf-" + leaf.GenerationID}, "not an IoT Edge device"},
		{"stale generation", hub.Device{DeviceID: "l-x", DeviceScope: "ms-azure-iot-edge://gw-1-1"}, "deleted and created again"},
		{"two parents", hub.Device{DeviceID: "l-x", ParentScopes: hub.MakeScopes(gw.DeviceScope, nested.DeviceScope)}, "at most one parent"},
		{"scope and parent differ", hub.Device{DeviceID: "l-x", DeviceScope: gw.DeviceScope, ParentScopes: hub.MakeScopes(nested.DeviceScope)}, "give one of them"},
	} {
		_, err := create(tc.dev)
		if hub.ErrorCode(err) != hub.CodeArgumentInvalid || !strings.Contains(hub.ErrorMessage(err), tc.want) {
			t.Errorf("%s: %v; want ArgumentInvalid saying %q", tc.name, err, tc.want)
		}
		if _, gerr := e.GetDevice(ctx, tc.dev.DeviceID); gerr == nil && tc.dev.DeviceID != "gw-1" {
			t.Errorf("%s: the refused device was stored", tc.name)
		}
	}
	// gw-1 cannot be put under gw-2, which stands below it.
	_, err = e.UpdateDevice(ctx, &hub.Device{DeviceID: "gw-1", ParentScopes: hub.MakeScopes(nested.DeviceScope)}, "*")
	if hub.ErrorCode(err) != hub.CodeArgumentInvalid || !strings.Contains(hub.ErrorMessage(err), "below itself") {
		t.Errorf("cycle: %v", err)
	}
	// Five layers of edge devices, and no sixth.
	parent := nested.DeviceScope
	for i := 3; i <= 5; i++ {
		d, err := create(hub.Device{DeviceID: "gw-" + string(rune('0'+i)), Capabilities: edge, ParentScopes: hub.MakeScopes(parent)})
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		parent = d.DeviceScope
	}
	_, err = create(hub.Device{DeviceID: "gw-6", Capabilities: edge, ParentScopes: hub.MakeScopes(parent)})
	if hub.ErrorCode(err) != hub.CodeArgumentInvalid || !strings.Contains(hub.ErrorMessage(err), "layers") {
		t.Errorf("sixth layer: %v", err)
	}
	if _, err := create(hub.Device{DeviceID: "leaf-5", DeviceScope: parent}); err != nil {
		t.Errorf("a leaf below the fifth layer: %v", err)
	}
}
