package mqttproto

import (
	"encoding/json"
	"testing"
)

func TestMethodPayload(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		wantErr        bool
	}{
		{"empty", "", "null", false},
		{"space", " ", "null", false},
		{"object", `{"delay":0}`, `{"delay":0}`, false},
		{"trimmed", " 42\n", "42", false},
		{"string", `"x"`, `"x"`, false},
		{"invalid", `{"a":`, `"{\"a\":"`, true},
		{"not json text", "hello", `"hello"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseMethodPayload([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseMethodPayload err = %v", err)
			}
			if !tc.wantErr && string(p) != tc.want {
				t.Fatalf("ParseMethodPayload = %s, want %s", p, tc.want)
			}
			got := MethodPayload([]byte(tc.in))
			if string(got) != tc.want || !json.Valid(got) {
				t.Fatalf("MethodPayload = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDesiredPatchPayload(t *testing.T) {
	patch := map[string]any{"telemetrySendFrequency": "5m", "route": nil}
	b, err := DesiredPatchPayload(patch, 8)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"$version":8,"route":null,"telemetrySendFrequency":"5m"}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	if _, ok := patch["$version"]; ok {
		t.Fatal("DesiredPatchPayload modified its argument")
	}
	if _, err := DesiredPatchPayload(map[string]any{"f": func() {}}, 1); err == nil {
		t.Fatal("unmarshalable patch accepted")
	}
}

func TestErrorBody(t *testing.T) {
	if got, want := string(ErrorBody(400004, `bad "json"`)), `{"errorCode":400004,"message":"bad \"json\""}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
