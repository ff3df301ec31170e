package sas

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	vecKey     = "aW90aHVib3duZXItdGVzdC1rZXktMDEyMzQ1Njc4OQ=="
	vecService = "SharedAccessSignature sr=myhub.azure-devices.net&sig=a4mxlH52H5TPyhSMOVamjyiqyCCn1LCnM8CyxWOQSbw%3D&skn=iothubowner&se=1700000000"
	vecDevice  = "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1&sig=s7gKf6NaUszYBlI%2BDVHK%2BJwaw9WrzR21UCMAl09NlxY%3D&se=1700000000"
)

var (
	vecExpiry = time.Unix(1700000000, 0)
	vecNow    = vecExpiry.Add(-time.Minute)
)

func TestContractVectors(t *testing.T) {
	svc, err := ServiceToken("myhub.azure-devices.net", "iothubowner", vecKey, vecExpiry)
	if err != nil || svc != vecService {
		t.Fatalf("ServiceToken = %q, %v\nwant %q", svc, err, vecService)
	}
	signed, err := Sign("myhub.azure-devices.net", "iothubowner", vecKey, vecExpiry)
	if err != nil || signed != vecService {
		t.Fatalf("Sign = %q, %v", signed, err)
	}
	dev, err := DeviceToken("myhub.azure-devices.net", "dev1", vecKey, vecExpiry)
	if err != nil || dev != vecDevice {
		t.Fatalf("DeviceToken = %q, %v\nwant %q", dev, err, vecDevice)
	}
	for _, tc := range []struct {
		name, token, host, device, keyName string
	}{
		{"service", vecService, "myhub.azure-devices.net", "", "iothubowner"},
		{"device", vecDevice, "myhub.azure-devices.net", "dev1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := ParseToken(tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if err := tok.Verify(vecKey, vecNow); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tok.Host() != tc.host || tok.DeviceID() != tc.device || tok.KeyName != tc.keyName {
				t.Errorf("host %q device %q skn %q", tok.Host(), tok.DeviceID(), tok.KeyName)
			}
			if !tok.Expiry.Equal(vecExpiry) {
				t.Errorf("expiry %v", tok.Expiry)
			}
		})
	}
}

func TestClientID(t *testing.T) {
	for resource, want := range map[string]string{
		"h/devices/dev1":                  "dev1",
		"h/devices/dev1/":                 "dev1",
		"h/devices/dev1/modules/m1":       "dev1/m1",
		"h/devices/dev1/modules/m1/":      "dev1/m1",
		"h":                               "",
		"h/devices/dev1/modules/":         "",
		"h/devices/dev1/modules/m1/x":     "",
		"h/devices//modules/m1":           "",
		"h/devices/dev1/other/m1":         "",
		"h/devices/a/modules/b/modules/c": "",
	} {
		if got := (&Token{Resource: resource}).ClientID(); got != want {
			t.Errorf("ClientID of %q = %q, want %q", resource, got, want)
		}
	}
}

