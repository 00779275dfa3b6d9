package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/loop"
	"github.com/exospherehost/exo-alerts/internal/metrics"
	"github.com/exospherehost/exo-alerts/internal/model"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The recorder keeps the delivery history in Postgres: every alert from
// deliveries (table alerts), every attempt from delivery-results
// (delivery_attempts) and every dead letter from deliveries.dlq
// (dead_letters). It disables a rule whose endpoint answered 404/410.
//
// It is at-least-once with idempotent writes: a poll's records are written
// in one transaction, and their offsets are committed only after it
// committed. A record that cannot be decoded or fails its schema is
// quarantined (table quarantined_records, raw, with its coordinates) in the
// batch's transaction, counted and logged; a Postgres outage is retried
// with a short backoff (at most recorderMaxBackoff) and commits nothing. Strings are written as
// Postgres can hold them (NUL becomes U+FFFD, see pgText and pgJSON). A
// batch Postgres refuses with a data error (isDataError) is split in halves
// until the records at fault are alone: the others are written, each of
// those is quarantined (table quarantined_records, raw, with its
// coordinates), and the loop moves on.
//
// It also keeps the latest rule error (topic rule-errors) on its rule.

// recorderPollMax caps the records written in one transaction.
const recorderPollMax = 1000

// The recorder's retry backoff while Postgres is away: short, so it resumes
// within a second of Postgres' return.
const (
	recorderMinBackoff = 50 * time.Millisecond
	recorderMaxBackoff = time.Second
)

// recorderConsumer names the recorder in quarantined_records.consumer.
const recorderConsumer = "recorder"

// retentionBatch caps the rows one retention DELETE removes.
const retentionBatch = 5000

type recorderMetrics struct {
	skipped  *prometheus.CounterVec
	recorded *prometheus.CounterVec
	disabled prometheus.Counter
	pruned   *prometheus.CounterVec
	failures prometheus.Counter
	// quarantined: records Postgres refused with a data error, set aside.
	quarantined *prometheus.CounterVec
}

// metricsOf registers the recorder's metrics with reg, or returns those
// registered before (the recorder and retention share them).
func metricsOf(reg prometheus.Registerer) (*recorderMetrics, error) {
	m := &recorderMetrics{
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_recorder_skipped_records_total",
			Help: "Records the recorder could not decode or that failed their schema, stored in quarantined_records instead of being written (exo-alerts quarantine list), by topic.",
		}, []string{"topic"}),
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_recorder_records_total",
			Help: "Records the recorder wrote to Postgres (replays included), by table.",
		}, []string{"table"}),
		disabled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_recorder_rules_disabled_total",
			Help: "Alert rules disabled because their endpoint answered 404 or 410.",
		}),
		pruned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_recorder_pruned_rows_total",
			Help: "History rows deleted by retention, by table.",
		}, []string{"table"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_recorder_write_failures_total",
			Help: "Failed attempts to write a batch to Postgres (retried with backoff; offsets are not committed meanwhile).",
		}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_recorder_quarantined_records_total",
			Help: "Records Postgres refused with a data error, stored in quarantined_records instead of being written (exo-alerts quarantine list), by topic.",
		}, []string{"topic"}),
	}
	var err error
	m.skipped, err = metrics.Register(reg, m.skipped)
	if err == nil {
		m.recorded, err = metrics.Register(reg, m.recorded)
	}
	if err == nil {
		m.disabled, err = metrics.Register(reg, m.disabled)
	}
	if err == nil {
		m.pruned, err = metrics.Register(reg, m.pruned)
	}
	if err == nil {
		m.failures, err = metrics.Register(reg, m.failures)
	}
	if err == nil {
		m.quarantined, err = metrics.Register(reg, m.quarantined)
	}
	if err != nil {
		return nil, fmt.Errorf("recorder: register metrics: %w", err)
	}
	return m, nil
}

// register registers c, or returns the equal collector registered before.

// runRecorder consumes the delivery topics into Postgres and runs the
// retention loop, until ctx ends.
func (s *Server) runRecorder(ctx context.Context) error {
	m, err := metricsOf(s.cfg.Registry)
	if err != nil {
		return err
	}
	// Every topic's quarantine count exists from the start (at 0), so a
	// first quarantined record is an increase.
	t := s.cfg.Topics
	for _, topic := range []string{t.Deliveries, t.DeliveryResults, t.DeliveriesDLQ, t.RuleErrors} {
		m.quarantined.WithLabelValues(topic)
	}
	log := s.log.With("part", "recorder")
	rec := &recorder{s: s, log: log, m: m,
		pg: &loop.Outage{Log: log, What: "postgres", MinWait: recorderMinBackoff, MaxWait: recorderMaxBackoff}}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { rec.retain(ctx) })
	return rec.consume(ctx)
}

