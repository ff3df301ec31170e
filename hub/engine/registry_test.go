package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/sas"
)

func ptr[T any](v T) *T { return &v }

func TestUpdateDevice(t *testing.T) {
	clk := clock.NewVirtual(t0)
	bus := newTestBus("dev1")
	e := newEngine(t, bus, clk)
	ctx := context.Background()
	mustCreate(t, e, "dev1", "dev2")
	orig, err := e.GetDevice(ctx, "dev1")
	if err != nil {
		t.Fatal(err)
	}
	newKey := sas.GenerateKey()

	// Steps run in order on the same device; each that succeeds must move
	// the etag on.
	steps := []struct {
		name  string
		dev   hub.Device
		etag  func(cur *hub.Device) string
		code  string
		check func(t *testing.T, d *hub.Device)
	}{
		{name: "disable with reason and quoted etag",
			dev:  hub.Device{DeviceID: "dev1", Status: hub.StatusDisabled, StatusReason: ptr("stolen")},
			etag: func(cur *hub.Device) string { return `"` + cur.ETag + `"` },
			check: func(t *testing.T, d *hub.Device) {
				if d.Status != hub.StatusDisabled || *d.StatusReason != "stolen" || !d.StatusUpdatedTime.Equal(t0.Add(time.Minute)) {
					t.Errorf("device %+v, want disabled with reason, status time %v", d, t0.Add(time.Minute))
				}
				if d.Authentication.SymmetricKey != orig.Authentication.SymmetricKey {
					t.Errorf("empty keys changed the keys: %+v", d.Authentication.SymmetricKey)
				}
			}},
		{name: "same status keeps its time, new primary key",
			dev: hub.Device{DeviceID: "dev1", Status: hub.StatusDisabled,
				Authentication: hub.Authentication{SymmetricKey: hub.SymmetricKey{PrimaryKey: newKey}}},
			etag: func(*hub.Device) string { return "*" },
			check: func(t *testing.T, d *hub.Device) {
				if !d.StatusUpdatedTime.Equal(t0.Add(time.Minute)) || d.StatusReason != nil {
					t.Errorf("status time %v reason %v, want the first change's time and no reason", d.StatusUpdatedTime, d.StatusReason)
				}
				k := d.Authentication.SymmetricKey
				if k.PrimaryKey != newKey || k.SecondaryKey != orig.Authentication.SymmetricKey.SecondaryKey {
					t.Errorf("keys %+v, want the new primary and the old secondary", k)
				}
			}},
		{name: "enable without etag", dev: hub.Device{DeviceID: "dev1", Status: hub.StatusEnabled},
			etag: func(*hub.Device) string { return "" },
			check: func(t *testing.T, d *hub.Device) {
				if d.Status != hub.StatusEnabled || !d.StatusUpdatedTime.Equal(t0.Add(3*time.Minute)) {
					t.Errorf("device %+v", d)
				}
			}},
		{name: "empty status keeps it", dev: hub.Device{DeviceID: "dev1"},
			etag: func(cur *hub.Device) string { return cur.ETag },
			check: func(t *testing.T, d *hub.Device) {
				if d.Status != hub.StatusEnabled {
					t.Errorf("status %q", d.Status)
				}
			}},
		{name: "stale etag", dev: hub.Device{DeviceID: "dev1", Status: hub.StatusDisabled},
			etag: func(*hub.Device) string { return orig.ETag }, code: hub.CodePreconditionFailed},
		{name: "unknown device", dev: hub.Device{DeviceID: "ghost"},
			etag: func(*hub.Device) string { return "*" }, code: hub.CodeDeviceNotFound},
		{name: "bad status", dev: hub.Device{DeviceID: "dev1", Status: "asleep"},
			etag: func(*hub.Device) string { return "*" }, code: hub.CodeArgumentInvalid},
		{name: "reason of 129 characters", dev: hub.Device{DeviceID: "dev1", StatusReason: ptr(strings.Repeat("é", 129))},
			etag: func(*hub.Device) string { return "*" }, code: hub.CodeArgumentInvalid},
		{name: "bad key", dev: hub.Device{DeviceID: "dev1", Authentication: hub.Authentication{SymmetricKey: hub.SymmetricKey{SecondaryKey: "!!"}}},
			etag: func(*hub.Device) string { return "*" }, code: hub.CodeArgumentInvalid},
		{name: "x509", dev: hub.Device{DeviceID: "dev1", Authentication: hub.Authentication{Type: "selfSigned"}},
			etag: func(*hub.Device) string { return "*" }, code: hub.CodeArgumentInvalid},
		{name: "bad id", dev: hub.Device{DeviceID: "a/b"},
			etag: func(*hub.Device) string { return "*" }, code: hub.CodeArgumentInvalid},
	}
	cur := orig
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(time.Minute)
			d := s.dev
			got, err := e.UpdateDevice(ctx, &d, s.etag(cur))
			if s.code != "" {
				wantCode(t, err, s.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ETag == cur.ETag || got.ETag == "" {
				t.Errorf("etag %q → %q, want a new one", cur.ETag, got.ETag)
			}
			s.check(t, got)
			back, err := e.GetDevice(ctx, "dev1")
			if err != nil || back.ETag != got.ETag || back.Status != got.Status {
				t.Errorf("read back %+v, %v; update answered %+v", back, err, got)
			}
			cur = got
		})
	}
	// The twin shows the identity's status.
	if tw, err := e.GetTwin(ctx, "dev1"); err != nil || tw.Status != hub.StatusEnabled || tw.DeviceETag != cur.ETag {
		t.Errorf("twin %+v, %v", tw, err)
	}
	if other, _ := e.GetDevice(ctx, "dev2"); other.ETag != "MQ==" {
		t.Errorf("dev2 etag %q changed by updates of dev1", other.ETag)
	}
}

