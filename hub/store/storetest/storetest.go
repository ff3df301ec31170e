package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// Run runs the conformance suite. Every subtest gets a fresh, empty store
// from open, which also arranges for it to be closed (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"DeviceRoundTrip", testDeviceRoundTrip},
		{"DeviceCopies", testDeviceCopies},
		{"CreateDeviceConflict", testCreateDeviceConflict},
		{"NotFound", testNotFound},
		{"UpdateDeviceAbort", testUpdateDeviceAbort},
		{"UpdateDeviceSeesLatest", testUpdateDeviceSeesLatest},
		{"UpdateDeviceConcurrent", testUpdateDeviceConcurrent},
		{"UpdateDevices", testUpdateDevices},
		{"DeleteDevice", testDeleteDevice},
		{"ScanDevices", testScanDevices},
		{"ScanDevicesPaging", testScanDevicesPaging},
		{"JobRoundTrip", testJobRoundTrip},
		{"JobConflictAndPut", testJobConflictAndPut},
		{"ListJobs", testListJobs},
		{"DeviceJobRoundTrip", testDeviceJobRoundTrip},
		{"PutDeviceJobsUpsert", testPutDeviceJobsUpsert},
		{"PutDeviceJobsBatch", testPutDeviceJobsBatch},
		{"ScanDeviceJobs", testScanDeviceJobs},
		{"UpdateDeviceWithRecords", testUpdateDeviceWithRecords},
		{"PutDeviceJobsWithJob", testPutDeviceJobsWithJob},
		{"CancelledContext", testCancelledContext},
		{"CancelWhileWaiting", testCancelWhileWaiting},
		{"Certificates", testCertificates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// at returns a fixed UTC time sec seconds into the test epoch. The
// fraction has seven digits, the precision of hub.Time on the wire, so
// that stores that serialise times lose nothing.
func at(sec int) hub.Time {
	return hub.Time{Time: time.Date(2024, 5, 6, 7, 8, 9, 123456700, time.UTC).Add(time.Duration(sec) * time.Second)}
}

func atp(sec int) *hub.Time { t := at(sec); return &t }

func strp(s string) *string { return &s }

// fullDevice has every field of a device set, and twin sections with the
// shapes the engine writes: nested objects, arrays, $version, $metadata,
// unicode, and only JSON types (numbers are float64).
func fullDevice(id string) *store.Device {
	return &store.Device{
		Device: hub.Device{
			DeviceID:                   id,
			GenerationID:               "638512345678901234",
			ETag:                       "MTIzNDU2Nzg=",
			ConnectionState:            hub.Connected,
			Status:                     hub.StatusDisabled,
			StatusReason:               strp("maintenance ☃ «window»"),
			ConnectionStateUpdatedTime: at(1),
			StatusUpdatedTime:          at(2),
			LastActivityTime:           at(3),
			CloudToDeviceMessageCount:  7,
			Authentication: hub.Authentication{
				SymmetricKey: hub.SymmetricKey{
					PrimaryKey:   "cHJpbWFyeS1rZXktMDEyMzQ1Njc4OWFiY2RlZg==",
					SecondaryKey: "c2Vjb25kYXJ5LWtleS0wMTIzNDU2Nzg5YWJjZA==",
				},
				X509Thumbprint: hub.X509Thumbprint{PrimaryThumbprint: strp("AB12"), SecondaryThumbprint: nil},
				Type:           "sas",
			},
			Capabilities: hub.Capabilities{IotEdge: true},
		},
		Tags: map[string]any{
			"site":  "München",
			"floor": 3.0,
			"日本語":   "テスト ✓",
			"nested": map[string]any{
				"list":  []any{1.0, "x", nil, true, map[string]any{"k": -2.5}},
				"empty": map[string]any{},
				"none":  []any{},
				"big":   1e300,
				"small": 1.5e-7,
			},
		},
		Desired: map[string]any{
			"interval": 30.0,
			"mode":     "eco",
			"$version": 4.0,
			"$metadata": map[string]any{
				"$lastUpdated":        "2024-05-06T07:08:09.1234567Z",
				"$lastUpdatedVersion": 4.0,
				"interval": map[string]any{
					"$lastUpdated":        "2024-05-06T07:08:09.1234567Z",
					"$lastUpdatedVersion": 4.0,
				},
			},
		},
		Reported: map[string]any{
			"firmware": map[string]any{"version": "1.2.3", "ok": false},
			"temp":     -12.75,
			"$version": 9.0,
			"$metadata": map[string]any{
				"$lastUpdated": "2024-05-06T07:08:10Z",
			},
		},
		Version: 42,
	}
}

func minimalDevice(id string) *store.Device {
	return &store.Device{Device: hub.Device{DeviceID: id}}
}

// mustEqual fails t when got and want differ, showing both as JSON (which
// hides Go types, so the message says to look at them too).
func mustEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	t.Fatalf("%s differs (compare Go types too if the JSON is equal):\ngot  %s\nwant %s\ngot  %#v\nwant %#v", what, g, w, got, want)
}

func create(t *testing.T, s store.Store, ds ...*store.Device) {
	t.Helper()
	for _, d := range ds {
		if err := s.CreateDevice(context.Background(), d); err != nil {
			t.Fatalf("CreateDevice(%q): %v", d.DeviceID, err)
		}
	}
}

func get(t *testing.T, s store.Store, id string) *store.Device {
	t.Helper()
	d, err := s.GetDevice(context.Background(), id)
	if err != nil {
		t.Fatalf("GetDevice(%q): %v", id, err)
	}
	return d
}

