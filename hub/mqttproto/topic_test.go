package mqttproto

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

var topicCases = []struct {
	name    string
	topic   string
	want    Message
	wantErr bool
}{
	{name: "method request", topic: "$iothub/methods/POST/reboot/?$rid=1",
		want: Message{Kind: MethodRequest, Method: "reboot", RID: "1"}},
	{name: "method request without slash before query", topic: "$iothub/methods/POST/reboot?$rid=1",
		want: Message{Kind: MethodRequest, Method: "reboot", RID: "1"}},
	{name: "method response", topic: "$iothub/methods/res/200/?$rid=abc",
		want: Message{Kind: MethodResponse, Status: 200, RID: "abc"}},
	{name: "method response negative status", topic: "$iothub/methods/res/-1/?$rid=abc",
		want: Message{Kind: MethodResponse, Status: -1, RID: "abc"}},
	{name: "twin get", topic: "$iothub/twin/GET/?$rid=543444ab-dc0d-4822-a697-3d795e684786",
		want: Message{Kind: TwinGet, RID: "543444ab-dc0d-4822-a697-3d795e684786"}},
	{name: "twin response with version", topic: "$iothub/twin/res/204/?$rid=7&$version=12",
		want: Message{Kind: TwinResponse, Status: 204, RID: "7", Version: 12, HasVersion: true}},
	{name: "query in any order", topic: "$iothub/twin/res/204/?$version=12&$rid=7",
		want: Message{Kind: TwinResponse, Status: 204, RID: "7", Version: 12, HasVersion: true}},
	{name: "percent-encoded names and rid", topic: "$iothub/twin/res/200/?%24rid=a%20b%2Bc",
		want: Message{Kind: TwinResponse, Status: 200, RID: "a b+c"}},
	{name: "unknown parameters ignored", topic: "$iothub/twin/GET/?x=1&$rid=r&",
		want: Message{Kind: TwinGet, RID: "r"}},
	{name: "reported patch", topic: "$iothub/twin/PATCH/properties/reported/?$rid=85e3&$version=3",
		want: Message{Kind: ReportedPatch, RID: "85e3", Version: 3, HasVersion: true}},
	{name: "desired patch", topic: "$iothub/twin/PATCH/properties/desired/?$version=8",
		want: Message{Kind: DesiredPatch, Version: 8, HasVersion: true}},
	{name: "telemetry node", topic: "devices/dev1/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&alert=no",
		want: Message{Kind: Telemetry, DeviceID: "dev1", Properties: map[string]string{"$.ct": "application/json", "$.ce": "utf-8", "alert": "no"}}},
	{name: "telemetry no bag", topic: "devices/dev1/messages/events/",
		want: Message{Kind: Telemetry, DeviceID: "dev1", Properties: map[string]string{}}},
	{name: "telemetry no slash", topic: "devices/dev1/messages/events",
		want: Message{Kind: Telemetry, DeviceID: "dev1", Properties: map[string]string{}}},
	{name: "telemetry key without value", topic: "devices/d/messages/events/flag",
		want: Message{Kind: Telemetry, DeviceID: "d", Properties: map[string]string{"flag": ""}}},
	{name: "module telemetry", topic: "devices/d/modules/m/messages/events/a=1",
		want: Message{Kind: Telemetry, DeviceID: "d/m", Properties: map[string]string{"a": "1"}}},
	{name: "module telemetry without module id", topic: "devices/d/modules//messages/events/", wantErr: true},
	{name: "missing rid", topic: "$iothub/methods/POST/reboot/", wantErr: true},
	{name: "empty rid", topic: "$iothub/twin/GET/?$rid=", wantErr: true},
	{name: "duplicate rid", topic: "$iothub/twin/GET/?$rid=1&$rid=2", wantErr: true},
	{name: "status not integer", topic: "$iothub/methods/res/ok/?$rid=1", wantErr: true},
	{name: "status missing", topic: "$iothub/twin/res/?$rid=1", wantErr: true},
	{name: "status extra segment", topic: "$iothub/twin/res/200/x/?$rid=1", wantErr: true},
	{name: "version not integer", topic: "$iothub/twin/PATCH/properties/desired/?$version=v1", wantErr: true},
	{name: "bad escape", topic: "$iothub/twin/GET/?$rid=%zz", wantErr: true},
	{name: "method name missing", topic: "$iothub/methods/POST/?$rid=1", wantErr: true},
	{name: "method name with slash", topic: "$iothub/methods/POST/a/b/?$rid=1", wantErr: true},
	{name: "unknown $iothub topic", topic: "$iothub/twin/PUT/?$rid=1", wantErr: true},
	{name: "c2d is not device-published", topic: "devices/d/messages/devicebound/x", wantErr: true},
	{name: "events prefix only", topic: "devices/d/messages/eventsX", wantErr: true},
	{name: "empty", topic: "", wantErr: true},
	{name: "bad property escape", topic: "devices/d/messages/events/a=%zz", wantErr: true},
}

