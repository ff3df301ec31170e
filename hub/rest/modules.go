package rest

import (
	"context"
	"net/http"

	"github.com/iotjobs/iotjobs/hub"
)

// The module routes: /devices/{id}/modules/{mid} (identities) and
// /twins/{id}/modules/{mid}[/methods], served when the hub implements
// hub.Modules (the engine does; a dry-run's simulated hub does not).

// moduleRoutes are added to the device routes by build.
func (s *Server) moduleRoutes() map[string]handlerFunc {
	return map[string]handlerFunc{
		"PUT /devices/{id}/modules/{mid}":        s.putModule,
		"GET /devices/{id}/modules/{mid}":        s.getModule,
		"DELETE /devices/{id}/modules/{mid}":     s.deleteModule,
		"GET /devices/{id}/modules":              s.listModules,
		"GET /devices/{id}/modules/{$}":          s.listModules,
		"GET /twins/{id}/modules/{mid}":          s.getModuleTwin,
		"PATCH /twins/{id}/modules/{mid}":        s.patchModuleTwin,
		"PUT /twins/{id}/modules/{mid}":          s.putModuleTwin,
		"POST /twins/{id}/modules/{mid}/methods": s.invokeModuleMethod,
	}
}

// modules returns the hub's module half, and a route error when it has
// none.
func (s *Server) modules(r *http.Request) (hub.Modules, error) {
	if m, ok := s.Hub.(hub.Modules); ok {
		return m, nil
	}
	return nil, &routeError{msg: "this hub has no module identities: " + r.Method + " " + r.URL.Path}
}

// pathModule is the {id} and {mid} of a module route, checked as the
// engine checks them, and the hub's module half.
func (s *Server) pathModule(r *http.Request) (hub.Modules, string, string, error) {
	id, err := pathDeviceID(r)
	if err != nil {
		return nil, "", "", err
	}
	mid := r.PathValue("mid")
	if err := hub.CheckModuleID(mid); err != nil {
		return nil, "", "", err
	}
	m, err := s.modules(r)
	return m, id, mid, err
}

// putModule creates a module, or with If-Match ("*" or the module's etag)
// updates its keys, as Azure's PUT /devices/{id}/modules/{mid} does.
func (s *Server) putModule(w http.ResponseWriter, r *http.Request) error {
	ms, id, mid, err := s.pathModule(r)
	if err != nil {
		return err
	}
	etag, update, err := ifMatch(r)
	if err != nil {
		return err
	}
	var m hub.Module
	if err := readJSON(w, r, &m); err != nil {
		return err
	}
	if m.DeviceID == "" {
		m.DeviceID = id
	}
	if m.ModuleID == "" {
		m.ModuleID = mid
	}
	if m.DeviceID != id || m.ModuleID != mid {
		return hub.Errorf(hub.CodeArgumentInvalid, "deviceId %q and moduleId %q in the body do not match %q and %q in the path", m.DeviceID, m.ModuleID, id, mid)
	}
	var out *hub.Module
	if update {
		out, err = ms.UpdateModule(r.Context(), &m, etag)
	} else {
		out, err = ms.CreateModule(r.Context(), &m)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getModule(w http.ResponseWriter, r *http.Request) error {
	ms, id, mid, err := s.pathModule(r)
	if err != nil {
		return err
	}
	m, err := ms.GetModule(r.Context(), id, mid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// deleteModule deletes a module; without If-Match, or with "*", whatever
// its etag.
func (s *Server) deleteModule(w http.ResponseWriter, r *http.Request) error {
	ms, id, mid, err := s.pathModule(r)
	if err != nil {
		return err
	}
	etag, _, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := ms.DeleteModule(r.Context(), id, mid, etag); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listModules answers GET /devices/{id}/modules with a bare array.
func (s *Server) listModules(w http.ResponseWriter, r *http.Request) error {
	id, err := pathDeviceID(r)
	if err != nil {
		return err
	}
	ms, err := s.modules(r)
	if err != nil {
		return err
	}
	out, err := ms.ListModules(r.Context(), id)
	if err != nil {
		return err
	}
	if out == nil {
		out = []*hub.Module{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getModuleTwin(w http.ResponseWriter, r *http.Request) error {
	ms, id, mid, err := s.pathModule(r)
	if err != nil {
		return err
	}
	t, err := ms.GetModuleTwin(r.Context(), id, mid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// patchModuleTwin merges a module twin patch; the etag comes from If-Match
// or the body, as for a device twin.
func (s *Server) patchModuleTwin(w http.ResponseWriter, r *http.Request) error {
	return s.writeModuleTwin(w, r, hub.Modules.UpdateModuleTwin)
}

// putModuleTwin replaces a module twin's tags and desired properties.
func (s *Server) putModuleTwin(w http.ResponseWriter, r *http.Request) error {
	return s.writeModuleTwin(w, r, hub.Modules.ReplaceModuleTwin)
}

// writeModuleTwin reads a module twin write (PATCH or PUT) and makes it
// with write.
func (s *Server) writeModuleTwin(w http.ResponseWriter, r *http.Request,
	write func(ms hub.Modules, ctx context.Context, id, mid string, p *hub.TwinPatch, etag string) (*hub.Twin, error)) error {
	ms, id, mid, err := s.pathModule(r)
	if err != nil {
		return err
	}
	_, p, etag, err := readTwinBody(w, r)
	if err != nil {
		return err
	}
	t, err := write(ms, r.Context(), id, mid, p, etag)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// invokeModuleMethod calls a direct method on a module, answering as
// invokeMethod does for a device.
func (s *Server) invokeModuleMethod(w http.ResponseWriter, r *http.Request) error {
	ms, id, mid, err := s.pathModule(r)
	if err != nil {
		return &methodError{err: err}
	}
	return serveMethod(w, r, func(ctx context.Context, req *hub.MethodRequest) (*hub.MethodResponse, error) {
		return ms.InvokeModuleMethod(ctx, id, mid, req)
	})
}
