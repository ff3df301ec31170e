// Package extbroker joins the hub to an external MQTT broker (Mosquitto,
// EMQX, VerneMQ, HiveMQ), the path to fleets beyond one machine: devices
// connect to that broker directly, on device-scoped topics
// ("devices/{id}/$iothub/...") that the broker's ACL confines to each
// device, and the hub is one more client of it, with credentials of its
// own.
//
// Such a broker does not tell its clients who is connected or subscribed,
// so devices announce it (mqttproto.PresenceTopic, retained, cleared by
// their Will); that is what [Client.Online] answers from. The broker
// authenticates devices, so the hub's SAS keys are not checked here, and
// the hub cannot close a device's connection ([Client.Kick] only forgets
// its presence): disabling a device must be mirrored in the broker's
// credentials.
//
// Module identities (client id "{deviceId}/{moduleId}") connect to the
// embedded broker only: no presence convention or ACL pattern for them is
// defined here.
package extbroker
