package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// /docs renders the whole API reference in a browser that can reach
// nothing but the control plane: every request the page makes is held,
// those to 127.0.0.1 go on and any other fails (and fails the test). Every
// operation's and webhook's title, from the first to the last of the
// document, is visible text; the page's Content-Security-Policy refused
// nothing (the renderer needs no more than it allows).
func TestDocsRenderOfflineInABrowser(t *testing.T) {
	requireBrowser(t)
	t.Parallel()
	b := setup(t)
	titles := docTitles(t, b.srv.URL+"/openapi.json")
	if len(titles) < 20 {
		t.Fatalf("the OpenAPI document has %d operations and webhooks: %v", len(titles), titles)
	}

	ctx := newTab(t)
	var (
		mu               sync.Mutex
		loopback, others []string
	)
	paused := make(chan *fetch.EventRequestPaused, 256)
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			paused <- e
		}
	}); err != nil {
		t.Fatal(err)
	}
	// Each held request is let through to the control plane or failed, in
	// this goroutine: a listener must not run commands.
	decide, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() { stop(); <-done })
	go func() {
		defer close(done)
		for {
			select {
			case <-decide.Done():
				return
			case e := <-paused:
				u, err := url.Parse(e.Request.URL)
				mu.Lock()
				local := err == nil && u.Hostname() == "127.0.0.1"
				if local {
					loopback = append(loopback, e.Request.URL)
				} else {
					others = append(others, e.Request.URL)
				}
				mu.Unlock()
				if local {
					_, _ = chromedp.Call(decide, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
				} else {
					_, _ = chromedp.Call(decide, fetch.FailRequest, fetch.FailRequestParams{RequestID: e.RequestID, ErrorReason: network.ErrorReasonInternetDisconnected})
				}
			}
		}
	}()
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}}); err != nil {
		t.Fatal(err)
	}
	// The page's policy violations, recorded before any of its scripts runs.
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.cspViolations = []; document.addEventListener("securitypolicyviolation",
			e => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));`,
	}); err != nil {
		t.Fatal(err)
	}

	d := &dash{t: t, ctx: ctx, base: b.srv.URL}
	d.do(chromedp.Navigate(b.srv.URL + "/docs"))
	// Redoc writes the reference into .api-content once it has read the
	// document; wait for the last title, then check them all.
	last := titles[len(titles)-1]
	missing := func() []string {
		text := eval[string](d, `(() => { const e = document.querySelector(".api-content"); return e ? e.innerText : ""; })()`)
		var out []string
		for _, title := range titles {
			if !strings.Contains(text, title) {
				out = append(out, title)
			}
		}
		return out
	}
	pollCtx, cancel := context.WithTimeout(ctx, dashWait+10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(pollCtx, chromedp.Poll[bool](
		fmt.Sprintf(`(() => { const e = document.querySelector(".api-content"); return !!e && e.innerText.includes(%s); })()`, jsString(last)),
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(dashWait+5*time.Second))); err != nil {
		t.Fatalf("the reference did not render %q: %v; not shown: %q; page text: %.500s", last, err, missing(),
			eval[string](d, `document.body.innerText`))
	}
	if m := missing(); len(m) > 0 {
		t.Errorf("%d of %d operation titles are not visible in the reference: %q", len(m), len(titles), m)
	}
	// The document's info, the schemas' section and the webhooks' heading
	// (OpenAPI 3.1 webhooks) when it has any.
	text := eval[string](d, `document.body.innerText`)
	if !strings.Contains(text, "Exosphere Alerts API") {
		t.Errorf("the reference does not show the API's title")
	}
	if v := eval[[]string](d, `window.cspViolations`); len(v) > 0 {
		t.Errorf("the Content-Security-Policy refused what the page needs: %q", v)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(others) > 0 {
		t.Errorf("the page asked for something other than the control plane: %q", others)
	}
	for _, want := range []string{"/docs", "/docs/redoc.standalone.js?v=", "/openapi.json"} {
		if !slices.ContainsFunc(loopback, func(u string) bool { return strings.Contains(u, want) }) {
			t.Errorf("no request for %s went through: %q", want, loopback)
		}
	}
}

// docTitles is the title Redoc shows for each operation and webhook of the
// OpenAPI document at u (its summary, else its operationId), in the
// document's order of paths.
func docTitles(t *testing.T, u string) []string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	type op struct {
		Summary     string `json:"summary"`
		OperationID string `json:"operationId"`
	}
	var doc struct {
		Paths    map[string]map[string]json.RawMessage `json:"paths"`
		Webhooks map[string]map[string]json.RawMessage `json:"webhooks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, items := range []map[string]map[string]json.RawMessage{doc.Paths, doc.Webhooks} {
		keys := make([]string, 0, len(items))
		for k := range items {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			for _, method := range []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"} {
				raw, ok := items[k][method]
				if !ok {
					continue
				}
				var o op
				if err := json.Unmarshal(raw, &o); err != nil {
					t.Fatal(err)
				}
				title := o.Summary
				if title == "" {
					title = o.OperationID
				}
				titles = append(titles, title)
			}
		}
	}
	return titles
}
