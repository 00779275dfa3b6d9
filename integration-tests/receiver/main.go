// Command receiver is an example webhook receiver for Exosphere Alerts: it
// verifies each delivery's signature (Standard Webhooks headers, with a
// five-minute timestamp tolerance), ignores a webhook-id it has already
// handled (retries and replays carry the same id), and answers at once,
// leaving slow work to a queue of its own.
//
//	EXO_WEBHOOK_SECRET=whsec_... go run ./integration-tests/receiver -addr 127.0.0.1:9000
//
// Point an endpoint at http://<addr>/hook (a loopback address needs the
// operator's EXO_SSRF_ALLOWLIST, or dev mode).
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	flag.Parse()
	secret := os.Getenv("EXO_WEBHOOK_SECRET")
	if _, err := signature.Key(secret); err != nil {
		log.Fatalf("EXO_WEBHOOK_SECRET: %v (the whsec_ secret shown when the endpoint was created)", err)
	}
	r := newReceiver(secret, func(p schemas.WebhookPayload) {
		log.Printf("alert %s: %s of workflow %s, run %s", p.Data.AlertID, p.Type, p.Data.Workflow.Name, p.Data.Run.ID)
	})
	srv := &http.Server{Addr: *addr, Handler: r, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("listening on %s, POST /hook", *addr)
	log.Fatal(srv.ListenAndServe())
}

// receiver handles POST /hook.
type receiver struct {
	secret string
	handle func(schemas.WebhookPayload)
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // webhook-id -> first seen
}

func newReceiver(secret string, handle func(schemas.WebhookPayload)) *receiver {
	return &receiver{secret: secret, handle: handle, now: time.Now, seen: map[string]time.Time{}}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/hook" {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	// Verify before anything else: an unsigned or stale request is not ours.
	if err := signature.VerifyStandard(r.Header, body, rc.secret, rc.now(), 5*time.Minute); err != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	id := r.Header.Get("webhook-id")
	rc.mu.Lock()
	_, dup := rc.seen[id]
	if !dup {
		rc.seen[id] = rc.now()
	}
	for k, at := range rc.seen { // forget ids past any retry window
		if rc.now().Sub(at) > 48*time.Hour {
			delete(rc.seen, k)
		}
	}
	rc.mu.Unlock()
	if dup {
		w.WriteHeader(http.StatusOK) // already handled: acknowledge, do nothing
		return
	}
	var p schemas.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "not a payload v1", http.StatusBadRequest)
		return
	}
	rc.handle(p)
	w.WriteHeader(http.StatusNoContent)
}
