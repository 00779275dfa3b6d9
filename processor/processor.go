package processor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/processor/condition"
	"github.com/exospherehost/exo-alerts/schemas"
)

// Config configures the processor.
type Config struct {
	Brokers []string
	Topics  kafka.Topics
	// Partitions is used when the processor creates missing topics.
	Partitions int32
	// Group is the consumer group of workflow-events.
	Group string
	// TransactionalID must be unique per running instance.
	TransactionalID string
	MaxEventBytes   int
	Log             *slog.Logger
	Registerer      prometheus.Registerer
	// Ready, if set, is closed once the rule and endpoint tables are loaded.
	Ready chan<- struct{}
}

func (c *Config) validate() error {
	var problems []string
	if len(c.Brokers) == 0 {
		problems = append(problems, "no Kafka brokers (KAFKA_BROKERS)")
	}
	if c.Topics.Events == "" {
		problems = append(problems, "no topic names")
	}
	if c.Partitions < 1 {
		problems = append(problems, "partitions must be >= 1")
	}
	if c.MaxEventBytes < 1024 {
		problems = append(problems, "max event bytes must be >= 1024")
	}
	if len(problems) > 0 {
		return fmt.Errorf("processor: invalid config: %s", strings.Join(problems, "; "))
	}
	return nil
}

func (c *Config) defaults() {
	if c.Topics.Events == "" {
		c.Topics = kafka.NewTopics(kafka.DefaultPrefix)
	}
	if c.Partitions == 0 {
		c.Partitions = 3
	}
	if c.Group == "" {
		c.Group = c.Topics.Prefix + "processor"
	}
	if c.TransactionalID == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.TransactionalID = fmt.Sprintf("%sprocessor-%s-%s", c.Topics.Prefix, host, hex.EncodeToString(b))
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = MaxEventBytes
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
}

type metrics struct {
	events     *prometheus.CounterVec
	deliveries prometheus.Counter
	condErrors prometheus.Counter
	txns       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_processor_events_total", Help: "Workflow events consumed, by outcome (matched, unmatched, invalid, ignored_type).",
		}, []string{"outcome"}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_processor_deliveries_total", Help: "Delivery records emitted.",
		}),
		condErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exo_processor_condition_errors_total", Help: "Conditions that failed at run time (treated as no match).",
		}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_processor_transactions_total", Help: "Kafka transactions ended, by result (committed, aborted).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.events, m.deliveries, m.condErrors, m.txns} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("processor: register metrics: %w", err)
		}
	}
	return m, nil
}

// Processor matches workflow events against alert rules.
type Processor struct {
	cfg        Config
	log        *slog.Logger
	m          *metrics
	rules      *ruleIndex
	rulesTable *ktable.Table[schemas.RuleRecord]
	endpoints  *ktable.Table[schemas.EndpointRecord]
}

