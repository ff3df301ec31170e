// Package reportcheck holds a run's report to the one truth of every
// view: per step, succeeded + failed + noop + skipped = matched, and those
// counts are the devices' own outcomes; the abort counters are the
// failures of the classes abort counts; the human summary and JUnit say
// the same numbers. Tests of the runner and of the CLI run it over every
// report they make. It is imported by tests only.
package reportcheck
