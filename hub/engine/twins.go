package engine

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// GetTwin implements hub.Client.
func (e *Engine) GetTwin(ctx context.Context, id string) (*hub.Twin, error) {
	if err := hub.CheckDeviceID(id); err != nil {
		return nil, err
	}
	d, err := e.store.GetDevice(ctx, id)
	if err != nil {
		return nil, storeErr(err, hub.CodeDeviceNotFound, "device", id)
	}
	return twinOf(d), nil
}

// UpdateTwin implements hub.Client. The desired part of the patch is pushed
// to the device, with the new desired $version, once it is stored.
func (e *Engine) UpdateTwin(ctx context.Context, id string, patch *hub.TwinPatch, et string) (*hub.Twin, error) {
	if err := hub.CheckDeviceID(id); err != nil {
		return nil, err
	}
	return e.updateTwin(ctx, id, patch, et, nil)
}

// updateTwin is UpdateTwin storing rec, when not nil, in the same write as
// the twin (a twin job's device record).
func (e *Engine) updateTwin(ctx context.Context, id string, patch *hub.TwinPatch, et string, rec *hub.DeviceJob) (*hub.Twin, error) {
	var c *twinChange
	var d *store.Device
	err := e.audited(ctx, hub.AuditTwinPatch, id, func(ctx context.Context) error {
		var err error
		if c, err = e.twinChange(id, patch, et); err != nil {
			return err
		}
		d, err = e.store.UpdateDevice(ctx, id, c.apply, recs(rec)...)
		return storeErr(err, hub.CodeDeviceNotFound, "device", id)
	})
	if err != nil {
		return nil, err
	}
	e.pushChange(ctx, c)
	return twinOf(d), nil
}

// twinChange is a twin patch about to be applied to one device, and what
// it leaves to push to the device afterwards.
type twinChange struct {
	id      string
	patch   *hub.TwinPatch
	et      string
	now     time.Time
	pushed  map[string]any // the desired patch, once applied
	version int64          // the desired $version it made
}

// twinChange checks a patch for one device before anything is stored: the
// id, the etag (et, or the patch's own when et is ""), and the patch
// itself with hub.CheckPatch, the check a twin job makes when it is
// created, so that both refuse the same patches with the same error.
func (e *Engine) twinChange(id string, patch *hub.TwinPatch, et string) (*twinChange, error) {
	if patch == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "twin patch is missing")
	}
	if err := checkKey(id); err != nil { // a device's, or a module's (UpdateModuleTwin)
		return nil, err
	}
	et, err := patchETag(et, patch)
	if err != nil {
		return nil, err
	}
	if err := checkTwinPatch(patch); err != nil {
		return nil, err
	}
	return &twinChange{id: id, patch: patch, et: et, now: e.clock.Now()}, nil
}

// patchETag is the etag a twin change is conditional on: et, else the
// patch's own, each as hub.ParseOptionalETag reads it ("" for none).
func patchETag(et string, patch *hub.TwinPatch) (string, error) {
	et, err := hub.ParseOptionalETag(et)
	if err != nil || et != "" {
		return et, err
	}
	return hub.ParseOptionalETag(patch.ETag)
}

// checkTwinPatch runs hub.CheckPatch on a patch's tags and desired
// properties (reported ones are the device's, and ignored).
func checkTwinPatch(p *hub.TwinPatch) error {
	if err := hub.CheckPatch("tags", p.Tags); err != nil {
		return err
	}
	if p.Properties != nil {
		return hub.CheckPatch("desired", p.Properties.Desired)
	}
	return nil
}

// apply is the store update of the change.
func (c *twinChange) apply(d *store.Device) error {
	c.pushed, c.version = nil, 0
	if c.et != "" && c.et != "*" && c.et != etag(d.Version) {
		return hub.Errorf(hub.CodePreconditionFailed, "Precondition failed: etag %q does not match the twin of device '%s' (%q)", c.et, c.id, etag(d.Version))
	}
	var desired map[string]any
	if c.patch.Properties != nil {
		desired = c.patch.Properties.Desired
	}
	if c.patch.ClearDesired {
		desired = nullEvery(d.Desired)
	}
	changed := false
	if c.patch.ClearTags {
		d.Tags = map[string]any{}
		changed = true
	}
	if len(c.patch.Tags) > 0 {
		tags := maps.Clone(d.Tags)
		if tags == nil {
			tags = map[string]any{}
		}
		hub.MergePlain(tags, c.patch.Tags)
		if err := hub.CheckLimits("tags", tags); err != nil {
			return err
		}
		d.Tags = tags
		changed = true
	}
	if len(desired) > 0 || c.patch.ClearDesired {
		next := deepCopy(d.Desired)
		v := intOf(next["$version"]) + 1
		if _, err := hub.MergeSection(next, desired, c.now, v, true); err != nil {
			return err
		}
		if err := hub.CheckLimits("desired", next); err != nil {
			return err
		}
		next["$version"] = float64(v)
		d.Desired = next
		c.pushed, c.version = desired, v
		changed = true
	}
	if changed {
		d.Version++
	}
	return nil
}

