package rest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/sas"
)

// SASAuthorizer returns an Authorize function for Server that accepts
// "Authorization: SharedAccessSignature ..." service tokens signed with
// one of the shared access policies (policy name → base64 key), whose sr
// names one of hosts (compared without regard to case; empty hosts accepts
// any) and, if it has a path, one that is a by-segment prefix of the
// request's, and that have not expired at now(). nil now is time.Now.
func SASAuthorizer(policies map[string]string, hosts []string, now func() time.Time) func(*http.Request) error {
	if now == nil {
		now = time.Now
	}
	return func(r *http.Request) error {
		h := r.Header.Get("Authorization")
		if h == "" {
			return errors.New("missing Authorization header: send a SharedAccessSignature token made from a service connection string")
		}
		tok, err := sas.ParseToken(h)
		if err != nil {
			return fmt.Errorf("authorization header: %w", err)
		}
		if tok.KeyName == "" {
			return errors.New("token has no skn: the service API needs a shared access policy token, not a device token")
		}
		if err := hub.CheckPolicyName(tok.KeyName); err != nil {
			return fmt.Errorf("token skn: %s", hub.ErrorMessage(err))
		}
		key, ok := policies[tok.KeyName]
		if !ok {
			return fmt.Errorf("unknown shared access policy %q", tok.KeyName)
		}
		if !hostAllowed(tok.Host(), hosts) {
			return fmt.Errorf("token is for host %q, not this hub (%s)", tok.Host(), strings.Join(hosts, ", "))
		}
		if _, path, ok := strings.Cut(tok.Resource, "/"); ok && !segmentPrefix(strings.Trim(path, "/"), strings.Trim(r.URL.Path, "/")) {
			return fmt.Errorf("token resource %q does not cover %s", tok.Resource, r.URL.Path)
		}
		if err := tok.Verify(key, now()); err != nil {
			return fmt.Errorf("policy %q: %w", tok.KeyName, err)
		}
		return nil
	}
}

// hostAllowed reports whether host is one of hosts, ignoring case.
func hostAllowed(host string, hosts []string) bool {
	if len(hosts) == 0 {
		return true
	}
	for _, h := range hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// segmentPrefix reports whether prefix is path or a leading run of its
// "/"-separated segments.
func segmentPrefix(prefix, path string) bool {
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}
