package sas

import (
	"strings"
	"testing"
)

var connCases = []struct {
	name    string
	in      string
	want    *ConnectionString
	wantErr string // substring of the error; "" means success
}{
	{name: "service", in: "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=" + vecKey,
		want: &ConnectionString{HostName: "localhost", SharedAccessKeyName: "iothubowner", SharedAccessKey: vecKey}},
	{name: "device with gateway", in: "HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey=" + vecKey + ";GatewayHostName=localhost:8884",
		want: &ConnectionString{HostName: "h.azure-devices.net", DeviceID: "dev1", SharedAccessKey: vecKey, GatewayHostName: "localhost:8884"}},
	{name: "case-insensitive keys, trailing semicolon, spaces", in: " hostname=h ; deviceid = d;SHAREDACCESSKEY=" + vecKey + ";",
		want: &ConnectionString{HostName: "h", DeviceID: "d", SharedAccessKey: vecKey}},
	{name: "missing host", in: "DeviceId=d;SharedAccessKey=" + vecKey, wantErr: "missing HostName"},
	{name: "missing key", in: "HostName=h;DeviceId=d", wantErr: "missing SharedAccessKey"},
	{name: "empty key", in: "HostName=h;DeviceId=d;SharedAccessKey=", wantErr: "missing SharedAccessKey"},
	{name: "bad base64 key", in: "HostName=h;DeviceId=d;SharedAccessKey=abc", wantErr: "SharedAccessKey"},
	{name: "neither policy nor device", in: "HostName=h;SharedAccessKey=" + vecKey, wantErr: "SharedAccessKeyName (service) or DeviceId"},
	{name: "both policy and device", in: "HostName=h;DeviceId=d;SharedAccessKeyName=p;SharedAccessKey=" + vecKey, wantErr: "both"},
	{name: "unknown key", in: "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=" + vecKey, wantErr: `"ModuleId"`},
	{name: "duplicate key", in: "HostName=h;hostname=g;DeviceId=d;SharedAccessKey=" + vecKey, wantErr: "twice"},
	{name: "not key=value", in: "HostName=h;junk;DeviceId=d;SharedAccessKey=" + vecKey, wantErr: "not Key=Value"},
	{name: "empty", in: "", wantErr: "missing HostName"},
}

func TestParseConnectionString(t *testing.T) {
	for _, tc := range connCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConnectionString(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != *tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			again, err := ParseConnectionString(got.String())
			if err != nil || *again != *got {
				t.Fatalf("String round trip: %q -> %+v, %v", got.String(), again, err)
			}
			if got.IsDevice() != (tc.want.DeviceID != "") {
				t.Error("IsDevice wrong")
			}
		})
	}
}

func TestConnectionStringString(t *testing.T) {
	c := &ConnectionString{HostName: "h", DeviceID: "d", SharedAccessKey: vecKey}
	if want := "HostName=h;DeviceId=d;SharedAccessKey=" + vecKey; c.String() != want {
		t.Fatalf("String = %q, want %q", c.String(), want)
	}
}

func FuzzParseConnectionString(f *testing.F) {
	for _, tc := range connCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConnectionString(s)
		if err != nil {
			return
		}
		if _, err := ParseConnectionString(c.String()); err != nil {
			t.Fatalf("String of a parsed connection string does not parse: %q: %v", c.String(), err)
		}
	})
}
