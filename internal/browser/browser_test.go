package browser

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"slices"
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

// TestRenderTime: an empty page takes some time, as its own clock says.
func TestRenderTime(t *testing.T) {
	b := New(t)
	d := b.RenderTime("testdata/empty.html")
	if d <= 0 {
		t.Fatalf("render time %v, want > 0", d)
	}
	t.Logf("empty page: %v", d)
}
