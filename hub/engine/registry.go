package engine

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

func validKey(name, k string) error {
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(b) < 16 || len(b) > 64 {
		return hub.Errorf(hub.CodeArgumentInvalid, "%s must be base64 of 16 to 64 bytes", name)
	}
	return nil
}

func deviceETag(n int) string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(n)))
}

// nextDeviceETag is the etag after cur: the counter it encodes plus one.
// An etag that is not ours (e.g. from an older store) restarts at 2.
func nextDeviceETag(cur string) string {
	b, err := base64.StdEncoding.DecodeString(cur)
	n, aerr := strconv.Atoi(string(b))
	if err != nil || aerr != nil || n < 1 {
		n = 1
	}
	return deviceETag(n + 1)
}

// checkStatus validates a status ("" allowed: the caller's default) and
// its reason.
func checkStatus(status string, reason *string) error {
	switch status {
	case "", hub.StatusEnabled, hub.StatusDisabled:
	default:
		return hub.Errorf(hub.CodeArgumentInvalid, "status %q must be enabled or disabled", status)
	}
	if reason != nil && utf8.RuneCountInString(*reason) > hub.MaxStatusReason {
		return hub.Errorf(hub.CodeArgumentInvalid, "statusReason is %d characters; at most %d are allowed", utf8.RuneCountInString(*reason), hub.MaxStatusReason)
	}
	return nil
}

// CreateDevice implements hub.Client.
func (e *Engine) CreateDevice(ctx context.Context, d *hub.Device) (*hub.Device, error) {
	if d == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "device is missing")
	}
	if err := hub.CheckDeviceID(d.DeviceID); err != nil {
		return nil, err
	}
	nd := *d
	req := cloneAuth(nd.Authentication)
	if err := checkAuth(&req); err != nil {
		return nil, err
	}
	auth, err := resolveAuth(req, nil)
	if err != nil {
		return nil, err
	}
	nd.Authentication = auth
	if err := checkStatus(nd.Status, nd.StatusReason); err != nil {
		return nil, err
	}
	if nd.Status == "" {
		nd.Status = hub.StatusEnabled
	}
	now := e.clock.Now()
	nd.GenerationID = strconv.FormatInt(now.UnixNano(), 10)
	if err := e.settleScopes(ctx, &nd); err != nil {
		return nil, err
	}
	nd.ETag = deviceETag(1)
	nd.ConnectionState = hub.Disconnected
	nd.ConnectionStateUpdatedTime = hub.Time{}
	nd.LastActivityTime = hub.Time{}
	nd.StatusUpdatedTime = hub.Time{}
	meta := map[string]any{"$lastUpdated": now.UTC().Format(wireTime)}
	sd := &store.Device{
		Device:   nd,
		Tags:     map[string]any{},
		Desired:  map[string]any{"$metadata": meta, "$version": float64(1)},
		Reported: map[string]any{"$metadata": meta, "$version": float64(1)},
		Version:  1,
	}
	err = e.audited(ctx, hub.AuditDeviceCreate, d.DeviceID, func(ctx context.Context) error {
		return storeErr(e.store.CreateDevice(ctx, sd), hub.CodeDeviceAlreadyExists, "device", d.DeviceID)
	})
	if err != nil {
		return nil, err
	}
	return &nd, nil
}

const wireTime = "2006-01-02T15:04:05.9999999Z"

// GetDevice implements hub.Client.
func (e *Engine) GetDevice(ctx context.Context, id string) (*hub.Device, error) {
	if err := hub.CheckDeviceID(id); err != nil {
		return nil, err
	}
	d, err := e.store.GetDevice(ctx, id)
	if err != nil {
		return nil, storeErr(err, hub.CodeDeviceNotFound, "device", id)
	}
	return &d.Device, nil
}

