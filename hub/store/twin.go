package store

import (
	"encoding/base64"
	"encoding/binary"

	"github.com/iotjobs/iotjobs/hub"
)

// ETag renders a twin version as Azure does: base64 of 8 big-endian bytes
// ("AAAAAAAAAAE=" is version 1).
func ETag(version int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(version))
	return base64.StdEncoding.EncodeToString(b[:])
}

// Twin builds the twin document of a stored device: what the hub returns
// for it and what queries over devices see. Every store answers queries
// against exactly this document.
func (d *Device) Twin() *hub.Twin {
	t := &hub.Twin{
		DeviceID:           d.DeviceID,
		ETag:               ETag(d.Version),
		DeviceETag:         d.ETag,
		Status:             d.Status,
		StatusReason:       d.StatusReason,
		StatusUpdateTime:   &d.StatusUpdatedTime,
		ConnectionState:    d.ConnectionState,
		LastActivityTime:   &d.LastActivityTime,
		AuthenticationType: "sas",
		Version:            d.Version,
		Tags:               d.Tags,
		Properties:         hub.Properties{Desired: d.Desired, Reported: d.Reported},
	}
	if t.Tags == nil {
		t.Tags = map[string]any{}
	}
	return t
}