func TestDisableDevice(t *testing.T) {
	bus := newTestBus("dev1")
	e := newEngine(t, bus, clock.Real())
	ctx := context.Background()
	mustCreate(t, e, "dev1")
	if _, err := e.InvokeMethod(ctx, "dev1", &hub.MethodRequest{MethodName: "m"}); err != nil {
		t.Fatalf("invoke before disabling: %v", err)
	}
	<-bus.calls
	if _, err := e.UpdateDevice(ctx, &hub.Device{DeviceID: "dev1", Status: hub.StatusDisabled}, "*"); err != nil {
		t.Fatal(err)
	}
	bus.mu.Lock()
	kicked := slices.Clone(bus.kicked)
	bus.mu.Unlock()
	if !slices.Equal(kicked, []string{"dev1"}) {
		t.Errorf("kicked %v, want dev1 once", kicked)
	}
	// The bus still says online (it is a fake); the engine must refuse
	// anyway and not reach the device.
	_, err := e.InvokeMethod(ctx, "dev1", &hub.MethodRequest{MethodName: "m", ConnectTimeoutInSeconds: 5})
	wantCode(t, err, hub.CodeDeviceNotOnline)
	select {
	case id := <-bus.calls:
		t.Errorf("a method reached disabled device %s", id)
	default:
	}
	if _, err := e.UpdateDevice(ctx, &hub.Device{DeviceID: "dev1", Status: hub.StatusEnabled}, "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.InvokeMethod(ctx, "dev1", &hub.MethodRequest{MethodName: "m"}); err != nil {
		t.Fatalf("invoke after enabling: %v", err)
	}
	bus.mu.Lock()
	defer bus.mu.Unlock()
	if len(bus.kicked) != 1 {
		t.Errorf("enabling kicked the device: %v", bus.kicked)
	}
}

func TestListDevicesAndStatistics(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.Real())
	ctx := context.Background()
	var ids []string
	for i := range 12 {
		ids = append(ids, fmt.Sprintf("d%02d", 11-i)) // created out of order
	}
	mustCreate(t, e, ids...)
	if _, err := e.CreateDevice(ctx, &hub.Device{DeviceID: "off", Status: hub.StatusDisabled}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	tests := []struct {
		name string
		top  int
		want []string
	}{
		{"top 3", 3, ids[:3]},
		{"top 1", 1, ids[:1]},
		{"top 0 is 1000", 0, append(slices.Clone(ids), "off")},
		{"negative top is 1000", -5, append(slices.Clone(ids), "off")},
		{"top over 1000 is 1000", 1001, append(slices.Clone(ids), "off")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := e.ListDevices(ctx, tc.top)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.DeviceID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ids %v, want %v", got, tc.want)
			}
		})
	}
	st, err := e.DeviceStatistics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (hub.RegistryStatistics{TotalDeviceCount: 13, EnabledDeviceCount: 12, DisabledDeviceCount: 1}); *st != want {
		t.Errorf("statistics %+v, want %+v", *st, want)
	}
}

