package dispatcher

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/internal/ssrf"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// Version is sent in the User-Agent.
var Version = "dev"

// MaxResponseExcerpt is how much of an answer is kept in a result.
const MaxResponseExcerpt = 4 << 10

// Config configures the dispatcher.
type Config struct {
	Brokers    []string
	Topics     kafka.Topics
	Partitions int32
	Group      string
	// InstanceID, when set, makes this dispatcher a static member of its
	// groups (KIP-345; EXO_DISPATCHER_INSTANCE_ID): restarted with the same
	// id after a crash, it takes its partitions back at once, without
	// waiting for the dead member's session to time out. It must be unique
	// among the running dispatchers and stable across restarts (a
	// StatefulSet pod name); a second process with the same id fences the
	// first. Empty: dynamic membership.
	InstanceID string
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating (a crash) before giving its partitions to another
	// (default 10s; franz-go's own is 45s). Heartbeats go out every tenth of it.
	SessionTimeout time.Duration
	Keyring        *keyring.Ring
	// Allowlist names addresses the SSRF guard lets through (IPs or CIDRs).
	Allowlist      []string
	AttemptTimeout time.Duration
	// Links builds the dashboard link in Slack and PagerDuty messages.
	Links LinkTemplate
	// Tiers are the retry delays, one topic each (default DefaultTiers).
	Tiers []time.Duration
	// EndpointConcurrency caps the attempts in flight to one endpoint (default 4).
	EndpointConcurrency int
	// Workers caps the HTTP attempts in flight over all endpoints and
	// sources (default 512): the bounded pool. An attempt takes its
	// endpoint's slot first, so one endpoint holds at most
	// EndpointConcurrency of them.
	Workers int
	// EndpointRate caps attempts per second to one endpoint that sets no
	// rate_limit_per_second of its own (token bucket, a second's burst;
	// default 50).
	EndpointRate float64
	// BreakerThreshold consecutive failures open an endpoint's circuit
	// (default 5) for BreakerCooldown (default 30s): its deliveries then go
	// straight to the next tier; after the cooldown one probe goes out.
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// MaxInFlight caps the records of one source between fetch and outcome (default 10000).
	MaxInFlight int
	Log         *slog.Logger
	Registerer  prometheus.Registerer
	Ready       chan<- struct{}
	// KafkaOpts are appended to the options of every Kafka client the
	// dispatcher makes (tests route them through a dialer they can cut).
	KafkaOpts []kgo.Opt
}

