// Package pgtest gives tests a PostgreSQL schema of their own on the
// server of IOTJOBS_POSTGRES_URL (default the machine's own, trust auth,
// database test), dropped when the test ends. Without a server, tests
// skip, unless IOTJOBS_REQUIRE_POSTGRES is set (CI), which makes them
// fail.
package pgtest
