// Command receiver is an example webhook receiver for Exosphere Alerts: it
// verifies each delivery's signature (Standard Webhooks headers, with a
// five-minute timestamp tolerance), ignores a webhook-id it has already
// handled (retries and replays carry the same id), and answers at once,
// leaving slow work to a queue of its own.
//
//	EXO_WEBHOOK_SECRET=whsec_... go run ./integration-tests/receiver 9000
//
// Point an endpoint at http://<host>:9000/hook (a loopback address needs the
// operator's EXO_SSRF_ALLOWLIST, or dev mode). Each verified, new delivery is
// printed on stdout as one JSON line; the first line says where it listens.
// The same receiver in Python and Node: ../receiver-python, ../receiver-node.
package main

import (
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

func main() {
	log.SetOutput(os.Stderr) // stdout is for deliveries
	port := os.Getenv("PORT")
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	if port == "" {
		port = "9000"
	}
	secret := os.Getenv("EXO_WEBHOOK_SECRET")
	if _, err := signature.Key(secret); err != nil {
		log.Fatalf("EXO_WEBHOOK_SECRET: %v (the whsec_ secret shown when the endpoint was created)", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		log.Fatal(err)
	}
	out := json.NewEncoder(os.Stdout)
	_ = out.Encode(map[string]string{"listening": ln.Addr().String()})
	work := make(chan delivery, 1024)
	go func() { // the slow part (page someone, open a ticket ...) runs here, not in the request
		for d := range work {
			p := d.payload
			_ = out.Encode(map[string]string{"webhook_id": d.id, "type": p.Type, "alert_id": p.Data.AlertID,
				"tenant_id": p.Data.TenantID, "workflow": p.Data.Workflow.Name, "run_id": p.Data.Run.ID})
		}
	}()
	r := newReceiver(secret, func(id string, p schemas.WebhookPayload) { work <- delivery{id, p} })
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// delivery is one verified, new delivery.
type delivery struct {
	id      string
	payload schemas.WebhookPayload
}

// receiver handles POST /hook.
type receiver struct {
	secret string
	handle func(id string, p schemas.WebhookPayload)
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // webhook-id -> first seen
}

func newReceiver(secret string, handle func(id string, p schemas.WebhookPayload)) *receiver {
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
	var p schemas.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "not a payload v1", http.StatusBadRequest)
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
	rc.handle(id, p) // must not block: hand the work over and answer
	w.WriteHeader(http.StatusNoContent)
}