func (c *Config) defaults() {
	if c.Topics.Events == "" {
		c.Topics = kafka.NewTopics(kafka.DefaultPrefix)
	}
	if c.Partitions == 0 {
		c.Partitions = 3
	}
	if c.Group == "" {
		c.Group = c.Topics.Prefix + "dispatcher"
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = 10 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if len(c.Tiers) == 0 {
		c.Tiers = DefaultTiers
	}
	if c.EndpointConcurrency == 0 {
		c.EndpointConcurrency = 4
	}
	if c.Workers == 0 {
		c.Workers = 512
	}
	if c.EndpointRate == 0 {
		c.EndpointRate = 50
	}
	if c.BreakerThreshold == 0 {
		c.BreakerThreshold = 5
	}
	if c.BreakerCooldown == 0 {
		c.BreakerCooldown = 30 * time.Second
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 10000
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
}

func (c *Config) validate() error {
	var problems []string
	if len(c.Brokers) == 0 {
		problems = append(problems, "no Kafka brokers (KAFKA_BROKERS)")
	}
	if c.Keyring == nil {
		problems = append(problems, "no key ring (EXO_KEYRING) to decrypt endpoint secrets")
	}
	if c.AttemptTimeout < 100*time.Millisecond {
		problems = append(problems, "attempt timeout must be >= 100ms")
	}
	// The broker's bounds (group.min/max.session.timeout.ms) are 6s and 30m
	// by default; a broker configured wider may allow more.
	if c.SessionTimeout < time.Second || c.SessionTimeout > 30*time.Minute {
		problems = append(problems, "session timeout (EXO_DISPATCHER_SESSION_TIMEOUT) must be between 1s and 30m (the broker allows 6s to 30m by default)")
	}
	if strings.TrimSpace(c.InstanceID) != c.InstanceID || len(c.InstanceID) > 200 {
		problems = append(problems, "instance id (EXO_DISPATCHER_INSTANCE_ID) must have no surrounding spaces and at most 200 characters")
	}
	if c.Workers < 1 || c.EndpointConcurrency < 1 {
		problems = append(problems, "workers and endpoint concurrency must be >= 1")
	}
	if !(c.EndpointRate >= 1 && c.EndpointRate <= 10000) {
		problems = append(problems, "endpoint rate (EXO_DISPATCHER_ENDPOINT_RATE) must be between 1 and 10000 per second")
	}
	for i, t := range c.Tiers {
		if t < 100*time.Millisecond || (i > 0 && t <= c.Tiers[i-1]) {
			problems = append(problems, "retry tiers must be >= 100ms and increasing")
			break
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("dispatcher: invalid config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Dispatcher delivers alerts to endpoints.
type Dispatcher struct {
	cfg           Config
	log           *slog.Logger
	client        *http.Client
	endpoints     *ktable.Table[schemas.EndpointRecord]
	attempts      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	lanes         *lanes
	workers       chan struct{} // the pool: one slot per HTTP attempt in flight
	shortCircuits prometheus.Counter
	deferred      *prometheus.CounterVec // by class
	retries       *prometheus.CounterVec // by tier
	deadLetters   *prometheus.CounterVec // by reason
	inFlight      prometheus.Gauge
}

// Run runs the dispatcher until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	guard, err := ssrf.New(cfg.Allowlist)
	if err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	log := cfg.Log.With("component", "dispatcher")
	d := &Dispatcher{
		cfg: cfg, log: log, lanes: newLanes(&cfg), workers: make(chan struct{}, cfg.Workers),
		shortCircuits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_dispatcher_short_circuits_total", Help: "Deliveries sent to the next tier without an attempt because the endpoint's circuit was open.",
		}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_dispatcher_deferred_total", Help: "Deliveries sent to a retry tier without an attempt, by class: circuit_open (the endpoint's breaker is open; counts as an attempt) or endpoint_backlog (its queue was shed when the source was full; our own back-pressure, not an attempt, up to 50 deferrals per attempt).",
		}, []string{"class"}),
		client: newHTTPClient(guard),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_dispatcher_attempts_total", Help: "Delivery attempts by outcome.",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "exo_dispatcher_attempt_seconds", Help: "Latency of delivery attempts.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_dispatcher_retries_total", Help: "Deliveries sent to a retry tier (after a failed attempt, or short-circuited by an open breaker), by tier.",
		}, []string{"tier"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_dispatcher_dead_letters_total", Help: "Deliveries sent to the DLQ, by reason: exhausted (out of attempts), undecodable (not a valid delivery record: poison, set aside at once), or the class of a permanent failure (endpoint_inactive, ssrf_refused, secret, render, bad_url).",
		}, []string{"reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "exo_dispatcher_deliveries_in_flight", Help: "Delivery records fetched and not finished: waiting for their endpoint's lane, being attempted, or waiting for Kafka to take their outcome.",
		}),
	}
	for _, t := range cfg.Tiers {
		d.retries.WithLabelValues(TierName(t))
	}
	for _, reason := range []string{deadExhausted, deadUndecodable} {
		d.deadLetters.WithLabelValues(reason)
	}
	breakersOpen := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "exo_dispatcher_breakers_open", Help: "Endpoints whose circuit breaker is open or half-open.",
	}, func() float64 { return float64(d.lanes.open()) })
	for _, class := range []string{deferCircuitOpen, deferBacklog} {
		d.deferred.WithLabelValues(class)
	}
	for _, c := range []prometheus.Collector{d.attempts, d.latency, d.shortCircuits, d.deferred, d.retries, d.deadLetters, d.inFlight, d.lanes.opens, breakersOpen} {
		if err := cfg.Registerer.Register(c); err != nil {
			return fmt.Errorf("dispatcher: register metrics: %w", err)
		}
	}
	base := append(kafka.ClientOpts(cfg.Brokers, log), cfg.KafkaOpts...)
	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("dispatcher: kafka client: %w", err)
	}
	specs := cfg.Topics.Specs(cfg.Partitions)
	for _, t := range cfg.Tiers {
		specs = append(specs, kafka.Spec{Name: TierTopic(cfg.Topics, t), Partitions: cfg.Partitions, Configs: map[string]*string{"cleanup.policy": ptr("delete")}})
	}
	// Started while Kafka is unreachable (restarted during an outage), the
	// dispatcher waits for it, not ready, rather than exiting: only a
	// permanent error (see kafka.Fatal) ends Run here.
	err = kafka.Wait(ctx, log, "dispatcher: create topics", func(ctx context.Context) error {
		return kafka.EnsureTopics(ctx, kadm.NewClient(admCl), specs)
	})
	if err == nil {
		d.warnUnconfiguredTiers(ctx, kadm.NewClient(admCl))
	}
	admCl.Close()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return err
	}

	d.endpoints = ktable.New(cfg.Topics.Endpoints, func(b []byte) (schemas.EndpointRecord, error) {
		var e schemas.EndpointRecord
		err := json.Unmarshal(b, &e)
		return e, err
	}, nil, log)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tableErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		if err := d.endpoints.Run(ctx, base); err != nil {
			tableErr <- err
			cancel()
		}
	})
	select {
	case <-d.endpoints.Ready():
	case <-ctx.Done():
		select {
		case err := <-tableErr:
			return err
		default:
			return nil
		}
	}
	if cfg.Ready != nil {
		close(cfg.Ready)
	}
	// The main topic and every tier are consumed separately, each in its own
	// group: a tier waiting for its head to come due never holds back the
	// main topic or another tier.
	srcErr := make(chan error, len(cfg.Tiers)+1)
	var srcs sync.WaitGroup
	startSource := func(topic, group string, tierDelay time.Duration) {
		srcs.Go(func() {
			if err := d.consume(ctx, base, topic, group, tierDelay); err != nil {
				srcErr <- err
				cancel()
			}
		})
	}
	startSource(cfg.Topics.Deliveries, cfg.Group, 0)
	for _, t := range cfg.Tiers {
		startSource(TierTopic(cfg.Topics, t), cfg.Group+".retry."+TierName(t), t)
	}
	srcs.Wait()
	select {
	case err := <-srcErr:
		return err
	default:
		return nil
	}
}