func testDeviceRoundTrip(t *testing.T, s store.Store) {
	withEmpty := minimalDevice("empty-sections")
	withEmpty.Tags, withEmpty.Desired, withEmpty.Reported = map[string]any{}, map[string]any{}, map[string]any{}
	tests := []struct {
		name string
		in   *store.Device
		want *store.Device
	}{
		{"full", fullDevice("full-1"), fullDevice("full-1")},
		{"unicode id", fullDevice("gerät-überall-日本"), fullDevice("gerät-überall-日本")},
		{"special id", fullDevice("a-.+%_#*?!(),=@$':;z"), fullDevice("a-.+%_#*?!(),=@$':;z")},
		{
			// Nil sections read back as empty maps, so that callers can
			// assign into them without a nil check.
			"nil sections", minimalDevice("minimal"),
			&store.Device{Device: hub.Device{DeviceID: "minimal"}, Tags: map[string]any{}, Desired: map[string]any{}, Reported: map[string]any{}},
		},
		{"empty sections", withEmpty, &store.Device{Device: hub.Device{DeviceID: "empty-sections"}, Tags: map[string]any{}, Desired: map[string]any{}, Reported: map[string]any{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			create(t, s, tt.in)
			mustEqual(t, "GetDevice", get(t, s, tt.in.DeviceID), tt.want)
			page, err := s.ScanDevices(context.Background(), "", 1000)
			if err != nil {
				t.Fatalf("ScanDevices: %v", err)
			}
			i := slices.IndexFunc(page, func(d *store.Device) bool { return d.DeviceID == tt.in.DeviceID })
			if i < 0 {
				t.Fatalf("ScanDevices did not return %q", tt.in.DeviceID)
			}
			mustEqual(t, "ScanDevices", page[i], tt.want)
		})
	}
}

// testDeviceCopies pins that a store keeps its own copy: neither the
// device passed in nor the ones handed out alias what is stored.
func testDeviceCopies(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := fullDevice("d1")
	create(t, s, in)
	in.Tags["site"] = "changed"
	in.Desired["$metadata"].(map[string]any)["interval"] = "changed"
	in.Version = 1

	got := get(t, s, "d1")
	mustEqual(t, "after changing the created value", got, fullDevice("d1"))
	got.Tags["nested"].(map[string]any)["big"] = 0.0
	got.Reported["new"] = true
	mustEqual(t, "after changing a read value", get(t, s, "d1"), fullDevice("d1"))

	var kept *store.Device
	updated, err := s.UpdateDevice(ctx, "d1", func(d *store.Device) error {
		kept = d
		d.Tags["site"] = "updated"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateDevice: %v", err)
	}
	want := fullDevice("d1")
	want.Tags["site"] = "updated"
	mustEqual(t, "UpdateDevice result", updated, want)
	kept.Tags["site"] = "after commit"
	updated.Desired["mode"] = "after commit"
	mustEqual(t, "after changing the updated value", get(t, s, "d1"), want)
}

func testCreateDeviceConflict(t *testing.T, s store.Store) {
	create(t, s, fullDevice("dup"))
	tests := []struct {
		name string
		d    *store.Device
	}{
		{"same device", fullDevice("dup")},
		{"different content", minimalDevice("dup")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.CreateDevice(context.Background(), tt.d)
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("CreateDevice of an existing id: err = %v, want ErrConflict", err)
			}
			mustEqual(t, "original device", get(t, s, "dup"), fullDevice("dup"))
		})
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, minimalDevice("exists"))
	if err := s.CreateJob(ctx, &hub.Job{JobID: "exists", CreatedTime: atp(0)}); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"GetDevice", func() error { _, err := s.GetDevice(ctx, "missing"); return err }},
		{"GetDevice prefix", func() error { _, err := s.GetDevice(ctx, "exist"); return err }},
		{"GetDevice case", func() error { _, err := s.GetDevice(ctx, "EXISTS"); return err }},
		{"UpdateDevice", func() error {
			_, err := s.UpdateDevice(ctx, "missing", func(*store.Device) error {
				return errors.New("fn called for a missing device")
			})
			return err
		}},
		{"DeleteDevice", func() error { return s.DeleteDevice(ctx, "missing") }},
		{"GetJob", func() error { _, err := s.GetJob(ctx, "missing"); return err }},
		{"PutJob", func() error { return s.PutJob(ctx, &hub.Job{JobID: "missing", CreatedTime: atp(1)}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		})
	}
	if _, err := s.GetJob(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("PutJob of a missing job created it: GetJob err = %v", err)
	}
}

var errAbort = errors.New("abort from fn")

func testUpdateDeviceAbort(t *testing.T, s store.Store) {
	tests := []struct {
		name string
		err  error
	}{
		{"sentinel", errAbort},
		{"wrapped", fmt.Errorf("check etag: %w", errAbort)},
		{"hub error", hub.Errorf(hub.CodePreconditionFailed, "etag mismatch")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			create(t, s, fullDevice(tt.name))
			d, err := s.UpdateDevice(context.Background(), tt.name, func(d *store.Device) error {
				d.Tags["site"] = "written?"
				d.Desired = nil
				d.Version++
				return tt.err
			})
			if err != tt.err || !errors.Is(err, tt.err) {
				t.Fatalf("UpdateDevice err = %v, want fn's error as is", err)
			}
			if d != nil {
				t.Errorf("UpdateDevice returned a device with an error: %+v", d)
			}
			mustEqual(t, "device after an aborted update", get(t, s, tt.name), fullDevice(tt.name))
		})
	}
}

