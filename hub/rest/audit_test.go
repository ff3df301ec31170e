package rest

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/sas"
)

// auditFake is a fake hub with an audit log that records what it was
// asked.
type auditFake struct {
	*fakeHub
	filters []hub.AuditFilter
	tokens  []string
}

func (a *auditFake) AuditEntries(_ context.Context, f hub.AuditFilter, continuation string) (*hub.AuditPage, error) {
	a.filters, a.tokens = append(a.filters, f), append(a.tokens, continuation)
	return &hub.AuditPage{Entries: []*hub.AuditEntry{{Seq: 1, Operation: hub.AuditDeviceCreate, Target: "d1"}}, Continuation: "1"}, nil
}

// TestServerAudit: GET /iotjobs/audit passes its filters and token to
// the hub for the owner policy, and refuses another policy that the
// hub's authorizer accepts, and a bad since, without reading the log.
func TestServerAudit(t *testing.T) {
	f := &auditFake{fakeHub: seededHub(t)}
	ts := httptest.NewUnstartedServer(nil)
	host := ts.Listener.Addr().String()
	s := &Server{
		Hub:       f,
		Authorize: SASAuthorizer(map[string]string{testPolicy: testKey, "service": testOtherKey}, []string{host}, nil),
		Logger:    slog.New(slog.DiscardHandler),
	}
	ts.Config.Handler = s.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	token := func(policy, key string) string {
		tok, err := sas.ServiceToken(host, policy, key, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	since := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	q := url.Values{"since": {since.Format(time.RFC3339Nano)}, "device": {"d1"}, "job": {"j1"}, "continuation": {"7"}}

	r := send(t, ts, token(testPolicy, testKey), "GET", "/iotjobs/audit?"+q.Encode(), nil, "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"continuation":"1"`) {
		t.Fatalf("owner: %d %s", r.status, r.body)
	}
	if len(f.filters) != 1 || f.filters[0] != (hub.AuditFilter{Since: since, Device: "d1", Job: "j1"}) || f.tokens[0] != "7" {
		t.Fatalf("the hub was asked %+v %q", f.filters, f.tokens)
	}

	for _, tc := range []struct {
		name, tok, query, code string
	}{
		{"other policy", token("service", testOtherKey), "", hub.CodeUnauthorized},
		{"bad since", token(testPolicy, testKey), "?since=yesterday", hub.CodeArgumentInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, ts, tc.tok, "GET", "/iotjobs/audit"+tc.query, nil, "")
			if got := r.header.Get("iothub-errorcode"); got != tc.code {
				t.Errorf("%d %s (error code %q), want %s", r.status, r.body, got, tc.code)
			}
			if len(f.filters) != 1 {
				t.Errorf("the hub's log was read %d times, want once (by the owner)", len(f.filters))
			}
		})
	}
}
