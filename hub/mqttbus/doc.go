// Package mqttbus is the hub's [hub.DeviceBus] over MQTT: it sends method
// requests and desired-property patches on device-scoped topics
// (devices/{id}/$iothub/...), correlates method replies by $rid, answers
// the twin requests devices make, and tracks which devices are online.
//
// It talks to a broker through [Transport]: the embedded broker's inline
// client (no loopback connection, so no per-client quota can drop replies)
// or, later, a client of an external broker.
package mqttbus
