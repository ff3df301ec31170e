package rest

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/sas"
)

func TestSASAuthorizer(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	sign := func(resource, keyName, key string, expiry time.Time) string {
		tok, err := sas.Sign(resource, keyName, key, expiry)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	later := now.Add(time.Hour)
	tests := []struct {
		name  string
		path  string
		auth  string
		hosts []string
		at    time.Time // now, when not the default
		want  string    // substring of the error; "" accepts
	}{
		{name: "good", auth: sign("myhub.azure-devices.net", testPolicy, testKey, later)},
		{name: "host alias ignores case", auth: sign("MyHub.Azure-Devices.NET", testPolicy, testKey, later)},
		{name: "host with port", auth: sign("localhost:8443", testPolicy, testKey, later)},
		{name: "contract test vector a second before expiry", at: now.Add(-time.Second),
			auth: "SharedAccessSignature sr=myhub.azure-devices.net&sig=a4mxlH52H5TPyhSMOVamjyiqyCCn1LCnM8CyxWOQSbw%3D&skn=iothubowner&se=1700000000"},
		{name: "contract test vector at expiry", want: "expired",
			auth: "SharedAccessSignature sr=myhub.azure-devices.net&sig=a4mxlH52H5TPyhSMOVamjyiqyCCn1LCnM8CyxWOQSbw%3D&skn=iothubowner&se=1700000000"},
		{name: "resource path covering the request", path: "/devices/dev1",
			auth: sign("myhub.azure-devices.net%2Fdevices%2Fdev1", testPolicy, testKey, later)},
		{name: "resource path not covering the request", path: "/devices/dev10",
			auth: sign("myhub.azure-devices.net%2Fdevices%2Fdev1", testPolicy, testKey, later), want: "does not cover"},
		{name: "missing", want: "missing Authorization"},
		{name: "garbage", auth: "Bearer xyz", want: "SharedAccessSignature"},
		{name: "bad signature", auth: sign("myhub.azure-devices.net", testPolicy, testOtherKey, later), want: "signature"},
		{name: "expired", auth: sign("myhub.azure-devices.net", testPolicy, testKey, now), want: "expired"},
		{name: "other host", auth: sign("otherhub.azure-devices.net", testPolicy, testKey, later), want: "not this hub"},
		{name: "unknown policy", auth: sign("myhub.azure-devices.net", "nobody", testKey, later), want: "unknown shared access policy"},
		{name: "device token", auth: sign("myhub.azure-devices.net%2Fdevices%2Fdev1", "", testKey, later), want: "device token"},
		{name: "any host when none configured", hosts: []string{}, auth: sign("anything", testPolicy, testKey, later)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hosts := tc.hosts
			if hosts == nil {
				hosts = []string{"myhub.azure-devices.net", "localhost:8443", "127.0.0.1"}
			}
			at := now
			if !tc.at.IsZero() {
				at = tc.at
			}
			authz := SASAuthorizer(map[string]string{testPolicy: testKey}, hosts, func() time.Time { return at })
			path := tc.path
			if path == "" {
				path = "/jobs/v2/j1"
			}
			r := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			err := authz(r)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestServerAuth checks the HTTP side of authorization: every refusal is
// a 401 IotHubUnauthorizedAccess in Shape A.
func TestServerAuth(t *testing.T) {
	f := seededHub(t)
	ts, good := startServer(t, f)
	host := ts.Listener.Addr().String()
	tok := func(host, key string, expiry time.Time) string {
		s, err := sas.ServiceToken(host, testPolicy, key, expiry)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"good", good, 200},
		{"missing", "", 401},
		{"bad signature", tok(host, testOtherKey, time.Now().Add(time.Hour)), 401},
		{"expired", tok(host, testKey, time.Now().Add(-time.Minute)), 401},
		{"other host", tok("otherhub.azure-devices.net", testKey, time.Now().Add(time.Hour)), 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, ts, tc.auth, "GET", "/twins/dev1", nil, "")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 401 {
				checkErrorShape(t, r, hub.CodeUnauthorized, 'A')
			}
		})
	}
}
