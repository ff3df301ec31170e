// Package sqlite is the hub's default store: one SQLite file through
// modernc.org/sqlite (no cgo). Twin sections are JSON columns so that
// queries can later be compiled to json_extract; every statement binds its
// values as parameters.
package sqlite
