package mqttc

// The MQTT 3.1.1 codec: the packets the client sends are appended to a
// byte slice (a pooled buffer, so that sending allocates nothing), and
// the packets it receives are decoded from their fixed header and body.
// Section numbers refer to the OASIS standard, MQTT Version 3.1.1.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Packet types (§2.2.1).
const (
	typeConnect     byte = 1
	typeConnack     byte = 2
	typePublish     byte = 3
	typePuback      byte = 4
	typePubrec      byte = 5
	typePubrel      byte = 6
	typePubcomp     byte = 7
	typeSubscribe   byte = 8
	typeSuback      byte = 9
	typeUnsubscribe byte = 10
	typeUnsuback    byte = 11
	typePingreq     byte = 12
	typePingresp    byte = 13
	typeDisconnect  byte = 14
)

var packetNames = [16]string{
	typeConnect:     "CONNECT",
	typeConnack:     "CONNACK",
	typePublish:     "PUBLISH",
	typePuback:      "PUBACK",
	typePubrec:      "PUBREC",
	typePubrel:      "PUBREL",
	typePubcomp:     "PUBCOMP",
	typeSubscribe:   "SUBSCRIBE",
	typeSuback:      "SUBACK",
	typeUnsubscribe: "UNSUBSCRIBE",
	typeUnsuback:    "UNSUBACK",
	typePingreq:     "PINGREQ",
	typePingresp:    "PINGRESP",
	typeDisconnect:  "DISCONNECT",
}

func packetName(t byte) string {
	if int(t) < len(packetNames) && packetNames[t] != "" {
		return packetNames[t]
	}
	return fmt.Sprintf("packet type %d", t)
}

const (
	// maxRemaining is the largest remaining length four bytes encode
	// (§2.2.3).
	maxRemaining = 268_435_455
	// maxString is the longest string or binary field: a two-byte length
	// (§1.5.3).
	maxString = 0xffff
)

// header is a packet's fixed header (§2.2): its type, the flags of a
// PUBLISH, and the remaining length (the length of its body).
type header struct {
	typ    byte
	qos    byte // PUBLISH only
	dup    bool // PUBLISH only
	retain bool // PUBLISH only
	length int
}

// decodeHeader decodes the first byte of a fixed header: the type and
// flags. The flags of every type but PUBLISH are fixed (§2.2.2).
func decodeHeader(b byte) (header, error) {
	h := header{typ: b >> 4}
	flags := b & 0x0f
	switch h.typ {
	case 0, 15:
		return h, fmt.Errorf("reserved packet type %d", h.typ)
	case typePublish:
		h.dup, h.qos, h.retain = flags&0x08 != 0, flags>>1&0x03, flags&0x01 != 0
		if h.qos == 3 {
			return h, errors.New("PUBLISH with QoS 3")
		}
		if h.dup && h.qos == 0 {
			return h, errors.New("PUBLISH with DUP set at QoS 0")
		}
	case typePubrel, typeSubscribe, typeUnsubscribe:
		if flags != 0x02 {
			return h, fmt.Errorf("%s with flags %#x, want 0x2", packetName(h.typ), flags)
		}
	default:
		if flags != 0 {
			return h, fmt.Errorf("%s with flags %#x, want 0", packetName(h.typ), flags)
		}
	}
	return h, nil
}

// firstByte is the first byte of h's fixed header.
func (h header) firstByte() byte {
	b := h.typ<<4 | h.qos<<1
	if h.dup {
		b |= 0x08
	}
	if h.retain {
		b |= 0x01
	}
	switch h.typ {
	case typePubrel, typeSubscribe, typeUnsubscribe:
		b |= 0x02
	}
	return b
}

// readLength reads a remaining length (§2.2.3): a variable-length
// integer of at most four bytes.
func readLength(r io.ByteReader) (int, error) {
	n := 0
	for i := range 4 {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		n |= int(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return n, nil
		}
	}
	return 0, errors.New("malformed remaining length: more than four bytes")
}

