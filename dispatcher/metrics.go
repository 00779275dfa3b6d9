// Metrics: the dispatcher's Prometheus collectors, built and registered
// when Run starts.

package dispatcher

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exospherehost/exo-alerts/schemas"
)

// newMetrics builds d's collectors, initialises their known label values,
// and registers them (with the lanes' breaker metrics) on d.cfg.Registerer.
func (d *Dispatcher) newMetrics() error {
	d.shortCircuits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "exo_dispatcher_short_circuits_total", Help: "Deliveries sent to the next tier without an attempt because the endpoint's circuit was open.",
	})
	d.deferred = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "exo_dispatcher_deferred_total", Help: "Deliveries sent to a retry tier without an attempt, by class: circuit_open (the endpoint's breaker is open; counts as an attempt) or endpoint_backlog (its queue was shed when the source was full; our own back-pressure, not an attempt, up to 50 deferrals per attempt).",
	}, []string{"class"})
	d.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "exo_dispatcher_attempts_total", Help: "Delivery attempts by outcome.",
	}, []string{"outcome"})
	d.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "exo_dispatcher_attempt_seconds", Help: "Latency of delivery attempts.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
	}, []string{"outcome"})
	d.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "exo_dispatcher_retries_total", Help: "Deliveries sent to a retry tier (after a failed attempt, or short-circuited by an open breaker), by tier.",
	}, []string{"tier"})
	d.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "exo_dispatcher_dead_letters_total", Help: "Deliveries sent to the DLQ, by reason: exhausted (out of attempts), undecodable (not a valid delivery record: poison, set aside at once), tenant_disabled (the rollout switched its tenant off: not sent), or the class of a permanent failure (endpoint_inactive, ssrf_refused, secret, render, bad_url).",
	}, []string{"reason"})
	d.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "exo_dispatcher_deliveries_in_flight", Help: "Delivery records fetched and not finished: waiting for their endpoint's lane, being attempted, or waiting for Kafka to take their outcome.",
	})
	for _, t := range d.cfg.Tiers {
		d.retries.WithLabelValues(TierName(t))
	}
	// Every known label value exists from the start, at 0, so the
	// dashboard shows 0 rather than "No data" before the first delivery.
	// The children of the outcomes are looked up once, here: every
	// attempt counts in one, and WithLabelValues hashes and looks up its
	// label values each time.
	d.byOutcome = make(map[string]outcomeMetrics, 4)
	for _, o := range []string{schemas.OutcomeDelivered, schemas.OutcomeRetry, schemas.OutcomeEndpointGone, schemas.OutcomeDead} {
		d.byOutcome[o] = outcomeMetrics{attempts: d.attempts.WithLabelValues(o), latency: d.latency.WithLabelValues(o)}
	}
	// The dead-letter reasons: out of attempts, poison, and the classes of
	// the permanent failures attempt returns.
	for _, reason := range []string{deadExhausted, deadUndecodable, "endpoint_inactive", "secret", "render", "bad_url", "ssrf_refused", deadTenantDisabled} {
		d.deadLetters.WithLabelValues(reason)
	}
	breakersOpen := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "exo_dispatcher_breakers_open", Help: "Endpoints whose circuit breaker is open or half-open.",
	}, func() float64 { return float64(d.lanes.open()) })
	for _, class := range []string{deferCircuitOpen, deferBacklog} {
		d.deferred.WithLabelValues(class)
	}
	for _, c := range []prometheus.Collector{d.attempts, d.latency, d.shortCircuits, d.deferred, d.retries, d.deadLetters, d.inFlight, d.lanes.opens, breakersOpen} {
		if err := d.cfg.Registerer.Register(c); err != nil {
			return fmt.Errorf("dispatcher: register metrics: %w", err)
		}
	}
	return nil
}

// outcomeMetrics are the collectors of one attempt outcome.
type outcomeMetrics struct {
	attempts prometheus.Counter
	latency  prometheus.Observer
}

// countAttempt counts an attempt that ended with outcome after latency.
func (d *Dispatcher) countAttempt(outcome string, latency time.Duration) {
	m, ok := d.byOutcome[outcome]
	if !ok { // an outcome not listed in newMetrics: counted all the same
		m = outcomeMetrics{attempts: d.attempts.WithLabelValues(outcome), latency: d.latency.WithLabelValues(outcome)}
	}
	m.attempts.Inc()
	m.latency.Observe(latency.Seconds())
}
