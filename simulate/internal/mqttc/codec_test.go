package mqttc

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// cat concatenates byte slices and strings into one packet's bytes.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case byte:
			b = append(b, p)
		case int:
			b = append(b, byte(p))
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic("cat: unexpected part")
		}
	}
	return b
}

func TestEncode(t *testing.T) {
	payload200 := bytes.Repeat([]byte{'z'}, 200)
	tests := []struct {
		name   string
		encode func([]byte) ([]byte, error)
		want   []byte
	}{
		{
			name: "CONNECT minimal",
			encode: func(b []byte) ([]byte, error) {
				return appendConnect(b, &connectPacket{clientID: "dev1"})
			},
			// §3.1: protocol name "MQTT", level 4, no flags, keepalive 0.
			want: cat(0x10, 16, 0, 4, "MQTT", 4, 0x00, 0, 0, 0, 4, "dev1"),
		},
		{
			name: "CONNECT with everything",
			encode: func(b []byte) ([]byte, error) {
				return appendConnect(b, &connectPacket{
					clientID: "c", cleanSession: true, keepAlive: 60,
					hasUsername: true, username: "u", hasPassword: true, password: "p",
					will: &Will{Topic: "w", Payload: []byte("x"), QoS: 1, Retain: true},
				})
			},
			// Flags: user name 0x80, password 0x40, will retain 0x20,
			// will QoS 1 0x08, will 0x04, clean session 0x02.
			want: cat(0x10, 25, 0, 4, "MQTT", 4, 0xee, 0, 60, 0, 1, "c", 0, 1, "w", 0, 1, "x", 0, 1, "u", 0, 1, "p"),
		},
		{
			name: "CONNECT with will QoS 2, no retain",
			encode: func(b []byte) ([]byte, error) {
				return appendConnect(b, &connectPacket{clientID: "", will: &Will{Topic: "t", QoS: 2}})
			},
			want: cat(0x10, 17, 0, 4, "MQTT", 4, 0x14, 0, 0, 0, 0, 0, 1, "t", 0, 0),
		},
		{
			name: "CONNECT with a password and an empty user name",
			encode: func(b []byte) ([]byte, error) {
				return appendConnect(b, &connectPacket{clientID: "d", keepAlive: 0x1234, hasUsername: true, hasPassword: true, password: "pw"})
			},
			want: cat(0x10, 19, 0, 4, "MQTT", 4, 0xc0, 0x12, 0x34, 0, 1, "d", 0, 0, 0, 2, "pw"),
		},
		{
			name: "SUBSCRIBE",
			encode: func(b []byte) ([]byte, error) {
				return appendSubscribe(b, 10, []subscription{{"a/b", 1}, {"c/#", 0}, {"+", 2}})
			},
			// §3.8.1: the fixed header's flags are 0010.
			want: cat(0x82, 18, 0, 10, 0, 3, "a/b", 1, 0, 3, "c/#", 0, 0, 1, "+", 2),
		},
		{
			name: "PUBLISH QoS 0",
			encode: func(b []byte) ([]byte, error) {
				return appendPublish(b, &publishPacket{topic: "a/b", payload: []byte("hi")})
			},
			want: cat(0x30, 7, 0, 3, "a/b", "hi"),
		},
		{
			name: "PUBLISH QoS 1 retain dup, empty payload",
			encode: func(b []byte) ([]byte, error) {
				return appendPublish(b, &publishPacket{qos: 1, retain: true, dup: true, id: 0x1234, topic: "t"})
			},
			want: cat(0x3b, 5, 0, 1, "t", 0x12, 0x34),
		},
		{
			name: "PUBLISH QoS 1 with a two-byte remaining length",
			encode: func(b []byte) ([]byte, error) {
				return appendPublish(b, &publishPacket{qos: 1, id: 1, topic: "t", payload: payload200})
			},
			// 205 = 0x4d + 1*128.
			want: cat(0x32, 0xcd, 0x01, 0, 1, "t", 0, 1, payload200),
		},
		{
			name:   "PUBACK",
			encode: func(b []byte) ([]byte, error) { return appendPuback(b, 0xbeef), nil },
			want:   cat(0x40, 2, 0xbe, 0xef),
		},
		{
			name:   "PINGREQ",
			encode: func(b []byte) ([]byte, error) { return appendPingreq(b), nil },
			want:   cat(0xc0, 0),
		},
		{
			name:   "DISCONNECT",
			encode: func(b []byte) ([]byte, error) { return appendDisconnect(b), nil },
			want:   cat(0xe0, 0),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("got  % x\nwant % x", got, tt.want)
			}
			// Appending keeps what the buffer held.
			got, err = tt.encode([]byte("prefix"))
			if err != nil || !bytes.Equal(got, cat("prefix", tt.want)) {
				t.Errorf("appended to a prefix: % x, %v", got, err)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	long := strings.Repeat("a", maxString+1)
	tests := []struct {
		name   string
		encode func([]byte) ([]byte, error)
		want   string
	}{
		{"PUBLISH empty topic", pub(&publishPacket{}), "PUBLISH: empty topic"},
		{"PUBLISH wildcard +", pub(&publishPacket{topic: "a/+"}), "wildcard"},
		{"PUBLISH wildcard #", pub(&publishPacket{topic: "#"}), "wildcard"},
		{"PUBLISH invalid UTF-8", pub(&publishPacket{topic: "a\xff"}), "not valid UTF-8"},
		{"PUBLISH surrogate", pub(&publishPacket{topic: "\xed\xa0\x80"}), "not valid UTF-8"},
		{"PUBLISH U+0000", pub(&publishPacket{topic: "a\x00b"}), "U+0000"},
		{"PUBLISH long topic", pub(&publishPacket{topic: long}), "topic of 65536 bytes exceeds"},
		{"PUBLISH QoS 3", pub(&publishPacket{topic: "t", qos: 3, id: 1}), "QoS 3"},
		{"PUBLISH QoS 1 without id", pub(&publishPacket{topic: "t", qos: 1}), "packet id 0"},
		{"PUBLISH QoS 0 with id", pub(&publishPacket{topic: "t", id: 1}), "packet id at QoS 0"},
		{"PUBLISH QoS 0 dup", pub(&publishPacket{topic: "t", dup: true}), "DUP"},
		{"SUBSCRIBE no filter", sub(1, nil), "no topic filter"},
		{"SUBSCRIBE id 0", sub(0, []subscription{{"a", 0}}), "packet id 0"},
		{"SUBSCRIBE QoS 3", sub(1, []subscription{{"a", 3}}), "QoS 3"},
		{"SUBSCRIBE empty filter", sub(1, []subscription{{"", 0}}), "empty topic filter"},
		{"SUBSCRIBE invalid filter", sub(1, []subscription{{"\xc0", 0}}), "not valid UTF-8"},
		{"CONNECT password without user name", connect(&connectPacket{hasPassword: true, password: "p"}), "password without a user name"},
		{"CONNECT will QoS 3", connect(&connectPacket{will: &Will{Topic: "w", QoS: 3}}), "will QoS 3"},
		{"CONNECT will wildcard", connect(&connectPacket{will: &Will{Topic: "w/#"}}), "will topic"},
		{"CONNECT will payload", connect(&connectPacket{will: &Will{Topic: "w", Payload: make([]byte, maxString+1)}}), "will payload"},
		{"CONNECT client id", connect(&connectPacket{clientID: "a\x00"}), "client id"},
		{"CONNECT user name", connect(&connectPacket{hasUsername: true, username: long}), "user name"},
		{"CONNECT password", connect(&connectPacket{hasUsername: true, hasPassword: true, password: long}), "password of 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.encode([]byte("keep"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
			if string(b) != "keep" {
				t.Errorf("the buffer holds % x after an error, want what it held", b)
			}
		})
	}
}

func pub(p *publishPacket) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) { return appendPublish(b, p) }
}

