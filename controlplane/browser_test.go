package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// One headless Chromium serves every browser test of the package; each test
// gets its own browser context (its own storage) and tab. TestMain closes
// the browser before it looks for leaked goroutines.

func TestMain(m *testing.M) {
	code := m.Run()
	closeBrowser()
	testenv.Shutdown()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var browser struct {
	once   sync.Once
	path   string
	err    error
	ctx    context.Context // the browser's chromedp context
	cancel func()
}

// chromiumPath finds the browser: EXO_CHROMIUM or CHROME_PATH (set by
// deploy/local/test.sh from deploy/local/chromium.sh), else chromium in PATH.
func chromiumPath() (string, error) {
	for _, env := range []string{"EXO_CHROMIUM", "CHROME_PATH"} {
		if p := os.Getenv(env); p != "" {
			if _, err := exec.LookPath(p); err != nil {
				return "", fmt.Errorf("%s=%s is not an executable: %w", env, p, err)
			}
			return p, nil
		}
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no chromium: set EXO_CHROMIUM, or install Debian's chromium package (deploy/local/chromium.sh does, as root)")
}

func startBrowser() {
	if browser.path, browser.err = chromiumPath(); browser.err != nil {
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser.path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-gpu", true),
		// Loopback only: the page under test must need nothing else, and a
		// name that is not resolved cannot be fetched.
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	browser.ctx = ctx
	browser.cancel = func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(cctx)
		cancelCtx()
		cancelAlloc()
	}
	// The first Run starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		browser.err = fmt.Errorf("start %s: %w", browser.path, err)
		browser.cancel()
		browser.cancel = nil
	}
}

func closeBrowser() {
	if browser.cancel != nil {
		browser.cancel()
	}
}

// requireBrowser starts the shared browser once. Without one the test fails
// under CI=true and is skipped otherwise. Call it first, before setting up
// services the test would not use.
func requireBrowser(t *testing.T) {
	t.Helper()
	browser.once.Do(startBrowser)
	if browser.err != nil {
		if testenv.CI() {
			t.Fatalf("browser tests need Chromium (CI=true: not skipping): %v", browser.err)
		}
		t.Skipf("skipping the browser test: %v (make test installs Debian's chromium via deploy/local/chromium.sh)", browser.err)
	}
}

// newTab opens a tab in a fresh browser context of the shared browser,
// closed when the test ends.
func newTab(t *testing.T) context.Context {
	t.Helper()
	requireBrowser(t)
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return ctx
}

// dash drives the dashboard in one tab.
type dash struct {
	t    *testing.T
	ctx  context.Context
	base string
}

const dashWait = 20 * time.Second

// openDashboard loads the page at base in a new tab, pastes key and waits
// for the lists to load.
func openDashboard(t *testing.T, base, key string) *dash {
	t.Helper()
	d := &dash{t: t, ctx: newTab(t), base: base}
	d.do(chromedp.Navigate(base + "/"))
	d.setValue("#key", key)
	d.click("#use-key")
	d.waitText("#key-status", "endpoints")
	return d
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// do runs steps with a deadline; on failure it reports what the page's
// problem boxes say.
func (d *dash) do(steps ...chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, dashWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		d.t.Fatalf("browser: %v; page problems: %s", err, d.problems())
	}
}

func eval[T any](d *dash, expr string) T {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, dashWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		d.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// problems returns the text of every non-empty problem box.
func (d *dash) problems() string {
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`[...document.querySelectorAll(".problem")].map(e => e.textContent.trim()).filter(Boolean).join(" | ")`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return "[" + s + "]"
}

func (d *dash) click(sel string) {
	d.t.Helper()
	d.do(chromedp.Click(chromedp.CSS(sel)))
}

func (d *dash) setValue(sel, value string) {
	d.t.Helper()
	d.do(chromedp.SetValue(chromedp.CSS(sel), value))
}

// choose selects value in a <select> the way a user does (a change event).
func (d *dash) choose(sel, value string) {
	d.t.Helper()
	d.waitFor(fmt.Sprintf(`[...document.querySelectorAll(%s + " option")].some(o => o.value === %s)`, jsString(sel), jsString(value)), "option "+value+" in "+sel)
	eval[bool](d, fmt.Sprintf(`(() => { const s = document.querySelector(%s); s.value = %s; s.dispatchEvent(new Event("change")); return true; })()`,
		jsString(sel), jsString(value)))
}

func (d *dash) text(sel string) string {
	d.t.Helper()
	return eval[string](d, fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.textContent : "(no element " + %s + ")"; })()`,
		jsString(sel), jsString(sel)))
}

// waitFor polls the JavaScript condition cond until it is true.
func (d *dash) waitFor(cond, what string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, dashWait+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!(`+cond+`)`, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(dashWait)))
	if err != nil {
		d.t.Fatalf("waiting for %s: %v; page problems: %s", what, err, d.problems())
	}
}

// waitText waits until the element sel contains want.
func (d *dash) waitText(sel, want string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.ctx, dashWait+5*time.Second)
	defer cancel()
	cond := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.textContent.includes(%s); })()`, jsString(sel), jsString(want))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(dashWait))); err != nil {
		d.t.Fatalf("waiting for %q in %s: %v; it says %q; page problems: %s", want, sel, err, d.text(sel), d.problems())
	}
}

// waitGone waits until no element matches sel.
func (d *dash) waitGone(sel string) {
	d.t.Helper()
	d.waitFor(fmt.Sprintf(`!document.querySelector(%s)`, jsString(sel)), sel+" gone")
}

// visible reports whether sel is rendered (not hidden).
func (d *dash) visible(sel string) bool {
	d.t.Helper()
	return eval[bool](d, fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.offsetParent !== null; })()`, jsString(sel)))
}

func rowSel(table, id string) string {
	if strings.HasPrefix(id, "alrt_") {
		return fmt.Sprintf(`#%s tr[data-alert-id="%s"]`, table, id)
	}
	return fmt.Sprintf(`#%s tr[data-id="%s"]`, table, id)
}
