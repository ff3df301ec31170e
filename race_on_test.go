//go:build race

package main

// raceEnabled is whether the race detector is on: the crash test then runs
// its hub from a build without it (see plainBinary).
const raceEnabled = true
