package rest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

// pathDeviceID is the {id} of a device route, if it is a device id
// (hub.CheckDeviceID). Every route checks its ids before anything else,
// so that a malformed id is refused the same way whatever it was for.
func pathDeviceID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	return id, hub.CheckDeviceID(id)
}

// pathJobID is the {id} of a job route, if it is a job id
// (hub.CheckJobID).
func pathJobID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	return id, hub.CheckJobID(id)
}

// putDevice creates a device, or with If-Match ("*" or the device's
// etag, quoted or not) updates it, as Azure's PUT /devices/{id} does.
func (s *Server) putDevice(w http.ResponseWriter, r *http.Request) error {
	id, err := pathDeviceID(r)
	if err != nil {
		return err
	}
	etag, update, err := ifMatch(r)
	if err != nil {
		return err
	}
	var d hub.Device
	if err := readJSON(w, r, &d); err != nil {
		return err
	}
	if d.DeviceID == "" {
		d.DeviceID = id
	}
	if d.DeviceID != id {
		return hub.Errorf(hub.CodeArgumentInvalid, "deviceId %q in the body does not match %q in the path", d.DeviceID, id)
	}
	var out *hub.Device
	if update {
		out, err = s.Hub.UpdateDevice(r.Context(), &d, etag)
	} else {
		out, err = s.Hub.CreateDevice(r.Context(), &d)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listDevices answers GET /devices?top=n with a bare array. top must be
// a whole number; outside 1..1000 it means 1000, as Azure's swagger
// documents ("any value outside 1-1000 is considered to be 1000"), which
// clients rely on, so that range is not refused. A number too large even
// for an int64 is outside it too.
func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) error {
	top := 0
	if v := strings.TrimSpace(r.URL.Query().Get("top")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange):
			n = 0 // outside 1..1000, which the hub reads as 1000
		case err != nil:
			return hub.Errorf(hub.CodeArgumentInvalid, "top %q is not a whole number: send 1 to 1000", v)
		}
		top = int(n) // the hub applies Azure's rule (hub.Client.ListDevices)
	}
	ds, err := s.Hub.ListDevices(r.Context(), top)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []*hub.Device{}
	}
	writeJSON(w, http.StatusOK, ds)
	return nil
}