// testUpdateDevices: a group of updates is written together, each all or
// nothing for its device: a missing device or a failing Fn leaves that one
// out (with its error), the others and their records are stored.
func testUpdateDevices(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, fullDevice("a"), fullDevice("b"), fullDevice("c"))
	rec := func(id string) []*hub.DeviceJob { return []*hub.DeviceJob{fullDeviceJob("group", id)} }
	bump := func(d *store.Device) error {
		d.Version++
		d.Tags["group"] = "yes"
		return nil
	}
	devs, errs, err := s.UpdateDevices(ctx, []store.DeviceUpdate{
		{ID: "a", Fn: bump, Recs: rec("a")},
		{ID: "missing", Fn: bump, Recs: rec("missing")},
		{ID: "b", Fn: func(d *store.Device) error { d.Tags["group"] = "no"; return errAbort }, Recs: rec("b")},
		{ID: "c", Fn: bump, Recs: rec("c")},
	})
	if err != nil {
		t.Fatalf("UpdateDevices: %v", err)
	}
	if len(devs) != 4 || len(errs) != 4 {
		t.Fatalf("%d devices, %d errors; want 4 of each", len(devs), len(errs))
	}
	if errs[0] != nil || errs[3] != nil || !errors.Is(errs[1], store.ErrNotFound) || errs[2] != errAbort {
		t.Errorf("errors %v, want nil, ErrNotFound, fn's error, nil", errs)
	}
	if devs[0] == nil || devs[0].Tags["group"] != "yes" || devs[1] != nil || devs[2] != nil || devs[3] == nil {
		t.Errorf("returned devices %v", devs)
	}
	want := fullDevice("a")
	want.Version++
	want.Tags["group"] = "yes"
	mustEqual(t, "a after the group", get(t, s, "a"), want)
	mustEqual(t, "b after its failed update", get(t, s, "b"), fullDevice("b"))
	got := map[string]bool{}
	for _, dj := range scanAll(t, s, "group") {
		got[dj.DeviceID] = true
	}
	if !got["a"] || !got["c"] || got["b"] || got["missing"] || len(got) != 2 {
		t.Errorf("records stored for %v, want a and c", got)
	}
	if devs, errs, err := s.UpdateDevices(ctx, nil); err != nil || len(devs) != 0 || len(errs) != 0 {
		t.Errorf("empty group: %v %v %v", devs, errs, err)
	}

	// A device twice in a group: the second update sees the first's
	// result, a failed one in between (which changed its copy) nothing;
	// an identity change is stored as well as a twin change.
	reason := "maintenance"
	_, errs, err = s.UpdateDevices(ctx, []store.DeviceUpdate{
		{ID: "c", Fn: func(d *store.Device) error { d.Version++; d.Tags["n"] = 1.0; return nil }},
		{ID: "c", Fn: func(d *store.Device) error { d.Tags["n"] = 99.0; d.Status = "disabled"; return errAbort }},
		{ID: "c", Fn: func(d *store.Device) error {
			d.Version++
			d.Tags["n"] = d.Tags["n"].(float64) + 1
			d.Status, d.StatusReason = "disabled", &reason
			return nil
		}},
	})
	if err != nil || errs[0] != nil || errs[1] != errAbort || errs[2] != nil {
		t.Fatalf("UpdateDevices of one device thrice: %v %v", errs, err)
	}
	want = fullDevice("c")
	want.Version += 3
	want.Tags["group"] = "yes"
	want.Tags["n"] = 2.0
	want.Status, want.StatusReason = "disabled", &reason
	mustEqual(t, "c after three updates in a group", get(t, s, "c"), want)
}

func testUpdateDeviceSeesLatest(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, fullDevice("d"))
	steps := []struct {
		name string
		fn   func(*store.Device)
	}{
		{"bump version", func(d *store.Device) { d.Version++ }},
		{"set tag", func(d *store.Device) { d.Tags["step"] = 2.0; d.Version++ }},
		{"nest desired", func(d *store.Device) { d.Desired["obj"] = map[string]any{"a": "b"}; d.Version++ }},
		{"replace reported", func(d *store.Device) { d.Reported = map[string]any{"$version": 10.0} }},
		{"identity", func(d *store.Device) {
			d.Status = hub.StatusEnabled
			d.StatusReason = nil
			d.Authentication.SymmetricKey.PrimaryKey = "bmV3LWtleQ=="
			d.LastActivityTime = at(100)
			d.CloudToDeviceMessageCount++
		}},
		{"delete tag", func(d *store.Device) { delete(d.Tags, "site"); d.Version++ }},
	}
	want := fullDevice("d")
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := s.UpdateDevice(ctx, "d", func(d *store.Device) error {
				mustEqual(t, "device seen by fn", d, want)
				st.fn(d)
				return nil
			})
			if err != nil {
				t.Fatalf("UpdateDevice: %v", err)
			}
			st.fn(want)
			mustEqual(t, "UpdateDevice result", got, want)
			mustEqual(t, "GetDevice after update", get(t, s, "d"), want)
		})
	}
}

func testUpdateDeviceConcurrent(t *testing.T, s store.Store) {
	const n = 50
	create(t, s, minimalDevice("hot"), minimalDevice("cold"))
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := s.UpdateDevice(context.Background(), "hot", func(d *store.Device) error {
				d.Version++
				d.Tags[fmt.Sprintf("g%02d", i)] = float64(i)
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("UpdateDevice: %v", err)
		}
	}
	d := get(t, s, "hot")
	if d.Version != n || len(d.Tags) != n {
		t.Fatalf("after %d concurrent updates: Version = %d, %d tags; updates were lost", n, d.Version, len(d.Tags))
	}
	mustEqual(t, "untouched device", get(t, s, "cold"), &store.Device{
		Device: hub.Device{DeviceID: "cold"}, Tags: map[string]any{}, Desired: map[string]any{}, Reported: map[string]any{},
	})
}

