package hubtest

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/sas"
)

func testDevices(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 10*time.Second)
	c := h.Client

	d, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "new-1"})
	Must(t, "create device", err)
	k := d.Authentication.SymmetricKey
	for name, key := range map[string]string{"primary": k.PrimaryKey, "secondary": k.SecondaryKey} {
		if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) < 16 {
			t.Errorf("generated %s key %q is not a base64 key of at least 16 bytes (err %v)", name, key, err)
		}
	}
	if k.PrimaryKey == k.SecondaryKey {
		t.Errorf("primary and secondary keys are the same: %q", k.PrimaryKey)
	}
	if d.DeviceID != "new-1" || d.Status != hub.StatusEnabled || d.ETag == "" {
		t.Errorf("created device = id %q status %q etag %q, want new-1, enabled, an etag", d.DeviceID, d.Status, d.ETag)
	}

	given := hub.SymmetricKey{PrimaryKey: sas.GenerateKey(), SecondaryKey: sas.GenerateKey()}
	d2, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "new-2", Authentication: hub.Authentication{SymmetricKey: given, Type: "sas"}})
	Must(t, "create device with keys", err)
	if d2.Authentication.SymmetricKey != given {
		t.Errorf("create with keys: got %+v, want the given %+v", d2.Authentication.SymmetricKey, given)
	}

	got, err := c.GetDevice(ctx, "new-1")
	Must(t, "get device", err)
	if got.Authentication.SymmetricKey != k || got.ETag != d.ETag {
		t.Errorf("get device: keys %+v etag %q, want %+v %q", got.Authentication.SymmetricKey, got.ETag, k, d.ETag)
	}

	t.Run("connectionStates", func(t *testing.T) {
		needConnectionStates(t, h)
		conn, err := c.GetDevice(ctx, "lock-ok")
		Must(t, "get connected device", err)
		off, err := c.GetDevice(ctx, "lock-offline")
		Must(t, "get offline device", err)
		if conn.ConnectionState != hub.Connected || off.ConnectionState != hub.Disconnected {
			t.Errorf("connection states: lock-ok %q, lock-offline %q; want %s, %s",
				conn.ConnectionState, off.ConnectionState, hub.Connected, hub.Disconnected)
		}
	})

	errCases := []struct {
		name string
		call func() error
		want string
	}{
		{"create duplicate", func() error { _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "new-1"}); return err }, hub.CodeDeviceAlreadyExists},
		{"create fleet duplicate", func() error { _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "echo"}); return err }, hub.CodeDeviceAlreadyExists},
		{"create bad id", func() error { _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "bad id"}); return err }, hub.CodeArgumentInvalid},
		{"get missing", func() error { _, err := c.GetDevice(ctx, "nope"); return err }, hub.CodeDeviceNotFound},
		{"delete missing", func() error { return c.DeleteDevice(ctx, "nope", "*") }, hub.CodeDeviceNotFound},
		{"delete stale etag", func() error { return c.DeleteDevice(ctx, "new-1", "AAAAAAAAAAA=") }, hub.CodePreconditionFailed},
	}
	for _, ec := range errCases {
		WantCode(t, ec.name, ec.call(), ec.want)
	}

	deletes := []struct{ id, etag string }{
		{"new-1", d.ETag},
		{"new-2", `"*"`},
	}
	for _, del := range deletes {
		if err := c.DeleteDevice(ctx, del.id, del.etag); err != nil {
			t.Errorf("delete %s with etag %q: %v", del.id, del.etag, err)
		}
		_, err := c.GetDevice(ctx, del.id)
		WantCode(t, "get deleted "+del.id, err, hub.CodeDeviceNotFound)
		_, err = c.GetTwin(ctx, del.id)
		WantCode(t, "get twin of deleted "+del.id, err, hub.CodeDeviceNotFound)
	}
	WantCode(t, "delete twice", c.DeleteDevice(ctx, "new-1", ""), hub.CodeDeviceNotFound)
}

