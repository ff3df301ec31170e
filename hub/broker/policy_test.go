package broker

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/sas"
)

// sasHub is the credentials side of a hub for these tests: device keys,
// checked as hubd checks them (the token's sr names the device; its skn
// is not looked at), and shared access policies.
type sasHub struct {
	deviceKeys map[string]string
	policies   map[string]sas.Policy
}

func newSASHub() *sasHub {
	return &sasHub{
		deviceKeys: map[string]string{"d1": sas.GenerateKey(), "d2": sas.GenerateKey(), "disabled": sas.GenerateKey(), "d1/m1": sas.GenerateKey()},
		policies: map[string]sas.Policy{
			"iothubowner": {Key: sas.GenerateKey(), Rights: sas.RegistryRead | sas.RegistryWrite | sas.ServiceConnect | sas.DeviceConnect},
			"device":      {Key: sas.GenerateKey(), Rights: sas.DeviceConnect},
			"service":     {Key: sas.GenerateKey(), Rights: sas.ServiceConnect},
		},
	}
}

func (s *sasHub) authenticate(clientID, _ string, password []byte) error {
	tok, err := sas.ParseToken(string(password))
	if err != nil {
		return err
	}
	if tok.ClientID() != clientID {
		return errors.New("token is for another device or module")
	}
	return tok.Verify(s.deviceKeys[clientID], time.Now())
}

func (s *sasHub) policy(name string) (sas.Policy, bool) {
	p, ok := s.policies[name]
	return p, ok
}

// token signs a token for resource ("localhost/devices/d1"), encoded as
// the Node SDK does, naming skn unless it is empty.
func token(t *testing.T, resource, skn, key string, expiry time.Time) string {
	t.Helper()
	s, err := sas.Sign(strings.ReplaceAll(resource, "/", "%2F"), skn, key, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPolicyToken: a device token that names a shared access policy (skn)
// is checked against that policy, never against the device's key: it
// connects when the policy exists, grants DeviceConnect and signed it, as
// Azure allows, and is refused with CONNACK 5 otherwise.
func TestPolicyToken(t *testing.T) {
	s := newSASHub()
	var authCalls atomic.Int64
	h := startWith(t, func(c *Config) {
		c.Authenticate = func(clientID, username string, password []byte) error {
			authCalls.Add(1)
			return s.authenticate(clientID, username, password)
		}
		c.Policies = s.policy
		c.Hosts = func() []string { return []string{"localhost", "localhost:8883"} }
		c.DeviceAllowed = func(id string) error {
			if id == "disabled" {
				return errors.New("disabled")
			}
			return nil
		}
	})
	later := time.Now().Add(time.Hour)
	owner, device, service := s.policies["iothubowner"].Key, s.policies["device"].Key, s.policies["service"].Key
	for _, tc := range []struct {
		name, id, password string
		want               byte
		wantAuthCalls      int64 // calls of Authenticate, the device-key check
	}{
		{"device key", "d1", token(t, "localhost/devices/d1", "", s.deviceKeys["d1"], later), 0, 1},
		{"device key naming the owner policy", "d1", token(t, "localhost/devices/d1", "iothubowner", s.deviceKeys["d1"], later), 5, 0},
		{"device key naming the device policy", "d1", token(t, "localhost/devices/d1", "device", s.deviceKeys["d1"], later), 5, 0},
		{"owner policy", "d1", token(t, "localhost/devices/d1", "iothubowner", owner, later), 0, 0},
		{"device policy", "d2", token(t, "localhost/devices/d2", "device", device, later), 0, 0},
		{"device policy for the whole hub", "d2", token(t, "localhost", "device", device, later), 0, 0},
		{"host with port", "d2", token(t, "localhost:8883/devices/d2", "device", device, later), 0, 0},
		{"policy without DeviceConnect", "d1", token(t, "localhost/devices/d1", "service", service, later), 5, 0},
		{"unknown policy", "d1", token(t, "localhost/devices/d1", "registryRead", owner, later), 5, 0},
		{"another policy's key", "d1", token(t, "localhost/devices/d1", "iothubowner", device, later), 5, 0},
		{"another device's resource", "d1", token(t, "localhost/devices/d2", "device", device, later), 5, 0},
		{"another hub", "d1", token(t, "otherhub/devices/d1", "device", device, later), 5, 0},
		{"expired", "d1", token(t, "localhost/devices/d1", "device", device, time.Now().Add(-time.Minute)), 5, 0},
		{"disabled device", "disabled", token(t, "localhost/devices/disabled", "device", device, later), 5, 0},
		{"module key", "d1/m1", token(t, "localhost/devices/d1/modules/m1", "", s.deviceKeys["d1/m1"], later), 0, 1},
		{"module with its device's key", "d1/m1", token(t, "localhost/devices/d1", "", s.deviceKeys["d1"], later), 5, 1},
		{"module with the device policy", "d1/m1", token(t, "localhost/devices/d1/modules/m1", "device", device, later), 0, 0},
		{"module with a policy token for its device", "d1/m1", token(t, "localhost/devices/d1", "device", device, later), 0, 0},
		{"module with another module's resource", "d1/m1", token(t, "localhost/devices/d1/modules/m2", "device", device, later), 5, 0},
		{"device with its module's resource", "d1", token(t, "localhost/devices/d1/modules/m1", "device", device, later), 5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := authCalls.Load()
			d := h.connect(t, tc.id, password(tc.password), clean)
			if got := d.tok.ReturnCode(); got != tc.want {
				t.Errorf("CONNACK %d, want %d (err %v)", got, tc.want, d.tok.Error())
			}
			if got := authCalls.Load() - before; got != tc.wantAuthCalls {
				t.Errorf("Authenticate called %d times, want %d", got, tc.wantAuthCalls)
			}
			d.c.Disconnect(0)
		})
	}
}

// TestPolicyTokenNotConfigured: without Policies, a token that names a
// policy is refused, however it is signed, and Authenticate (which would
// check it against the device's key) never sees it.
func TestPolicyTokenNotConfigured(t *testing.T) {
	s := newSASHub()
	h := startWith(t, func(c *Config) { c.Authenticate = s.authenticate })
	later := time.Now().Add(time.Hour)
	for _, tc := range []struct{ name, key string }{
		{"signed with the device key", s.deviceKeys["d1"]},
		{"signed with the policy key", s.policies["iothubowner"].Key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := h.connect(t, "d1", password(token(t, "localhost/devices/d1", "iothubowner", tc.key, later)), clean)
			if got := d.tok.ReturnCode(); got != 5 {
				t.Errorf("CONNACK %d, want 5", got)
			}
		})
	}
	d := h.connect(t, "d1", password(token(t, "localhost/devices/d1", "", s.deviceKeys["d1"], later)), clean)
	if got := d.tok.ReturnCode(); got != 0 {
		t.Errorf("device-key token: CONNACK %d, want 0", got)
	}
}
