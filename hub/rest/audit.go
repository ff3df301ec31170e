package rest

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/sas"
)

// ownerPolicy is the policy that may read the audit log.
const ownerPolicy = "iothubowner"

// actorOf is who made an authorized request, for the audit log: the
// policy its token names (the service API takes no device tokens;
// devices act over MQTT, where the engine records them as "device:ID").
func actorOf(r *http.Request) string {
	tok, err := sas.ParseToken(r.Header.Get("Authorization"))
	if err != nil || tok.KeyName == "" {
		return "unknown"
	}
	return tok.KeyName
}

// audit serves GET /iotjobs/audit (our extension): a page of the audit
// log, for the owner policy only.
func (s *Server) audit(w http.ResponseWriter, r *http.Request) error {
	a, ok := s.Hub.(hub.AuditLog)
	if !ok {
		return s.notFound(w, r)
	}
	if actor := hub.ActorOf(r.Context()); actor != ownerPolicy {
		return hub.Errorf(hub.CodeUnauthorized, "the audit log is for the %s policy; %s may not read it", ownerPolicy, actor)
	}
	q := r.URL.Query()
	f := hub.AuditFilter{Device: q.Get("device"), Job: q.Get("job")}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return hub.Errorf(hub.CodeArgumentInvalid, "since %q is not an RFC 3339 time", v)
		}
		f.Since = t
	}
	page, err := a.AuditEntries(r.Context(), f, q.Get("continuation"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

var _ hub.AuditLog = (*Client)(nil)

// AuditEntries implements hub.AuditLog over our hub's API (Azure has no
// such API: it answers 404).
func (c *Client) AuditEntries(ctx context.Context, f hub.AuditFilter, continuation string) (*hub.AuditPage, error) {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if f.Device != "" {
		q.Set("device", f.Device)
	}
	if f.Job != "" {
		q.Set("job", f.Job)
	}
	if continuation != "" {
		q.Set("continuation", continuation)
	}
	var out hub.AuditPage
	if _, err := c.do(ctx, call{method: http.MethodGet, path: "/iotjobs/audit", query: q, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}
