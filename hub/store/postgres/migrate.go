package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migration is one step of the schema. Steps are applied in version
// order, each once, and never changed once released: a new layout is a
// new step.
type migration struct {
	version int
	what    string
	sql     string
}

var migrations = []migration{
	{1, "devices, jobs and device-job records; their indexes; query helpers", schemaV1},
	{2, "the query language's remainder as Go's math.Mod", schemaV2},
	{3, "job leases and replicas, for hubs that share the database", schemaV3},
	{4, "the audit log and its chain's head", schemaV4},
	{5, "the CA certificates devices may chain to", schemaV5},
}

// versionTable records the applied migrations, one row each.
const versionTable = "iotjobs_schema"

// latest is the schema version this code writes.
func latest() int { return migrations[len(migrations)-1].version }

// testHooks, set by tests, run when Open has found the schema out of date
// and is about to take the migration lock, and when it holds the lock and
// has read the version it finds there.
var testHooks struct {
	beforeLock func()
	locked     func(version int)
}

// migrate brings the schema in the first schema of the search path up to
// date. A database at the latest version is only read; otherwise the
// pending migrations run in one transaction under an advisory lock, so
// that hubs starting together against one database migrate it once (the
// others wait, then find nothing to do). A database written by a newer
// version is refused: this code would misread it.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	// First without the lock or any DDL, so that a hub running as a role
	// that may not create tables opens a database migrated for it.
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, versionTable).Scan(&exists); err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	if exists {
		v, err := schemaVersion(ctx, pool)
		if err != nil {
			return err
		}
		if err := checkNewer(v); err != nil || v == latest() {
			return err
		}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate the schema: %w", err)
	}
	defer rollback(ctx, tx)
	var schema *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("migrate the schema: %w", err)
	}
	if schema == nil {
		return errors.New("no schema to create the tables in: the search_path names no existing schema (create it, or set search_path in the URL, e.g. ?search_path=iotjobs)")
	}
	if testHooks.beforeLock != nil {
		testHooks.beforeLock()
	}
	// The lock is the schema's: hubs on other schemas of the database
	// need not wait.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('iotjobs schema ' || $1::text, 0))`, *schema); err != nil {
		return fmt.Errorf("migrate schema %q: wait for the migration lock: %w", *schema, err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+versionTable+` (
		version    integer PRIMARY KEY,
		what       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("migrate schema %q: create %s: %w (may this user create tables in it?)", *schema, versionTable, err)
	}
	v, err := schemaVersion(ctx, tx)
	if err != nil {
		return err
	}
	if testHooks.locked != nil {
		testHooks.locked(v)
	}
	if err := checkNewer(v); err != nil {
		return err
	}
	for _, m := range migrations {
		if m.version <= v {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("migrate schema %q to version %d (%s): %w", *schema, m.version, m.what, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+versionTable+` (version, what) VALUES ($1, $2)`, m.version, m.what); err != nil {
			return fmt.Errorf("migrate schema %q to version %d: record it: %w", *schema, m.version, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate schema %q: commit: %w", *schema, err)
	}
	return nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+versionTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the schema version: %w", err)
	}
	return v, nil
}

func checkNewer(v int) error {
	if v > latest() {
		return fmt.Errorf("this database was written by a newer iotjobs (schema %d; this one knows %d): upgrade iotjobs", v, latest())
	}
	return nil
}

// schemaV1 is the first layout. Key columns are COLLATE "C": ids sort in
// byte order, as Go compares them. See doc.go for the documents.
//
// devices_twin serves equality and IN on any path (queries compile them to
// jsonb containment, @>); devices_raw finds the few devices whose
// documents jsonb could not hold, which every query reads, so that the
// planner can combine the two. device_jobs_pkey serves queries of one job.
// A record is written two or three times as its device goes through a
// job, and it changes no indexed column: room on its page (fillfactor) lets
// PostgreSQL update it in place, without new index entries (a HOT update;
// an index that mentioned qdoc, even in its predicate, would prevent it).
//
// The functions are arithmetic with Go's float64 results where
// PostgreSQL's float8 operators raise an error instead (overflow,
// underflow to zero, see compile.go); the common case, operands far from
// both, never enters the PL/pgSQL (whose exception block costs a
// subtransaction). And the case mapping and suffix test of the query
// language.
const schemaV1 = `
CREATE TABLE devices (
	id       text COLLATE "C" PRIMARY KEY,
	identity text NOT NULL,
	version  bigint NOT NULL,
	twin     jsonb,
	raw      text,
	CHECK ((twin IS NULL) <> (raw IS NULL))
);
CREATE INDEX devices_twin ON devices USING gin (twin jsonb_path_ops);
CREATE INDEX devices_raw ON devices (id) WHERE twin IS NULL;

CREATE TABLE jobs (
	id      text COLLATE "C" PRIMARY KEY,
	created text COLLATE "C" NOT NULL,
	doc     text NOT NULL,
	started text NOT NULL
);

CREATE TABLE device_jobs (
	job_id    text COLLATE "C" NOT NULL,
	device_id text COLLATE "C" NOT NULL,
	doc       text NOT NULL,
	qdoc      jsonb,
	PRIMARY KEY (job_id, device_id)
) WITH (fillfactor = 80);

CREATE FUNCTION iotjobs_add_checked(a float8, b float8) RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
	RETURN a + b;
EXCEPTION WHEN numeric_value_out_of_range THEN
	RETURN NULL; -- overflow: Go's infinity, undefined in queries
END $$;

CREATE FUNCTION iotjobs_sub_checked(a float8, b float8) RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
	RETURN a - b;
EXCEPTION WHEN numeric_value_out_of_range THEN
	RETURN NULL;
END $$;

-- Overflow gives NULL; underflow (PostgreSQL raises it only for a zero
-- product of non-zero operands) gives Go's zero. The sign of the exact
-- result's logarithm tells them apart.
CREATE FUNCTION iotjobs_mul_checked(a float8, b float8) RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
	RETURN a * b;
EXCEPTION WHEN numeric_value_out_of_range THEN
	IF ln(abs(a)) + ln(abs(b)) > 0 THEN
		RETURN NULL;
	END IF;
	RETURN 0;
END $$;

CREATE FUNCTION iotjobs_div_checked(a float8, b float8) RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
	IF b = 0 THEN
		RETURN NULL;
	END IF;
	RETURN a / b;
EXCEPTION WHEN numeric_value_out_of_range THEN
	IF ln(abs(a)) - ln(abs(b)) > 0 THEN
		RETURN NULL;
	END IF;
	RETURN 0;
END $$;

CREATE FUNCTION iotjobs_add(a float8, b float8) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN abs(a) < 1e307 AND abs(b) < 1e307 THEN a + b ELSE iotjobs_add_checked(a, b) END
$$;

CREATE FUNCTION iotjobs_sub(a float8, b float8) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN abs(a) < 1e307 AND abs(b) < 1e307 THEN a - b ELSE iotjobs_sub_checked(a, b) END
$$;

CREATE FUNCTION iotjobs_mul(a float8, b float8) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN (a = 0 OR abs(a) BETWEEN 1e-150 AND 1e150) AND (b = 0 OR abs(b) BETWEEN 1e-150 AND 1e150)
		THEN a * b ELSE iotjobs_mul_checked(a, b) END
$$;

CREATE FUNCTION iotjobs_div(a float8, b float8) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN b = 0 THEN NULL
		WHEN (a = 0 OR abs(a) BETWEEN 1e-150 AND 1e150) AND abs(b) BETWEEN 1e-150 AND 1e150 THEN a / b
		ELSE iotjobs_div_checked(a, b) END
$$;

-- Go's strings.ToLower or ToUpper: f and t list every character that
-- unicode.ToLower (ToUpper) changes and what it maps it to (the compiler
-- binds them); ASCII text takes the byte-wise path, as in Go.
CREATE FUNCTION iotjobs_case(s text, upper boolean, f text, t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN octet_length(s) = length(s)
		THEN CASE WHEN upper THEN upper(s COLLATE "C") ELSE lower(s COLLATE "C") END
		ELSE translate(s, f, t) END
$$;

CREATE FUNCTION iotjobs_endswith(s text, suffix text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT right(s, length(suffix)) = suffix COLLATE "C"
$$;
`

// schemaV2 is the remainder operator with Go's result: math.Mod is exact
// (x - n*y for the integer n that truncates x/y), and so is this. t is the
// largest |y|*2^k not above r = |x|, found by doubling (exact: no
// overflow, since 2t <= r); then r - t is exact (t <= r < 2t, Sterbenz's
// lemma), and halving t back to |y| is exact (t is |y| times a power of
// two). At most about 2,100 steps each way, for the largest exponent
// difference of two float8s.
const schemaV2 = `
CREATE FUNCTION iotjobs_mod(x float8, y float8) RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
	r float8 := abs(x);
	t float8;
BEGIN
	y := abs(y);
	IF y = 0 THEN
		RETURN NULL; -- Go: NaN, undefined in queries
	END IF;
	IF r < y THEN
		RETURN x;
	END IF;
	t := y;
	WHILE t <= r - t LOOP
		t := t + t;
	END LOOP;
	LOOP
		IF r >= t THEN
			r := r - t;
		END IF;
		EXIT WHEN t = y;
		t := t / 2;
	END LOOP;
	IF x < 0 THEN
		RETURN -r;
	END IF;
	RETURN r;
END $$;
`

// schemaV3 holds the leases of jobs among replicas (lease.go) and the
// replicas' heartbeats. A lease row outlives its holder: its epoch
// counts the job's holders, and its cancel flag a cancel asked for
// through any replica.
const schemaV3 = `
CREATE TABLE job_leases (
	job_id  text COLLATE "C" PRIMARY KEY,
	replica text COLLATE "C" NOT NULL DEFAULT '',
	epoch   bigint NOT NULL DEFAULT 0,
	expires timestamptz NOT NULL DEFAULT '-infinity',
	cancel  boolean NOT NULL DEFAULT false
);

CREATE TABLE replicas (
	id       text COLLATE "C" PRIMARY KEY,
	endpoint text NOT NULL,
	seen     timestamptz NOT NULL
);
`

// schemaV4 is the audit log (audit.go): one row per entry, every field of
// the entry's hash a column of its own, so that a row edited by hand no
// longer matches its hash; and audit_head, the chain's head in one row,
// which each append locks so that replicas append in one order. The head
// is kept apart from the log rather than read from its last row: an
// append never waits on the log's rows, and entries deleted from the
// log's end show as a gap before the next entry.
const schemaV4 = `
CREATE TABLE audit (
	seq         bigint PRIMARY KEY,
	time        timestamptz NOT NULL,
	actor       text NOT NULL,
	operation   text NOT NULL,
	target      text NOT NULL,
	job         text NOT NULL,
	devices     text[] NOT NULL,
	result      text NOT NULL,
	plan        text NOT NULL,
	plan_sha256 text NOT NULL,
	prev        text NOT NULL,
	hash        text NOT NULL
);

CREATE TABLE audit_head (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	seq  bigint NOT NULL,
	hash text NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, '');
`

// schemaV5 holds the hub's CA certificates (store.Certifier), one JSON
// document (hub.Certificate) each: they are few and read whole.
const schemaV5 = `
CREATE TABLE certificates (
	name text COLLATE "C" PRIMARY KEY,
	doc  text NOT NULL
);
`
