package hubtest

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

func testTwins(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 10*time.Second)
	c := h.Client
	const id = "lock-ok"
	t0, err := c.GetTwin(ctx, id)
	Must(t, "get twin", err)
	if t0.DeviceID != id || t0.ETag == "" || t0.Tags["x"] != "y" || t0.Tags["role"] != "lock" {
		t.Fatalf("initial twin: id %q etag %q tags %v; want the fleet's tags and an etag", t0.DeviceID, t0.ETag, t0.Tags)
	}

	// Each step patches with an etag form and must move etag and version
	// on (or fail with the code given).
	prev := t0
	steps := []struct {
		name  string
		patch *hub.TwinPatch
		etag  func(cur, first *hub.Twin) string
		want  string // error code; "" for success
		check func(*hub.Twin) bool
	}{
		{"bare etag", &hub.TwinPatch{Tags: map[string]any{"a": 1.0}},
			func(cur, _ *hub.Twin) string { return cur.ETag }, "",
			func(tw *hub.Twin) bool { return tw.Tags["a"] == 1.0 }},
		{"quoted etag", &hub.TwinPatch{Tags: map[string]any{"b": map[string]any{"c": "d"}}},
			func(cur, _ *hub.Twin) string { return `"` + cur.ETag + `"` }, "",
			func(tw *hub.Twin) bool {
				b, _ := tw.Tags["b"].(map[string]any)
				return b["c"] == "d" && tw.Tags["a"] == 1.0
			}},
		{"stale etag", &hub.TwinPatch{Tags: map[string]any{"a": 2.0}},
			func(_, first *hub.Twin) string { return first.ETag }, hub.CodePreconditionFailed, nil},
		{"stale quoted etag", &hub.TwinPatch{Tags: map[string]any{"a": 2.0}},
			func(_, first *hub.Twin) string { return `"` + first.ETag + `"` }, hub.CodePreconditionFailed, nil},
		{"star", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"mode": "eco"}}},
			func(_, _ *hub.Twin) string { return "*" }, "",
			func(tw *hub.Twin) bool { return tw.Properties.Desired["mode"] == "eco" }},
		{"quoted star", &hub.TwinPatch{Tags: map[string]any{"a": nil}},
			func(_, _ *hub.Twin) string { return `"*"` }, "",
			func(tw *hub.Twin) bool { _, has := tw.Tags["a"]; return !has && tw.Tags["x"] == "y" }},
		{"no etag, null deletes desired", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"mode": nil, "level": 3.0}}},
			func(_, _ *hub.Twin) string { return "" }, "",
			func(tw *hub.Twin) bool {
				_, has := tw.Properties.Desired["mode"]
				return !has && tw.Properties.Desired["level"] == 3.0
			}},
		{"nested null", &hub.TwinPatch{Tags: map[string]any{"b": map[string]any{"c": nil, "e": true}}},
			func(cur, _ *hub.Twin) string { return cur.ETag }, "",
			func(tw *hub.Twin) bool {
				b, _ := tw.Tags["b"].(map[string]any)
				_, has := b["c"]
				return !has && b["e"] == true
			}},
		{"tags over 8 KB", &hub.TwinPatch{Tags: map[string]any{"big1": strings.Repeat("a", 3000), "big2": strings.Repeat("b", 3000), "big3": strings.Repeat("c", 3000)}},
			func(_, _ *hub.Twin) string { return "*" }, hub.CodeMessageTooLarge, nil},
		{"string over 4 KB", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"s": strings.Repeat("s", 5000)}}},
			func(_, _ *hub.Twin) string { return "*" }, hub.CodeArgumentInvalid, nil},
		{"dollar key", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"$bad": 1.0}}},
			func(_, _ *hub.Twin) string { return "*" }, hub.CodeArgumentInvalid, nil},
		{"dotted tag key", &hub.TwinPatch{Tags: map[string]any{"a.b": 1.0}},
			func(_, _ *hub.Twin) string { return "*" }, hub.CodeArgumentInvalid, nil},
	}
	for _, s := range steps {
		tw, err := c.UpdateTwin(ctx, id, s.patch, s.etag(prev, t0))
		if s.want != "" {
			WantCode(t, s.name, err, s.want)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", s.name, err)
			continue
		}
		if tw.ETag == prev.ETag || tw.Version != prev.Version+1 {
			t.Errorf("%s: etag %q→%q version %d→%d; want a new etag and version+1", s.name, prev.ETag, tw.ETag, prev.Version, tw.Version)
		}
		if !s.check(tw) {
			t.Errorf("%s: returned twin tags %v desired %v", s.name, tw.Tags, tw.Properties.Desired)
		}
		// What UpdateTwin answered is what GetTwin reads back.
		got, err := c.GetTwin(ctx, id)
		Must(t, s.name+": get twin", err)
		if got.ETag != tw.ETag || got.Version != tw.Version || !s.check(got) {
			t.Errorf("%s: read back etag %q version %d tags %v desired %v; update answered etag %q version %d",
				s.name, got.ETag, got.Version, got.Tags, got.Properties.Desired, tw.ETag, tw.Version)
		}
		prev = tw
	}
	// Failed updates changed nothing.
	last, err := c.GetTwin(ctx, id)
	Must(t, "get twin", err)
	if last.ETag != prev.ETag || last.Version != prev.Version {
		t.Errorf("after failed updates: etag %q version %d, want %q %d", last.ETag, last.Version, prev.ETag, prev.Version)
	}
	// Desired $version counts the desired patches only (two above).
	if v := num(last.Properties.Desired["$version"]); v != num(t0.Properties.Desired["$version"])+2 {
		t.Errorf("desired $version %v after two desired patches from %v", last.Properties.Desired["$version"], t0.Properties.Desired["$version"])
	}

	_, err = c.GetTwin(ctx, "nope")
	WantCode(t, "get missing twin", err, hub.CodeDeviceNotFound)
	_, err = c.UpdateTwin(ctx, "nope", &hub.TwinPatch{Tags: map[string]any{"a": 1.0}}, "*")
	WantCode(t, "update missing twin", err, hub.CodeDeviceNotFound)
}

