package hub

// Device status and connection state values, as Azure spells them.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"

	Connected    = "Connected"
	Disconnected = "Disconnected"
)

// Device is a device identity in the registry.
type Device struct {
	DeviceID                   string         `json:"deviceId"`
	GenerationID               string         `json:"generationId,omitempty"`
	ETag                       string         `json:"etag,omitempty"`
	ConnectionState            string         `json:"connectionState,omitempty"`
	Status                     string         `json:"status,omitempty"`
	StatusReason               *string        `json:"statusReason"`
	ConnectionStateUpdatedTime Time           `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          Time           `json:"statusUpdatedTime"`
	LastActivityTime           Time           `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	Capabilities               Capabilities   `json:"capabilities"`
}

// Authentication holds a device's credentials. Only symmetric keys ("sas")
// are supported.
type Authentication struct {
	SymmetricKey   SymmetricKey   `json:"symmetricKey"`
	X509Thumbprint X509Thumbprint `json:"x509Thumbprint"`
	Type           string         `json:"type"`
}

// SymmetricKey is a device's pair of base64 keys; either may sign its SAS
// tokens. Empty keys in a create request mean "generate".
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509Thumbprint is kept for wire compatibility; always null here.
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// Capabilities is kept for wire compatibility.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}
