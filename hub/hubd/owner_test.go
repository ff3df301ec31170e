package hubd_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iotjobs/iotjobs/hub/hubd"
	"github.com/iotjobs/iotjobs/hub/sas"
)

// TestOneOwnerPerDataDir: while a hub owns a data directory, a second
// Open of it fails with an *OwnedError that says who owns it and where
// its API is, and touches nothing; once the owner closes, the directory
// opens again.
func TestOneOwnerPerDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := openHub(t, dir, "127.0.0.1:0")
	cs, err := os.ReadFile(dir + "/connection-string")
	must(t, "read connection string", err)

	ctx := testCtx(t, time.Minute)
	_, err = hubd.Open(ctx, hubd.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Logger: quiet})
	owned, ok := errors.AsType[*hubd.OwnedError](err)
	if !ok {
		t.Fatalf("second Open: %v, want *hubd.OwnedError", err)
	}
	o := owned.Owner
	if o == nil || o.PID != os.Getpid() || !o.Ready || !strings.HasSuffix(first.HTTPAddr(), portOf(o.Endpoint)) {
		t.Fatalf("owner %+v, want this process, ready, serving on %s", o, first.HTTPAddr())
	}
	for _, want := range []string{dir, "in use by process", o.Endpoint} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// The record's connection string reaches the owner's API.
	rcs, err := sas.ParseConnectionString(o.ConnectionString)
	must(t, "owner's connection string", err)
	if rcs.HostName != "localhost:"+portOf(first.HTTPAddr()) {
		t.Errorf("owner's connection string names %s, want localhost with the owner's port", rcs.HostName)
	}
	// The refused Open changed nothing of the owner's.
	if now, _ := os.ReadFile(dir + "/connection-string"); string(now) != string(cs) {
		t.Errorf("connection-string changed from %q to %q", cs, now)
	}

	first.Close()
	if _, err := os.Stat(dir + "/owner.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owner.json after Close: %v, want it removed", err)
	}
	again, err := hubd.Open(ctx, hubd.Config{DataDir: dir, MQTTAddr: "127.0.0.1:0", Logger: quiet})
	must(t, "open after the owner closed", err)
	again.Close()
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// TestReplicaID: a data directory keeps its replica id across restarts;
// a copy of it (a replica seeded from another's directory) gets its own.
func TestReplicaID(t *testing.T) {
	dir := t.TempDir()
	a, err := hubd.ReplicaID(dir)
	must(t, "replica id", err)
	again, err := hubd.ReplicaID(dir)
	must(t, "replica id again", err)
	copied := t.TempDir()
	b, _ := os.ReadFile(dir + "/replica-id")
	must(t, "copy", os.WriteFile(copied+"/replica-id", b, 0o600))
	other, err := hubd.ReplicaID(copied)
	must(t, "replica id of the copy", err)
	if a == "" || again != a || other == a {
		t.Errorf("ids %q, then %q, and %q for the copy; want the same twice, another for the copy", a, again, other)
	}
}
