package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/loop"
	"github.com/exospherehost/exo-alerts/internal/store"
)

// Config configures the recorder.
type Config struct {
	Brokers []string
	Topics  kafka.Topics
	// Group is the consumer group of the topics it records
	// (EXO_RECORDER_GROUP). Default "<topic prefix>recorder", e.g.
	// "exo.recorder".
	Group string
	// Pool is the Postgres pool (migrated). Required.
	Pool *pgxpool.Pool
	// HistoryRetention is how long alerts, attempts and dead letters are
	// kept (EXO_HISTORY_RETENTION; default 30 days; negative keeps them
	// forever).
	HistoryRetention time.Duration
	// RetentionInterval is how often old history and published outbox rows
	// are deleted (EXO_RETENTION_INTERVAL; default 1h).
	RetentionInterval time.Duration
	Log               *slog.Logger
	Registerer        prometheus.Registerer
	// Ready, if set, is closed once the recorder consumes.
	Ready chan<- struct{}
	// KafkaOpts are appended to the options of the recorder's Kafka client
	// (tests route its connections through a dialer they can cut).
	KafkaOpts []kgo.Opt
}

func (c *Config) defaults() {
	if c.Topics.Events == "" {
		c.Topics = kafka.NewTopics(kafka.DefaultPrefix)
	}
	if c.Group == "" {
		c.Group = c.Topics.Prefix + "recorder"
	}
	if c.HistoryRetention == 0 {
		c.HistoryRetention = 30 * 24 * time.Hour
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = time.Hour
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
	if c.Pool == nil {
		problems = append(problems, "no Postgres pool (DATABASE_URL)")
	}
	if len(c.Brokers) == 0 {
		problems = append(problems, "no Kafka brokers (KAFKA_BROKERS)")
	}
	if len(problems) > 0 {
		return fmt.Errorf("recorder: invalid config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// pollMax caps the records written in one transaction.
const pollMax = 1000

// The retry backoff while Postgres is away: short, so the recorder resumes
// within a second of Postgres' return.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// consumer names the recorder in quarantined_records.consumer.
const consumer = "recorder"

// Run consumes the delivery topics into Postgres and runs the retention
// loop, until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	m, err := newMetrics(cfg.Registerer, cfg.Topics)
	if err != nil {
		return err
	}
	log := cfg.Log.With("component", "recorder")
	r := &recorder{cfg: cfg, db: store.New(cfg.Pool, ""), log: log, m: m,
		pg: &loop.Outage{Log: log, What: "postgres", MinWait: minBackoff, MaxWait: maxBackoff}}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.retain(ctx) })
	return r.consume(ctx)
}

type recorder struct {
	cfg Config
	db  *store.Store
	log *slog.Logger
	m   *recorderMetrics
	pg  *loop.Outage // Postgres, as the write loop sees it
	// created are the kinds of the notices the transaction being written
	// created (notices.go), counted once it commits.
	created []string
}

func (r *recorder) consume(ctx context.Context) error {
	t := r.cfg.Topics
	opts := append(kafka.ClientOpts(r.cfg.Brokers, r.log),
		kgo.ConsumerGroup(r.cfg.Group),
		kgo.ConsumeTopics(t.Deliveries, t.DeliveryResults, t.DeliveriesDLQ, t.RuleErrors, t.AggregateGroups, t.QuotaUsage, t.EndpointHealth),
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
	cl, err := kgo.NewClient(append(opts, r.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("recorder: kafka client: %w", err)
	}
	defer cl.Close()
	r.log.Info("recorder consuming", "group", r.cfg.Group)
	if r.cfg.Ready != nil {
		close(r.cfg.Ready)
	}
	for {
		fetches := cl.PollRecords(ctx, pollMax)
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