// testDeleteConnected deletes a connected device and registers the id
// again with new keys: the old connection must be gone, so the new
// identity is not online until a device with the new keys connects.
func testDeleteConnected(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 15*time.Second)
	c := h.Client
	lock := &hub.MethodRequest{MethodName: "lockDoor"}
	old, err := c.GetDevice(ctx, "lock-ok")
	Must(t, "get device", err)
	if _, err := c.InvokeMethod(ctx, "lock-ok", lock); err != nil {
		t.Fatalf("invoke before delete: %v", err)
	}
	Must(t, "delete connected device", c.DeleteDevice(ctx, "lock-ok", "*"))
	_, err = c.InvokeMethod(ctx, "lock-ok", lock)
	WantCode(t, "invoke deleted device", err, hub.CodeDeviceNotFound)

	d, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "lock-ok"})
	Must(t, "create device again", err)
	if d.Authentication.SymmetricKey.PrimaryKey == old.Authentication.SymmetricKey.PrimaryKey {
		t.Fatal("the new identity got the old key")
	}
	tw, err := c.GetTwin(ctx, "lock-ok")
	Must(t, "get new twin", err)
	if tw.Tags["x"] != nil || tw.ConnectionState == hub.Connected {
		t.Errorf("new identity: tags %v state %q, want a fresh disconnected twin", tw.Tags, tw.ConnectionState)
	}
	t.Run("oldConnectionGone", func(t *testing.T) {
		needConnect(t, h, "a re-created identity cannot be told from the deleted one's device when devices have no credentials or connection to lose")
		_, err := c.InvokeMethod(ctx, "lock-ok", lock)
		WantCode(t, "invoke re-created device before it connects", err, hub.CodeDeviceNotOnline)
	})
}

// testDisableDevice disables a connected device: it is disconnected at
// once, cannot connect or be called while disabled, and connects again
// once enabled.
func testDisableDevice(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 30*time.Second)
	c := h.Client
	// The fleet leaves lock-offline unconnected, so this test owns its
	// only connection (a fleet device would reconnect on its own). A hub
	// whose devices are online only as the fleet file says (no Connect)
	// disables lock-ok, online throughout: the hub must refuse to call it.
	id := "lock-offline"
	if h.Connect == nil {
		id = "lock-ok"
	}
	d0, err := c.GetDevice(ctx, id)
	Must(t, "get device", err)
	connect := func(t *testing.T) (func(), error) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		disconnect, err := h.Connect(cctx, id, d0.Authentication.SymmetricKey.PrimaryKey)
		if cctx.Err() != nil && ctx.Err() == nil {
			t.Fatalf("connect %s did not finish in time: %v", id, err)
		}
		return disconnect, err
	}
	lock := &hub.MethodRequest{MethodName: "lockDoor", ConnectTimeoutInSeconds: 5}

	disconnect := func() {}
	if h.Connect != nil {
		disconnect, err = connect(t)
		Must(t, "connect before disabling", err)
		defer disconnect()
	}
	_, err = c.InvokeMethod(ctx, id, lock)
	Must(t, "invoke before disabling", err)

	before, err := c.GetDevice(ctx, id)
	Must(t, "get device", err)
	reason := "lost in transit"
	upd := *before
	upd.Status, upd.StatusReason = hub.StatusDisabled, &reason
	off, err := c.UpdateDevice(ctx, &upd, before.ETag)
	Must(t, "disable", err)
	if off.Status != hub.StatusDisabled || off.StatusReason == nil || *off.StatusReason != reason ||
		off.ETag == before.ETag || off.StatusUpdatedTime.IsZero() || off.Authentication.SymmetricKey != before.Authentication.SymmetricKey {
		t.Errorf("disabled device: status %q reason %v etag %q→%q status time %v keys kept %v",
			off.Status, off.StatusReason, before.ETag, off.ETag, off.StatusUpdatedTime, off.Authentication.SymmetricKey == before.Authentication.SymmetricKey)
	}
	start := time.Now()
	_, err = c.InvokeMethod(ctx, id, lock)
	WantCode(t, "invoke disabled device", err, hub.CodeDeviceNotOnline)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("invoke disabled device took %v; it must not wait for the connect timeout", el)
	}
	WaitTwin(ctx, t, c, id, func(tw *hub.Twin) bool {
		return tw.ConnectionState == hub.Disconnected && tw.Status == hub.StatusDisabled
	})
	disconnect()
	t.Run("refusedWhileDisabled", func(t *testing.T) {
		needConnect(t, h, "a disabled device cannot try to connect")
		if again, err := connect(t); err == nil {
			again()
			t.Fatal("a disabled device connected")
		}
	})

	errCases := []struct {
		name string
		dev  hub.Device
		etag string
		want string
	}{
		{"stale etag", hub.Device{DeviceID: id, Status: hub.StatusEnabled}, before.ETag, hub.CodePreconditionFailed},
		{"stale quoted etag", hub.Device{DeviceID: id, Status: hub.StatusEnabled}, `"` + before.ETag + `"`, hub.CodePreconditionFailed},
		{"unknown device", hub.Device{DeviceID: "nope", Status: hub.StatusEnabled}, "*", hub.CodeDeviceNotFound},
		{"bad status", hub.Device{DeviceID: id, Status: "paused"}, "*", hub.CodeArgumentInvalid},
		{"reason too long", hub.Device{DeviceID: id, StatusReason: new(strings.Repeat("r", 129))}, "*", hub.CodeArgumentInvalid},
	}
	for _, ec := range errCases {
		_, err := c.UpdateDevice(ctx, &ec.dev, ec.etag)
		WantCode(t, ec.name, err, ec.want)
	}

	on, err := c.UpdateDevice(ctx, &hub.Device{DeviceID: id, Status: hub.StatusEnabled}, "*")
	Must(t, "enable", err)
	if on.Status != hub.StatusEnabled || on.ETag == off.ETag || on.StatusReason != nil {
		t.Errorf("enabled device: status %q etag %q (disabled %q) reason %v", on.Status, on.ETag, off.ETag, on.StatusReason)
	}
	if h.Connect != nil {
		disconnect, err := connect(t)
		Must(t, "connect after enabling", err)
		defer disconnect()
	}
	resp, err := c.InvokeMethod(ctx, id, lock)
	Must(t, "invoke after enabling", err)
	if resp.Status != 200 {
		t.Errorf("method after enabling: status %d", resp.Status)
	}
}

