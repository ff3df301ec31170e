package rest

import (
	"context"
	"net/http"
	"net/url"

	"github.com/iotjobs/iotjobs/hub"
)

var _ hub.Modules = (*Client)(nil)

// modulePath is "/{root}/{deviceId}/modules/{moduleId}" (root "devices" or
// "twins") with both ids escaped, or an error when one is empty.
func modulePath(root, deviceID, moduleID string) (string, error) {
	if deviceID == "" || moduleID == "" {
		return "", hub.Errorf(hub.CodeArgumentInvalid, "module %q of device %q: both ids are required", moduleID, deviceID)
	}
	return "/" + root + "/" + url.PathEscape(deviceID) + "/modules/" + url.PathEscape(moduleID), nil
}

// CreateModule implements hub.Modules.
func (c *Client) CreateModule(ctx context.Context, m *hub.Module) (*hub.Module, error) {
	if m == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "create module: no module given")
	}
	return c.putModule(ctx, m, nil)
}

// UpdateModule implements hub.Modules; it always sends If-Match, which
// makes the PUT an update.
func (c *Client) UpdateModule(ctx context.Context, m *hub.Module, etag string) (*hub.Module, error) {
	if m == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "update module: no module given")
	}
	return c.putModule(ctx, m, http.Header{"If-Match": {quoteETag(etag)}})
}

func (c *Client) putModule(ctx context.Context, m *hub.Module, h http.Header) (*hub.Module, error) {
	p, err := modulePath("devices", m.DeviceID, m.ModuleID)
	if err != nil {
		return nil, err
	}
	var out hub.Module
	if _, err := c.do(ctx, call{method: http.MethodPut, path: p, in: m, out: &out, header: h}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetModule implements hub.Modules.
func (c *Client) GetModule(ctx context.Context, deviceID, moduleID string) (*hub.Module, error) {
	p, err := modulePath("devices", deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	var out hub.Module
	if _, err := c.do(ctx, call{method: http.MethodGet, path: p, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteModule implements hub.Modules.
func (c *Client) DeleteModule(ctx context.Context, deviceID, moduleID, etag string) error {
	p, err := modulePath("devices", deviceID, moduleID)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, call{method: http.MethodDelete, path: p, header: http.Header{"If-Match": {quoteETag(etag)}}})
	return err
}

// ListModules implements hub.Modules.
func (c *Client) ListModules(ctx context.Context, deviceID string) ([]*hub.Module, error) {
	var out []*hub.Module
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/devices/{id}/modules", id: deviceID, out: &out}); err != nil {
		return nil, err
	}
	return out, nil
}

// GetModuleTwin implements hub.Modules.
func (c *Client) GetModuleTwin(ctx context.Context, deviceID, moduleID string) (*hub.Twin, error) {
	p, err := modulePath("twins", deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	var out hub.Twin
	if _, err := c.do(ctx, call{method: http.MethodGet, path: p, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateModuleTwin implements hub.Modules.
func (c *Client) UpdateModuleTwin(ctx context.Context, deviceID, moduleID string, patch *hub.TwinPatch, etag string) (*hub.Twin, error) {
	if patch == nil {
		patch = &hub.TwinPatch{}
	}
	return c.moduleTwin(ctx, http.MethodPatch, deviceID, moduleID, patch, etag)
}

// ReplaceModuleTwin implements hub.Modules.
func (c *Client) ReplaceModuleTwin(ctx context.Context, deviceID, moduleID string, t *hub.TwinPatch, etag string) (*hub.Twin, error) {
	if t == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "replace twin of module %q of %q: no twin given", moduleID, deviceID)
	}
	return c.moduleTwin(ctx, http.MethodPut, deviceID, moduleID, t, etag)
}

func (c *Client) moduleTwin(ctx context.Context, method, deviceID, moduleID string, t *hub.TwinPatch, etag string) (*hub.Twin, error) {
	p, err := modulePath("twins", deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	var out hub.Twin
	if _, err := c.do(ctx, call{method: method, path: p, in: t, out: &out, header: http.Header{"If-Match": {quoteETag(etag)}}}); err != nil {
		return nil, err
	}
	return &out, nil
}

// InvokeModuleMethod implements hub.Modules.
func (c *Client) InvokeModuleMethod(ctx context.Context, deviceID, moduleID string, req *hub.MethodRequest) (*hub.MethodResponse, error) {
	if req == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "invoke method on module %q of %q: no method request given", moduleID, deviceID)
	}
	p, err := modulePath("twins", deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	var out hub.MethodResponse
	if _, err := c.do(ctx, call{method: http.MethodPost, path: p + "/methods", in: req, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}