func sub(id uint16, s []subscription) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) { return appendSubscribe(b, id, s) }
}

func connect(p *connectPacket) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) { return appendConnect(b, p) }
}

// The remaining lengths at the edges of each size (§2.2.3, table 2.4).
func TestRemainingLength(t *testing.T) {
	tests := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7f}},
		{128, []byte{0x80, 0x01}},
		{16_383, []byte{0xff, 0x7f}},
		{16_384, []byte{0x80, 0x80, 0x01}},
		{2_097_151, []byte{0xff, 0xff, 0x7f}},
		{2_097_152, []byte{0x80, 0x80, 0x80, 0x01}},
		{268_435_455, []byte{0xff, 0xff, 0xff, 0x7f}},
	}
	for _, tt := range tests {
		b, err := appendHeader(nil, 0xd0, tt.n)
		if err != nil || !bytes.Equal(b, cat(0xd0, tt.want)) {
			t.Errorf("appendHeader(%d) = % x, %v; want d0 % x", tt.n, b, err, tt.want)
		}
		n, err := readLength(bytes.NewReader(tt.want))
		if err != nil || n != tt.n {
			t.Errorf("readLength(% x) = %d, %v; want %d", tt.want, n, err, tt.n)
		}
	}
	if _, err := appendHeader(nil, 0x30, 268_435_456); err == nil {
		t.Error("appendHeader(268435456): no error")
	}
	// A length need not be minimal (MQTT 3.1.1 does not require it), but
	// it has four bytes at most.
	if n, err := readLength(bytes.NewReader([]byte{0x80, 0x80, 0x80, 0x00})); err != nil || n != 0 {
		t.Errorf("readLength(80 80 80 00) = %d, %v; want 0", n, err)
	}
	if _, err := readLength(bytes.NewReader([]byte{0x80, 0x80, 0x80, 0x80, 0x00})); err == nil || !strings.Contains(err.Error(), "more than four bytes") {
		t.Errorf("readLength of five bytes: %v, want an error", err)
	}
}

