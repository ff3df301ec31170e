# Conftest policy over iotjobs saved plans (the JSON iotjobs plan --out
# writes; schema: docs/saved-plan.schema.json). How to run it:
# examples/policy/README.md.
package main

import rego.v1

# The plan as written: a saved plan keeps its YAML source, where the
# steps' actions are. ${vars.NAME} references are not expanded here;
# input.vars holds the values given with --var and --var-file.
plan := yaml.unmarshal(input.source)

# How many devices each step acts on: the devices the saved plan fixed,
# which are exactly those apply will act on.
matched[step.name] := count(step.devices) if {
	some step in input.steps
}

deny contains msg if {
	some step in plan.steps
	matched[step.name] > 1000
	not step.rollout.batches
	msg := sprintf("step %s acts on %d devices without rollout batches: add e.g. rollout: {batches: [\"1%%\", \"10%%\", \"100%%\"]}", [step.name, matched[step.name]])
}

deny contains msg if {
	some step in plan.steps
	step.method.name in {"factoryReset"}
	msg := sprintf("step %s calls %s, which plans must not", [step.name, step.method.name])
}

deny contains msg if {
	some step in plan.steps
	"security" in object.keys(object.get(step, ["twin", "desired"], {}))
	msg := sprintf("step %s sets properties.desired.security, which changes through the security team's pipeline", [step.name])
}

warn contains msg if {
	some step in plan.steps
	step.twin
	not step.verify
	msg := sprintf("twin step %s has no verify: nothing checks that its devices took the change", [step.name])
}
