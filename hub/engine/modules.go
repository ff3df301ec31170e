package engine

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/hub/store"
)

// Module identities are device rows of the store whose key is
// "{deviceId}/{moduleId}" (hub.ModuleKey): the store's writes, the twin
// code, method calls and the broker's per-client-id state serve them as
// they serve devices, and everything device-level leaves them out
// (store.IsModuleRow).

var _ hub.Modules = (*Engine)(nil)

// moduleKey checks both ids and returns the module's key.
func moduleKey(deviceID, moduleID string) (string, error) {
	if err := hub.CheckDeviceID(deviceID); err != nil {
		return "", err
	}
	if err := hub.CheckModuleID(moduleID); err != nil {
		return "", err
	}
	return hub.ModuleKey(deviceID, moduleID), nil
}

// checkKey checks a registry key: a device id or a module key.
func checkKey(key string) error {
	if dev, mod, ok := hub.SplitModuleKey(key); ok {
		_, err := moduleKey(dev, mod)
		return err
	}
	return hub.CheckDeviceID(key)
}

// keyErr is storeErr for a device or module key: a module that is not
// found answers DeviceNotFound when its device is missing too, as Azure
// does, and ModuleNotFound otherwise.
func (e *Engine) keyErr(ctx context.Context, err error, key string) error {
	dev, mod, module := hub.SplitModuleKey(key)
	if !module {
		return storeErr(err, hub.CodeDeviceNotFound, "device", key)
	}
	if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, hub.ErrDeviceNotFound) {
		return storeErr(err, hub.CodeModuleNotFound, "module", key)
	}
	if _, derr := e.store.GetDevice(ctx, dev); errors.Is(derr, store.ErrNotFound) {
		return hub.Errorf(hub.CodeDeviceNotFound, "device '%s' not found", dev)
	}
	return hub.Errorf(hub.CodeModuleNotFound, "module '%s' not found on device '%s'", mod, dev)
}

// moduleOf is the wire identity of a stored module.
func moduleOf(d *store.Device) *hub.Module {
	dev, mod, _ := hub.SplitModuleKey(d.DeviceID)
	return &hub.Module{
		ModuleID:                   mod,
		DeviceID:                   dev,
		GenerationID:               d.GenerationID,
		ETag:                       d.ETag,
		ConnectionState:            d.ConnectionState,
		ConnectionStateUpdatedTime: d.ConnectionStateUpdatedTime,
		LastActivityTime:           d.LastActivityTime,
		CloudToDeviceMessageCount:  d.CloudToDeviceMessageCount,
		Authentication:             d.Authentication,
	}
}

// CreateModule implements hub.Modules. The module gets generated keys
// when the request has none, like a device; its twin starts empty.
func (e *Engine) CreateModule(ctx context.Context, m *hub.Module) (*hub.Module, error) {
	if m == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "module is missing")
	}
	key, err := moduleKey(m.DeviceID, m.ModuleID)
	if err != nil {
		return nil, err
	}
	auth := m.Authentication
	if auth.Type == "" {
		auth.Type = "sas"
	}
	if err := checkAuth(&auth); err != nil {
		return nil, err
	}
	k := &auth.SymmetricKey
	if k.PrimaryKey == "" {
		k.PrimaryKey = sas.GenerateKey()
	}
	if k.SecondaryKey == "" {
		k.SecondaryKey = sas.GenerateKey()
	}
	now := e.clock.Now()
	meta := map[string]any{"$lastUpdated": now.UTC().Format(wireTime)}
	sd := &store.Device{
		Device: hub.Device{
			DeviceID:        key,
			GenerationID:    strconv.FormatInt(now.UnixNano(), 10),
			ETag:            deviceETag(1),
			ConnectionState: hub.Disconnected,
			Status:          hub.StatusEnabled,
			Authentication:  auth,
		},
		Tags:     map[string]any{},
		Desired:  map[string]any{"$metadata": meta, "$version": float64(1)},
		Reported: map[string]any{"$metadata": meta, "$version": float64(1)},
		Version:  1,
	}
	err = e.audited(ctx, hub.AuditModuleCreate, key, func(ctx context.Context) error {
		// The device must exist. A device deleted between this read and
		// the insert leaves an orphan module, which the device's next
		// creation adopts; Azure's registry has the same window.
		if _, err := e.store.GetDevice(ctx, m.DeviceID); err != nil {
			return storeErr(err, hub.CodeDeviceNotFound, "device", m.DeviceID)
		}
		ms, err := e.scanModules(ctx, m.DeviceID)
		if err != nil {
			return err
		}
		if len(ms) >= hub.MaxModulesPerDevice {
			return hub.Errorf(hub.CodeQuotaExceeded, "device '%s' has %d modules, the most a device may have: delete one first", m.DeviceID, len(ms))
		}
		err = e.store.CreateDevice(ctx, sd)
		if errors.Is(err, store.ErrConflict) {
			return hub.Errorf(hub.CodeModuleAlreadyExists, "module '%s' already exists on device '%s'", m.ModuleID, m.DeviceID)
		}
		return storeErr(err, hub.CodeServerError, "module", key)
	})
	if err != nil {
		return nil, err
	}
	return moduleOf(sd), nil
}

