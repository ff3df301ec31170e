//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// netLab is a small network of hosts on this machine: each host a network
// namespace with one veth into a bridge that lives in a namespace of its
// own (the switch), addresses 10.213.N.x/24 on those veths only. The test
// process reaches the hosts through one more veth of its own (.254).
// Cutting a host unplugs its veth from the bridge: its packets vanish
// silently both ways, as on a lost link (no reset, no error), until it is
// plugged back.
type netLab struct {
	t      *testing.T
	prefix string // of every namespace and interface name, unique per run
	subnet string // "10.213.N."
	hosts  map[string]string
}

// newNetLab builds the switch and the test's own veth. It skips the test
// where namespaces cannot be made (not root, no ip) unless
// IOTJOBS_REQUIRE_NETNS is set, as it is in CI.
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("IOTJOBS_REQUIRE_NETNS") != "" {
			t.Fatalf("network namespaces are required (IOTJOBS_REQUIRE_NETNS): %s", why)
		}
		t.Skip(why)
	}
	if os.Geteuid() != 0 {
		skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skip("no ip command (iproute2)")
	}
	pid := os.Getpid() % 100000
	l := &netLab{t: t, prefix: fmt.Sprintf("ij%d", pid), subnet: fmt.Sprintf("10.213.%d.", pid%250), hosts: map[string]string{}}
	// Deleting the namespaces last (cleanups run in reverse) takes every
	// veth with them; processes in them are ended by their own cleanups.
	t.Cleanup(func() {
		for name := range l.hosts {
			if name != "" {
				exec.Command("ip", "netns", "del", l.ns(name)).Run()
			}
		}
		exec.Command("ip", "link", "del", l.prefix+"h").Run()
		exec.Command("ip", "netns", "del", l.ns("sw")).Run()
	})
	l.ip("netns", "add", l.ns("sw"))
	l.ip("-n", l.ns("sw"), "link", "add", "br0", "type", "bridge")
	l.ip("-n", l.ns("sw"), "link", "set", "br0", "up")
	// The test's own port: one end here, one on the bridge.
	l.ip("link", "add", l.prefix+"h", "type", "veth", "peer", "name", l.prefix+"hs")
	l.plug(l.prefix + "hs")
	l.ip("addr", "add", l.subnet+"254/24", "dev", l.prefix+"h")
	l.ip("link", "set", l.prefix+"h", "up")
	l.hosts[""] = l.subnet + "254"
	return l
}

func (l *netLab) ns(name string) string { return l.prefix + "-" + name }

// ip runs ip(8) with args, failing the test on an error.
func (l *netLab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// plug moves veth end dev into the switch and attaches it to the bridge.
func (l *netLab) plug(dev string) {
	l.t.Helper()
	l.ip("link", "set", dev, "netns", l.ns("sw"))
	l.ip("-n", l.ns("sw"), "link", "set", dev, "master", "br0")
	l.ip("-n", l.ns("sw"), "link", "set", dev, "up")
}

// host adds a host (a namespace) with address 10.213.N.octet and returns
// that address.
func (l *netLab) host(name string, octet int) string {
	l.t.Helper()
	ns, dev := l.ns(name), l.prefix+name
	l.ip("netns", "add", ns)
	l.hosts[name] = fmt.Sprintf("%s%d", l.subnet, octet)
	l.ip("link", "add", dev, "type", "veth", "peer", "name", dev+"s")
	l.plug(dev + "s")
	l.ip("link", "set", dev, "netns", ns)
	l.ip("-n", ns, "addr", "add", l.hosts[name]+"/24", "dev", dev)
	l.ip("-n", ns, "link", "set", dev, "up")
	l.ip("-n", ns, "link", "set", "lo", "up")
	return l.hosts[name]
}

// cut unplugs host name from the switch; restore plugs it back.
func (l *netLab) cut(name string) {
	l.t.Helper()
	l.ip("-n", l.ns("sw"), "link", "set", l.prefix+name+"s", "nomaster")
}

func (l *netLab) restore(name string) {
	l.t.Helper()
	l.ip("-n", l.ns("sw"), "link", "set", l.prefix+name+"s", "master", "br0")
}

// command is a command to run on host name (ip netns exec replaces
// itself with it, so its PID is the command's).
func (l *netLab) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.ns(name)}, args...)...)
}