type recorder struct {
	s   *Server
	log *slog.Logger
	m   *recorderMetrics
	pg  *loop.Outage // Postgres, as the write loop sees it
}

func (r *recorder) consume(ctx context.Context) error {
	t := r.s.cfg.Topics
	opts := append(kafka.ClientOpts(r.s.cfg.Brokers, r.log),
		kgo.ConsumerGroup(r.s.cfg.RecorderGroup),
		kgo.ConsumeTopics(t.Deliveries, t.DeliveryResults, t.DeliveriesDLQ, t.RuleErrors),
		// deliveries is written in the processor's transactions: record
		// only what committed.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// A rebalance waits until the batch in hand is written and its
		// offsets committed, so a partition's new owner starts after them.
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(250*time.Millisecond),
	)
	cl, err := kgo.NewClient(append(opts, r.s.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("recorder: kafka client: %w", err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollRecords(ctx, recorderPollMax)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		var fatal error
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, kgo.ErrClientClosed) {
				fatal = err
				return
			}
			r.log.Warn("fetch", "topic", topic, "partition", p, "err", err)
		})
		if fatal != nil {
			return fmt.Errorf("recorder: fetch: %w", fatal)
		}
		if items := r.decode(fetches.Records()); len(items) > 0 {
			if !r.store(ctx, items) {
				cl.AllowRebalance()
				return nil // ctx ended; nothing committed, the records come again
			}
		}
		if fetches.NumRecords() > 0 {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
				// Written but not committed: they come again and are
				// written again, which changes nothing.
				r.log.Warn("commit offsets", "err", err)
			}
		}
		cl.AllowRebalance()
	}
}

// item is one consumed record, decoded: exactly one of the pointers, or
// invalid, is set.
type item struct {
	kr *kgo.Record
	// invalid says why the record can never be written: it is quarantined
	// instead (refused: Postgres refused it with a data error; otherwise it
	// could not be decoded or failed its schema).
	invalid error
	refused bool
	alert   *alertIn
	attempt *schemas.ResultRecord
	dead    *deadIn
	ruleErr *schemas.RuleErrorRecord
}

// batch is what a run of items gives, sorted by table.
type batch struct {
	alerts     []alertIn
	attempts   []schemas.ResultRecord
	dead       map[string]deadIn // by alert id: the latest death
	ruleErrors []schemas.RuleErrorRecord
	invalid    []item // quarantined
}

func batchOf(items []item) *batch {
	b := &batch{dead: map[string]deadIn{}}
	for _, it := range items {
		switch {
		case it.invalid != nil:
			b.invalid = append(b.invalid, it)
		case it.alert != nil:
			b.alerts = append(b.alerts, *it.alert)
		case it.attempt != nil:
			b.attempts = append(b.attempts, *it.attempt)
		case it.dead != nil:
			if prev, ok := b.dead[it.dead.rec.AlertID]; !ok || prev.deadAt.Before(it.dead.deadAt) {
				b.dead[it.dead.rec.AlertID] = *it.dead
			}
		case it.ruleErr != nil:
			b.ruleErrors = append(b.ruleErrors, *it.ruleErr)
		}
	}
	return b
}

type alertIn struct {
	rec schemas.DeliveryRecord
	raw json.RawMessage
}

type deadIn struct {
	rec       schemas.DeliveryRecord
	raw       json.RawMessage
	attempts  int
	lastError string
	deadAt    time.Time
}

