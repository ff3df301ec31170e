package hubd

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/iotjobs/iotjobs/hub/sas"
)

// A data directory has one owner: the process whose hub holds an OS lock
// (flock) on DATA/owner.lock. The kernel releases the lock when that
// process ends, however it ends, so a crashed owner never blocks the next
// one. The owner describes itself in DATA/owner.json, so that other
// commands given the same directory can talk to it through its API
// instead of opening the store under it (a second opener would resume,
// fail or overwrite the owner's jobs).

const (
	lockFile  = "owner.lock"
	ownerFile = "owner.json"
)

// OwnerInfo says which process owns a data directory and how to reach
// its hub from this machine.
type OwnerInfo struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
	// Ready says it has started: Endpoint and ConnectionString are
	// final.
	Ready bool `json:"ready"`
	// Endpoint is the HTTPS address of its REST API ("" when it serves
	// none).
	Endpoint string `json:"endpoint,omitempty"`
	// ConnectionString is the owner policy's, with a host name that
	// reaches Endpoint from this machine. The file is 0600, as the
	// directory's connection-string is.
	ConnectionString string `json:"connectionString,omitempty"`
}

// OwnedError is Open's error for a data directory another hub owns.
type OwnedError struct {
	Dir string
	// Owner is what the owner recorded; nil if it recorded nothing yet
	// (it is still starting).
	Owner *OwnerInfo
}

func (e *OwnedError) Error() string {
	o := e.Owner
	if o == nil {
		return fmt.Sprintf("data directory %s is in use by another iotjobs process", e.Dir)
	}
	if !o.Ready {
		return fmt.Sprintf("data directory %s is in use by process %d (%s), which is still starting", e.Dir, o.PID, o.Command)
	}
	api := "no REST API"
	if o.Endpoint != "" {
		api = "REST API https://" + o.Endpoint
	}
	return fmt.Sprintf("data directory %s is in use by process %d (%s, %s, since %s)", e.Dir, o.PID, o.Command, api, o.Since.Local().Format(time.DateTime))
}

// CAFile is the CA that the owner's certificate chains to.
func (e *OwnedError) CAFile() string { return filepath.Join(e.Dir, "tls", "ca.pem") }

// dirLock is a held lock on a data directory.
type dirLock struct {
	f   *os.File
	dir string
}

// lockDir takes dir's lock, or returns an *OwnedError naming the owner
// (waiting up to wait for an owner that is still starting to say where
// it serves).
func lockDir(ctx context.Context, dir string, wait time.Duration) (*dirLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("hub data directory lock: %w", err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		// Whatever record is there is a dead owner's.
		os.Remove(filepath.Join(dir, ownerFile))
		return &dirLock{f: f, dir: dir}, nil
	}
	f.Close()
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("hub data directory lock: %w", err)
	}
	return nil, &OwnedError{Dir: dir, Owner: waitOwner(ctx, dir, wait)}
}

// waitOwner reads dir's owner record, waiting up to wait while it is
// missing or not ready (the owner is starting: opening the store and
// resuming its jobs come before the API).
func waitOwner(ctx context.Context, dir string, wait time.Duration) *OwnerInfo {
	deadline := time.Now().Add(wait)
	for {
		o := readOwner(dir)
		if o != nil && o.Ready || time.Now().After(deadline) {
			return o
		}
		select {
		case <-ctx.Done():
			return o
		case <-time.After(50 * time.Millisecond): // polling a file another process writes
		}
	}
}

func readOwner(dir string) *OwnerInfo {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return nil
	}
	var o OwnerInfo
	if json.Unmarshal(b, &o) != nil || o.PID == 0 {
		return nil
	}
	return &o
}

// record writes the owner record atomically (a reader never sees half).
func (l *dirLock) record(o *OwnerInfo) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(l.dir, ownerFile), append(b, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", ownerFile, err)
	}
	return nil
}

// writeAtomic writes a file of the owned data directory (mode 0600) so
// that a reader sees the old content or the new, never a part: a
// temporary file renamed over it. The directory's lock makes the
// temporary name safe.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// release removes the record, then the lock.
func (l *dirLock) release() error {
	os.Remove(filepath.Join(l.dir, ownerFile))
	return l.f.Close() // closing the descriptor releases the flock
}

// ownerCommand names this process for the record: the program and its
// subcommand words, never its flags (they may carry a connection string).
func ownerCommand() string {
	words := []string{filepath.Base(os.Args[0])}
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-") || len(words) == 3 {
			break
		}
		words = append(words, a)
	}
	return strings.Join(words, " ")
}

// ownerRecord describes this hub for other processes on the machine.
func (h *Hub) ownerRecord(since time.Time, ready bool) *OwnerInfo {
	o := &OwnerInfo{PID: os.Getpid(), Command: ownerCommand(), Since: since, Ready: ready}
	if ready && h.httpAddr != "" {
		_, port, _ := net.SplitHostPort(h.httpAddr)
		o.Endpoint = net.JoinHostPort("127.0.0.1", port)
		// localhost:PORT is a name the certificate and the token check
		// both accept, whatever host name the hub was given.
		cs := sas.ConnectionString{HostName: "localhost:" + port, SharedAccessKeyName: OwnerPolicy, SharedAccessKey: h.owner}
		o.ConnectionString = cs.String()
	}
	return o
}

// replicaID is the data directory's replica id: the host name and a
// random suffix, made on first use and kept in DATA/replica-id with the
// directory's inode. A copy of the directory (another replica seeded
// from this one) has another inode, so it makes an id of its own: two
// live hubs with one id would both hold the same leases.
func replicaID(dir string) (string, error) {
	path := filepath.Join(dir, "replica-id")
	ino, err := inode(dir)
	if err != nil {
		return "", fmt.Errorf("replica id: %w", err)
	}
	if b, err := os.ReadFile(path); err == nil {
		if id, at, ok := strings.Cut(strings.TrimSpace(string(b)), " "); ok && id != "" && at == ino {
			return id, nil
		}
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "hub"
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return "", err
	}
	id := fmt.Sprintf("%s-%x", host, suffix)
	if err := os.WriteFile(path, []byte(id+" "+ino+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write the replica id: %w", err)
	}
	return id, nil
}

// inode names dir's file system object: device and inode number.
func inode(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("%s: no inode on this system", dir)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}
