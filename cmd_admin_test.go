package main

import (
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJobsWatchWithoutStatistics: deviceJobStatistics is optional in the
// contract (a job that failed before it started has none); jobs watch
// reports such a job as ended, exit 1, instead of crashing.
func TestJobsWatchWithoutStatistics(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/jobs/v2/nostats" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write([]byte(`{"jobId":"nostats","type":"scheduleDeviceMethod","status":"failed","failureReason":"invalid queryCondition",` +
			`"queryCondition":"x","createdTime":"2026-12-03T10:00:00Z","endTime":"2026-12-03T10:00:01Z","maxExecutionTimeInSeconds":60}`))
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cs := "HostName=" + strings.TrimPrefix(srv.URL, "https://") + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" +
		base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	code, stdout, stderr := runCLI(t, t.Context(), "jobs", "watch", "nostats", "--hub", cs, "--ca", ca)
	if code != exitFailed || !strings.Contains(stderr, "job nostats ended failed with 0 failed device(s)") || !strings.Contains(stdout, `"nostats"`) {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 saying the job ended failed", code, stdout, stderr)
	}
}
