package rest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/clock"
	"github.com/iotjobs/iotjobs/hub/sas"
)

var _ hub.Client = (*Client)(nil)

// Options are the optional knobs of NewClient; the zero value is fine.
type Options struct {
	// RootCAs verifies the hub's TLS certificate; nil means the system
	// pool. Ignored when HTTPClient is set.
	RootCAs *x509.CertPool
	// HTTPClient, when set, is used as is.
	HTTPClient *http.Client
	// Clock signs tokens and paces WatchJob's polling; nil means the real
	// clock.
	Clock clock.Clock
	// PollInterval is how often WatchJob polls a hub that cannot
	// long-poll (Azure); 0 means 1s.
	PollInterval time.Duration
}

// Client is a hub.Client over Azure IoT Hub's service REST API, for our
// hub or a real Azure IoT Hub. It signs every request with a fresh SAS
// token of the connection string's shared access policy.
type Client struct {
	host    string
	keyName string
	key     string
	hc      *http.Client
	clk     clock.Clock
	poll    time.Duration
}

// watchWait is how long WatchJob asks our hub to long-poll, in seconds.
const watchWait = 20

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// NewClient returns a Client for the hub of a service connection string.
func NewClient(cs *sas.ConnectionString, opts Options) (*Client, error) {
	if cs == nil || cs.HostName == "" {
		return nil, errors.New("rest client: connection string has no HostName")
	}
	if cs.SharedAccessKeyName == "" {
		return nil, errors.New("rest client: need a service connection string (with SharedAccessKeyName), not a device one")
	}
	c := &Client{
		host:    cs.HostName,
		keyName: cs.SharedAccessKeyName,
		key:     cs.SharedAccessKey,
		hc:      opts.HTTPClient,
		clk:     opts.Clock,
		poll:    opts.PollInterval,
	}
	if _, err := sas.ServiceToken(c.host, c.keyName, c.key, time.Unix(0, 0)); err != nil {
		return nil, fmt.Errorf("rest client: %w", err)
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12}
		c.hc = &http.Client{Transport: tr}
	}
	if c.clk == nil {
		c.clk = clock.Real()
	}
	if c.poll <= 0 {
		c.poll = time.Second
	}
	return c, nil
}

// call is one API request. in, when not nil, is the JSON body; out, when
// not nil, receives the JSON answer. It returns the response headers.
type call struct {
	method, path string // path may hold "{id}", replaced by id escaped
	id           string
	query        url.Values
	header       http.Header
	in, out      any
	jobs         bool // the path is about jobs (for bare 404/409 answers)
}

// do sends a request and maps every failure to a *hub.Error.
func (c *Client) do(ctx context.Context, k call) (http.Header, error) {
	if strings.Contains(k.path, "{id}") {
		if k.id == "" {
			return nil, hub.Errorf(hub.CodeArgumentInvalid, "%s %s: the id is empty", k.method, k.path)
		}
		k.path = strings.Replace(k.path, "{id}", url.PathEscape(k.id), 1)
	}
	var body io.Reader
	if k.in != nil {
		b, err := json.Marshal(k.in)
		if err != nil {
			return nil, hub.Errorf(hub.CodeArgumentInvalid, "encode request: %v", err)
		}
		body = bytes.NewReader(b)
	}
	q := url.Values{}
	for key, v := range k.query {
		q[key] = v
	}
	q.Set("api-version", apiVersion)
	req, err := http.NewRequestWithContext(ctx, k.method, "https://"+c.host+k.path+"?"+q.Encode(), body)
	if err != nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "build request: %v", err)
	}
	for key, v := range k.header {
		req.Header[key] = v
	}
	tok, err := sas.ServiceToken(c.host, c.keyName, c.key, c.clk.Now().Add(time.Hour))
	if err != nil {
		return nil, hub.Errorf(hub.CodeUnauthorized, "sign request: %v", err)
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Request-Id", uuid.NewString())
	req.Header.Set("User-Agent", "iotjobs")
	req.Header.Set("Accept", "application/json")
	if k.in != nil {
		req.Header.Set("Content-Type", contentTypeJSON)
	}
	resp, err := c.hc.Do(req)
	if err != nil && k.method == http.MethodGet && ctx.Err() == nil &&
		(errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)) {
		// A kept-alive connection to a hub that restarted since: a read
		// is safe to send again, once, on a new connection.
		resp, err = c.hc.Do(req.Clone(ctx))
	}
	if err != nil {
		return nil, c.transportError(ctx, k, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return resp.Header, parseErrorBody(resp.StatusCode, resp.Header, b, k.jobs)
	}
	if k.out != nil {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(k.out); err != nil {
			// A connection that broke in the middle of the answer (the
			// hub was killed) is the hub being unreachable, which
			// callers wait out, not a hub that answered garbage.
			var opErr *net.OpError
			if ctx.Err() != nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.As(err, &opErr) {
				return nil, c.transportError(ctx, k, fmt.Errorf("the connection broke while reading the answer: %w", err))
			}
			return nil, hub.Errorf(hub.CodeServerError, "%s %s: decode answer: %v", k.method, k.path, err)
		}
	}
	return resp.Header, nil
}

