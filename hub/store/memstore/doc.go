// Package memstore is a store.Store in memory, for the dry-run: the same
// behaviour as the SQLite store (it passes the same conformance suite and
// answers queries with the reference evaluator), nothing written to disk.
// Values are kept as their JSON, as a database would keep them, so a
// caller's maps never alias the store's and numbers read back as float64
// exactly as from SQLite.
package memstore
