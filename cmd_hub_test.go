package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/iotjobs/iotjobs/hub/sas"
)

// TestHubServeHidesKey: hub serve prints where it listens (stderr) and,
// once it serves, the path of its connection-string file as the one line
// on stdout; the owner key is in that file only, never in its output.
func TestHubServeHidesKey(t *testing.T) {
	data := filepath.Join(t.TempDir(), "hub")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"iotjobs", "hub", "serve", "--data", data, "--https", "127.0.0.1:0", "--mqtts", "127.0.0.1:0"}, strings.NewReader(""), pw, &stderr)
		pw.Close()
	}()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	file := filepath.Join(data, "connection-string")
	waitLine(t, lines, regexp.MustCompile(`^`+regexp.QuoteMeta(file)+`$`))
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sas.ParseConnectionString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if fi, err := os.Stat(file); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v; want 0600", file, fi.Mode().Perm())
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("hub serve exit %d\n%s", code, stderr.String())
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if len(rest) != 0 {
		t.Errorf("stdout has more than the file's path: %q", rest)
	}
	errText := stderr.String()
	if !strings.Contains(errText, "REST API  https://127.0.0.1:") || !strings.Contains(errText, "connection string in "+file) {
		t.Errorf("stderr does not say where the hub listens and where its connection string is:\n%s", errText)
	}
	if strings.Contains(errText, cs.SharedAccessKey) {
		t.Errorf("stderr holds the owner key:\n%s", errText)
	}
}
