// Endpoint health (docs/design/aggregate-alerts.md §6): an endpoint whose
// breaker has stayed open for UnhealthyAfter is reported unhealthy on the
// endpoint-health topic, once per stretch of failures, and healthy when its
// breaker closes again; the recorder makes the tenant's notice of it. Only
// a stretch in which an alert failed or was held counts: test and notice
// deliveries failing on their own (a broken notice endpoint) report
// nothing, so notices cannot feed themselves.

package dispatcher

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/schemas"
)

// stretch is a run of failures of an endpoint that was reported unhealthy.
type stretch struct {
	since    time.Time // when its breaker first opened
	failures int
}

// health produces the endpoint-health records.
type health struct {
	after    time.Duration
	instance string
	topic    string
	log      *slog.Logger
	notices  *prometheus.CounterVec // by state, counted when Kafka took the record
	cl       *kgo.Client            // nil until Run has one; flushed when Run ends
}

// newHealth builds d's health reporter and registers its metric.
func (d *Dispatcher) newHealth() error {
	instance := d.cfg.InstanceID
	if instance == "" {
		instance, _ = os.Hostname()
	}
	if instance == "" {
		instance = "dispatcher"
	}
	if len(instance) > 256 {
		instance = instance[:256]
	}
	h := &health{after: d.cfg.UnhealthyAfter, instance: instance, topic: d.cfg.Topics.EndpointHealth, log: d.log,
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_dispatcher_unhealthy_notices_total",
			Help: "Endpoint health reports produced to endpoint-health, by state: unhealthy (its breaker stayed open for EXO_DISPATCHER_UNHEALTHY_AFTER while alerts failed) and healthy (it closed again).",
		}, []string{"state"})}
	for _, s := range []string{schemas.EndpointUnhealthy, schemas.EndpointHealthy} {
		h.notices.WithLabelValues(s)
	}
	d.health = h
	return d.cfg.Registerer.Register(h.notices)
}

// internalDelivery reports whether a delivery is one the system makes for
// itself (test deliveries, notices).
func internalDelivery(rule string) bool {
	return rule == schemas.TestRuleID || rule == schemas.NoticeRuleID
}

// noteHealth follows a delivery of rule through lane l of key
// (tenant/endpoint): failed when its attempt failed or its breaker held it
// back (class: the failure's, "" when it was not attempted); healed when
// its success closed a breaker reported unhealthy.
func (d *Dispatcher) noteHealth(key string, l *lane, rule string, failed bool, class string, healed *stretch) {
	if healed != nil {
		d.produceHealth(key, schemas.EndpointHealthy, *healed, "")
		return
	}
	if failed {
		l.mu.Lock()
		if class != "" {
			l.lastClass = class
		}
		if !internalDelivery(rule) {
			l.alerts = true
		}
		l.mu.Unlock()
	}
	d.checkHealth(key, l)
}

// checkHealth reports lane l of key unhealthy if its breaker has been open
// for UnhealthyAfter, an alert failed meanwhile, and it has not been
// reported yet.
func (d *Dispatcher) checkHealth(key string, l *lane) {
	l.mu.Lock()
	if l.unhealthySince.IsZero() || l.noticed || !l.alerts || d.lanes.now().Sub(l.unhealthySince) < d.health.after {
		l.mu.Unlock()
		return
	}
	l.noticed = true
	s, class := stretch{since: l.unhealthySince, failures: l.failures}, l.lastClass
	l.mu.Unlock()
	d.produceHealth(key, schemas.EndpointUnhealthy, s, class)
}

// watchHealth checks every lane at a quarter of UnhealthyAfter (at most
// every 30s): a breaker that holds every delivery back is reported without
// waiting for an attempt.
func (d *Dispatcher) watchHealth(ctx context.Context) {
	tick := time.NewTicker(min(max(d.health.after/4, 50*time.Millisecond), 30*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.lanes.mu.Lock()
		keys := make([]string, 0, len(d.lanes.m))
		ls := make([]*lane, 0, len(d.lanes.m))
		for k, l := range d.lanes.m {
			keys, ls = append(keys, k), append(ls, l)
		}
		d.lanes.mu.Unlock()
		for i, l := range ls {
			d.checkHealth(keys[i], l)
		}
	}
}

// produceHealth sends the record of key's stretch s in state, without
// waiting: a record Kafka refuses is logged (the recorder then misses one
// notice; deliveries go on).
func (d *Dispatcher) produceHealth(key, state string, s stretch, class string) {
	h := d.health
	tenant, endpoint, _ := strings.Cut(key, "/")
	rec := schemas.EndpointHealthRecord{TenantID: tenant, EndpointID: endpoint, State: state, Since: s.since.UTC(),
		ConsecutiveFailures: s.failures, LastErrorClass: class, Instance: h.instance, At: d.lanes.now().UTC()}
	value, _ := json.Marshal(rec)
	log := h.log.With("tenant_id", tenant, "endpoint_id", endpoint, "state", state, "since", rec.Since)
	if h.cl == nil {
		log.Warn("endpoint health not reported: no producer")
		return
	}
	h.cl.Produce(context.Background(), &kgo.Record{Topic: h.topic, Key: schemas.RecordKey(tenant, endpoint), Value: value}, func(_ *kgo.Record, err error) {
		if err != nil {
			log.Warn("endpoint health not reported", "err", err)
			return
		}
		h.notices.WithLabelValues(state).Inc()
		log.Info("endpoint health reported", "consecutive_failures", s.failures)
	})
}
