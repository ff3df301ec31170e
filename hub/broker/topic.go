package broker

import (
	"slices"
	"strings"

	"github.com/iotjobs/iotjobs/hub"
)

// Device-relative topic shapes of Azure IoT Hub's device protocol
// (Azure IoT Hub's device MQTT topics, README "The hub").
const (
	devicesPrefix = "devices/"
	iothubPrefix  = "$iothub/"
	eventsTopic   = "messages/events"
)

// deviceFilters are the only subscriptions a device may make, in their
// device-relative form (what follows "devices/{id}/").
var deviceFilters = [...]string{
	"$iothub/methods/POST/#",
	"$iothub/twin/res/#",
	"$iothub/twin/PATCH/properties/desired/#",
	"messages/devicebound/#",
}

// devicePublishPrefixes are the "$iothub/..." topics a device may publish
// on: the device-to-hub half of the protocol only, so a device cannot
// forge hub-to-device traffic, not even to itself.
var devicePublishPrefixes = [...]string{
	"$iothub/methods/res/",
	"$iothub/twin/GET/",
	"$iothub/twin/PATCH/properties/reported/",
}

// Azure's limit of five subscriptions per device holds by construction:
// only the four deviceFilters are allowed at all.

// deviceRoute is the one filter under which the broker indexes a device's
// subscriptions, whichever of deviceFilters it made: one entry of mochi's
// topic tree per device instead of a dozen (a device's three usual
// filters cost ~9 KB of tree nodes, most of what a connected device cost
// the hub). Which filters the device holds is kept beside it (device.subs)
// and checked for every delivery (OnACLCheck).
func deviceRoute(id string) string { return devicesPrefix + id + "/#" }

// filterSet is a set of deviceFilters, bit i for deviceFilters[i].
type filterSet uint8

// filterBit returns the bit of a device-relative filter, 0 if it is not
// one of deviceFilters.
func filterBit(rest string) filterSet {
	for i, f := range deviceFilters {
		if rest == f {
			return 1 << i
		}
	}
	return 0
}

// topicBit returns the bit of the device filter that a device-relative
// topic matches, 0 if none does ("a/#" matches "a" and all below it).
func topicBit(rest string) filterSet {
	for i, f := range deviceFilters {
		if strings.HasPrefix(rest, f[:len(f)-1]) || rest == f[:len(f)-2] {
			return 1 << i
		}
	}
	return 0
}

// deviceForms lists the filters of a set in the form a device subscribes
// to them ("$iothub/..." or "devices/{id}/messages/devicebound/#"), in
// order.
func (s filterSet) deviceForms(id string) []string {
	var out []string
	for i, f := range deviceFilters {
		if s&(1<<i) != 0 {
			out = append(out, deviceForm(id, scoped(id, f)))
		}
	}
	slices.Sort(out)
	return out
}

// scopedRest returns what follows "devices/{id}/" in topic, and whether
// topic has that prefix. It does not allocate: it runs for every message.
func scopedRest(topic, id string) (string, bool) {
	if !strings.HasPrefix(topic, devicesPrefix) {
		return "", false
	}
	t := topic[len(devicesPrefix):]
	if len(t) <= len(id) || t[:len(id)] != id || t[len(id)] != '/' {
		return "", false
	}
	return t[len(id)+1:], true
}

// scoped returns the device-scoped form of a device-relative topic.
func scoped(id, rest string) string {
	return devicesPrefix + id + "/" + rest
}

// canonicalFilter returns the device-scoped form of a filter device id
// subscribes to, in either the "$iothub/..." or the device-scoped form, and
// whether it is one of the filters a device may use. short reports whether
// the device used the "$iothub/..." form.
func canonicalFilter(id, filter string) (canonical string, short, ok bool) {
	if strings.HasPrefix(filter, iothubPrefix) {
		if isDeviceFilter(filter) {
			return scoped(id, filter), true, true
		}
		return "", false, false
	}
	if rest, ok := scopedRest(filter, id); ok && isDeviceFilter(rest) {
		return filter, false, true
	}
	return "", false, false
}

func isDeviceFilter(rest string) bool {
	for _, f := range deviceFilters {
		if rest == f {
			return true
		}
	}
	return false
}

// deviceForm is a device-scoped filter of device id in the form a device
// would subscribe to it: "$iothub/..." for the $iothub filters, unchanged
// otherwise.
func deviceForm(id, canonical string) string {
	if rest, ok := scopedRest(canonical, id); ok && strings.HasPrefix(rest, iothubPrefix) {
		return rest
	}
	return canonical
}

