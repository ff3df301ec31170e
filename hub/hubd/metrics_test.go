package hubd_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/hubd"
)

func TestMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	h, err := hubd.Open(ctx, hubd.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c := h.Client()
	if _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: "offline"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateJob(ctx, &hub.Job{JobID: "m", Type: hub.JobDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "reboot"}}); err != nil {
		t.Fatal(err)
	}
	for j, err := c.WatchJob(ctx, "m", nil); !j.Status.Terminal(); j, err = c.WatchJob(ctx, "m", j) {
		if err != nil {
			t.Fatal(err)
		}
	}
	pool, err := hubd.LoadCA(h.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := cl.Get("https://" + h.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`iotjobs_jobs{status="completed"} 1`,
		`iotjobs_jobs{status="running"} 0`,
		`iotjobs_job_device_operations_total{status="failed",type="scheduleDeviceMethod"} 1`,
		`iotjobs_broker_messages_dropped 0`,
		`iotjobs_broker_inflight_dropped 0`,
		`iotjobs_broker_clients 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
