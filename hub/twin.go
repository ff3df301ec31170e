package hub

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
}
