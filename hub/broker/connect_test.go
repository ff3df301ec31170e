package broker

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Connect flags (MQTT 3.1.1 §3.1.2.3).
const (
	fReserved   = 0x01
	fClean      = 0x02
	fWill       = 0x04
	fWillQoS1   = 0x08
	fWillQoS2   = 0x10
	fWillRetain = 0x20
	fPassword   = 0x40
	fUsername   = 0x80
	fLogin      = fUsername | fPassword
)

// noConnack is the answer of a broker that closed the connection without
// sending a CONNACK.
const noConnack = -1

// field is a length-prefixed field: a UTF-8 string or binary data
// (MQTT 3.1.1 §1.5.3, §3.1.3), s as raw bytes.
func field(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// packet is a control packet: its first byte, the remaining length, then
// parts.
func packet(first byte, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	out := []byte{first}
	for n := len(body); ; {
		b := byte(n % 128)
		if n /= 128; n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// connect is a CONNECT with the given protocol name, level and connect
// flags, keep-alive 60 s, then payload as given.
func connect(name string, level, flags byte, payload ...[]byte) []byte {
	return packet(0x10, append([][]byte{field(name), {level, flags, 0, 60}}, payload...)...)
}

// deviceUser is the username an Azure device SDK sends for id.
func deviceUser(id string) string { return "localhost/" + id + "/?api-version=2021-04-12" }

// login is the client id, username and password fields of device id,
// whose password the harness accepts.
func login(id string) [][]byte {
	return [][]byte{field(id), field(deviceUser(id)), field("key-" + id)}
}

// withWill is login(id) with a Will topic and message between the client
// id and the username, where §3.1.3 puts them.
func withWill(id, topic, message string) [][]byte {
	l := login(id)
	return [][]byte{l[0], field(topic), field(message), l[1], l[2]}
}

// dialRaw opens a TLS connection to the broker with deadline wait.
func dialRaw(t *testing.T, h *harness) net.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", h.b.Addr(), h.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(wait))
	return c
}

// connack reads the broker's answer to a CONNECT: its return code, or
// noConnack if the broker closed the connection without one.
func connack(t *testing.T, c net.Conn) int {
	t.Helper()
	ack := make([]byte, 4)
	n, err := io.ReadFull(c, ack)
	switch {
	case n == 0 && err != nil && !isTimeout(err):
		return noConnack
	case err != nil:
		t.Fatalf("read CONNACK: got %x, %v", ack[:n], err)
	case ack[0] != 0x20 || ack[1] != 2:
		t.Fatalf("got %x, want a CONNACK", ack)
	}
	return int(ack[3])
}

// mustClose fails unless the broker closes the connection without
// sending anything more.
func mustClose(t *testing.T, c net.Conn) {
	t.Helper()
	b := make([]byte, 1)
	switch n, err := c.Read(b); {
	case n > 0:
		t.Fatalf("got %x after the CONNACK, want the connection closed", b)
	case isTimeout(err):
		t.Fatal("connection left open, want it closed")
	}
}

// mustPing fails unless the connection is open: PINGREQ gets PINGRESP.
func mustPing(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Write([]byte{0xc0, 0}); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, 2)
	if _, err := io.ReadFull(c, resp); err != nil || resp[0] != 0xd0 || resp[1] != 0 {
		t.Fatalf("PINGREQ got %x, %v; want PINGRESP", resp, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// connectCases are CONNECT packets as raw bytes, one rule of MQTT 3.1.1
// §3.1 (and §1.5.3 for its strings) broken per case, with the answer the
// spec requires: a malformed CONNECT is closed without a CONNACK
// ([MQTT-3.1.4-1]); an unsupported protocol level gets CONNACK 1
// ([MQTT-3.1.2-2]) and a refused client id CONNACK 2 ([MQTT-3.1.3-8],
// [MQTT-3.1.3-9]), each followed by a close; bad credentials get CONNACK 5
// (Azure's "not authorized"). Well-formed corner cases are accepted.
var connectCases = []struct {
	name string
	pkt  []byte
	want int // CONNACK return code, or noConnack
}{
	// Well-formed.
	{"accepted", connect("MQTT", 4, fLogin, login("ok1")...), 0},
	{"clean session", connect("MQTT", 4, fLogin|fClean, login("ok2")...), 0},
	{"will at QoS 0", connect("MQTT", 4, fLogin|fWill, withWill("ok3", "devices/ok3/messages/events/", "gone")...), 0},
	{"will at QoS 1", connect("MQTT", 4, fLogin|fWill|fWillQoS1, withWill("ok4", "devices/ok4/messages/events/", "gone")...), 0},
	{"will at QoS 2", connect("MQTT", 4, fLogin|fWill|fWillQoS2, withWill("ok5", "devices/ok5/messages/events/", "gone")...), 0},
	{"retained will", connect("MQTT", 4, fLogin|fWill|fWillRetain, withWill("ok6", "devices/ok6/messages/events/", "gone")...), 0},
	{"empty will message", connect("MQTT", 4, fLogin|fWill, withWill("ok7", "devices/ok7/messages/events/", "")...), 0},
	{"client id of 128 characters", connect("MQTT", 4, fLogin, login(longID)...), 0},
	{"wrong password", connect("MQTT", 4, fLogin, field("bad1"), field(deviceUser("bad1")), field("key-other")), 5},
	{"empty password", connect("MQTT", 4, fLogin, field("bad2"), field(deviceUser("bad2")), field("")), 5},
	{"no username or password", connect("MQTT", 4, 0, field("bad3")), 5},

	// [MQTT-3.1.0-1], [MQTT-2.2.2-2]: the first packet, and its fixed header.
	{"first packet not CONNECT", packet(0xc0), noConnack},
	{"fixed-header flags not 0", append([]byte{0x12}, connect("MQTT", 4, fLogin, login("fh")...)[1:]...), noConnack},

	// [MQTT-3.1.2-1], [MQTT-3.1.2-2]: protocol name and level.
	{"protocol name not MQTT", connect("MQTX", 4, fLogin, login("pn1")...), noConnack},
	{"protocol name in lower case", connect("mqtt", 4, fLogin, login("pn2")...), noConnack},
	{"MQTT 3.1", connect("MQIsdp", 3, fLogin, login("pl1")...), 1},
	{"MQTT 3.1 name at level 4", connect("MQIsdp", 4, fLogin, login("pl2")...), 1},
	{"level 3", connect("MQTT", 3, fLogin, login("pl3")...), 1},
	{"MQTT 5", connect("MQTT", 5, fLogin, append([][]byte{{0}}, login("pl4")...)...), 1},
	{"level 6", connect("MQTT", 6, fLogin, login("pl5")...), 1},

	// [MQTT-3.1.2-3]: the reserved flag.
	{"reserved flag set", connect("MQTT", 4, fLogin|fReserved, login("rf")...), noConnack},

	// [MQTT-3.1.2-11], [MQTT-3.1.2-13]: no Will, no Will QoS or retain.
	{"will QoS 1 without will flag", connect("MQTT", 4, fLogin|fWillQoS1, login("wq1")...), noConnack},
	{"will QoS 2 without will flag", connect("MQTT", 4, fLogin|fWillQoS2, login("wq2")...), noConnack},
	{"will retain without will flag", connect("MQTT", 4, fLogin|fWillRetain, login("wr")...), noConnack},
	// [MQTT-3.1.2-9], [MQTT-3.1.2-12], [MQTT-4.7.1-1], [MQTT-4.7.3-1]: a Will's fields.
	{"will QoS 3", connect("MQTT", 4, fLogin|fWill|fWillQoS1|fWillQoS2, withWill("wq3", "devices/wq3/messages/events/", "gone")...), noConnack},
	{"will flag without will fields", connect("MQTT", 4, fLogin|fWill, login("wf")...), noConnack},
	{"empty will topic", connect("MQTT", 4, fLogin|fWill, withWill("wt1", "", "gone")...), noConnack},
	{"will topic with #", connect("MQTT", 4, fLogin|fWill, withWill("wt2", "devices/wt2/#", "gone")...), noConnack},
	{"will topic with +", connect("MQTT", 4, fLogin|fWill, withWill("wt3", "devices/+/messages/events/", "gone")...), noConnack},

	// [MQTT-3.1.2-16]..[MQTT-3.1.2-22], [MQTT-3.1.3-1]: username and
	// password present exactly when flagged, in order, nothing after.
	{"password flag without username flag", connect("MQTT", 4, fPassword, field("up1"), field("key-up1")), noConnack},
	{"username flag without username", connect("MQTT", 4, fUsername, field("up2")), noConnack},
	{"password flag without password", connect("MQTT", 4, fLogin, field("up3"), field(deviceUser("up3"))), noConnack},
	{"username without username flag", connect("MQTT", 4, 0, field("up4"), field(deviceUser("up4"))), noConnack},
	{"password without password flag", connect("MQTT", 4, fUsername, login("up5")...), noConnack},
	{"bytes after the password", connect("MQTT", 4, fLogin, append(login("up6"), []byte{0})...), noConnack},
	{"field longer than the packet", connect("MQTT", 4, fLogin, []byte{0, 200}, []byte("up7")), noConnack},
	{"no payload", connect("MQTT", 4, fLogin), noConnack},

	// [MQTT-1.5.3-1], [MQTT-1.5.3-2]: UTF-8 strings, without U+0000.
	{"client id not UTF-8", connect("MQTT", 4, fLogin, field("u\xff"), field(deviceUser("u")), field("key-u")), noConnack},
	{"client id with U+0000", connect("MQTT", 4, fLogin, field("u\x00"), field(deviceUser("u")), field("key-u")), noConnack},
	{"username not UTF-8", connect("MQTT", 4, fLogin, field("un1"), field(deviceUser("un1")+"\xc3"), field("key-un1")), noConnack},
	{"username with a surrogate", connect("MQTT", 4, fLogin, field("un2"), field(deviceUser("un2")+"\xed\xa0\x80"), field("key-un2")), noConnack},
	{"username with U+0000", connect("MQTT", 4, fLogin, field("un3"), field(deviceUser("un3")+"\x00"), field("key-un3")), noConnack},
	{"will topic not UTF-8", connect("MQTT", 4, fLogin|fWill, withWill("wu", "devices/wu/messages/events/\xff", "gone")...), noConnack},

	// [MQTT-3.1.3-8], [MQTT-3.1.3-9]: client ids refused with CONNACK 2.
	{"empty client id, clean session 0", connect("MQTT", 4, fLogin, field(""), field(deviceUser("")), field("key-")), 2},
	{"empty client id, clean session 1", connect("MQTT", 4, fLogin|fClean, field(""), field(deviceUser("")), field("key-")), 2},
	{"client id not a device id", connect("MQTT", 4, fLogin, login("d+7")...), 2},
	{"client id of 129 characters", connect("MQTT", 4, fLogin, login(longID+"a")...), 2},
}

// longID is the longest device id Azure allows.
var longID = strings.Repeat("a", 128)

// TestConnectRules sends each of connectCases over TLS and checks the
// answer.
func TestConnectRules(t *testing.T) {
	h := start(t)
	for _, tc := range connectCases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, h)
			if _, err := c.Write(tc.pkt); err != nil {
				t.Fatal(err)
			}
			got := connack(t, c)
			if got != tc.want {
				t.Fatalf("answer %d, want %d (-1: closed without CONNACK)", got, tc.want)
			}
			if got == 0 {
				mustPing(t, c)
				return
			}
			mustClose(t, c)
		})
	}
}

