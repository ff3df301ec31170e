package sas

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// ConnectionString is a parsed Azure IoT Hub connection string. A service
// connection string has SharedAccessKeyName (the shared access policy); a
// device connection string has DeviceID instead.
type ConnectionString struct {
	HostName            string
	SharedAccessKeyName string
	SharedAccessKey     string
	DeviceID            string
	GatewayHostName     string
}

// connKeys maps the lower-cased keys of a connection string to their
// canonical spelling, which is also the order String writes them in.
var connKeys = []string{"HostName", "SharedAccessKeyName", "DeviceId", "SharedAccessKey", "GatewayHostName"}

// ParseConnectionString parses a `Key=Value;Key=Value` connection string.
// Keys are case-insensitive; values may contain '=' (base64 padding). It
// requires HostName, SharedAccessKey (valid base64) and exactly one of
// SharedAccessKeyName (service) or DeviceId (device).
func ParseConnectionString(s string) (*ConnectionString, error) {
	values := map[string]string{}
	for part := range strings.SplitSeq(strings.TrimSpace(s), ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue // tolerate "a=b;;c=d" and a trailing ';'
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("connection string: %q is not Key=Value", part)
		}
		canon := ""
		for _, c := range connKeys {
			if strings.EqualFold(c, k) {
				canon = c
			}
		}
		if canon == "" {
			return nil, fmt.Errorf("connection string: unsupported key %q (expected %s)", k, strings.Join(connKeys, ", "))
		}
		if _, dup := values[canon]; dup {
			return nil, fmt.Errorf("connection string: key %s given twice", canon)
		}
		values[canon] = strings.TrimSpace(v)
	}
	c := &ConnectionString{
		HostName:            values["HostName"],
		SharedAccessKeyName: values["SharedAccessKeyName"],
		SharedAccessKey:     values["SharedAccessKey"],
		DeviceID:            values["DeviceId"],
		GatewayHostName:     values["GatewayHostName"],
	}
	if c.HostName == "" {
		return nil, fmt.Errorf("connection string: missing HostName")
	}
	if c.SharedAccessKey == "" {
		return nil, fmt.Errorf("connection string: missing SharedAccessKey")
	}
	if _, err := decodeKey(c.SharedAccessKey); err != nil {
		return nil, fmt.Errorf("connection string: SharedAccessKey: %w", err)
	}
	switch {
	case c.SharedAccessKeyName == "" && c.DeviceID == "":
		return nil, fmt.Errorf("connection string: missing SharedAccessKeyName (service) or DeviceId (device)")
	case c.SharedAccessKeyName != "" && c.DeviceID != "":
		return nil, fmt.Errorf("connection string: has both SharedAccessKeyName and DeviceId; give one")
	}
	return c, nil
}

// IsDevice reports whether c is a device connection string.
func (c *ConnectionString) IsDevice() bool { return c.DeviceID != "" }

// String formats c as a connection string that ParseConnectionString
// reads back.
func (c *ConnectionString) String() string {
	var b strings.Builder
	add := func(k, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k + "=" + v)
	}
	add("HostName", c.HostName)
	add("SharedAccessKeyName", c.SharedAccessKeyName)
	add("DeviceId", c.DeviceID)
	add("SharedAccessKey", c.SharedAccessKey)
	add("GatewayHostName", c.GatewayHostName)
	return b.String()
}

// decodeKey decodes a base64 shared access key.
func decodeKey(key string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return nil, fmt.Errorf("key is not valid base64: %w", err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("key is empty")
	}
	return b, nil
}
