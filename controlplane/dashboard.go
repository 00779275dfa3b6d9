package controlplane

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"net/http"
)

// The dashboard's sources: the markup, its style sheet and script, and the
// vendored charting library (dashboard/vendor/README.md says which
// version, under which licence, with which checksums).
//
//go:embed dashboard/index.html dashboard/dashboard.css dashboard/dashboard.js dashboard/vendor/uPlot.iife.min.js dashboard/vendor/uPlot.min.css
var dashboardFS embed.FS

// dashboard serves the Settings → Alerts page: one static HTML document
// whose one inline script calls the REST API with the API key the user
// pastes.
//
// The Content-Security-Policy allows that one script by its hash and nothing
// else: no other inline script, no event-handler attributes, no requests to
// other origins. The page builds its DOM from API data as text only; the
// policy is the second line of defence should markup ever slip through.
func dashboard() http.Handler {
	page := dashboardPage()
	csp := dashboardCSP(page)
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(page)
	})
}

// dashboardPage assembles the page from its sources: the style sheets go
// into one <style> element and the scripts (uPlot first, then ours) into
// one inline <script>, so the page stays one self-contained document whose
// one script the policy allows by hash, with no request for assets and no
// build step. It panics when a source is missing: the binary was built
// from a broken tree, which every test of the page would show.
func dashboardPage() []byte {
	read := func(name string) []byte {
		b, err := dashboardFS.ReadFile("dashboard/" + name)
		if err != nil {
			panic(fmt.Sprintf("dashboard: %v", err))
		}
		return b
	}
	page := read("index.html")
	for _, part := range []struct {
		marker, open, close string
		files               []string
	}{
		{"<!--dashboard.css-->", "<style>\n", "</style>", []string{"vendor/uPlot.min.css", "dashboard.css"}},
		{"<!--dashboard.js-->", "<script>\n", "</script>", []string{"vendor/uPlot.iife.min.js", "dashboard.js"}},
	} {
		if bytes.Count(page, []byte(part.marker)) != 1 {
			panic("dashboard: index.html must hold the marker " + part.marker + " once")
		}
		var b bytes.Buffer
		b.WriteString(part.open)
		for _, f := range part.files {
			b.Write(read(f))
			b.WriteString("\n")
		}
		b.WriteString(part.close)
		page = bytes.Replace(page, []byte(part.marker), b.Bytes(), 1)
	}
	return page
}

// dashboardCSP is the policy of page: its inline <script> is allowed by
// its SHA-256 hash.
func dashboardCSP(page []byte) string {
	script := "'none'"
	if _, rest, ok := bytes.Cut(page, []byte("<script>")); ok {
		if body, _, ok := bytes.Cut(rest, []byte("</script>")); ok {
			sum := sha256.Sum256(body)
			script = "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		}
	}
	return "default-src 'none'; script-src " + script + "; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}
