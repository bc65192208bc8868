// Package browser drives a real headless Chromium through chromedp for the
// end-to-end tests of the web pages: navigate, fill a field, click, wait for
// an element, read text, and save full-page screenshots as test artefacts.
//
// Every step waits with chromedp (for the element, for the navigation), never
// with a sleep, and is bounded by Page.Timeout. A failed step saves a
// screenshot named "failure" and fails the test with Chromium's own output.
//
// Chromium is found by testenv.Chromium (STARTTLS_PRELOAD_TEST_CHROMIUM, else
// `chromium` on PATH). It runs as root with no network: --headless
// --no-sandbox --disable-gpu --disable-quic --no-first-run
// --disable-background-networking --disable-component-update --disable-sync,
// a fresh --user-data-dir under t.TempDir(), and host-resolver rules that
// resolve no name but localhost, so a page can reach nothing but loopback.
//
// Screenshots (PNG) are written to $STARTTLS_PRELOAD_ARTIFACTS/<test name>/
// when that environment variable names a directory (CI keeps it), else to a
// t.TempDir() that is removed after the test; each file name starts with a
// sequence number, so the directory lists the pages in the order seen.
package browser

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/starttls-preload/starttls-preload/internal/testenv"
)

// ArtifactsEnv names the directory under which screenshots are kept.
const ArtifactsEnv = "STARTTLS_PRELOAD_ARTIFACTS"

// Page is one browser tab of a fresh Chromium, closed when the test ends.
type Page struct {
	// Timeout bounds each step (default 30 s).
	Timeout time.Duration
	// Dir is where screenshots are written.
	Dir string

	t   testing.TB
	ctx context.Context
	n   int // screenshots taken

	outMu sync.Mutex
	out   bytes.Buffer // Chromium's stdout and stderr
}

// New starts Chromium with an empty profile and opens a tab. It skips or
// fails the test when Chromium is missing (see testenv).
func New(t testing.TB) *Page {
	t.Helper()
	exe := testenv.Chromium(t)
	p := &Page{Timeout: 30 * time.Second, Dir: artifactDir(t), t: t}
	profile := t.TempDir() // removed after Chromium exits (cleanups run last-in first-out)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // root in a container: the sandbox cannot start
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Without these, Chromium reaches for Google's hosts at start and
		// in the background; this machine's closed network refuses them.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.*"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(lockedWriter{p}),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for Chromium to exit
	})
	p.ctx = ctx
	// The first action starts the browser; it must run on the tab's own
	// context (not one with a step's timeout), whose end would close it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: starting %s: %v\n%s", exe, err, p.output())
	}
	return p
}

// lockedWriter collects Chromium's output for failure messages.
type lockedWriter struct{ p *Page }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.outMu.Lock()
	defer w.p.outMu.Unlock()
	if w.p.out.Len() < 64<<10 {
		w.p.out.Write(b)
	}
	return len(b), nil
}

// output is Chromium's output without its complaints about the missing
// D-Bus, which say nothing about the page.
func (p *Page) output() string {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	var b strings.Builder
	for line := range strings.Lines(p.out.String()) {
		if !strings.Contains(line, ":ERROR:dbus/") {
			b.WriteString(line)
		}
	}
	return b.String()
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// artifactDir is $STARTTLS_PRELOAD_ARTIFACTS/<test name>, or a temporary
// directory.
func artifactDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv(ArtifactsEnv)
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, unsafeName.ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browser: artefact directory: %v", err)
	}
	return dir
}

// Context returns the tab's context, for chromedp actions the helpers do
// not cover.
func (p *Page) Context() context.Context { return p.ctx }

// step runs actions with the step timeout and fails the test on error.
func (p *Page) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fail(what, err)
	}
}

// fail saves a screenshot of the page as it is and fails the test.
func (p *Page) fail(what string, err error) {
	p.t.Helper()
	shot := ""
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if b, serr := chromedp.Run(ctx, chromedp.FullScreenshot(100)); serr == nil {
		shot = p.save("failure", b)
	}
	url, _ := chromedp.Run(ctx, chromedp.Location())
	p.t.Fatalf("browser: %s: %v (page %s; screenshot %s)\nchromium output:\n%s", what, err, url, shot, p.output())
}

// Navigate loads url and waits for it to load.
func (p *Page) Navigate(url string) {
	p.t.Helper()
	p.step("navigate to "+url, chromedp.Navigate(url))
}

// NavigateStatus loads url and returns the HTTP status of the document.
func (p *Page) NavigateStatus(url string) int64 {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		p.fail("navigate to "+url, err)
	}
	return resp.Status
}

// Fill types value into the field matched by the CSS selector, replacing
// what it held.
func (p *Page) Fill(sel, value string) {
	p.t.Helper()
	p.step("fill "+sel, chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), value))
}

// Click clicks the element matched by the CSS selector (once it is
// visible) and does not wait for anything after.
func (p *Page) Click(sel string) {
	p.t.Helper()
	p.step("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// ClickNavigate clicks the element matched by the CSS selector (a link, a
// form's submit button), waits for the page it leads to, and returns that
// page's HTTP status.
func (p *Page) ClickNavigate(sel string) int64 {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		p.fail("click "+sel+" and wait for the next page", err)
	}
	return resp.Status
}

// WaitVisible waits until the element matched by the CSS selector is
// visible.
func (p *Page) WaitVisible(sel string) {
	p.t.Helper()
	p.step("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// Text returns the visible text of the element matched by the CSS
// selector, waiting for it to be visible.
func (p *Page) Text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		p.fail("text of "+sel, err)
	}
	return s
}

// Attr returns the value of an attribute of the element matched by the CSS
// selector (once the element is in the page), "" when it has none.
func (p *Page) Attr(sel, name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	a, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name, chromedp.NodeReady))
	if err != nil {
		p.fail("attribute "+name+" of "+sel, err)
	}
	return a.Value
}

// Value returns the value of the form field matched by the CSS selector.
func (p *Page) Value(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		p.fail("value of "+sel, err)
	}
	return s
}

// Exists reports whether an element matches the CSS selector now, without
// waiting.
func (p *Page) Exists(sel string) bool {
	p.t.Helper()
	return p.EvalBool(fmt.Sprintf("document.querySelector(%q) !== null", sel))
}

// EvalBool evaluates a JavaScript expression in the page (through the
// DevTools protocol: the page's Content-Security-Policy does not apply) and
// returns its boolean value.
func (p *Page) EvalBool(js string) bool {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
	if err != nil {
		p.fail("evaluate "+js, err)
	}
	return ok
}

// Location returns the URL of the page shown.
func (p *Page) Location() string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		p.fail("location", err)
	}
	return s
}

// Screenshot saves a full-page PNG of the page shown as
// <Dir>/<NN>-<name>.png and returns its path.
func (p *Page) Screenshot(name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		p.fail("screenshot "+name, err)
	}
	path := p.save(name, b)
	p.t.Logf("screenshot %s", path)
	return path
}

func (p *Page) save(name string, b []byte) string {
	p.n++
	path := filepath.Join(p.Dir, fmt.Sprintf("%02d-%s.png", p.n, unsafeName.ReplaceAllString(name, "_")))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		p.t.Errorf("browser: saving screenshot: %v", err)
	}
	return path
}
