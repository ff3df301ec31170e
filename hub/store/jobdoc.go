package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/iotjobs/iotjobs/hub"
)

// DeviceJobDoc is the JSON of Doc(dj) (what json.Marshal gives for it)
// written directly: the record's fields in the sorted key order
// json.Marshal gives the map of Doc, numbers
// as float64, the payload decoded and encoded again. A job writes two
// records per device, and the JSON round trips of queryDoc were most of
// the cost of storing and querying them. TestDeviceJobDoc holds the two to the same
// bytes.
func DeviceJobDoc(dj *hub.DeviceJob) (string, error) {
	b := make([]byte, 0, 256)
	first := true
	field := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	str := func(s string) {
		// As the round trip: invalid bytes become U+FFFD, written as is
		// the second time.
		b = appendString(b, validUTF8(s))
	}
	tm := func(name string, t *hub.Time) {
		if t != nil {
			field(name)
			b = append(b, '"')
			b = t.UTC().AppendFormat(b, hub.WireTime)
			b = append(b, '"')
		}
	}
	b = append(b, '{')
	tm("createdDateTimeUtc", dj.CreatedDateTimeUtc)
	field("deviceId")
	str(dj.DeviceID)
	tm("endTimeUtc", dj.EndTimeUtc)
	if e := dj.Error; e != nil {
		field("error")
		b = append(b, `{"code":`...)
		str(e.Code)
		b = append(b, `,"description":`...)
		str(e.Description)
		b = append(b, '}')
	}
	field("jobId")
	str(dj.JobID)
	field("jobType")
	str(string(dj.JobType))
	tm("lastUpdatedDateTimeUtc", dj.LastUpdatedDateTimeUtc)
	if o := dj.Outcome; o != nil {
		field("outcome")
		b = append(b, `{"deviceMethodResponse":`...)
		if r := o.DeviceMethodResponse; r == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, `{"payload":`...)
			var err error
			if b, err = appendNormalJSON(b, r.Payload); err != nil {
				return "", fmt.Errorf("encode query document: payload: %w", err)
			}
			b = append(b, `,"status":`...)
			b = appendFloat(b, float64(r.Status))
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	tm("startTimeUtc", dj.StartTimeUtc)
	field("status")
	str(string(dj.Status))
	b = append(b, '}')
	return string(b), nil
}

// appendNormalJSON appends raw decoded and encoded again, as store.Doc
// does to nested values; the common null is taken as it is.
func appendNormalJSON(b []byte, raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return append(b, "null"...), nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return AppendJSON(b, v)
}

// validUTF8 replaces each invalid byte of s with U+FFFD, as encoding/json
// does.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// DeviceJobJSON is json.Marshal(dj), a record's wire form, written
// directly: a job stores one per device, and reflection was a third of
// that. The bytes are json.Marshal's (TestDeviceJobJSON, FuzzDeviceJobJSON)
// but for invalid UTF-8, written as U+FFFD itself where json.Marshal
// writes its escape; both decode alike.
func DeviceJobJSON(dj *hub.DeviceJob) ([]byte, error) {
	b := make([]byte, 0, 384)
	b = append(b, `{"deviceId":`...)
	b = appendString(b, dj.DeviceID)
	b = append(b, `,"jobId":`...)
	b = appendString(b, dj.JobID)
	b = append(b, `,"jobType":`...)
	b = appendString(b, string(dj.JobType))
	b = append(b, `,"status":`...)
	b = appendString(b, string(dj.Status))
	for _, t := range []struct {
		name string
		t    *hub.Time
	}{{"startTimeUtc", dj.StartTimeUtc}, {"endTimeUtc", dj.EndTimeUtc}, {"createdDateTimeUtc", dj.CreatedDateTimeUtc}, {"lastUpdatedDateTimeUtc", dj.LastUpdatedDateTimeUtc}} {
		if t.t != nil {
			b = append(b, ',', '"')
			b = append(b, t.name...)
			b = append(b, '"', ':', '"')
			b = t.t.UTC().AppendFormat(b, hub.WireTime)
			b = append(b, '"')
		}
	}
	if o := dj.Outcome; o != nil {
		b = append(b, `,"outcome":{"deviceMethodResponse":`...)
		if r := o.DeviceMethodResponse; r == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, `{"status":`...)
			b = strconv.AppendInt(b, int64(r.Status), 10)
			b = append(b, `,"payload":`...)
			if r.Payload == nil {
				b = append(b, "null"...)
			} else {
				p, err := json.Marshal(r.Payload) // compacted and escaped as json.Marshal does
				if err != nil {
					return nil, fmt.Errorf("encode device job %s/%s: payload: %w", dj.JobID, dj.DeviceID, err)
				}
				b = append(b, p...)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if e := dj.Error; e != nil {
		b = append(b, `,"error":{"code":`...)
		b = appendString(b, e.Code)
		b = append(b, `,"description":`...)
		b = appendString(b, e.Description)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}
