// Package simulate is iotjobs' simulated device fleet: a fleet file that
// describes devices (ids, tags, reported properties, how they answer direct
// methods, how they react to desired patches, how many are offline or
// flapping, which degrade after an update) and the behaviour of each
// device, which the simulator connects to a hub over MQTT and the dry-run
// drives in process.
//
// [Parse] reads a fleet file strictly, in one pass, with the same walker
// and diagnostics as plans (package plan/diag): unknown or duplicate keys,
// wrong types, bad durations and percentages, invalid or duplicate device
// ids, invalid method names and statuses out of range are all reported at
// their position with a hint. The resulting [Fleet] is plain data with
// defaults filled in.
//
// [Fleet.Devices] expands the groups into [Device] values. Everything
// random about a fleet (which devices are offline, flap or degrade,
// latencies, failures) derives from the fleet's seed, so the same file gives the same
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
// device's wire; the behaviour above them (mqtt.go, twin.go) is the same.
// [Register] creates the devices on the hub; X.509 devices (a group's
// auth) get certificates made for the run (x509.go), which their own
// connections present instead of a SAS token.
//
// A device that connects (the first time, or again after a reboot, a flap
// or a hub restart) behaves like a device that rebooted, not one that was
// reflashed: it reads its twin over MQTT, keeps the reported values the
// twin already holds (the firmware an update left it with) and reports its
// fleet file's reported values only for the properties the twin lacks, so
// a device never seen before reports them all; a device that echoes
// desired patches then echoes, after its delay, the desired properties
// that differ from its reported ones (missed while it was away). When the
// twin cannot be read it reports its fleet values and counts an error.
// [Sim.Settle] lets a fleet send the reactions it still owes (desired
// echoes, method answers) before it closes.
//
// A group's degrade block makes a share of its devices report a
// reported-property patch (say, crashes) once, some time after their own
// reported properties came to hold given values (an update's firmware),
// or after the simulation started: what a rollout's health gate should
// catch. The MQTT simulator and the in-process [Bus] both track what each
// device reported to tell when its degradation starts.
package simulate
