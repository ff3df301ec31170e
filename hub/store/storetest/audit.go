package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/store"
)

// Tamper runs SQL statements on a store's database behind its back, as
// someone with write access to the database could.
type Tamper func(t *testing.T, stmts ...string)

// RunAudit runs the conformance suite of store.Auditor: entries go with
// their writes (and not without them), the chain links, filters and
// paging work, and rows edited, removed or reordered in the database are
// found by hub.VerifyAudit, named by their seq. open returns a fresh
// store and a Tamper on its database.
func RunAudit(t *testing.T, open func(t *testing.T) (store.Store, Tamper)) {
	t.Run("WithWrites", func(t *testing.T) {
		s, _ := open(t)
		testAuditWithWrites(t, s)
	})
	// The log of every tamper case: entries 1..6.
	cases := []struct {
		name  string
		stmts []string
		want  hub.AuditBreak
	}{
		{"FieldChanged", []string{`UPDATE audit SET result = '200' WHERE seq = 3`}, hub.AuditBreak{Seq: 3, How: "changed"}},
		{"TimeChanged", []string{`UPDATE audit SET time = '2020-01-01T00:00:00.000000Z' WHERE seq = 4`}, hub.AuditBreak{Seq: 4, How: "changed"}},
		{"Deleted", []string{`DELETE FROM audit WHERE seq = 3`}, hub.AuditBreak{Seq: 3, How: "removed"}},
		{"FirstDeleted", []string{`DELETE FROM audit WHERE seq = 1`}, hub.AuditBreak{Seq: 1, How: "removed"}},
		{"DeletedAndRenumbered", []string{`DELETE FROM audit WHERE seq = 3`,
			`UPDATE audit SET seq = 3 WHERE seq = 4`, `UPDATE audit SET seq = 4 WHERE seq = 5`, `UPDATE audit SET seq = 5 WHERE seq = 6`},
			hub.AuditBreak{Seq: 3, How: "removed"}},
		{"Swapped", []string{`UPDATE audit SET seq = -1 WHERE seq = 3`, `UPDATE audit SET seq = 3 WHERE seq = 4`, `UPDATE audit SET seq = 4 WHERE seq = -1`},
			hub.AuditBreak{Seq: 3, How: "out of order"}},
	}
	for _, tc := range cases {
		t.Run("Tamper"+tc.name, func(t *testing.T) {
			s, tamper := open(t)
			a := s.(store.Auditor)
			ctx := context.Background()
			for i := range 6 {
				e := &hub.AuditEntry{Time: at(i).Time, Actor: "iothubowner", Operation: hub.AuditMethodInvoke,
					Target: fmt.Sprintf("d%d", i), Result: "404"}
				if err := a.AppendAudit(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			if b := hub.VerifyAudit(readAudit(t, a)); b != nil {
				t.Fatalf("before tampering: %v", b)
			}
			tamper(t, tc.stmts...)
			b := hub.VerifyAudit(readAudit(t, a))
			if b == nil || *b != tc.want {
				t.Fatalf("after %q: %v, want %v", tc.stmts, b, &tc.want)
			}
		})
	}
}

// readAudit reads the whole log, a page of 2 at a time.
func readAudit(t *testing.T, a store.Auditor) []*hub.AuditEntry {
	t.Helper()
	var all []*hub.AuditEntry
	var after int64
	for {
		page, err := a.AuditLog(context.Background(), hub.AuditFilter{}, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 2 {
			return all
		}
		after = page[len(page)-1].Seq
	}
}

func testAuditWithWrites(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := s.(store.Auditor)
	entry := func(op, target string) *hub.AuditEntry {
		return &hub.AuditEntry{Time: at(0).Time, Actor: "iothubowner", Operation: op, Target: target, Result: "200"}
	}
	d := &store.Device{Device: hub.Device{DeviceID: "d1"}, Version: 1}
	if err := s.CreateDevice(store.WithAudit(ctx, entry(hub.AuditDeviceCreate, "d1")), d); err != nil {
		t.Fatal(err)
	}
	// A write that fails stores its entries neither.
	if err := s.CreateDevice(store.WithAudit(ctx, entry(hub.AuditDeviceCreate, "d1")), d); err == nil {
		t.Fatal("second CreateDevice of d1 succeeded")
	}
	// An update whose function fails stores its entries neither.
	refused := errors.New("refused")
	if _, err := s.UpdateDevice(store.WithAudit(ctx, entry(hub.AuditTwinPatch, "d1")), "d1", func(*store.Device) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("UpdateDevice with a failing fn: %v", err)
	}
	// An update function fills in its entry; an entry left without an
	// operation is not stored.
	filled, empty := &hub.AuditEntry{Time: at(1).Time, Actor: hub.ActorEngine, Job: "j1", Target: "j1"}, &hub.AuditEntry{}
	ups := []store.DeviceUpdate{{ID: "d1", Fn: func(d *store.Device) error {
		filled.Operation, filled.Devices, filled.Result = hub.AuditTwinPatch, []string{"d1"}, "1 applied"
		d.Tags = map[string]any{"a": 1.0}
		return nil
	}}}
	if _, _, err := s.UpdateDevices(store.WithAudit(ctx, filled, empty), ups); err != nil {
		t.Fatal(err)
	}
	j := &hub.Job{JobID: "j1", Type: hub.JobUpdateTwin, Status: hub.JobQueued, CreatedTime: &hub.Time{Time: at(2).Time}}
	if err := s.CreateJob(store.WithAudit(ctx, entry(hub.AuditJobCreate, "j1")), j); err != nil {
		t.Fatal(err)
	}
	j.Status = hub.JobCompleted
	if err := s.PutDeviceJobs(store.WithAudit(ctx, entry(hub.AuditJobEnd, "j1")), nil, j); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDevice(store.WithAudit(ctx, entry(hub.AuditDeviceDelete, "d1")), "d1"); err != nil {
		t.Fatal(err)
	}
	if err := a.AppendAudit(ctx, &hub.AuditEntry{Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Actor: "iothubowner",
		Operation: hub.AuditMethodInvoke, Target: "d2", Result: "404"}); err != nil {
		t.Fatal(err)
	}
	all := readAudit(t, a)
	var got []string
	for _, e := range all {
		got = append(got, fmt.Sprintf("%d %s %s", e.Seq, e.Operation, e.Target))
	}
	want := []string{"1 device.create d1", "2 twin.patch j1", "3 job.create j1", "4 job.end j1", "5 device.delete d1", "6 method.invoke d2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("log:\n%q\nwant\n%q", got, want)
	}
	if all[1].Devices[0] != "d1" || all[1].Job != "j1" {
		t.Errorf("the group commit's entry: %+v", all[1])
	}
	if b := hub.VerifyAudit(all); b != nil {
		t.Errorf("verify: %v", b)
	}
	for name, tc := range map[string]struct {
		f    hub.AuditFilter
		want []int64
	}{
		"device": {hub.AuditFilter{Device: "d1"}, []int64{1, 2, 5}},
		"job":    {hub.AuditFilter{Job: "j1"}, []int64{2, 3, 4}},
		"since":  {hub.AuditFilter{Since: time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)}, []int64{6}},
	} {
		page, err := a.AuditLog(ctx, tc.f, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, e := range page {
			seqs = append(seqs, e.Seq)
		}
		if fmt.Sprint(seqs) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v, want %v", name, seqs, tc.want)
		}
	}
}
