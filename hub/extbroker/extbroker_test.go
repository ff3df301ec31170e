package extbroker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotjobs/iotjobs/hub/extbroker"
	"github.com/iotjobs/iotjobs/hub/extbroker/extbrokertest"
	"github.com/iotjobs/iotjobs/hub/mqttproto"
)

const wait = 5 * time.Second

type recorder struct {
	ch chan string
}

func (r *recorder) Connected(id string)     { r.ch <- "connected " + id }
func (r *recorder) Disconnected(id string)  { r.ch <- "disconnected " + id }
func (r *recorder) Subscribed(id, f string) { r.ch <- "subscribed " + id + " " + f }
func (r *recorder) BrokerUp(up bool) {
	if up {
		r.ch <- "broker up"
	} else {
		r.ch <- "broker down"
	}
}
func (r *recorder) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-r.ch:
			if got != w {
				t.Fatalf("event %q, want %q", got, w)
			}
		case <-time.After(wait):
			t.Fatalf("no event, want %q", w)
		}
	}
}

// device publishes on the broker as a device would, under root.
func device(t *testing.T, broker string) (paho.Client, string) {
	t.Helper()
	u, err := mqttproto.ParseBrokerURL(broker)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(u.Dial()).SetClientID("dev-" + strings.TrimSuffix(u.Root, "/")))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, u.Root
}

// dialHub joins the broker as the hub does, recording presence events.
func dialHub(t *testing.T, broker string) (*extbroker.Client, *recorder) {
	t.Helper()
	ev := &recorder{ch: make(chan string, 64)}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cl, err := extbroker.Dial(ctx, extbroker.Config{URL: broker, Events: ev, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl, ev
}

func publish(t *testing.T, c paho.Client, topic string, retained bool, payload []byte) {
	t.Helper()
	if tok := c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// TestPresence: a hub that joins later learns retained presence; updates,
// clearing, malformed announcements, another root and Kick behave.
func TestPresence(t *testing.T) {
	broker := extbrokertest.URL(t)
	dev, root := device(t, broker)
	presence := root + mqttproto.PresenceTopic("d1")
	publish(t, dev, presence, true, mqttproto.PresencePayload([]string{mqttproto.MethodsSubscription}, ""))
	t.Cleanup(func() { publish(t, dev, presence, true, nil) })
	// Another hub's device under another root is not ours.
	publish(t, dev, "elsewhere-"+root+mqttproto.PresenceTopic("d9"), false, mqttproto.PresencePayload([]string{mqttproto.MethodsSubscription}, ""))

	cl, ev := dialHub(t, broker)
	ev.expect(t, "connected d1", "subscribed d1 "+mqttproto.MethodsSubscription)
	if !cl.Online("d1", mqttproto.MethodsSubscription) || cl.Online("d1", mqttproto.DesiredSubscription) {
		t.Error("Online does not follow the announced subscriptions")
	}
	publish(t, dev, presence, true, mqttproto.PresencePayload([]string{mqttproto.MethodsSubscription, mqttproto.DesiredSubscription}, ""))
	ev.expect(t, "subscribed d1 "+mqttproto.DesiredSubscription)
	publish(t, dev, presence, false, []byte(`{"subscriptions":["#"]}`)) // ignored
	publish(t, dev, presence, true, nil)
	ev.expect(t, "disconnected d1")
	if cl.Online("d1", mqttproto.MethodsSubscription) {
		t.Error("online after its presence was cleared")
	}
	publish(t, dev, presence, true, mqttproto.PresencePayload([]string{mqttproto.MethodsSubscription}, ""))
	ev.expect(t, "connected d1", "subscribed d1 "+mqttproto.MethodsSubscription)
	cl.Kick("d1")
	ev.expect(t, "disconnected d1")
	if cl.Online("d1", mqttproto.MethodsSubscription) {
		t.Error("online after Kick")
	}
	select {
	case e := <-ev.ch:
		t.Errorf("unexpected event %q", e)
	default:
	}

	// Messages to and from devices travel under the root.
	// Two handlers on one filter (the hub's bus and a benchmark's
	// counter) both get each message.
	got := make(chan string, 1)
	also := make(chan string, 1)
	for _, ch := range []chan string{got, also} {
		if err := cl.Subscribe("devices/+/$iothub/methods/res/#", func(topic string, _ []byte) { ch <- topic }); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, dev, root+"devices/d1/$iothub/methods/res/200/?$rid=1", false, []byte("{}"))
	select {
	case topic := <-got:
		if topic != "devices/d1/$iothub/methods/res/200/?$rid=1" {
			t.Errorf("handler got %q, want the topic without the root", topic)
		}
	case <-time.After(wait):
		t.Fatal("the hub's subscription saw nothing")
	}
	select {
	case <-also:
	case <-time.After(wait):
		t.Fatal("the second handler of the filter saw nothing")
	}
}

// TestGatewayPresence: devices a gateway plays are online only while the
// gateway's own presence is, whatever order the retained messages come in.
func TestGatewayPresence(t *testing.T) {
	broker := extbrokertest.URL(t)
	dev, root := device(t, broker)
	gwTopic := root + mqttproto.GatewayPresenceTopic("sim")
	ann := mqttproto.PresencePayload([]string{mqttproto.MethodsSubscription}, "sim")
	publish(t, dev, root+mqttproto.PresenceTopic("m1"), true, ann)
	t.Cleanup(func() { publish(t, dev, root+mqttproto.PresenceTopic("m1"), true, nil) })

	cl, ev := dialHub(t, broker)
	if cl.Online("m1", mqttproto.MethodsSubscription) {
		t.Error("online before its gateway is")
	}
	publish(t, dev, gwTopic, true, []byte("up"))
	t.Cleanup(func() { publish(t, dev, gwTopic, true, nil) })
	ev.expect(t, "connected m1", "subscribed m1 "+mqttproto.MethodsSubscription)
	publish(t, dev, root+mqttproto.PresenceTopic("m2"), false, ann)
	ev.expect(t, "connected m2", "subscribed m2 "+mqttproto.MethodsSubscription)
	// The gateway's Will: both go, though m1's announcement stays retained.
	publish(t, dev, gwTopic, true, nil)
	got := map[string]bool{}
	for range 2 {
		select {
		case e := <-ev.ch:
			got[e] = true
		case <-time.After(wait):
			t.Fatal("missing disconnect")
		}
	}
	if !got["disconnected m1"] || !got["disconnected m2"] {
		t.Errorf("events %v", got)
	}
	if cl.Online("m1", mqttproto.MethodsSubscription) {
		t.Error("online after its gateway left")
	}
}
