package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/loop"
	"github.com/exospherehost/exo-alerts/internal/metrics"
	"github.com/exospherehost/exo-alerts/internal/rollout"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// relay publishes outbox rows to Kafka in id order and marks them sent once
// Kafka acknowledged them. It is woken by NOTIFY exo_outbox (sent by a
// trigger on insert) and polls as a fallback. A Kafka outage leaves rows
// unsent and the relay retries with a backoff; nothing is lost, and the API
// keeps serving (it only writes Postgres).
//
// Order per key: a key's rows are inserted in the order of its changes (the
// change holds the resource's row lock while it inserts), and the relay
// publishes them in id order. Several relays (several control planes) take
// turns through a transaction-scoped advisory lock, so a later row of a key
// is never published ahead of an earlier one that another relay holds.
//
// Poison: a row Kafka can never accept (too large, or a value that fails
// its topic's schema) is quarantined — marked with quarantined_at and the
// reason, counted, logged — and the rows after it are published; a
// transient error (Kafka away, a timeout) leaves the whole batch queued and
// retries it. An outage is logged once, and its end.
type relay struct {
	// healthy: the last drain published (see Server.relaying).
	healthy *atomic.Bool
	db      *store.Store
	kafka   *kgo.Client
	topics  kafka.Topics
	specs   []kafka.Spec
	poll    time.Duration
	log     *slog.Logger
	// rollout writes the rollout's records; seed is EXO_TENANTS, stored at
	// start when no default is (nil: EXO_TENANTS unset, nothing to store).
	rollout rolloutChanges
	seed    *rollout.Seed

	published, failures, quarantined prometheus.Counter
	unsent                           prometheus.Gauge

	// out tracks failures of the main loop (Postgres or Kafka away).
	out *loop.Outage
}

const (
	relayBatch = 500
	// relayPublishTimeout bounds one batch's wait for Kafka's acknowledgement.
	relayPublishTimeout = 15 * time.Second
	// relayMaxBackoff caps the wait between retries: the relay resumes
	// within it of Kafka's (or Postgres') return.
	relayMaxBackoff = 2 * time.Second
)

func newRelay(s *Server, cl *kgo.Client) *relay {
	r := &relay{
		healthy: &s.relaying,
		db:      s.db, kafka: cl, topics: s.cfg.Topics, specs: s.cfg.Topics.Specs(s.cfg.Partitions),
		poll: s.cfg.OutboxPoll, log: s.log.With("part", "outbox"), rollout: s.changes(),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_controlplane_outbox_published_total", Help: "Outbox rows published to Kafka and marked sent.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_controlplane_outbox_publish_failures_total", Help: "Outbox publish attempts that failed (the rows stay queued).",
		}),
	}
	r.quarantined = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "exo_controlplane_outbox_quarantined_total",
		Help: "Outbox rows Kafka can never accept (too large, or not their topic's schema), set aside with quarantined_at and a reason.",
	})
	r.published = registered(metrics.Register(s.cfg.Registry, r.published))
	r.failures = registered(metrics.Register(s.cfg.Registry, r.failures))
	r.quarantined = registered(metrics.Register(s.cfg.Registry, r.quarantined))
	if s.cfg.Tenants != nil {
		seed := s.cfg.seed()
		r.seed = &seed
	}
	r.out = &loop.Outage{Log: r.log, What: "outbox relay: postgres or kafka", MinWait: min(100*time.Millisecond, r.poll), MaxWait: relayMaxBackoff}
	r.unsent, _ = metrics.Register(s.cfg.Registry, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "exo_controlplane_outbox_unsent", Help: "Outbox rows not published yet, counted by the relay after each attempt to drain the outbox.",
	}))
	return r
}

func (r *relay) run(ctx context.Context) error {
	// Both steps are retried until they succeed: while Kafka (or Postgres)
	// is away the API serves and its changes queue in the outbox.
	r.retry(ctx, "create topics", func() error {
		return kafka.EnsureTopics(ctx, kadm.NewClient(r.kafka), r.specs)
	})
	if r.seed != nil {
		r.retry(ctx, "store the rollout of EXO_TENANTS", func() error { return r.seedRollout(ctx) })
	}
	r.retry(ctx, "republish live rules and endpoints", func() error { return r.republish(ctx) })
	for ctx.Err() == nil {
		if err := r.listen(ctx); err != nil && ctx.Err() == nil {
			r.healthy.Store(false)
			r.sleep(ctx, r.out.Failed(err))
		}
	}
	return nil
}