// canonicalPublish returns the device-scoped topic for a publish from
// device id, and whether the device may publish there: the device-to-hub
// "$iothub/..." topics in either form, and its telemetry topic.
func canonicalPublish(id, topic string) (string, bool) {
	if strings.HasPrefix(topic, iothubPrefix) {
		if isDevicePublish(topic) {
			return scoped(id, topic), true
		}
		return "", false
	}
	rest, ok := scopedRest(topic, id)
	if !ok {
		// A module's telemetry topic is Azure's
		// "devices/{deviceId}/modules/{moduleId}/messages/events/...".
		if dev, mod, module := hub.SplitModuleKey(id); module {
			rest, ok = strings.CutPrefix(topic, devicesPrefix+dev+"/modules/"+mod+"/")
			if ok && isEvents(rest) {
				return topic, true
			}
		}
		return "", false
	}
	if isDevicePublish(rest) || isEvents(rest) {
		return topic, true
	}
	return "", false
}

// isEvents reports whether a device-relative topic is telemetry.
func isEvents(rest string) bool {
	return rest == eventsTopic || strings.HasPrefix(rest, eventsTopic+"/")
}

func isDevicePublish(rest string) bool {
	for _, p := range devicePublishPrefixes {
		if strings.HasPrefix(rest, p) {
			return true
		}
	}
	return false
}

// validDeviceID reports whether id can be a device's client id here: a
// device id (hub.CheckDeviceID) without '+' and '#', which are MQTT
// wildcards inside a device-scoped topic.
func validDeviceID(id string) bool { return hub.CheckMQTTDeviceID(id) == nil }

// validClientID reports whether id can be a device's or a module's client
// id ("{deviceId}/{moduleId}", hub.ModuleKey). A module's device-scoped
// topics are "devices/{deviceId}/{moduleId}/...": its connection state,
// routes and ACLs are those of a device whose id is the key. (A gateway's
// "$gateway/{name}" is told apart first.)
func validClientID(id string) bool { return hub.CheckMQTTClientID(id) == nil }

// resourcePath is the SAS resource path of a client id: "devices/{id}",
// or "devices/{deviceId}/modules/{moduleId}" for a module, as Azure's
// SDKs sign them.
func resourcePath(id string) string {
	if dev, mod, ok := hub.SplitModuleKey(id); ok {
		return devicesPrefix + dev + "/modules/" + mod
	}
	return devicesPrefix + id
}

// usernameMatches reports whether an MQTT username has Azure's form
// "{host}/{clientID}/" followed by the query, with or without the '?' that
// the documentation puts before it ("{host}/{id}/?api-version=..." or
// "{host}/{id}/api-version=..."). The host is not checked here: the SAS
// token carries the hub name that is verified.
func usernameMatches(username, clientID string) bool {
	host, rest, ok := strings.Cut(username, "/")
	if !ok || host == "" {
		return false
	}
	q, ok := strings.CutPrefix(rest, clientID+"/")
	if !ok {
		return false
	}
	return q == "" || q[0] == '?' || !strings.Contains(q, "/")
}

// gatewayPrefix starts a gateway's client id, "$gateway/{name}": a
// connection that plays many devices (a protocol gateway, or the
// simulator's multiplexed mode), authenticated with a shared access
// policy instead of a device key. The '/' keeps it apart from device ids.
const gatewayPrefix = "$gateway/"

// gatewayName returns the name of a gateway client id, and whether id is
// one.
func gatewayName(id string) (string, bool) {
	name, ok := strings.CutPrefix(id, gatewayPrefix)
	return name, ok && validDeviceID(name)
}

// gatewayFilter reports whether a gateway may subscribe to filter: a
// device filter in the device-scoped form, for one device or for every
// device ('+' as the id). Deliveries are still limited to the devices the
// gateway announced (OnACLCheck).
func gatewayFilter(filter string) bool {
	rest, ok := strings.CutPrefix(filter, devicesPrefix)
	if !ok {
		return false
	}
	id, f, ok := strings.Cut(rest, "/")
	if !ok || (id != "+" && !validDeviceID(id)) {
		return false
	}
	return strings.HasPrefix(f, iothubPrefix) && isDeviceFilter(f)
}

// presenceSuffix ends a device's presence topic, "devices/{id}/presence",
// on which a gateway announces the devices it plays (the external-broker
// convention of package mqttproto).
const presenceSuffix = "/presence"

// deviceOf returns the device id of a device-scoped topic and what
// follows it.
func deviceOf(topic string) (id, rest string, ok bool) {
	t, ok := strings.CutPrefix(topic, devicesPrefix)
	if !ok {
		return "", "", false
	}
	id, rest, ok = strings.Cut(t, "/")
	return id, rest, ok && validDeviceID(id)
}
