package mqttproto

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Subscriptions devices make (device-side form).
const (
	MethodsSubscription = "$iothub/methods/POST/#"
	TwinResSubscription = "$iothub/twin/res/#"
	DesiredSubscription = "$iothub/twin/PATCH/properties/desired/#"
)

const (
	iothub          = "$iothub/"
	methodPost      = "$iothub/methods/POST/"
	methodRes       = "$iothub/methods/res/"
	twinGet         = "$iothub/twin/GET/"
	twinRes         = "$iothub/twin/res/"
	reportedPatch   = "$iothub/twin/PATCH/properties/reported/"
	desiredPatch    = "$iothub/twin/PATCH/properties/desired/"
	devicesPrefix   = "devices/"
	eventsInfix     = "/messages/events"
	deviceboundPath = "/messages/devicebound/#"
)

// Scoped turns a device-side topic "$iothub/x" into the device-scoped
// "devices/{id}/$iothub/x". Topics already under "devices/" (telemetry, C2D)
// are returned unchanged.
func Scoped(deviceID, deviceTopic string) string {
	if strings.HasPrefix(deviceTopic, devicesPrefix) {
		return deviceTopic
	}
	return devicesPrefix + deviceID + "/" + deviceTopic
}

// Unscope splits a device-scoped topic "devices/{id}/$iothub/x" into the
// device id and "$iothub/x". Telemetry and C2D topics
// ("devices/{id}/messages/...") yield the id and the topic unchanged, since
// that is their device-side form too. A module's topics yield its key
// "{deviceId}/{moduleId}" as the id. ok is false for anything else.
func Unscope(topic string) (deviceID, deviceTopic string, ok bool) {
	rest, found := strings.CutPrefix(topic, devicesPrefix)
	if !found {
		return "", "", false
	}
	id, tail, found := strings.Cut(rest, "/")
	if !found || id == "" {
		return "", "", false
	}
	switch {
	case strings.HasPrefix(tail, iothub):
		return id, tail, true
	case strings.HasPrefix(tail, "messages/"):
		return id, topic, true
	}
	// A module's topics: the scoped "devices/{deviceId}/{moduleId}/$iothub/x"
	// (its id is the key "{deviceId}/{moduleId}") and Azure's telemetry
	// form "devices/{deviceId}/modules/{moduleId}/messages/...".
	if mod, t, ok := strings.Cut(tail, "/"); ok && mod != "" && strings.HasPrefix(t, iothub) {
		return id + "/" + mod, t, true
	}
	if after, ok := strings.CutPrefix(tail, "modules/"); ok {
		if mod, t, ok := strings.Cut(after, "/"); ok && mod != "" && strings.HasPrefix(t, "messages/") {
			return id + "/" + mod, topic, true
		}
	}
	return "", "", false
}

// MethodRequestTopic is the topic the hub publishes a direct method call on.
func MethodRequestTopic(method, rid string) string {
	return methodPost + method + "/?$rid=" + escape(rid)
}

// MethodResponseTopic is the topic a device answers a method call on.
func MethodResponseTopic(status int, rid string) string {
	return methodRes + strconv.Itoa(status) + "/?$rid=" + escape(rid)
}

// TwinGetTopic is the topic a device requests its twin on.
func TwinGetTopic(rid string) string { return twinGet + "?$rid=" + escape(rid) }

// ReportedPatchTopic is the topic a device updates its reported properties on.
func ReportedPatchTopic(rid string) string { return reportedPatch + "?$rid=" + escape(rid) }

// TwinResponseTopic is the topic the hub answers twin requests on; version,
// when not 0, is the new reported version after a reported patch.
func TwinResponseTopic(status int, rid string, version int64) string {
	t := twinRes + strconv.Itoa(status) + "/?$rid=" + escape(rid)
	if version != 0 {
		t += "&$version=" + strconv.FormatInt(version, 10)
	}
	return t
}

// DesiredPatchTopic is the topic the hub notifies a desired-properties
// change on.
func DesiredPatchTopic(version int64) string {
	return desiredPatch + "?$version=" + strconv.FormatInt(version, 10)
}

