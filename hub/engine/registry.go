package engine

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/sas"
	"github.com/iotjobs/iotjobs/hub/store"
)

// validDeviceID checks Azure's device id rules: at most 128 ASCII
// alphanumerics and - . + % _ # * ? ! ( ) , = @ $ ' : ;
func validDeviceID(id string) error {
	if id == "" {
		return hub.Errorf(hub.CodeArgumentInvalid, "device id is empty")
	}
	if len(id) > 128 {
		return hub.Errorf(hub.CodeArgumentInvalid, "device id %q is longer than 128 characters", id)
	}
	for _, c := range id {
		ok := c < 128 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.ContainsRune("-.+%_#*?!(),=@$':;", c))
		if !ok {
			return hub.Errorf(hub.CodeArgumentInvalid, "device id %q contains %q; allowed are ASCII letters, digits and - . + %% _ # * ? ! ( ) , = @ $ ' : ;", id, c)
		}
	}
	return nil
}

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

// CreateDevice implements hub.Client.
func (e *Engine) CreateDevice(ctx context.Context, d *hub.Device) (*hub.Device, error) {
	if d == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "device is missing")
	}
	if err := validDeviceID(d.DeviceID); err != nil {
		return nil, err
	}
	nd := *d
	auth := &nd.Authentication
	if auth.Type == "" {
		auth.Type = "sas"
	}
	if auth.Type != "sas" {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "authentication type %q is not supported; use sas", auth.Type)
	}
	k := &auth.SymmetricKey
	if k.PrimaryKey == "" {
		k.PrimaryKey = sas.GenerateKey()
	}
	if k.SecondaryKey == "" {
		k.SecondaryKey = sas.GenerateKey()
	}
	if err := validKey("primaryKey", k.PrimaryKey); err != nil {
		return nil, err
	}
	if err := validKey("secondaryKey", k.SecondaryKey); err != nil {
		return nil, err
	}
	switch nd.Status {
	case "":
		nd.Status = hub.StatusEnabled
	case hub.StatusEnabled, hub.StatusDisabled:
	default:
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "status %q must be enabled or disabled", nd.Status)
	}
	now := e.clock.Now()
	nd.GenerationID = strconv.FormatInt(now.UnixNano(), 10)
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
	if err := e.store.CreateDevice(ctx, sd); err != nil {
		return nil, storeErr(err, hub.CodeDeviceAlreadyExists, "device", d.DeviceID)
	}
	return &nd, nil
}

const wireTime = "2006-01-02T15:04:05.9999999Z"

// GetDevice implements hub.Client.
func (e *Engine) GetDevice(ctx context.Context, id string) (*hub.Device, error) {
	d, err := e.store.GetDevice(ctx, id)
	if err != nil {
		return nil, storeErr(err, hub.CodeDeviceNotFound, "device", id)
	}
	return &d.Device, nil
}

// DeleteDevice implements hub.Client.
func (e *Engine) DeleteDevice(ctx context.Context, id, et string) error {
	d, err := e.store.GetDevice(ctx, id)
	if err != nil {
		return storeErr(err, hub.CodeDeviceNotFound, "device", id)
	}
	if et = unquote(et); et != "" && et != "*" && et != d.ETag {
		return hub.Errorf(hub.CodePreconditionFailed, "etag %q does not match device '%s' (%q)", et, id, d.ETag)
	}
	if err := e.store.DeleteDevice(ctx, id); err != nil {
		return storeErr(err, hub.CodeDeviceNotFound, "device", id)
	}
	e.bus.Kick(id)
	return nil
}

// DeviceConnected implements hub.DeviceEvents: it records the connection
// state the bus reports.
func (e *Engine) DeviceConnected(id string, connected bool) {
	state := hub.Disconnected
	if connected {
		state = hub.Connected
	}
	now := hub.Time{Time: e.clock.Now().UTC()}
	_, err := e.store.UpdateDevice(e.ctx, id, func(d *store.Device) error {
		d.ConnectionState = state
		d.ConnectionStateUpdatedTime = now
		d.LastActivityTime = now
		return nil
	})
	if err != nil && e.ctx.Err() == nil {
		e.Logger.Warn("record connection state", "device", id, "state", state, "err", err)
	}
}