// warnUnconfiguredTiers names retry tier topics that exist but are not
// configured (EXO_RETRY_TIERS changed): nobody consumes them, so retries
// still in them wait until the tier is configured again.
func (d *Dispatcher) warnUnconfiguredTiers(ctx context.Context, adm *kadm.Client) {
	listed, err := adm.ListTopics(ctx)
	if err != nil {
		return
	}
	configured := map[string]bool{}
	for _, t := range d.cfg.Tiers {
		configured[TierTopic(d.cfg.Topics, t)] = true
	}
	prefix := d.cfg.Topics.Deliveries + ".retry."
	for _, name := range listed.Names() {
		if strings.HasPrefix(name, prefix) && !configured[name] {
			d.log.Warn("a retry tier topic is not configured: retries in it are not delivered until its tier is configured again (EXO_RETRY_TIERS)", "topic", name)
		}
	}
}

func newHTTPClient(guard *ssrf.Guard) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: guard.Control}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil, // a proxy would bypass the dial-time guard
			DialContext:         dialer.DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256, // many endpoints may share one host (e.g. hooks.slack.com)
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 5 * time.Second,
			// A hostile endpoint gets 64 KiB of answer headers, not Go's 10 MiB.
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// attempt is what one HTTP attempt gave.
type attempt struct {
	outcome    string
	statusCode int
	errClass   string
	err        string
	excerpt    string
	latency    time.Duration
	retryAfter time.Duration // from a 429 or 503 answer
}

