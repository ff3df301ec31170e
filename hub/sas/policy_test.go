package sas

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerifyPolicy(t *testing.T) {
	owner, device, service, deviceKey := vecKey, GenerateKey(), GenerateKey(), GenerateKey() // vecService is signed with vecKey
	policies := func(name string) (Policy, bool) {
		p, ok := map[string]Policy{
			"iothubowner": {owner, RegistryRead | RegistryWrite | ServiceConnect | DeviceConnect},
			"device":      {device, DeviceConnect},
			"service":     {service, ServiceConnect},
		}[name]
		return p, ok
	}
	hosts := []string{"localhost", "localhost:8883"}
	later := vecNow.Add(time.Hour)
	sign := func(sr, skn, key string, expiry time.Time) string {
		s, err := Sign(sr, skn, key, expiry)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name    string
		token   string
		need    Rights
		hosts   []string
		path    string
		wantErr string // "" for none
		is      error
	}{
		{"hub-wide token connects any device", sign("localhost", "iothubowner", owner, later), DeviceConnect, hosts, "devices/d1", "", nil},
		{"device policy, device resource", sign("localhost%2Fdevices%2Fd1", "device", device, later), DeviceConnect, hosts, "devices/d1", "", nil},
		{"resource with lower-case escapes", sign("localhost%2fdevices%2fd1", "device", device, later), DeviceConnect, hosts, "devices/d1", "", nil},
		{"resource covering all devices", sign("localhost/devices", "device", device, later), DeviceConnect, hosts, "devices/d1", "", nil},
		{"host with port, in other case", sign("LocalHost:8883/devices/d1", "device", device, later), DeviceConnect, hosts, "devices/d1", "", nil},
		{"no hosts: any host", sign("elsewhere/devices/d1", "device", device, later), DeviceConnect, nil, "devices/d1", "", nil},
		{"service token", sign("localhost", "service", service, later), ServiceConnect, hosts, "/twins/d1", "", nil},
		{"no right needed", sign("localhost", "service", service, later), 0, hosts, "/devices/d1", "", nil},
		{"contract vector", vecService, ServiceConnect, []string{"myhub.azure-devices.net"}, "/jobs/v2/j1", "", nil},

		{"signed with the device key", sign("localhost%2Fdevices%2Fd1", "iothubowner", deviceKey, later), DeviceConnect, hosts, "devices/d1", "signature", ErrInvalidSignature},
		{"signed with another policy's key", sign("localhost", "iothubowner", device, later), DeviceConnect, hosts, "devices/d1", "signature", ErrInvalidSignature},
		{"policy without the right", sign("localhost%2Fdevices%2Fd1", "service", service, later), DeviceConnect, hosts, "devices/d1", `"service" does not grant DeviceConnect`, nil},
		{"missing one of two rights", sign("localhost", "device", device, later), DeviceConnect | RegistryRead, hosts, "devices/d1", "does not grant RegistryRead", nil},
		{"unknown policy", sign("localhost", "registryRead", owner, later), DeviceConnect, hosts, "devices/d1", `unknown shared access policy "registryRead"`, nil},
		{"no skn", sign("localhost%2Fdevices%2Fd1", "", deviceKey, later), DeviceConnect, hosts, "devices/d1", "no shared access policy", nil},
		{"another device", sign("localhost%2Fdevices%2Fd1", "device", device, later), DeviceConnect, hosts, "devices/d2", "does not cover", nil},
		{"a device whose id starts alike", sign("localhost%2Fdevices%2Fd1", "device", device, later), DeviceConnect, hosts, "devices/d10", "does not cover", nil},
		{"another hub", sign("otherhub%2Fdevices%2Fd1", "device", device, later), DeviceConnect, hosts, "devices/d1", `host "otherhub"`, nil},
		{"expired", sign("localhost", "device", device, vecNow), DeviceConnect, hosts, "devices/d1", "expired", ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := ParseToken(tc.token)
			if err != nil {
				t.Fatal(err)
			}
			err = tok.VerifyPolicy(policies, tc.need, tc.hosts, tc.path, vecNow)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("VerifyPolicy: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("VerifyPolicy = %v, want an error with %q", err, tc.wantErr)
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Fatalf("VerifyPolicy = %v, want errors.Is %v", err, tc.is)
			}
		})
	}
}

func TestRightsString(t *testing.T) {
	for r, want := range map[Rights]string{
		0:                              "none",
		DeviceConnect:                  "DeviceConnect",
		RegistryRead | RegistryWrite:   "RegistryRead, RegistryWrite",
		ServiceConnect | DeviceConnect: "ServiceConnect, DeviceConnect",
	} {
		if got := r.String(); got != want {
			t.Errorf("Rights(%d) = %q, want %q", r, got, want)
		}
	}
}
