//go:build race

package storetest

// raceEnabled is whether the race detector is on. It makes the
// differential query test about 20 times slower (the SQLite driver is Go
// code), so under it RunQueries compares every third query only, in pages
// of 1000 and of one small size (alternating 7 and 1). The test has no
// concurrency for the detector to find; without -race every query is
// compared in pages of 1000, 7 and 1.
const raceEnabled = true
