package controlplane

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exospherehost/exo-alerts/internal/metrics"
)

// ingestLimiter is a token bucket per API key: each key may send rate
// events per second, burst at once. Keys are limited apart, so one
// tenant flooding the ingest is refused (429) while the others' events
// are taken. A bucket is kept per key that sent events since the start
// (bounded by the keys in the database).
type ingestLimiter struct {
	rate, burst int // rate <= 0: no limit
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

func newIngestLimiter(rate, burst int, now func() time.Time) *ingestLimiter {
	return &ingestLimiter{rate: rate, burst: burst, now: now, buckets: map[string]*tokenBucket{}}
}

// take takes n tokens of key's bucket. When there are not enough, it takes
// none and returns how long until there would be (negative: never, n is
// more than the burst).
func (l *ingestLimiter) take(key string, n int) (time.Duration, bool) {
	if l.rate <= 0 {
		return 0, true
	}
	if n > l.burst {
		return -1, false
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		b = &tokenBucket{tokens: float64(l.burst), last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(float64(l.burst), b.tokens+el.Seconds()*float64(l.rate))
		b.last = now
	}
	if b.tokens >= float64(n) {
		b.tokens -= float64(n)
		return 0, true
	}
	missing := float64(n) - b.tokens
	return time.Duration(missing / float64(l.rate) * float64(time.Second)), false
}

// ingestMetrics counts the events of POST /v1/events by outcome.
type ingestMetrics struct {
	events *prometheus.CounterVec
}

func newIngestMetrics(reg prometheus.Registerer) (*ingestMetrics, error) {
	m := &ingestMetrics{events: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "exo_controlplane_ingest_events_total",
		Help: "Events sent to POST /v1/events by outcome: accepted (on Kafka), invalid, wrong_tenant (another tenant's), rate_limited (429), too_large (413), unavailable (503: Kafka did not take them).",
	}, []string{"outcome"})}
	var err error
	if m.events, err = metrics.Register(reg, m.events); err != nil {
		return nil, err
	}
	for _, o := range ingestOutcomes {
		m.events.WithLabelValues(o)
	}
	return m, nil
}

func (m *ingestMetrics) add(outcome string, n int) {
	m.events.WithLabelValues(outcome).Add(float64(n))
}
