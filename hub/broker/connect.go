package broker

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The rules of MQTT 3.1.1 §3.1 for a CONNECT, and who enforces each. The
// hook's OnPacketRead runs checkConnect on a client's first CONNECT after
// mochi decoded it and before mochi validates it (hook.go has the order).
//
// mochi's decoding already closes the connection, without a CONNACK, when
// the first packet is not a CONNECT [MQTT-3.1.0-1], the fixed-header flags
// are not 0 [MQTT-2.2.2-2], a field runs past the packet, a flagged Will
// topic, Will message, username or password is missing [MQTT-3.1.2-9]
// [MQTT-3.1.2-17] [MQTT-3.1.2-19], or the client id or Will topic is not
// UTF-8 or holds U+0000 [MQTT-1.5.3-1] [MQTT-1.5.3-2]. It closes a
// connection that sends a second CONNECT [MQTT-3.1.0-2].
//
// checkConnect enforces the rest, which mochi either lets through or
// answers with a CONNACK code that MQTT 3.1.1 does not have (0x80 and
// up, meaningless to a 3.1.1 client):
//   - protocol name "MQTT" [MQTT-3.1.2-1], else close; level 4, else
//     CONNACK 1 [MQTT-3.1.2-2] (also for MQTT 3.1's "MQIsdp", whose
//     clients know that answer);
//   - reserved flag 0 [MQTT-3.1.2-3];
//   - Will flag 0 ⇒ Will QoS 0 and Will retain 0 [MQTT-3.1.2-11]
//     [MQTT-3.1.2-13]; Will QoS ≤ 2 [MQTT-3.1.2-12]; a Will topic is a
//     topic name: not empty, no wildcards [MQTT-4.7.1-1] [MQTT-4.7.3-1];
//   - username flag 0 ⇒ password flag 0 [MQTT-3.1.2-22];
//   - the payload is exactly the flagged fields, in order, nothing after
//     [MQTT-3.1.2-16] [MQTT-3.1.2-18] [MQTT-3.1.3-1] (mochi stops reading
//     at the last flagged field, so an unflagged username or password is
//     ignored rather than refused);
//   - the username is UTF-8 without U+0000 [MQTT-3.1.3-11] (mochi reads it
//     as bytes);
//   - an empty client id with clean session 0 gets CONNACK 2
//     [MQTT-3.1.3-8] (mochi sends 0x80).
//
// Other client ids are refused with CONNACK 2 in OnConnect: Azure needs
// the device id there [MQTT-3.1.3-9].
//
// checkConnect also smooths over what 3.1.1 allows and mochi refuses, so
// a well-formed CONNECT is never turned away with a code 3.1.1 lacks:
//   - a zero-length password (mochi: 0x82) is, to the hub, no password:
//     its flag is cleared and authentication refuses it (CONNACK 5);
//   - a Will at QoS 2 (mochi: 0x9B, above the broker's maximum QoS) is
//     taken at QoS 1, the most the hub grants, as for subscriptions;
//   - a zero-length Will message (mochi: 0x82) is replaced by
//     emptyWillMessage, which OnConnect turns back into an empty one.

// emptyWillMessage stands in for a zero-length Will message between
// checkConnect and OnConnect. OnConnect recognises this very array, not
// its content (which a device may send).
var emptyWillMessage = []byte{0}

func isEmptyWillMessage(p []byte) bool { return len(p) == 1 && &p[0] == &emptyWillMessage[0] }

// checkConnect checks a client's first CONNECT, as decoded by mochi,
// against MQTT 3.1.1 §3.1 and adjusts what mochi would wrongly refuse. It
// returns the rule pk breaks, or "" to let it go on to mochi, and the
// CONNACK to send before closing the connection (CodeSuccess: close
// without one).
func checkConnect(pk *packets.Packet) (rule string, connack packets.Code) {
	c := &pk.Connect
	switch name := string(c.ProtocolName); {
	case name == "MQIsdp":
		return "MQTT 3.1 (protocol name MQIsdp)", packets.ErrUnsupportedProtocolVersion
	case name != "MQTT":
		return fmt.Sprintf("[MQTT-3.1.2-1] protocol name %q", name), packets.CodeSuccess
	case pk.ProtocolVersion != 4:
		return fmt.Sprintf("[MQTT-3.1.2-2] protocol level %d", pk.ProtocolVersion), packets.ErrUnsupportedProtocolVersion
	}
	switch {
	case pk.ReservedBit != 0:
		return "[MQTT-3.1.2-3] reserved flag set", packets.CodeSuccess
	case !c.WillFlag && c.WillQos != 0:
		return "[MQTT-3.1.2-11] Will QoS without the Will flag", packets.CodeSuccess
	case !c.WillFlag && c.WillRetain:
		return "[MQTT-3.1.2-13] Will retain without the Will flag", packets.CodeSuccess
	case c.WillFlag && c.WillQos > 2:
		return "[MQTT-3.1.2-12] Will QoS 3", packets.CodeSuccess
	case c.WillFlag && (c.WillTopic == "" || strings.ContainsAny(c.WillTopic, "+#")):
		return fmt.Sprintf("[MQTT-4.7.1-1] Will topic %q is not a topic name", c.WillTopic), packets.CodeSuccess
	case c.PasswordFlag && !c.UsernameFlag:
		return "[MQTT-3.1.2-22] password flag without the username flag", packets.CodeSuccess
	case pk.FixedHeader.Remaining != connectLength(pk):
		return "[MQTT-3.1.3-1] bytes after the last flagged field", packets.CodeSuccess
	case c.UsernameFlag && (!utf8.Valid(c.Username) || bytes.IndexByte(c.Username, 0) >= 0):
		return "[MQTT-3.1.3-11] username is not UTF-8 without U+0000", packets.CodeSuccess
	case c.ClientIdentifier == "" && !c.Clean:
		return "[MQTT-3.1.3-8] empty client id with clean session 0", packets.ErrClientIdentifierNotValid
	}
	if c.PasswordFlag && len(c.Password) == 0 {
		c.PasswordFlag = false
	}
	if c.WillFlag {
		c.WillQos = min(c.WillQos, 1)
		if len(c.WillPayload) == 0 {
			c.WillPayload = emptyWillMessage
		}
	}
	return "", packets.CodeSuccess
}

// connectLength is the remaining length of an MQTT 3.1.1 CONNECT made of
// pk's fields: what mochi read of the packet. Each field is a two-byte
// length and its bytes.
func connectLength(pk *packets.Packet) int {
	c := &pk.Connect
	n := 2 + len(c.ProtocolName) + 1 + 1 + 2 // name, level, flags, keep-alive
	n += 2 + len(c.ClientIdentifier)
	if c.WillFlag {
		n += 2 + len(c.WillTopic) + 2 + len(c.WillPayload)
	}
	if c.UsernameFlag {
		n += 2 + len(c.Username)
	}
	if c.PasswordFlag {
		n += 2 + len(c.Password)
	}
	return n
}
