package hub

import "encoding/json"

// Limits of a direct-method call, as Azure enforces them.
const (
	DefaultResponseTimeout = 30
	MinResponseTimeout     = 5
	MaxResponseTimeout     = 300
	MaxConnectTimeout      = 300
	MaxMethodPayload       = 128 * 1024
)

// MethodRequest is a direct-method invocation: the body of
// POST /twins/{id}/methods and the cloudToDeviceMethod of a job.
type MethodRequest struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int             `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  int             `json:"connectTimeoutInSeconds,omitempty"`
}

// MethodResponse is what the device answered: its status and JSON payload
// (null when it sent none).
type MethodResponse struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}
