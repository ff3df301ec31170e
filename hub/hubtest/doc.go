// Package hubtest is the conformance suite of [hub.Client], as package
// storetest is the store port's. Every implementation runs [Run] from its
// own tests so that they all answer as Azure IoT Hub's service API does,
// and alike: the engine in process and the REST client in front of a hub
// built by hubd (on SQLite and on PostgreSQL), and the dry-run's
// in-process hub over a fleet file's simulated devices.
//
// The suite knows devices only through the service API: it cannot
// connect a device itself (the hub's packages do not import the
// simulator). The caller brings the hub and its devices: for each case it
// opens a hub holding the devices of [FleetYAML], online as the file
// says, and returns a [Harness] with the client under test and, where its
// devices connect over a transport, a way to bring one online with a key.
// Checks that need what a hub lacks (a device that can come online on
// demand, recorded connection states) are skipped, each with a message
// saying why.
package hubtest