// DeleteDevice implements hub.Client.
func (e *Engine) DeleteDevice(ctx context.Context, id, et string) error {
	if err := hub.CheckDeviceID(id); err != nil {
		return err
	}
	et, err := hub.ParseOptionalETag(et)
	if err != nil {
		return err
	}
	err = e.audited(ctx, hub.AuditDeviceDelete, id, func(ctx context.Context) error {
		d, err := e.store.GetDevice(ctx, id)
		if err != nil {
			return storeErr(err, hub.CodeDeviceNotFound, "device", id)
		}
		if et != "" && et != "*" && et != d.ETag {
			return hub.Errorf(hub.CodePreconditionFailed, "etag %q does not match device '%s' (%q)", et, id, d.ETag)
		}
		// Its modules go first: a failure then leaves the device, which
		// can be deleted again, rather than modules without a device.
		if err := e.deleteModules(ctx, id); err != nil {
			return err
		}
		return storeErr(e.store.DeleteDevice(ctx, id), hub.CodeDeviceNotFound, "device", id)
	})
	if err != nil {
		return err
	}
	e.bus.Kick(id)
	return nil
}

// DeviceConnected implements hub.DeviceEvents: it records the connection
// state the bus reports. The write is queued for presenceWriter, which
// commits them in groups: a fleet connecting at once would otherwise cost
// a transaction per device.
func (e *Engine) DeviceConnected(id string, connected bool) {
	u := presenceUpdate{id: id, state: hub.Disconnected, at: hub.Time{Time: e.clock.Now().UTC()}}
	if connected {
		u.state = hub.Connected
	}
	select {
	case e.presence <- u:
	case <-e.closed:
	}
}

// presenceUpdate is a connection state to record.
type presenceUpdate struct {
	id, state string
	at        hub.Time
}

// presenceWriter records connection states in groups, in the order they
// were reported.
func (e *Engine) presenceWriter() {
	defer e.wg.Done()
	for {
		var u presenceUpdate
		select {
		case u = <-e.presence:
		case <-e.closed:
			return
		}
		group := []presenceUpdate{u}
	drain:
		for len(group) < 1024 {
			select {
			case u := <-e.presence:
				group = append(group, u)
			default:
				break drain
			}
		}
		ups := make([]store.DeviceUpdate, len(group))
		for i, u := range group {
			ups[i] = store.DeviceUpdate{ID: u.id, Fn: func(d *store.Device) error {
				d.ConnectionState = u.state
				d.ConnectionStateUpdatedTime = u.at
				d.LastActivityTime = u.at
				return nil
			}}
		}
		_, errs, err := e.store.UpdateDevices(context.Background(), ups)
		if err != nil {
			e.Logger.Warn("record connection states", "devices", len(group), "err", err)
			continue
		}
		for i, err := range errs {
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				e.Logger.Warn("record connection state", "device", group[i].id, "state", group[i].state, "err", err)
			}
		}
	}
}

// UpdateDevice implements hub.Client. Only disabling disconnects a device:
// as on Azure, new keys take effect at its next connect.
func (e *Engine) UpdateDevice(ctx context.Context, d *hub.Device, et string) (*hub.Device, error) {
	if d == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "device is missing")
	}
	if err := hub.CheckDeviceID(d.DeviceID); err != nil {
		return nil, err
	}
	et, err := hub.ParseOptionalETag(et)
	if err != nil {
		return nil, err
	}
	if err := checkStatus(d.Status, d.StatusReason); err != nil {
		return nil, err
	}
	req := cloneAuth(d.Authentication)
	if err := checkAuth(&req); err != nil {
		return nil, err
	}
	var reason *string
	if d.StatusReason != nil {
		r := *d.StatusReason
		reason = &r
	}
	now := hub.Time{Time: e.clock.Now().UTC()}
	// Scopes given are settled against the device as it is (edge or
	// leaf, its generation); none given leaves them as they are.
	var scoped *hub.Device
	if d.DeviceScope != "" || !d.ParentScopes.IsZero() {
		cur, err := e.store.GetDevice(ctx, d.DeviceID)
		if err != nil {
			return nil, storeErr(err, hub.CodeDeviceNotFound, "device", d.DeviceID)
		}
		s := cur.Device
		s.DeviceScope, s.ParentScopes = d.DeviceScope, d.ParentScopes
		if err := e.settleScopes(ctx, &s); err != nil {
			return nil, err
		}
		scoped = &s
	}
	var sd *store.Device
	err = e.audited(ctx, hub.AuditDeviceUpdate, d.DeviceID, func(ctx context.Context) error {
		var err error
		sd, err = e.store.UpdateDevice(ctx, d.DeviceID, func(cur *store.Device) error {
			if et != "" && et != "*" && et != cur.ETag {
				return hub.Errorf(hub.CodePreconditionFailed, "Precondition failed: etag %q does not match device '%s' (%q)", et, d.DeviceID, cur.ETag)
			}
			if d.Status != "" && d.Status != cur.Status {
				cur.Status = d.Status
				cur.StatusUpdatedTime = now
			}
			cur.StatusReason = reason
			if scoped != nil {
				if cur.GenerationID != scoped.GenerationID {
					return hub.Errorf(hub.CodePreconditionFailed, "device '%s' was deleted and created again while its scopes were checked: retry", d.DeviceID)
				}
				cur.DeviceScope, cur.ParentScopes = scoped.DeviceScope, scoped.ParentScopes
			}
			auth, err := resolveAuth(req, &cur.Authentication)
			if err != nil {
				return err
			}
			cur.Authentication = auth
			cur.ETag = nextDeviceETag(cur.ETag)
			return nil
		})
		return storeErr(err, hub.CodeDeviceNotFound, "device", d.DeviceID)
	})
	if err != nil {
		return nil, err
	}
	if sd.Status == hub.StatusDisabled {
		// The broker refuses a disabled device's next connect, and its
		// modules'; this ends the connections they have now.
		e.bus.Kick(d.DeviceID)
		e.kickModules(ctx, d.DeviceID)
	}
	out := sd.Device
	return &out, nil
}

