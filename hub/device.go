package hub

import "encoding/json"

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

// Authentication types, as Azure spells them. A "sas" device signs SAS
// tokens with its symmetric keys; a "selfSigned" device presents a client
// certificate whose thumbprint is registered; a "certificateAuthority"
// device presents a certificate that chains to a CA registered with the
// hub (Certificates) and names the device in its subject CN.
const (
	AuthSAS                  = "sas"
	AuthSelfSigned           = "selfSigned"
	AuthCertificateAuthority = "certificateAuthority"
	AuthNone                 = "none"
)

// IsX509 reports whether a device of authentication type typ connects
// with a client certificate.
func IsX509(typ string) bool { return typ == AuthSelfSigned || typ == AuthCertificateAuthority }

// Authentication holds a device's credentials: symmetric keys for a "sas"
// device (the default), thumbprints for a "selfSigned" one, neither for a
// "certificateAuthority" one.
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

// X509Thumbprint holds a self-signed device's certificate thumbprints:
// the hex SHA-1 (40 digits) or SHA-256 (64 digits) of the certificate's
// DER, stored in upper case; null for other devices.
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// Capabilities is kept for wire compatibility.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// MaxStatusReason is the longest statusReason Azure accepts, in
// characters.
const MaxStatusReason = 128

// RegistryStatistics counts the registry's devices, as Azure's
// GET /statistics/devices answers.
type RegistryStatistics struct {
	TotalDeviceCount    int64 `json:"totalDeviceCount"`
	EnabledDeviceCount  int64 `json:"enabledDeviceCount"`
	DisabledDeviceCount int64 `json:"disabledDeviceCount"`
}

// Import modes of a bulk registry operation. Azure's clients differ in
// case (the Node SDK sends "Update" and "Delete"); hubs compare them
// without regard to case.
const (
	ImportCreate            = "create"
	ImportCreateOrUpdate    = "createOrUpdate"
	ImportUpdate            = "update"
	ImportUpdateIfMatchETag = "updateIfMatchETag"
	ImportDelete            = "delete"
	ImportDeleteIfMatchETag = "deleteIfMatchETag"
)

// MaxImportDevices is how many devices one bulk registry operation may
// hold, as Azure's SDKs enforce.
const MaxImportDevices = 100

// ImportDevice is one entry of a bulk registry operation (POST /devices):
// a device id, what to do with it, and the identity fields to write.
// ETag is checked by the *IfMatchETag modes only.
type ImportDevice struct {
	ID             string          `json:"id"`
	ETag           string          `json:"eTag,omitempty"`
	ImportMode     string          `json:"importMode"`
	Status         string          `json:"status,omitempty"`
	StatusReason   *string         `json:"statusReason,omitempty"`
	Authentication *Authentication `json:"authentication,omitempty"`
}

// BulkResult is the answer of a bulk registry operation: one error per
// device whose operation failed; IsSuccessful when there is none.
type BulkResult struct {
	IsSuccessful bool                  `json:"isSuccessful"`
	Errors       []DeviceImportError   `json:"errors"`
	Warnings     []DeviceImportWarning `json:"warnings"`
}

// DeviceImportError is why one device's bulk operation failed: the hub
// error code and its message.
type DeviceImportError struct {
	DeviceID    string `json:"deviceId"`
	ErrorCode   string `json:"errorCode"`
	ErrorStatus string `json:"errorStatus"`
}

// DeviceImportWarning is a warning about one device's bulk operation, in
// Azure's shape. Our hub issues none; Azure's may.
type DeviceImportWarning struct {
	DeviceID      string `json:"deviceId"`
	WarningCode   string `json:"warningCode"`
	WarningStatus string `json:"warningStatus"`
}

// MarshalJSON writes an X.509 device's keys, which it has none of, as
// null, as Azure does.
func (a Authentication) MarshalJSON() ([]byte, error) {
	type plain Authentication // without this method
	if !IsX509(a.Type) {
		return json.Marshal(plain(a))
	}
	type noKeys struct {
		PrimaryKey   *string `json:"primaryKey"`
		SecondaryKey *string `json:"secondaryKey"`
	}
	return json.Marshal(struct {
		SymmetricKey   noKeys         `json:"symmetricKey"`
		X509Thumbprint X509Thumbprint `json:"x509Thumbprint"`
		Type           string         `json:"type"`
	}{X509Thumbprint: a.X509Thumbprint, Type: a.Type})
}