func (s *Server) deviceStatistics(w http.ResponseWriter, r *http.Request) error {
	st, err := s.Hub.DeviceStatistics(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// importDevices runs a bulk registry operation: a JSON array of at most
// hub.MaxImportDevices entries. Per-device failures are in the 200
// answer's errors.
func (s *Server) importDevices(w http.ResponseWriter, r *http.Request) error {
	var devs []*hub.ImportDevice
	if err := readJSON(w, r, &devs); err != nil {
		return err
	}
	if len(devs) > hub.MaxImportDevices {
		return hub.Errorf(hub.CodeArgumentInvalid, "%d devices in one bulk operation; at most %d are allowed: split them into several calls", len(devs), hub.MaxImportDevices)
	}
	res, err := s.Hub.ImportDevices(r.Context(), devs)
	if err != nil {
		return err
	}
	if res.Errors == nil {
		res.Errors = []hub.DeviceImportError{}
	}
	if res.Warnings == nil {
		res.Warnings = []hub.DeviceImportWarning{}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) error {
	id, err := pathDeviceID(r)
	if err != nil {
		return err
	}
	d, err := s.Hub.GetDevice(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// deleteDevice deletes a device; without If-Match, or with "*", whatever
// its etag.
func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	id, err := pathDeviceID(r)
	if err != nil {
		return err
	}
	etag, _, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := s.Hub.DeleteDevice(r.Context(), id, etag); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getTwin(w http.ResponseWriter, r *http.Request) error {
	id, err := pathDeviceID(r)
	if err != nil {
		return err
	}
	t, err := s.Hub.GetTwin(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// patchTwin merges a twin patch. The etag comes from If-Match (quoted,
// "*" is the wildcard) or, without the header, from the body.
func (s *Server) patchTwin(w http.ResponseWriter, r *http.Request) error {
	id, p, etag, err := readTwinBody(w, r)
	if err != nil {
		return err
	}
	t, err := s.Hub.UpdateTwin(r.Context(), id, p, etag)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// putTwin replaces a twin's tags and desired properties. The etag comes
// from If-Match or, without the header, from the body, as for PATCH.
func (s *Server) putTwin(w http.ResponseWriter, r *http.Request) error {
	id, p, etag, err := readTwinBody(w, r)
	if err != nil {
		return err
	}
	t, err := s.Hub.ReplaceTwin(r.Context(), id, p, etag)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// readTwinBody reads the body of a twin PATCH or PUT and its etag: If-Match
// when present, else the body's "etag" ("" when neither is: no
// condition).
func readTwinBody(w http.ResponseWriter, r *http.Request) (string, *hub.TwinPatch, string, error) {
	id, err := pathDeviceID(r)
	if err != nil {
		return "", nil, "", err
	}
	etag, present, err := ifMatch(r)
	if err != nil {
		return "", nil, "", err
	}
	var p hub.TwinPatch
	if err := readJSON(w, r, &p); err != nil {
		return "", nil, "", err
	}
	if p.DeviceID != nil && *p.DeviceID != "" && *p.DeviceID != id {
		return "", nil, "", hub.Errorf(hub.CodeArgumentInvalid, "deviceId %q in the body does not match %q in the path", *p.DeviceID, id)
	}
	if !present {
		if etag, err = hub.ParseOptionalETag(p.ETag); err != nil {
			return "", nil, "", hub.Errorf(hub.CodeArgumentInvalid, "etag in the body: %s", hub.ErrorMessage(err))
		}
	}
	return id, &p, etag, nil
}

// invokeMethod calls a direct method. Its failures are reported in Shape
// B, as Azure does, except for an unknown device.
func (s *Server) invokeMethod(w http.ResponseWriter, r *http.Request) error {
	id, err := pathDeviceID(r)
	if err != nil {
		return &methodError{err: err}
	}
	return serveMethod(w, r, func(ctx context.Context, req *hub.MethodRequest) (*hub.MethodResponse, error) {
		return s.Hub.InvokeMethod(ctx, id, req)
	})
}

// serveMethod reads, checks and makes a direct method call (a device's
// or a module's), and answers with its response.
func serveMethod(w http.ResponseWriter, r *http.Request, call func(context.Context, *hub.MethodRequest) (*hub.MethodResponse, error)) error {
	var req hub.MethodRequest
	if err := readJSON(w, r, &req); err != nil {
		return &methodError{err: err}
	}
	if err := validateMethod(&req); err != nil {
		return &methodError{err: err}
	}
	res, err := call(r.Context(), &req)
	if err != nil {
		return &methodError{err: err, timeout: time.Duration(req.ConnectTimeoutInSeconds) * time.Second}
	}
	if res == nil {
		return hub.Errorf(hub.CodeServerError, "the hub returned no method response")
	}
	if res.Payload == nil {
		res.Payload = json.RawMessage("null")
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// validateMethod applies Azure's limits to a method request, filling in
// the default response timeout.
func validateMethod(req *hub.MethodRequest) error {
	if strings.TrimSpace(req.MethodName) == "" {
		return hub.Errorf(hub.CodeArgumentInvalid, "methodName is required")
	}
	if err := hub.CheckMethodRequest(req); err != nil {
		return err
	}
	if req.ResponseTimeoutInSeconds == 0 {
		req.ResponseTimeoutInSeconds = hub.DefaultResponseTimeout
	}
	return nil
}

// query runs a device query. The body's "query" key is matched without
// regard to case, as amenzhinsky/iothub sends "Query".
func (s *Server) query(w http.ResponseWriter, r *http.Request) error {
	var body map[string]json.RawMessage
	if err := readJSON(w, r, &body); err != nil {
		return err
	}
	var q *string
	seen := ""
	for k, v := range body {
		if strings.EqualFold(k, "query") {
			if seen != "" {
				return hub.Errorf(hub.CodeFormatError, "invalid JSON body: both %q and %q: send the query once, as \"query\"", seen, k)
			}
			seen = k
			if err := json.Unmarshal(v, &q); err != nil {
				return hub.Errorf(hub.CodeFormatError, "invalid JSON body: %q must be a string", k)
			}
		}
	}
	if q == nil || strings.TrimSpace(*q) == "" {
		return hub.Errorf(hub.CodeArgumentInvalid, `request body has no "query": send {"query":"SELECT * FROM devices"}`)
	}
	opts, err := pageOptions(r)
	if err != nil {
		return err
	}
	res, err := s.Hub.Query(r.Context(), *q, opts)
	if err != nil {
		return err
	}
	setPageHeaders(w, res.ItemType, res.Continuation)
	writeArray(w, res.Items)
	return nil
}

// pageOptions reads the paging request headers.
func pageOptions(r *http.Request) (hub.QueryOptions, error) {
	n, err := parsePageSize(r.Header)
	if err != nil {
		return hub.QueryOptions{}, err
	}
	return hub.QueryOptions{PageSize: n, Continuation: r.Header.Get(headerContinuation)}, nil
}

// setPageHeaders sets the paging response headers. x-ms-continuation is
// left out on the last page: an empty one makes the Node SDK loop forever.
func setPageHeaders(w http.ResponseWriter, itemType, continuation string) {
	if itemType != "" {
		w.Header().Set(headerItemType, itemType)
	}
	if continuation != "" {
		w.Header().Set(headerContinuation, continuation)
	}
}

// putJob creates a job.
func (s *Server) putJob(w http.ResponseWriter, r *http.Request) error {
	id, err := pathJobID(r)
	if err != nil {
		return err
	}
	var j hub.Job
	if err := readJSON(w, r, &j); err != nil {
		return err
	}
	if j.JobID == "" {
		j.JobID = id
	}
	if j.JobID != id {
		return hub.Errorf(hub.CodeArgumentInvalid, "jobId %q in the body does not match %q in the path", j.JobID, id)
	}
	if j.Type != hub.JobDeviceMethod && j.Type != hub.JobUpdateTwin {
		return hub.Errorf(hub.CodeGenericBadRequest, "BadRequest: unknown job type %q (use %q or %q)", j.Type, hub.JobDeviceMethod, hub.JobUpdateTwin)
	}
	ctx := r.Context()
	if v := r.Header.Get(hub.PlanHeader); v != "" {
		ctx = hub.WithPlan(ctx, hub.ParsePlanRef(v))
	}
	out, err := s.Hub.CreateJob(ctx, &j)
	if err != nil {
		return err
	}
	writeJob(w, out)
	return nil
}

// getJob returns a job, long-polling when the request carries our
// x-iotjobs-wait and x-iotjobs-state headers and the job is still in that
// state.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	id, err := pathJobID(r)
	if err != nil {
		return err
	}
	wait, err := parseWait(r.Header.Get(headerWait))
	if err != nil {
		return err
	}
	j, err := s.Hub.GetJob(r.Context(), id)
	if err != nil {
		return err
	}
	if state := r.Header.Get(headerState); wait > 0 && state != "" && state == stateToken(j) {
		if j, err = s.watch(r.Context(), id, j, wait); err != nil {
			return err
		}
	}
	writeJob(w, j)
	return nil
}

// watch waits up to wait for job id to leave the state of last and
// returns the job as it is then. A watch that ends with its wait is not
// an error: the answer is simply the unchanged job.
func (s *Server) watch(ctx context.Context, id string, last *hub.Job, wait time.Duration) (*hub.Job, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	j, err := s.Hub.WatchJob(wctx, id, last)
	switch {
	case err == nil && j != nil:
		return j, nil
	case ctx.Err() != nil:
		return nil, hub.Errorf(hub.CodeGatewayTimeout, "request ended while watching job %q: %v", id, ctx.Err())
	case err == nil || wctx.Err() != nil:
		return s.Hub.GetJob(ctx, id)
	}
	return nil, err
}

// parseWait reads x-iotjobs-wait: whole seconds 1..60, or absent.
func parseWait(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxWait {
		return 0, hub.Errorf(hub.CodeArgumentInvalid, "%s %q must be whole seconds from 1 to %d", headerWait, v, maxWait)
	}
	return time.Duration(n) * time.Second, nil
}

// writeJob answers with a job and its state token.
func writeJob(w http.ResponseWriter, j *hub.Job) {
	w.Header().Set(headerState, stateToken(j))
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) error {
	id, err := pathJobID(r)
	if err != nil {
		return err
	}
	j, err := s.Hub.CancelJob(r.Context(), id)
	if err != nil {
		return err
	}
	writeJob(w, j)
	return nil
}

// azureJobTypes and azureJobStatuses are the values Azure's GET
// /jobs/v2/query documents for its filters. A value the hub never runs
// (an export job) is a filter that matches nothing; a value that is none
// of these is a mistake, and refused.
var (
	azureJobTypes = []string{"unknown", "export", "import", "backup", "readDeviceProperties", "writeDeviceProperties",
		"updateDeviceConfiguration", "rebootDevice", "factoryResetDevice", "firmwareUpdate",
		string(hub.JobDeviceMethod), string(hub.JobUpdateTwin), "restoreFromBackup", "failoverDataCopy"}
	azureJobStatuses = []string{"unknown", "enqueued", string(hub.JobRunning), string(hub.JobCompleted), string(hub.JobFailed),
		string(hub.JobCancelled), string(hub.JobScheduled), string(hub.JobQueued)}
)

// queryJobs lists jobs as a bare array, as real clients expect (not the
// swagger's QueryResult object).
func (s *Server) queryJobs(w http.ResponseWriter, r *http.Request) error {
	opts, err := pageOptions(r)
	if err != nil {
		return err
	}
	params := r.URL.Query()
	for name, allowed := range map[string][]string{"jobType": azureJobTypes, "jobStatus": azureJobStatuses} {
		if v := params.Get(name); v != "" && !slices.Contains(allowed, v) {
			return hub.Errorf(hub.CodeArgumentInvalid, "%s %q is not one of %s", name, v, strings.Join(allowed, ", "))
		}
	}
	q := hub.JobQuery{
		Type:         hub.JobType(params.Get("jobType")),
		Status:       hub.JobStatus(params.Get("jobStatus")),
		QueryOptions: opts,
	}
	jobs, next, err := s.Hub.QueryJobs(r.Context(), q)
	if err != nil {
		return err
	}
	items := make([]json.RawMessage, 0, len(jobs))
	for _, j := range jobs {
		b, err := json.Marshal(j)
		if err != nil {
			return hub.Errorf(hub.CodeServerError, "encode job %q: %v", j.JobID, err)
		}
		items = append(items, b)
	}
	setPageHeaders(w, hub.ItemJob, next)
	writeArray(w, items)
	return nil
}