// retry runs fn until it succeeds or ctx ends, backing off between tries.
func (r *relay) retry(ctx context.Context, what string, fn func() error) {
	o := &loop.Outage{Log: r.log, What: "outbox: " + what, MinWait: r.nextBackoff(0), MaxWait: relayMaxBackoff}
	for ctx.Err() == nil {
		err := fn()
		if err == nil || ctx.Err() != nil {
			o.OK()
			return
		}
		r.sleep(ctx, o.Failed(err))
	}
}

func (r *relay) nextBackoff(prev time.Duration) time.Duration {
	if prev == 0 {
		return min(500*time.Millisecond, r.poll)
	}
	return min(2*prev, r.poll, relayMaxBackoff)
}

func (r *relay) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (r *relay) listen(ctx context.Context) error {
	l, err := r.db.ListenOutbox(ctx)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer l.Close(ctx)
	for {
		wait := r.poll
		_, err := r.drain(ctx)
		r.healthy.Store(err == nil)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Retry soon rather than after the slow poll: nothing else wakes
			// the relay when Kafka comes back. The rows stay queued.
			r.failures.Inc()
			wait = min(r.out.Failed(err), r.poll)
		} else {
			r.out.OK()
		}
		r.countUnsent(ctx)
		wctx, cancel := context.WithTimeout(ctx, wait)
		err = l.Wait(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("outbox: wait for notification: %w", err)
		}
	}
}

// countUnsent sets the backlog gauge.
func (r *relay) countUnsent(ctx context.Context) {
	n, err := r.db.CountUnsentOutbox(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Debug("outbox: count unsent rows", "err", err)
		}
		return
	}
	r.unsent.Set(float64(n))
}

// drain publishes batches until the outbox is empty, returning how many rows it sent.
func (r *relay) drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := r.publishBatch(ctx)
		total += n
		if err != nil || n < relayBatch {
			return total, err
		}
	}
}

// publishBatch claims the oldest unsent rows, publishes them and marks them
// sent, in one transaction: rows are marked only after Kafka acknowledged
// every one of them, and a failure leaves them all queued (at least once).
func (r *relay) publishBatch(ctx context.Context) (int, error) {
	n := 0
	type poisonRow struct {
		id                 int64
		topic, key, reason string
	}
	var poisoned []poisonRow
	err := r.db.System(ctx, func(tx *store.Tx) error {
		poisoned = nil
		// One relay at a time (see LockOutboxRelay).
		if err := tx.LockOutboxRelay(ctx); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		rows, err := tx.ClaimOutbox(ctx, relayBatch)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		ids := make([]int64, len(rows))
		recs := make([]*kgo.Record, len(rows))
		for i, row := range rows {
			ids[i] = row.ID
			recs[i] = &kgo.Record{Topic: row.Topic, Key: []byte(row.Key), Value: row.Value}
		}
		n = len(recs)
		if n == 0 {
			return nil
		}
		// Poison is set aside; the rest is published.
		poison := map[int64]string{}
		var send []*kgo.Record
		idOf := map[*kgo.Record]int64{}
		for i, rec := range recs {
			if err := r.valid(rec); err != nil {
				poison[ids[i]] = err.Error()
				continue
			}
			idOf[rec] = ids[i]
			send = append(send, rec)
		}
		pctx, cancel := context.WithTimeout(ctx, relayPublishTimeout)
		defer cancel()
		var sent []int64
		var transient error
		for _, res := range r.kafka.ProduceSync(pctx, send...) {
			id := idOf[res.Record]
			switch {
			case res.Err == nil:
				sent = append(sent, id)
			case kafka.RefusedForGood(res.Err):
				poison[id] = res.Err.Error()
			case transient == nil:
				transient = res.Err
			}
		}
		if transient != nil {
			// Nothing is marked: a key's later row must not be published
			// for good while an earlier one waits for a retry.
			return fmt.Errorf("outbox: publish %d records: %w", len(send), transient)
		}
		if err := tx.MarkOutboxSent(ctx, sent); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		for i, id := range ids {
			reason, ok := poison[id]
			if !ok {
				continue
			}
			if err := tx.QuarantineOutbox(ctx, id, reason); err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
			poisoned = append(poisoned, poisonRow{id: id, topic: recs[i].Topic, key: string(recs[i].Key), reason: reason})
		}
		return nil
	})
	if err == nil {
		r.published.Add(float64(n - len(poisoned)))
		for _, p := range poisoned {
			r.quarantined.Inc()
			r.log.Error("outbox row Kafka can never accept; quarantined", "outbox_id", p.id, "topic", p.topic, "key", p.key, "reason", p.reason)
		}
	}
	return n, err
}

