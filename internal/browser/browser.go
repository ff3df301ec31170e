package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// opTimeout bounds each step (a load, an evaluation, a screenshot): long
// enough for a busy two-core CI machine, short enough that a hung page
// fails the test instead of the suite's timeout.
const opTimeout = 30 * time.Second

// settleJS resolves after two animation frames: the page's reactions to
// the load or to an event have run and been laid out by then.
const settleJS = `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`

// Browser is one headless Chromium process, closed when the test ends.
type Browser struct {
	tb  testing.TB
	ctx context.Context // the browser's first tab: new tabs derive from it
}

// ExecPath is the Chromium New starts: $IOTJOBS_CHROMIUM, else
// /usr/bin/chromium (Debian's package), else chromium on PATH; "" when
// there is none.
func ExecPath() string {
	if p := os.Getenv("IOTJOBS_CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// New starts a headless Chromium for tb. Without one it skips tb, or
// fails it under IOTJOBS_REQUIRE_CHROMIUM.
func New(tb testing.TB) *Browser {
	tb.Helper()
	path := ExecPath()
	if path == "" {
		const how = "install Debian's chromium (apt-get install chromium) or set IOTJOBS_CHROMIUM to a Chromium binary"
		if os.Getenv("IOTJOBS_REQUIRE_CHROMIUM") != "" {
			tb.Fatalf("no Chromium found: %s (IOTJOBS_REQUIRE_CHROMIUM is set, so this fails instead of skipping)", how)
		}
		tb.Skipf("no Chromium found, skipping: %s", how)
	}
	path, err := exec.LookPath(path)
	if err != nil {
		tb.Fatalf("Chromium (IOTJOBS_CHROMIUM): %v", err)
	}
	// The flags that work on a machine with a closed network: without the
	// background-networking ones Chromium keeps trying Google's hosts. As
	// root Chromium needs --no-sandbox. chromedp gives the process a fresh
	// user data directory and removes it after the process exits.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(func() {
		cancel()
		acancel()
	})
	// The first run starts the process; it must not carry a timeout (that
	// would end the browser with it). The allocator bounds the start: it
	// gives up when Chromium prints no DevTools address in time.
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start Chromium %s: %v", path, err)
	}
	return &Browser{tb: tb, ctx: ctx}
}

// Page is one tab with a local HTML file loaded, closed when the test ends.
type Page struct {
	tb  testing.TB
	ctx context.Context
	url string

	mu       sync.Mutex
	requests []string // URLs the page requested beyond itself
	errs     []string // the page's uncaught exceptions
}

// fileURL is the file:// URL of path, as Chromium spells it.
func fileURL(tb testing.TB, path string) string {
	tb.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		tb.Fatalf("page %s: %v", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		tb.Fatalf("page %s: %v", path, err)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
}

// Open loads the HTML file at path in a new tab and returns once the
// document is complete and its scripts' first reactions have rendered
// (two animation frames after load). From the start it records every
// request the page makes other than its own URL and data:/blob: URLs.
func (b *Browser) Open(path string) *Page {
	b.tb.Helper()
	p := &Page{tb: b.tb, url: fileURL(b.tb, path)}
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.tb.Cleanup(cancel)
	p.ctx = ctx
	// Listen opens the tab (without a timeout, as that would close it) and
	// hears its events from then on, before the navigation starts.
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			u := ev.Request.URL
			if u == p.url || strings.HasPrefix(u, "data:") || strings.HasPrefix(u, "blob:") {
				return
			}
			p.mu.Lock()
			p.requests = append(p.requests, u)
			p.mu.Unlock()
		case *runtime.EventExceptionThrown:
			p.mu.Lock()
			p.errs = append(p.errs, exceptionText(ev.ExceptionDetails))
			p.mu.Unlock()
		}
	})
	if err != nil {
		b.tb.Fatalf("open a tab for %s: %v", path, err)
	}
	p.run("load "+path, chromedp.Navigate(p.url), waitComplete())
	for _, e := range p.pageErrors() {
		b.tb.Logf("%s: uncaught exception: %s", path, e)
	}
	return p
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "?"
	}
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return d.Text
}

// waitComplete waits for readyState complete, then two animation frames.
func waitComplete() chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`document.readyState === "complete"`)(ctx, t)
			return err
		}),
		chromedp.Evaluate[chromedp.Void](settleJS, chromedp.EvalAwaitPromise),
	)
}

func (p *Page) pageErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// run runs the steps with a deadline and fails the test on error, naming
// the page's uncaught exceptions, which are often the cause.
func (p *Page) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, opTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.fatalf("%s: %v", what, err)
	}
}

