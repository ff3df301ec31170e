package broker

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"
)

// serveWebsocket serves h's broker over MQTT-over-WebSocket (plain HTTP)
// and returns the ws:// URL of its /$iothub/websocket path.
func serveWebsocket(t *testing.T, h *harness) string {
	t.Helper()
	srv := httptest.NewServer(h.b.WebsocketHandler())
	t.Cleanup(srv.Close)
	return "ws://" + srv.Listener.Addr().String() + "/$iothub/websocket"
}

// viaWebsocket dials url instead of the broker's TCP listener.
func viaWebsocket(url string) dialOpt {
	return func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker(url)
	}
}

func TestWebsocket(t *testing.T) {
	h := start(t)
	url := serveWebsocket(t, h)
	requests := inbox(t, h.b, "devices/+/$iothub/methods/res/#")
	telemetry := inbox(t, h.b, "devices/+/messages/events/#")

	d := h.mustConnect(t, "d1", viaWebsocket(url))
	d.mustSubscribe(t, "$iothub/methods/POST/#")
	h.ev.expect(t, "connected d1", "subscribed d1 $iothub/methods/POST/#")
	if !h.b.Online("d1", "$iothub/methods/POST/#") {
		t.Fatal("device on WebSocket not online")
	}

	// Larger than every buffer on the way (mochi's, gorilla's), so
	// packets span reads and messages.
	big := strings.Repeat("x", 10*bufferSize)
	for _, payload := range []string{`{"a":1}`, big} {
		if err := h.b.Publish("devices/d1/$iothub/methods/POST/reboot/?$rid=1", []byte(payload)); err != nil {
			t.Fatal(err)
		}
		if got, want := d.next(t), (message{"$iothub/methods/POST/reboot/?$rid=1", payload}); got != want {
			t.Fatalf("device got %.80v, want %.80v", got, want)
		}
		d.publish(t, "$iothub/methods/res/200/?$rid=1", 0, false, payload)
		if got, want := recv(t, requests), (message{"devices/d1/$iothub/methods/res/200/?$rid=1", payload}); got != want {
			t.Fatalf("hub got %.80v, want %.80v", got, want)
		}
	}
	// The hook's rules apply as on TCP: telemetry is routed to the hub,
	// another device's topics are not reachable.
	d.publish(t, "devices/d1/messages/events/", 1, false, `{"t":1}`)
	if got, want := recv(t, telemetry), (message{"devices/d1/messages/events/", `{"t":1}`}); got != want {
		t.Errorf("hub got %+v, want %+v", got, want)
	}
	if code := d.subscribe(t, map[string]byte{"devices/d2/$iothub/methods/POST/#": 0})["devices/d2/$iothub/methods/POST/#"]; code != 0x80 {
		t.Errorf("subscribe to another device's methods: SUBACK 0x%02x, want 0x80", code)
	}

	t.Run("wrong credentials", func(t *testing.T) {
		bad := h.connect(t, "d2", viaWebsocket(url), password("key-d3"))
		if got := bad.tok.ReturnCode(); got != 5 {
			t.Errorf("CONNACK %d, want 5 (err %v)", got, bad.tok.Error())
		}
	})
}

// TestWebsocketStream sends MQTT packets split across and combined within
// WebSocket messages, as the MQTT spec allows (§6).
func TestWebsocketStream(t *testing.T) {
	h := start(t)
	ws := dialWebsocket(t, serveWebsocket(t, h), "mqtt")
	connect := encode(t, packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: "d1",
			Keepalive:        60,
			UsernameFlag:     true,
			Username:         []byte("localhost/d1/?api-version=2021-04-12"),
			PasswordFlag:     true,
			Password:         []byte("key-d1"),
		},
	})
	pingreq := []byte{0xc0, 0x00}
	for _, msg := range [][]byte{connect[:3], append(connect[3:len(connect):len(connect)], pingreq...)} {
		if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	want := []byte{0x20, 0x02, 0x00, 0x00, 0xd0, 0x00} // CONNACK accepted, PINGRESP
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	for len(got) < len(want) {
		typ, p, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("after %x: %v", got, err)
		}
		if typ != websocket.BinaryMessage {
			t.Fatalf("message type %d, want binary", typ)
		}
		got = append(got, p...)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got %x, want CONNACK and PINGRESP %x", got, want)
	}
	h.ev.expect(t, "connected d1")

	t.Run("text message ends the connection", func(t *testing.T) {
		if err := ws.WriteMessage(websocket.TextMessage, pingreq); err != nil {
			t.Fatal(err)
		}
		h.ev.expect(t, "disconnected d1")
	})
}

func encode(t *testing.T, pk packets.Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func dialWebsocket(t *testing.T, url string, subprotocols ...string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: subprotocols, HandshakeTimeout: wait}
	ws, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	return ws
}

func TestWebsocketHandshake(t *testing.T) {
	h := start(t)
	url := serveWebsocket(t, h)
	for _, tc := range []struct {
		name         string
		subprotocols []string
		wantStatus   int
		wantProtocol string
	}{
		{"mqtt", []string{"mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		// The Azure C SDK offers "MQTT"; it gets its own spelling back.
		{"MQTT", []string{"MQTT"}, http.StatusSwitchingProtocols, "MQTT"},
		{"mqtt among others", []string{"chat", "mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{"no subprotocol", nil, http.StatusBadRequest, ""},
		{"another subprotocol", []string{"mqttv3.1"}, http.StatusBadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: tc.subprotocols, HandshakeTimeout: wait}
			ws, resp, err := d.Dial(url, nil)
			if ws != nil {
				defer ws.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if ws == nil {
				body, _ := io.ReadAll(resp.Body)
				if !strings.Contains(string(body), `subprotocol "mqtt"`) {
					t.Errorf("refusal %q does not name the subprotocol", body)
				}
				return
			}
			if got := ws.Subprotocol(); got != tc.wantProtocol {
				t.Errorf("subprotocol %q, want %q", got, tc.wantProtocol)
			}
		})
	}
	t.Run("not a websocket request", func(t *testing.T) {
		resp, err := http.Get(strings.Replace(url, "ws:", "http:", 1))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Errorf("status %d, want %d", resp.StatusCode, http.StatusUpgradeRequired)
		}
	})
}

// TestWebsocketClose checks that Close ends WebSocket connections, also one
// that has not sent CONNECT yet (it would otherwise hold Close for
// connectTimeout), and that the handler refuses connections afterwards.
func TestWebsocketClose(t *testing.T) {
	h := start(t)
	url := serveWebsocket(t, h)
	d := h.mustConnect(t, "d1", viaWebsocket(url))
	h.ev.expect(t, "connected d1")
	silent := dialWebsocket(t, url, "mqtt")

	closed := make(chan error, 1)
	go func() { closed <- h.b.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	d.waitLost(t)
	_ = silent.SetReadDeadline(time.Now().Add(wait))
	if _, _, err := silent.ReadMessage(); err == nil {
		t.Error("connection without CONNECT still open after Close")
	}

	d2 := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: wait}
	ws, resp, err := d2.Dial(url, nil)
	if ws != nil {
		ws.Close()
		t.Fatal("connection accepted after Close")
	}
	if resp == nil {
		t.Fatalf("no response: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want %d", resp.StatusCode, http.StatusServiceUnavailable)
	}
}