func testDeleteDevice(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, fullDevice("a"), fullDevice("b"), fullDevice("c"))
	if err := s.DeleteDevice(ctx, "b"); err != nil {
		t.Fatalf("DeleteDevice: %v", err)
	}
	if _, err := s.GetDevice(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetDevice after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteDevice(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteDevice: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateDevice(ctx, "b", func(*store.Device) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateDevice after delete: err = %v, want ErrNotFound", err)
	}
	page, err := s.ScanDevices(ctx, "", 10)
	if err != nil {
		t.Fatalf("ScanDevices: %v", err)
	}
	mustEqual(t, "ids after delete", ids(page), []string{"a", "c"})
	// The id is free again, and nothing of the old device comes back.
	create(t, s, minimalDevice("b"))
	if d := get(t, s, "b"); d.Version != 0 || len(d.Tags) != 0 || d.Status != "" {
		t.Fatalf("recreated device kept old state: %+v", d)
	}
}

func ids(ds []*store.Device) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.DeviceID)
	}
	return out
}

// azureIDChars are the characters Azure allows in a device id besides
// ASCII letters and digits.
const azureIDChars = "-.+%_#*?!(),=@$':;"

func testScanDevices(t *testing.T, s store.Store) {
	ctx := context.Background()
	all := []string{"a", "A", "b", "ab", "a0", "aa", "B", "Z", "0", "9", "10", "2", "dev"}
	for _, c := range azureIDChars {
		all = append(all, string(c), "dev"+string(c), string(c)+"x")
	}
	for _, id := range all {
		create(t, s, minimalDevice(id))
	}
	sort.Strings(all) // byte order
	after := func(id string) []string {
		i := sort.SearchStrings(all, id)
		if i < len(all) && all[i] == id {
			i++
		}
		return all[i:]
	}
	upTo := func(s []string, n int) []string { return s[:min(n, len(s))] }
	tests := []struct {
		name    string
		afterID string
		limit   int
		want    []string
	}{
		{"all", "", 1000, all},
		{"first three", "", 3, upTo(all, 3)},
		{"limit one", "", 1, upTo(all, 1)},
		{"after exclusive", "a", 1000, after("a")},
		{"after missing id", "a5", 1000, after("a5")},
		{"after with limit", "dev", 4, upTo(after("dev"), 4)},
		{"after special", "dev%", 1000, after("dev%")},
		{"after last", all[len(all)-1], 10, []string{}},
		{"after everything", "\U0010FFFF", 10, []string{}},
		{"limit exact", all[len(all)-3], 2, all[len(all)-2:]},
		{"limit above rest", all[len(all)-3], 50, all[len(all)-2:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := s.ScanDevices(ctx, tt.afterID, tt.limit)
			if err != nil {
				t.Fatalf("ScanDevices(%q, %d): %v", tt.afterID, tt.limit, err)
			}
			mustEqual(t, fmt.Sprintf("ScanDevices(%q, %d) ids", tt.afterID, tt.limit), ids(page), tt.want)
		})
	}
}

func testScanDevicesPaging(t *testing.T, s store.Store) {
	const n = 1234
	ctx := context.Background()
	want := make([]string, 0, n)
	for i := range n {
		// Mixed widths and cases, so that byte order differs from
		// creation order and from numeric order.
		id := fmt.Sprintf("dev-%d", i*7919%n)
		if i%3 == 0 {
			id = fmt.Sprintf("Dev_%04d", i)
		}
		d := minimalDevice(id)
		d.Version = int64(i)
		create(t, s, d)
		want = append(want, id)
	}
	sort.Strings(want)
	for _, limit := range []int{1, 100, 999, 5000} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			var got []string
			afterID := ""
			for {
				page, err := s.ScanDevices(ctx, afterID, limit)
				if err != nil {
					t.Fatalf("ScanDevices(%q, %d): %v", afterID, limit, err)
				}
				if len(page) > limit {
					t.Fatalf("ScanDevices(%q, %d) returned %d devices", afterID, limit, len(page))
				}
				if len(page) == 0 {
					break
				}
				got = append(got, ids(page)...)
				afterID = page[len(page)-1].DeviceID
				if len(got) > n {
					t.Fatalf("paging returned more than the %d devices stored", n)
				}
			}
			mustEqual(t, "paged ids", got, want)
		})
	}
}

func methodJob(id string) *hub.Job {
	return &hub.Job{
		JobID:                     id,
		QueryCondition:            "tags.site = 'München' AND properties.reported.temp < 0",
		CreatedTime:               atp(10),
		StartTime:                 atp(20),
		EndTime:                   atp(30),
		MaxExecutionTimeInSeconds: 3600,
		Type:                      hub.JobDeviceMethod,
		CloudToDeviceMethod: &hub.MethodRequest{
			MethodName:               "reboot",
			Payload:                  json.RawMessage(`{"delay":5,"why":"upgrade ✓","list":[1,"a",null]}`),
			ResponseTimeoutInSeconds: 30,
			ConnectTimeoutInSeconds:  10,
		},
		Status:        hub.JobFailed,
		FailureReason: "2 devices failed",
		StatusMessage: "done with errors",
		DeviceJobStatistics: &hub.DeviceJobStatistics{
			DeviceCount: 10, FailedCount: 2, SucceededCount: 5, RunningCount: 1, PendingCount: 2,
		},
	}
}

func twinJob(id string) *hub.Job {
	return &hub.Job{
		JobID:          id,
		QueryCondition: "deviceId IN ['a', 'b']",
		CreatedTime:    atp(11),
		StartTime:      atp(11),
		Type:           hub.JobUpdateTwin,
		UpdateTwin: &hub.TwinPatch{
			DeviceID: strp("*"),
			ETag:     "*",
			Tags:     map[string]any{"site": "Berlin", "old": nil, "nested": map[string]any{"a": 1.0}},
			Properties: &hub.Properties{
				Desired: map[string]any{"interval": 60.0, "obj": map[string]any{"x": []any{true, "y"}}},
			},
		},
		Status: hub.JobRunning,
	}
}

func testJobRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	tests := []struct {
		name string
		job  *hub.Job
	}{
		{"method", methodJob("job-method")},
		{"twin", twinJob("job-twin")},
		{"minimal", &hub.Job{JobID: "job-min", CreatedTime: atp(12), Type: hub.JobDeviceMethod, Status: hub.JobQueued}},
		{"scheduled", &hub.Job{JobID: "job-sched", CreatedTime: atp(13), StartTime: atp(86400), Type: hub.JobUpdateTwin, Status: hub.JobScheduled}},
		{"unicode id", &hub.Job{JobID: "arbeit-ü-日本-'\"", CreatedTime: atp(14), Type: hub.JobDeviceMethod}},
		{"started", &hub.Job{JobID: "job-started", CreatedTime: atp(15), Type: hub.JobDeviceMethod, Status: hub.JobRunning, StartedThrough: "dev-ü-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.CreateJob(ctx, tt.job); err != nil {
				t.Fatalf("CreateJob: %v", err)
			}
			got, err := s.GetJob(ctx, tt.job.JobID)
			if err != nil {
				t.Fatalf("GetJob: %v", err)
			}
			mustEqual(t, "GetJob", got, tt.job)
			list, err := s.ListJobs(ctx)
			if err != nil {
				t.Fatalf("ListJobs: %v", err)
			}
			i := slices.IndexFunc(list, func(j *hub.Job) bool { return j.JobID == tt.job.JobID })
			if i < 0 {
				t.Fatalf("ListJobs does not list %q", tt.job.JobID)
			}
			mustEqual(t, "ListJobs entry", list[i], tt.job)
		})
	}
}

func testJobConflictAndPut(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateJob(ctx, methodJob("j")); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	if err := s.CreateJob(ctx, twinJob("j")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateJob of an existing id: err = %v, want ErrConflict", err)
	}
	got, err := s.GetJob(ctx, "j")
	if err != nil {
		t.Fatalf("GetJob: %v", err)
	}
	mustEqual(t, "job after a conflicting create", got, methodJob("j"))

	// PutJob replaces the whole job: fields it leaves out are gone.
	next := methodJob("j")
	next.Status = hub.JobCompleted
	next.FailureReason = ""
	next.EndTime = nil
	next.DeviceJobStatistics = &hub.DeviceJobStatistics{DeviceCount: 10, SucceededCount: 10}
	next.CloudToDeviceMethod = nil
	next.StartedThrough = "dev-07" // kept, though not part of the wire form
	if err := s.PutJob(ctx, next); err != nil {
		t.Fatalf("PutJob: %v", err)
	}
	got, err = s.GetJob(ctx, "j")
	if err != nil {
		t.Fatalf("GetJob: %v", err)
	}
	mustEqual(t, "job after PutJob", got, next)

	next.Status = hub.JobCancelled
	if err := s.PutJob(ctx, next); err != nil {
		t.Fatalf("PutJob: %v", err)
	}
	// Changing the caller's job after PutJob changes nothing stored.
	next.StatusMessage = "changed after put"
	next.DeviceJobStatistics.FailedCount = 99
	got, err = s.GetJob(ctx, "j")
	if err != nil {
		t.Fatalf("GetJob: %v", err)
	}
	if got.Status != hub.JobCancelled || got.StatusMessage != "done with errors" || got.DeviceJobStatistics.FailedCount != 0 {
		t.Fatalf("job after second PutJob: %+v", got)
	}
}

func testListJobs(t *testing.T, s store.Store) {
	ctx := context.Background()
	list, err := s.ListJobs(ctx)
	if err != nil {
		t.Fatalf("ListJobs on an empty store: %v", err)
	}
	if len(list) != 0 {
		t.Fatalf("ListJobs on an empty store returned %d jobs", len(list))
	}
	minus5 := time.FixedZone("-05:00", -5*3600)
	jobs := []struct {
		id      string
		created time.Time
	}{
		{"b-mid", at(100).Time},
		{"a-old", at(-86400).Time},
		{"c-new", at(200).Time},
		// 100 s after c-new, in another zone: newer, though its local
		// clock reading is earlier. Order is by instant.
		{"d-zoned", at(300).In(minus5)},
		{"e-nanos", at(100).Add(100 * time.Nanosecond)},
		// Equal createdTime: ties go by job id, ascending.
		{"tie-2", at(50).Time},
		{"tie-1", at(50).Time},
		{"old-year", time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)},
	}
	for _, j := range jobs {
		if err := s.CreateJob(ctx, &hub.Job{JobID: j.id, CreatedTime: &hub.Time{Time: j.created}, Type: hub.JobDeviceMethod}); err != nil {
			t.Fatalf("CreateJob(%q): %v", j.id, err)
		}
	}
	listIDs := func() []string {
		t.Helper()
		list, err := s.ListJobs(ctx)
		if err != nil {
			t.Fatalf("ListJobs: %v", err)
		}
		out := make([]string, 0, len(list))
		for _, j := range list {
			out = append(out, j.JobID)
		}
		return out
	}
	mustEqual(t, "ListJobs order", listIDs(), []string{"d-zoned", "c-new", "e-nanos", "b-mid", "tie-1", "tie-2", "a-old", "old-year"})

	// The order follows the stored job, also after PutJob changes it.
	if err := s.PutJob(ctx, &hub.Job{JobID: "a-old", CreatedTime: atp(1000), Type: hub.JobDeviceMethod, Status: hub.JobRunning}); err != nil {
		t.Fatalf("PutJob: %v", err)
	}
	mustEqual(t, "ListJobs order after PutJob", listIDs(), []string{"a-old", "d-zoned", "c-new", "e-nanos", "b-mid", "tie-1", "tie-2", "old-year"})
}

