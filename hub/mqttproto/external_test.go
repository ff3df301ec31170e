package mqttproto

import (
	"slices"
	"strings"
	"testing"
)

func TestParseBrokerURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want BrokerURL
		str  string
		err  string
	}{
		{in: "mqtt://127.0.0.1:1883", want: BrokerURL{Host: "127.0.0.1:1883"}, str: "mqtt://127.0.0.1:1883"},
		{in: "mqtt://broker", want: BrokerURL{Host: "broker:1883"}, str: "mqtt://broker:1883"},
		{in: "mqtts://broker", want: BrokerURL{TLS: true, Host: "broker:8883"}, str: "mqtts://broker:8883"},
		{in: "mqtt://hub:s3cret@h:1/site-a/", want: BrokerURL{Host: "h:1", Username: "hub", Password: "s3cret", Root: "site-a/"}, str: "mqtt://hub@h:1/site-a"},
		{in: "tcp://h:1/a/b", want: BrokerURL{Host: "h:1", Root: "a/b/"}, str: "mqtt://h:1/a/b"},
		{in: "http://h:1", err: "scheme"},
		{in: "mqtt://", err: "no host"},
		{in: "mqtt://h:1/a/#", err: "no query or fragment"},
		{in: "mqtt://h:1/a+b", err: "+ or #"},
		{in: "mqtt://h:x", err: "invalid port"},
		{in: "mqtt://:0:", err: "host:port"},
		{in: "mqtt://[::1]:1883", want: BrokerURL{Host: "[::1]:1883"}, str: "mqtt://[::1]:1883"},
		{in: "mqtt://h:1?x=1", err: "no query"},
		{in: "::", err: "broker URL"},
	} {
		got, err := ParseBrokerURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("%q: %+v (%s), %v; want %+v (%s)", tc.in, got, got, err, tc.want, tc.str)
		}
		if strings.Contains(got.String(), "s3cret") {
			t.Errorf("%q: String() shows the password", tc.in)
		}
	}
}

func TestPresence(t *testing.T) {
	subs := []string{DesiredSubscription, MethodsSubscription, MethodsSubscription}
	p, up, err := ParsePresence(PresencePayload(subs, "sim-1"))
	if !up || err != nil || p.Gateway != "sim-1" || !slices.Equal(p.Subscriptions, []string{MethodsSubscription, DesiredSubscription}) && !slices.Equal(p.Subscriptions, []string{DesiredSubscription, MethodsSubscription}) {
		t.Errorf("round trip: %+v %v %v", p, up, err)
	}
	if _, up, err := ParsePresence(nil); up || err != nil {
		t.Errorf("empty payload: online %v, %v; want offline", up, err)
	}
	for _, bad := range []string{`{`, `{"subscriptions":["#"]}`, `{"subscriptions":["devices/x/messages/devicebound/#"]}`, `[]`, `{"gateway":"a/b"}`} {
		if _, up, err := ParsePresence([]byte(bad)); up || err == nil {
			t.Errorf("%s: online %v, err %v; want an error", bad, up, err)
		}
	}
	if got := PresenceTopic("d1"); got != "devices/d1/presence" {
		t.Errorf("PresenceTopic = %q", got)
	}
	if got := GatewayPresenceTopic("g"); got != "gateways/g/presence" {
		t.Errorf("GatewayPresenceTopic = %q", got)
	}
}

// FuzzParsePresence: any payload parses or fails cleanly, and what
// parses names only device filters.
func FuzzParsePresence(f *testing.F) {
	f.Add([]byte(`{"subscriptions":["$iothub/methods/POST/#"]}`))
	f.Add([]byte(``))
	f.Add([]byte(`{"subscriptions":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, up, err := ParsePresence(b)
		if err != nil && up {
			t.Fatal("online with an error")
		}
		for _, s := range p.Subscriptions {
			if !DeviceFilterAllowed(s) {
				t.Fatalf("accepted %q", s)
			}
		}
	})
}

// FuzzParseBrokerURL: any string parses or fails cleanly; what parses
// prints back without its password and parses again to the same broker.
func FuzzParseBrokerURL(f *testing.F) {
	f.Add("mqtt://u:p@h:1/root")
	f.Add("mqtts://h")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseBrokerURL(s)
		if err != nil {
			return
		}
		again, err := ParseBrokerURL(u.String())
		if err != nil {
			t.Fatalf("%q → %q does not parse: %v", s, u.String(), err)
		}
		again.Password = u.Password
		if again != u {
			t.Fatalf("%q → %+v → %q → %+v", s, u, u.String(), again)
		}
	})
}