// valid checks a row's value against its topic's schema (rule and endpoint
// snapshots, deliveries, rollout states); a tombstone (nil) is always valid.
func (r *relay) valid(rec *kgo.Record) error {
	if rec.Value == nil {
		return nil
	}
	var k schemas.Kind
	switch rec.Topic {
	case r.topics.Rules:
		k = schemas.KindRule
	case r.topics.Endpoints:
		k = schemas.KindEndpoint
	case r.topics.Deliveries:
		k = schemas.KindDelivery
	case r.topics.Tenants:
		k = schemas.KindTenant
	default:
		return nil
	}
	if err := schemas.Validate(k, rec.Value); err != nil {
		return fmt.Errorf("outbox: value is not a valid %s: %w", k, err)
	}
	return nil
}

// seedRollout stores EXO_TENANTS' rollout unless a default is stored
// already (rolloutChanges.seed): what is stored takes precedence.
func (r *relay) seedRollout(ctx context.Context) error {
	seeded, err := r.rollout.seed(ctx, *r.seed)
	if err != nil {
		return fmt.Errorf("outbox: seed rollout: %w", err)
	}
	if seeded {
		r.log.Info("rollout stored from EXO_TENANTS (no default was stored); change it with exo-alerts rollout", "default", r.seed.Default, "beta", r.seed.Beta)
	} else {
		r.log.Info("EXO_TENANTS ignored: a rollout is stored (exo-alerts rollout list shows it; EXO_TENANTS only seeds an empty one)")
	}
	return nil
}

// republish queues a snapshot of every live rule and endpoint, and the
// stored rollout, so the compacted topics converge on Postgres even if
// they were lost or trimmed.
// The rows are read FOR SHARE: a change being written concurrently commits
// either before (and is read here) or after these outbox rows (and its own
// row follows them), so a stale snapshot never lands after a newer one.
func (r *relay) republish(ctx context.Context) error {
	return r.db.System(ctx, func(tx *store.Tx) error {
		endpoints, err := tx.RepublishEndpoints(ctx)
		if err != nil {
			return fmt.Errorf("outbox: republish endpoints: %w", err)
		}
		rules, err := tx.RepublishRules(ctx)
		if err != nil {
			return fmt.Errorf("outbox: republish rules: %w", err)
		}
		rolloutRows, err := r.rollout.republishRows(ctx, tx)
		if err != nil {
			return fmt.Errorf("outbox: republish rollout: %w", err)
		}
		quotaRows, err := quotaChanges{db: r.db, topics: r.topics}.republishRows(ctx, tx)
		if err != nil {
			return fmt.Errorf("outbox: republish tenant quotas: %w", err)
		}
		rows := make([]store.OutboxRow, 0, len(endpoints)+len(rules)+len(rolloutRows)+len(quotaRows))
		rows = append(rows, rolloutRows...)
		rows = append(rows, quotaRows...)
		for _, e := range endpoints {
			v, _ := json.Marshal(e.Record())
			rows = append(rows, store.OutboxRow{Topic: r.topics.Endpoints, Key: schemas.TenantKey(e.TenantID, e.ID), Value: v})
		}
		for _, ru := range rules {
			v, _ := json.Marshal(ru.Record())
			rows = append(rows, store.OutboxRow{Topic: r.topics.Rules, Key: schemas.TenantKey(ru.TenantID, ru.ID), Value: v})
		}
		if len(rows) == 0 {
			return nil
		}
		if err := tx.InsertOutboxRows(ctx, rows); err != nil {
			return fmt.Errorf("outbox: republish: %w", err)
		}
		r.log.Info("republishing live rules, endpoints and the rollout", "records", len(rows))
		return nil
	})
}

// registered returns the collector metrics.Register gave; a registration
// error (a different collector under the same name) leaves it unregistered,
// still counting, as the relay did before it was shared.
func registered[C any](c C, _ error) C { return c }
