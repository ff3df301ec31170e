// Package rest is Azure IoT Hub's service REST contract, both ends of it:
// [Server] serves a [hub.Client] (our engine) to the official Azure SDKs,
// az-cli and our own CLI, and [Client] implements [hub.Client] over HTTPS
// against our hub or a real Azure IoT Hub.
//
// Both ends share the wire shapes (the hub domain types' JSON tags) and the
// error mapping (errors.go): the server turns a *hub.Error into an HTTP
// status, an iothub-errorcode header and one of Azure's two error bodies,
// and the client turns any of those back into the same *hub.Error, so
// callers branch on error codes the same way whether the hub is in-process
// or remote.
//
// One extension is ours and harmless to Azure clients: a job GET with the
// request headers x-iotjobs-wait and x-iotjobs-state long-polls until the
// job's status or statistics change, so that watching a job does not cost
// a request per second.
package rest