// Run runs the processor until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return err
	}
	log := cfg.Log.With("component", "processor")
	p := &Processor{cfg: cfg, log: log, m: m, rules: newRuleIndex(log)}

	base := kafka.ClientOpts(cfg.Brokers, log)
	if err := ensureTopics(ctx, base, cfg); err != nil {
		return err
	}
	rulesTable := ktable.New(cfg.Topics.Rules, decodeRule, p.rules.apply, log)
	p.rulesTable = rulesTable
	p.endpoints = ktable.New(cfg.Topics.Endpoints, func(b []byte) (schemas.EndpointRecord, error) {
		var e schemas.EndpointRecord
		err := json.Unmarshal(b, &e)
		return e, err
	}, nil, log)
	for _, g := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "exo_processor_rules_active", Help: "Active alert rules the processor matches events against.",
		}, func() float64 { return float64(p.rules.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "exo_processor_endpoints", Help: "Webhook endpoints in the processor's table.",
		}, func() float64 { return float64(p.endpoints.Len()) }),
	} {
		if err := cfg.Registerer.Register(g); err != nil {
			return fmt.Errorf("processor: register metrics: %w", err)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, run := range []func(context.Context, []kgo.Opt) error{rulesTable.Run, p.endpoints.Run} {
		wg.Go(func() {
			if err := run(ctx, base); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	defer wg.Wait()
	defer cancel()

	// Rules ready before events.
	for _, ready := range []<-chan struct{}{rulesTable.Ready(), p.endpoints.Ready()} {
		select {
		case <-ready:
		case <-ctx.Done():
			return firstErr(errs)
		}
	}
	log.Info("rule and endpoint tables loaded", "rules", rulesTable.Len(), "endpoints", p.endpoints.Len())
	if cfg.Ready != nil {
		close(cfg.Ready)
	}
	if err := p.consume(ctx, base); err != nil {
		cancel()
		return err
	}
	return firstErr(errs)
}

func firstErr(errs chan error) error {
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func ensureTopics(ctx context.Context, base []kgo.Opt, cfg Config) error {
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("processor: kafka client: %w", err)
	}
	defer cl.Close()
	return kafka.EnsureTopics(ctx, kadm.NewClient(cl), cfg.Topics.Specs(cfg.Partitions))
}

// consume is the exactly-once loop: poll, process, produce, commit in one transaction.
func (p *Processor) consume(ctx context.Context, base []kgo.Opt) error {
	sess, err := kgo.NewGroupTransactSession(append(base,
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.Topics.Events),
		kgo.TransactionalID(p.cfg.TransactionalID),
		kgo.TransactionTimeout(30*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.SessionTimeout(10*time.Second),
	)...)
	if err != nil {
		return fmt.Errorf("processor: transact session: %w", err)
	}
	defer sess.Close()

	for {
		fetches := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fatalFetchErr(fetches); err != nil {
			return err
		}
		if fetches.NumRecords() == 0 {
			continue
		}
		p.syncTables(ctx)
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("processor: begin transaction: %w", err)
		}
		var (
			mu         sync.Mutex
			produceErr error
		)
		fetches.EachRecord(func(r *kgo.Record) {
			for _, out := range p.handle(r) {
				sess.Produce(ctx, out, func(_ *kgo.Record, err error) {
					if err != nil {
						mu.Lock()
						produceErr = errors.Join(produceErr, err)
						mu.Unlock()
					}
				})
			}
		})
		committed, err := sess.End(ctx, kgo.TransactionEndTry(produceErr == nil))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("processor: end transaction: %w", err)
		}
		if committed {
			p.m.txns.WithLabelValues("committed").Inc()
		} else {
			p.m.txns.WithLabelValues("aborted").Inc()
			p.log.Warn("transaction aborted; its records will be processed again", "produce_err", produceErr)
		}
	}
}

func fatalFetchErr(fetches kgo.Fetches) error {
	var fatal error
	fetches.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.Canceled) {
			return
		}
		if errors.Is(err, kgo.ErrClientClosed) {
			fatal = err
		}
	})
	if fatal != nil {
		return fmt.Errorf("processor: fetch: %w", fatal)
	}
	return nil
}

// handle turns one event record into the records to produce.
func (p *Processor) handle(r *kgo.Record) []*kgo.Record {
	ev, err := decodeEvent(r, p.cfg.MaxEventBytes)
	if err != nil {
		p.m.events.WithLabelValues("invalid").Inc()
		p.log.Warn("invalid workflow event sent to the invalid topic", "partition", r.Partition, "offset", r.Offset, "reason", err)
		return []*kgo.Record{p.invalidRecord(r, err)}
	}
	switch ev.Type {
	case schemas.TypeRunStarted, schemas.TypeRunSucceeded, schemas.TypeRunFailed:
	default:
		p.m.events.WithLabelValues("ignored_type").Inc()
		return nil
	}
	var out []*kgo.Record
	env := condition.NewEnv(ev)
	for _, ru := range p.rules.candidates(ev.TenantID, ev.Type) {
		ep, ok := p.endpoints.Get(ev.TenantID + "/" + ru.WebhookEndpointID)
		if !ok || !ep.IsActive {
			continue
		}
		match, err := ru.cond.Match(env)
		if err != nil {
			p.m.condErrors.Inc()
			p.log.Debug("condition failed at run time; no match", "rule_id", ru.ID, "err", err)
			continue
		}
		if !match {
			continue
		}
		rec, err := p.deliveryRecord(ev, ru)
		if err != nil {
			p.log.Error("build delivery", "rule_id", ru.ID, "err", err)
			continue
		}
		out = append(out, rec)
	}
	if len(out) > 0 {
		p.m.events.WithLabelValues("matched").Inc()
		p.m.deliveries.Add(float64(len(out)))
	} else {
		p.m.events.WithLabelValues("unmatched").Inc()
	}
	return out
}