// Classes of deliveries deferred to a retry tier without an attempt.
const (
	// deferCircuitOpen: the endpoint's circuit breaker is open. It counts as
	// an attempt (a result record says why): the endpoint did fail, and one
	// that never recovers ends in the DLQ after max_attempts like any other.
	deferCircuitOpen = "circuit_open"
	// deferBacklog: the source reached MaxInFlight and this endpoint had the
	// longest queue (see keyQueues.shed). Our own back-pressure, not the
	// endpoint's failure: it does not count as an attempt and writes no
	// result (deferBacklog), however often it happens: a healthy endpoint
	// never loses an alert to our own back-pressure.
	deferBacklog = "endpoint_backlog"
)

// WarnDeferrals: every WarnDeferrals-th backlog deferral of one delivery is
// logged at WARN (the others at DEBUG): an endpoint whose configured rate
// stays below its traffic keeps its deliveries waiting; the operator should
// hear of it, but they are not the endpoint's failures and are not
// dead-lettered for it.
const WarnDeferrals = 50

// handle delivers one record and returns the outcome records to produce.
// deferClass, when set, defers it to a retry tier without an attempt; ahead
// is then how many records of its endpoint were queued before it. alive
// reports whether the record's partition is still this consumer's: a
// record of a revoked partition is not attempted (its next owner does it).
func (d *Dispatcher) handle(ctx context.Context, r *kgo.Record, deferClass string, ahead int, alive func() bool) []*kgo.Record {
	if !alive() {
		return nil
	}
	// Poison: a record that is not a valid delivery (not JSON, or not what
	// delivery.schema.json describes) can never succeed. It is set aside on
	// the DLQ with the reason, counted and logged with its coordinates, and
	// the partition moves on; it gets no result, whose ids would be garbage.
	dp, err := schemas.DecodeDelivery(r.Value)
	if err != nil {
		reason := err.Error()
		if len(reason) > 300 {
			reason = reason[:300] + "…"
		}
		d.log.Error("invalid delivery record set aside on the DLQ", "topic", r.Topic, "partition", r.Partition,
			"offset", r.Offset, "err", reason)
		d.deadLetters.WithLabelValues(deadUndecodable).Inc()
		return []*kgo.Record{d.dlqRecord(r, "undecodable: not a valid delivery record: "+strings.ToValidUTF8(reason, "?"), attemptOf(r)-1)}
	}
	del := *dp
	attemptNo := attemptOf(r)
	key := schemas.TenantKey(del.TenantID, del.EndpointID)
	var rate float64 // 0: the operator's default
	if ep, ok := d.endpoints.Get(key); ok {
		rate = float64(ep.RateLimitPerSecond)
	}
	l := d.lanes.get(key, rate)
	if deferClass == deferBacklog {
		return d.deferBacklog(r, &del, attemptNo, l, ahead)
	}
	if deferClass == "" && !d.lanes.allow(l) {
		deferClass = deferCircuitOpen
	}
	if deferClass == deferCircuitOpen {
		// No slot, no token: deferring costs the endpoint nothing.
		d.shortCircuits.Inc()
		d.deferred.WithLabelValues(deferClass).Inc()
		a := attempt{outcome: schemas.OutcomeRetry, errClass: deferClass,
			err:        "not attempted: the endpoint failed repeatedly and its circuit is open",
			retryAfter: d.lanes.openFor(l), // due when a probe may go out at the earliest
		}
		return d.outcome(r, &del, attemptNo, newDeliveryID(), a)
	}
	if !d.lanes.acquire(ctx, l) {
		return nil
	}
	defer d.lanes.release(l)
	select {
	case d.workers <- struct{}{}:
	case <-ctx.Done():
		return nil
	}
	defer func() { <-d.workers }()
	if !alive() {
		return nil
	}
	deliveryID := newDeliveryID()
	a := d.attempt(ctx, &del, deliveryID)
	if ctx.Err() != nil {
		return nil
	}
	if a.statusCode == 0 && a.outcome == schemas.OutcomeDead && a.errClass != "ssrf_refused" {
		// Nothing was sent (endpoint gone, a secret or URL that does not
		// open): says nothing of the endpoint's health.
		d.lanes.abandon(l)
	} else {
		d.lanes.report(l, a.outcome != schemas.OutcomeRetry)
	}
	d.attempts.WithLabelValues(a.outcome).Inc()
	d.latency.WithLabelValues(a.outcome).Observe(a.latency.Seconds())
	return d.outcome(r, &del, attemptNo, deliveryID, a)
}

