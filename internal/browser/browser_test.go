package browser

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestFilter: the page's script built its list before Open returned, and
// SetValue's events drive its filter.
func TestFilter(t *testing.T) {
	p := New(t).Open("testdata/filter.html")
	if n := p.Count("#devices li"); n != 4 {
		t.Fatalf("the script built %d items, want 4", n)
	}
	if got := p.Text("#devices li"); got != "dev-1" {
		t.Errorf("first item %q, want dev-1", got)
	}
	for _, tc := range []struct {
		selector, value string
		shown           int
		summary         string
	}{
		{"#status", "ok", 3, "3 of 4"},
		{"#q", "dev", 2, "2 of 4"},
		{"#status", "failed", 1, "1 of 4"},
		{"#q", "", 1, "1 of 4"},
		{"#status", "", 4, "4 of 4"},
	} {
		p.SetValue(tc.selector, tc.value)
		if n := p.Count("#devices li:not([hidden])"); n != tc.shown {
			t.Errorf("after %s=%q: %d shown, want %d", tc.selector, tc.value, n, tc.shown)
		}
		if got := p.Text("#summary"); got != tc.summary {
			t.Errorf("after %s=%q: summary %q, want %q", tc.selector, tc.value, got, tc.summary)
		}
	}
	var title string
	p.Eval(`document.title`, &title)
	if title != "filter" {
		t.Errorf("title %q, want filter", title)
	}
	if r := p.Requests(); len(r) != 0 {
		t.Errorf("a self-contained page made requests: %q", r)
	}
}

// TestRequests: a fetch and an image leaving the page are both listed
// (they fail: nothing listens there), its data: image and its own URL are
// not.
func TestRequests(t *testing.T) {
	p := New(t).Open("testdata/network.html")
	got := p.Requests()
	for _, want := range []string{"http://127.0.0.1:1/x", "https://example.invalid/a.png"} {
		if !slices.Contains(got, want) {
			t.Errorf("requests %q lack %s", got, want)
		}
	}
	if len(got) != 2 {
		t.Errorf("requests %q, want exactly the fetch and the image", got)
	}
}

// TestScreenshot writes a decodable PNG at least as large as the viewport.
func TestScreenshot(t *testing.T) {
	p := New(t).Open("testdata/filter.html")
	path := filepath.Join(t.TempDir(), "filter.png")
	p.Screenshot(path, 800, 600)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if s := img.Bounds().Size(); s.X != 800 || s.Y < 600 {
		t.Errorf("screenshot %v, want 800 wide and at least 600 high", s)
	}
}

// TestRenderTime: an empty page takes some time, as its own clock says;
// a big one's ratio to it is logged, never asserted (the machine's load
// decides it).
func TestRenderTime(t *testing.T) {
	b := New(t)
	empty := b.RenderTime("testdata/empty.html")
	if empty <= 0 {
		t.Fatalf("render time %v, want > 0", empty)
	}
	var page strings.Builder
	page.WriteString("<!doctype html><meta charset=utf-8><table>")
	for i := range 5000 {
		fmt.Fprintf(&page, "<tr><td>dev-%d</td><td>ok</td></tr>", i)
	}
	big := filepath.Join(t.TempDir(), "big.html")
	if err := os.WriteFile(big, []byte(page.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	d := b.RenderTime(big)
	t.Logf("empty page %v, 5,000 rows %v: %.1f×", empty, d, float64(d)/float64(empty))
}

// stopTB records how New stopped a test instead of stopping this one.
type stopTB struct {
	testing.TB
	how string
}

func (s *stopTB) Skipf(format string, args ...any) {
	s.how = "skip: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (s *stopTB) Fatalf(format string, args ...any) {
	s.how = "fatal: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestNamedChromiumMissing: a Chromium named by IOTJOBS_CHROMIUM that is
// not there fails the test, naming it, rather than skipping silently.
func TestNamedChromiumMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-chromium")
	t.Setenv("IOTJOBS_CHROMIUM", missing)
	s := &stopTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(s)
	}()
	<-done
	if !strings.HasPrefix(s.how, "fatal: ") || !strings.Contains(s.how, missing) {
		t.Errorf("New with a missing IOTJOBS_CHROMIUM: %q, want a failure naming %s", s.how, missing)
	}
}
