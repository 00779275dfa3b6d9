package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// One endpoint that never answers and one healthy one, 1,000 deliveries
// each, interleaved: every healthy delivery arrives while the dead
// endpoint's attempts are all still hanging (the attempt timeout is longer
// than the test, so this does not depend on the machine's speed: were the
// dead endpoint able to hold up the healthy one, its deliveries would never
// arrive). The healthy endpoint's latency is logged; speed is measured by
// the benchmarks.
func TestDeadEndpointDoesNotDelayHealthyOne(t *testing.T) {
	t.Parallel()
	const n = 1000
	const attemptTimeout = 10 * time.Minute
	h := setup(t)

	hang := make(chan struct{})
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); dead.Close() })

	var mu sync.Mutex
	var latencies []time.Duration
	allHealthy := make(chan struct{})
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p schemas.WebhookPayload
		_ = json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		latencies = append(latencies, time.Since(p.Timestamp))
		if len(latencies) == n {
			close(allHealthy)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(healthy.Close)

	deadEP := h.addEndpoint(endpoint{url: dead.URL + "/hook"})
	okEP := h.addEndpoint(endpoint{url: healthy.URL + "/hook"})

	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- dispatcher.Run(ctx, dispatcher.Config{
			Brokers: h.brokers, Topics: h.topics, Keyring: h.ring, Allowlist: local, AttemptTimeout: attemptTimeout,
			Log: slog.New(slog.DiscardHandler), Ready: ready, EndpointRate: 10000, EndpointConcurrency: 16,
			Tiers: []time.Duration{time.Second, 2 * time.Second},
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	})
	<-ready

	// A steady stream, 20 pairs every 100 ms; each payload's timestamp (set
	// when it is built, just before it is produced) starts its latency clock.
	var deadIDs []string
	for i := 0; i < n; i += 20 {
		var recs []*kgo.Record
		for range 20 {
			r, d := h.delivery(deadEP.id)
			recs = append(recs, withMaxAttempts(t, r, 8))
			deadIDs = append(deadIDs, d.AlertID)
			r, _ = h.delivery(okEP.id)
			recs = append(recs, r)
		}
		h.produce(recs...)
		time.Sleep(100 * time.Millisecond) // pacing the load, not waiting for a result
	}

	select {
	case <-allHealthy:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d of %d healthy deliveries arrived within 2 minutes", len(latencies), n)
	}
	// The dead endpoint's attempts are all still hanging: no result of its
	// deliveries exists.
	for _, r := range h.readAll(h.topics.DeliveryResults) {
		for _, id := range deadIDs {
			if bytes.Contains(r.Value, []byte(id)) {
				t.Fatalf("a dead-endpoint attempt finished before the healthy deliveries did: %s", r.Value)
			}
		}
	}
	mu.Lock()
	slices.Sort(latencies)
	p99 := latencies[n*99/100]
	mu.Unlock()
	t.Logf("healthy endpoint next to a hanging one: p50 %v, p99 %v, max %v", latencies[n/2], p99, latencies[n-1])
}

// While an endpoint's breaker is open its deliveries move on without an
// attempt, and each deferral counts: a result says "circuit_open", and a
// delivery that never gets through ends in the DLQ after max_attempts —
// it does not bounce between tiers for as long as the endpoint is down.
func TestOpenBreakerDefersCountingAttempts(t *testing.T) {
	t.Parallel()
	h := setup(t)
	rcv := newReceiver(t, status(http.StatusInternalServerError, "down"))
	ep := h.addEndpoint(endpoint{url: rcv.srv.URL + "/hook"})
	var recs []*kgo.Record
	var ids []string
	for range 6 {
		r, d := h.delivery(ep.id)
		recs = append(recs, withMaxAttempts(t, r, 4))
		ids = append(ids, d.AlertID)
	}
	h.produce(recs...)
	h.startWith(local, func(c *dispatcher.Config) {
		c.BreakerThreshold, c.BreakerCooldown = 2, 300*time.Millisecond
	})
	deferred := 0
	for i, id := range ids {
		res := h.finalResults(id)
		if len(res) != 4 {
			t.Fatalf("alert %d: %d results, want 4 (max_attempts): %+v", i, len(res), res)
		}
		for n, r := range res {
			if r.Attempt != n+1 {
				t.Errorf("alert %d: result %d is attempt %d", i, n, r.Attempt)
			}
			if r.ErrorClass == "circuit_open" {
				deferred++
				if r.StatusCode != 0 || !strings.Contains(r.Error, "not attempted") {
					t.Errorf("deferral result %+v", r)
				}
			}
		}
		if last := res[3]; last.Outcome != schemas.OutcomeDead {
			t.Errorf("alert %d: last outcome %s, want dead", i, last.Outcome)
		}
		h.dlq(recs[i].Value)
	}
	if deferred == 0 {
		t.Fatal("no delivery was deferred by the open breaker")
	}
	if got := len(rcv.requests()); got+deferred != 6*4 {
		t.Errorf("%d requests + %d deferrals, want 24 attempts in all", got, deferred)
	}
	if m := testenv.Metric(h.t, h.reg, "exo_dispatcher_deferred_total", "class", "circuit_open"); int(m) != deferred {
		t.Errorf("deferred metric %v, want %d", m, deferred)
	}
}