// maxListDevices is the most devices ListDevices returns, and what a top
// outside 1..maxListDevices means (Azure's rule).
const maxListDevices = 1000

// ListDevices implements hub.Client.
func (e *Engine) ListDevices(ctx context.Context, top int) ([]*hub.Device, error) {
	if top < 1 || top > maxListDevices {
		top = maxListDevices
	}
	var out []*hub.Device
	last := ""
	for {
		ds, err := e.store.ScanDevices(ctx, last, top)
		if err != nil {
			return nil, storeErr(err, hub.CodeServerError, "devices", "")
		}
		for _, d := range ds {
			last = d.DeviceID
			if store.IsModuleRow(d.DeviceID) || len(out) == top {
				continue // modules are listed per device (ListModules)
			}
			dev := d.Device
			out = append(out, &dev)
		}
		if len(ds) < top || len(out) == top {
			if out == nil {
				out = []*hub.Device{}
			}
			return out, nil
		}
	}
}

// DeviceStatistics implements hub.Client. It reads the whole registry in
// batches.
func (e *Engine) DeviceStatistics(ctx context.Context) (*hub.RegistryStatistics, error) {
	var st hub.RegistryStatistics
	last := ""
	for {
		batch, err := e.store.ScanDevices(ctx, last, maxListDevices)
		if err != nil {
			return nil, storeErr(err, hub.CodeServerError, "devices", "")
		}
		for _, d := range batch {
			last = d.DeviceID
			if store.IsModuleRow(d.DeviceID) {
				continue
			}
			st.TotalDeviceCount++
			if d.Status == hub.StatusDisabled {
				st.DisabledDeviceCount++
			} else {
				st.EnabledDeviceCount++
			}
		}
		if len(batch) < maxListDevices {
			return &st, nil
		}
	}
}

// ImportDevices implements hub.Client. Entries are applied in order, each
// on its own, as Azure does: a failure is listed and the rest go on. Only
// the end of ctx stops the batch.
func (e *Engine) ImportDevices(ctx context.Context, devs []*hub.ImportDevice) (*hub.BulkResult, error) {
	if len(devs) == 0 {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "no devices to import: send 1 to %d entries", hub.MaxImportDevices)
	}
	if len(devs) > hub.MaxImportDevices {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "%d devices in one bulk operation; at most %d are allowed: split them into several calls", len(devs), hub.MaxImportDevices)
	}
	// Malformed entries refuse the whole operation before any applies:
	// only what depends on the registry (a device that exists, or not,
	// or has another etag) fails per entry.
	for i, in := range devs {
		if err := checkImportEntry(in); err != nil {
			return nil, hub.Errorf(hub.ErrorCode(err), "bulk entry %d: %s; nothing was applied", i, hub.ErrorMessage(err))
		}
	}
	res := &hub.BulkResult{Errors: []hub.DeviceImportError{}, Warnings: []hub.DeviceImportWarning{}}
	for i, in := range devs {
		err := e.importOne(ctx, i, in)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		id := ""
		if in != nil {
			id = in.ID
		}
		res.Errors = append(res.Errors, hub.DeviceImportError{DeviceID: id, ErrorCode: hub.ErrorCode(err), ErrorStatus: hub.ErrorMessage(err)})
	}
	res.IsSuccessful = len(res.Errors) == 0
	return res, nil
}

