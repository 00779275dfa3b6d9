package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// bomb is the condition bomb of issue #8 (no event data, string growth by
// replace): the API must refuse it.
const bomb = `let a = "aaaaaaaaaaaaaaaa"; let b = replace(a, "", a); let c = replace(b, "", b); let d = replace(c, "", c); let e = replace(d, "", d); e != ""`

// doubling is the worst condition the API accepts: it compiles, and only
// the evaluation budget stops it, on every event.
func doubling() string {
	c := `let s0 = workflow.name + "` + strings.Repeat("x", 60) + `";`
	for i := 1; i <= 24; i++ {
		c += fmt.Sprintf(" let s%d = s%d + s%d;", i, i-1, i-1)
	}
	return c + " len(s24) > 0"
}

// timedReceiver records when each alert id first arrived.
type timedReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]time.Time // run id -> first arrival
	n    int                  // POSTs, redeliveries included
}

func newTimedReceiver(t *testing.T) *timedReceiver {
	r := &timedReceiver{seen: map[string]time.Time{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var p schemas.WebhookPayload
		_ = json.NewDecoder(req.Body).Decode(&p)
		r.mu.Lock()
		r.n++
		if _, ok := r.seen[p.Data.Run.ID]; !ok {
			r.seen[p.Data.Run.ID] = time.Now()
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *timedReceiver) arrived(run string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.seen[run]
	return at, ok
}

// hostileServer answers every POST with status and a body full of NUL bytes.
func hostileServer(t *testing.T, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		_, _ = w.Write([]byte("nul\x00\x00 bytes\x00 \xff\xfe and \\u0000 text"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// A noisy neighbour cannot hurt another tenant: tenant A (acme) creates the
// worst condition the API accepts, an endpoint that answers NUL bytes, one
// that answers 410 with NUL bytes, and sends events whose labels carry NUL
// characters; tenant B (globex) keeps getting every alert exactly once, its
// history stays complete, and A's 410 still disables A's rule (the recorder
// is not poisoned). B's latency with and without the neighbour is logged,
// not asserted (speed is for benchmarks).
func TestNoisyNeighbourDoesNotHurtOtherTenants(t *testing.T) {
	t.Parallel()
	s := start(t)
	bRecv := newTimedReceiver(t)
	nulOK, nulGone := hostileServer(t, http.StatusOK), hostileServer(t, http.StatusGone)

	// Tenant A, hostile.
	whNul := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "nul", "target_url": nulOK.URL + "/hook"})
	whGone := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "gone", "target_url": nulGone.URL + "/hook"})
	raw, _ := json.Marshal(map[string]any{"name": "bomb", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": whNul["id"], "condition": bomb})
	if code, _ := s.do(t, "acme", http.MethodPost, "/v1/alert-rules", string(raw)); code != http.StatusUnprocessableEntity {
		t.Fatalf("the condition bomb: status %d, want 422", code)
	}
	worst := s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "worst", "event_type": schemas.TypeRunFailed,
		"webhook_endpoint_id": whNul["id"], "condition": doubling()})
	s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "nul answers", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": whNul["id"]})
	gone := s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "gone", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": whGone["id"]})

	// Tenant B, well-behaved.
	whB := s.post(t, "globex", "/v1/webhooks", map[string]any{"name": "ops", "target_url": bRecv.srv.URL + "/hook"})
	ruleB := s.post(t, "globex", "/v1/alert-rules", map[string]any{"name": "failures", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": whB["id"]})
	s.waitGauge(t, "exo_processor_rules_active", 4)

	cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	sentAt := map[string]time.Time{} // B's run id -> produced at
	produce := func(tenant string, n int, labels map[string]string) {
		t.Helper()
		var recs []*kgo.Record
		for range n {
			ev := workload.Event(workload.Spec{Tenant: tenant, Type: schemas.TypeRunFailed, WorkflowName: "etl",
				Duration: time.Second, Labels: labels})
			rec, err := workload.Record(s.topics.Events, ev)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
			if tenant == "globex" {
				sentAt[ev.Data.Run.ID] = time.Now()
			}
		}
		if err := workload.Produce(ctx, cl, recs...); err != nil {
			t.Fatal(err)
		}
	}
	waitB := func(phase string, runs map[string]time.Time) []time.Duration {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			var lat []time.Duration
			var missing []string
			for run, at := range runs {
				if got, ok := bRecv.arrived(run); ok {
					lat = append(lat, got.Sub(at))
				} else {
					missing = append(missing, run)
				}
			}
			if len(missing) == 0 {
				return lat
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of tenant B's %d alerts never arrived (e.g. %s)", phase, len(missing), len(runs), missing[0])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// B alone: its normal latency.
	for range 20 {
		produce("globex", 1, nil)
		time.Sleep(25 * time.Millisecond) // pacing the producer, not synchronisation
	}
	alone := waitB("B alone", maps.Clone(sentAt))

	// B next to A's flood: A's events (half with NUL in a label) interleave.
	before := maps.Clone(sentAt)
	for i := range 60 {
		labels := map[string]string{"env": "prod"}
		if i%2 == 0 {
			labels["note"] = "nul\x00inside"
		}
		produce("acme", 5, labels)
		produce("globex", 1, nil)
		time.Sleep(25 * time.Millisecond)
	}
	next := maps.Clone(sentAt)
	maps.DeleteFunc(next, func(run string, _ time.Time) bool { _, ok := before[run]; return ok })
	near := waitB("B next to A", next)
	t.Logf("tenant B latency produce→POST: alone p50 %v p99 %v (%d alerts); next to A p50 %v p99 %v (%d alerts)",
		percentile(alone, .5).Round(time.Millisecond), percentile(alone, .99).Round(time.Millisecond), len(alone),
		percentile(near, .5).Round(time.Millisecond), percentile(near, .99).Round(time.Millisecond), len(near))

	// Exactly once: every B alert arrived, and B got nothing else.
	bRecv.mu.Lock()
	distinct := len(bRecv.seen)
	bRecv.mu.Unlock()
	if distinct != len(sentAt) {
		t.Errorf("tenant B received %d distinct alerts, want %d", distinct, len(sentAt))
	}

	// B's history is complete: every alert is recorded as delivered.
	deadline := time.Now().Add(60 * time.Second)
	for {
		delivered, total := 0, 0
		path := fmt.Sprintf("/v1/alert-rules/%s/deliveries?limit=200", ruleB["id"])
		for path != "" {
			page := s.call(t, "globex", http.MethodGet, path, "", http.StatusOK)
			items, _ := page["items"].([]any)
			for _, it := range items {
				total++
				if it.(map[string]any)["status"] == "delivered" {
					delivered++
				}
			}
			path = ""
			if c, _ := page["next_cursor"].(string); c != "" {
				path = fmt.Sprintf("/v1/alert-rules/%s/deliveries?limit=200&cursor=%s", ruleB["id"], c)
			}
		}
		if delivered == len(sentAt) && total == len(sentAt) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant B's history shows %d delivered of %d alerts (%d listed)", delivered, len(sentAt), total)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The recorder kept working for A too: the 410 (with a NUL body)
	// disabled A's rule.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r := s.call(t, "acme", http.MethodGet, "/v1/alert-rules/"+gone["id"].(string), "", http.StatusOK)
		if r["is_active"] == false {
			if reason, _ := r["disabled_reason"].(string); !strings.Contains(reason, "410") {
				t.Errorf("disabled_reason %q does not name the 410", reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tenant A's rule was not disabled after its endpoint answered 410")
		}
	}

	// A's worst rule was skipped on each event, and says so on the rule.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r := s.call(t, "acme", http.MethodGet, "/v1/alert-rules/"+worst["id"].(string), "", http.StatusOK)
		if le, ok := r["last_error"].(map[string]any); ok {
			if msg, _ := le["message"].(string); !strings.Contains(msg, "budget") {
				t.Errorf("last_error %v does not name the evaluation budget", le)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant A's over-budget rule shows no last_error: %v", r)
		}
	}
}
