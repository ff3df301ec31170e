package broker

import (
	"slices"
	"strings"
	"testing"
)

func TestCanonicalFilter(t *testing.T) {
	for _, tc := range []struct {
		name, id, filter, want string
		short, ok              bool
	}{
		{"methods short", "d1", "$iothub/methods/POST/#", "devices/d1/$iothub/methods/POST/#", true, true},
		{"twin res short", "d1", "$iothub/twin/res/#", "devices/d1/$iothub/twin/res/#", true, true},
		{"desired short", "d1", "$iothub/twin/PATCH/properties/desired/#", "devices/d1/$iothub/twin/PATCH/properties/desired/#", true, true},
		{"methods canonical", "d1", "devices/d1/$iothub/methods/POST/#", "devices/d1/$iothub/methods/POST/#", false, true},
		{"devicebound", "d1", "devices/d1/messages/devicebound/#", "devices/d1/messages/devicebound/#", false, true},
		{"devicebound short form is not a thing", "d1", "$iothub/messages/devicebound/#", "", false, false},
		{"other device", "d1", "devices/d2/$iothub/methods/POST/#", "", false, false},
		{"device id prefix", "d1", "devices/d10/$iothub/methods/POST/#", "", false, false},
		{"wildcard device", "d1", "devices/+/$iothub/methods/POST/#", "", false, false},
		{"everything", "d1", "#", "", false, false},
		{"all iothub", "d1", "$iothub/#", "", false, false},
		{"own subtree", "d1", "devices/d1/#", "", false, false},
		{"single method", "d1", "$iothub/methods/POST/reboot", "", false, false},
		{"sys", "d1", "$SYS/#", "", false, false},
		{"empty", "d1", "", "", false, false},
		{"telemetry is not subscribable", "d1", "devices/d1/messages/events/#", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, short, ok := canonicalFilter(tc.id, tc.filter)
			if got != tc.want || short != tc.short || ok != tc.ok {
				t.Errorf("canonicalFilter(%q, %q) = %q, %v, %v; want %q, %v, %v", tc.id, tc.filter, got, short, ok, tc.want, tc.short, tc.ok)
			}
			if ok {
				if f := deviceForm(tc.id, got); short && f != tc.filter {
					t.Errorf("deviceForm(%q) = %q, want %q", got, f, tc.filter)
				}
				if rest, _ := scopedRest(got, tc.id); filterBit(rest) == 0 {
					t.Errorf("filterBit(%q) = 0 for an allowed filter", rest)
				}
			}
		})
	}
}

