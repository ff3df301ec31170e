// Package store is the hub's persistence port: devices with their twins,
// jobs and per-device job results. Only the engine consumes it; adapters
// live in sub-packages named after what they wrap (sqlite, and later
// postgres and an in-memory store), and all of them must give the same
// answers.
package store