// deferBacklog sends r to a retry tier, without an attempt, due when its
// endpoint's lane should have worked through the ahead records before it
// at its rate. The record keeps its attempt number and gets no result: our
// own back-pressure is not the endpoint's failure and must not use up the
// rule's attempts, however many times it happens (the wait follows the
// queue, so a delivery hops only while its endpoint's backlog lasts).
func (d *Dispatcher) deferBacklog(r *kgo.Record, del *schemas.DeliveryRecord, attemptNo int, l *lane, ahead int) []*kgo.Record {
	d.deferred.WithLabelValues(deferBacklog).Inc()
	wait := time.Duration(float64(ahead+1) / l.rateOf() * float64(time.Second))
	n := deferralsOf(r) + 1
	tierIdx, due := nextTier(d.cfg.Tiers, 1, wait, time.Now())
	kv := append(origin(r), schemas.HeaderAttempt, strconv.Itoa(attemptNo), schemas.HeaderNotBefore, strconv.FormatInt(due.UnixMilli(), 10),
		schemas.HeaderDeferrals, strconv.Itoa(n))
	level := slog.LevelDebug
	if n%WarnDeferrals == 0 {
		level = slog.LevelWarn // its endpoint's rate stays below its traffic
	}
	d.log.Log(context.Background(), level, "delivery deferred: its endpoint's queue is full", "alert_id", del.AlertID, "tenant_id", del.TenantID,
		"endpoint_id", del.EndpointID, "deferrals", n, "due_in_ms", time.Until(due).Milliseconds())
	return []*kgo.Record{{Topic: TierTopic(d.cfg.Topics, d.cfg.Tiers[tierIdx]), Key: r.Key, Value: r.Value, Headers: withHeaders(r, kv...)}}
}

