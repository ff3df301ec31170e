package engine

import (
	"context"
	"errors"

	"github.com/iotjobs/iotjobs/hub"
)

// maxEdgeDepth is how many IoT Edge devices may stand above one another
// (Azure's nested-edge limit of five layers).
const maxEdgeDepth = 5

// settleScopes fills in d's deviceScope and parentScopes from what the
// request gave, as Azure does:
//   - an IoT Edge device's deviceScope is its own, generated from its id
//     and generationId; another value is refused. Its parentScopes names
//     its parent edge device, when nested.
//   - a leaf device's deviceScope is its parent edge device's scope, and
//     its parentScopes that same scope (either may be given).
//
// Every parent must be an existing edge device whose scope is exactly the
// one named, not d itself nor below it, at most maxEdgeDepth high.
func (e *Engine) settleScopes(ctx context.Context, d *hub.Device) error {
	parents := d.ParentScopes.List()
	if len(parents) > 1 {
		return hub.Errorf(hub.CodeArgumentInvalid, "parentScopes of device '%s' holds %d scopes; a device has at most one parent edge device", d.DeviceID, len(parents))
	}
	parent := ""
	if len(parents) == 1 {
		parent = parents[0]
	}
	if d.Capabilities.IotEdge {
		own := hub.EdgeScope(d.DeviceID, d.GenerationID)
		if d.DeviceScope != "" && d.DeviceScope != own {
			return hub.Errorf(hub.CodeArgumentInvalid, "deviceScope %q of IoT Edge device '%s' is not its own (%s): the hub generates an edge device's scope; to nest it under a parent edge device, set parentScopes to the parent's deviceScope", d.DeviceScope, d.DeviceID, own)
		}
		d.DeviceScope = own
	} else {
		switch {
		case d.DeviceScope == "":
			d.DeviceScope = parent
		case parent != "" && parent != d.DeviceScope:
			return hub.Errorf(hub.CodeArgumentInvalid, "device '%s' has deviceScope %q but parentScopes [%q]: a leaf device's parent is its deviceScope; give one of them, or both the same", d.DeviceID, d.DeviceScope, parent)
		}
		parent = d.DeviceScope
	}
	if parent == "" {
		d.ParentScopes = hub.Scopes{}
		return nil
	}
	// Five layers of edge devices; a leaf may hang below the fifth.
	above := maxEdgeDepth
	if d.Capabilities.IotEdge {
		above--
	}
	if err := e.checkParent(ctx, d.DeviceID, parent, above); err != nil {
		return err
	}
	d.ParentScopes = hub.MakeScopes(parent)
	return nil
}

// checkParent checks that scope names an existing IoT Edge device that is
// not id and has id nowhere above it, with at most above edge devices
// from it up. (Moving an edge device checks the layers above it, not
// those of the devices already below it.)
func (e *Engine) checkParent(ctx context.Context, id, scope string, above int) error {
	for depth := 1; scope != ""; depth++ {
		pid, ok := hub.EdgeScopeDevice(scope)
		if !ok {
			return hub.Errorf(hub.CodeArgumentInvalid, "scope %q is not an IoT Edge device scope (%s{deviceId}-{generationId}); read the parent edge device's deviceScope", scope, hub.EdgeScopePrefix)
		}
		if pid == id {
			return hub.Errorf(hub.CodeArgumentInvalid, "device '%s' cannot be its own parent or stand below itself (scope %q)", id, scope)
		}
		if depth > above {
			return hub.Errorf(hub.CodeArgumentInvalid, "device '%s' would stand below %d or more IoT Edge devices; Azure allows %d layers of them", id, depth, maxEdgeDepth)
		}
		p, err := e.store.GetDevice(ctx, pid)
		if err != nil {
			if errors.Is(storeErr(err, hub.CodeDeviceNotFound, "device", pid), hub.ErrDeviceNotFound) {
				return hub.Errorf(hub.CodeArgumentInvalid, "parent scope %q names device '%s', which does not exist: create the edge device first", scope, pid)
			}
			return storeErr(err, hub.CodeDeviceNotFound, "device", pid)
		}
		if !p.Capabilities.IotEdge {
			return hub.Errorf(hub.CodeArgumentInvalid, "parent scope %q names device '%s', which is not an IoT Edge device (capabilities.iotEdge is false)", scope, pid)
		}
		if p.DeviceScope != scope {
			return hub.Errorf(hub.CodeArgumentInvalid, "parent scope %q is not the scope of IoT Edge device '%s' (%s): it was deleted and created again; read its deviceScope", scope, pid, p.DeviceScope)
		}
		scope = p.ParentScopes.List0()
	}
	return nil
}
