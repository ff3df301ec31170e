// Package mqttproto is Azure IoT Hub's device MQTT protocol (topics and
// payloads for direct methods, twins and telemetry) as pure functions, with
// no MQTT library: the embedded broker, the hub's MQTT device bus and the
// device simulator all build and parse topics here.
//
// Topics come in two forms. The device-side form, "$iothub/...", is what a
// device connected to the embedded broker publishes and subscribes to; it
// means "this connection's device". The device-scoped form,
// "devices/{id}/$iothub/...", names the device explicitly and is used
// between the hub and the broker, and on external brokers. Telemetry
// ("devices/{id}/messages/events/...") is device-scoped in both forms.
package mqttproto