// TestImportRefusesMalformed: an entry malformed by itself refuses the
// whole bulk operation, so the good entries around it are not applied.
func TestImportRefusesMalformed(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.Real())
	ctx := context.Background()
	for _, bad := range []*hub.ImportDevice{
		{ID: "x", ImportMode: "merge"},
		{ID: "", ImportMode: hub.ImportCreate},
		{ID: "bad id", ImportMode: hub.ImportCreate},
		nil,
		{ID: "x", ImportMode: hub.ImportCreate, Status: "paused"},
		{ID: "x", ImportMode: hub.ImportCreate, Authentication: &hub.Authentication{Type: "sas", SymmetricKey: hub.SymmetricKey{PrimaryKey: "short"}}},
		{ID: "x", ImportMode: hub.ImportUpdateIfMatchETag, ETag: `"a"b"`},
	} {
		_, err := e.ImportDevices(ctx, []*hub.ImportDevice{{ID: "good", ImportMode: hub.ImportCreate}, bad})
		if hub.ErrorCode(err) != hub.CodeArgumentInvalid || !strings.Contains(err.Error(), "bulk entry 1") {
			t.Errorf("bulk with %+v: %v, want ArgumentInvalid naming entry 1", bad, err)
		}
		if _, err := e.GetDevice(ctx, "good"); !errors.Is(err, hub.ErrDeviceNotFound) {
			t.Errorf("bulk with %+v applied its good entry: %v", bad, err)
		}
	}
}

