package hubd_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// TestModuleRoutes runs the module routes in order against a live hub
// (the contract hub: dev1..dev3): each step's status and error code, as
// the device routes answer them (azure-contract.md §1.5, §1.3, §1.4).
func TestModuleRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	base, web, tok, _ := contractHub(ctx, t)
	steps := []struct {
		name, method, path string
		header             map[string]string
		body               string
		status             int
		code               string                          // iothub-errorcode, for errors
		check              func(t *testing.T, body []byte) // for successes
	}{
		{name: "module of a missing device", method: "PUT", path: "/devices/ghost/modules/m1", body: `{}`, status: 404, code: "DeviceNotFound"},
		{name: "malformed module id", method: "PUT", path: "/devices/dev1/modules/m%20x", body: `{}`, status: 400, code: "ArgumentInvalid"},
		{name: "body names another module", method: "PUT", path: "/devices/dev1/modules/m1", body: `{"moduleId":"m2"}`, status: 400, code: "ArgumentInvalid"},
		{name: "create", method: "PUT", path: "/devices/dev1/modules/m1", body: `{"deviceId":"dev1","moduleId":"m1"}`, status: 200,
			check: func(t *testing.T, b []byte) {
				var m struct {
					ModuleID, DeviceID, ETag string
					Authentication           struct{ SymmetricKey struct{ PrimaryKey string } }
				}
				json.Unmarshal(b, &m)
				if m.ModuleID != "m1" || m.DeviceID != "dev1" || m.ETag == "" || m.Authentication.SymmetricKey.PrimaryKey == "" {
					t.Errorf("created %s", b)
				}
			}},
		{name: "duplicate", method: "PUT", path: "/devices/dev1/modules/m1", body: `{}`, status: 409, code: "ModuleAlreadyExistsOnDevice"},
		{name: "second", method: "PUT", path: "/devices/dev1/modules/m2", body: `{}`, status: 200},
		{name: "list", method: "GET", path: "/devices/dev1/modules", status: 200,
			check: func(t *testing.T, b []byte) {
				if !strings.Contains(string(b), `"moduleId":"m1"`) || !strings.Contains(string(b), `"moduleId":"m2"`) {
					t.Errorf("list %s", b)
				}
			}},
		{name: "list of a missing device", method: "GET", path: "/devices/ghost/modules", status: 404, code: "DeviceNotFound"},
		{name: "get missing", method: "GET", path: "/devices/dev1/modules/nope", status: 404, code: "ModuleNotFound"},
		{name: "update with stale etag", method: "PUT", path: "/devices/dev1/modules/m1", header: map[string]string{"If-Match": `"c3RhbGU="`}, body: `{}`, status: 412, code: "PreconditionFailed"},
		{name: "update with any etag", method: "PUT", path: "/devices/dev1/modules/m1", header: map[string]string{"If-Match": "*"}, body: `{}`, status: 200},
		{name: "patch twin", method: "PATCH", path: "/twins/dev1/modules/m1", body: `{"tags":{"role":"probe"},"properties":{"desired":{"rate":5}}}`, status: 200,
			check: func(t *testing.T, b []byte) {
				if !strings.Contains(string(b), `"moduleId":"m1"`) || !strings.Contains(string(b), `"role":"probe"`) {
					t.Errorf("twin %s", b)
				}
			}},
		{name: "replace twin", method: "PUT", path: "/twins/dev1/modules/m1", body: `{"tags":{"role":"spare"}}`, status: 200},
		{name: "get twin", method: "GET", path: "/twins/dev1/modules/m1", status: 200,
			check: func(t *testing.T, b []byte) {
				if !strings.Contains(string(b), `"role":"spare"`) || strings.Contains(string(b), `"rate"`) {
					t.Errorf("twin %s", b)
				}
			}},
		{name: "twin of a missing module", method: "GET", path: "/twins/dev1/modules/nope", status: 404, code: "ModuleNotFound"},
		{name: "method of an offline module", method: "POST", path: "/twins/dev1/modules/m1/methods", body: `{"methodName":"reset"}`, status: 404, code: "DeviceNotOnline"},
		{name: "method of a missing module", method: "POST", path: "/twins/dev1/modules/nope/methods", body: `{"methodName":"reset"}`, status: 404, code: "ModuleNotFound"},
		{name: "devices.modules query", method: "POST", path: "/devices/query", body: `{"query":"SELECT * FROM devices.modules WHERE tags.role = 'spare'"}`, status: 200,
			check: func(t *testing.T, b []byte) {
				var rows []map[string]any
				json.Unmarshal(b, &rows)
				if len(rows) != 1 || rows[0]["moduleId"] != "m1" || rows[0]["deviceId"] != "dev1" {
					t.Errorf("rows %s", b)
				}
			}},
		{name: "device list leaves modules out", method: "GET", path: "/devices", status: 200,
			check: func(t *testing.T, b []byte) {
				if strings.Contains(string(b), "moduleId") || strings.Contains(string(b), "dev1/") {
					t.Errorf("devices %s", b)
				}
			}},
		{name: "delete with stale etag", method: "DELETE", path: "/devices/dev1/modules/m2", header: map[string]string{"If-Match": `"c3RhbGU="`}, status: 412, code: "PreconditionFailed"},
		{name: "delete", method: "DELETE", path: "/devices/dev1/modules/m2", header: map[string]string{"If-Match": "*"}, status: 204},
		{name: "delete again", method: "DELETE", path: "/devices/dev1/modules/m2", status: 404, code: "ModuleNotFound"},
		{name: "delete the device", method: "DELETE", path: "/devices/dev1", status: 204},
		{name: "its module is gone", method: "GET", path: "/devices/dev1/modules/m1", status: 404, code: "DeviceNotFound"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var body io.Reader
			if s.body != "" {
				body = strings.NewReader(s.body)
			}
			req, err := http.NewRequestWithContext(ctx, s.method, base+s.path+"?api-version=2021-04-12", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", tok)
			req.Header.Set("Content-Type", "application/json")
			for k, v := range s.header {
				req.Header.Set(k, v)
			}
			resp, err := web.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != s.status || resp.Header.Get("iothub-errorcode") != s.code {
				t.Fatalf("%s %s: %d %q %s, want %d %q", s.method, s.path, resp.StatusCode, resp.Header.Get("iothub-errorcode"), b, s.status, s.code)
			}
			if s.check != nil {
				s.check(t, b)
			}
		})
	}
}