// deferralsOf reads how many backlog deferrals a record has had since its
// last attempt.
func deferralsOf(r *kgo.Record) int {
	n, err := strconv.Atoi(kafka.Header(r, schemas.HeaderDeferrals))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// outcome builds the records that follow attempt attemptNo of r: its result,
// and a retry or dead-letter record.
func (d *Dispatcher) outcome(r *kgo.Record, del *schemas.DeliveryRecord, attemptNo int, deliveryID string, a attempt) []*kgo.Record {
	maxAttempts := del.MaxAttempts
	if maxAttempts < 1 {
		maxAttempts = schemas.DefaultMaxAttempts
	}
	deadReason := a.errClass // a permanent failure's class
	if a.outcome == schemas.OutcomeRetry && attemptNo >= maxAttempts {
		a.outcome = schemas.OutcomeDead // out of attempts: dead-lettered with the last error
		deadReason = deadExhausted
	}
	res := schemas.ResultRecord{
		AlertID: del.AlertID, DeliveryID: deliveryID, TenantID: del.TenantID, RuleID: del.RuleID,
		EndpointID: del.EndpointID, Attempt: attemptNo, RuleVersion: del.RuleVersion, Outcome: a.outcome, StatusCode: a.statusCode,
		LatencyMS: a.latency.Milliseconds(), ErrorClass: a.errClass, Error: a.err,
		ResponseExcerpt: a.excerpt, AttemptedAt: time.Now().UTC(),
	}
	value, _ := json.Marshal(res)
	out := []*kgo.Record{{Topic: d.cfg.Topics.DeliveryResults, Key: schemas.RecordKey(del.TenantID, del.RuleID), Value: value}}
	switch a.outcome {
	case schemas.OutcomeDead:
		d.deadLetters.WithLabelValues(deadReason).Inc()
		out = append(out, d.dlqRecord(r, lastError(a), attemptNo))
	case schemas.OutcomeRetry:
		tierIdx, due := nextTier(d.cfg.Tiers, attemptNo, a.retryAfter, time.Now())
		d.retries.WithLabelValues(TierName(d.cfg.Tiers[tierIdx])).Inc()
		kv := append(origin(r), schemas.HeaderAttempt, strconv.Itoa(attemptNo+1), schemas.HeaderNotBefore, strconv.FormatInt(due.UnixMilli(), 10),
			schemas.HeaderLastErrorClass, a.errClass, schemas.HeaderLastError, lastError(a), schemas.HeaderDeferrals, "0")
		out = append(out, &kgo.Record{Topic: TierTopic(d.cfg.Topics, d.cfg.Tiers[tierIdx]), Key: r.Key, Value: r.Value, Headers: withHeaders(r, kv...)})
	}
	d.log.Info("delivery attempt", "alert_id", del.AlertID, "tenant_id", del.TenantID, "endpoint_id", del.EndpointID,
		"outcome", a.outcome, "status", a.statusCode, "latency_ms", a.latency.Milliseconds())
	return out
}

// Reasons of exo_dispatcher_dead_letters_total besides the classes of
// permanent failures.
const (
	deadExhausted   = "exhausted"
	deadUndecodable = "undecodable"
)

func (d *Dispatcher) dlqRecord(r *kgo.Record, lastErr string, attempts int) *kgo.Record {
	kv := append(origin(r), schemas.HeaderLastError, lastErr, schemas.HeaderAttempts, strconv.Itoa(attempts))
	return &kgo.Record{Topic: d.cfg.Topics.DeliveriesDLQ, Key: r.Key, Value: r.Value, Headers: withHeaders(r, kv...)}
}

// lastError is the class and message of a failed attempt, without secrets.
func lastError(a attempt) string {
	s := a.errClass
	if a.err != "" {
		s += ": " + a.err
	}
	return s
}

func newDeliveryID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "dlv_" + hex.EncodeToString(b)
}

