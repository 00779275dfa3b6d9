package controlplane_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

// getDocs requests path of the server at base with the headers h.
func getDocs(t *testing.T, base, path string, h map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Set explicitly, so the client neither adds gzip nor undoes it.
	req.Header.Set("Accept-Encoding", "identity")
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// /docs is our page, with a policy that lets nothing come from another
// origin, naming the vendored Redoc by a URL that carries its version; the
// script is served as JavaScript, cached for good under that URL (not
// under another), revalidated by its ETag, and gzipped for clients that
// accept it. The embedded files are those docsui/README.md records.
func TestDocsAssets(t *testing.T) {
	t.Parallel()
	b := setup(t)

	resp, page := getDocs(t, b.srv.URL, "/docs", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("/docs: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{
		"default-src": "'none'", "script-src": "'self'", "connect-src": "'self'", "style-src": "'unsafe-inline'",
		"img-src": "'self' data:", "worker-src": "blob:", "frame-ancestors": "'none'", "base-uri": "'none'",
	} {
		if directives[name] != want {
			t.Errorf("Content-Security-Policy %s is %q, want %q (policy: %s)", name, directives[name], want, csp)
		}
	}
	if regexp.MustCompile(`(?i)https?:|//[a-z]`).Match(page) {
		t.Errorf("/docs names another origin:\n%s", page)
	}
	m := regexp.MustCompile(`<script src="(docs/redoc\.standalone\.js\?v=[0-9a-f]{16})"></script>`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("/docs does not load the vendored Redoc by a versioned URL:\n%s", page)
	}
	jsURL := "/" + string(m[1])

	resp, js := getDocs(t, b.srv.URL, jsURL, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("%s: %d %v", jsURL, resp.StatusCode, resp.Header)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
		t.Errorf("%s: Cache-Control %q, want a year, immutable", jsURL, cc)
	}
	etag := resp.Header.Get("ETag")
	if !regexp.MustCompile(`^"[0-9a-f]{16}"$`).MatchString(etag) || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("%s: ETag %q, Vary %q", jsURL, etag, resp.Header.Get("Vary"))
	}
	// What is served is npm's file, but for the CDN image Redoc would ask
	// for (see docs.go): the policy would refuse it.
	vendored, err := os.ReadFile("docsui/redoc.standalone.js")
	if err != nil {
		t.Fatal(err)
	}
	const logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
	if bytes.Count(vendored, []byte(logo)) != 1 {
		t.Errorf("the vendored Redoc names %s %d times, want once: is the replacement in docs.go still right?", logo, bytes.Count(vendored, []byte(logo)))
	}
	if want := bytes.Replace(vendored, []byte(logo), []byte("data:,"), 1); !bytes.Equal(js, want) {
		t.Errorf("%s is not the vendored Redoc (%d bytes served, %d vendored)", jsURL, len(js), len(vendored))
	}
	if bytes.Contains(js, []byte("cdn.redoc.ly")) {
		t.Error("the served Redoc still names cdn.redoc.ly")
	}

	resp, _ = getDocs(t, b.srv.URL, jsURL, map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with its ETag: %d, want 304", resp.StatusCode)
	}
	resp, gz := getDocs(t, b.srv.URL, jsURL, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" ||
		resp.Header.Get("ETag") == etag || len(gz) > len(js)/2 {
		t.Errorf("gzip: %v, %d bytes of %d", resp.Header, len(gz), len(js))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, err := io.ReadAll(zr); err != nil || !bytes.Equal(unzipped, js) {
		t.Errorf("the gzipped script does not unzip to the script: %v", err)
	}
	if resp, _ := getDocs(t, b.srv.URL, jsURL, map[string]string{"Accept-Encoding": "gzip;q=0"}); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got %q", resp.Header.Get("Content-Encoding"))
	}
	// Under another version, or none, it is revalidated at every use.
	if resp, _ := getDocs(t, b.srv.URL, "/docs/redoc.standalone.js", nil); resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("unversioned: %d, Cache-Control %q, want 200 and no-cache", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if resp, _ := getDocs(t, b.srv.URL, "/docs/nope.js", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/docs/nope.js: %d, want 404", resp.StatusCode)
	}

	// The document the page renders.
	if resp, doc := getDocs(t, b.srv.URL, "/openapi.json", nil); resp.StatusCode != 200 || !bytes.Contains(doc, []byte(`"openapi":"3.1`)) {
		t.Errorf("/openapi.json: %d %.100s", resp.StatusCode, doc)
	}

	// The embedded files are those the README records.
	readme, err := os.ReadFile("docsui/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"redoc.standalone.js", "LICENSE.redoc", "redoc.standalone.js.LICENSE.txt"} {
		data, err := os.ReadFile("docsui/" + name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(name) + "` \\|.*\\| `([0-9a-f]{64})` \\|$").FindSubmatch(readme)
		if row == nil || string(row[1]) != hex.EncodeToString(sum[:]) {
			t.Errorf("docsui/README.md does not record %s's SHA-256 %x", name, sum)
		}
	}
}
