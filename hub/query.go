package hub

import "encoding/json"

// Query item types, sent as the x-ms-item-type header.
const (
	ItemTwin      = "twin"
	ItemDeviceJob = "deviceJob"
	ItemRaw       = "raw"
	ItemJob       = "jobResponse"
)

// QueryOptions pages a query: at most PageSize items (0 means the hub's
// default), continuing after Continuation when it is not empty.
type QueryOptions struct {
	PageSize     int
	Continuation string
}

// QueryResult is one page of a query: raw JSON items of ItemType, and the
// token for the next page ("" on the last page).
type QueryResult struct {
	Items        []json.RawMessage
	ItemType     string
	Continuation string
}

// JobQuery filters a job listing; empty fields match everything.
type JobQuery struct {
	Type   JobType
	Status JobStatus
	QueryOptions
}