// A slow endpoint with a backlog larger than the source holds does not hold
// back other endpoints: the source sheds the longest queue to the next tier
// and keeps fetching. (Before shedding existed, a delivery to a healthy
// endpoint queued behind 40 slow ones arrived only after 21 of them.)
func TestSlowEndpointBacklogIsShed(t *testing.T) {
	t.Parallel()
	h := setup(t)
	var mu sync.Mutex
	slowGot := map[string]bool{}
	slowAtHealthy := -1
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // a slow receiver, not a wait for a result
		w.WriteHeader(http.StatusNoContent)
		mu.Lock()
		slowGot[r.Header.Get("webhook-id")] = true
		mu.Unlock()
	})
	healthyArrived := make(chan struct{})
	healthy := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		if slowAtHealthy < 0 {
			slowAtHealthy = len(slowGot)
			close(healthyArrived)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	slowEP := h.addEndpoint(endpoint{url: slow.srv.URL + "/hook"})
	okEP := h.addEndpoint(endpoint{url: healthy.srv.URL + "/hook"})
	h.startWith(local, func(c *dispatcher.Config) {
		c.EndpointConcurrency, c.MaxInFlight, c.EndpointRate = 1, 20, 1000
		c.Tiers = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	})
	const n = 40
	var recs []*kgo.Record
	for range n {
		r, _ := h.delivery(slowEP.id)
		recs = append(recs, withMaxAttempts(t, r, 30))
	}
	h.produce(recs...)
	// Once the slow endpoint is busy, the source holds all 40 (more than
	// its 20): only then does the healthy delivery arrive on the topic.
	for deadline := time.Now().Add(time.Minute); len(slow.requests()) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow endpoint got nothing within a minute")
		}
	}
	r, _ := h.delivery(okEP.id)
	h.produce(r)

	select {
	case <-healthyArrived:
	case <-time.After(deadline):
		t.Fatalf("the healthy delivery did not arrive within %v", deadline)
	}
	mu.Lock()
	before := slowAtHealthy
	mu.Unlock()
	if before >= n/2 {
		t.Errorf("the healthy delivery arrived after %d of %d slow ones", before, n)
	}
	if n := testenv.Metric(h.t, h.reg, "exo_dispatcher_deferred_total", "class", "endpoint_backlog"); n == 0 {
		t.Error("exo_dispatcher_deferred_total{class=\"endpoint_backlog\"} = 0: the slow endpoint's backlog was not shed")
	}
	// Nothing is lost: every slow delivery arrives in the end.
	for end := time.Now().Add(2 * time.Minute); ; {
		mu.Lock()
		got := len(slowGot)
		mu.Unlock()
		if got == n {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d of %d slow deliveries arrived", got, n)
		}
		time.Sleep(100 * time.Millisecond) // polling the receiver
	}
	t.Logf("healthy delivery arrived after %d of %d slow ones", before, n)
}

// The pool bounds the HTTP attempts in flight over all endpoints: with two
// workers, three endpoints that each take a while never see more than two
// requests at once, and every delivery still arrives.
func TestWorkerPoolBoundsAttempts(t *testing.T) {
	t.Parallel()
	h := setup(t)
	var inFlight, most atomic.Int64
	var mu sync.Mutex
	got := map[string]bool{}
	slow := func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(200 * time.Millisecond) // each answer takes a while; not a wait for a result
		inFlight.Add(-1)
		mu.Lock()
		got[r.Header.Get("webhook-id")] = true
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}
	var recs []*kgo.Record
	for range 3 {
		ep := h.addEndpoint(endpoint{url: newReceiver(t, slow).srv.URL + "/hook"})
		for range 3 {
			r, _ := h.delivery(ep.id)
			recs = append(recs, r)
		}
	}
	h.produce(recs...)
	h.startWith(local, func(c *dispatcher.Config) { c.Workers, c.EndpointRate = 2, 1000 })
	for deadline := time.Now().Add(deadline); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == len(recs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries arrived", n, len(recs))
		}
	}
	if m := most.Load(); m > 2 || m < 1 {
		t.Fatalf("%d requests were in flight at once, want at most 2 (the pool)", m)
	}
}