// checkImportEntry checks what a bulk entry says by itself: an entry, a
// valid id, a known importMode, a status, keys and (for the IfMatchETag
// modes) an etag that is well formed.
func checkImportEntry(in *hub.ImportDevice) error {
	if in == nil {
		return hub.Errorf(hub.CodeArgumentInvalid, "the entry is null")
	}
	if err := hub.CheckDeviceID(in.ID); err != nil {
		return err
	}
	known := false
	for _, m := range []string{hub.ImportCreate, hub.ImportCreateOrUpdate, hub.ImportUpdate, hub.ImportUpdateIfMatchETag, hub.ImportDelete, hub.ImportDeleteIfMatchETag} {
		known = known || strings.EqualFold(in.ImportMode, m)
	}
	if !known {
		return hub.Errorf(hub.CodeArgumentInvalid, "importMode %q is not one of %s, %s, %s, %s, %s, %s", in.ImportMode,
			hub.ImportCreate, hub.ImportCreateOrUpdate, hub.ImportUpdate, hub.ImportUpdateIfMatchETag, hub.ImportDelete, hub.ImportDeleteIfMatchETag)
	}
	if _, err := hub.ParseOptionalETag(in.ETag); err != nil {
		return err
	}
	if err := checkStatus(in.Status, in.StatusReason); err != nil {
		return err
	}
	if in.Authentication != nil {
		a := cloneAuth(*in.Authentication)
		return checkAuth(&a)
	}
	return nil
}

// importOne applies entry i of a bulk operation.
func (e *Engine) importOne(ctx context.Context, i int, in *hub.ImportDevice) error {
	if in == nil {
		return hub.Errorf(hub.CodeArgumentInvalid, "entry %d is null", i)
	}
	if in.ID == "" {
		return hub.Errorf(hub.CodeArgumentInvalid, "entry %d has no id", i)
	}
	d := &hub.Device{DeviceID: in.ID, Status: in.Status, StatusReason: in.StatusReason, DeviceScope: in.DeviceScope, ParentScopes: in.ParentScopes}
	if in.Authentication != nil {
		d.Authentication = *in.Authentication
	}
	if in.Capabilities != nil {
		d.Capabilities = *in.Capabilities
	}
	needETag := func() error {
		et, err := hub.ParseOptionalETag(in.ETag)
		if err != nil {
			return err
		}
		if et == "" || et == "*" {
			return hub.Errorf(hub.CodePreconditionFailed, "importMode %s needs the device's eTag", in.ImportMode)
		}
		return nil
	}
	var err error
	switch strings.ToLower(in.ImportMode) {
	case strings.ToLower(hub.ImportCreate):
		_, err = e.CreateDevice(ctx, d)
	case strings.ToLower(hub.ImportCreateOrUpdate):
		// A device not found is created: that is no refused update.
		_, err = e.UpdateDevice(quietFailures(ctx), d, "*")
		if errors.Is(err, hub.ErrDeviceNotFound) {
			_, err = e.CreateDevice(ctx, d)
		}
	case strings.ToLower(hub.ImportUpdate):
		_, err = e.UpdateDevice(ctx, d, "*")
	case strings.ToLower(hub.ImportUpdateIfMatchETag):
		if err = needETag(); err == nil {
			_, err = e.UpdateDevice(ctx, d, in.ETag)
		}
	case strings.ToLower(hub.ImportDelete):
		err = e.DeleteDevice(ctx, in.ID, "*")
	case strings.ToLower(hub.ImportDeleteIfMatchETag):
		if err = needETag(); err == nil {
			err = e.DeleteDevice(ctx, in.ID, in.ETag)
		}
	default:
		err = hub.Errorf(hub.CodeArgumentInvalid, "importMode %q is not one of %s, %s, %s, %s, %s, %s", in.ImportMode,
			hub.ImportCreate, hub.ImportCreateOrUpdate, hub.ImportUpdate, hub.ImportUpdateIfMatchETag, hub.ImportDelete, hub.ImportDeleteIfMatchETag)
	}
	return err
}
