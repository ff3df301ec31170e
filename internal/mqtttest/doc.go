// Package mqtttest gives tests and benchmarks a Mosquitto of their own:
// the machine's binary on an ephemeral loopback port, with no
// persistence, to kill and restart. Without the binary, tests skip,
// unless IOTJOBS_REQUIRE_MOSQUITTO is set (CI), which makes them fail.
package mqtttest
