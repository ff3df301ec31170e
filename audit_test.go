package main

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
	_ "modernc.org/sqlite"
)

// TestAuditTutorial: the tutorial run's operations are in the embedded
// hub's audit log (the fleet's registrations, both jobs with their plan,
// the method call and twin patch on myDeviceId, the jobs' ends), verify
// passes and prints the head, and a row edited, removed or moved in the
// SQLite file makes verify exit 1 naming it.
func TestAuditTutorial(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := runCLI(t, t.Context(), "apply", "--yes", "--data", data, "--fleet", "examples/fleet.yaml", "examples/lock-door.yaml")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, t.Context(), "audit", "list", "--data", data, "-o", "json")
	var entries []*hub.AuditEntry
	if code != 0 || json.Unmarshal([]byte(stdout), &entries) != nil {
		t.Fatalf("audit list: exit %d\n%s\n%s", code, stdout, stderr)
	}
	has := func(pred func(e *hub.AuditEntry) bool) *hub.AuditEntry {
		for _, e := range entries {
			if pred(e) {
				return e
			}
		}
		return nil
	}
	var created, jobs, ends int
	for _, e := range entries {
		switch e.Operation {
		case hub.AuditDeviceCreate:
			created++
		case hub.AuditJobCreate:
			jobs++
			if e.Plan != "lock-doors" || len(e.PlanSHA256) != 64 {
				t.Errorf("job.create without the plan: %+v", e)
			}
		case hub.AuditJobEnd:
			ends++
			if !strings.HasPrefix(e.Result, "completed") {
				t.Errorf("job end: %+v", e)
			}
		}
	}
	if created < 2 || jobs != 2 || ends != 2 {
		t.Errorf("%d device.create, %d job.create, %d job.end entries; want the fleet's, 2 and 2", created, jobs, ends)
	}
	if has(func(e *hub.AuditEntry) bool {
		return e.Operation == hub.AuditMethodInvoke && e.Actor == hub.ActorEngine && len(e.Devices) == 1 && e.Devices[0] == "myDeviceId"
	}) == nil {
		t.Error("no method.invoke entry for myDeviceId")
	}
	if has(func(e *hub.AuditEntry) bool {
		return e.Operation == hub.AuditTwinPatch && e.Actor == hub.ActorEngine && len(e.Devices) == 1 && e.Devices[0] == "myDeviceId"
	}) == nil {
		t.Error("no twin.patch entry for myDeviceId")
	}
	if t.Failed() {
		t.Logf("audit list:\n%s", stdout)
	}

	code, stdout, stderr = runCLI(t, t.Context(), "audit", "verify", "--data", data)
	if code != 0 || !strings.Contains(stdout, "chain intact") || !strings.Contains(stdout, entries[len(entries)-1].Hash) {
		t.Fatalf("audit verify: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// Tampering, each case on its own copy of the log: the file's audit
	// table is saved and restored around each.
	db, err := sql.Open("sqlite", filepath.Join(data, "hub.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(stmts ...string) {
		t.Helper()
		for _, s := range stmts {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	exec(`CREATE TABLE audit_saved AS SELECT * FROM audit`)
	for _, tc := range []struct {
		name  string
		stmts []string
		want  string
	}{
		{"changed", []string{`UPDATE audit SET actor = 'someone' WHERE seq = 2`}, "entry #2 was changed"},
		{"removed", []string{`DELETE FROM audit WHERE seq = 3`}, "entry #3 was removed"},
		{"reordered", []string{`UPDATE audit SET seq = -1 WHERE seq = 2`, `UPDATE audit SET seq = 2 WHERE seq = 3`, `UPDATE audit SET seq = 3 WHERE seq = -1`}, "entry #2 was out of order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exec(tc.stmts...)
			defer exec(`DELETE FROM audit`, `INSERT INTO audit SELECT * FROM audit_saved`)
			code, stdout, stderr := runCLI(t, t.Context(), "audit", "verify", "--data", data)
			if code != exitFailed || !strings.Contains(stderr, tc.want) {
				t.Errorf("audit verify: exit %d, stdout %q, stderr %q; want exit 1 saying %q", code, stdout, stderr, tc.want)
			}
		})
	}
}
