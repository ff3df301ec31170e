package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/rest"
)

// TestDataDirOwner is the new-user case of two shells on one data
// directory: while a hub process owns it and runs a job, `jobs list
// --data` from another shell shows the job's true status through the
// owner's API and changes nothing, and a second `hub serve` on it exits 3
// naming the first. Once the owner is killed, commands open the
// directory themselves again.
func TestDataDirOwner(t *testing.T) {
	dir := t.TempDir()
	h := &hubProcess{t: t, args: []string{"--data", dir, "--https", "127.0.0.1:0", "--mqtts", "127.0.0.1:0"}}
	cs := h.start()
	defer func() {
		if h.cmd.ProcessState == nil {
			h.kill()
		}
	}()
	ca, err := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c, err := rest.NewClient(cs, rest.Options{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A job that stays running: its devices are offline and it waits
	// five minutes for them.
	for i := range 3 {
		if _, err := c.CreateDevice(ctx, &hub.Device{DeviceID: fmt.Sprintf("own-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateJob(ctx, &hub.Job{JobID: "live", Type: hub.JobDeviceMethod, QueryCondition: "*", MaxExecutionTimeInSeconds: 600,
		CloudToDeviceMethod: &hub.MethodRequest{MethodName: "reboot", ConnectTimeoutInSeconds: 300}}); err != nil {
		t.Fatal(err)
	}
	j, err := c.GetJob(ctx, "live")
	for err == nil && j.Status != hub.JobRunning {
		j, err = c.WatchJob(ctx, "live", j)
	}
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := os.ReadFile(filepath.Join(dir, "connection-string"))

	code, stdout, stderr := runCLI(t, ctx, "jobs", "list", "--data", dir)
	if code != 0 {
		t.Fatalf("jobs list --data while owned: exit %d\n%s", code, stderr)
	}
	var listed []*hub.Job
	if err := json.Unmarshal([]byte(stdout), &listed); err != nil || len(listed) != 1 || listed[0].Status != hub.JobRunning {
		t.Errorf("jobs list --data while owned: %v %s, want the live job running", err, stdout)
	}
	pid := fmt.Sprint(h.cmd.Process.Pid)
	if !strings.Contains(stderr, "in use by process "+pid) {
		t.Errorf("jobs list --data does not say whose hub it used: %q", stderr)
	}

	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	code, _, stderr = runCLI(t, sctx, "hub", "serve", "--data", dir, "--https", "127.0.0.1:0", "--mqtts", "127.0.0.1:0")
	scancel()
	if code != 3 || !strings.Contains(stderr, "in use by process "+pid) || !strings.Contains(stderr, "stop it first") {
		t.Errorf("second hub serve: exit %d, %q; want 3 naming process %s", code, stderr, pid)
	}
	// Neither command changed the owner's job or files.
	if j, err := c.GetJob(ctx, "live"); err != nil || j.Status != hub.JobRunning || j.DeviceJobStatistics.FailedCount != 0 {
		t.Errorf("the live job after the other commands: %+v, %v; want it running untouched", j, err)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, "connection-string")); string(now) != string(conn) {
		t.Errorf("connection-string overwritten: %q, was %q", now, conn)
	}

	// With the owner gone (SIGKILL: the kernel releases its lock), the
	// directory is the next command's own.
	h.kill()
	code, stdout, stderr = runCLI(t, ctx, "jobs", "show", "live", "--data", dir)
	if code != 0 || strings.Contains(stderr, "in use by") {
		t.Errorf("jobs show --data after the owner died: exit %d, %s", code, stderr)
	}
	if !strings.Contains(stdout, `"jobId": "live"`) {
		t.Errorf("jobs show --data after the owner died: %s", stdout)
	}
}
