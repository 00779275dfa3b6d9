package controlplane

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
)

//go:embed dashboard/index.html
var dashboardFS embed.FS

// dashboard serves the Settings → Alerts page: one static HTML file whose
// inline script calls the REST API with the API key the user pastes.
//
// The Content-Security-Policy allows that one script by its hash and nothing
// else: no other inline script, no event-handler attributes, no requests to
// other origins. The page builds its DOM from API data as text only; the
// policy is the second line of defence should markup ever slip through.
func dashboard() http.Handler {
	page, _ := dashboardFS.ReadFile("dashboard/index.html")
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
