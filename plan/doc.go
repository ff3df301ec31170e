// Package plan is the iotjobs plan file format, version 1: a YAML file
// listing steps, each of which targets devices with a twin query
// condition, acts on them (a direct method call or a twin patch), and says
// when (now, a start time or cron), for how long, how fast (rollout
// batches, rate) and when to stop (abort and success thresholds). The
// format's reference is docs/plan.md; examples/lock-door.yaml is the
// tutorial plan.
//
// [Parse] decodes a file strictly in one pass (unknown or duplicate keys,
// wrong types, bad durations, times, cron expressions and query syntax,
// unknown ${vars.x}, unset ${env.X}, duplicate or unknown step names,
// cyclic "after", a step with no or two actions, thresholds out of range)
// and returns every problem as a positioned [diag.Diagnostic] with a
// hint. The resulting [Plan] is plain data with defaults filled in, ready
// for the runner. [WithVars] gives variables values from outside the file
// (iotjobs --var, and --var-file through [ParseVarFile]).
//
// [Schema] is the format's JSON Schema, generated over the decoder's own
// lists of keys (docs/plan.schema.json holds it, for editors).
//
// plan imports only plan/diag, hub/query (for syntax checks) and
// robfig/cron (for cron syntax); it never imports the hub itself.
package plan