// TelemetryTopic is the topic a device sends telemetry on, with props as the
// property bag, keys sorted, encoded like the Node SDK ('$' as %24). For a
// module's key "{deviceId}/{moduleId}" it is Azure's module form
// "devices/{deviceId}/modules/{moduleId}/messages/events/...".
func TelemetryTopic(deviceID string, props map[string]string) string {
	if dev, mod, module := strings.Cut(deviceID, "/"); module {
		deviceID = dev + "/modules/" + mod
	}
	t := devicesPrefix + deviceID + eventsInfix + "/"
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			t += "&"
		}
		t += escape(k) + "=" + escape(props[k])
	}
	return t
}

// C2DSubscription is the filter a device subscribes to for cloud-to-device
// messages.
func C2DSubscription(deviceID string) string { return devicesPrefix + deviceID + deviceboundPath }

// DeviceFilterAllowed reports whether a device may subscribe to filter
// (device-side form): only the three documented $iothub subscriptions.
// The C2D filter depends on the device id; see DeviceFilterAllowedFor.
func DeviceFilterAllowed(filter string) bool {
	switch filter {
	case MethodsSubscription, TwinResSubscription, DesiredSubscription:
		return true
	}
	return false
}

// DeviceFilterAllowedFor is DeviceFilterAllowed plus the device's own C2D
// filter.
func DeviceFilterAllowedFor(deviceID, filter string) bool {
	return DeviceFilterAllowed(filter) || deviceID != "" && filter == C2DSubscription(deviceID)
}

// Kind is what a device-side topic is for.
type Kind int

// The kinds of topic in the protocol's topic table.
const (
	Unknown Kind = iota
	MethodRequest
	MethodResponse
	TwinGet
	TwinResponse
	ReportedPatch
	DesiredPatch
	Telemetry
)

var kindNames = [...]string{"unknown", "method request", "method response", "twin get", "twin response",
	"reported patch", "desired patch", "telemetry"}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// Message is what a topic says.
type Message struct {
	Kind Kind
	// Method is the method name of a MethodRequest.
	Method string
	// Status is the status of a MethodResponse or TwinResponse.
	Status int
	// RID is the request id ($rid), percent-decoded.
	RID string
	// Version is $version when HasVersion.
	Version    int64
	HasVersion bool
	// DeviceID is the device of a Telemetry topic.
	DeviceID string
	// Properties is the percent-decoded property bag of a Telemetry topic.
	Properties map[string]string
}

// ErrUnknownTopic is returned (wrapped) by ParseTopic for topics that are
// not in the protocol's topic table.
var ErrUnknownTopic = errors.New("not an IoT Hub device topic")

// ParseTopic parses a device-side topic of the protocol's topic table. It
// returns an error for malformed topics, wrapping ErrUnknownTopic for
// topics outside the table.
func ParseTopic(deviceTopic string) (Message, error) {
	m, err := parseTopic(deviceTopic)
	if err != nil {
		return Message{}, fmt.Errorf("topic %q: %w", deviceTopic, err)
	}
	return m, nil
}

func parseTopic(topic string) (Message, error) {
	if strings.HasPrefix(topic, devicesPrefix) {
		return parseTelemetry(topic)
	}
	path, query, _ := strings.Cut(topic, "?")
	path = strings.TrimSuffix(path, "/")
	var m Message
	needRID := true
	switch {
	case strings.HasPrefix(path+"/", methodPost):
		m.Kind = MethodRequest
		m.Method = strings.TrimPrefix(path+"/", methodPost)
		m.Method = strings.TrimSuffix(m.Method, "/")
		if err := ValidMethodName(m.Method); err != nil {
			return Message{}, err
		}
	case strings.HasPrefix(path+"/", methodRes):
		m.Kind = MethodResponse
		s, err := parseStatus(strings.TrimPrefix(path+"/", methodRes))
		if err != nil {
			return Message{}, err
		}
		m.Status = s
	case path+"/" == twinGet:
		m.Kind = TwinGet
	case strings.HasPrefix(path+"/", twinRes):
		m.Kind = TwinResponse
		s, err := parseStatus(strings.TrimPrefix(path+"/", twinRes))
		if err != nil {
			return Message{}, err
		}
		m.Status = s
	case path+"/" == reportedPatch:
		m.Kind = ReportedPatch
	case path+"/" == desiredPatch:
		m.Kind = DesiredPatch
		needRID = false
	default:
		return Message{}, ErrUnknownTopic
	}
	if err := parseSystemQuery(query, &m); err != nil {
		return Message{}, err
	}
	if needRID && m.RID == "" {
		return Message{}, errors.New("missing $rid")
	}
	return m, nil
}

