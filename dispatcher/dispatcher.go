package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/internal/rollout"
	"github.com/exospherehost/exo-alerts/internal/ssrf"
	"github.com/exospherehost/exo-alerts/schemas"
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
	// UnhealthyAfter: an endpoint whose breaker has stayed open this long
	// while alerts failed is reported on endpoint-health, and healthy when
	// it closes (EXO_DISPATCHER_UNHEALTHY_AFTER; default 15m).
	UnhealthyAfter time.Duration
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
	if c.UnhealthyAfter == 0 {
		c.UnhealthyAfter = 15 * time.Minute
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
	if c.UnhealthyAfter < 100*time.Millisecond || c.UnhealthyAfter > 24*time.Hour {
		problems = append(problems, "unhealthy after (EXO_DISPATCHER_UNHEALTHY_AFTER) must be between 100ms and 24h")
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
	cfg       Config
	log       *slog.Logger
	transport *http.Transport // attempts go through send (attempt.go)
	endpoints *ktable.Table[schemas.EndpointRecord]
	// rollout says which tenants are served: a delivery of a tenant
	// switched off is not sent but dead-lettered (tenant_disabled).
	rollout *rollout.Table
	// rolloutSynced is when (unix ns) the last completed catch-up of the
	// rollout table started (servedFor).
	rolloutSynced atomic.Int64
	attempts      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	byOutcome     map[string]outcomeMetrics // attempts' and latency's children, read only once built
	lanes         *lanes
	workers       chan struct{} // the pool: one slot per HTTP attempt in flight
	shortCircuits prometheus.Counter
	deferred      *prometheus.CounterVec // by class
	retries       *prometheus.CounterVec // by tier
	deadLetters   *prometheus.CounterVec // by reason
	inFlight      prometheus.Gauge
	health        *health
	opened        opened // attempt.go
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
		transport: newTransport(guard),
	}
	if err := d.newMetrics(); err != nil {
		return err
	}
	if err := d.newHealth(); err != nil {
		return fmt.Errorf("dispatcher: register metrics: %w", err)
	}
	base := append(kafka.ClientOpts(cfg.Brokers, log), cfg.KafkaOpts...)
	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("dispatcher: kafka client: %w", err)
	}
	specs := cfg.Topics.Specs(cfg.Partitions)
	tierTopics := make([]string, 0, len(cfg.Tiers))
	for _, t := range cfg.Tiers {
		tierTopics = append(tierTopics, TierTopic(cfg.Topics, t))
		specs = append(specs, kafka.Spec{Name: TierTopic(cfg.Topics, t), Partitions: cfg.Partitions, Configs: tierTopicConfigs()})
	}
	// Started while Kafka is unreachable (restarted during an outage), the
	// dispatcher waits for it, not ready, rather than exiting: only a
	// permanent error (see kafka.Fatal) ends Run here.
	err = kafka.Wait(ctx, log, "dispatcher: create topics", func(ctx context.Context) error {
		adm := kadm.NewClient(admCl)
		if err := createTierTopics(ctx, adm, cfg.Partitions, tierTopics); err != nil {
			return err
		}
		return kafka.EnsureTopics(ctx, adm, specs)
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
	d.rollout = rollout.NewTable(cfg.Topics.Tenants, log)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tableErr := make(chan error, 2)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, run := range []func(context.Context, []kgo.Opt) error{d.endpoints.Run, d.rollout.Run} {
		wg.Go(func() {
			if err := run(ctx, base); err != nil {
				tableErr <- err
				cancel()
			}
		})
	}
	for _, ready := range []<-chan struct{}{d.endpoints.Ready(), d.rollout.Ready()} {
		select {
		case <-ready:
		case <-ctx.Done():
			select {
			case err := <-tableErr:
				return err
			default:
				return nil
			}
		}
	}
	// Endpoint health reports: acks from all in-sync replicas, sent
	// without waiting (health.go).
	healthCl, err := kgo.NewClient(append(slices.Clone(base), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return fmt.Errorf("dispatcher: health producer: %w", err)
	}
	defer func() {
		fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer fcancel()
		_ = healthCl.Flush(fctx)
		healthCl.Close()
	}()
	d.health.cl = healthCl
	wg.Go(func() { d.watchHealth(ctx) })
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

// tierTopicConfigs is the configuration of every retry tier topic.
func tierTopicConfigs() map[string]*string {
	return map[string]*string{"cleanup.policy": ptr("delete")}
}

// createTierTopics creates the retry tier topics that do not exist yet, all
// in one request. kafka.EnsureTopics, which follows, asks for one topic per
// request, and a broker takes about 30 ms to create one: with the eight
// default tiers missing (a new cluster, a new topic prefix, every op of
// BenchmarkDispatcherThroughput) that was 0.25 s of the dispatcher's start,
// against 0.03-0.05 s for the eight in one request. The answer for each
// topic is not looked at: what this request did not create (or found with
// another policy), kafka.EnsureTopics creates or reports. Only a request
// that got no answer (Kafka unreachable) is returned, so that the caller
// waits and tries again rather than sending the next request into the same
// outage.
func createTierTopics(ctx context.Context, adm *kadm.Client, partitions int32, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	if _, err := adm.CreateTopics(ctx, partitions, -1, tierTopicConfigs(), topics...); err != nil {
		return fmt.Errorf("dispatcher: create retry tier topics: %w", err)
	}
	return nil
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
// clock bounds the attempt (its worker's; it may be nil with deferClass
// deferBacklog, which makes none).
func (d *Dispatcher) handle(ctx context.Context, clock *attemptClock, r *kgo.Record, deferClass string, ahead int, alive func() bool) []*kgo.Record {
	if !alive() {
		return nil
	}
	// Poison: a record that is not a valid delivery (not JSON, or not what
	// delivery.schema.json describes) can never succeed. It is set aside on
	// the DLQ with the reason, counted and logged with its coordinates, and
	// the partition moves on; it gets no result, whose ids would be garbage.
	// The payload's contents are not validated again here (its producers
	// made it valid; see schemas.DecodeDeliveryEnvelope): it is checked to
	// be a well-formed object and sent as it is, or decoded by render.
	del, err := schemas.DecodeDeliveryEnvelope(r.Value)
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
	attemptNo := attemptOf(r)
	if !d.servedFor(ctx, r, del.TenantID) {
		return d.tenantDisabled(r, &del, attemptNo)
	}
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
		d.noteHealth(key, l, del.RuleID, true, "", nil)
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
	if !d.rollout.Served(del.TenantID) {
		// Switched off while it waited for its endpoint's slot or rate.
		d.lanes.abandon(l)
		return d.tenantDisabled(r, &del, attemptNo)
	}
	deliveryID := newDeliveryID()
	a := d.attempt(ctx, clock, &del, key, deliveryID)
	if ctx.Err() != nil {
		return nil
	}
	if a.statusCode == 0 && a.outcome == schemas.OutcomeDead && a.errClass != "ssrf_refused" {
		// Nothing was sent (endpoint gone, a secret or URL that does not
		// open): says nothing of the endpoint's health.
		d.lanes.abandon(l)
	} else {
		healed := d.lanes.report(l, a.outcome != schemas.OutcomeRetry)
		d.noteHealth(key, l, del.RuleID, a.outcome == schemas.OutcomeRetry, a.errClass, healed)
	}
	d.countAttempt(a.outcome, a.latency)
	return d.outcome(r, &del, attemptNo, deliveryID, a)
}

// servedFor reports whether the rollout serves tenant, for its delivery
// r. The table tails the tenants topic (within 200 ms); a tenant that looks
// switched off may have been switched on just before the processor made r,
// so the table first catches up with the topic (ktable.Sync), unless a
// catch-up that started after r was produced has completed already: a
// backlog of a tenant switched off costs one catch-up, not one per record.
func (d *Dispatcher) servedFor(ctx context.Context, r *kgo.Record, tenant string) bool {
	if d.rollout.Served(tenant) {
		return true
	}
	if d.rolloutSynced.Load() <= r.Timestamp.UnixNano() {
		start := time.Now().UnixNano()
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := d.rollout.Sync(sctx)
		cancel()
		switch {
		case err == nil:
			for last := d.rolloutSynced.Load(); last < start && !d.rolloutSynced.CompareAndSwap(last, start); last = d.rolloutSynced.Load() {
			}
		case ctx.Err() == nil:
			d.log.Warn("rollout table not caught up; deciding with what is loaded", "err", err)
		}
	}
	return d.rollout.Served(tenant)
}

// tenantDisabled sets aside a delivery of a tenant the rollout does not
// serve (switched off after the alert was made): nothing is sent. It goes
// to the DLQ with a result that says why (class tenant_disabled), whatever
// its tier or attempt, so it shows in the tenant's dead letters and can be
// replayed once the tenant is on again, rather than being lost.
func (d *Dispatcher) tenantDisabled(r *kgo.Record, del *schemas.DeliveryRecord, attemptNo int) []*kgo.Record {
	return d.outcome(r, del, attemptNo, newDeliveryID(), attempt{outcome: schemas.OutcomeDead, errClass: deadTenantDisabled,
		err: "not sent: the tenant is disabled (rollout)"})
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
	if ctx := context.Background(); d.log.Enabled(ctx, level) { // a shed backlog defers thousands at once
		d.log.Log(ctx, level, "delivery deferred: its endpoint's queue is full", "alert_id", del.AlertID, "tenant_id", del.TenantID,
			"endpoint_id", del.EndpointID, "deferrals", n, "due_in_ms", time.Until(due).Milliseconds())
	}
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
	value, _ := res.AppendJSON(make([]byte, 0, 384)) // json.Marshal's bytes without reflection
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
	// A delivered attempt is logged at debug only: at info it was a line per
	// delivery, and exo_dispatcher_attempts_total{outcome="delivered"} (with
	// exo_dispatcher_attempt_seconds{outcome="delivered"} for the latency)
	// counts what it told. Failed attempts (retry, endpoint_gone, dead) stay
	// at info: operators look for them (docs/operations.md).
	level := slog.LevelInfo
	if a.outcome == schemas.OutcomeDelivered {
		level = slog.LevelDebug
	}
	if ctx := context.Background(); d.log.Enabled(ctx, level) {
		d.log.Log(ctx, level, "delivery attempt", "alert_id", del.AlertID, "tenant_id", del.TenantID, "endpoint_id", del.EndpointID,
			"outcome", a.outcome, "status", a.statusCode, "latency_ms", a.latency.Milliseconds())
	}
	return out
}

// Reasons of exo_dispatcher_dead_letters_total besides the classes of
// permanent failures.
const (
	deadExhausted   = "exhausted"
	deadUndecodable = "undecodable"
	// deadTenantDisabled: the rollout does not serve the delivery's tenant
	// (it was switched off after the alert was made); also the class of the
	// delivery's result.
	deadTenantDisabled = "tenant_disabled"
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

// newDeliveryID returns "dlv_" and 24 random hex digits, in one allocation.
func newDeliveryID() string {
	var raw [12]byte
	_, _ = rand.Read(raw[:])
	var b strings.Builder
	b.Grow(len("dlv_") + hex.EncodedLen(len(raw)))
	b.WriteString("dlv_")
	var h [24]byte
	hex.Encode(h[:], raw[:])
	b.Write(h[:])
	return b.String()
}

func ptr(s string) *string { return &s }
