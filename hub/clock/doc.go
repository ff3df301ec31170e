// Package clock is the hub's and the runner's only source of time. Code under
// hub/engine, runner and simulate never calls time.Now, time.Sleep,
// time.After or context.WithTimeout directly: it asks a Clock, so that the
// dry-run can run a week of schedule on a Virtual clock in milliseconds.
package clock
