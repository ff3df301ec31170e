package mqttproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
)

var null = json.RawMessage("null")

// ParseMethodPayload returns a method request or response payload as JSON:
// an empty (or all-space) payload is null, as Azure reports it; anything
// else must be valid JSON.
func ParseMethodPayload(b []byte) (json.RawMessage, error) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return null, nil
	}
	if !json.Valid(t) {
		return nil, fmt.Errorf("method payload is not valid JSON (%d bytes)", len(b))
	}
	return json.RawMessage(bytes.Clone(t)), nil
}

// MethodPayload is ParseMethodPayload for callers that must always produce
// JSON: a payload that is not valid JSON becomes a JSON string holding its
// bytes (invalid UTF-8 replaced), so nothing invalid reaches the REST API.
func MethodPayload(b []byte) json.RawMessage {
	if p, err := ParseMethodPayload(b); err == nil {
		return p
	}
	s, _ := json.Marshal(string(b)) // a string always marshals
	return s
}

// DesiredPatchPayload is the body of a desired-properties notification: the
// patch with "$version" added.
func DesiredPatchPayload(patch map[string]any, version int64) ([]byte, error) {
	m := make(map[string]any, len(patch)+1)
	maps.Copy(m, patch)
	m["$version"] = version
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("desired patch payload: %w", err)
	}
	return b, nil
}

// ErrorBody is the body of a twin error response,
// {"errorCode":400004,"message":"..."}; the Node SDK treats a body with an
// errorCode field as a failure whatever the status.
func ErrorBody(code int, msg string) []byte {
	b, _ := json.Marshal(struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}{code, msg}) // cannot fail: an int and a string
	return b
}
