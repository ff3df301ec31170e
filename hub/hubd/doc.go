// Package hubd assembles a whole hub: store, embedded MQTT broker, device
// bus, jobs engine and the HTTPS REST API, started in order and stopped in
// reverse (the started parts are stopped again when a later one fails).
// `iotjobs hub serve`, the embedded default of `apply`, and integration
// tests all use it, so the wiring exists once.
package hubd
