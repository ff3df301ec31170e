package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
)

// TestModuleRegistry runs the module calls in order against one registry:
// each step's error code, and what the registry holds after it.
func TestModuleRegistry(t *testing.T) {
	bus := newTestBus()
	e := newEngine(t, bus, clock.NewVirtual(t0))
	ctx := context.Background()
	mustCreate(t, e, "dev1", "dev1-x", "dev10")
	var created *hub.Module
	steps := []struct {
		name string
		do   func() error
		code string
	}{
		{"module of a missing device", func() error {
			_, err := e.CreateModule(ctx, &hub.Module{DeviceID: "ghost", ModuleID: "m1"})
			return err
		}, hub.CodeDeviceNotFound},
		{"malformed module id", func() error {
			_, err := e.CreateModule(ctx, &hub.Module{DeviceID: "dev1", ModuleID: "a/b"})
			return err
		}, hub.CodeArgumentInvalid},
		{"create with generated keys", func() error {
			var err error
			created, err = e.CreateModule(ctx, &hub.Module{DeviceID: "dev1", ModuleID: "m1"})
			if err == nil {
				k := created.Authentication.SymmetricKey
				if k.PrimaryKey == "" || k.SecondaryKey == "" || created.ETag == "" || created.ConnectionState != hub.Disconnected {
					t.Errorf("created module %+v", created)
				}
			}
			return err
		}, ""},
		{"second module", func() error {
			_, err := e.CreateModule(ctx, &hub.Module{DeviceID: "dev1", ModuleID: "edge"})
			return err
		}, ""},
		{"module of another device", func() error {
			_, err := e.CreateModule(ctx, &hub.Module{DeviceID: "dev10", ModuleID: "m1"})
			return err
		}, ""},
		{"duplicate", func() error {
			_, err := e.CreateModule(ctx, &hub.Module{DeviceID: "dev1", ModuleID: "m1"})
			return err
		}, hub.CodeModuleAlreadyExists},
		{"get", func() error {
			m, err := e.GetModule(ctx, "dev1", "m1")
			if err == nil && (m.DeviceID != "dev1" || m.ModuleID != "m1" || m.Authentication != created.Authentication) {
				t.Errorf("got %+v, want %+v", m, created)
			}
			return err
		}, ""},
		{"get missing module", func() error { _, err := e.GetModule(ctx, "dev1", "nope"); return err }, hub.CodeModuleNotFound},
		{"get module of missing device", func() error { _, err := e.GetModule(ctx, "ghost", "m1"); return err }, hub.CodeDeviceNotFound},
		{"update with stale etag", func() error {
			_, err := e.UpdateModule(ctx, &hub.Module{DeviceID: "dev1", ModuleID: "m1"}, "bm90LWl0")
			return err
		}, hub.CodePreconditionFailed},
		{"update keys", func() error {
			k := hub.SymmetricKey{PrimaryKey: created.Authentication.SymmetricKey.SecondaryKey}
			m, err := e.UpdateModule(ctx, &hub.Module{DeviceID: "dev1", ModuleID: "m1", Authentication: hub.Authentication{SymmetricKey: k}}, created.ETag)
			if err == nil && (m.ETag == created.ETag || m.Authentication.SymmetricKey.PrimaryKey != k.PrimaryKey) {
				t.Errorf("updated module %+v", m)
			}
			return err
		}, ""},
		{"delete with stale etag", func() error { return e.DeleteModule(ctx, "dev1", "edge", "bm90LWl0") }, hub.CodePreconditionFailed},
		{"delete", func() error { return e.DeleteModule(ctx, "dev1", "edge", "*") }, ""},
		{"delete again", func() error { return e.DeleteModule(ctx, "dev1", "edge", "") }, hub.CodeModuleNotFound},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) { wantCode(t, s.do(), s.code) })
	}
	if !slices.Contains(bus.kicked, "dev1/edge") {
		t.Errorf("deleted module not disconnected: kicked %v", bus.kicked)
	}

	ms, err := e.ListModules(ctx, "dev1")
	if err != nil || len(ms) != 1 || ms[0].ModuleID != "m1" {
		t.Fatalf("ListModules(dev1) = %+v, %v; want m1 only", ms, err)
	}
	_, err = e.ListModules(ctx, "ghost")
	wantCode(t, err, hub.CodeDeviceNotFound)

	// Device-level views leave modules out.
	ds, err := e.ListDevices(ctx, 2)
	if err != nil || len(ds) != 2 || ds[0].DeviceID != "dev1" || ds[1].DeviceID != "dev1-x" {
		t.Fatalf("ListDevices(2) = %v, %v; want dev1, dev1-x", ids(ds), err)
	}
	st, err := e.DeviceStatistics(ctx)
	if err != nil || st.TotalDeviceCount != 3 {
		t.Fatalf("statistics %+v, %v; want 3 devices", st, err)
	}
	for q, want := range map[string][]string{
		"SELECT * FROM devices":                                 {"dev1", "dev1-x", "dev10"},
		"SELECT * FROM devices.modules":                         {"dev1/m1", "dev10/m1"},
		"SELECT * FROM devices.modules WHERE deviceId = 'dev1'": {"dev1/m1"},
		"SELECT * FROM devices WHERE deviceId = 'dev1'":         {"dev1"},
	} {
		if got := queryKeys(t, e, q); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}

	// A device holds at most hub.MaxModulesPerDevice modules.
	for i := 1; i < hub.MaxModulesPerDevice; i++ {
		if _, err := e.CreateModule(ctx, &hub.Module{DeviceID: "dev1-x", ModuleID: fmt.Sprintf("m%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = e.CreateModule(ctx, &hub.Module{DeviceID: "dev1-x", ModuleID: "m50"})
	wantCode(t, err, "")
	_, err = e.CreateModule(ctx, &hub.Module{DeviceID: "dev1-x", ModuleID: "m51"})
	wantCode(t, err, hub.CodeQuotaExceeded)

	// Disabling a device disconnects its modules too.
	if _, err := e.UpdateDevice(ctx, &hub.Device{DeviceID: "dev10", Status: hub.StatusDisabled}, "*"); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(bus.kicked, "dev10/m1") {
		t.Errorf("module of the disabled device not disconnected: kicked %v", bus.kicked)
	}

	// Deleting a device deletes its modules, and only its own.
	if err := e.DeleteDevice(ctx, "dev1", "*"); err != nil {
		t.Fatal(err)
	}
	_, err = e.GetModule(ctx, "dev1", "m1")
	wantCode(t, err, hub.CodeDeviceNotFound)
	if !slices.Contains(bus.kicked, "dev1/m1") {
		t.Errorf("module of the deleted device not disconnected: kicked %v", bus.kicked)
	}
	mustCreate(t, e, "dev1")
	if ms, err := e.ListModules(ctx, "dev1"); err != nil || len(ms) != 0 {
		t.Errorf("a new dev1 has modules %+v, %v", ms, err)
	}
	if _, err := e.GetModule(ctx, "dev10", "m1"); err != nil {
		t.Errorf("dev10's module: %v", err)
	}
}

func ids(ds []*hub.Device) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.DeviceID)
	}
	return out
}

