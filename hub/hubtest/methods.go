package hubtest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
)

func testMethods(t *testing.T, h *Harness) {
	ctx := TestCtx(t, 15*time.Second)
	c := h.Client
	cases := []struct {
		name    string
		id      string
		req     hub.MethodRequest
		status  int    // the device's status, when the call succeeds
		payload string // the device's payload, when the call succeeds
		code    string // the hub error code otherwise
	}{
		{"answers 200 with payload", "lock-ok", hub.MethodRequest{MethodName: "lockDoor", Payload: json.RawMessage(`{"pin":1234}`), ResponseTimeoutInSeconds: 10}, 200, `{"locked":true}`, ""},
		{"default timeouts", "lock-ok", hub.MethodRequest{MethodName: "lockDoor"}, 200, `{"locked":true}`, ""},
		{"device status 500 passes through", "lock-fail", hub.MethodRequest{MethodName: "lockDoor", Payload: json.RawMessage(`null`)}, 500, `{"message":"simulated failure"}`, ""},
		{"unimplemented method", "echo", hub.MethodRequest{MethodName: "reboot"}, 501, "", ""},
		{"offline device", "lock-offline", hub.MethodRequest{MethodName: "lockDoor"}, 0, "", hub.CodeDeviceNotOnline},
		{"offline device, connect timeout 1s", "lock-offline", hub.MethodRequest{MethodName: "lockDoor", ConnectTimeoutInSeconds: 1}, 0, "", hub.CodeDeviceNotOnline},
		{"unknown device", "nope", hub.MethodRequest{MethodName: "lockDoor"}, 0, "", hub.CodeDeviceNotFound},
		{"response timeout too small", "lock-ok", hub.MethodRequest{MethodName: "lockDoor", ResponseTimeoutInSeconds: 4}, 0, "", hub.CodeArgumentInvalid},
		{"response timeout too large", "lock-ok", hub.MethodRequest{MethodName: "lockDoor", ResponseTimeoutInSeconds: 301}, 0, "", hub.CodeArgumentInvalid},
		{"connect timeout too large", "lock-ok", hub.MethodRequest{MethodName: "lockDoor", ConnectTimeoutInSeconds: 301}, 0, "", hub.CodeArgumentInvalid},
		{"bad method name", "lock-ok", hub.MethodRequest{MethodName: "lock door"}, 0, "", hub.CodeArgumentInvalid},
	}
	for _, tc := range cases {
		start := time.Now()
		resp, err := c.InvokeMethod(ctx, tc.id, &tc.req)
		if tc.code != "" {
			WantCode(t, tc.name, err, tc.code)
			// Not online means not online now: no waiting for a device
			// that is not connected when connectTimeout is 0.
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("%s: took %v, want a quick answer", tc.name, el)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if resp.Status != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.Status, tc.status)
		}
		if tc.payload != "" && !JSONEqual(t, resp.Payload, []byte(tc.payload)) {
			t.Errorf("%s: payload %s, want %s", tc.name, resp.Payload, tc.payload)
		}
	}
}

func testMethodConnectTimeout(t *testing.T, h *Harness) {
	needConnect(t, h, "lock-offline cannot come online while a call waits for it")
	ctx := TestCtx(t, 20*time.Second)
	type result struct {
		resp *hub.MethodResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := h.Client.InvokeMethod(ctx, "lock-offline", &hub.MethodRequest{MethodName: "lockDoor", ConnectTimeoutInSeconds: 15})
		done <- result{resp, err}
	}()
	// The "offline" device comes online while the call waits for it.
	connectOffline(ctx, t, h)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("invoke with a connect timeout on a device that connects meanwhile: %v", r.err)
		}
		if r.resp.Status != 200 {
			t.Errorf("status %d, want 200", r.resp.Status)
		}
	case <-ctx.Done():
		t.Fatal("no answer before the deadline")
	}
}
