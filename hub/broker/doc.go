// Package broker is the hub's embedded MQTT broker: mochi-mqtt configured
// to speak Azure IoT Hub's device protocol (MQTT 3.1.1, SAS token as
// password, "$iothub/..." topics that mean "this connection's device").
//
// Inside the broker every device topic is device-scoped: a device's
// "$iothub/methods/POST/#" subscription is stored as
// "devices/{id}/$iothub/methods/POST/#", its publishes on "$iothub/..." are
// routed as "devices/{id}/$iothub/...", and publishes to it are turned back
// into "$iothub/..." just before they are encoded. The hub therefore works
// with the same device-scoped topics whether it uses this broker or an
// external one, a device only ever sees and reaches its own topics, and a
// device's subscriptions survive a clean-session-0 reconnect in that form.
//
// The hub reaches devices through mochi's inline client ([Broker.Publish],
// [Broker.Subscribe]): no loopback connection, no per-client in-flight or
// packet-id ceiling on the service side.
//
// This package is the only importer of mochi-mqtt.
package broker