// readHeader reads a fixed header: the first byte, then the remaining
// length. The end of r before the first byte is io.EOF, unwrapped.
func readHeader(r io.ByteReader) (header, error) {
	b, err := r.ReadByte()
	if err != nil {
		return header{}, err
	}
	h, err := decodeHeader(b)
	if err != nil {
		return h, fmt.Errorf("packet header %#02x: %w", b, err)
	}
	if h.length, err = readLength(r); err != nil {
		return h, fmt.Errorf("%s length: %w", packetName(h.typ), err)
	}
	return h, nil
}

// appendHeader appends a fixed header: its first byte and the remaining
// length n, in as few bytes as it takes.
func appendHeader(b []byte, first byte, n int) ([]byte, error) {
	if n < 0 || n > maxRemaining {
		return b, fmt.Errorf("%s of %d bytes exceeds the MQTT limit of %d", packetName(first>>4), n, maxRemaining)
	}
	b = append(b, first)
	for {
		d := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(b, d), nil
		}
		b = append(b, d|0x80)
	}
}

func appendUint16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }

// appendString appends a length-prefixed string or binary field (§1.5.3);
// the caller checked its length.
func appendString[S string | []byte](b []byte, s S) []byte {
	return append(appendUint16(b, uint16(len(s))), s...)
}

// checkString reports whether s can be an MQTT UTF-8 string (§1.5.3):
// at most 65,535 bytes of well-formed UTF-8 without U+0000. what names
// it in the error.
func checkString(what, s string) error {
	switch {
	case len(s) > maxString:
		return fmt.Errorf("%s of %d bytes exceeds the MQTT limit of %d", what, len(s), maxString)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%s %q holds U+0000", what, s)
	}
	return nil
}

// checkTopic reports whether s can be the topic name of a PUBLISH
// (§4.7): a non-empty string without wildcards.
func checkTopic(s string) error {
	if s == "" {
		return errors.New("empty topic")
	}
	if err := checkString("topic", s); err != nil {
		return err
	}
	if strings.IndexByte(s, '+') >= 0 || strings.IndexByte(s, '#') >= 0 {
		return fmt.Errorf("topic %q holds a wildcard", s)
	}
	return nil
}

// connectPacket is a CONNECT's content (§3.1).
type connectPacket struct {
	clientID     string
	cleanSession bool
	keepAlive    uint16 // seconds
	// hasUsername and hasPassword set the flags: a password needs a user
	// name (§3.1.2.9), which may be empty.
	hasUsername, hasPassword bool
	username, password       string
	will                     *Will
}

// appendConnect appends a CONNECT packet.
func appendConnect(b []byte, p *connectPacket) ([]byte, error) {
	if err := checkString("client id", p.clientID); err != nil {
		return b, fmt.Errorf("CONNECT: %w", err)
	}
	flags := byte(0)
	n := 10 + 2 + len(p.clientID) // protocol name and level, flags, keepalive; client id
	if p.cleanSession {
		flags |= 0x02
	}
	if w := p.will; w != nil {
		if err := checkTopic(w.Topic); err != nil {
			return b, fmt.Errorf("CONNECT: will %w", err)
		}
		if w.QoS > 2 {
			return b, fmt.Errorf("CONNECT: will QoS %d", w.QoS)
		}
		if len(w.Payload) > maxString {
			return b, fmt.Errorf("CONNECT: will payload of %d bytes exceeds the MQTT limit of %d", len(w.Payload), maxString)
		}
		flags |= 0x04 | w.QoS<<3
		if w.Retain {
			flags |= 0x20
		}
		n += 2 + len(w.Topic) + 2 + len(w.Payload)
	}
	if p.hasPassword && !p.hasUsername {
		return b, errors.New("CONNECT: a password without a user name")
	}
	if p.hasUsername {
		if err := checkString("user name", p.username); err != nil {
			return b, fmt.Errorf("CONNECT: %w", err)
		}
		flags |= 0x80
		n += 2 + len(p.username)
	}
	if p.hasPassword {
		if len(p.password) > maxString {
			return b, fmt.Errorf("CONNECT: password of %d bytes exceeds the MQTT limit of %d", len(p.password), maxString)
		}
		flags |= 0x40
		n += 2 + len(p.password)
	}
	b, err := appendHeader(b, typeConnect<<4, n)
	if err != nil {
		return b, err
	}
	b = append(b, 0, 4, 'M', 'Q', 'T', 'T', 4, flags)
	b = appendUint16(b, p.keepAlive)
	b = appendString(b, p.clientID)
	if w := p.will; w != nil {
		b = appendString(b, w.Topic)
		b = appendString(b, w.Payload)
	}
	if p.hasUsername {
		b = appendString(b, p.username)
	}
	if p.hasPassword {
		b = appendString(b, p.password)
	}
	return b, nil
}