func testDesiredEcho(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 15*time.Second)
	c := h.Client
	const id = "echo"
	// The device reports its firmware when it connects.
	t0 := WaitTwin(ctx, t, c, id, func(tw *hub.Twin) bool { return tw.Properties.Reported["firmware"] == "1.0" })
	rv0 := num(t0.Properties.Reported["$version"])
	dv0 := num(t0.Properties.Desired["$version"])

	patches := []map[string]any{
		{"interval": 5.0, "cfg": map[string]any{"mode": "fast"}},
		{"interval": 10.0, "cfg": map[string]any{"mode": nil, "level": 2.0}},
	}
	for i, p := range patches {
		tw, err := c.UpdateTwin(ctx, id, &hub.TwinPatch{Properties: &hub.Properties{Desired: p}}, "*")
		Must(t, "update desired", err)
		dv := num(tw.Properties.Desired["$version"])
		if dv != dv0+float64(i+1) {
			t.Errorf("patch %d: desired $version %v, want %v", i, dv, dv0+float64(i+1))
		}
		want := p["interval"]
		got := WaitTwin(ctx, t, c, id, func(tw *hub.Twin) bool { return tw.Properties.Reported["interval"] == want })
		if rv := num(got.Properties.Reported["$version"]); rv != rv0+float64(i+1) {
			t.Errorf("patch %d: reported $version %v, want %v (one report per patch)", i, rv, rv0+float64(i+1))
		}
		if _, has := got.Properties.Reported["$version"]; !has {
			t.Errorf("patch %d: reported has no $version", i)
		}
		if got.Properties.Reported["firmware"] != "1.0" {
			t.Errorf("patch %d: the echo lost reported.firmware: %v", i, got.Properties.Reported)
		}
	}
	final, err := c.GetTwin(ctx, id)
	Must(t, "get twin", err)
	cfg, _ := final.Properties.Reported["cfg"].(map[string]any)
	if _, has := cfg["mode"]; has || cfg["level"] != 2.0 {
		t.Errorf("reported cfg = %v, want the null to have deleted mode and level 2", cfg)
	}
	if _, has := final.Properties.Reported["$metadata"]; !has {
		t.Errorf("reported has no $metadata: %v", final.Properties.Reported)
	}
}