// TestSecondConnect: a second CONNECT on a connection is a protocol
// violation that closes it ([MQTT-3.1.0-2]), well-formed or not.
func TestSecondConnect(t *testing.T) {
	h := start(t)
	for _, tc := range []struct {
		name, id string
		second   []byte
	}{
		{"same CONNECT again", "s1", connect("MQTT", 4, fLogin, login("s1")...)},
		{"malformed CONNECT", "s2", connect("MQTT", 4, fLogin|fWillQoS1, login("s2")...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			c := dialRaw(t, h)
			if _, err := c.Write(connect("MQTT", 4, fLogin, login(id)...)); err != nil {
				t.Fatal(err)
			}
			if got := connack(t, c); got != 0 {
				t.Fatalf("first CONNECT: answer %d", got)
			}
			h.ev.expect(t, "connected "+id)
			if _, err := c.Write(tc.second); err != nil {
				t.Fatal(err)
			}
			mustClose(t, c)
			h.ev.expect(t, "disconnected "+id)
		})
	}
}

// TestWillAsSent: Wills that MQTT 3.1.1 allows but mochi would refuse
// are accepted and published as the device sent them: an empty message,
// and QoS 2 (routed at QoS 1, the most the hub grants).
func TestWillAsSent(t *testing.T) {
	h := start(t)
	telemetry := inbox(t, h.b, "devices/+/messages/events/#")
	for _, tc := range []struct {
		name, id, message string
		flags             byte
	}{
		{"empty message", "w1", "", fWill},
		{"QoS 2", "w2", "gone", fWill | fWillQoS2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "devices/" + tc.id + "/messages/events/"
			c := dialRaw(t, h)
			if _, err := c.Write(connect("MQTT", 4, fLogin|tc.flags, withWill(tc.id, topic, tc.message)...)); err != nil {
				t.Fatal(err)
			}
			if got := connack(t, c); got != 0 {
				t.Fatalf("answer %d, want 0", got)
			}
			h.ev.expect(t, "connected "+tc.id)
			_ = c.Close() // no DISCONNECT: the Will is published
			h.ev.expect(t, "disconnected "+tc.id)
			if got, want := recv(t, telemetry), (message{topic, tc.message}); got != want {
				t.Errorf("hub got %+v, want %+v", got, want)
			}
		})
	}
}

