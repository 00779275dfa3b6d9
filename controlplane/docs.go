package controlplane

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

//go:embed docsui/index.html docsui/redoc.standalone.js
var docsFS embed.FS

// docsCSP is the policy of /docs. Redoc is one script of our origin (no
// inline script); it fetches the OpenAPI document from our origin, styles
// itself with <style> elements it writes (styled-components: hence
// 'unsafe-inline' for styles, never for scripts), and runs its search
// index in a worker it makes from a blob. Nothing may come from anywhere
// else: the page works offline.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; " +
	"img-src 'self' data:; worker-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// serveDocs serves the API reference at /docs, rendered by a vendored
// Redoc (controlplane/docsui, README.md there) from /openapi.json, instead
// of Huma's page, which loads its renderer from a CDN and is blank
// offline. It turns Huma's page off in cfg.
func (s *Server) serveDocs(cfg *huma.Config) {
	cfg.DocsPath = ""
	redoc, _ := docsFS.ReadFile("docsui/redoc.standalone.js")
	// Redoc's one reference to another origin is the image of its "API docs
	// by Redocly" link. The policy would refuse it (and report a violation
	// at every load); an empty data: URL makes the image fail here, and
	// Redoc then leaves it out.
	redoc = bytes.Replace(redoc, []byte(redocLogo), []byte("data:,"), 1)
	js := newDocsAsset(redoc, "text/javascript; charset=utf-8")
	page, _ := docsFS.ReadFile("docsui/index.html")
	// The script's URL carries its hash, so it can be cached for good and
	// a new Redoc is fetched the moment the page names it.
	page = bytes.ReplaceAll(page, []byte("{{redoc}}"), []byte(js.version))
	s.mux.HandleFunc("GET /docs", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", docsCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(page)
	})
	s.mux.Handle("GET /docs/redoc.standalone.js", js)
}

// redocLogo is the URL of the image Redoc loads from its CDN.
const redocLogo = "https://cdn.redoc.ly/redoc/logo-mini.svg"

// docsAsset is an embedded file of /docs, served with an ETag (its hash),
// cached for a year when asked for by its current version (?v=), and
// gzipped for clients that accept it (compressed once, at first use).
type docsAsset struct {
	body        []byte
	contentType string
	version     string // the first 16 hex digits of its SHA-256

	once sync.Once
	gz   []byte
}

func newDocsAsset(body []byte, contentType string) *docsAsset {
	sum := sha256.Sum256(body)
	return &docsAsset{body: body, contentType: contentType, version: hex.EncodeToString(sum[:8])}
}

func (a *docsAsset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Vary", "Accept-Encoding")
	if r.URL.Query().Get("v") == a.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	body, etag := a.body, `"`+a.version+`"`
	if acceptsGzip(r) {
		a.once.Do(a.compress)
		body, etag = a.gz, `"`+a.version+`-gzip"`
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("ETag", etag)
	// ServeContent answers If-None-Match (304) and ranges; the zero time
	// leaves Last-Modified out (embedded files have none).
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func (a *docsAsset) compress() {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(a.body)
	_ = zw.Close()
	a.gz = buf.Bytes()
}

// acceptsGzip reports whether the request's Accept-Encoding lists gzip
// (without q=0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
