// Package hub holds the domain of the iotjobs hub: devices, twins, jobs,
// direct methods and the error codes Azure IoT Hub uses for them, plus the
// two seams everything else plugs into: [Client], the service operations
// the runner and the CLI use (implemented in-process by the engine and over
// HTTPS by the REST client), and [DeviceBus], how the engine reaches devices.
//
// The JSON tags on these types are Azure IoT Hub's wire shapes, so the same
// values travel through the REST API unchanged.
package hub