// attempt performs one HTTP attempt.
func (d *Dispatcher) attempt(ctx context.Context, del *schemas.DeliveryRecord, deliveryID string) attempt {
	ep, ok := d.endpoints.Get(schemas.TenantKey(del.TenantID, del.EndpointID))
	if !ok {
		// An endpoint created a moment ago may not have reached this table
		// yet: catch up with the topic before calling it gone.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := d.endpoints.Sync(sctx); err != nil && ctx.Err() == nil {
			d.log.Warn("endpoint table not caught up", "err", err)
		}
		cancel()
		ep, ok = d.endpoints.Get(schemas.TenantKey(del.TenantID, del.EndpointID))
	}
	if !ok || !ep.IsActive {
		return attempt{outcome: schemas.OutcomeDead, errClass: "endpoint_inactive", err: "endpoint deleted or inactive"}
	}
	aad := schemas.SecretAAD(ep.TenantID, ep.ID)
	secret, err := d.cfg.Keyring.Open(ep.Secret, aad)
	if err != nil {
		return attempt{outcome: schemas.OutcomeDead, errClass: "secret", err: err.Error()}
	}
	secrets := []string{secret}
	if ep.PreviousSecret != nil && ep.PreviousSecretExpiresAt != nil && time.Now().Before(*ep.PreviousSecretExpiresAt) {
		// Rotation grace period: the old secret signs too, so receivers that
		// still hold it keep verifying.
		if prev, err := d.cfg.Keyring.Open(*ep.PreviousSecret, aad); err == nil {
			secrets = append(secrets, prev)
		} else {
			d.log.Warn("previous secret does not open; signing with the current one only", "endpoint_id", ep.ID, "err", err)
		}
	}
	msg, err := render(ep.Kind, del, secret, d.cfg.Links)
	if err != nil {
		return attempt{outcome: schemas.OutcomeDead, errClass: "render", err: err.Error()}
	}
	body := msg.body
	target := ep.TargetURL
	if ep.TargetURLSealed != nil {
		// The URL carries a credential (Slack): the snapshot shows a masked
		// form and seals the real one.
		if target, err = d.cfg.Keyring.Open(*ep.TargetURLSealed, schemas.TargetURLAAD(ep.TenantID, ep.ID)); err != nil {
			return attempt{outcome: schemas.OutcomeDead, errClass: "secret", err: "target url: " + err.Error()}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return attempt{outcome: schemas.OutcomeDead, errClass: "bad_url", err: "target URL does not parse"}
	}
	// What a receiver might echo back that must not reach the result (and
	// from there Postgres and the history API).
	confidential := append(slices.Clone(secrets), urlSecrets(req.URL, ep.TargetURLSealed != nil)...)
	for name, sealed := range ep.Headers {
		v, err := d.cfg.Keyring.Open(sealed, schemas.HeaderAAD(ep.TenantID, ep.ID, name))
		if err != nil {
			return attempt{outcome: schemas.OutcomeDead, errClass: "secret", err: "header " + name + ": " + err.Error()}
		}
		req.Header.Set(name, v)
		confidential = append(confidential, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "exosphere-alerts/"+Version)
	req.Header.Set("X-Exosphere-Event", del.EventType)
	req.Header.Set("X-Exosphere-Delivery", deliveryID)
	if msg.sign {
		if err := signature.Sign(req.Header, secrets, del.AlertID, time.Now(), body); err != nil {
			return attempt{outcome: schemas.OutcomeDead, errClass: "secret", err: err.Error()}
		}
	}
	actx, cancel := context.WithTimeout(ctx, d.cfg.AttemptTimeout)
	defer cancel()
	start := time.Now()
	resp, err := d.client.Do(req.WithContext(actx))
	lat := time.Since(start)
	if err != nil {
		class, outcome := classify(err), schemas.OutcomeRetry
		if class == "ssrf_refused" {
			outcome = schemas.OutcomeDead // permanent: retrying cannot change where the host points
		}
		return attempt{outcome: outcome, errClass: class, err: redact(err), latency: lat}
	}
	excerpt := readExcerpt(resp.Body, confidential)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	a := attempt{statusCode: resp.StatusCode, excerpt: excerpt, latency: lat}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		a.outcome = schemas.OutcomeDelivered
	case resp.StatusCode == http.StatusGone || resp.StatusCode == http.StatusNotFound:
		a.outcome, a.errClass = schemas.OutcomeEndpointGone, "http_"+strconv.Itoa(resp.StatusCode)
	default:
		a.outcome, a.errClass = schemas.OutcomeRetry, "http_"+strconv.Itoa(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		a.retryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return a
}

// readExcerpt reads the start of an answer and redacts the confidential
// values from it. It reads past the excerpt by the longest value: a value
// that starts within the excerpt is then read whole and redacted, not cut
// by the limit and left in part.
func readExcerpt(body io.Reader, confidential []string) string {
	longest := 0
	for _, v := range confidential {
		longest = max(longest, len(v))
	}
	b, _ := io.ReadAll(io.LimitReader(body, int64(MaxResponseExcerpt+longest)))
	return excerptOf(redactSecrets(b, confidential))
}

// minAnywhere is the length from which a confidential value is redacted
// wherever it occurs in an answer. A shorter one (a 4-digit PIN, a header
// "X-Team: ops") is redacted only where it stands as a whole token, not
// inside a longer word or number: the receiver that echoes it echoes it
// between delimiters (a header line, quotes, a query), while replacing
// every "1" or "ops" inside other words would leave the excerpt unreadable.
const minAnywhere = 6

// redactSecrets replaces, in an answer, every occurrence of the values
// (secrets, header values, URL credentials) with [redacted], whatever
// their length (see minAnywhere): a receiver that echoes its request must
// not put them into the delivery history.
func redactSecrets(b []byte, values []string) []byte {
	var olds []string
	for _, v := range values {
		if v == "" {
			continue
		}
		olds = append(olds, v)
		if raw, ok := strings.CutPrefix(v, "whsec_"); ok && raw != "" {
			olds = append(olds, raw)
		}
	}
	// Longest first: a value containing another is replaced whole.
	slices.SortFunc(olds, func(a, b string) int { return len(b) - len(a) })
	for _, o := range olds {
		if len(o) >= minAnywhere {
			b = bytes.ReplaceAll(b, []byte(o), redacted)
			continue
		}
		b = replaceTokens(b, []byte(o))
	}
	return b
}

var redacted = []byte("[redacted]")

// replaceTokens replaces the occurrences of v in b that are not part of a
// longer word: a word character (letter, digit) at an edge of v may not
// have a word character beside it.
func replaceTokens(b, v []byte) []byte {
	first, _ := utf8.DecodeRune(v)
	last, _ := utf8.DecodeLastRune(v)
	var out []byte
	rest := b
	for {
		i := bytes.Index(rest, v)
		if i < 0 {
			break
		}
		before, _ := utf8.DecodeLastRune(rest[:i])
		if len(out) > 0 && i == 0 {
			before, _ = utf8.DecodeLastRune(out)
		}
		after, _ := utf8.DecodeRune(rest[i+len(v):])
		whole := !(isWord(first) && i+len(out) > 0 && isWord(before)) && !(isWord(last) && i+len(v) < len(rest) && isWord(after))
		if whole {
			out = append(append(out, rest[:i]...), redacted...)
		} else {
			out = append(out, rest[:i+len(v)]...)
		}
		rest = rest[i+len(v):]
	}
	if out == nil {
		return b
	}
	return append(out, rest...)
}

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// urlSecrets are the parts of a target URL that may be credentials: query
// values, user info and the whole path always (a receiver echoing its
// request line shows them); each path segment too when the URL was sealed
// for carrying a credential in its path (Slack, Discord, Teams tokens).
func urlSecrets(u *url.URL, sealed bool) []string {
	out := []string{u.String(), u.EscapedPath(), u.Path, u.RequestURI()}
	for _, vs := range u.Query() {
		out = append(out, vs...)
	}
	if u.User != nil {
		p, _ := u.User.Password()
		out = append(out, u.User.Username(), p)
	}
	if sealed {
		out = append(out, strings.Split(u.Path, "/")...)
	}
	return out
}

// excerptOf turns the start of an answer into valid UTF-8 of at most
// MaxResponseExcerpt bytes: a replacement character is 3 bytes, so one for a
// rune cut by the read limit (or for stray bytes) would make it longer.
func excerptOf(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	for len(s) > MaxResponseExcerpt {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ssrf.ErrRefused):
		return "ssrf_refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return "dns"
		}
		return "connection"
	}
}