// testBulkImport registers 250 devices in three bulk calls, then checks
// statistics, listing, per-device errors and the 100-entry limit.
func testBulkImport(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 60*time.Second)
	c := h.Client
	var ids []string
	for i := range 250 {
		ids = append(ids, fmt.Sprintf("bulk-%03d", i))
	}
	calls := 0
	for start := 0; start < len(ids); start += hub.MaxImportDevices {
		var devs []*hub.ImportDevice
		for i, id := range ids[start:min(start+hub.MaxImportDevices, len(ids))] {
			d := &hub.ImportDevice{ID: id, ImportMode: hub.ImportCreate}
			if i%2 == 1 {
				d.ImportMode = hub.ImportCreateOrUpdate
			}
			if (start+i)%10 == 0 {
				d.Status = hub.StatusDisabled
			}
			devs = append(devs, d)
		}
		res, err := c.ImportDevices(ctx, devs)
		Must(t, "bulk create", err)
		calls++
		if !res.IsSuccessful || len(res.Errors) != 0 {
			t.Fatalf("bulk create from %d: %+v", start, res)
		}
	}
	if calls != 3 {
		t.Errorf("%d bulk calls for 250 devices, want 3", calls)
	}
	st, err := c.DeviceStatistics(ctx)
	Must(t, "statistics", err)
	want := hub.RegistryStatistics{TotalDeviceCount: 254, EnabledDeviceCount: 229, DisabledDeviceCount: 25}
	if *st != want {
		t.Errorf("statistics %+v, want %+v (250 bulk devices, 25 disabled, and the fleet of 4)", *st, want)
	}

	all, err := c.ListDevices(ctx, 0)
	Must(t, "list devices", err)
	var listed []string
	for _, d := range all {
		listed = append(listed, d.DeviceID)
	}
	wantIDs := slices.Sorted(slices.Values(append(slices.Clone(ids), fleetIDs...)))
	if !slices.Equal(listed, wantIDs) {
		t.Errorf("list devices: %d ids (first %v), want all %d in id order", len(listed), listed[:min(5, len(listed))], len(wantIDs))
	}
	top, err := c.ListDevices(ctx, 10)
	Must(t, "list top 10", err)
	if len(top) != 10 || top[0].DeviceID != "bulk-000" || top[9].DeviceID != "bulk-009" {
		t.Errorf("list top 10: %d devices", len(top))
	}
	d5, err := c.GetDevice(ctx, "bulk-005")
	Must(t, "get bulk device", err)
	k := d5.Authentication.SymmetricKey
	if k.PrimaryKey == "" || k.SecondaryKey == "" || k.PrimaryKey == k.SecondaryKey || d5.Status != hub.StatusEnabled {
		t.Errorf("bulk-created device: status %q keys %+v; want enabled with two generated keys", d5.Status, k)
	}
	t.Run("generatedKeyConnects", func(t *testing.T) {
		needConnect(t, h, "the generated key cannot be tried")
		disconnect, err := h.Connect(ctx, "bulk-005", k.PrimaryKey)
		Must(t, "connect a bulk-created device", err)
		disconnect()
	})

	d2, err := c.GetDevice(ctx, "bulk-002")
	Must(t, "get bulk device", err)
	res, err := c.ImportDevices(ctx, []*hub.ImportDevice{
		{ID: "bulk-000", ImportMode: hub.ImportCreate},
		{ID: "bulk-001", ImportMode: hub.ImportDelete},
		{ID: "bulk-002", ImportMode: hub.ImportDeleteIfMatchETag, ETag: "c3RhbGU="},
		{ID: "bulk-003", ImportMode: "Delete"}, // the Node SDK's spelling
		{ID: "nope", ImportMode: hub.ImportDelete},
		{ID: "bulk-004", ImportMode: hub.ImportUpdate, Status: hub.StatusDisabled},
	})
	Must(t, "bulk with failures", err)
	wantErrs := []hub.DeviceImportError{
		{DeviceID: "bulk-000", ErrorCode: hub.CodeDeviceAlreadyExists},
		{DeviceID: "bulk-002", ErrorCode: hub.CodePreconditionFailed},
		{DeviceID: "nope", ErrorCode: hub.CodeDeviceNotFound},
	}
	if res.IsSuccessful || len(res.Errors) != len(wantErrs) || res.Warnings == nil {
		t.Fatalf("bulk with failures: %+v, want %d errors", res, len(wantErrs))
	}
	for i, w := range wantErrs {
		if g := res.Errors[i]; g.DeviceID != w.DeviceID || g.ErrorCode != w.ErrorCode || g.ErrorStatus == "" {
			t.Errorf("bulk error %d = %+v, want %s %s with a message", i, g, w.DeviceID, w.ErrorCode)
		}
	}
	if got, err := c.GetDevice(ctx, "bulk-002"); err != nil || got.ETag != d2.ETag {
		t.Errorf("bulk-002 after a stale deleteIfMatchETag: %v", err)
	}
	st, err = c.DeviceStatistics(ctx)
	Must(t, "statistics", err)
	want = hub.RegistryStatistics{TotalDeviceCount: 252, EnabledDeviceCount: 226, DisabledDeviceCount: 26}
	if *st != want {
		t.Errorf("statistics after deletes %+v, want %+v", *st, want)
	}

	tooMany := make([]*hub.ImportDevice, hub.MaxImportDevices+1)
	for i := range tooMany {
		tooMany[i] = &hub.ImportDevice{ID: fmt.Sprintf("many-%03d", i), ImportMode: hub.ImportCreate}
	}
	_, err = c.ImportDevices(ctx, tooMany)
	WantCode(t, "bulk of 101", err, hub.CodeArgumentInvalid)
	_, err = c.GetDevice(ctx, "many-000")
	WantCode(t, "device of a refused bulk", err, hub.CodeDeviceNotFound)
}
