package hub

import (
	"bytes"
	"encoding/json"
)

// Twin is a device twin as Azure returns it: identity fields, tags, and
// desired and reported properties. Tags and properties are JSON objects
// decoded with encoding/json (numbers are float64); desired and reported
// carry "$version" and "$metadata" keys as Azure's do.
type Twin struct {
	DeviceID                  string         `json:"deviceId"`
	ModuleID                  string         `json:"moduleId,omitempty"` // a module's twin only
	ETag                      string         `json:"etag,omitempty"`
	DeviceETag                string         `json:"deviceEtag,omitempty"`
	Status                    string         `json:"status,omitempty"`
	StatusReason              *string        `json:"statusReason,omitempty"`
	StatusUpdateTime          *Time          `json:"statusUpdateTime,omitempty"`
	ConnectionState           string         `json:"connectionState,omitempty"`
	LastActivityTime          *Time          `json:"lastActivityTime,omitempty"`
	CloudToDeviceMessageCount int            `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string         `json:"authenticationType,omitempty"`
	X509Thumbprint            X509Thumbprint `json:"x509Thumbprint"`
	ModelID                   string         `json:"modelId"`
	Version                   int64          `json:"version,omitempty"`
	Tags                      map[string]any `json:"tags,omitempty"`
	Properties                Properties     `json:"properties"`
	Capabilities              Capabilities   `json:"capabilities"`
	DeviceScope               string         `json:"deviceScope,omitempty"`
	ParentScopes              Scopes         `json:"parentScopes,omitzero"`
}

// Properties holds a twin's desired and reported property sections.
type Properties struct {
	Desired  map[string]any `json:"desired,omitempty"`
	Reported map[string]any `json:"reported,omitempty"`
}

// TwinPatch is the body of a twin update (PATCH) and the updateTwin of a
// scheduleUpdateTwin job: a JSON merge patch of tags and desired
// properties, null deleting a key. Reported properties are ignored, as
// Azure does (only devices write them).
type TwinPatch struct {
	DeviceID   *string        `json:"deviceId,omitempty"`
	ETag       string         `json:"etag,omitempty"`
	Tags       map[string]any `json:"tags,omitempty"`
	Properties *Properties    `json:"properties,omitempty"`
	// ClearTags and ClearDesired record "tags": null and "properties":
	// {"desired": null}, which a map cannot hold: on Azure they remove
	// every tag or every desired property (and the device is sent a
	// patch nulling each one).
	ClearTags    bool `json:"-"`
	ClearDesired bool `json:"-"`
}

// twinPatchFields is TwinPatch without its JSON methods.
type twinPatchFields TwinPatch

// UnmarshalJSON reads a twin patch, telling a section set to null from
// an absent one.
func (p *TwinPatch) UnmarshalJSON(b []byte) error {
	var f twinPatchFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	var nulls struct {
		Tags       json.RawMessage `json:"tags"`
		Properties struct {
			Desired json.RawMessage `json:"desired"`
		} `json:"properties"`
	}
	// The first decoding succeeded, so this one can fail only on a
	// properties that is not an object, which it reported already.
	_ = json.Unmarshal(b, &nulls)
	*p = TwinPatch(f)
	p.ClearTags = isJSONNull(nulls.Tags)
	p.ClearDesired = isJSONNull(nulls.Properties.Desired)
	return nil
}

// MarshalJSON writes a twin patch, with null for a cleared section.
func (p TwinPatch) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(twinPatchFields(p))
	if err != nil || (!p.ClearTags && !p.ClearDesired) {
		return b, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if p.ClearTags {
		m["tags"] = nil
	}
	if p.ClearDesired {
		props, _ := m["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
		}
		props["desired"] = nil
		m["properties"] = props
	}
	return json.Marshal(m)
}

func isJSONNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }
