package dispatcher_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// A burst far above a healthy endpoint's rate is delivered whole: the
// deliveries the dispatcher defers for its own back-pressure (the source is
// full while the endpoint's token bucket paces them) use up none of the
// rule's attempts, so with max_attempts 2 none is dead-lettered and every
// result is a first attempt, delivered. The endpoint's own
// rate_limit_per_second (20/s, below the dispatcher's default of 1000/s)
// paces its requests. (Before, each deferral was an attempt with a result:
// the second deferral of a delivery dead-lettered it.)
func TestBurstAboveRateUsesNoAttempts(t *testing.T) {
	t.Parallel()
	const (
		n    = 1000
		rate = 20
	)
	h := setup(t)
	var (
		mu    sync.Mutex
		times []time.Time
		got   = map[string]int{}
	)
	recv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		got[r.Header.Get("webhook-id")]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	recv.got = nil // this receiver records arrivals itself
	ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook", rate: rate})
	recs := make([]*kgo.Record, 0, n)
	want := map[string]bool{}
	for range n {
		r, del := h.delivery(ep.id)
		recs = append(recs, withMaxAttempts(t, r, 2))
		want[del.AlertID] = true
	}
	h.produce(recs...)
	start := time.Now()
	h.startWith(local, func(c *dispatcher.Config) {
		c.EndpointRate = 1000 // the endpoint's own 20/s must win
		c.MaxInFlight = 100   // a burst ten times what the source holds
		c.Tiers = []time.Duration{time.Second, 5 * time.Second, 20 * time.Second}
	})

	progress := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(got), len(times)
	}
	for end, polls := time.Now().Add(4*time.Minute), 0; ; time.Sleep(100 * time.Millisecond) { // polling the receiver
		if d, _ := progress(); d == n {
			break
		}
		if polls++; polls%20 == 0 {
			if dl := h.readAll(h.topics.DeliveriesDLQ); len(dl) > 0 {
				d, _ := progress()
				t.Fatalf("%d alerts dead-lettered for an endpoint that never failed (%d of %d arrived so far); first: %s",
					len(dl), d, n, header(dl[0], "exo-last-error"))
			}
		}
		if time.Now().After(end) {
			d, reqs := progress()
			t.Fatalf("%d of %d alerts arrived (%d requests) within 4 minutes; dead letters: %d",
				d, n, reqs, len(h.readAll(h.topics.DeliveriesDLQ)))
		}
	}
	took := time.Since(start)
	deferred := testenv.Metric(h.t, h.reg, "exo_dispatcher_deferred_total", "class", "endpoint_backlog")
	t.Logf("%d alerts at %d/s arrived in %v; %v backlog deferrals", n, rate, took.Round(time.Millisecond), deferred)
	if deferred == 0 {
		t.Fatal("no backlog deferral: the burst did not test back-pressure")
	}

	// Every delivery has exactly one result: its first attempt, delivered.
	var results []schemas.ResultRecord
	for end := time.Now().Add(deadline); ; time.Sleep(100 * time.Millisecond) { // polling the results topic
		results = results[:0]
		for _, r := range h.readAll(h.topics.DeliveryResults) {
			var res schemas.ResultRecord
			if err := json.Unmarshal(r.Value, &res); err != nil {
				t.Fatal(err)
			}
			results = append(results, res)
		}
		if len(results) >= n || time.Now().After(end) {
			break
		}
	}
	bad := 0
	for _, res := range results {
		if res.Outcome != schemas.OutcomeDelivered || res.Attempt != 1 || !want[res.AlertID] {
			if bad++; bad <= 5 {
				t.Errorf("result %+v: want attempt 1, delivered", res)
			}
		}
	}
	if len(results) != n || bad > 0 {
		t.Errorf("%d results, %d of them not a delivered first attempt; want %d delivered first attempts", len(results), bad, n)
	}
	if dl := h.readAll(h.topics.DeliveriesDLQ); len(dl) != 0 {
		t.Errorf("%d dead letters for an endpoint that never failed; first: %s", len(dl), header(dl[0], "exo-last-error"))
	}

	// The endpoint's rate: no second holds more than its burst (one
	// second's worth) plus a second's refill, and some slack for the
	// requests' own latency.
	mu.Lock()
	ts := slices.Clone(times)
	mu.Unlock()
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	most, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= time.Second {
			lo++
		}
		most = max(most, hi-lo+1)
	}
	t.Logf("at most %d requests in one second (endpoint rate %d/s)", most, rate)
	if most > 2*rate+rate/4 {
		t.Errorf("%d requests within one second to an endpoint limited to %d/s", most, rate)
	}
}