// queryKeys runs q and returns each row's "{deviceId}" or
// "{deviceId}/{moduleId}".
func queryKeys(t *testing.T, e hub.Client, q string) []string {
	t.Helper()
	res, err := e.Query(context.Background(), q, hub.QueryOptions{})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var out []string
	for _, item := range res.Items {
		var row struct{ DeviceID, ModuleID string }
		if err := json.Unmarshal(item, &row); err != nil {
			t.Fatal(err)
		}
		out = append(out, hub.ModuleKey(row.DeviceID, row.ModuleID))
		if row.ModuleID == "" {
			out[len(out)-1] = row.DeviceID
		}
	}
	return out
}

// TestModuleTwinAndMethod: a module's twin and methods are its own, with
// the module's errors, and jobs stay device-level.
func TestModuleTwinAndMethod(t *testing.T) {
	bus := newTestBus("dev1/m1")
	e := newEngine(t, bus, clock.Real())
	ctx := context.Background()
	mustCreate(t, e, "dev1")
	if _, err := e.CreateModule(ctx, &hub.Module{DeviceID: "dev1", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	tw, err := e.UpdateModuleTwin(ctx, "dev1", "m1", &hub.TwinPatch{Tags: map[string]any{"site": "hq"},
		Properties: &hub.Properties{Desired: map[string]any{"rate": 5.0}}}, "*")
	if err != nil {
		t.Fatal(err)
	}
	if tw.DeviceID != "dev1" || tw.ModuleID != "m1" || tw.Tags["site"] != "hq" {
		t.Errorf("module twin %+v", tw)
	}
	if len(bus.pushed) != 1 || bus.pushed[0].id != "dev1/m1" || bus.pushed[0].patch["rate"] != 5.0 {
		t.Errorf("pushed %+v, want the desired patch to dev1/m1", bus.pushed)
	}
	if dt, err := e.GetTwin(ctx, "dev1"); err != nil || len(dt.Tags) != 0 {
		t.Errorf("the device's twin changed: %+v, %v", dt, err)
	}
	if _, err := e.ReplaceModuleTwin(ctx, "dev1", "m1", &hub.TwinPatch{Tags: map[string]any{"site": "lab"}}, ""); err != nil {
		t.Fatal(err)
	}
	_, err = e.UpdateModuleTwin(ctx, "dev1", "nope", &hub.TwinPatch{Tags: map[string]any{"a": 1.0}}, "*")
	wantCode(t, err, hub.CodeModuleNotFound)
	_, err = e.GetModuleTwin(ctx, "ghost", "m1")
	wantCode(t, err, hub.CodeDeviceNotFound)
	_, err = e.GetTwin(ctx, "dev1/m1")
	wantCode(t, err, hub.CodeArgumentInvalid)

	resp, err := e.InvokeModuleMethod(ctx, "dev1", "m1", &hub.MethodRequest{MethodName: "reset", Payload: json.RawMessage(`1`)})
	if err != nil || resp.Status != 200 {
		t.Fatalf("module method: %+v, %v", resp, err)
	}
	if id := <-bus.calls; id != "dev1/m1" {
		t.Errorf("method went to %q, want dev1/m1", id)
	}
	_, err = e.InvokeModuleMethod(ctx, "dev1", "nope", &hub.MethodRequest{MethodName: "reset"})
	wantCode(t, err, hub.CodeModuleNotFound)

	// A job over every device reaches dev1 only, never its module.
	if _, err := e.CreateJob(ctx, &hub.Job{JobID: "j", Type: hub.JobUpdateTwin, QueryCondition: "*",
		UpdateTwin: &hub.TwinPatch{ETag: "*", Tags: map[string]any{"job": true}}}); err != nil {
		t.Fatal(err)
	}
	if j := waitEnd(t, e, "j"); j.DeviceJobStatistics.DeviceCount != 1 {
		t.Errorf("job over * ran on %d devices, want 1", j.DeviceJobStatistics.DeviceCount)
	}
	if mt, err := e.GetModuleTwin(ctx, "dev1", "m1"); err != nil || mt.Tags["job"] != nil {
		t.Errorf("the job reached the module: %+v, %v", mt, err)
	}
}
