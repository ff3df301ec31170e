package hubd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/mqttproto"
)

// TestPersistentSessionReconnect: a device that reconnects with clean
// session 0 and sends no SUBSCRIBE (what the Azure device SDK does when it
// renews its SAS token) still gets method calls and desired patches, in
// the "$iothub/..." form it subscribed with; a clean-session reconnect
// gets neither until it subscribes again.
func TestPersistentSessionReconnect(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 30*time.Second)
	e := newHostileEnv(ctx, t)
	c := e.h.Client()
	first := e.dial(t, e.honest("eve"))
	if first.code != 0 {
		t.Fatalf("CONNACK %d", first.code)
	}
	first.subscribe(t, 0, mqttproto.MethodsSubscription, mqttproto.DesiredSubscription, mqttproto.TwinResSubscription)
	waitConnection(ctx, t, c, "eve", "Connected")
	first.c.Disconnect(100)
	waitConnection(ctx, t, c, "eve", "Disconnected")

	again := e.dial(t, e.honest("eve")) // a fresh token, no SUBSCRIBE
	if again.code != 0 {
		t.Fatalf("reconnect: CONNACK %d", again.code)
	}
	// The registry says Connected once the broker has the session
	// restored (the CONNACK comes a moment before).
	waitConnection(ctx, t, c, "eve", "Connected")
	answered := make(chan error, 1)
	go func() {
		r, err := c.InvokeMethod(ctx, "eve", &hub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 5})
		if err == nil && (r.Status != 201 || string(r.Payload) != `{"pong":true}`) {
			err = errUnexpected(r)
		}
		answered <- err
	}()
	req := again.next(t, "$iothub/methods/POST/ping/")
	again.reply(req.topic, "201", `{"pong":true}`)
	if err := <-answered; err != nil {
		t.Errorf("method call after a clean-session-0 reconnect: %v", err)
	}
	_, err := c.UpdateTwin(ctx, "eve", &hub.TwinPatch{Properties: &hub.Properties{Desired: map[string]any{"mode": "day"}}}, "*")
	must(t, "update twin", err)
	if d := again.next(t, "$iothub/twin/PATCH/properties/desired/"); !strings.Contains(d.payload, `"mode":"day"`) {
		t.Errorf("desired patch after reconnect: %+v", d)
	}
	again.roundTrip(t) // twin responses still subscribed too
	again.c.Disconnect(100)
	waitConnection(ctx, t, c, "eve", "Disconnected")

	// Clean session: the subscriptions are gone.
	fresh := e.dialClean(t, e.honest("eve"))
	if fresh.code != 0 {
		t.Fatalf("clean reconnect: CONNACK %d", fresh.code)
	}
	_, err = c.InvokeMethod(ctx, "eve", &hub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: 5})
	wantCode(t, "method call to a clean session without subscriptions", err, hub.CodeDeviceNotOnline)
}

type unexpected struct{ r *hub.MethodResponse }

func (u unexpected) Error() string { return "unexpected answer " + string(u.r.Payload) }

func errUnexpected(r *hub.MethodResponse) error { return unexpected{r} }

// waitConnection waits until the registry shows the device's connection
// state as want.
func waitConnection(ctx context.Context, t *testing.T, c hub.Client, id, want string) {
	t.Helper()
	waitTwin(ctx, t, c, id, func(tw *hub.Twin) bool { return tw.ConnectionState == want })
}