// decode decodes one whole packet, data, as the read loop does from a
// connection.
func decode(data []byte) (packet, error) {
	r := bytes.NewReader(data)
	h, err := readHeader(r)
	if err != nil {
		return packet{}, err
	}
	return decodeBody(h, data[len(data)-r.Len():])
}

func TestDecode(t *testing.T) {
	pubh := header{typ: typePublish}
	tests := []struct {
		name string
		data []byte
		want packet
	}{
		{"CONNACK accepted", cat(0x20, 2, 0, 0), packet{header: header{typ: typeConnack, length: 2}}},
		{"CONNACK session present", cat(0x20, 2, 1, 0), packet{header: header{typ: typeConnack, length: 2}, sessionPresent: true}},
		{"CONNACK refused", cat(0x20, 2, 0, 5), packet{header: header{typ: typeConnack, length: 2}, code: 5}},
		{"SUBACK", cat(0x90, 5, 0, 2, 0, 1, 0x80), packet{header: header{typ: typeSuback, length: 5}, id: 2, codes: []byte{0, 1, 0x80}}},
		{"PUBLISH QoS 0", cat(0x30, 7, 0, 3, "a/b", "hi"), packet{header: withLength(pubh, 7), topic: "a/b", payload: []byte("hi")}},
		{"PUBLISH QoS 0 retain, empty payload", cat(0x31, 3, 0, 1, "t"), packet{header: header{typ: typePublish, retain: true, length: 3}, topic: "t", payload: []byte{}}},
		{"PUBLISH QoS 1", cat(0x32, 6, 0, 1, "t", 0, 7, "x"), packet{header: header{typ: typePublish, qos: 1, length: 6}, id: 7, topic: "t", payload: []byte("x")}},
		{"PUBLISH QoS 2 dup", cat(0x3c, 5, 0, 1, "t", 1, 0), packet{header: header{typ: typePublish, qos: 2, dup: true, length: 5}, id: 256, topic: "t", payload: []byte{}}},
		{"PUBLISH UTF-8 topic", cat(0x30, 7, 0, 5, "é/ü"), packet{header: withLength(pubh, 7), topic: "é/ü", payload: []byte{}}},
		{"PUBLISH non-minimal length", cat(0x30, 0x87, 0x00, 0, 3, "a/b", "hi"), packet{header: withLength(pubh, 7), topic: "a/b", payload: []byte("hi")}},
		{"PUBACK", cat(0x40, 2, 0xbe, 0xef), packet{header: header{typ: typePuback, length: 2}, id: 0xbeef}},
		{"UNSUBACK", cat(0xb0, 2, 0, 1), packet{header: header{typ: typeUnsuback, length: 2}, id: 1}},
		{"PINGRESP", cat(0xd0, 0), packet{header: header{typ: typePingresp}}},
		{"DISCONNECT", cat(0xe0, 0), packet{header: header{typ: typeDisconnect}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func withLength(h header, n int) header {
	h.length = n
	return h
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"reserved type 0", cat(0x00, 0), "reserved packet type 0"},
		{"reserved type 15", cat(0xf0, 0), "reserved packet type 15"},
		{"PUBLISH QoS 3", cat(0x36, 5, 0, 1, "t", 0, 1), "PUBLISH with QoS 3"},
		{"PUBLISH DUP at QoS 0", cat(0x38, 3, 0, 1, "t"), "DUP set at QoS 0"},
		{"PUBACK flags", cat(0x41, 2, 0, 1), "PUBACK with flags 0x1"},
		{"PINGRESP flags", cat(0xd8, 0), "PINGRESP with flags 0x8"},
		{"SUBSCRIBE flags", cat(0x80, 0), "SUBSCRIBE with flags 0x0, want 0x2"},
		{"five-byte length", cat(0xd0, 0xff, 0xff, 0xff, 0xff, 0x7f), "more than four bytes"},
		{"no length", cat(0x30), "unexpected EOF"},
		{"length cut short", cat(0x30, 0x80), "unexpected EOF"},
		{"truncated body", cat(0x30, 10, 0, 3, "a"), "3 bytes of body for a remaining length of 10"},
		{"trailing bytes", cat(0x40, 2, 0, 1, 0xff), "3 bytes of body for a remaining length of 2"},
		{"CONNACK short", cat(0x20, 1, 0), "CONNACK: remaining length 1, want 2"},
		{"CONNACK long", cat(0x20, 3, 0, 0, 0), "CONNACK: remaining length 3, want 2"},
		{"CONNACK reserved flags", cat(0x20, 2, 2, 0), "reserved acknowledge flags"},
		{"SUBACK without codes", cat(0x90, 2, 0, 1), "at least one return code"},
		{"SUBACK empty", cat(0x90, 0), "SUBACK: remaining length 0"},
		{"PUBACK short", cat(0x40, 1, 0), "PUBACK: remaining length 1, want 2"},
		{"UNSUBACK long", cat(0xb0, 3, 0, 1, 0), "UNSUBACK: remaining length 3, want 2"},
		{"PINGRESP with a body", cat(0xd0, 1, 0), "PINGRESP: remaining length 1, want 0"},
		{"PUBLISH empty body", cat(0x30, 0), "too short for a topic"},
		{"PUBLISH one byte", cat(0x30, 1, 0), "too short for a topic"},
		{"PUBLISH topic overruns", cat(0x30, 4, 0, 5, "ab"), "topic of 5 bytes, but 2 bytes follow"},
		{"PUBLISH empty topic", cat(0x30, 2, 0, 0), "PUBLISH: empty topic"},
		{"PUBLISH invalid UTF-8", cat(0x30, 4, 0, 2, "a", 0xff), "not valid UTF-8"},
		{"PUBLISH surrogate", cat(0x30, 5, 0, 3, 0xed, 0xa0, 0x80), "not valid UTF-8"},
		{"PUBLISH U+0000", cat(0x30, 4, 0, 2, "a", 0), "holds U+0000"},
		{"PUBLISH wildcard", cat(0x30, 5, 0, 3, "a/+"), "holds a wildcard"},
		{"PUBLISH QoS 1 without id", cat(0x32, 3, 0, 1, "t"), "no packet id"},
		{"PUBLISH QoS 1 half an id", cat(0x32, 4, 0, 1, "t", 0), "no packet id"},
		{"PUBLISH QoS 1 id 0", cat(0x32, 5, 0, 1, "t", 0, 0), "packet id 0 at QoS 1"},
		{"CONNECT from the broker", cat(0x10, 0), "CONNECT: not a packet a broker sends"},
		{"PUBREC", cat(0x50, 2, 0, 1), "PUBREC: not a packet a broker sends"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pk, err := decode(tt.data)
			if err == nil {
				t.Fatalf("decoded %+v, want an error saying %q", pk, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want one saying %q", err, tt.want)
			}
		})
	}
	// The end of the stream between packets is io.EOF itself: the
	// connection closed cleanly.
	if _, err := decode(nil); err != io.EOF {
		t.Errorf("decode(nil): %v, want io.EOF", err)
	}
	if _, err := decode([]byte{0x30}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("decode(30): %v, want io.ErrUnexpectedEOF", err)
	}
}

// encodeBack encodes a decoded packet again: with the client's encoders
// for the types it sends, by hand for the others.
func encodeBack(pk packet) ([]byte, error) {
	switch pk.typ {
	case typePublish:
		return appendPublish(nil, &publishPacket{qos: pk.qos, dup: pk.dup, retain: pk.retain, id: pk.id, topic: pk.topic, payload: pk.payload})
	case typePuback:
		return appendPuback(nil, pk.id), nil
	case typeDisconnect:
		return appendDisconnect(nil), nil
	case typeConnack:
		flags := byte(0)
		if pk.sessionPresent {
			flags = 1
		}
		return cat(0x20, 2, flags, pk.code), nil
	case typeSuback:
		b, err := appendHeader(nil, 0x90, 2+len(pk.codes))
		return cat(b, appendUint16(nil, pk.id), pk.codes), err
	case typeUnsuback:
		return appendUint16([]byte{0xb0, 2}, pk.id), nil
	case typePingresp:
		return []byte{0xd0, 0}, nil
	}
	return nil, errors.New("no encoder")
}

// FuzzDecode decodes arbitrary bytes as one packet: the decoder must
// never panic, and what it decodes must encode back to the same bytes
// (with the remaining length in as few bytes as it takes).
func FuzzDecode(f *testing.F) {
	for _, tt := range []struct{ data []byte }{
		{cat(0x20, 2, 1, 0)},
		{cat(0x90, 5, 0, 2, 0, 1, 0x80)},
		{cat(0x30, 7, 0, 3, "a/b", "hi")},
		{cat(0x3b, 5, 0, 1, "t", 0x12, 0x34)},
		{cat(0x3c, 5, 0, 1, "t", 1, 0)},
		{cat(0x30, 0x87, 0x00, 0, 3, "a/b", "hi")},
		{cat(0x30, 7, 0, 5, "é/ü")},
		{cat(0x40, 2, 0xbe, 0xef)},
		{cat(0xb0, 2, 0, 1)},
		{cat(0xd0, 0)},
		{cat(0xe0, 0)},
		{cat(0x32, 0xcd, 0x01, 0, 1, "t", 0, 1, bytes.Repeat([]byte{'z'}, 200))},
		{cat(0xd0, 0xff, 0xff, 0xff, 0xff, 0x7f)},
		{cat(0x30, 5, 0, 3, 0xed, 0xa0, 0x80)},
		{cat(0x32, 5, 0, 1, "t", 0, 0)},
		{cat(0x20, 2, 2, 0)},
	} {
		f.Add(tt.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pk, err := decode(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		got, err := encodeBack(pk)
		if err != nil {
			t.Fatalf("decoded %+v, which does not encode: %v", pk, err)
		}
		r := bytes.NewReader(data)
		if _, err := readHeader(r); err != nil {
			t.Fatal(err)
		}
		body := data[len(data)-r.Len():]
		want, err := appendHeader(nil, data[0], len(body))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, body...)
		if !bytes.Equal(got, want) {
			t.Fatalf("decoded % x as %+v, which encodes to % x", data, pk, got)
		}
		again, err := decode(got)
		if err != nil || !reflect.DeepEqual(again, pk) {
			t.Fatalf("re-encoded % x decodes to %+v, %v; want %+v", got, again, err, pk)
		}
	})
}