// redact removes the URL (which may carry tokens in its path or query) from an error.
func redact(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " [redacted url]: " + ue.Err.Error()
	}
	return err.Error()
}

func ptr(s string) *string { return &s }

// holdUntilDue returns, in order, the records of a tier fetch to handle now:
// per partition, those due and those to hop (in hops), up to the first
// record to wait for; it rewinds the partition to that record, pauses it,
// and resumes it when the record comes due (holdAction).
func (d *Dispatcher) holdUntilDue(ctx context.Context, cl *kgo.Client, topic string, tierDelay time.Duration, fetches kgo.Fetches) ([]*kgo.Record, map[*kgo.Record]bool) {
	now := time.Now()
	var recs []*kgo.Record
	hops := map[*kgo.Record]bool{}
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		for _, r := range p.Records {
			verdict, until := holdAction(notBefore(r), r.Timestamp, now, tierDelay)
			if verdict != holdPause {
				recs = append(recs, r)
				hops[r] = verdict == holdHop
				continue
			}
			part := p.Partition
			cl.PauseFetchPartitions(map[string][]int32{topic: {part}})
			cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: {part: {Epoch: -1, Offset: r.Offset}}})
			time.AfterFunc(until.Sub(now), func() {
				if ctx.Err() == nil {
					cl.ResumeFetchPartitions(map[string][]int32{topic: {part}})
				}
			})
			break
		}
	})
	return recs, hops
}
