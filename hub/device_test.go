package hub_test

import (
	"encoding/json"
	"testing"

	"github.com/iotjobs/iotjobs/hub"
)

// TestAuthenticationJSON: an X.509 device's keys are null on the wire, as
// Azure writes them; a sas device's are strings, even empty ones.
func TestAuthenticationJSON(t *testing.T) {
	tp := "0123456789ABCDEF0123456789ABCDEF01234567"
	for _, tc := range []struct {
		auth hub.Authentication
		want string
	}{
		{hub.Authentication{Type: hub.AuthSAS, SymmetricKey: hub.SymmetricKey{PrimaryKey: "a", SecondaryKey: "b"}},
			`{"symmetricKey":{"primaryKey":"a","secondaryKey":"b"},"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"sas"}`},
		{hub.Authentication{Type: hub.AuthSAS},
			`{"symmetricKey":{"primaryKey":"","secondaryKey":""},"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"sas"}`},
		{hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: hub.X509Thumbprint{PrimaryThumbprint: &tp}},
			`{"symmetricKey":{"primaryKey":null,"secondaryKey":null},"x509Thumbprint":{"primaryThumbprint":"` + tp + `","secondaryThumbprint":null},"type":"selfSigned"}`},
		{hub.Authentication{Type: hub.AuthCertificateAuthority},
			`{"symmetricKey":{"primaryKey":null,"secondaryKey":null},"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"certificateAuthority"}`},
	} {
		b, err := json.Marshal(tc.auth)
		if err != nil || string(b) != tc.want {
			t.Errorf("%s: %s, %v\nwant %s", tc.auth.Type, b, err, tc.want)
		}
		var back hub.Authentication
		if err := json.Unmarshal(b, &back); err != nil || back.Type != tc.auth.Type {
			t.Errorf("%s: read back %+v, %v", tc.auth.Type, back, err)
		}
	}
}
