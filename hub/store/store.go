package store

import (
	"context"
	"errors"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/query"
)

// Sentinel errors of every Store; the engine maps them to hub codes.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// Device is a device identity with its twin sections as the store keeps
// them. Desired and Reported carry their "$version" and "$metadata" keys;
// Version counts changes of tags and desired properties (the twin's
// "version", from which its etag is derived).
type Device struct {
	hub.Device
	Tags     map[string]any
	Desired  map[string]any
	Reported map[string]any
	Version  int64
}

// DeviceUpdate is one device's part of [Store.UpdateDevices].
type DeviceUpdate struct {
	ID   string
	Fn   func(*Device) error
	Recs []*hub.DeviceJob
}

// Store persists the hub's state. Implementations are safe for concurrent
// use. Update functions run inside a transaction: fn's error aborts it and
// is returned as is.
type Store interface {
	// CreateDevice inserts a device. Errors: ErrConflict.
	CreateDevice(ctx context.Context, d *Device) error
	// GetDevice returns a device. Errors: ErrNotFound.
	GetDevice(ctx context.Context, id string) (*Device, error)
	// UpdateDevice reads a device, lets fn change it and writes it back
	// atomically, together with recs (device-job records, inserted or
	// replaced): all of it is stored or none. A job's twin update and the
	// record that says it was applied are one write, so a crash can never
	// leave a patch applied but not recorded. Errors: ErrNotFound, or fn's
	// error.
	UpdateDevice(ctx context.Context, id string, fn func(*Device) error, recs ...*hub.DeviceJob) (*Device, error)
	// UpdateDevices is UpdateDevice for many devices in one transaction,
	// a group commit: a twin job's concurrent updates share the cost of
	// committing. Each update is all or nothing for its device: one whose
	// device is missing or whose Fn fails is left out, with its error in
	// errs[i] (devs[i] nil), and the others are written. err is the
	// transaction's own failure, which then stored nothing.
	UpdateDevices(ctx context.Context, ups []DeviceUpdate) (devs []*Device, errs []error, err error)
	// DeleteDevice removes a device. Errors: ErrNotFound.
	DeleteDevice(ctx context.Context, id string) error
	// ScanDevices returns up to limit devices with ids greater than
	// afterID, in id order.
	ScanDevices(ctx context.Context, afterID string, limit int) ([]*Device, error)

	// CreateJob inserts a job. Errors: ErrConflict.
	CreateJob(ctx context.Context, j *hub.Job) error
	// GetJob returns a job. Errors: ErrNotFound.
	GetJob(ctx context.Context, id string) (*hub.Job, error)
	// PutJob replaces a stored job. Errors: ErrNotFound.
	PutJob(ctx context.Context, j *hub.Job) error
	// ListJobs returns every job, newest first.
	ListJobs(ctx context.Context) ([]*hub.Job, error)
	// PutDeviceJobs inserts or replaces per-device job records and
	// replaces the given jobs, in one transaction: all or nothing.
	// Errors: ErrNotFound when one of jobs is not stored.
	PutDeviceJobs(ctx context.Context, djs []*hub.DeviceJob, jobs ...*hub.Job) error
	// ScanDeviceJobs returns up to limit device-job records of one job
	// (all jobs when jobID is ""), after the given (jobID, deviceID) key,
	// in key order.
	ScanDeviceJobs(ctx context.Context, jobID string, after [2]string, limit int) ([]*hub.DeviceJob, error)

	// QueryDevices answers a query FROM devices over the twin documents
	// of [Device.Twin], exactly as [EvalDevices] does (which defines the
	// paging and row rules). Errors: query errors for what the store
	// cannot evaluate.
	QueryDevices(ctx context.Context, q *query.Query, after string, limit int) (*Page, error)
	// QueryDeviceJobs answers a query FROM devices.jobs exactly as
	// [EvalDeviceJobs] does.
	QueryDeviceJobs(ctx context.Context, q *query.Query, after string, limit int) (*Page, error)

	Close() error
}