// nullEvery is the patch that removes every property of a twin section,
// as "desired": null does: the device is sent it, so that its copy loses
// each property too.
func nullEvery(section map[string]any) map[string]any {
	p := map[string]any{}
	for k := range section {
		if !strings.HasPrefix(k, "$") {
			p[k] = nil
		}
	}
	return p
}

// pushChange sends an applied change's desired patch to the device, if it
// is connected and subscribed.
func (e *Engine) pushChange(ctx context.Context, c *twinChange) {
	if c.pushed == nil {
		return
	}
	b, err := json.Marshal(c.pushed)
	if err == nil {
		err = e.bus.PushDesired(ctx, c.id, b, c.version)
	}
	if err != nil {
		e.Logger.Debug("push desired patch", "device", c.id, "err", err)
	}
}

// jobTwin applies a twin job's patch to one device together with the
// record that says so, in a group commit with the job's other devices
// (twinCommitter), then pushes it.
func (e *Engine) jobTwin(ctx context.Context, id string, patch *hub.TwinPatch, et string, rec *hub.DeviceJob, l store.Lease) error {
	c, err := e.twinChange(id, patch, et)
	if err != nil {
		return err
	}
	req := &twinCommit{up: store.DeviceUpdate{ID: id, Fn: c.apply, Recs: recs(rec)}, lease: l, done: make(chan error, 1)}
	select {
	case e.twinCommits <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the commit happens: wait for it, so that the record
	// and the push follow what was stored.
	if err := <-req.done; err != nil {
		return storeErr(err, hub.CodeDeviceNotFound, "device", id)
	}
	e.pushChange(ctx, c)
	return nil
}

// twinCommit is one device's update waiting for the group commit.
type twinCommit struct {
	up    store.DeviceUpdate
	lease store.Lease // the job's, among replicas
	done  chan error
}

// twinCommitter commits twin jobs' device updates in groups: whatever has
// queued while the previous group was written goes into the next, so a
// job's 1,000 concurrent devices cost a few transactions, not 1,000.
func (e *Engine) twinCommitter() {
	defer e.wg.Done()
	for c := range e.twinCommits {
		group := []*twinCommit{c}
	drain:
		for len(group) < 512 {
			select {
			case c, ok := <-e.twinCommits:
				if !ok {
					break drain
				}
				group = append(group, c)
			default:
				break drain
			}
		}
		ups := make([]store.DeviceUpdate, len(group))
		var leases []store.Lease
		byJob := map[string][]int{}
		var jobs []string
		for i, c := range group {
			ups[i] = c.up
			if c.lease.JobID != "" {
				leases = append(leases, c.lease)
			}
			if len(c.up.Recs) > 0 {
				id := c.up.Recs[0].JobID
				if _, ok := byJob[id]; !ok {
					jobs = append(jobs, id)
				}
				byJob[id] = append(byJob[id], i)
			}
		}
		ctx := context.Background()
		if len(leases) > 0 {
			ctx = store.WithLease(ctx, leases...)
		}
		// One audit entry per job of the group, stored with it.
		var entries []*hub.AuditEntry
		for _, id := range jobs {
			part := make([]store.DeviceUpdate, len(byJob[id]))
			for k, i := range byJob[id] {
				part[k] = ups[i]
			}
			if ent := e.groupEntry(id, part); ent != nil {
				for k, i := range byJob[id] {
					ups[i] = part[k]
				}
				entries = append(entries, ent)
			}
		}
		ctx = store.WithAudit(ctx, entries...)
		_, errs, err := e.store.UpdateDevices(ctx, ups)
		for i, c := range group {
			if err != nil {
				c.done <- err
			} else {
				c.done <- errs[i]
			}
		}
	}
}

// ReplaceTwin implements hub.Client. The new desired properties get fresh
// metadata (every leaf $lastUpdated and $lastUpdatedVersion) and are
// pushed to the device whole, with their $version, as a patch would be.
// Top-level "$metadata" and "$version" keys in t, which a client that PUTs
// back a twin it read sends along, are ignored.
func (e *Engine) ReplaceTwin(ctx context.Context, id string, t *hub.TwinPatch, et string) (*hub.Twin, error) {
	if err := hub.CheckDeviceID(id); err != nil {
		return nil, err
	}
	return e.replaceTwin(ctx, id, t, et)
}

// replaceTwin is ReplaceTwin for a device id or a module key.
func (e *Engine) replaceTwin(ctx context.Context, id string, t *hub.TwinPatch, et string) (*hub.Twin, error) {
	if t == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "twin is missing")
	}
	et, err := patchETag(et, t)
	if err != nil {
		return nil, err
	}
	tags := withoutBookkeeping(t.Tags)
	var desired map[string]any
	if t.Properties != nil {
		desired = withoutBookkeeping(t.Properties.Desired)
	} else {
		desired = map[string]any{}
	}
	if err := hub.CheckLimits("tags", tags); err != nil {
		return nil, err
	}
	now := e.clock.Now()
	var pushed map[string]any
	var version int64
	var d *store.Device
	err = e.audited(ctx, hub.AuditTwinReplace, id, func(ctx context.Context) (err error) {
		d, err = e.store.UpdateDevice(ctx, id, func(d *store.Device) error {
			if et != "" && et != "*" && et != etag(d.Version) {
				return hub.Errorf(hub.CodePreconditionFailed, "Precondition failed: etag %q does not match the twin of device '%s' (%q)", et, id, etag(d.Version))
			}
			v := intOf(d.Desired["$version"]) + 1
			next := map[string]any{}
			if _, err := hub.MergeSection(next, desired, now, v, true); err != nil {
				return err
			}
			if err := hub.CheckLimits("desired", next); err != nil {
				return err
			}
			// MergeSection stamps the section's root only when it added
			// something; a replacement always changes it.
			meta, _ := next["$metadata"].(map[string]any)
			if meta == nil {
				meta = map[string]any{}
				next["$metadata"] = meta
			}
			meta["$lastUpdated"] = now.UTC().Format(wireTime)
			meta["$lastUpdatedVersion"] = v
			next["$version"] = float64(v)
			d.Tags = tags
			d.Desired = next
			d.Version++
			pushed, version = hub.StripMeta(next), v
			return nil
		})
		return storeErr(err, hub.CodeDeviceNotFound, "device", id)
	})
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(pushed)
	if err == nil {
		err = e.bus.PushDesired(ctx, id, b, version)
	}
	if err != nil {
		e.Logger.Debug("push replaced desired properties", "device", id, "err", err)
	}
	return twinOf(d), nil
}

