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
// against exactly this document. A module's row (key
// "{deviceId}/{moduleId}", hub.ModuleKey) gives its module twin, with
// both ids.
func (d *Device) Twin() *hub.Twin {
	dev, mod, _ := hub.SplitModuleKey(d.DeviceID)
	t := &hub.Twin{
		DeviceID:           dev,
		ModuleID:           mod,
		ETag:               ETag(d.Version),
		DeviceETag:         d.ETag,
		Status:             d.Status,
		StatusReason:       d.StatusReason,
		StatusUpdateTime:   &d.StatusUpdatedTime,
		ConnectionState:    d.ConnectionState,
		LastActivityTime:   &d.LastActivityTime,
		AuthenticationType: authType(d),
		X509Thumbprint:     d.Authentication.X509Thumbprint,
		Version:            d.Version,
		Tags:               d.Tags,
		Properties:         hub.Properties{Desired: d.Desired, Reported: d.Reported},
		Capabilities:       d.Capabilities,
		DeviceScope:        d.DeviceScope,
		ParentScopes:       d.ParentScopes,
	}
	if t.Tags == nil {
		t.Tags = map[string]any{}
	}
	return t
}

// TwinDoc is Doc(d.Twin()), the query document of a stored device, built
// directly: the sections are shared, not copied (nobody may change them),
// and the few scalar fields are written as the JSON round trip would give
// them. A dry-run builds one per device change, and the round trip was
// most of that. TestTwinDoc holds the two equal.
func TwinDoc(d *Device) map[string]any {
	dev, mod, module := hub.SplitModuleKey(d.DeviceID)
	doc := map[string]any{
		"deviceId":                  validUTF8(dev),
		"etag":                      ETag(d.Version),
		"statusUpdateTime":          wireTime(d.StatusUpdatedTime),
		"lastActivityTime":          wireTime(d.LastActivityTime),
		"cloudToDeviceMessageCount": 0.0,
		"authenticationType":        authType(d),
		"x509Thumbprint":            map[string]any{"primaryThumbprint": thumbDoc(d.Authentication.X509Thumbprint.PrimaryThumbprint), "secondaryThumbprint": thumbDoc(d.Authentication.X509Thumbprint.SecondaryThumbprint)},
		"modelId":                   "",
		"capabilities":              map[string]any{"iotEdge": d.Capabilities.IotEdge},
	}
	if d.DeviceScope != "" {
		doc["deviceScope"] = validUTF8(d.DeviceScope)
	}
	if l := d.ParentScopes.List(); l != nil {
		ps := make([]any, len(l))
		for i, s := range l {
			ps[i] = validUTF8(s)
		}
		doc["parentScopes"] = ps
	}
	if module && mod != "" {
		doc["moduleId"] = validUTF8(mod)
	}
	if d.ETag != "" {
		doc["deviceEtag"] = validUTF8(d.ETag)
	}
	if d.Status != "" {
		doc["status"] = validUTF8(d.Status)
	}
	if d.StatusReason != nil {
		doc["statusReason"] = validUTF8(*d.StatusReason)
	}
	if d.ConnectionState != "" {
		doc["connectionState"] = validUTF8(d.ConnectionState)
	}
	if d.Version != 0 {
		doc["version"] = float64(d.Version)
	}
	if len(d.Tags) > 0 {
		doc["tags"] = d.Tags
	}
	props := map[string]any{}
	if len(d.Desired) > 0 {
		props["desired"] = d.Desired
	}
	if len(d.Reported) > 0 {
		props["reported"] = d.Reported
	}
	doc["properties"] = props
	return doc
}

// wireTime is a time as its JSON string (hub.Time's encoding).
func wireTime(t hub.Time) string {
	b, _ := t.MarshalJSON()
	return string(b[1 : len(b)-1])
}

// authType is a device's authentication type; devices stored before
// X.509 devices existed have none, and are "sas".
func authType(d *Device) string {
	if d.Authentication.Type == "" {
		return hub.AuthSAS
	}
	return validUTF8(d.Authentication.Type)
}

func thumbDoc(p *string) any {
	if p == nil {
		return nil
	}
	return validUTF8(*p)
}