func fullDeviceJob(jobID, deviceID string) *hub.DeviceJob {
	return &hub.DeviceJob{
		DeviceID:               deviceID,
		JobID:                  jobID,
		JobType:                hub.JobDeviceMethod,
		Status:                 hub.DeviceJobCompleted,
		StartTimeUtc:           atp(1),
		EndTimeUtc:             atp(2),
		CreatedDateTimeUtc:     atp(0),
		LastUpdatedDateTimeUtc: atp(2),
		Outcome: &hub.DeviceJobOutcome{DeviceMethodResponse: &hub.MethodResponse{
			Status:  200,
			Payload: json.RawMessage(`{"rebooted":true,"in":[1,2.5,"drei"],"msg":"ok ✓"}`),
		}},
	}
}

func scanAll(t *testing.T, s store.Store, jobID string) []*hub.DeviceJob {
	t.Helper()
	djs, err := s.ScanDeviceJobs(context.Background(), jobID, [2]string{}, 1_000_000)
	if err != nil {
		t.Fatalf("ScanDeviceJobs(%q): %v", jobID, err)
	}
	return djs
}

func testDeviceJobRoundTrip(t *testing.T, s store.Store) {
	failed := &hub.DeviceJob{
		DeviceID: "d2", JobID: "j", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobFailed,
		StartTimeUtc: atp(1), EndTimeUtc: atp(31), CreatedDateTimeUtc: atp(0), LastUpdatedDateTimeUtc: atp(31),
		Outcome: &hub.DeviceJobOutcome{DeviceMethodResponse: &hub.MethodResponse{Status: 500, Payload: json.RawMessage(`"boom"`)}},
		Error:   &hub.DeviceJobError{Code: hub.CodeGatewayTimeout, Description: "Timed out waiting for the response from device. «d2»"},
	}
	notOnline := &hub.DeviceJob{
		DeviceID: "d3", JobID: "j", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobFailed,
		CreatedDateTimeUtc: atp(0), LastUpdatedDateTimeUtc: atp(5),
		Error: &hub.DeviceJobError{Code: hub.CodeDeviceNotOnline, Description: "device is not online"},
	}
	pending := &hub.DeviceJob{DeviceID: "d4", JobID: "j", JobType: hub.JobUpdateTwin, Status: hub.DeviceJobPending, CreatedDateTimeUtc: atp(0)}
	want := []*hub.DeviceJob{fullDeviceJob("j", "d1"), failed, notOnline, pending}
	if err := s.PutDeviceJobs(context.Background(), want); err != nil {
		t.Fatalf("PutDeviceJobs: %v", err)
	}
	mustEqual(t, "device jobs", scanAll(t, s, "j"), want)
}

func testPutDeviceJobsUpsert(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := []*hub.DeviceJob{
		{DeviceID: "d1", JobID: "j1", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobPending, CreatedDateTimeUtc: atp(0)},
		{DeviceID: "d2", JobID: "j1", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobPending, CreatedDateTimeUtc: atp(0)},
		{DeviceID: "d1", JobID: "j2", JobType: hub.JobUpdateTwin, Status: hub.DeviceJobPending, CreatedDateTimeUtc: atp(0)},
	}
	if err := s.PutDeviceJobs(ctx, first); err != nil {
		t.Fatalf("PutDeviceJobs: %v", err)
	}
	// The second put replaces d1/j1 whole (its pending fields are not
	// merged in) and adds d3/j1.
	second := []*hub.DeviceJob{
		fullDeviceJob("j1", "d1"),
		{DeviceID: "d3", JobID: "j1", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobRunning, StartTimeUtc: atp(1)},
	}
	if err := s.PutDeviceJobs(ctx, second); err != nil {
		t.Fatalf("PutDeviceJobs: %v", err)
	}
	mustEqual(t, "device jobs after upsert", scanAll(t, s, ""), []*hub.DeviceJob{second[0], first[1], second[1], first[2]})

	// An empty batch is no error and changes nothing.
	if err := s.PutDeviceJobs(ctx, nil); err != nil {
		t.Fatalf("PutDeviceJobs(nil): %v", err)
	}
	// The same key twice in one batch: the later record wins.
	dup := []*hub.DeviceJob{
		{DeviceID: "d9", JobID: "j3", Status: hub.DeviceJobPending},
		{DeviceID: "d9", JobID: "j3", Status: hub.DeviceJobCanceled},
	}
	if err := s.PutDeviceJobs(ctx, dup); err != nil {
		t.Fatalf("PutDeviceJobs with a repeated key: %v", err)
	}
	mustEqual(t, "repeated key", scanAll(t, s, "j3"), dup[1:])

	// Changing records after the put changes nothing stored.
	second[0].Status = hub.DeviceJobFailed
	second[0].Outcome.DeviceMethodResponse.Status = 1
	mustEqual(t, "after changing put records", scanAll(t, s, "j1")[0], fullDeviceJob("j1", "d1"))
}

func testPutDeviceJobsBatch(t *testing.T, s store.Store) {
	const n = 5000
	ctx := context.Background()
	batch := make([]*hub.DeviceJob, 0, n)
	for i := range n {
		batch = append(batch, &hub.DeviceJob{
			DeviceID: fmt.Sprintf("device-%05d", i), JobID: "big", JobType: hub.JobUpdateTwin,
			Status: hub.DeviceJobPending, CreatedDateTimeUtc: atp(0),
		})
	}
	if err := s.PutDeviceJobs(ctx, batch); err != nil {
		t.Fatalf("PutDeviceJobs(%d records): %v", n, err)
	}
	mustEqual(t, "stored batch", scanAll(t, s, "big"), batch)
	for _, dj := range batch {
		dj.Status = hub.DeviceJobCompleted
	}
	if err := s.PutDeviceJobs(ctx, batch); err != nil {
		t.Fatalf("PutDeviceJobs(%d records) again: %v", n, err)
	}
	got := scanAll(t, s, "")
	if len(got) != n {
		t.Fatalf("after re-putting %d records the store holds %d", n, len(got))
	}
	for _, dj := range got {
		if dj.Status != hub.DeviceJobCompleted {
			t.Fatalf("record %s/%s not replaced: %+v", dj.JobID, dj.DeviceID, dj)
		}
	}
}