// decode decodes records; what is not valid becomes an item to quarantine.
func (r *recorder) decode(recs []*kgo.Record) []item {
	t := r.s.cfg.Topics
	var items []item
	for _, kr := range recs {
		skip := func(reason error) {
			items = append(items, item{kr: kr, invalid: reason})
		}
		switch kr.Topic {
		case t.Deliveries, t.DeliveriesDLQ:
			dp, err := schemas.DecodeDelivery(kr.Value)
			if err != nil {
				skip(err)
				continue
			}
			d := *dp
			if kr.Topic == t.Deliveries {
				items = append(items, item{kr: kr, alert: &alertIn{rec: d, raw: kr.Value}})
				continue
			}
			n, _ := strconv.Atoi(kafka.Header(kr, schemas.HeaderAttempts))
			dl := deadIn{rec: d, raw: kr.Value, attempts: n, lastError: kafka.Header(kr, schemas.HeaderLastError), deadAt: kr.Timestamp.UTC()}
			if dl.lastError == "" {
				dl.lastError = "unknown"
			}
			items = append(items, item{kr: kr, dead: &dl})
		case t.DeliveryResults:
			res, err := schemas.DecodeResult(kr.Value)
			if err != nil {
				skip(err)
				continue
			}
			items = append(items, item{kr: kr, attempt: res})
		case t.RuleErrors:
			re, err := decodeRuleError(kr.Value)
			if err != nil {
				skip(err)
				continue
			}
			items = append(items, item{kr: kr, ruleErr: re})
		}
	}
	return items
}

func decodeRuleError(v []byte) (*schemas.RuleErrorRecord, error) {
	if err := schemas.Validate(schemas.KindRuleError, v); err != nil {
		return nil, err
	}
	var re schemas.RuleErrorRecord
	if err := json.Unmarshal(v, &re); err != nil {
		return nil, fmt.Errorf("recorder: decode rule error: %w", err)
	}
	return &re, nil
}

