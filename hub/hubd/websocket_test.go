package hubd_test

import (
	"crypto/tls"
	"net/http"
	"testing"
	"time"
)

// TestWebsocketRoute checks that the HTTPS port hands /$iothub/websocket
// (where "$" must be a literal in the mux pattern) to the broker and
// everything else to the REST API. The Azure SDK check connects a device
// through it.
func TestWebsocketRoute(t *testing.T) {
	t.Parallel()
	h := openHub(t, t.TempDir(), "127.0.0.1:0")
	c := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool(t, h)}},
		Timeout:   10 * time.Second,
	}
	for _, tc := range []struct {
		path string
		want int
	}{
		// The broker's answer to a request that is not a WebSocket upgrade.
		{"/$iothub/websocket", http.StatusUpgradeRequired},
		// REST's answers to a request without a SAS token.
		{"/devices/d1?api-version=2021-04-12", http.StatusUnauthorized},
		{"/$iothub/websocket/x", http.StatusUnauthorized},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := c.Get("https://" + h.HTTPAddr() + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}
