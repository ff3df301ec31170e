package broker

import "testing"

// TestModule connects a module (client id "{deviceId}/{moduleId}") beside
// its device: it is online on its own, receives the method requests the
// hub publishes on its scoped topics "devices/{deviceId}/{moduleId}/...",
// which its device does not see (nor it the device's), answers them, and
// sends telemetry on Azure's module topic, which a device cannot forge.
func TestModule(t *testing.T) {
	h := start(t)
	const methods = "$iothub/methods/POST/#"
	responses := inbox(t, h.b, "devices/+/+/$iothub/methods/res/#")
	telemetry := inbox(t, h.b, "devices/+/modules/+/messages/events/#")

	d := h.mustConnect(t, "d1")
	d.mustSubscribe(t, methods)
	m := h.mustConnect(t, "d1/m1")
	m.mustSubscribe(t, methods)
	h.ev.expect(t, "connected d1", "subscribed d1 "+methods, "connected d1/m1", "subscribed d1/m1 "+methods)
	if !h.b.Online("d1/m1", methods) {
		t.Fatal("module not online")
	}

	if err := h.b.Publish("devices/d1/m1/$iothub/methods/POST/reboot/?$rid=1", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := h.b.Publish("devices/d1/$iothub/methods/POST/reboot/?$rid=2", []byte(`{"b":2}`)); err != nil {
		t.Fatal(err)
	}
	if got, want := m.next(t), (message{"$iothub/methods/POST/reboot/?$rid=1", `{"a":1}`}); got != want {
		t.Errorf("module got %+v, want %+v", got, want)
	}
	// Messages to d1 arrive in order: the module's would come first.
	if got, want := d.next(t), (message{"$iothub/methods/POST/reboot/?$rid=2", `{"b":2}`}); got != want {
		t.Errorf("device got %+v, want %+v (only its own request)", got, want)
	}

	m.publish(t, "$iothub/methods/res/200/?$rid=1", 0, false, `{"ok":true}`)
	if got, want := recv(t, responses), (message{"devices/d1/m1/$iothub/methods/res/200/?$rid=1", `{"ok":true}`}); got != want {
		t.Errorf("hub got %+v, want %+v", got, want)
	}

	d.publish(t, "devices/d1/modules/m1/messages/events/forged", 1, false, "forged")
	m.publish(t, "devices/d1/modules/m1/messages/events/%24.ct=application%2Fjson", 1, false, `{"t":1}`)
	if got, want := recv(t, telemetry), (message{"devices/d1/modules/m1/messages/events/%24.ct=application%2Fjson", `{"t":1}`}); got != want {
		t.Errorf("hub got %+v, want %+v (the device's forged one dropped)", got, want)
	}

	h.b.Kick("d1/m1")
	m.waitLost(t)
	if h.b.Online("d1/m1", methods) || !h.b.Online("d1", methods) {
		t.Error("kicking the module should leave it offline and its device online")
	}
}