func TestParseTopic(t *testing.T) {
	for _, tc := range topicCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTopic(tc.topic)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalMessage(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseTopicUnknown(t *testing.T) {
	_, err := ParseTopic("foo/bar")
	if !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("err = %v, want ErrUnknownTopic", err)
	}
}

func equalMessage(a, b Message) bool {
	return a.Kind == b.Kind && a.Method == b.Method && a.Status == b.Status && a.RID == b.RID &&
		a.Version == b.Version && a.HasVersion == b.HasVersion && a.DeviceID == b.DeviceID &&
		maps.Equal(a.Properties, b.Properties)
}

func TestBuildersRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		topic string
		want  Message
	}{
		{"method request", MethodRequestTopic("lockDoor", "42"), Message{Kind: MethodRequest, Method: "lockDoor", RID: "42"}},
		{"method request odd rid", MethodRequestTopic("m", "a/b#c+d&e=f g"), Message{Kind: MethodRequest, Method: "m", RID: "a/b#c+d&e=f g"}},
		{"method response", MethodResponseTopic(500, "x"), Message{Kind: MethodResponse, Status: 500, RID: "x"}},
		{"twin get", TwinGetTopic("r1"), Message{Kind: TwinGet, RID: "r1"}},
		{"reported", ReportedPatchTopic("r2"), Message{Kind: ReportedPatch, RID: "r2"}},
		{"twin res no version", TwinResponseTopic(200, "r3", 0), Message{Kind: TwinResponse, Status: 200, RID: "r3"}},
		{"twin res version", TwinResponseTopic(204, "r4", 9), Message{Kind: TwinResponse, Status: 204, RID: "r4", Version: 9, HasVersion: true}},
		{"desired", DesiredPatchTopic(8), Message{Kind: DesiredPatch, Version: 8, HasVersion: true}},
		{"telemetry", TelemetryTopic("dev1", map[string]string{"$.ct": "application/json", "a b": "c&d=e"}),
			Message{Kind: Telemetry, DeviceID: "dev1", Properties: map[string]string{"$.ct": "application/json", "a b": "c&d=e"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.ContainsAny(tc.topic, "#+") {
				t.Fatalf("topic %q contains an MQTT wildcard", tc.topic)
			}
			got, err := ParseTopic(tc.topic)
			if err != nil {
				t.Fatal(err)
			}
			if !equalMessage(got, tc.want) {
				t.Fatalf("%q: got %+v, want %+v", tc.topic, got, tc.want)
			}
		})
	}
}