// subscription is a topic filter of a SUBSCRIBE and its requested QoS.
type subscription struct {
	filter string
	qos    byte
}

// appendSubscribe appends a SUBSCRIBE packet (§3.8).
func appendSubscribe(b []byte, id uint16, subs []subscription) ([]byte, error) {
	if id == 0 {
		return b, errors.New("SUBSCRIBE: packet id 0")
	}
	if len(subs) == 0 {
		return b, errors.New("SUBSCRIBE: no topic filter")
	}
	n := 2
	for _, s := range subs {
		if s.filter == "" {
			return b, errors.New("SUBSCRIBE: empty topic filter")
		}
		if err := checkString("topic filter", s.filter); err != nil {
			return b, fmt.Errorf("SUBSCRIBE: %w", err)
		}
		if s.qos > 2 {
			return b, fmt.Errorf("SUBSCRIBE: QoS %d for %s", s.qos, s.filter)
		}
		n += 2 + len(s.filter) + 1
	}
	b, err := appendHeader(b, typeSubscribe<<4|0x02, n)
	if err != nil {
		return b, err
	}
	b = appendUint16(b, id)
	for _, s := range subs {
		b = append(appendString(b, s.filter), s.qos)
	}
	return b, nil
}

// publishPacket is a PUBLISH's content (§3.3).
type publishPacket struct {
	qos     byte
	dup     bool
	retain  bool
	id      uint16 // at QoS 1 and 2 only
	topic   string
	payload []byte
}

// appendPublish appends a PUBLISH packet.
func appendPublish(b []byte, p *publishPacket) ([]byte, error) {
	if err := checkTopic(p.topic); err != nil {
		return b, fmt.Errorf("PUBLISH: %w", err)
	}
	h := header{typ: typePublish, qos: p.qos, dup: p.dup, retain: p.retain, length: 2 + len(p.topic) + len(p.payload)}
	switch {
	case p.qos > 2:
		return b, fmt.Errorf("PUBLISH: QoS %d", p.qos)
	case p.qos == 0 && p.dup:
		return b, errors.New("PUBLISH: DUP set at QoS 0")
	case p.qos == 0 && p.id != 0:
		return b, errors.New("PUBLISH: a packet id at QoS 0")
	case p.qos > 0 && p.id == 0:
		return b, fmt.Errorf("PUBLISH: packet id 0 at QoS %d", p.qos)
	case p.qos > 0:
		h.length += 2
	}
	b, err := appendHeader(b, h.firstByte(), h.length)
	if err != nil {
		return b, err
	}
	b = appendString(b, p.topic)
	if p.qos > 0 {
		b = appendUint16(b, p.id)
	}
	return append(b, p.payload...), nil
}

// appendPuback appends a PUBACK packet (§3.4).
func appendPuback(b []byte, id uint16) []byte {
	return appendUint16(append(b, typePuback<<4, 2), id)
}

// appendPingreq appends a PINGREQ packet (§3.12).
func appendPingreq(b []byte) []byte { return append(b, typePingreq<<4, 0) }

// appendDisconnect appends a DISCONNECT packet (§3.14).
func appendDisconnect(b []byte) []byte { return append(b, typeDisconnect<<4, 0) }

