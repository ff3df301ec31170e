package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/storetest"
)

// TestCorpusCompiles compiles every corpus query: none may fall back to
// the reference evaluator, and the SQL must not depend on the query's
// constants (they are all bound parameters): rewriting every constant to
// another value of its type gives the same SQL text.
func TestCorpusCompiles(t *testing.T) {
	for _, src := range storetest.ReadCorpus(t) {
		q, err := query.Parse(src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		if q.From == query.DevicesModules {
			continue
		}
		tgt, after := devicesTarget, []string{"a"}
		if q.From == query.DevicesJobs {
			tgt, after = deviceJobsTarget, []string{"a", "b"}
		}
		p, err := compileQuery(tgt, q, after, 10)
		if err != nil {
			t.Errorf("%s: not compiled: %v", src, err)
			continue
		}
		q2 := *q
		q2.Where = rewriteConsts(q.Where)
		p2, err := compileQuery(tgt, &q2, []string{"zz", "yy"}, 99)
		if err != nil {
			t.Errorf("%s with other constants: %v", src, err)
			continue
		}
		if p.sql != p2.sql {
			t.Errorf("%s: the SQL depends on the constants:\n%s\n%s", src, p.sql, p2.sql)
		}
	}
}

// rewriteConsts replaces every constant of e by another of the same type.
func rewriteConsts(e query.Expr) query.Expr {
	switch e := e.(type) {
	case query.Const:
		switch v := e.Value.(type) {
		case string:
			e.Value = v + "'; DROP TABLE devices; --"
		case float64:
			e.Value = v*3 + 1
		case bool:
			e.Value = !v
		}
		return e
	case query.Binary:
		e.L, e.R = rewriteConsts(e.L), rewriteConsts(e.R)
		return e
	case query.Not:
		e.X = rewriteConsts(e.X)
		return e
	case query.Neg:
		e.X = rewriteConsts(e.X)
		return e
	case query.In:
		e.X = rewriteConsts(e.X)
		list := make([]query.Const, len(e.List))
		for i, c := range e.List {
			list[i] = rewriteConsts(c).(query.Const)
		}
		e.List = list
		return e
	case query.Call:
		args := make([]query.Expr, len(e.Args))
		for i, a := range e.Args {
			args[i] = rewriteConsts(a)
		}
		e.Args = args
		return e
	}
	return e
}

// TestNoQueryTextInSQL checks that neither constants nor property names
// of a query reach the SQL text.
func TestNoQueryTextInSQL(t *testing.T) {
	for _, src := range []string{
		`SELECT tags.[[evil") OR 1=1 --]] AS x FROM devices WHERE tags.[[drop table]] = 'x'' OR ''1''=''1' AND STARTSWITH(tags.name, 'sneaky') GROUP BY tags.[[evil") OR 1=1 --]]`,
		`SELECT * FROM devices WHERE tags.marker IN ['needle1', 1234567, true] AND LOWER(tags.marker2) = 'needle2'`,
		`SELECT * FROM devices.jobs WHERE devices.jobs.outcome.needle3 = 'needle4'`,
	} {
		q, err := query.Parse(strings.ReplaceAll(src, "'x'' OR ''1''=''1'", `'x\' OR \'1\'=\'1'`))
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		tgt, after := devicesTarget, []string{""}
		if q.From == query.DevicesJobs {
			tgt, after = deviceJobsTarget, []string{"", ""}
		}
		p, err := compileQuery(tgt, q, after, 10)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for _, bad := range []string{"evil", "1=1", "drop", "sneaky", "needle", "1234567", "marker", "outcome", "name"} {
			if strings.Contains(strings.ToLower(p.sql), bad) {
				t.Errorf("SQL of %s contains %q:\n%s", src, bad, p.sql)
			}
		}
	}
}

// TestFallbacks lists what the compiler leaves to the reference evaluator
// and checks that the store still answers those queries.
func TestFallbacks(t *testing.T) {
	deep := "SELECT * FROM devices WHERE tags.x" + strings.Repeat(" + 1", 300) + " > 0"
	long := "SELECT * FROM devices WHERE " + strings.Repeat("t = 1 OR ", 850) + "tags.x = 2"
	tests := []struct {
		name     string
		q        *query.Query
		compiled bool
	}{
		{"NaN constant", &query.Query{Top: -1, From: query.Devices, Where: query.Binary{Op: "=", L: query.Path{Segments: []string{"tags", "x"}}, R: query.Const{Value: nan()}}}, false},
		{"int constant", &query.Query{Top: -1, From: query.Devices, Where: query.Binary{Op: "=", L: query.Path{Segments: []string{"tags", "x"}}, R: query.Const{Value: 1}}}, false},
		{"deep arithmetic", mustParse(t, deep), false},
		{"long OR chain is balanced", mustParse(t, long), true},
		{"non-canonical system field", &query.Query{Top: -1, From: query.Devices, Where: query.Binary{Op: "=", L: query.Path{Segments: []string{"TAGS", "x"}}, R: query.Const{Value: 1.0}}}, true},
	}
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "hub.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i, tags := range []map[string]any{{"x": 1.0}, {"x": 2.0}, {"x": "1"}} {
		d := &store.Device{Device: hub.Device{DeviceID: string(rune('a' + i))}, Tags: tags}
		if err := s.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, ok := s.ExplainQuery(tt.q)
			if ok != tt.compiled {
				t.Errorf("compiled = %v, want %v (%.200s)", ok, tt.compiled, plan)
			}
			got, err := s.QueryDevices(ctx, tt.q, "", 10)
			if err != nil {
				t.Fatalf("QueryDevices: %v", err)
			}
			want, err := store.EvalDevices(ctx, s, tt.q, "", 10)
			if err != nil {
				t.Fatalf("EvalDevices: %v", err)
			}
			if len(got.Items) != len(want.Items) {
				t.Fatalf("%d rows, want %d", len(got.Items), len(want.Items))
			}
			for i := range got.Items {
				if string(got.Items[i]) != string(want.Items[i]) {
					t.Errorf("row %d = %s, want %s", i, got.Items[i], want.Items[i])
				}
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }

func mustParse(t *testing.T, src string) *query.Query {
	t.Helper()
	q, err := query.Parse(src)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return q
}

// TestDocumentKeysCanonical pins the assumption jsonPath makes: every
// top-level key of a query document that is a system field is spelled
// canonically, so a case-insensitive first segment always means the
// canonical key.
func TestDocumentKeysCanonical(t *testing.T) {
	now := hub.Time{Time: time.Now()}
	docs := []any{
		(&store.Device{Device: hub.Device{DeviceID: "d", StatusReason: new(string), LastActivityTime: now}, Tags: map[string]any{"a": 1}, Desired: map[string]any{"b": 1}, Reported: map[string]any{"c": 1}}).Twin(),
		&hub.DeviceJob{DeviceID: "d", JobID: "j", StartTimeUtc: &now, EndTimeUtc: &now, CreatedDateTimeUtc: &now, LastUpdatedDateTimeUtc: &now,
			Outcome: &hub.DeviceJobOutcome{}, Error: &hub.DeviceJobError{}},
	}
	for _, v := range docs {
		doc, err := store.Doc(v)
		if err != nil {
			t.Fatal(err)
		}
		for k := range doc {
			if c, ok := query.SystemField(k); ok && c != k {
				t.Errorf("%T key %q is spelled %q as a system field", v, k, c)
			}
		}
	}
}

// TestMigrate opens a database in the schema before the query document
// columns, with rows, and checks that Open moves them into the documents.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	old := `
CREATE TABLE devices (id TEXT PRIMARY KEY, identity TEXT NOT NULL, tags TEXT NOT NULL, desired TEXT NOT NULL, reported TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE jobs (id TEXT PRIMARY KEY, created TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE device_jobs (job_id TEXT NOT NULL, device_id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (job_id, device_id));
INSERT INTO devices VALUES ('d1', '{"deviceId":"d1","status":"enabled"}', '{"floor":3}', '{"$version":1}', '{"$version":2,"t":21.5}', 4);
INSERT INTO devices VALUES ('d2', '{"deviceId":"d2","status":"disabled"}', '{"floor":"3"}', '{}', '{}', 1);
INSERT INTO device_jobs VALUES ('j1', 'd1', '{"deviceId":"d1","jobId":"j1","jobType":"scheduleDeviceMethod","status":"completed","outcome":{"deviceMethodResponse":{"status":200,"payload":{"n":1}}}}');
`
	if _, err := db.ExecContext(ctx, old); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	for _, tc := range []struct{ src, want string }{
		{"SELECT deviceId FROM devices WHERE tags.floor = 3 AND properties.reported.t > 20", `{"deviceId":"d1"}`},
		{"SELECT deviceId FROM devices WHERE status = 'disabled'", `{"deviceId":"d2"}`},
		{"SELECT deviceId FROM devices.jobs WHERE devices.jobs.outcome.deviceMethodResponse.payload.n = 1", `{"deviceId":"d1"}`},
	} {
		q := mustParse(t, tc.src)
		if _, ok := s.ExplainQuery(q); !ok {
			t.Fatalf("%s does not compile", tc.src)
		}
		var page *store.Page
		if q.From == query.DevicesJobs {
			page, err = s.QueryDeviceJobs(ctx, q, "", 10)
		} else {
			page, err = s.QueryDevices(ctx, q, "", 10)
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		if len(page.Items) != 1 || string(page.Items[0]) != tc.want {
			t.Errorf("%s = %s, want [%s]", tc.src, page.Items, tc.want)
		}
	}
	var missing int
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM devices WHERE twin IS NULL) + (SELECT count(*) FROM device_jobs WHERE qdoc IS NULL)`).Scan(&missing); err != nil {
		t.Fatal(err)
	}
	if missing != 0 {
		t.Errorf("%d rows without a query document after Open", missing)
	}
	// The sections moved into the document intact; their columns are gone.
	d, err := s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Tags["floor"] != 3.0 || d.Reported["t"] != 21.5 || d.Reported["$version"] != 2.0 || d.Desired["$version"] != 1.0 || d.Version != 4 {
		t.Errorf("d1 after migration: tags %v desired %v reported %v version %d", d.Tags, d.Desired, d.Reported, d.Version)
	}
	for _, c := range []string{"tags", "desired", "reported"} {
		if has, err := s.hasColumn(ctx, "devices", c); err != nil || has {
			t.Errorf("devices.%s still there after migration (%v)", c, err)
		}
	}
	// A second Open finds nothing to migrate.
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s2.Close()
}