// store writes items in one transaction until it succeeds or ctx ends
// (false). Transient errors are retried (an outage is logged once, and its
// end). A data error splits the items in halves, written each on its own,
// down to the single records at fault, which are quarantined: every other
// record is written, and none blocks the loop.
func (r *recorder) store(ctx context.Context, items []item) bool {
	for {
		b := batchOf(items)
		err := r.s.inTx(ctx, func(tx pgx.Tx) error { return r.write(ctx, tx, b) })
		if err == nil {
			r.pg.OK()
			r.quarantined(b.invalid)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if store.IsDataError(err) {
			r.pg.OK() // Postgres answered
			if len(items) == 1 {
				it := items[0]
				if it.invalid != nil {
					// Not even quarantine can hold it (cannot happen: the
					// raw bytes go to bytea columns).
					r.log.Error("record refused by postgres, also in quarantine; skipped", "topic", it.kr.Topic,
						"partition", it.kr.Partition, "offset", it.kr.Offset, "err", err, "cause", it.invalid)
					return true
				}
				return r.store(ctx, []item{{kr: it.kr, invalid: err, refused: true}})
			}
			h := len(items) / 2
			return r.store(ctx, items[:h]) && r.store(ctx, items[h:])
		}
		r.m.failures.Inc()
		if !loop.Sleep(ctx, r.pg.Failed(err)) {
			return false
		}
	}
}

// insertQuarantined stores kr raw in quarantined_records with the reason it
// is set aside; storing it twice (the same coordinates) changes nothing.
func insertQuarantined(ctx context.Context, tx pgx.Tx, consumer string, kr *kgo.Record, reason error) error {
	hs := make([]quarantinedHeader, 0, len(kr.Headers))
	for _, h := range kr.Headers {
		hs = append(hs, quarantinedHeader{Key: store.Text(h.Key), Value: h.Value})
	}
	headers, _ := json.Marshal(hs)
	if _, err := tx.Exec(ctx, `INSERT INTO quarantined_records (consumer, topic, "partition", "offset", key, value, headers, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (consumer, topic, "partition", "offset") DO NOTHING`,
		consumer, kr.Topic, kr.Partition, kr.Offset, kr.Key, kr.Value, headers, store.Text(reason.Error())); err != nil {
		return fmt.Errorf("recorder: quarantine: %w", err)
	}
	return nil
}

// quarantined counts and logs the items a committed batch quarantined.
func (r *recorder) quarantined(items []item) {
	for _, it := range items {
		kr := it.kr
		if it.refused {
			r.m.quarantined.WithLabelValues(kr.Topic).Inc()
			r.log.Error("record refused by postgres; quarantined", "topic", kr.Topic, "partition", kr.Partition,
				"offset", kr.Offset, "err", it.invalid)
			continue
		}
		r.m.skipped.WithLabelValues(kr.Topic).Inc()
		r.log.Error("invalid record; quarantined", "topic", kr.Topic, "partition", kr.Partition,
			"offset", kr.Offset, "err", it.invalid)
	}
}

// write stores a batch in one transaction. Every statement is idempotent:
// writing a batch twice leaves what writing it once left.
func (r *recorder) write(ctx context.Context, tx pgx.Tx, b *batch) error {
	if len(b.alerts) > 0 {
		rows := make([]map[string]any, 0, len(b.alerts))
		for _, a := range b.alerts {
			rows = append(rows, pgRow(map[string]any{
				"alert_id": a.rec.AlertID, "tenant_id": a.rec.TenantID, "rule_id": a.rec.RuleID, "endpoint_id": a.rec.EndpointID,
				"event_type": a.rec.EventType, "record": a.raw, "created_at": a.rec.CreatedAt,
			}))
		}
		js, _ := json.Marshal(rows)
		if _, err := tx.Exec(ctx, `INSERT INTO alerts (alert_id, tenant_id, rule_id, endpoint_id, event_type, record, created_at)
			SELECT alert_id, tenant_id, rule_id, endpoint_id, event_type, record, created_at
			FROM jsonb_populate_recordset(NULL::alerts, $1::jsonb)
			ON CONFLICT (alert_id) DO NOTHING`, js); err != nil {
			return fmt.Errorf("recorder: insert alerts: %w", err)
		}
		r.m.recorded.WithLabelValues("alerts").Add(float64(len(rows)))
	}
	var gone []schemas.ResultRecord
	if len(b.attempts) > 0 {
		rows := make([]map[string]any, 0, len(b.attempts))
		for _, a := range b.attempts {
			rows = append(rows, pgRow(map[string]any{
				"alert_id": a.AlertID, "attempt": a.Attempt, "delivery_id": a.DeliveryID, "tenant_id": a.TenantID,
				"rule_id": a.RuleID, "endpoint_id": a.EndpointID, "outcome": a.Outcome, "status_code": nilIfZero(a.StatusCode),
				"latency_ms": a.LatencyMS, "error_class": nilIfEmpty(a.ErrorClass), "error": nilIfEmpty(a.Error),
				"response_excerpt": nilIfEmpty(a.ResponseExcerpt), "attempted_at": a.AttemptedAt,
			}))
		}
		js, _ := json.Marshal(rows)
		inserted, err := tx.Query(ctx, `INSERT INTO delivery_attempts (alert_id, attempt, delivery_id, tenant_id, rule_id, endpoint_id,
				outcome, status_code, latency_ms, error_class, error, response_excerpt, attempted_at)
			SELECT alert_id, attempt, delivery_id, tenant_id, rule_id, endpoint_id,
				outcome, status_code, latency_ms, error_class, error, response_excerpt, attempted_at
			FROM jsonb_populate_recordset(NULL::delivery_attempts, $1::jsonb)
			ON CONFLICT (alert_id, delivery_id) DO NOTHING
			RETURNING alert_id, delivery_id`, js)
		if err != nil {
			return fmt.Errorf("recorder: insert attempts: %w", err)
		}
		fresh := map[[2]string]bool{}
		for inserted.Next() {
			var k [2]string
			if err := inserted.Scan(&k[0], &k[1]); err != nil {
				inserted.Close()
				return fmt.Errorf("recorder: insert attempts: %w", err)
			}
			fresh[k] = true
		}
		if err := inserted.Err(); err != nil {
			return fmt.Errorf("recorder: insert attempts: %w", err)
		}
		r.m.recorded.WithLabelValues("delivery_attempts").Add(float64(len(rows)))
		// Only an attempt seen for the first time disables its rule: a
		// replay of the topic never disables a rule again.
		for _, a := range b.attempts {
			if a.Outcome == schemas.OutcomeEndpointGone && fresh[[2]string{store.Text(a.AlertID), store.Text(a.DeliveryID)}] {
				gone = append(gone, a)
			}
		}
	}
	if len(b.dead) > 0 {
		rows := make([]map[string]any, 0, len(b.dead))
		for _, d := range b.dead {
			rows = append(rows, pgRow(map[string]any{
				"alert_id": d.rec.AlertID, "tenant_id": d.rec.TenantID, "rule_id": d.rec.RuleID, "endpoint_id": d.rec.EndpointID,
				"attempts": d.attempts, "last_error": d.lastError, "record": d.raw, "dead_at": d.deadAt,
			}))
		}
		js, _ := json.Marshal(rows)
		// A later death of the same alert (after a redelivery or replay)
		// replaces the row and makes it replayable again; the same death
		// read twice changes nothing.
		if _, err := tx.Exec(ctx, `INSERT INTO dead_letters (alert_id, tenant_id, rule_id, endpoint_id, attempts, last_error, record, dead_at)
			SELECT alert_id, tenant_id, rule_id, endpoint_id, attempts, last_error, record, dead_at
			FROM jsonb_populate_recordset(NULL::dead_letters, $1::jsonb)
			ON CONFLICT (alert_id) DO UPDATE SET attempts = excluded.attempts, last_error = excluded.last_error,
				record = excluded.record, dead_at = excluded.dead_at, replayed_at = NULL
			WHERE dead_letters.dead_at < excluded.dead_at`, js); err != nil {
			return fmt.Errorf("recorder: upsert dead letters: %w", err)
		}
		r.m.recorded.WithLabelValues("dead_letters").Add(float64(len(rows)))
	}
	for _, a := range gone {
		if err := r.disableRule(ctx, tx, a); err != nil {
			return err
		}
	}
	for _, re := range b.ruleErrors {
		if err := r.ruleError(ctx, tx, re); err != nil {
			return err
		}
	}
	for _, it := range b.invalid {
		if err := insertQuarantined(ctx, tx, recorderConsumer, it.kr, it.invalid); err != nil {
			return err
		}
	}
	return nil
}

// ruleError keeps re as its rule's last error, if it is later than the one
// kept and was reported for the rule's current condition (a changed
// condition clears the error: trigger alert_rules_condition_changed).
// Reading a record twice changes nothing (its time is not later).
func (r *recorder) ruleError(ctx context.Context, tx pgx.Tx, re schemas.RuleErrorRecord) error {
	tag, err := tx.Exec(ctx, `UPDATE alert_rules SET last_error = $4, last_error_at = $5, last_error_event_id = $6,
			last_error_rule_version = $3, error_count = error_count + $7
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND $3 >= condition_version
			AND (last_error_at IS NULL OR last_error_at < $5)`,
		re.TenantID, re.RuleID, re.RuleVersion, store.Text(re.Error), re.At, nilIfEmpty(store.Text(re.EventID)), re.Errors)
	if err != nil {
		return fmt.Errorf("recorder: rule error: %w", err)
	}
	r.m.recorded.WithLabelValues("alert_rules.last_error").Add(float64(tag.RowsAffected()))
	return nil
}

// pgRow makes a row's strings and JSON documents storable (pgText, pgJSON).
func pgRow(row map[string]any) map[string]any {
	for k, v := range row {
		switch x := v.(type) {
		case string:
			row[k] = store.Text(x)
		case json.RawMessage:
			row[k] = json.RawMessage(store.JSON(x))
		}
	}
	return row
}

// disableRule deactivates the rule of an attempt its endpoint answered with
// 404 or 410, if the rule is still active, not deleted, and unchanged since
// it made the alert: still the version the result carries (a user who
// re-enabled or edited it since has the last word, whatever the clocks
// say). Results without a version (older dispatchers) fall back to
// comparing the attempt time with the rule's last change. Audit row and
// outbox snapshot go in the same transaction.
func (r *recorder) disableRule(ctx context.Context, tx pgx.Tx, a schemas.ResultRecord) error {
	unchanged, since := `updated_at < $3`, any(a.AttemptedAt)
	if a.RuleVersion > 0 {
		unchanged, since = `version = $3`, a.RuleVersion
	}
	before, err := store.ScanRule(tx.QueryRow(ctx, `SELECT `+store.RuleCols+` FROM alert_rules
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND is_active AND `+unchanged+`
		FOR UPDATE`, a.TenantID, a.RuleID, since))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recorder: disable rule: %w", err)
	}
	status := "404/410"
	if a.StatusCode != 0 {
		status = strconv.Itoa(a.StatusCode)
	}
	reason := fmt.Sprintf("disabled automatically: endpoint %s answered HTTP %s (gone) to alert %s at %s; fix the endpoint, then re-enable the rule",
		a.EndpointID, status, a.AlertID, a.AttemptedAt.UTC().Format(time.RFC3339))
	after, err := store.ScanRule(tx.QueryRow(ctx, `UPDATE alert_rules
		SET is_active = false, disabled_reason = $3, version = version + 1, updated_at = now()
		WHERE tenant_id = $1 AND id = $2
		RETURNING `+store.RuleCols, a.TenantID, a.RuleID, reason))
	if err != nil {
		return fmt.Errorf("recorder: disable rule: %w", err)
	}
	if err := store.Of(tx).InsertAudit(ctx, a.TenantID, "system", "alert_rule.disable", "alert_rule", a.RuleID,
		model.RuleOf(before), model.RuleOf(after), "delivery:"+a.DeliveryID); err != nil {
		return err
	}
	snap, _ := json.Marshal(after.Record())
	if err := store.Of(tx).InsertOutbox(ctx, r.s.cfg.Topics.Rules, schemas.TenantKey(a.TenantID, a.RuleID), snap); err != nil {
		return err
	}
	r.m.disabled.Inc()
	r.log.Warn("alert rule disabled: endpoint gone", "tenant_id", a.TenantID, "rule_id", a.RuleID,
		"endpoint_id", a.EndpointID, "status", a.StatusCode, "alert_id", a.AlertID)
	return nil
}

