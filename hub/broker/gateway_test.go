package broker

import (
	"errors"
	"testing"

	"github.com/iotjobs/iotjobs/hub/mqttproto"
)

// startGateways is start with gateways enabled: the password is
// "gw-key", and device "disabled" may not be played.
func startGateways(t *testing.T) *harness {
	t.Helper()
	return startWith(t, func(c *Config) {
		c.AuthenticateGateway = func(name, _ string, password []byte) error {
			if string(password) != "gw-key" {
				return errors.New("bad policy key")
			}
			return nil
		}
		c.DeviceAllowed = func(id string) error {
			if id == "disabled" {
				return errors.New("disabled")
			}
			return nil
		}
	})
}

func gwOpts(name string) []dialOpt {
	return []dialOpt{username("localhost/$gateway/" + name + "/?api-version=2021-04-12"), password("gw-key"), clean}
}

const anyMethods = "devices/+/$iothub/methods/POST/#"

// TestGateway: a gateway plays the devices it announces, and only those:
// it receives their hub-to-device messages, its device-to-hub messages for
// them reach the hub, and its disconnect takes them offline.
func TestGateway(t *testing.T) {
	h := startGateways(t)
	replies := inbox(t, h.b, "devices/+/$iothub/methods/res/#")
	gw := h.mustConnect(t, "$gateway/sim", gwOpts("sim")...)
	codes := gw.subscribe(t, map[string]byte{anyMethods: 2, "#": 0, "devices/+/messages/events/#": 0, "devices/g1/$iothub/twin/res/#": 0})
	if codes[anyMethods] != 1 || codes["#"] != 0x80 || codes["devices/+/messages/events/#"] != 0x80 || codes["devices/g1/$iothub/twin/res/#"] != 0 {
		t.Errorf("SUBACK codes %v", codes)
	}
	h.ev.none(t) // a gateway is no device

	for _, id := range []string{"g1", "g2", "disabled"} {
		gw.publish(t, "devices/"+id+"/presence", 1, false, string(mqttproto.PresencePayload([]string{mqttproto.MethodsSubscription}, "")))
	}
	h.ev.expect(t, "connected g1", "subscribed g1 "+mqttproto.MethodsSubscription, "connected g2", "subscribed g2 "+mqttproto.MethodsSubscription)
	if !h.b.Online("g1", mqttproto.MethodsSubscription) || h.b.Online("g1", mqttproto.DesiredSubscription) || h.b.Online("disabled", mqttproto.MethodsSubscription) {
		t.Error("Online does not follow the announcements")
	}

	// Only announced devices' messages reach the gateway.
	for _, id := range []string{"g3", "disabled", "g1"} {
		if err := h.b.Publish("devices/"+id+"/$iothub/methods/POST/m/?$rid=1", []byte(id)); err != nil {
			t.Fatal(err)
		}
	}
	if m := gw.next(t); m.topic != "devices/g1/$iothub/methods/POST/m/?$rid=1" {
		t.Errorf("gateway got %+v, want only g1's request", m)
	}
	// Its answers for announced devices reach the hub; others are dropped.
	gw.publish(t, "devices/g3/$iothub/methods/res/200/?$rid=1", 1, false, "forged")
	gw.publish(t, "devices/g2/$iothub/methods/POST/m/?$rid=9", 1, false, "wrong direction")
	gw.publish(t, "devices/g1/$iothub/methods/res/200/?$rid=1", 1, false, "ok")
	if m := recv(t, replies); m != (message{"devices/g1/$iothub/methods/res/200/?$rid=1", "ok"}) {
		t.Errorf("hub got %+v", m)
	}

	// Withdrawing, and the gateway's end.
	gw.publish(t, "devices/g2/presence", 1, false, "")
	h.ev.expect(t, "disconnected g2")
	gw.c.Disconnect(100)
	h.ev.expect(t, "disconnected g1")
	if h.b.Online("g1", mqttproto.MethodsSubscription) {
		t.Error("online after its gateway left")
	}
	h.ev.none(t)
}

// TestGatewayAuth: gateways need the policy key, and none are accepted
// without AuthenticateGateway.
func TestGatewayAuth(t *testing.T) {
	h := startGateways(t)
	if d := h.connect(t, "$gateway/x", append(gwOpts("x"), password("wrong"))...); d.tok.ReturnCode() != 5 {
		t.Errorf("wrong key: CONNACK %d, want 5", d.tok.ReturnCode())
	}
	if d := h.connect(t, "$gateway/x", gwOpts("y")...); d.tok.ReturnCode() != 5 {
		t.Errorf("username names another gateway: CONNACK %d, want 5", d.tok.ReturnCode())
	}
	if d := h.connect(t, "$gateway/", gwOpts("")...); d.tok.ReturnCode() != 2 {
		t.Errorf("no gateway name: CONNACK %d, want 2", d.tok.ReturnCode())
	}
	plain := start(t)
	if d := plain.connect(t, "$gateway/x", gwOpts("x")...); d.tok.ReturnCode() != 5 {
		t.Errorf("gateways not enabled: CONNACK %d, want 5", d.tok.ReturnCode())
	}
}

// TestGatewayTakeover: a device's own connection takes over from the
// gateway that played it.
func TestGatewayTakeover(t *testing.T) {
	h := startGateways(t)
	gw := h.mustConnect(t, "$gateway/sim", gwOpts("sim")...)
	gw.mustSubscribe(t, anyMethods)
	gw.publish(t, "devices/d1/presence", 1, false, string(mqttproto.PresencePayload([]string{mqttproto.MethodsSubscription}, "")))
	h.ev.expect(t, "connected d1", "subscribed d1 "+mqttproto.MethodsSubscription)
	own := h.mustConnect(t, "d1")
	own.mustSubscribe(t, mqttproto.MethodsSubscription)
	h.ev.expect(t, "connected d1", "subscribed d1 "+mqttproto.MethodsSubscription)
	if err := h.b.Publish("devices/d1/$iothub/methods/POST/m/?$rid=2", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if m := own.next(t); m.topic != "$iothub/methods/POST/m/?$rid=2" {
		t.Errorf("device got %+v", m)
	}
	select {
	case m := <-gw.msgs:
		t.Errorf("the gateway still got %+v", m)
	default:
	}
	gw.c.Disconnect(100) // no longer its device: no event
	own.c.Disconnect(100)
	h.ev.expect(t, "disconnected d1")
}
