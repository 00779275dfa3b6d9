package controlplane

import (
	"embed"
	"net/http"
)

//go:embed dashboard/index.html
var dashboardFS embed.FS

// dashboard serves the Settings → Alerts page.
func dashboard() http.Handler {
	page, _ := dashboardFS.ReadFile("dashboard/index.html")
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(page)
	})
}