func nilIfZero(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// retain deletes history older than the retention every RetentionInterval
// (and once at start).
func (r *recorder) retain(ctx context.Context) {
	tick := time.NewTicker(r.s.cfg.RetentionInterval)
	defer tick.Stop()
	for {
		if r.s.cfg.HistoryRetention > 0 {
			if _, err := r.s.pruneHistory(ctx, time.Now().Add(-r.s.cfg.HistoryRetention)); err != nil && ctx.Err() == nil {
				r.log.Warn("history retention", "err", err)
			}
		}
		if _, err := r.s.pruneOutbox(ctx, time.Now().Add(-sentOutboxRetention)); err != nil && ctx.Err() == nil {
			r.log.Warn("outbox retention", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pruneHistory deletes alerts, attempts and dead letters older than cutoff,
// in batches of retentionBatch rows (short transactions, short locks). It
// returns how many rows of each table it deleted.
func (s *Server) pruneHistory(ctx context.Context, cutoff time.Time) (map[string]int64, error) {
	m, err := metricsOf(s.cfg.Registry)
	if err != nil {
		return nil, err
	}
	stmts := []struct{ table, sql string }{
		{"alerts", `DELETE FROM alerts WHERE alert_id IN
			(SELECT a.alert_id FROM alerts a WHERE a.created_at < $1
				AND NOT EXISTS (SELECT 1 FROM delivery_attempts d WHERE d.alert_id = a.alert_id AND d.attempted_at >= $1)
				AND NOT EXISTS (SELECT 1 FROM dead_letters x WHERE x.alert_id = a.alert_id AND x.dead_at >= $1)
			 LIMIT $2)`}, // an old alert redelivered lately keeps its payload
		{"delivery_attempts", `DELETE FROM delivery_attempts WHERE (alert_id, delivery_id) IN
			(SELECT alert_id, delivery_id FROM delivery_attempts WHERE attempted_at < $1 LIMIT $2)`},
		{"dead_letters", `DELETE FROM dead_letters WHERE alert_id IN
			(SELECT alert_id FROM dead_letters WHERE dead_at < $1 LIMIT $2)`},
	}
	out := map[string]int64{}
	for _, st := range stmts {
		for {
			var n int64
			err := s.inTx(ctx, func(tx pgx.Tx) error {
				tag, err := tx.Exec(ctx, st.sql, cutoff, retentionBatch)
				n = tag.RowsAffected()
				return err
			})
			if err != nil {
				return out, fmt.Errorf("recorder: prune %s: %w", st.table, err)
			}
			out[st.table] += n
			m.pruned.WithLabelValues(st.table).Add(float64(n))
			if n < retentionBatch {
				break
			}
		}
	}
	return out, nil
}

// sentOutboxRetention is how long published outbox rows are kept (to see
// what was published lately); every start republishes the live state, so
// older ones are of no use.
const sentOutboxRetention = 24 * time.Hour

// pruneOutbox deletes outbox rows published before cutoff, in batches.
// Unpublished rows are never deleted, however old.
func (s *Server) pruneOutbox(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE id IN
			(SELECT id FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1 ORDER BY id LIMIT $2)`, cutoff, retentionBatch)
		if err != nil {
			return total, fmt.Errorf("outbox retention: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < retentionBatch {
			return total, nil
		}
	}
}