// transportError turns a failure to get any answer into a *hub.Error that
// says what to do about it. A context that ended is GatewayTimeout, with
// the context's error still reachable through errors.Is.
func (c *Client) transportError(ctx context.Context, k call, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w: %w", hub.Errorf(hub.CodeGatewayTimeout, "%s %s: no answer from the hub before the request ended", k.method, k.path), ctxErr)
	}
	var (
		dnsErr  *net.DNSError
		unknown x509.UnknownAuthorityError
		verify  *tls.CertificateVerificationError
		hostErr x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	msg := fmt.Sprintf("cannot reach the hub at %s: %v", c.host, err)
	switch {
	case errors.As(err, &hostErr):
		msg = fmt.Sprintf("the hub's TLS certificate is not valid for %s (%v): use a HostName that the certificate names", c.host, hostErr)
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &verify):
		msg = fmt.Sprintf("the hub's TLS certificate at %s is not trusted (%v): pass --ca FILE with the hub's CA certificate", c.host, err)
	case errors.As(err, &dnsErr):
		msg = fmt.Sprintf("cannot resolve %s (%v): check HostName in the connection string", c.host, dnsErr)
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = fmt.Sprintf("connection refused by %s: is the hub running (iotjobs hub serve) and is HostName's port right?", c.host)
	}
	return &hub.Error{Code: hub.CodeUnreachable, Message: msg}
}

// CreateDevice registers a device. Errors: ArgumentInvalid,
// DeviceAlreadyExists.
func (c *Client) CreateDevice(ctx context.Context, d *hub.Device) (*hub.Device, error) {
	if d == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "create device: no device given")
	}
	var out hub.Device
	_, err := c.do(ctx, call{method: http.MethodPut, path: "/devices/{id}", id: d.DeviceID, in: d, out: &out})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GetDevice returns a device identity. Errors: DeviceNotFound.
func (c *Client) GetDevice(ctx context.Context, id string) (*hub.Device, error) {
	var out hub.Device
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/devices/{id}", id: id, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Endpoints asks our hub where devices connect. It is an iotjobs
// extension: an Azure IoT Hub answers 404 (IotHubNotFound), and callers
// then use Azure's well-known ports.
func (c *Client) Endpoints(ctx context.Context) (*Endpoints, error) {
	var out Endpoints
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/iotjobs/endpoints", out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteDevice removes a device; etag "" or "*" deletes unconditionally.
// Errors: DeviceNotFound, PreconditionFailed.
func (c *Client) DeleteDevice(ctx context.Context, id, etag string) error {
	_, err := c.do(ctx, call{method: http.MethodDelete, path: "/devices/{id}", id: id,
		header: http.Header{"If-Match": {quoteETag(etag)}}})
	return err
}

// UpdateDevice replaces a device's status, reason and keys (empty keys
// are kept) when etag ("" and "*" match any) matches; it always sends
// If-Match, quoted, which is what makes Azure's PUT an update. Errors:
// DeviceNotFound, PreconditionFailed, ArgumentInvalid.
func (c *Client) UpdateDevice(ctx context.Context, d *hub.Device, etag string) (*hub.Device, error) {
	if d == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "update device: no device given")
	}
	var out hub.Device
	_, err := c.do(ctx, call{method: http.MethodPut, path: "/devices/{id}", id: d.DeviceID, in: d, out: &out,
		header: http.Header{"If-Match": {quoteETag(etag)}}})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ListDevices returns up to top devices (outside 1–1000: 1000) ordered by
// id.
func (c *Client) ListDevices(ctx context.Context, top int) ([]*hub.Device, error) {
	v := url.Values{}
	if top > 0 {
		v.Set("top", strconv.Itoa(top))
	}
	var out []*hub.Device
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/devices", query: v, out: &out}); err != nil {
		return nil, err
	}
	return out, nil
}