// packet is a decoded packet from the broker: its fixed header and the
// fields of its type.
type packet struct {
	header
	id             uint16 // PUBLISH at QoS 1 and 2, PUBACK, SUBACK, UNSUBACK
	topic          string // PUBLISH
	payload        []byte // PUBLISH; points into the body
	sessionPresent bool   // CONNACK
	code           byte   // CONNACK's return code
	codes          []byte // SUBACK's return codes; point into the body
}

// decodeBody decodes the body of a packet a broker sends: CONNACK,
// PUBLISH, PUBACK, SUBACK, UNSUBACK, PINGRESP (or DISCONNECT, which an
// MQTT 3.1.1 broker does not send). len(body) must be h.length. The
// payload and codes point into body; the topic is a copy.
func decodeBody(h header, body []byte) (packet, error) {
	p := packet{header: h}
	if len(body) != h.length {
		return p, fmt.Errorf("%s: %d bytes of body for a remaining length of %d", packetName(h.typ), len(body), h.length)
	}
	switch h.typ {
	case typeConnack:
		if len(body) != 2 {
			return p, fmt.Errorf("CONNACK: remaining length %d, want 2", len(body))
		}
		if body[0]&^0x01 != 0 {
			return p, fmt.Errorf("CONNACK: reserved acknowledge flags set (%#02x)", body[0])
		}
		p.sessionPresent, p.code = body[0] == 1, body[1]
	case typePublish:
		return decodePublish(p, body)
	case typePuback, typeUnsuback:
		if len(body) != 2 {
			return p, fmt.Errorf("%s: remaining length %d, want 2", packetName(h.typ), len(body))
		}
		p.id = uint16(body[0])<<8 | uint16(body[1])
	case typeSuback:
		if len(body) < 3 {
			return p, fmt.Errorf("SUBACK: remaining length %d, want a packet id and at least one return code", len(body))
		}
		p.id = uint16(body[0])<<8 | uint16(body[1])
		p.codes = body[2:]
	case typePingresp, typeDisconnect:
		if len(body) != 0 {
			return p, fmt.Errorf("%s: remaining length %d, want 0", packetName(h.typ), len(body))
		}
	default:
		return p, fmt.Errorf("%s: not a packet a broker sends to an MQTT 3.1.1 client", packetName(h.typ))
	}
	return p, nil
}

// decodePublish decodes a PUBLISH's body into p, which holds its header.
func decodePublish(p packet, body []byte) (packet, error) {
	if len(body) < 2 {
		return p, fmt.Errorf("PUBLISH: remaining length %d, too short for a topic", len(body))
	}
	n := int(body[0])<<8 | int(body[1])
	rest := body[2:]
	if n > len(rest) {
		return p, fmt.Errorf("PUBLISH: topic of %d bytes, but %d bytes follow", n, len(rest))
	}
	topic := rest[:n]
	switch {
	case n == 0:
		return p, errors.New("PUBLISH: empty topic")
	case !utf8.Valid(topic):
		return p, fmt.Errorf("PUBLISH: topic %q is not valid UTF-8", topic)
	case bytes.IndexByte(topic, 0) >= 0:
		return p, fmt.Errorf("PUBLISH: topic %q holds U+0000", topic)
	case bytes.IndexByte(topic, '+') >= 0 || bytes.IndexByte(topic, '#') >= 0:
		return p, fmt.Errorf("PUBLISH: topic %q holds a wildcard", topic)
	}
	p.topic, rest = string(topic), rest[n:]
	if p.qos > 0 {
		if len(rest) < 2 {
			return p, fmt.Errorf("PUBLISH: no packet id after the topic at QoS %d", p.qos)
		}
		p.id, rest = uint16(rest[0])<<8|uint16(rest[1]), rest[2:]
		if p.id == 0 {
			return p, fmt.Errorf("PUBLISH: packet id 0 at QoS %d", p.qos)
		}
	}
	p.payload = rest
	return p, nil
}