func TestExactTopics(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{MethodRequestTopic("reboot", "1"), "$iothub/methods/POST/reboot/?$rid=1"},
		{MethodResponseTopic(200, "1"), "$iothub/methods/res/200/?$rid=1"},
		{TwinGetTopic("u"), "$iothub/twin/GET/?$rid=u"},
		{ReportedPatchTopic("u"), "$iothub/twin/PATCH/properties/reported/?$rid=u"},
		{TwinResponseTopic(204, "u", 5), "$iothub/twin/res/204/?$rid=u&$version=5"},
		{TwinResponseTopic(200, "u", 0), "$iothub/twin/res/200/?$rid=u"},
		{DesiredPatchTopic(8), "$iothub/twin/PATCH/properties/desired/?$version=8"},
		{TelemetryTopic("dev1", map[string]string{"$.ct": "application/json", "$.ce": "utf-8", "alert": "no"}),
			"devices/dev1/messages/events/%24.ce=utf-8&%24.ct=application%2Fjson&alert=no"},
		{C2DSubscription("d"), "devices/d/messages/devicebound/#"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestScope(t *testing.T) {
	for _, tc := range []struct {
		name, id, device, scoped string
	}{
		{"methods", "dev1", "$iothub/methods/POST/reboot/?$rid=1", "devices/dev1/$iothub/methods/POST/reboot/?$rid=1"},
		{"twin", "a.b-c", "$iothub/twin/res/200/?$rid=1", "devices/a.b-c/$iothub/twin/res/200/?$rid=1"},
		{"filter", "d", MethodsSubscription, "devices/d/$iothub/methods/POST/#"},
		{"telemetry unchanged", "d", "devices/d/messages/events/a=b", "devices/d/messages/events/a=b"},
		{"module methods", "d/m", "$iothub/methods/POST/reboot/?$rid=1", "devices/d/m/$iothub/methods/POST/reboot/?$rid=1"},
		{"module telemetry unchanged", "d/m", "devices/d/modules/m/messages/events/a=b", "devices/d/modules/m/messages/events/a=b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Scoped(tc.id, tc.device)
			if s != tc.scoped {
				t.Fatalf("Scoped = %q, want %q", s, tc.scoped)
			}
			id, dt, ok := Unscope(s)
			if !ok || id != tc.id || dt != tc.device {
				t.Fatalf("Unscope(%q) = %q, %q, %v", s, id, dt, ok)
			}
		})
	}
	for _, bad := range []string{"", "devices/", "devices//$iothub/x", "devices/d", "devices/d/other", "$iothub/twin/GET/?$rid=1", "x/d/$iothub/a",
		"devices/d//$iothub/x", "devices/d/m/x/$iothub/a", "devices/d/modules//messages/events", "devices/d/modules/m/other"} {
		if id, dt, ok := Unscope(bad); ok {
			t.Errorf("Unscope(%q) = %q, %q, true", bad, id, dt)
		}
	}
}

func TestDeviceFilterAllowed(t *testing.T) {
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{"$iothub/methods/POST/#", true},
		{"$iothub/twin/res/#", true},
		{"$iothub/twin/PATCH/properties/desired/#", true},
		{"$iothub/#", false},
		{"#", false},
		{"$iothub/methods/POST/+", false},
		{"$iothub/twin/PATCH/properties/reported/#", false},
		{"devices/d/messages/devicebound/#", false},
		{"devices/other/messages/devicebound/#", false},
	} {
		if got := DeviceFilterAllowed(tc.filter); got != tc.want {
			t.Errorf("DeviceFilterAllowed(%q) = %v", tc.filter, got)
		}
	}
	if !DeviceFilterAllowedFor("d", "devices/d/messages/devicebound/#") || DeviceFilterAllowedFor("d", "devices/e/messages/devicebound/#") ||
		!DeviceFilterAllowedFor("d", TwinResSubscription) || DeviceFilterAllowedFor("", "devices//messages/devicebound/#") {
		t.Error("DeviceFilterAllowedFor wrong")
	}
}

func TestValidMethodName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"reboot", true},
		{"lock-door_2.v1*!'~%&^|`", true},
		{"", false},
		{"a b", false},
		{"a\tb", false},
		{"caf\u00e9", false},
		{strings.Repeat("a", 1025), false},
	} {
		if err := ValidMethodName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidMethodName(%q) = %v", tc.name, err)
		}
	}
	for _, c := range `$()<>@,;:\"/[]?={}#+` {
		if err := ValidMethodName("a" + string(c)); err == nil {
			t.Errorf("method name with %q accepted", c)
		}
	}
}

func TestKindString(t *testing.T) {
	if MethodRequest.String() != "method request" || Kind(99).String() != "Kind(99)" {
		t.Error("Kind.String wrong")
	}
}

func FuzzParseTopic(f *testing.F) {
	for _, tc := range topicCases {
		f.Add(tc.topic)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		m, err := ParseTopic(topic)
		if err != nil {
			return
		}
		// Rebuilding a parsed request must give a topic that parses to the
		// same message.
		var again string
		switch m.Kind {
		case MethodRequest:
			again = MethodRequestTopic(m.Method, m.RID)
		case MethodResponse:
			again = MethodResponseTopic(m.Status, m.RID)
		case TwinGet:
			again = TwinGetTopic(m.RID)
		case Telemetry:
			again = TelemetryTopic(m.DeviceID, m.Properties)
		default:
			return
		}
		m2, err := ParseTopic(again)
		if err != nil || !equalMessage(m, m2) {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", topic, m, again, m2, err)
		}
		if id, _, ok := Unscope(Scoped("dev", again)); !ok || (m.Kind != Telemetry && id != "dev") {
			t.Fatalf("scope round trip of %q failed", again)
		}
	})
}
