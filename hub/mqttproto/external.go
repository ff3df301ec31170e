package mqttproto

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// On an external broker the hub cannot see connections or subscriptions,
// so each device announces itself: once subscribed, it publishes, retained,
// its subscriptions on its presence topic; its Will (retained, empty)
// and its clean disconnect (the same) clear it. Retained, the announcement
// reaches a hub that starts later, too. A broker ACL that confines a
// device to "devices/{id}/#" confines its presence as well.

// PresenceTopic is the device-scoped topic of a device's presence.
func PresenceTopic(deviceID string) string { return devicesPrefix + deviceID + "/presence" }

// PresenceFilter matches every device's presence topic.
const PresenceFilter = "devices/+/presence"

// A gateway plays many devices over one connection. Its own presence
// topic (retained, cleared by its Will) stands for all of them: devices it
// announced name it, and when it goes, they go too, even though their
// own retained announcements stay behind.

// GatewayPresenceTopic is the topic of a gateway's presence.
func GatewayPresenceTopic(name string) string { return "gateways/" + name + "/presence" }

// GatewayPresenceFilter matches every gateway's presence topic.
const GatewayPresenceFilter = "gateways/+/presence"

// Presence is a device's announcement: its subscriptions (device-side
// form, e.g. MethodsSubscription) and, for a device played by a gateway,
// the gateway's name.
type Presence struct {
	Subscriptions []string `json:"subscriptions"`
	Gateway       string   `json:"gateway,omitempty"`
}

// PresencePayload is the announcement of a device online with the given
// subscriptions, played by gateway ("" for a device on its own
// connection).
func PresencePayload(subscriptions []string, gateway string) []byte {
	b, _ := json.Marshal(Presence{Subscriptions: subscriptions, Gateway: gateway}) // cannot fail
	return b
}

// ParsePresence reads a presence message: an empty payload means offline;
// otherwise the device's subscriptions, each one of the device-side
// filters a device may use (others are an error: a device cannot claim
// to receive what the hub would not send it), sorted and without
// repeats.
func ParsePresence(b []byte) (p Presence, online bool, err error) {
	if len(b) == 0 {
		return Presence{}, false, nil
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return Presence{}, false, fmt.Errorf("presence: %w", err)
	}
	for _, s := range p.Subscriptions {
		if !DeviceFilterAllowed(s) {
			return Presence{}, false, fmt.Errorf("presence: subscription %q is not a device filter", s)
		}
	}
	if p.Gateway != "" && strings.ContainsAny(p.Gateway, "/+#") {
		return Presence{}, false, fmt.Errorf("presence: gateway name %q may not contain / + #", p.Gateway)
	}
	slices.Sort(p.Subscriptions)
	p.Subscriptions = slices.Compact(p.Subscriptions)
	return p, true, nil
}

// BrokerURL is where an external broker is and how to join it:
// mqtt://[user[:password]@]host:port[/root] or mqtts://... The optional
// root prefixes every topic, so that several hubs (or test runs) can share
// one broker.
type BrokerURL struct {
	TLS      bool
	Host     string // host:port
	Username string
	Password string
	Root     string // "" or "name/"
}

// ParseBrokerURL parses an external broker URL.
func ParseBrokerURL(s string) (BrokerURL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return BrokerURL{}, fmt.Errorf("broker URL %q: %w", s, err)
	}
	var b BrokerURL
	switch u.Scheme {
	case "mqtt", "tcp":
	case "mqtts", "ssl", "tls":
		b.TLS = true
	default:
		return BrokerURL{}, fmt.Errorf("broker URL %q: scheme must be mqtt:// or mqtts://", s)
	}
	if u.Host == "" {
		return BrokerURL{}, fmt.Errorf("broker URL %q: no host", s)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, map[bool]string{false: "1883", true: "8883"}[b.TLS]
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || net.ParseIP(host) == nil && !hostName(host) {
		return BrokerURL{}, fmt.Errorf("broker URL %q: want host:port", s)
	}
	b.Host = net.JoinHostPort(host, port)
	if u.User != nil {
		b.Username = u.User.Username()
		b.Password, _ = u.User.Password()
	}
	if root := strings.Trim(u.Path, "/"); root != "" {
		if strings.ContainsAny(root, "+#") {
			return BrokerURL{}, fmt.Errorf("broker URL %q: the topic root may not contain + or #", s)
		}
		b.Root = root + "/"
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.Contains(s, "#") {
		return BrokerURL{}, fmt.Errorf("broker URL %q: no query or fragment allowed", s)
	}
	return b, nil
}

// Dial is the address paho dials: tcp://host:port or ssl://host:port.
func (b BrokerURL) Dial() string {
	if b.TLS {
		return "ssl://" + b.Host
	}
	return "tcp://" + b.Host
}

// String is the URL without its password.
func (b BrokerURL) String() string {
	u := url.URL{Scheme: "mqtt", Host: b.Host, Path: "/" + strings.TrimSuffix(b.Root, "/")}
	if b.TLS {
		u.Scheme = "mqtts"
	}
	if b.Username != "" {
		u.User = url.User(b.Username)
	}
	if b.Root == "" {
		u.Path = ""
	}
	return u.String()
}

// hostName reports whether s is a DNS host name (letters, digits, '-',
// '_' and dots).
func hostName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