func (p *Page) fatalf(format string, args ...any) {
	p.tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if errs := p.pageErrors(); len(errs) > 0 {
		msg += "\n(the page's uncaught exceptions: " + strings.Join(errs, "; ") + ")"
	}
	p.tb.Fatal(msg)
}

// Eval evaluates js in the page, awaiting a promise it returns, and
// decodes the JSON of its value into out (nil to ignore it).
func (p *Page) Eval(js string, out any) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, opTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.fatalf("evaluate %s: %v", js, err)
	}
	if out == nil {
		return
	}
	if raw == nil {
		p.fatalf("evaluate %s: the result is undefined", js)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		p.fatalf("evaluate %s: decode %s into %T: %v", js, raw, out, err)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Count is the number of elements matching the CSS selector.
func (p *Page) Count(selector string) int {
	p.tb.Helper()
	var n int
	p.Eval(`document.querySelectorAll(`+jsString(selector)+`).length`, &n)
	return n
}

// Text is the textContent of the first element matching the CSS
// selector; the test fails when none does.
func (p *Page) Text(selector string) string {
	p.tb.Helper()
	var s *string
	p.Eval(`(() => { const e = document.querySelector(`+jsString(selector)+`); return e ? e.textContent : null })()`, &s)
	if s == nil {
		p.fatalf("no element matches %q in %s", selector, p.url)
	}
	return *s
}

// SetValue sets the value of the input or select matching selector and
// dispatches input and change events, as a user's edit does, then waits
// two animation frames for the page's reaction. The test fails when no
// element matches or the element does not take the value (a select
// without that option).
func (p *Page) SetValue(selector, value string) {
	p.tb.Helper()
	var res string
	p.Eval(`(() => {
		const e = document.querySelector(`+jsString(selector)+`);
		if (!e) return "no element matches";
		e.value = `+jsString(value)+`;
		if (e.value !== `+jsString(value)+`) return "the element did not take the value (its value is " + JSON.stringify(e.value) + ")";
		e.dispatchEvent(new Event("input", {bubbles: true}));
		e.dispatchEvent(new Event("change", {bubbles: true}));
		return "";
	})()`, &res)
	if res != "" {
		p.fatalf("set %q to %q in %s: %s", selector, value, p.url, res)
	}
	p.Eval(settleJS, nil)
}

// Requests is every URL the page requested so far beyond itself and
// data:/blob: URLs, in order; a self-contained page has none.
func (p *Page) Requests() []string {
	p.tb.Helper()
	// A round trip first: the tab hands events to the listener before the
	// replies that follow them, so every request Chromium reported before
	// answering is recorded.
	p.Eval(`0`, nil)
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

// Screenshot writes a PNG of the whole page laid out in a viewport of
// width×height CSS pixels to path.
func (p *Page) Screenshot(path string, width, height int) {
	p.tb.Helper()
	var png []byte
	p.run("screenshot",
		chromedp.EmulateViewport(int64(width), int64(height)),
		chromedp.Evaluate[chromedp.Void](settleJS, chromedp.EvalAwaitPromise),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) (err error) {
			png, err = chromedp.FullScreenshot(100)(ctx, t)
			return err
		}),
	)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.tb.Fatalf("write the screenshot of %s: %v", p.url, err)
	}
}

// RenderTime loads the HTML file at path in a tab of its own and returns
// the page's time from navigation start to load complete plus two
// animation frames, as the page's own clock (performance.now) measures
// it, so the protocol's round trips do not count. Compare pages by ratio:
// absolute times depend on the machine and its load.
func (b *Browser) RenderTime(path string) time.Duration {
	b.tb.Helper()
	u := fileURL(b.tb, path)
	ctx, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // opens the tab, without a timeout
		b.tb.Fatalf("open a tab for %s: %v", path, err)
	}
	tctx, tcancel := context.WithTimeout(ctx, opTimeout)
	defer tcancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(u)); err != nil {
		b.tb.Fatalf("load %s: %v", path, err)
	}
	ms, err := chromedp.Run(tctx, chromedp.Evaluate[float64](`new Promise(r => {
		const done = () => requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now())));
		if (document.readyState === "complete") done(); else addEventListener("load", done);
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.tb.Fatalf("time %s: %v", path, err)
	}
	if ms <= 0 {
		b.tb.Fatalf("time %s: the page's clock says %v ms", path, ms)
	}
	return time.Duration(ms * float64(time.Millisecond))
}