// DeviceStatistics counts the registry's devices by status.
func (c *Client) DeviceStatistics(ctx context.Context) (*hub.RegistryStatistics, error) {
	var out hub.RegistryStatistics
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/statistics/devices", out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ImportDevices runs one bulk registry operation of at most
// hub.MaxImportDevices entries; per-device failures are in the result.
// Errors: ArgumentInvalid.
func (c *Client) ImportDevices(ctx context.Context, devs []*hub.ImportDevice) (*hub.BulkResult, error) {
	if devs == nil {
		devs = []*hub.ImportDevice{}
	}
	var out hub.BulkResult
	if _, err := c.do(ctx, call{method: http.MethodPost, path: "/devices", in: devs, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTwin returns a device twin. Errors: DeviceNotFound.
func (c *Client) GetTwin(ctx context.Context, id string) (*hub.Twin, error) {
	var out hub.Twin
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/twins/{id}", id: id, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateTwin merges patch into a twin when etag ("" and "*" match any)
// matches. Errors: DeviceNotFound, PreconditionFailed, ArgumentInvalid.
func (c *Client) UpdateTwin(ctx context.Context, id string, patch *hub.TwinPatch, etag string) (*hub.Twin, error) {
	if patch == nil {
		patch = &hub.TwinPatch{}
	}
	var out hub.Twin
	_, err := c.do(ctx, call{method: http.MethodPatch, path: "/twins/{id}", id: id, in: patch, out: &out,
		header: http.Header{"If-Match": {quoteETag(etag)}}})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ReplaceTwin replaces a twin's tags and desired properties when etag (""
// and "*" match any) matches. Errors: DeviceNotFound, PreconditionFailed,
// ArgumentInvalid, MessageTooLarge.
func (c *Client) ReplaceTwin(ctx context.Context, id string, t *hub.TwinPatch, etag string) (*hub.Twin, error) {
	if t == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "replace twin of %q: no twin given", id)
	}
	var out hub.Twin
	_, err := c.do(ctx, call{method: http.MethodPut, path: "/twins/{id}", id: id, in: t, out: &out,
		header: http.Header{"If-Match": {quoteETag(etag)}}})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// InvokeMethod calls a direct method. Errors: DeviceNotFound,
// DeviceNotOnline, GatewayTimeout, ArgumentInvalid.
func (c *Client) InvokeMethod(ctx context.Context, id string, req *hub.MethodRequest) (*hub.MethodResponse, error) {
	if req == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "invoke method on %q: no method request given", id)
	}
	var out hub.MethodResponse
	if _, err := c.do(ctx, call{method: http.MethodPost, path: "/twins/{id}/methods", id: id, in: req, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// Query runs a device query and returns one page. Errors:
// ArgumentInvalid.
func (c *Client) Query(ctx context.Context, query string, opts hub.QueryOptions) (*hub.QueryResult, error) {
	var items []json.RawMessage
	h, err := c.do(ctx, call{method: http.MethodPost, path: "/devices/query", header: pageHeaders(opts),
		in: map[string]string{"query": query}, out: &items})
	if err != nil {
		return nil, err
	}
	return &hub.QueryResult{Items: items, ItemType: h.Get(headerItemType), Continuation: h.Get(headerContinuation)}, nil
}

// pageHeaders are the paging request headers of opts.
func pageHeaders(opts hub.QueryOptions) http.Header {
	h := http.Header{}
	if opts.PageSize > 0 {
		h.Set(headerMaxItems, strconv.Itoa(opts.PageSize))
	}
	if opts.Continuation != "" {
		h.Set(headerContinuation, opts.Continuation)
	}
	return h
}

// CreateJob schedules a job. Errors: ArgumentInvalid, GenericBadRequest,
// JobAlreadyExists.
func (c *Client) CreateJob(ctx context.Context, job *hub.Job) (*hub.Job, error) {
	if job == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "create job: no job given")
	}
	var out hub.Job
	var h http.Header
	if p, ok := hub.PlanOf(ctx); ok {
		// Our hub records it in its audit log; Azure ignores it.
		h = http.Header{hub.PlanHeader: {p.String()}}
	}
	if _, err := c.do(ctx, call{method: http.MethodPut, path: "/jobs/v2/{id}", id: job.JobID, header: h, in: job, out: &out, jobs: true}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetJob returns a job with its statistics. Errors: JobNotFound.
func (c *Client) GetJob(ctx context.Context, id string) (*hub.Job, error) {
	j, _, err := c.getJob(ctx, id, nil)
	return j, err
}

// getJob GETs a job with extra headers and reports whether the hub
// answered with our state header, i.e. understands long-polling.
func (c *Client) getJob(ctx context.Context, id string, h http.Header) (*hub.Job, bool, error) {
	var out hub.Job
	rh, err := c.do(ctx, call{method: http.MethodGet, path: "/jobs/v2/{id}", id: id, header: h, out: &out, jobs: true})
	if err != nil {
		return nil, false, err
	}
	return &out, rh.Get(headerState) != "", nil
}

// WatchJob returns job id once its status or statistics differ from last
// (at once when last is nil). Against our hub it long-polls; against a hub
// that does not (Azure) it polls every PollInterval on the Clock. When ctx
// ends first it returns ctx.Err(), as the engine does, so that a caller
// looping until the job finishes stops. Errors: JobNotFound.
func (c *Client) WatchJob(ctx context.Context, id string, last *hub.Job) (*hub.Job, error) {
	if last == nil {
		return c.GetJob(ctx, id)
	}
	h := http.Header{}
	h.Set(headerWait, strconv.Itoa(watchWait))
	h.Set(headerState, stateToken(last))
	for {
		j, longPolled, err := c.getJob(ctx, id, h)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, err
		}
		if !hub.SameJobState(j, last) {
			return j, nil
		}
		if longPolled {
			continue // the hub waited for us; ask again at once
		}
		t := c.clk.NewTimer(c.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C():
		}
	}
}

// CancelJob cancels a job that has not finished. Errors: JobNotFound.
func (c *Client) CancelJob(ctx context.Context, id string) (*hub.Job, error) {
	var out hub.Job
	if _, err := c.do(ctx, call{method: http.MethodPost, path: "/jobs/v2/{id}/cancel", id: id, out: &out, jobs: true}); err != nil {
		return nil, err
	}
	return &out, nil
}

// QueryJobs lists jobs, newest first, and returns the continuation token
// of the next page ("" on the last). Errors: ArgumentInvalid.
func (c *Client) QueryJobs(ctx context.Context, q hub.JobQuery) ([]*hub.Job, string, error) {
	v := url.Values{}
	if q.Status != "" {
		v.Set("jobStatus", string(q.Status))
	}
	if q.Type != "" {
		v.Set("jobType", string(q.Type))
	}
	var out []*hub.Job
	h, err := c.do(ctx, call{method: http.MethodGet, path: "/jobs/v2/query", query: v,
		header: pageHeaders(q.QueryOptions), out: &out, jobs: true})
	if err != nil {
		return nil, "", err
	}
	return out, h.Get(headerContinuation), nil
}