func TestImportDevices(t *testing.T) {
	e := newEngine(t, newTestBus(), clock.Real())
	ctx := context.Background()
	mustCreate(t, e, "old1", "old2", "old3")
	old2, _ := e.GetDevice(ctx, "old2")
	key := sas.GenerateKey()

	res, err := e.ImportDevices(ctx, []*hub.ImportDevice{
		{ID: "new1", ImportMode: hub.ImportCreate},
		{ID: "new2", ImportMode: "Create", Status: hub.StatusDisabled, StatusReason: ptr("not yet"),
			Authentication: &hub.Authentication{Type: "sas", SymmetricKey: hub.SymmetricKey{PrimaryKey: key}}},
		{ID: "old1", ImportMode: hub.ImportCreate},                                         // exists
		{ID: "new3", ImportMode: hub.ImportCreateOrUpdate},                                 // created
		{ID: "old1", ImportMode: hub.ImportCreateOrUpdate, Status: hub.StatusDisabled},     // updated
		{ID: "old2", ImportMode: "Update", Status: hub.StatusDisabled},                     // Node's case
		{ID: "ghost", ImportMode: hub.ImportUpdate},                                        // missing
		{ID: "old3", ImportMode: hub.ImportUpdateIfMatchETag, ETag: "stale"},               // stale
		{ID: "old3", ImportMode: hub.ImportUpdateIfMatchETag},                              // no etag
		{ID: "old2", ImportMode: hub.ImportDeleteIfMatchETag, ETag: `"` + old2.ETag + `"`}, // stale after the update above
		{ID: "old3", ImportMode: hub.ImportDelete},
		{ID: "ghost", ImportMode: "Delete"},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantErrs := []hub.DeviceImportError{
		{DeviceID: "old1", ErrorCode: hub.CodeDeviceAlreadyExists},
		{DeviceID: "ghost", ErrorCode: hub.CodeDeviceNotFound},
		{DeviceID: "old3", ErrorCode: hub.CodePreconditionFailed},
		{DeviceID: "old3", ErrorCode: hub.CodePreconditionFailed},
		{DeviceID: "old2", ErrorCode: hub.CodePreconditionFailed},
		{DeviceID: "ghost", ErrorCode: hub.CodeDeviceNotFound},
	}
	if res.IsSuccessful || len(res.Errors) != len(wantErrs) || res.Warnings == nil {
		t.Fatalf("result %+v, want %d errors and warnings []", res, len(wantErrs))
	}
	for i, w := range wantErrs {
		g := res.Errors[i]
		if g.DeviceID != w.DeviceID || g.ErrorCode != w.ErrorCode || g.ErrorStatus == "" {
			t.Errorf("error %d = %+v, want %s %s with a message", i, g, w.DeviceID, w.ErrorCode)
		}
	}
	states := []struct {
		id, status string
		gone       bool
		check      func(d *hub.Device) bool
	}{
		{id: "new1", status: hub.StatusEnabled, check: func(d *hub.Device) bool { return d.Authentication.SymmetricKey.PrimaryKey != "" }},
		{id: "new2", status: hub.StatusDisabled, check: func(d *hub.Device) bool {
			k := d.Authentication.SymmetricKey
			return k.PrimaryKey == key && k.SecondaryKey != "" && *d.StatusReason == "not yet"
		}},
		{id: "new3", status: hub.StatusEnabled},
		{id: "old1", status: hub.StatusDisabled},
		{id: "old2", status: hub.StatusDisabled},
		{id: "old3", gone: true},
	}
	for _, s := range states {
		d, err := e.GetDevice(ctx, s.id)
		if s.gone {
			wantCode(t, err, hub.CodeDeviceNotFound)
			continue
		}
		if err != nil || d.Status != s.status || (s.check != nil && !s.check(d)) {
			t.Errorf("%s after import: %+v, %v; want status %s", s.id, d, err, s.status)
		}
	}

	// deleteIfMatchETag and updateIfMatchETag with the current etag.
	cur, _ := e.GetDevice(ctx, "old2")
	n1, _ := e.GetDevice(ctx, "new1")
	res, err = e.ImportDevices(ctx, []*hub.ImportDevice{
		{ID: "old2", ImportMode: hub.ImportDeleteIfMatchETag, ETag: cur.ETag},
		{ID: "new1", ImportMode: hub.ImportUpdateIfMatchETag, ETag: n1.ETag, Status: hub.StatusDisabled},
	})
	if err != nil || !res.IsSuccessful || len(res.Errors) != 0 {
		t.Fatalf("etag-matched import: %+v, %v", res, err)
	}
	if d, _ := e.GetDevice(ctx, "new1"); d.Status != hub.StatusDisabled {
		t.Errorf("new1 status %q after updateIfMatchETag", d.Status)
	}

	sizes := []struct {
		name string
		n    int
		code string
	}{
		{"none", 0, hub.CodeArgumentInvalid},
		{"101", hub.MaxImportDevices + 1, hub.CodeArgumentInvalid},
	}
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			devs := make([]*hub.ImportDevice, sz.n)
			for i := range devs {
				devs[i] = &hub.ImportDevice{ID: fmt.Sprintf("s%d", i), ImportMode: hub.ImportCreate}
			}
			_, err := e.ImportDevices(ctx, devs)
			wantCode(t, err, sz.code)
			if _, err := e.GetDevice(ctx, "s0"); err == nil {
				t.Error("a refused batch created devices")
			}
		})
	}
}

