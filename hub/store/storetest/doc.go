// Package storetest is the conformance suite of the [store.Store] port.
// Every implementation (SQLite, PostgreSQL, in memory) runs [Run] from its
// own tests, so that they all give the engine the same answers: the same
// sentinel errors, the same orders, the same values read back.
//
// The suite pins what the port's doc comments promise and a few answers
// they leave implicit but the engine relies on: values read back are
// copies (changing them changes nothing stored), twin sections read back
// as non-nil maps with JSON types (numbers are float64), and ListJobs
// breaks ties of createdTime by job id.
package storetest
