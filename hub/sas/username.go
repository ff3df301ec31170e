package sas

import (
	"fmt"
	"net/url"
	"strings"
)

// Username is a parsed MQTT CONNECT username of an IoT Hub device:
// "{host}/{deviceId}/?api-version=...&DeviceClientType=..." (modules:
// "{host}/{deviceId}/{moduleId}/?...").
type Username struct {
	Host     string
	DeviceID string
	ModuleID string
	Query    url.Values
}

// ParseUsername parses an MQTT username in the forms SDKs send: the
// documented one, with or without the '?' before the query (the
// amenzhinsky/iothub client omits it), and with or without a query.
func ParseUsername(s string) (*Username, error) {
	path, query, hasQuery := strings.Cut(s, "?")
	segs := strings.Split(strings.TrimSuffix(path, "/"), "/")
	if !hasQuery && len(segs) > 2 && strings.Contains(segs[len(segs)-1], "=") {
		query, hasQuery = segs[len(segs)-1], true
		segs = segs[:len(segs)-1]
	}
	if len(segs) < 2 || len(segs) > 3 || segs[0] == "" || segs[1] == "" || len(segs) == 3 && segs[2] == "" {
		return nil, fmt.Errorf("mqtt username %q: want {host}/{deviceId}/?api-version=...", s)
	}
	u := &Username{Host: segs[0], DeviceID: segs[1], Query: url.Values{}}
	if len(segs) == 3 {
		u.ModuleID = segs[2]
	}
	if hasQuery {
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("mqtt username %q: query: %w", s, err)
		}
		u.Query = q
	}
	return u, nil
}