func TestVerify(t *testing.T) {
	otherKey := GenerateKey()
	for _, tc := range []struct {
		name  string
		token string
		key   string
		now   time.Time
		want  error // nil, ErrInvalidSignature or ErrExpired
	}{
		{"service ok", vecService, vecKey, vecNow, nil},
		{"device ok", vecDevice, vecKey, vecNow, nil},
		{"wrong key", vecDevice, otherKey, vecNow, ErrInvalidSignature},
		{"tampered sr", strings.Replace(vecDevice, "dev1", "dev2", 1), vecKey, vecNow, ErrInvalidSignature},
		{"tampered se", strings.Replace(vecDevice, "se=1700000000", "se=1800000000", 1), vecKey, vecNow, ErrInvalidSignature},
		{"se with leading zero is signed as sent", strings.Replace(vecDevice, "se=1700000000", "se=01700000000", 1), vecKey, vecNow, ErrInvalidSignature},
		{"expired at se", vecDevice, vecKey, vecExpiry, ErrExpired},
		{"expired after se", vecService, vecKey, vecExpiry.Add(time.Hour), ErrExpired},
		{"lower-case hex sr", "SharedAccessSignature sr=myhub.azure-devices.net%2fdevices%2fdev1&sig=s7gKf6NaUszYBlI%2BDVHK%2BJwaw9WrzR21UCMAl09NlxY%3D&se=1700000000", vecKey, vecNow, nil},
		{"unencoded sr of a device token", "SharedAccessSignature sr=myhub.azure-devices.net/devices/dev1&sig=s7gKf6NaUszYBlI%2BDVHK%2BJwaw9WrzR21UCMAl09NlxY%3D&se=1700000000", vecKey, vecNow, nil},
		{"order se sig sr", "SharedAccessSignature se=1700000000&sig=s7gKf6NaUszYBlI%2BDVHK%2BJwaw9WrzR21UCMAl09NlxY%3D&sr=myhub.azure-devices.net%2Fdevices%2Fdev1", vecKey, vecNow, nil},
		{"order skn first", "SharedAccessSignature skn=iothubowner&se=1700000000&sr=myhub.azure-devices.net&sig=a4mxlH52H5TPyhSMOVamjyiqyCCn1LCnM8CyxWOQSbw%3D", vecKey, vecNow, nil},
		{"sig not url-encoded", "SharedAccessSignature sr=myhub.azure-devices.net&sig=a4mxlH52H5TPyhSMOVamjyiqyCCn1LCnM8CyxWOQSbw=&skn=iothubowner&se=1700000000", vecKey, vecNow, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := ParseToken(tc.token)
			if err != nil {
				t.Fatal(err)
			}
			err = tok.Verify(tc.key, tc.now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyBadKey(t *testing.T) {
	tok, err := ParseToken(vecService)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Verify("not base64!", vecNow); err == nil {
		t.Fatal("Verify with invalid key succeeded")
	}
}

func TestSignRoundTrip(t *testing.T) {
	key := GenerateKey()
	exp := time.Unix(2000000000, 0)
	for _, tc := range []struct{ name, host, device string }{
		{"port", "localhost:8884", "dev1"},
		{"odd id", "localhost", "a+b#c(d)'e!*=@$,;:%"},
		{"unicode id", "hub.example", "gerät"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := DeviceToken(tc.host, tc.device, key, exp)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := ParseToken(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := tok.Verify(key, exp.Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			if tok.Host() != tc.host || tok.DeviceID() != tc.device {
				t.Errorf("host %q device %q", tok.Host(), tok.DeviceID())
			}
		})
	}
	if s, _ := DeviceToken("localhost:8884", "dev1", key, exp); !strings.Contains(s, "sr=localhost%3A8884%2Fdevices%2Fdev1&") {
		t.Errorf("device sr not encoded like the Node SDK: %s", s)
	}
	if _, err := Sign("h", "", "%%%", exp); err == nil {
		t.Error("Sign with invalid key succeeded")
	}
}

func TestDeviceID(t *testing.T) {
	for _, tc := range []struct{ resource, host, device string }{
		{"h", "h", ""},
		{"h/devices/d", "h", "d"},
		{"h/devices/d/", "h", "d"},
		{"h/devices/", "h", ""},
		{"h/devices/d/modules/m", "h", ""},
		{"h/other/d", "h", ""},
	} {
		tok := &Token{Resource: tc.resource}
		if tok.Host() != tc.host || tok.DeviceID() != tc.device {
			t.Errorf("%q: host %q device %q", tc.resource, tok.Host(), tok.DeviceID())
		}
	}
}

var badTokens = []struct{ name, token string }{
	{"empty", ""},
	{"no prefix", "sr=a&sig=b&se=1"},
	{"prefix only", "SharedAccessSignature "},
	{"missing sig", "SharedAccessSignature sr=a&se=1"},
	{"missing sr", "SharedAccessSignature sig=a&se=1"},
	{"missing se", "SharedAccessSignature sr=a&sig=b"},
	{"duplicate sr", "SharedAccessSignature sr=a&sr=b&sig=b&se=1"},
	{"bad se", "SharedAccessSignature sr=a&sig=b&se=soon"},
	{"negative se", "SharedAccessSignature sr=a&sig=b&se=-1"},
	{"bad escape", "SharedAccessSignature sr=a%zz&sig=b&se=1"},
	{"unknown key", "SharedAccessSignature sr=a&sig=b&se=1&x=y"},
	{"no equals", "SharedAccessSignature sr=a&sig&se=1"},
	{"empty pair", "SharedAccessSignature sr=a&&sig=b&se=1"},
}

func TestParseTokenErrors(t *testing.T) {
	for _, tc := range badTokens {
		t.Run(tc.name, func(t *testing.T) {
			if tok, err := ParseToken(tc.token); err == nil {
				t.Fatalf("ParseToken = %+v, want error", tok)
			}
		})
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(vecService)
	f.Add(vecDevice)
	for _, tc := range badTokens {
		f.Add(tc.token)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		_ = tok.Verify(vecKey, vecNow)
		_, _ = tok.Host(), tok.DeviceID()
	})
}

func TestGenerateKey(t *testing.T) {
	a, b := GenerateKey(), GenerateKey()
	if a == b {
		t.Fatal("two generated keys are equal")
	}
	k, err := decodeKey(a)
	if err != nil || len(k) != 32 {
		t.Fatalf("key %q: %d bytes, %v", a, len(k), err)
	}
}
