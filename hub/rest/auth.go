package rest

import (
	"errors"
	"fmt"
	"net/http"
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
		lookup := func(name string) (sas.Policy, bool) {
			key, ok := policies[name]
			// The service API's policies (today the owner's) grant all
			// the service rights it asks for.
			return sas.Policy{Key: key, Rights: sas.RegistryRead | sas.RegistryWrite | sas.ServiceConnect}, ok
		}
		return tok.VerifyPolicy(lookup, 0, hosts, r.URL.Path, now())
	}
}