func TestCanonicalPublish(t *testing.T) {
	for _, tc := range []struct {
		name, id, topic, want string
		ok                    bool
	}{
		{"method response", "d1", "$iothub/methods/res/200/?$rid=1", "devices/d1/$iothub/methods/res/200/?$rid=1", true},
		{"twin get", "d1", "$iothub/twin/GET/?$rid=a", "devices/d1/$iothub/twin/GET/?$rid=a", true},
		{"reported", "d1", "$iothub/twin/PATCH/properties/reported/?$rid=a", "devices/d1/$iothub/twin/PATCH/properties/reported/?$rid=a", true},
		{"canonical method response", "d1", "devices/d1/$iothub/methods/res/200/?$rid=1", "devices/d1/$iothub/methods/res/200/?$rid=1", true},
		{"telemetry", "d1", "devices/d1/messages/events/%24.ct=application%2Fjson", "devices/d1/messages/events/%24.ct=application%2Fjson", true},
		{"telemetry bare", "d1", "devices/d1/messages/events", "devices/d1/messages/events", true},
		{"telemetry slash", "d1", "devices/d1/messages/events/", "devices/d1/messages/events/", true},
		{"forged method request", "d1", "$iothub/methods/POST/reboot/?$rid=1", "", false},
		{"forged desired", "d1", "$iothub/twin/PATCH/properties/desired/?$version=2", "", false},
		{"other device telemetry", "d1", "devices/d2/messages/events/", "", false},
		{"other device response", "d1", "devices/d2/$iothub/methods/res/200/?$rid=1", "", false},
		{"prefix device", "d1", "devices/d10/messages/events/", "", false},
		{"eventsx", "d1", "devices/d1/messages/eventsx", "", false},
		{"devicebound", "d1", "devices/d1/messages/devicebound/x", "", false},
		{"unknown", "d1", "hello", "", false},
		{"empty", "d1", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := canonicalPublish(tc.id, tc.topic)
			if got != tc.want || ok != tc.ok {
				t.Errorf("canonicalPublish(%q, %q) = %q, %v; want %q, %v", tc.id, tc.topic, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestTopicBit: which of a device's filters a topic the hub sends it falls
// under; its own device-to-hub topics, which its route also matches,
// fall under none.
func TestTopicBit(t *testing.T) {
	for _, tc := range []struct {
		name, rest string
		want       filterSet
	}{
		{"method request", "$iothub/methods/POST/m/?$rid=1", 1 << 0},
		{"twin response", "$iothub/twin/res/200/?$rid=1", 1 << 1},
		{"desired patch", "$iothub/twin/PATCH/properties/desired/?$version=2", 1 << 2},
		{"c2d", "messages/devicebound/a=b", 1 << 3},
		{"filter's own level", "$iothub/methods/POST", 1 << 0},
		{"method response", "$iothub/methods/res/200/?$rid=1", 0},
		{"twin get", "$iothub/twin/GET/?$rid=1", 0},
		{"reported", "$iothub/twin/PATCH/properties/reported/?$rid=1", 0},
		{"telemetry", "messages/events/x", 0},
		{"presence", "presence", 0},
		{"near miss", "$iothub/methods/POSTx/m", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := topicBit(tc.rest); got != tc.want {
				t.Errorf("topicBit(%q) = %b, want %b", tc.rest, got, tc.want)
			}
		})
	}
	if got, want := filterSet(0b1011).deviceForms("d1"), []string{"$iothub/methods/POST/#", "$iothub/twin/res/#", "devices/d1/messages/devicebound/#"}; !slices.Equal(got, want) {
		t.Errorf("deviceForms = %q, want %q", got, want)
	}
}

func TestUsernameMatches(t *testing.T) {
	for _, tc := range []struct {
		name, username, id string
		want               bool
	}{
		{"node sdk", "localhost/dev1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4%20(node)", "dev1", true},
		{"docs", "myhub.azure-devices.net/dev1/?api-version=2021-04-12", "dev1", true},
		{"no question mark", "myhub.azure-devices.net/dev1/api-version=2020-09-30", "dev1", true},
		{"nothing after", "localhost/dev1/", "dev1", true},
		{"host with port", "localhost:8884/dev1/?api-version=2021-04-12", "dev1", true},
		{"other device", "localhost/dev2/?api-version=2021-04-12", "dev1", false},
		{"device id prefix", "localhost/dev10/?api-version=2021-04-12", "dev1", false},
		{"module form", "localhost/dev1/mod1/?api-version=2021-04-12", "dev1", false},
		{"no host", "/dev1/?api-version=2021-04-12", "dev1", false},
		{"no trailing slash", "localhost/dev1", "dev1", false},
		{"bare id", "dev1", "dev1", false},
		{"empty", "", "dev1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := usernameMatches(tc.username, tc.id); got != tc.want {
				t.Errorf("usernameMatches(%q, %q) = %v, want %v", tc.username, tc.id, got, tc.want)
			}
		})
	}
}

func TestValidDeviceID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"dev1", true},
		{"Dev-1.a_b%c*d?e!f(g)h,i:j=k@l$m'n", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{"a+b", false},
		{"a#b", false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
		{inlineClientID, false},
	} {
		if got := validDeviceID(tc.id); got != tc.want {
			t.Errorf("validDeviceID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// FuzzTopics checks that hostile ids, filters and topics never panic and
// never yield a topic outside the device's own subtree.
func FuzzTopics(f *testing.F) {
	for _, s := range [][2]string{
		{"d1", "$iothub/methods/POST/#"},
		{"d1", "devices/d1/$iothub/methods/POST/#"},
		{"d1", "devices/d1/messages/events/a=b"},
		{"d1", "$iothub/methods/res/200/?$rid=1"},
		{"d1", "devices/d1"},
		{"d1", "devices/d1/"},
		{"", "devices//x"},
		{"d1", "localhost/d1/?api-version=1"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, id, topic string) {
		if !validDeviceID(id) {
			return
		}
		own := devicesPrefix + id + "/"
		if c, _, ok := canonicalFilter(id, topic); ok && !strings.HasPrefix(c, own) {
			t.Errorf("canonicalFilter(%q, %q) = %q, outside the device", id, topic, c)
		}
		if c, ok := canonicalPublish(id, topic); ok && !strings.HasPrefix(c, own) {
			t.Errorf("canonicalPublish(%q, %q) = %q, outside the device", id, topic, c)
		}
		_ = topicBit(topic)
		_ = deviceForm(id, topic)
		_ = usernameMatches(topic, id)
	})
}