// TestModulesClients runs one sequence of module calls through both
// hub.Modules implementations, the engine and the REST client, against a
// live hub: the same answers and the same error codes.
func TestModulesClients(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			h := openHub(t, t.TempDir(), "127.0.0.1:0")
			c := k.make(t, h)
			ms, ok := c.(hub.Modules)
			if !ok {
				t.Fatalf("%T does not implement hub.Modules", c)
			}
			code := func(err error, want string) {
				t.Helper()
				if got := hub.ErrorCode(err); got != want {
					t.Fatalf("error %v: code %q, want %q", err, got, want)
				}
			}
			_, err := ms.CreateModule(ctx, &hub.Module{DeviceID: "d1", ModuleID: "m1"})
			code(err, hub.CodeDeviceNotFound)
			if _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "d1"}); err != nil {
				t.Fatal(err)
			}
			m, err := ms.CreateModule(ctx, &hub.Module{DeviceID: "d1", ModuleID: "m1"})
			if err != nil || m.Authentication.SymmetricKey.PrimaryKey == "" {
				t.Fatalf("create: %+v, %v", m, err)
			}
			_, err = ms.CreateModule(ctx, &hub.Module{DeviceID: "d1", ModuleID: "m1"})
			code(err, hub.CodeModuleAlreadyExists)
			_, err = ms.GetModule(ctx, "d1", "nope")
			code(err, hub.CodeModuleNotFound)
			_, err = ms.UpdateModule(ctx, &hub.Module{DeviceID: "d1", ModuleID: "m1"}, "c3RhbGU=")
			code(err, hub.CodePreconditionFailed)
			up, err := ms.UpdateModule(ctx, &hub.Module{DeviceID: "d1", ModuleID: "m1"}, m.ETag)
			if err != nil || up.ETag == m.ETag {
				t.Fatalf("update: %+v, %v", up, err)
			}
			if list, err := ms.ListModules(ctx, "d1"); err != nil || len(list) != 1 || list[0].ModuleID != "m1" {
				t.Fatalf("list: %+v, %v", list, err)
			}
			tw, err := ms.UpdateModuleTwin(ctx, "d1", "m1", &hub.TwinPatch{Tags: map[string]any{"a": 1.0}}, "*")
			if err != nil || tw.ModuleID != "m1" || tw.Tags["a"] != 1.0 {
				t.Fatalf("patch twin: %+v, %v", tw, err)
			}
			if _, err := ms.ReplaceModuleTwin(ctx, "d1", "m1", &hub.TwinPatch{Tags: map[string]any{"b": 2.0}}, tw.ETag); err != nil {
				t.Fatal(err)
			}
			if tw, err := ms.GetModuleTwin(ctx, "d1", "m1"); err != nil || tw.Tags["a"] != nil || tw.Tags["b"] != 2.0 {
				t.Fatalf("get twin: %+v, %v", tw, err)
			}
			_, err = ms.InvokeModuleMethod(ctx, "d1", "m1", &hub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: 5})
			code(err, hub.CodeDeviceNotOnline)
			if err := ms.DeleteModule(ctx, "d1", "m1", "*"); err != nil {
				t.Fatal(err)
			}
			code(ms.DeleteModule(ctx, "d1", "m1", "*"), hub.CodeModuleNotFound)
		})
	}
}
