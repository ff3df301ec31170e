package hub

import (
	"fmt"
	"strings"
)

// Identifier rules. Every id a request names (in a path, a body or a bulk
// entry) is checked by one of these, in the REST server before anything
// else and again in the engine, so that no route can store an id that
// another route, the query language or a device's MQTT topics cannot
// name.

// MaxIDLength is the longest device or job id, in characters (ASCII, so
// also bytes), as Azure documents for device ids.
const MaxIDLength = 128

// deviceIDPunct is the punctuation Azure allows in device ids besides
// ASCII letters and digits (identity-registry docs and the Event Grid
// device event schema: - : . + % _ # * ? ! ( ) , = @ ; $ ').
const deviceIDPunct = "-:.+%_#*?!(),=@;$'"

// jobIDPunct is deviceIDPunct without '%', '#' and '?': Azure documents
// no alphabet for job ids, and the Node SDK puts a job id into the path of
// GET /jobs/v2/{id} and its cancel without encoding it, where those three
// would end or re-encode the path, so a job created with them could not be
// read back.
const jobIDPunct = "-:.+_*!(),=@;$'"

// CheckDeviceID returns an ArgumentInvalid *Error unless id is 1 to 128
// ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '.
func CheckDeviceID(id string) error { return checkID("device id", id, deviceIDPunct) }

// DeviceIDByte reports whether c may appear in a device id (Azure's
// alphabet).
func DeviceIDByte(c byte) bool { return isAlnum(c) || strings.IndexByte(deviceIDPunct, c) >= 0 }

// MQTTWildcard reports whether c is '+' or '#': Azure allows both in
// device ids, but a device's MQTT topics carry its id, where they would
// be wildcards, so a device whose id holds one cannot connect over MQTT.
// The embedded broker refuses such a client id, and fleet files such a
// device.
func MQTTWildcard(c byte) bool { return c == '+' || c == '#' }

// CheckMQTTDeviceID is CheckDeviceID for a device that connects over
// MQTT: it refuses '+' and '#' too (MQTTWildcard).
func CheckMQTTDeviceID(id string) error {
	if err := CheckDeviceID(id); err != nil {
		return err
	}
	if i := strings.IndexAny(id, "+#"); i >= 0 {
		return Errorf(CodeArgumentInvalid, "device id %s contains %q at byte %d, an MQTT wildcard: a device with it cannot connect over MQTT", quoteID(id), id[i], i)
	}
	return nil
}

// CheckJobID returns an ArgumentInvalid *Error unless id is 1 to 128
// ASCII letters, digits and - : . + _ * ! ( ) , = @ ; $ '.
func CheckJobID(id string) error { return checkID("job id", id, jobIDPunct) }

func checkID(what, id, punct string) error {
	if id == "" {
		return Errorf(CodeArgumentInvalid, "%s is empty: send 1 to %d ASCII letters, digits and %s", what, MaxIDLength, spaced(punct))
	}
	if len(id) > MaxIDLength {
		return Errorf(CodeArgumentInvalid, "%s %s is %d characters long; at most %d are allowed", what, quoteID(id), len(id), MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && strings.IndexByte(punct, c) < 0 {
			return Errorf(CodeArgumentInvalid, "%s %s contains %s at byte %d; allowed are ASCII letters, digits and %s",
				what, quoteID(id), describeByte(c), i, spaced(punct))
		}
	}
	return nil
}

// MaxPolicyNameLength is the longest shared access policy name the hub
// accepts.
const MaxPolicyNameLength = 64

// CheckPolicyName returns an ArgumentInvalid *Error unless name is 1 to 64
// ASCII letters, digits and - . _. Azure documents no alphabet for policy
// names; this one holds its default policies (iothubowner,
// registryReadWrite, ...) and keeps names that travel in SAS tokens' skn
// and in log lines free of separators and control characters.
func CheckPolicyName(name string) error {
	const punct = "-._"
	if name == "" {
		return Errorf(CodeArgumentInvalid, "shared access policy name is empty")
	}
	if len(name) > MaxPolicyNameLength {
		return Errorf(CodeArgumentInvalid, "shared access policy name %s is %d characters long; at most %d are allowed", quoteID(name), len(name), MaxPolicyNameLength)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && strings.IndexByte(punct, c) < 0 {
			return Errorf(CodeArgumentInvalid, "shared access policy name %s contains %s; allowed are ASCII letters, digits and %s", quoteID(name), describeByte(c), spaced(punct))
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// spaced lists punctuation characters separated by spaces, as the
// documentation writes them.
func spaced(punct string) string {
	return strings.Join(strings.Split(punct, ""), " ")
}

// describeByte names a byte of an id for a message: printable ASCII as
// itself, anything else by its code, which a person can act on where a
// raw control character would be invisible.
func describeByte(c byte) string {
	if c > 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", c)
	}
	if c == ' ' {
		return "a space"
	}
	return fmt.Sprintf("byte 0x%02X", c)
}

// quoteID quotes an id for a message with Go escapes, shortened past 140
// bytes so that an oversized id does not flood the answer.
func quoteID(id string) string {
	if len(id) > MaxIDLength+12 {
		return fmt.Sprintf("%q…", id[:MaxIDLength])
	}
	return fmt.Sprintf("%q", id)
}

// MaxETagLength bounds an etag in If-Match or a body. Ours are a few
// bytes of base64 and Azure's a dozen; the bound only keeps an absurd
// header out of messages and comparisons.
const MaxETagLength = 128

// ParseETag reads an etag as a request sends it (If-Match or a body's
// "etag"): "*" or "\"*\"" is the wildcard, returned as "*"; otherwise a
// token of visible ASCII other than '"' (RFC 7232's etagc) and ',' (which
// separates the entries of an If-Match list, which the hub does not
// take), quoted or bare, returned without its quotes. Anything else, including an empty
// value, is an ArgumentInvalid *Error: it must not silently become "no
// condition", which would apply a change the caller meant to guard.
func ParseETag(s string) (string, error) {
	raw := s
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return "", Errorf(CodeArgumentInvalid, "etag %q is empty: send \"*\" to match any version, or the quoted etag you read", raw)
	}
	if len(s) > MaxETagLength {
		return "", Errorf(CodeArgumentInvalid, "etag is %d characters long; etags are at most %d: send \"*\" or the etag you read", len(s), MaxETagLength)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c == '"' || c == ',' || c >= 0x7f {
			return "", Errorf(CodeArgumentInvalid, "etag %s contains %s; an etag is \"*\" or one quoted token of visible ASCII characters, as the hub returned it", quoteID(raw), describeByte(c))
		}
	}
	return s, nil
}

// ParseOptionalETag is ParseETag for fields where empty means "no
// condition" (a body's "etag", the engine's etag arguments): "" stays "".
func ParseOptionalETag(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	return ParseETag(s)
}