// testReplaceTwin replaces the echo device's tags and desired properties:
// nothing of the old ones is left, reported is untouched, and the device
// gets the new desired document.
func testReplaceTwin(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 15*time.Second)
	c := h.Client
	const id = "echo"
	t0 := WaitTwin(ctx, t, c, id, func(tw *hub.Twin) bool { return tw.Properties.Reported["firmware"] == "1.0" })
	t1, err := c.UpdateTwin(ctx, id, &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"old": 1.0}}}, t0.ETag)
	Must(t, "patch desired", err)

	repl := &hub.TwinPatch{Tags: map[string]any{"role": "replaced"},
		Properties: &hub.Properties{Desired: map[string]any{"interval": 7.0, "cfg": map[string]any{"mode": "slow"}}}}
	tw, err := c.ReplaceTwin(ctx, id, repl, `"`+t1.ETag+`"`)
	Must(t, "replace twin", err)
	dv := num(tw.Properties.Desired["$version"])
	if tw.Version != t1.Version+1 || tw.ETag == t1.ETag || dv != num(t1.Properties.Desired["$version"])+1 {
		t.Errorf("replaced twin: version %d→%d etag %q→%q desired $version %v; want +1, a new etag, +1",
			t1.Version, tw.Version, t1.ETag, tw.ETag, tw.Properties.Desired["$version"])
	}
	if !maps.Equal(tw.Tags, map[string]any{"role": "replaced"}) {
		t.Errorf("tags %v, want only the replacement", tw.Tags)
	}
	got := map[string]any{}
	maps.Copy(got, tw.Properties.Desired)
	delete(got, "$metadata")
	delete(got, "$version")
	if b, _ := json.Marshal(got); !JSONEqual(t, b, []byte(`{"interval":7,"cfg":{"mode":"slow"}}`)) {
		t.Errorf("desired %s, want exactly the replacement", b)
	}
	if tw.Properties.Reported["firmware"] != "1.0" {
		t.Errorf("reported %v, want it untouched", tw.Properties.Reported)
	}
	// The device got the new document and echoes it into reported.
	WaitTwin(ctx, t, c, id, func(tw *hub.Twin) bool {
		cfg, _ := tw.Properties.Reported["cfg"].(map[string]any)
		return tw.Properties.Reported["interval"] == 7.0 && cfg["mode"] == "slow"
	})
	back, err := c.GetTwin(ctx, id)
	Must(t, "get twin", err)
	if back.ETag != tw.ETag || back.Version != tw.Version || !maps.Equal(back.Tags, tw.Tags) {
		t.Errorf("read back etag %q version %d tags %v; replace answered %q %d %v", back.ETag, back.Version, back.Tags, tw.ETag, tw.Version, tw.Tags)
	}
	// Metadata as stored (the engine's own answer holds int64 versions).
	meta, _ := back.Properties.Desired["$metadata"].(map[string]any)
	cfgMeta, _ := meta["cfg"].(map[string]any)
	modeMeta, _ := cfgMeta["mode"].(map[string]any)
	if num(modeMeta["$lastUpdatedVersion"]) != dv || modeMeta["$lastUpdated"] == nil || meta["old"] != nil || num(meta["$lastUpdatedVersion"]) != dv {
		t.Errorf("desired $metadata %v: want every new leaf stamped with version %v and none for removed keys", meta, dv)
	}

	errCases := []struct {
		name string
		id   string
		t    *hub.TwinPatch
		etag string
		want string
	}{
		{"stale etag", id, &hub.TwinPatch{}, t1.ETag, hub.CodePreconditionFailed},
		{"unknown device", "nope", &hub.TwinPatch{}, "*", hub.CodeDeviceNotFound},
		{"dollar key", id, &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"a": map[string]any{"$b": 1.0}}}}, "*", hub.CodeArgumentInvalid},
		{"tags over 8 KB", id, &hub.TwinPatch{Tags: map[string]any{"a": strings.Repeat("a", 3000), "b": strings.Repeat("b", 3000), "c": strings.Repeat("c", 3000)}}, "*", hub.CodeMessageTooLarge},
	}
	for _, ec := range errCases {
		_, err := c.ReplaceTwin(ctx, ec.id, ec.t, ec.etag)
		WantCode(t, ec.name, err, ec.want)
	}
	if last, err := c.GetTwin(ctx, id); err != nil || last.ETag != tw.ETag {
		t.Errorf("failed replacements changed the twin (etag %q → %v, %v)", tw.ETag, last, err)
	}
}

// testClearTwin nulls the echo device's desired properties and its tags
// whole ("properties": {"desired": null}, "tags": null): every one goes, the
// version and etag move on, and the device is sent a patch nulling each
// desired property, which its echo removes from reported.
func testClearTwin(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 15*time.Second)
	c := h.Client
	const id = "echo"
	WaitTwin(ctx, t, c, id, func(tw *hub.Twin) bool { return tw.Properties.Reported["firmware"] == "1.0" })
	t1, err := c.UpdateTwin(ctx, id, &hub.TwinPatch{Tags: map[string]any{"a": 1.0},
		Properties: &hub.Properties{Desired: map[string]any{"interval": 3.0, "cfg": map[string]any{"mode": "on"}}}}, "*")
	Must(t, "patch desired", err)
	WaitTwin(ctx, t, c, id, func(tw *hub.Twin) bool { return tw.Properties.Reported["interval"] == 3.0 })

	for _, et := range []string{t1.ETag, "*"} {
		tw, err := c.UpdateTwin(ctx, id, &hub.TwinPatch{ClearDesired: true, ClearTags: true}, et)
		Must(t, "null out desired and tags", err)
		if tw.Version != t1.Version+1 || tw.ETag == t1.ETag || num(tw.Properties.Desired["$version"]) != num(t1.Properties.Desired["$version"])+1 {
			t.Errorf("etag %q: version %d→%d etag %q→%q desired $version %v→%v; want +1, a new etag, +1", et,
				t1.Version, tw.Version, t1.ETag, tw.ETag, t1.Properties.Desired["$version"], tw.Properties.Desired["$version"])
		}
		if len(tw.Tags) != 0 {
			t.Errorf("etag %q: tags %v after tags: null", et, tw.Tags)
		}
		for k := range tw.Properties.Desired {
			if !strings.HasPrefix(k, "$") {
				t.Errorf("etag %q: desired %v after desired: null", et, tw.Properties.Desired)
				break
			}
		}
		t1 = tw
	}
	WaitTwin(ctx, t, c, id, func(tw *hub.Twin) bool {
		_, interval := tw.Properties.Reported["interval"]
		_, cfg := tw.Properties.Reported["cfg"]
		return !interval && !cfg
	})
}