func testScanDeviceJobs(t *testing.T, s store.Store) {
	ctx := context.Background()
	var all []*hub.DeviceJob
	// Put in an order other than key order.
	for _, j := range []string{"job-b", "job-a", "job-c", "job-a-2"} {
		for _, d := range []string{"d2", "d10", "d1", "D3", "d%", "d'"} {
			all = append(all, &hub.DeviceJob{DeviceID: d, JobID: j, JobType: hub.JobDeviceMethod, Status: hub.DeviceJobPending})
		}
	}
	if err := s.PutDeviceJobs(ctx, all); err != nil {
		t.Fatalf("PutDeviceJobs: %v", err)
	}
	slices.SortFunc(all, func(a, b *hub.DeviceJob) int {
		if a.JobID != b.JobID {
			if a.JobID < b.JobID {
				return -1
			}
			return 1
		}
		switch {
		case a.DeviceID < b.DeviceID:
			return -1
		case a.DeviceID > b.DeviceID:
			return 1
		}
		return 0
	})
	keys := func(djs []*hub.DeviceJob) []string {
		out := make([]string, 0, len(djs))
		for _, dj := range djs {
			out = append(out, dj.JobID+"/"+dj.DeviceID)
		}
		return out
	}
	// want filters all by job and key, in key order.
	want := func(jobID string, after [2]string, limit int) []string {
		var out []*hub.DeviceJob
		for _, dj := range all {
			if jobID != "" && dj.JobID != jobID {
				continue
			}
			if dj.JobID < after[0] || dj.JobID == after[0] && dj.DeviceID <= after[1] {
				continue
			}
			out = append(out, dj)
		}
		return keys(out)[:min(limit, len(out))]
	}
	tests := []struct {
		name  string
		jobID string
		after [2]string
		limit int
	}{
		{"all jobs", "", [2]string{}, 1000},
		{"all jobs limit", "", [2]string{}, 5},
		{"all jobs after key", "", [2]string{"job-a", "d2"}, 1000},
		{"all jobs after key limit", "", [2]string{"job-a", "d2"}, 3},
		{"all jobs after job only", "", [2]string{"job-a-2", ""}, 1000},
		{"all jobs after missing key", "", [2]string{"job-b", "d11"}, 1000},
		{"all jobs after last", "", [2]string{"job-c", "d2"}, 1000},
		{"one job", "job-a", [2]string{}, 1000},
		{"one job limit", "job-b", [2]string{}, 2},
		{"one job after", "job-b", [2]string{"job-b", "d1"}, 1000},
		{"one job after limit", "job-b", [2]string{"job-b", "d1"}, 2},
		{"one job after its last", "job-b", [2]string{"job-b", "d2"}, 1000},
		{"one job prefix of another", "job-a", [2]string{"job-a", "d10"}, 1000},
		{"missing job", "job-x", [2]string{}, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ScanDeviceJobs(ctx, tt.jobID, tt.after, tt.limit)
			if err != nil {
				t.Fatalf("ScanDeviceJobs: %v", err)
			}
			mustEqual(t, fmt.Sprintf("ScanDeviceJobs(%q, %q, %d)", tt.jobID, tt.after, tt.limit), keys(got), want(tt.jobID, tt.after, tt.limit))
		})
	}
	t.Run("paging", func(t *testing.T) {
		var got []string
		var after [2]string
		for range len(all) + 1 {
			page, err := s.ScanDeviceJobs(ctx, "", after, 4)
			if err != nil {
				t.Fatalf("ScanDeviceJobs: %v", err)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, keys(page)...)
			last := page[len(page)-1]
			after = [2]string{last.JobID, last.DeviceID}
		}
		mustEqual(t, "paged keys", got, keys(all))
	})
}

// testCancelledContext pins that a call with a cancelled context fails
// with the context's error and writes nothing.
func testCancelledContext(t *testing.T, s store.Store) {
	create(t, s, fullDevice("d"))
	if err := s.CreateJob(context.Background(), methodJob("j")); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	if err := s.PutDeviceJobs(context.Background(), []*hub.DeviceJob{fullDeviceJob("j", "d")}); err != nil {
		t.Fatalf("PutDeviceJobs: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		call func() error
	}{
		{"CreateDevice", func() error { return s.CreateDevice(ctx, fullDevice("new")) }},
		{"GetDevice", func() error { _, err := s.GetDevice(ctx, "d"); return err }},
		{"UpdateDevice", func() error {
			_, err := s.UpdateDevice(ctx, "d", func(d *store.Device) error { d.Version = -1; return nil })
			return err
		}},
		{"DeleteDevice", func() error { return s.DeleteDevice(ctx, "d") }},
		{"ScanDevices", func() error { _, err := s.ScanDevices(ctx, "", 10); return err }},
		{"CreateJob", func() error { return s.CreateJob(ctx, methodJob("new")) }},
		{"GetJob", func() error { _, err := s.GetJob(ctx, "j"); return err }},
		{"PutJob", func() error { return s.PutJob(ctx, twinJob("j")) }},
		{"ListJobs", func() error { _, err := s.ListJobs(ctx); return err }},
		{"PutDeviceJobs", func() error {
			return s.PutDeviceJobs(ctx, []*hub.DeviceJob{{JobID: "j", DeviceID: "d"}, {JobID: "j", DeviceID: "new"}})
		}},
		{"ScanDeviceJobs", func() error { _, err := s.ScanDeviceJobs(ctx, "", [2]string{}, 10); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- tt.call() }()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("call with a cancelled context still running after 10s")
			}
		})
	}
	mustEqual(t, "device", get(t, s, "d"), fullDevice("d"))
	if _, err := s.GetDevice(context.Background(), "new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDevice(new): err = %v, want ErrNotFound", err)
	}
	j, err := s.GetJob(context.Background(), "j")
	if err != nil {
		t.Fatalf("GetJob: %v", err)
	}
	mustEqual(t, "job", j, methodJob("j"))
	if _, err := s.GetJob(context.Background(), "new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetJob(new): err = %v, want ErrNotFound", err)
	}
	mustEqual(t, "device jobs", scanAll(t, s, ""), []*hub.DeviceJob{fullDeviceJob("j", "d")})
}

