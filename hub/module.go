package hub

import (
	"context"
	"strings"
)

// Module is a module identity in the registry, as Azure's
// PUT/GET /devices/{id}/modules/{moduleId} carry it. A module belongs to
// one device; its twin, direct methods and MQTT connection are its own
// (client id "{deviceId}/{moduleId}"). Jobs stay device-level, as on
// Azure.
type Module struct {
	ModuleID                   string         `json:"moduleId"`
	DeviceID                   string         `json:"deviceId"`
	ManagedBy                  string         `json:"managedBy,omitempty"`
	GenerationID               string         `json:"generationId,omitempty"`
	ETag                       string         `json:"etag,omitempty"`
	ConnectionState            string         `json:"connectionState,omitempty"`
	ConnectionStateUpdatedTime Time           `json:"connectionStateUpdatedTime"`
	LastActivityTime           Time           `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
}

// Modules is the module half of the registry and of twins and methods:
// what the REST API serves for /devices/{id}/modules/... and
// /twins/{id}/modules/.... The engine implements it; a hub.Client that
// does not (a dry-run's simulated hub) has no modules.
//
// Every method refuses malformed ids (CheckDeviceID, CheckModuleID) with
// ArgumentInvalid, and answers DeviceNotFound when the device does not
// exist and ModuleNotFound when it exists without the module.
type Modules interface {
	// CreateModule registers a module on an existing device; empty keys
	// are generated. Errors: DeviceNotFound,
	// ModuleAlreadyExistsOnDevice, ArgumentInvalid, IotHubQuotaExceeded
	// (the device has MaxModulesPerDevice modules).
	CreateModule(ctx context.Context, m *Module) (*Module, error)
	// GetModule returns a module identity.
	GetModule(ctx context.Context, deviceID, moduleID string) (*Module, error)
	// UpdateModule replaces a module's keys (empty ones are kept) when
	// etag is "", "*" or the module's etag. Errors: PreconditionFailed.
	UpdateModule(ctx context.Context, m *Module, etag string) (*Module, error)
	// DeleteModule removes a module and its twin when etag is "", "*" or
	// the module's etag, and disconnects it. Errors: PreconditionFailed.
	DeleteModule(ctx context.Context, deviceID, moduleID, etag string) error
	// ListModules returns the modules of a device, ordered by id.
	ListModules(ctx context.Context, deviceID string) ([]*Module, error)

	// GetModuleTwin, UpdateModuleTwin and ReplaceModuleTwin are GetTwin,
	// UpdateTwin and ReplaceTwin of hub.Client for a module's twin.
	GetModuleTwin(ctx context.Context, deviceID, moduleID string) (*Twin, error)
	UpdateModuleTwin(ctx context.Context, deviceID, moduleID string, patch *TwinPatch, etag string) (*Twin, error)
	ReplaceModuleTwin(ctx context.Context, deviceID, moduleID string, t *TwinPatch, etag string) (*Twin, error)

	// InvokeModuleMethod is InvokeMethod of hub.Client for a connected
	// module.
	InvokeModuleMethod(ctx context.Context, deviceID, moduleID string, req *MethodRequest) (*MethodResponse, error)
}

// MaxModulesPerDevice is how many module identities one device may have,
// Azure's documented limit (module twins guide). The code of the refusal
// is IotHubQuotaExceeded here; Azure documents none for it.
const MaxModulesPerDevice = 50

// CheckModuleID returns an ArgumentInvalid *Error unless id is 1 to 128
// characters of the device id alphabet (Azure documents the same rules
// for module ids).
func CheckModuleID(id string) error { return checkID("module id", id, deviceIDPunct) }

// ModuleKey is the registry key of a module, "{deviceId}/{moduleId}": the
// store's row id of its identity and twin, and its MQTT client id. '/' is
// in neither id's alphabet, so the key is unambiguous, and a device id
// never contains it.
func ModuleKey(deviceID, moduleID string) string { return deviceID + "/" + moduleID }

// SplitModuleKey returns the device and module ids of a module key, and
// false for a device id (no '/').
func SplitModuleKey(key string) (deviceID, moduleID string, ok bool) {
	return strings.Cut(key, "/")
}

// IsModuleKey reports whether a registry key is a module's.
func IsModuleKey(key string) bool { return strings.IndexByte(key, '/') >= 0 }

// CheckMQTTClientID checks an MQTT client id: a device id
// (CheckMQTTDeviceID) or a module key whose ids are both device ids
// without MQTT wildcards.
func CheckMQTTClientID(id string) error {
	dev, mod, ok := SplitModuleKey(id)
	if !ok {
		return CheckMQTTDeviceID(id)
	}
	if err := CheckMQTTDeviceID(dev); err != nil {
		return err
	}
	if err := CheckModuleID(mod); err != nil {
		return err
	}
	if i := strings.IndexAny(mod, "+#"); i >= 0 {
		return Errorf(CodeArgumentInvalid, "module id %s contains %q at byte %d, an MQTT wildcard: a module with it cannot connect over MQTT", quoteID(mod), mod[i], i)
	}
	return nil
}