// GetModule implements hub.Modules.
func (e *Engine) GetModule(ctx context.Context, deviceID, moduleID string) (*hub.Module, error) {
	d, err := e.readModule(ctx, deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	return moduleOf(d), nil
}

// UpdateModule implements hub.Modules. New keys take effect at the
// module's next connect, as for devices.
func (e *Engine) UpdateModule(ctx context.Context, m *hub.Module, et string) (*hub.Module, error) {
	if m == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "module is missing")
	}
	key, err := moduleKey(m.DeviceID, m.ModuleID)
	if err != nil {
		return nil, err
	}
	if et, err = hub.ParseOptionalETag(et); err != nil {
		return nil, err
	}
	if err := checkAuth(&m.Authentication); err != nil {
		return nil, err
	}
	keys := m.Authentication.SymmetricKey
	var sd *store.Device
	err = e.audited(ctx, hub.AuditModuleUpdate, key, func(ctx context.Context) error {
		var err error
		sd, err = e.store.UpdateDevice(ctx, key, func(cur *store.Device) error {
			if et != "" && et != "*" && et != cur.ETag {
				return hub.Errorf(hub.CodePreconditionFailed, "Precondition failed: etag %q does not match module '%s' on device '%s' (%q)", et, m.ModuleID, m.DeviceID, cur.ETag)
			}
			if keys.PrimaryKey != "" {
				cur.Authentication.SymmetricKey.PrimaryKey = keys.PrimaryKey
			}
			if keys.SecondaryKey != "" {
				cur.Authentication.SymmetricKey.SecondaryKey = keys.SecondaryKey
			}
			cur.ETag = nextDeviceETag(cur.ETag)
			return nil
		})
		if err != nil {
			return e.keyErr(ctx, err, key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return moduleOf(sd), nil
}

// DeleteModule implements hub.Modules.
func (e *Engine) DeleteModule(ctx context.Context, deviceID, moduleID, et string) error {
	key, err := moduleKey(deviceID, moduleID)
	if err != nil {
		return err
	}
	if et, err = hub.ParseOptionalETag(et); err != nil {
		return err
	}
	err = e.audited(ctx, hub.AuditModuleDelete, key, func(ctx context.Context) error {
		d, err := e.store.GetDevice(ctx, key)
		if err != nil {
			return e.keyErr(ctx, err, key)
		}
		if et != "" && et != "*" && et != d.ETag {
			return hub.Errorf(hub.CodePreconditionFailed, "etag %q does not match module '%s' on device '%s' (%q)", et, moduleID, deviceID, d.ETag)
		}
		if err := e.store.DeleteDevice(ctx, key); err != nil {
			return e.keyErr(ctx, err, key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.bus.Kick(key)
	return nil
}

// ListModules implements hub.Modules.
func (e *Engine) ListModules(ctx context.Context, deviceID string) ([]*hub.Module, error) {
	if err := hub.CheckDeviceID(deviceID); err != nil {
		return nil, err
	}
	if _, err := e.store.GetDevice(ctx, deviceID); err != nil {
		return nil, storeErr(err, hub.CodeDeviceNotFound, "device", deviceID)
	}
	ds, err := e.scanModules(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	out := make([]*hub.Module, 0, len(ds))
	for _, d := range ds {
		out = append(out, moduleOf(d))
	}
	return out, nil
}

// scanModules reads a device's module rows: their keys share the prefix
// "{deviceId}/", so they are one run of the store's key order, starting
// right after it.
func (e *Engine) scanModules(ctx context.Context, deviceID string) ([]*store.Device, error) {
	prefix := deviceID + "/"
	var out []*store.Device
	last := prefix
	for {
		batch, err := e.store.ScanDevices(ctx, last, scanBatch)
		if err != nil {
			return nil, storeErr(err, hub.CodeServerError, "modules", deviceID)
		}
		for _, d := range batch {
			if !strings.HasPrefix(d.DeviceID, prefix) {
				return out, nil
			}
			out = append(out, d)
			last = d.DeviceID
		}
		if len(batch) < scanBatch {
			return out, nil
		}
	}
}

// deleteModules removes a device's modules (DeleteDevice, before the
// device itself) and disconnects them.
func (e *Engine) deleteModules(ctx context.Context, deviceID string) error {
	ms, err := e.scanModules(ctx, deviceID)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := e.store.DeleteDevice(ctx, m.DeviceID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return storeErr(err, hub.CodeServerError, "module", m.DeviceID)
		}
		e.bus.Kick(m.DeviceID)
	}
	return nil
}

// kickModules disconnects a device's modules (its device was disabled).
func (e *Engine) kickModules(ctx context.Context, deviceID string) {
	ms, err := e.scanModules(ctx, deviceID)
	if err != nil {
		e.Logger.Warn("disconnect the modules of a disabled device", "device", deviceID, "err", err)
		return
	}
	for _, m := range ms {
		e.bus.Kick(m.DeviceID)
	}
}

// GetModuleTwin implements hub.Modules.
func (e *Engine) GetModuleTwin(ctx context.Context, deviceID, moduleID string) (*hub.Twin, error) {
	d, err := e.readModule(ctx, deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	return twinOf(d), nil
}

// UpdateModuleTwin implements hub.Modules; the desired part is pushed to
// the module as UpdateTwin pushes it to a device.
func (e *Engine) UpdateModuleTwin(ctx context.Context, deviceID, moduleID string, patch *hub.TwinPatch, et string) (*hub.Twin, error) {
	key, err := moduleKey(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	t, err := e.updateTwin(ctx, key, patch, et, nil)
	return t, e.moduleErr(ctx, err, key)
}

// ReplaceModuleTwin implements hub.Modules.
func (e *Engine) ReplaceModuleTwin(ctx context.Context, deviceID, moduleID string, t *hub.TwinPatch, et string) (*hub.Twin, error) {
	key, err := moduleKey(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	out, err := e.replaceTwin(ctx, key, t, et)
	return out, e.moduleErr(ctx, err, key)
}

// InvokeModuleMethod implements hub.Modules.
func (e *Engine) InvokeModuleMethod(ctx context.Context, deviceID, moduleID string, req *hub.MethodRequest) (*hub.MethodResponse, error) {
	key, err := moduleKey(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	resp, err := e.InvokeMethod(ctx, key, req)
	return resp, e.moduleErr(ctx, err, key)
}

// moduleErr turns the DeviceNotFound of a call made with a module's key
// into keyErr's answer.
func (e *Engine) moduleErr(ctx context.Context, err error, key string) error {
	if errors.Is(err, hub.ErrDeviceNotFound) {
		return e.keyErr(ctx, err, key)
	}
	return err
}

// readModule reads a module's stored row (its identity and twin).
func (e *Engine) readModule(ctx context.Context, deviceID, moduleID string) (*store.Device, error) {
	key, err := moduleKey(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	d, err := e.store.GetDevice(ctx, key)
	if err != nil {
		return nil, e.keyErr(ctx, err, key)
	}
	return d, nil
}