// waitPort waits until addr accepts TCP connections from the test's host.
func waitPort(t *testing.T, addr string, exited <-chan struct{}, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("the server for %s exited", addr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %s: %v", addr, within, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a port that is not there yet
	}
}

// labProcess is a server process on a lab host, its output kept for the
// failure message.
type labProcess struct {
	cmd  *exec.Cmd
	out  syncBuffer
	exit chan struct{}
}

func startLabProcess(t *testing.T, cmd *exec.Cmd) *labProcess {
	t.Helper()
	p := &labProcess{cmd: cmd, exit: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	go func() {
		cmd.Wait()
		close(p.exit)
	}()
	return p
}

// stop ends the process with sig and waits for it.
func (p *labProcess) stop(sig syscall.Signal) {
	select {
	case <-p.exit:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exit:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exit
	}
}

// startLabPostgres initialises a PostgreSQL cluster of the test's own (the
// machine's binaries, run as the postgres user) and serves it on host
// name; it returns the store URL.
func startLabPostgres(t *testing.T, l *netLab, name string) string {
	t.Helper()
	bindir := "/usr/lib/postgresql"
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		bindir = strings.TrimSpace(string(out))
	} else if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(m) > 0 {
		bindir = m[len(m)-1]
	}
	if _, err := os.Stat(filepath.Join(bindir, "postgres")); err != nil {
		if os.Getenv("IOTJOBS_REQUIRE_POSTGRES") != "" {
			t.Fatalf("no postgres binary in %s: %v", bindir, err)
		}
		t.Skip("no postgres binary")
	}
	dir, err := os.MkdirTemp("", "iotjobs-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v\n%s", dir, err, out)
	}
	data := filepath.Join(dir, "data")
	asPostgres := []string{"setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"}
	initdb := exec.Command(asPostgres[0], append(asPostgres[1:], filepath.Join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")...)
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// Trust the lab's own addresses, as the machine's PostgreSQL trusts
	// loopback.
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(hba, "host all all %s0/24 trust\n", l.subnet)
	hba.Close()
	addr := l.hosts[name]
	// fsync off: this cluster lives as long as the test and is never
	// crashed; the hub's own guarantees are what the test checks.
	p := startLabProcess(t, l.command(name, append(asPostgres, filepath.Join(bindir, "postgres"), "-D", data,
		"-c", "listen_addresses="+addr, "-c", "port=5432", "-c", "unix_socket_directories="+dir,
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200")...))
	t.Cleanup(func() {
		p.stop(syscall.SIGINT) // fast shutdown
		if t.Failed() {
			t.Logf("postgres:\n%s", tail(p.out.String(), 40))
		}
	})
	waitPort(t, addr+":5432", p.exit, time.Minute)
	return "postgres://postgres@" + addr + ":5432/postgres"
}

// labMosquitto is a Mosquitto of the test's own on a lab host, to kill
// and restart.
type labMosquitto struct {
	t    *testing.T
	l    *netLab
	name string
	conf string
	p    *labProcess
}

func startLabMosquitto(t *testing.T, l *netLab, name string) *labMosquitto {
	t.Helper()
	if _, err := exec.LookPath("mosquitto"); err != nil {
		if os.Getenv("IOTJOBS_REQUIRE_MOSQUITTO") != "" {
			t.Fatalf("mosquitto is required (IOTJOBS_REQUIRE_MOSQUITTO): %v", err)
		}
		t.Skip("no mosquitto binary")
	}
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	// No persistence: a restarted broker has forgotten every retained
	// presence and session, so devices must announce themselves again.
	os.WriteFile(conf, []byte(fmt.Sprintf("listener 1883 %s\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\n", l.hosts[name])), 0o644)
	os.Chmod(filepath.Dir(conf), 0o755)
	m := &labMosquitto{t: t, l: l, name: name, conf: conf}
	m.start()
	t.Cleanup(func() {
		m.p.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("mosquitto:\n%s", tail(m.p.out.String(), 40))
		}
	})
	return m
}

func (m *labMosquitto) addr() string { return m.l.hosts[m.name] + ":1883" }

func (m *labMosquitto) start() {
	m.t.Helper()
	m.p = startLabProcess(m.t, m.l.command(m.name, "mosquitto", "-c", m.conf))
	waitPort(m.t, m.addr(), m.p.exit, 30*time.Second)
}

// kill ends the broker at once (SIGKILL: no Will, no clean goodbye).
func (m *labMosquitto) kill() { m.p.stop(syscall.SIGKILL) }

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