// withoutBookkeeping returns a deep copy of a section without its
// top-level "$metadata" and "$version".
func withoutBookkeeping(section map[string]any) map[string]any {
	out := deepCopy(section)
	delete(out, "$metadata")
	delete(out, "$version")
	return out
}

// ReportedPatch implements hub.DeviceEvents.
func (e *Engine) ReportedPatch(ctx context.Context, id string, raw json.RawMessage) (int64, error) {
	var patch map[string]any
	if err := json.Unmarshal(raw, &patch); err != nil || patch == nil {
		return 0, hub.Errorf(hub.CodeArgumentInvalid, "reported properties patch must be a JSON object")
	}
	now := e.clock.Now()
	var version int64
	// The device's own write, by its key.
	if ent := e.entry(ctx, hub.AuditTwinReported, id); ent != nil {
		ent.Actor, ent.Result = "device:"+id, "200"
		ctx = store.WithAudit(ctx, ent)
	}
	_, err := e.store.UpdateDevice(ctx, id, func(d *store.Device) error {
		next := deepCopy(d.Reported)
		version = intOf(next["$version"]) + 1
		if _, err := hub.MergeSection(next, patch, now, version, false); err != nil {
			return err
		}
		if err := hub.CheckLimits("reported", next); err != nil {
			return err
		}
		next["$version"] = float64(version)
		d.Reported = next
		d.LastActivityTime = hub.Time{Time: now.UTC()}
		return nil
	})
	if err != nil {
		return 0, storeErr(err, hub.CodeDeviceNotFound, "device", id)
	}
	return version, nil
}

// TwinDocument implements hub.DeviceEvents: the device protocol's twin GET
// answer, without $metadata.
func (e *Engine) TwinDocument(ctx context.Context, id string) (json.RawMessage, error) {
	d, err := e.store.GetDevice(ctx, id)
	if err != nil {
		return nil, storeErr(err, hub.CodeDeviceNotFound, "device", id)
	}
	doc := map[string]any{"desired": withVersion(d.Desired), "reported": withVersion(d.Reported)}
	return json.Marshal(doc)
}

func withVersion(section map[string]any) map[string]any {
	out := hub.StripMeta(section)
	out["$version"] = section["$version"]
	return out
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = deepCopy(sub)
		}
		out[k] = v
	}
	return out
}

func intOf(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	case json.Number:
		i, _ := n.Int64()
		return i
	}
	return 0
}

func recs(rec *hub.DeviceJob) []*hub.DeviceJob {
	if rec == nil {
		return nil
	}
	return []*hub.DeviceJob{rec}
}
