// Package policy reads guardrails for plans (policy files, README
// "Guardrails (policy)", reference docs/policy.md) and checks plans
// against them. A policy is a list of rules; each checks one thing and has
// a level that says what a violation does: advisory (reported), soft
// (fails unless overridden with a reason) or hard (always fails).
//
// [Parse] reads a policy file as strictly as plans are read, every problem
// a positioned diagnostic with a hint; [Policy.Check] checks a plan. Most
// rules are read from the plan alone; those about the devices a step
// matches need what plan and apply read from the hub ([Facts]). Each
// [Violation] points at the plan's value that breaks the rule
// ([plan.Plan.RangeOf]).
package policy