func (p *Processor) invalidRecord(r *kgo.Record, reason error) *kgo.Record {
	headers := append([]kgo.RecordHeader{}, r.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: "exo-invalid-reason", Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: "exo-original-topic", Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: "exo-original-partition", Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: "exo-original-offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
	)
	return &kgo.Record{Topic: p.cfg.Topics.EventsInvalid, Key: r.Key, Value: r.Value, Headers: headers}
}

// deliveryRecord builds the delivery of rule ru for event ev.
func (p *Processor) deliveryRecord(ev *schemas.WorkflowEvent, ru *rule) (*kgo.Record, error) {
	alertID := AlertID(ev.TenantID, ru.ID, ev.ID)
	payload := schemas.WebhookPayload{
		Type:      ev.Type,
		Timestamp: ev.Time.UTC(),
		Data: schemas.PayloadData{
			AlertID:  alertID,
			TenantID: ev.TenantID,
			Rule:     schemas.RuleRef{ID: ru.ID, Name: ru.Name},
			Event:    schemas.EventRef{ID: ev.ID, Type: ev.Type, OccurredAt: ev.Time.UTC()},
			Workflow: ev.Data.Workflow,
			Run: schemas.PayloadRun{
				ID: ev.Data.Run.ID, Status: ev.Data.Run.Status, StartedAt: ev.Data.Run.StartedAt,
				FinishedAt: ev.Data.Run.FinishedAt, DurationMS: ev.Data.Run.DurationMS,
			},
			Labels: ev.Data.Labels,
		},
	}
	if payload.Data.Labels == nil {
		payload.Data.Labels = map[string]string{}
	}
	if e := ev.Data.Error; e != nil {
		payload.Data.Error = &schemas.PayloadError{Code: e.Code}
		if ru.IncludeErrorMessage {
			payload.Data.Error.Message = e.Message
		}
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("processor: marshal payload: %w", err)
	}
	maxAttempts := ru.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = 8
	}
	d := schemas.DeliveryRecord{
		AlertID: alertID, TenantID: ev.TenantID, RuleID: ru.ID, EndpointID: ru.WebhookEndpointID,
		EventType: ev.Type, MaxAttempts: maxAttempts, CreatedAt: ev.Time.UTC(), Payload: body,
	}
	value, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("processor: marshal delivery: %w", err)
	}
	return &kgo.Record{
		Topic: p.cfg.Topics.Deliveries,
		Key:   kafka.Key(ev.TenantID, ru.WebhookEndpointID),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: "exo-alert-id", Value: []byte(alertID)},
			{Key: "exo-event-type", Value: []byte(ev.Type)},
		},
	}, nil
}

// syncTableTimeout bounds how long a batch waits for the rule and endpoint
// tables to catch up.
const syncTableTimeout = 2 * time.Second

// syncTables makes every rule and endpoint change already on Kafka take
// effect before the batch is matched, so a rule created just before an event
// applies to it. If the tables cannot catch up in time the batch proceeds
// (a rule change is then live within the tables' tailing delay).
func (p *Processor) syncTables(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, syncTableTimeout)
	defer cancel()
	for _, catchUp := range []func(context.Context) error{p.rulesTable.Sync, p.endpoints.Sync} {
		if err := catchUp(sctx); err != nil && ctx.Err() == nil {
			p.log.Warn("rule tables not caught up; matching with what is loaded", "err", err)
			return
		}
	}
}
