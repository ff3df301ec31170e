package sas

import "testing"

func TestParseUsername(t *testing.T) {
	for _, tc := range []struct {
		name, in                     string
		host, device, module, apiVer string
		wantErr                      bool
	}{
		{name: "node", in: "localhost/dev1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4%20(node%20v20.20.2%3B%20Debian%2012%3B%20x64)",
			host: "localhost", device: "dev1", apiVer: "2021-04-12"},
		{name: "module", in: "h/d/m/?api-version=2021-04-12", host: "h", device: "d", module: "m", apiVer: "2021-04-12"},
		{name: "no question mark", in: "h/d/api-version=2020-09-30", host: "h", device: "d", apiVer: "2020-09-30"},
		{name: "no query", in: "h:8884/d/", host: "h:8884", device: "d"},
		{name: "no trailing slash", in: "h/d", host: "h", device: "d"},
		{name: "empty", in: "", wantErr: true},
		{name: "host only", in: "h/", wantErr: true},
		{name: "empty device", in: "h//?api-version=1", wantErr: true},
		{name: "too many segments", in: "h/a/b/c/?x=1", wantErr: true},
		{name: "bad query", in: "h/d/?a=%zz", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseUsername(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want error", u)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Host != tc.host || u.DeviceID != tc.device || u.ModuleID != tc.module || u.Query.Get("api-version") != tc.apiVer {
				t.Fatalf("got %+v", u)
			}
		})
	}
}
