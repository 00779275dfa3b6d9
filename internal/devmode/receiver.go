package devmode

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// received is one request the demo receiver got.
type received struct {
	At           time.Time         `json:"at"`
	Path         string            `json:"path"`
	WebhookID    string            `json:"webhook_id"`
	EndpointID   string            `json:"endpoint_id,omitempty"`
	Verified     bool              `json:"verified"`
	Verification string            `json:"verification"`
	Headers      map[string]string `json:"headers"`
	Body         json.RawMessage   `json:"body"`
}

// Receiver is the dev-mode demo webhook receiver. It verifies each request
// with the secret of the endpoint whose target URL path it was sent to, as a
// real receiver would with the secret it was shown at create time.
type Receiver struct {
	db   *store.Store
	ring *keyring.Ring

	mu   sync.Mutex
	list []received
}

// NewReceiver returns the demo receiver; it reads endpoint secrets from db
// and decrypts them with ring.
func NewReceiver(db *store.Store, ring *keyring.Ring) *Receiver {
	return &Receiver{db: db, ring: ring}
}

// Routes registers the receiver's routes under /demo/receiver.
func (rc *Receiver) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /demo/receiver/{name}", rc.receive)
	mux.HandleFunc("GET /demo/receiver", rc.page)
	mux.HandleFunc("GET /demo/receiver.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rc.snapshot())
	})
}

func (rc *Receiver) snapshot() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]received, len(rc.list))
	copy(out, rc.list)
	return out
}

func (rc *Receiver) receive(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	rec := received{At: time.Now().UTC(), Path: r.URL.Path, WebhookID: r.Header.Get(signature.HeaderID), Headers: map[string]string{}}
	for _, h := range []string{signature.HeaderID, signature.HeaderTimestamp, signature.HeaderSignature, signature.HeaderExosphere, "X-Exosphere-Event", "X-Exosphere-Delivery", "User-Agent"} {
		rec.Headers[h] = r.Header.Get(h)
	}
	if json.Valid(body) {
		rec.Body = body
	} else {
		rec.Body, _ = json.Marshal(string(body))
	}
	rec.EndpointID, rec.Verified, rec.Verification = rc.verify(r.Context(), r, body)
	rc.mu.Lock()
	rc.list = append([]received{rec}, rc.list...)
	if len(rc.list) > 200 {
		rc.list = rc.list[:200]
	}
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// verify tries the secrets of every endpoint whose target URL path is this request's path.
func (rc *Receiver) verify(ctx context.Context, r *http.Request, body []byte) (string, bool, string) {
	endpoints, err := rc.db.EndpointSecrets(ctx)
	if err != nil {
		return "", false, "cannot look up endpoints: " + err.Error()
	}
	tried := 0
	for _, e := range endpoints {
		id := e.ID
		u, err := url.Parse(e.TargetURL)
		if err != nil || u.Path != r.URL.Path {
			continue
		}
		secret, err := rc.ring.Open(e.Secret, schemas.SecretAAD(e.TenantID, id))
		if err != nil {
			continue
		}
		tried++
		now := time.Now()
		errStd := signature.VerifyStandard(r.Header, body, secret, now, 5*time.Minute)
		errExo := signature.VerifyExosphere(r.Header, body, secret, now, 5*time.Minute)
		if errStd == nil && errExo == nil {
			return id, true, "webhook-signature and X-Exosphere-Signature verified with the secret of " + id
		}
		if errStd == nil || errExo == nil {
			return id, false, fmt.Sprintf("only one scheme verified (standard: %v, exosphere: %v)", errStd, errExo)
		}
	}
	if tried == 0 {
		return "", false, "no endpoint targets this path"
	}
	return "", false, "no endpoint secret verifies this request"
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Demo receiver · Exosphere Alerts</title>
<meta http-equiv="refresh" content="3">
<style>body{font:14px system-ui,sans-serif;margin:24px}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:6px;text-align:left;vertical-align:top}.ok{color:#0a7a32}.bad{color:#b00020}
pre{margin:0;white-space:pre-wrap;max-width:640px}</style></head>
<body><h1>Demo receiver</h1><p>{{len .}} request(s) received (newest first; refreshes every 3 s).</p>
<table><tr><th>Received</th><th>webhook-id</th><th>Signature</th><th>Body</th></tr>
{{range .}}<tr><td>{{.At.Format "15:04:05.000"}}<br>{{.Path}}</td><td>{{.WebhookID}}</td>
<td class="{{if .Verified}}ok{{else}}bad{{end}}">{{if .Verified}}✔ verified{{else}}✘ not verified{{end}}<br>{{.Verification}}</td>
<td><pre>{{printf "%s" .Body}}</pre></td></tr>{{end}}
</table></body></html>`))

func (rc *Receiver) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pageTmpl.Execute(w, rc.snapshot())
}