// testCancelWhileWaiting pins that an UpdateDevice waiting for another
// one on the same device gives up when its context ends, instead of
// waiting for the other to finish.
func testCancelWhileWaiting(t *testing.T, s store.Store) {
	create(t, s, minimalDevice("d"))
	entered := make(chan struct{})
	release := make(chan struct{})
	var enterOnce, releaseOnce sync.Once
	firstDone := make(chan struct{})
	var firstErr error
	go func() {
		defer close(firstDone)
		_, firstErr = s.UpdateDevice(context.Background(), "d", func(d *store.Device) error {
			enterOnce.Do(func() { close(entered) })
			<-release
			d.Tags["first"] = true
			return nil
		})
	}()
	// Whatever happens, let the first update finish before the store is
	// closed.
	defer func() {
		releaseOnce.Do(func() { close(release) })
		<-firstDone
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("first UpdateDevice did not call fn within 10s")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() {
		_, err := s.UpdateDevice(ctx, "d", func(d *store.Device) error {
			d.Tags["second"] = true
			return nil
		})
		second <- err
	}()
	select {
	case err := <-second:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second UpdateDevice: err = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("UpdateDevice whose context ended still waiting after 10s")
	}

	releaseOnce.Do(func() { close(release) })
	<-firstDone
	if firstErr != nil {
		t.Fatalf("first UpdateDevice: %v", firstErr)
	}
	mustEqual(t, "tags", get(t, s, "d").Tags, map[string]any{"first": true})
}

// testUpdateDeviceWithRecords: the records passed to UpdateDevice are
// stored with the device change, and not at all when fn aborts it.
func testUpdateDeviceWithRecords(t *testing.T, s store.Store) {
	ctx := context.Background()
	create(t, s, fullDevice("d1"))
	rec := &hub.DeviceJob{DeviceID: "d1", JobID: "j", JobType: hub.JobUpdateTwin, Status: hub.DeviceJobCompleted,
		CreatedDateTimeUtc: atp(0), StartTimeUtc: atp(1), EndTimeUtc: atp(2), LastUpdatedDateTimeUtc: atp(2), Outcome: &hub.DeviceJobOutcome{}}
	if _, err := s.UpdateDevice(ctx, "d1", func(d *store.Device) error {
		d.Tags["site"] = "aborted"
		return errAbort
	}, rec); !errors.Is(err, errAbort) {
		t.Fatalf("aborted UpdateDevice: err = %v, want fn's error", err)
	}
	if got := scanAll(t, s, "j"); len(got) != 0 {
		t.Fatalf("an aborted UpdateDevice stored its records: %+v", got)
	}
	if _, err := s.UpdateDevice(ctx, "d1", func(d *store.Device) error {
		d.Tags["site"] = "written"
		d.Version++
		return nil
	}, rec); err != nil {
		t.Fatalf("UpdateDevice with a record: %v", err)
	}
	mustEqual(t, "records stored with the device", scanAll(t, s, "j"), []*hub.DeviceJob{rec})
	if d := get(t, s, "d1"); d.Tags["site"] != "written" {
		t.Errorf("device not updated: tags %v", d.Tags)
	}
	// Unknown devices store nothing either.
	other := *rec
	other.DeviceID = "missing"
	if _, err := s.UpdateDevice(ctx, "missing", func(*store.Device) error { return nil }, &other); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateDevice of a missing device: err = %v, want ErrNotFound", err)
	}
	mustEqual(t, "records after a missing device", scanAll(t, s, "j"), []*hub.DeviceJob{rec})
}

// testPutDeviceJobsWithJob: records and job snapshots are one write; a
// job that is not stored fails the whole of it.
func testPutDeviceJobsWithJob(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateJob(ctx, methodJob("j")); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	recs := []*hub.DeviceJob{
		{DeviceID: "d1", JobID: "j", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobPending, CreatedDateTimeUtc: atp(0)},
		{DeviceID: "d2", JobID: "j", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobPending, CreatedDateTimeUtc: atp(0)},
	}
	next := methodJob("j")
	next.Status = hub.JobRunning
	next.DeviceJobStatistics = &hub.DeviceJobStatistics{DeviceCount: 2, PendingCount: 2}
	if err := s.PutDeviceJobs(ctx, recs, next); err != nil {
		t.Fatalf("PutDeviceJobs with a job: %v", err)
	}
	mustEqual(t, "records", scanAll(t, s, "j"), recs)
	got, err := s.GetJob(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "job stored with its records", got, next)

	ghost := methodJob("ghost")
	late := &hub.DeviceJob{DeviceID: "d3", JobID: "j", JobType: hub.JobDeviceMethod, Status: hub.DeviceJobPending, CreatedDateTimeUtc: atp(0)}
	if err := s.PutDeviceJobs(ctx, []*hub.DeviceJob{late}, ghost); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("PutDeviceJobs with a job never created: err = %v, want ErrNotFound", err)
	}
	mustEqual(t, "records after a failed write", scanAll(t, s, "j"), recs)
}
