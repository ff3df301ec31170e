package hub

// JobType is the type of a jobs v2 job.
type JobType string

// The job types the hub runs.
const (
	JobDeviceMethod JobType = "scheduleDeviceMethod"
	JobUpdateTwin   JobType = "scheduleUpdateTwin"
)

// JobStatus is a job's status as Azure spells it.
type JobStatus string

// Job statuses. A job moves queued → (scheduled) → running → completed |
// failed | cancelled.
const (
	JobQueued    JobStatus = "queued"
	JobScheduled JobStatus = "scheduled"
	JobRunning   JobStatus = "running"
	JobCompleted JobStatus = "completed"
	JobFailed    JobStatus = "failed"
	JobCancelled JobStatus = "cancelled"
)

// Terminal reports whether a job in this status will not change again.
func (s JobStatus) Terminal() bool {
	return s == JobCompleted || s == JobFailed || s == JobCancelled
}

// DefaultMaxExecutionTime is the max execution time of a job that names
// none, in seconds.
const DefaultMaxExecutionTime = 3600

// Job is a jobs v2 job: the create request and the JobResponse.
type Job struct {
	JobID                     string               `json:"jobId"`
	QueryCondition            string               `json:"queryCondition,omitempty"`
	CreatedTime               *Time                `json:"createdTime,omitempty"`
	StartTime                 *Time                `json:"startTime"`
	EndTime                   *Time                `json:"endTime,omitempty"`
	MaxExecutionTimeInSeconds int64                `json:"maxExecutionTimeInSeconds,omitempty"`
	Type                      JobType              `json:"type"`
	CloudToDeviceMethod       *MethodRequest       `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                *TwinPatch           `json:"updateTwin,omitempty"`
	Status                    JobStatus            `json:"status,omitempty"`
	FailureReason             string               `json:"failureReason,omitempty"`
	StatusMessage             string               `json:"statusMessage,omitempty"`
	DeviceJobStatistics       *DeviceJobStatistics `json:"deviceJobStatistics,omitempty"`
	// StartedThrough is the hub's durable progress through a method
	// job's devices, which start in device id order: a device with an id
	// up to it may have been sent the method. Stores keep it; it is never
	// sent over the wire.
	StartedThrough string `json:"-"`
}

// DeviceJobStatistics counts a job's devices by state.
type DeviceJobStatistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
	// WaitingForBrokerCount is an iotjobs extension: how many of the
	// pending devices are held back because the device broker is down
	// (no operation starts into an outage). Zero, and absent, otherwise.
	WaitingForBrokerCount int `json:"waitingForBrokerCount,omitempty"`
}

// DeviceJobStatus is the status of one device within a job. Azure spells
// the cancelled device state with one "l".
type DeviceJobStatus string

// Device job statuses.
const (
	DeviceJobPending   DeviceJobStatus = "pending"
	DeviceJobScheduled DeviceJobStatus = "scheduled"
	DeviceJobRunning   DeviceJobStatus = "running"
	DeviceJobCompleted DeviceJobStatus = "completed"
	DeviceJobFailed    DeviceJobStatus = "failed"
	DeviceJobCanceled  DeviceJobStatus = "canceled"
)

// Terminal reports whether a device job in this status is final.
func (s DeviceJobStatus) Terminal() bool {
	return s == DeviceJobCompleted || s == DeviceJobFailed || s == DeviceJobCanceled
}

// DeviceJob is the result of a job on one device: a row of
// SELECT * FROM devices.jobs.
type DeviceJob struct {
	DeviceID               string            `json:"deviceId"`
	JobID                  string            `json:"jobId"`
	JobType                JobType           `json:"jobType"`
	Status                 DeviceJobStatus   `json:"status"`
	StartTimeUtc           *Time             `json:"startTimeUtc,omitempty"`
	EndTimeUtc             *Time             `json:"endTimeUtc,omitempty"`
	CreatedDateTimeUtc     *Time             `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUtc *Time             `json:"lastUpdatedDateTimeUtc,omitempty"`
	Outcome                *DeviceJobOutcome `json:"outcome,omitempty"`
	Error                  *DeviceJobError   `json:"error,omitempty"`
}

// DeviceJobOutcome is what a device answered to a method job.
type DeviceJobOutcome struct {
	DeviceMethodResponse *MethodResponse `json:"deviceMethodResponse"`
}

// DeviceJobError says why a device job failed: an Azure error code name
// and a description.
type DeviceJobError struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}
