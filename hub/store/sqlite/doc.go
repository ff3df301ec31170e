// Package sqlite is the hub's default store: one SQLite file through
// modernc.org/sqlite (no cgo). Twin sections are JSON columns, and each
// device row also keeps its query document (the twin as queries see it)
// as JSONB, as each device-job row does. Queries are compiled to one SQL
// statement over those documents with the exact semantics of the
// reference evaluator in package query (see compile.go); the few the
// compiler declines are answered by store.EvalDevices. Every statement
// binds its values, constants and JSON paths as parameters.
package sqlite
