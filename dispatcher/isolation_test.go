package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/dispatcher"
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
