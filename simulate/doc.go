// Package simulate is iotjobs' simulated device fleet: a fleet file that
// describes devices (ids, tags, reported properties, how they answer direct
// methods, how they react to desired patches, how many are offline or
// flapping) and the behaviour of each device, which the simulator connects
// to a hub over MQTT and the dry-run drives in process.
//
// [Parse] reads a fleet file strictly, in one pass, with the same walker
// and diagnostics as plans (package plan/diag): unknown or duplicate keys,
// wrong types, bad durations and percentages, invalid or duplicate device
// ids, invalid method names and statuses out of range are all reported at
// their position with a hint. The resulting [Fleet] is plain data with
// defaults filled in.
//
// [Fleet.Devices] expands the groups into [Device] values. Everything
// random about a fleet (which devices are offline or flap, latencies,
// failures) derives from the fleet's seed, so the same file gives the same
// fleet and, given the same order of calls, the same behaviour. A device's
// reaction to a method call is computed by [Device.Answer]; it is pure and
// takes its randomness from the caller, so the MQTT simulator and the
// in-process bus share it and drive time with their own clocks.
//
// [Connect] puts a fleet on MQTT: each device on a connection of its own
// (own.go: as the Azure device SDK connects, token renewal included, with
// the lean client of internal/mqttc, about 18 KB a device), or the whole
// fleet over a few shared connections (mux.go, paho; the multiplexed mode
// of [Options.Connections]: gateways on the embedded broker, clients with
// presence on an external one). Both speak to the broker through a
// device's wire; the behaviour above them (mqtt.go) is the same.
package simulate
