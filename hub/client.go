package hub

import "context"

// Client is the service side of a hub: what the runner and the CLI use.
// The in-process engine (hub/engine), the REST client (hub/rest, for our
// hub or an Azure IoT Hub) and the dry-run's simulated hub implement it.
//
// Every method returns an *Error whose Code is one of the Code constants;
// the ones each method documents are those a caller may branch on. A
// remote implementation also returns CodeUnreachable and CodeUnauthorized.
// A hub refuses a malformed device or job id, etag or out-of-range number
// (CheckDeviceID, CheckJobID, ParseETag, limits.go) with ArgumentInvalid
// before it changes anything.
type Client interface {
	// CreateDevice registers a device: a sas device (the default) with
	// its keys, empty ones generated; a selfSigned device with its
	// certificate thumbprints; a certificateAuthority device with
	// neither. Errors: ArgumentInvalid, DeviceAlreadyExists.
	CreateDevice(ctx context.Context, d *Device) (*Device, error)
	// GetDevice returns a device identity. Errors: DeviceNotFound.
	GetDevice(ctx context.Context, id string) (*Device, error)
	// DeleteDevice removes a device and its twin; etag "" or "*" deletes
	// unconditionally. Errors: DeviceNotFound, PreconditionFailed.
	DeleteDevice(ctx context.Context, id, etag string) error
	// UpdateDevice replaces a device's status, statusReason (at most 128
	// characters) and credentials when etag is "", "*" or the device's
	// etag; an empty key keeps the current one, absent thumbprints keep a
	// selfSigned device's, an empty authentication type keeps the current
	// type (another type drops the old type's credentials) and an empty
	// status keeps the current status. It sets statusUpdatedTime when the status changes
	// and gives the device a new etag. Disabling a device disconnects it
	// at once and refuses its connections and method calls until it is
	// enabled again. Errors: DeviceNotFound, PreconditionFailed,
	// ArgumentInvalid.
	UpdateDevice(ctx context.Context, d *Device, etag string) (*Device, error)
	// ListDevices returns up to top devices ordered by id; top outside
	// 1–1000 means 1000, as Azure's GET /devices?top=n.
	ListDevices(ctx context.Context, top int) ([]*Device, error)
	// DeviceStatistics counts the registry's devices by status.
	DeviceStatistics(ctx context.Context) (*RegistryStatistics, error)
	// ImportDevices applies at most MaxImportDevices create, update or
	// delete operations (Azure's bulk registry operation). Failures of
	// single devices are listed in the result, not returned as an error;
	// empty keys of created devices are generated. Errors:
	// ArgumentInvalid (no entries, or more than MaxImportDevices).
	ImportDevices(ctx context.Context, devs []*ImportDevice) (*BulkResult, error)

	// GetTwin returns a device twin. Errors: DeviceNotFound.
	GetTwin(ctx context.Context, id string) (*Twin, error)
	// UpdateTwin merges patch into the twin's tags and desired properties
	// when etag is "", "*" or the twin's etag, and returns the whole twin.
	// Errors: DeviceNotFound, PreconditionFailed, ArgumentInvalid.
	UpdateTwin(ctx context.Context, id string, patch *TwinPatch, etag string) (*Twin, error)
	// ReplaceTwin replaces the twin's tags and desired properties
	// wholesale with those of t (absent ones become empty; reported
	// properties are untouched) when etag is "", "*" or the twin's etag,
	// pushes the new desired properties to the device, and returns the
	// whole twin. Errors: DeviceNotFound, PreconditionFailed,
	// ArgumentInvalid, MessageTooLarge.
	ReplaceTwin(ctx context.Context, id string, t *TwinPatch, etag string) (*Twin, error)

	// InvokeMethod calls a direct method on a device and returns its
	// answer. Errors: DeviceNotFound, DeviceNotOnline (not connected
	// within the connect timeout), GatewayTimeout (no answer within the
	// response timeout), ArgumentInvalid.
	InvokeMethod(ctx context.Context, id string, req *MethodRequest) (*MethodResponse, error)

	// Query runs an IoT Hub query (FROM devices, devices.modules or
	// devices.jobs) and returns one page. FROM devices reads devices only;
	// module twins, which carry moduleId, are FROM devices.modules.
	// Errors: ArgumentInvalid (syntax, with the reason).
	Query(ctx context.Context, query string, opts QueryOptions) (*QueryResult, error)

	// CreateJob schedules a job. Errors: ArgumentInvalid,
	// GenericBadRequest (unknown type), JobAlreadyExists.
	CreateJob(ctx context.Context, job *Job) (*Job, error)
	// GetJob returns a job with its statistics. Errors: JobNotFound.
	GetJob(ctx context.Context, id string) (*Job, error)
	// WatchJob returns the job once its status or statistics differ from
	// last (immediately when last is nil), or when ctx ends. Hubs that
	// cannot notify are polled. Errors: JobNotFound.
	WatchJob(ctx context.Context, id string, last *Job) (*Job, error)
	// CancelJob cancels a job that has not finished. Errors: JobNotFound.
	CancelJob(ctx context.Context, id string) (*Job, error)
	// QueryJobs lists jobs, newest first. Errors: ArgumentInvalid.
	QueryJobs(ctx context.Context, q JobQuery) ([]*Job, string, error)
}

// SameJobState reports whether two job snapshots have the same status and
// statistics, which is what WatchJob waits to change.
func SameJobState(a, b *Job) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Status != b.Status || (a.EndTime == nil) != (b.EndTime == nil) {
		return false
	}
	if a.DeviceJobStatistics == nil || b.DeviceJobStatistics == nil {
		return a.DeviceJobStatistics == b.DeviceJobStatistics
	}
	return *a.DeviceJobStatistics == *b.DeviceJobStatistics
}