// parseStatus parses the status segment "200/" of a response topic.
func parseStatus(seg string) (int, error) {
	seg = strings.TrimSuffix(seg, "/")
	if seg == "" || len(seg) > 9 || strings.ContainsAny(seg, "/+") {
		return 0, fmt.Errorf("status %q is not an integer", seg)
	}
	n, err := strconv.Atoi(seg)
	if err != nil {
		return 0, fmt.Errorf("status %q is not an integer", seg)
	}
	return n, nil
}

// parseSystemQuery reads $rid and $version from a topic's query in any
// order, percent-decoded; other parameters are ignored for forward
// compatibility.
func parseSystemQuery(query string, m *Message) error {
	if query == "" {
		return nil
	}
	seenRID := false
	for pair := range strings.SplitSeq(query, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.PathUnescape(k)
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		v, err = url.PathUnescape(v)
		if err != nil {
			return fmt.Errorf("query %s: %w", k, err)
		}
		switch k {
		case "$rid":
			if seenRID {
				return errors.New("$rid given twice")
			}
			seenRID, m.RID = true, v
		case "$version":
			if m.HasVersion {
				return errors.New("$version given twice")
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("$version %q is not an integer", v)
			}
			m.Version, m.HasVersion = n, true
		}
	}
	return nil
}

// parseTelemetry parses "devices/{id}/messages/events/{property_bag}" and a
// module's "devices/{deviceId}/modules/{moduleId}/messages/events/...",
// whose DeviceID is then the module key "{deviceId}/{moduleId}".
func parseTelemetry(topic string) (Message, error) {
	rest := strings.TrimPrefix(topic, devicesPrefix)
	id, tail, ok := strings.Cut(rest, "/")
	if !ok || id == "" {
		return Message{}, ErrUnknownTopic
	}
	if after, isModule := strings.CutPrefix(tail, "modules/"); isModule {
		// "devices/{deviceId}/modules/{moduleId}/messages/events/...".
		mod, t, ok := strings.Cut(after, "/")
		if !ok || mod == "" {
			return Message{}, ErrUnknownTopic
		}
		id, tail = id+"/"+mod, t
	}
	tail = "/" + tail
	bag, ok := strings.CutPrefix(tail, eventsInfix)
	if !ok || bag != "" && bag[0] != '/' {
		return Message{}, ErrUnknownTopic
	}
	bag = strings.TrimPrefix(bag, "/")
	m := Message{Kind: Telemetry, DeviceID: id, Properties: map[string]string{}}
	for pair := range strings.SplitSeq(bag, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return Message{}, fmt.Errorf("property bag: %w", err)
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return Message{}, fmt.Errorf("property %s: %w", dk, err)
		}
		if dk == "" {
			return Message{}, errors.New("property bag: empty key")
		}
		m.Properties[dk] = dv
	}
	return m, nil
}

// ValidMethodName checks a direct method name against Azure's rules:
// US-ASCII printable, excluding $ ( ) < > @ , ; : \ " / [ ] ? = { } SP HT.
// '#' and '+' are rejected too: they are MQTT wildcards and cannot appear
// in the topic a method request is published on.
func ValidMethodName(name string) error {
	if name == "" {
		return errors.New("method name is empty")
	}
	if len(name) > 1024 {
		return errors.New("method name is longer than 1024 characters")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`$()<>@,;:\"/[]?={}#+`, c) >= 0 {
			return fmt.Errorf("method name %q: character %q is not allowed (use printable ASCII without $()<>@,;:\\\"/[]?={}#+ and spaces)", name, rune(c))
		}
	}
	return nil
}

// escape percent-encodes all but ALPHA, DIGIT and "-_.~" (upper-case hex),
// so request ids and property bags never contain MQTT wildcards or the
// query's own separators.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
