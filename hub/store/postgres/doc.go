// Package postgres is a store.Store on PostgreSQL through pgx (pure Go).
//
// The layout mirrors the SQLite store: each device row keeps its identity
// as JSON text, its twin version, and the query document (the twin as
// queries see it, which also holds the tags, desired and reported
// sections) as jsonb; each device-job row keeps the record's wire JSON
// and its query document as jsonb. Key columns are COLLATE "C", so that
// ids sort in Go's byte order.
//
// jsonb cannot hold the NUL character: a document with one in any string
// or key is kept as JSON text instead (devices.raw; device_jobs.doc
// already holds the record), and queries read such rows whatever their
// condition and decide them in Go.
//
// Queries are compiled to one SQL statement over the jsonb documents with
// the semantics of the reference evaluator in package query (compile.go).
// What the compiler cannot express faithfully (string constants that are
// not valid UTF-8, expressions nested too deeply) becomes a condition that
// holds for at least every matching row, and the rows it selects are
// decided in Go with query.Match.
//
// The audit log (audit.go) is appended in the transaction of the write it
// records, under a lock on the chain's head, one row, so that replicas
// sharing the database append in one order.
//
// The schema is versioned (migrate.go): Open applies pending migrations
// under an advisory lock and refuses a database written by a newer
// version.
package postgres