func TestReplaceTwin(t *testing.T) {
	clk := clock.NewVirtual(t0)
	bus := newTestBus("dev1")
	e := newEngine(t, bus, clk)
	ctx := context.Background()
	mustCreate(t, e, "dev1")
	tw1, err := e.UpdateTwin(ctx, "dev1", &hub.TwinPatch{Tags: map[string]any{"old": "tag"},
		Properties: &hub.Properties{Desired: map[string]any{"gone": 1.0, "cfg": map[string]any{"a": 1.0}}}}, "*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ReportedPatch(ctx, "dev1", []byte(`{"battery":50}`)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	bus.mu.Lock()
	bus.pushed = nil
	bus.mu.Unlock()

	repl := &hub.TwinPatch{Tags: map[string]any{"site": map[string]any{"floor": 3.0}},
		Properties: &hub.Properties{
			Desired:  map[string]any{"cfg": map[string]any{"b": 2.0}, "fw": "2.0", "$version": 99.0, "$metadata": map[string]any{}},
			Reported: map[string]any{"battery": 1.0}, // ignored: devices own reported
		}}
	tw, err := e.ReplaceTwin(ctx, "dev1", repl, `"`+tw1.ETag+`"`)
	if err != nil {
		t.Fatal(err)
	}
	d := tw.Properties.Desired
	if tw.Version != tw1.Version+1 || tw.ETag == tw1.ETag || d["$version"] != 3.0 {
		t.Errorf("version %d etag %q desired $version %v; want %d, a new etag, 3", tw.Version, tw.ETag, d["$version"], tw1.Version+1)
	}
	if _, has := tw.Tags["old"]; has || tw.Tags["site"] == nil {
		t.Errorf("tags %v, want only site", tw.Tags)
	}
	cfg, _ := d["cfg"].(map[string]any)
	if _, has := d["gone"]; has || cfg["a"] != nil || cfg["b"] != 2.0 || d["fw"] != "2.0" {
		t.Errorf("desired %v, want exactly the replacement", d)
	}
	if tw.Properties.Reported["battery"] != 50.0 {
		t.Errorf("reported %v, want it untouched", tw.Properties.Reported)
	}
	at := t0.Add(time.Minute).Format("2006-01-02T15:04:05.9999999Z")
	meta, _ := d["$metadata"].(map[string]any)
	cfgMeta, _ := meta["cfg"].(map[string]any)
	bMeta, _ := cfgMeta["b"].(map[string]any)
	fwMeta, _ := meta["fw"].(map[string]any)
	for name, m := range map[string]map[string]any{"root": meta, "cfg": cfgMeta, "cfg.b": bMeta, "fw": fwMeta} {
		if m["$lastUpdated"] != at || num(m["$lastUpdatedVersion"]) != 3 {
			t.Errorf("$metadata of %s = %v, want $lastUpdated %s and $lastUpdatedVersion 3", name, m, at)
		}
	}
	if _, has := meta["gone"]; has {
		t.Errorf("metadata of a removed property kept: %v", meta)
	}
	bus.mu.Lock()
	pushed := slices.Clone(bus.pushed)
	bus.mu.Unlock()
	if len(pushed) != 1 || pushed[0].version != 3 || pushed[0].patch["fw"] != "2.0" || pushed[0].patch["$metadata"] != nil || pushed[0].patch["gone"] != nil {
		t.Errorf("pushed %+v, want the new desired document with version 3 and no metadata", pushed)
	}

	errs := []struct {
		name string
		id   string
		t    *hub.TwinPatch
		etag string
		code string
	}{
		{"stale etag", "dev1", &hub.TwinPatch{}, tw1.ETag, hub.CodePreconditionFailed},
		{"stale etag in body", "dev1", &hub.TwinPatch{ETag: tw1.ETag}, "", hub.CodePreconditionFailed},
		{"unknown device", "ghost", &hub.TwinPatch{}, "*", hub.CodeDeviceNotFound},
		{"nil twin", "dev1", nil, "*", hub.CodeArgumentInvalid},
		{"dollar key in desired", "dev1", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"a": map[string]any{"$b": 1.0}}}}, "*", hub.CodeArgumentInvalid},
		{"dotted tag", "dev1", &hub.TwinPatch{Tags: map[string]any{"a.b": 1.0}}, "*", hub.CodeArgumentInvalid},
		{"tags over 8 KB", "dev1", &hub.TwinPatch{Tags: map[string]any{"a": strings.Repeat("a", 4000), "b": strings.Repeat("b", 4000), "c": strings.Repeat("c", 4000)}}, "*", hub.CodeMessageTooLarge},
	}
	for _, ec := range errs {
		t.Run(ec.name, func(t *testing.T) {
			_, err := e.ReplaceTwin(ctx, ec.id, ec.t, ec.etag)
			wantCode(t, err, ec.code)
		})
	}
	if after, _ := e.GetTwin(ctx, "dev1"); after.ETag != tw.ETag {
		t.Errorf("failed replacements changed the twin: etag %q → %q", tw.ETag, after.ETag)
	}

	// An empty replacement clears tags and desired but still counts.
	empty, err := e.ReplaceTwin(ctx, "dev1", &hub.TwinPatch{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(empty.Tags) != 0 || len(hub.StripMeta(empty.Properties.Desired)) != 0 || empty.Properties.Desired["$version"] != 4.0 || empty.Version != tw.Version+1 {
		t.Errorf("after empty replacement: tags %v desired %v version %d", empty.Tags, empty.Properties.Desired, empty.Version)
	}
}

func num(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	}
	return -1
}
