// Package store is the hub's persistence port: devices with their twins,
// jobs and per-device job results (and, for stores that are a Certifier,
// the CA certificates X.509 devices chain to). Only the engine consumes it; adapters
// live in sub-packages named after what they wrap (sqlite, and later
// postgres and an in-memory store), and all of them must give the same
// answers.
package store
