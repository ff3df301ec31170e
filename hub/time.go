package hub

import (
	"bytes"
	"time"
)

// Time is a timestamp on the wire. It marshals as UTC RFC 3339 with at most
// seven fractional digits, like Azure, and unmarshals Azure's variants too:
// seven digits, and no zone designator (read as UTC, e.g. the
// "0001-01-01T00:00:00" Azure writes for "never").
type Time struct{ time.Time }

// NewTime wraps t, or returns nil for the zero time.
func NewTime(t time.Time) *Time {
	if t.IsZero() {
		return nil
	}
	return &Time{t.UTC()}
}

// WireTime is the layout of a Time on the wire (for UTC times).
const WireTime = "2006-01-02T15:04:05.9999999Z"

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(WireTime) + `"`), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*t = Time{}
		return nil
	}
	s := string(bytes.Trim(b, `"`))
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return Errorf(CodeFormatError, "invalid timestamp %q", s)
}