// FuzzCheckConnect: mochi's validation accepts whatever checkConnect lets
// through, so no client gets a CONNACK code MQTT 3.1.1 lacks, and what it
// lets through is MQTT 3.1.1.
func FuzzCheckConnect(f *testing.F) {
	for _, tc := range connectCases {
		f.Add(tc.pkt)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, ok := decodeConnect(b)
		if !ok {
			return // mochi closes the connection itself
		}
		if rule, _ := checkConnect(&pk); rule != "" {
			return
		}
		c := pk.Connect
		if code := pk.ConnectValidate(); code != packets.CodeSuccess {
			t.Fatalf("checkConnect let through %x, which mochi refuses: %v", b, code)
		}
		if pk.ProtocolVersion != 4 || c.WillQos > 1 || c.ClientIdentifier == "" && !c.Clean {
			t.Fatalf("checkConnect let through %x: level %d, Will QoS %d, client id %q, clean %v", b, pk.ProtocolVersion, c.WillQos, c.ClientIdentifier, c.Clean)
		}
	})
}

// decodeConnect decodes b as mochi does a client's first packet, and
// reports whether mochi would get as far as OnPacketRead.
func decodeConnect(b []byte) (packets.Packet, bool) {
	var pk packets.Packet
	r := bytes.NewReader(b)
	first, err := r.ReadByte()
	if err != nil || pk.FixedHeader.Decode(first) != nil || pk.FixedHeader.Type != packets.Connect {
		return pk, false
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil || n != r.Len() {
		return pk, false
	}
	pk.FixedHeader.Remaining = n
	return pk, pk.ConnectDecode(b[len(b)-n:]) == nil
}
