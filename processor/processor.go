package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/internal/rollout"
	"github.com/exospherehost/exo-alerts/processor/aggregate"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/processor/quota"
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
	// TransactionalID must be unique per running instance and stable across
	// its restarts: a restarted instance then fences its predecessor and
	// aborts its open transaction at once. Default: <prefix>processor-<hostname>.
	TransactionalID string
	MaxEventBytes   int
	// Tick is how often timers are checked when no event arrives.
	Tick time.Duration
	// Grace keeps a finished run's state (for duplicates and late starts).
	Grace time.Duration
	// AggregateDelay is how far behind the slowest events partition's
	// watermark stage 2 decides (EXO_PROCESSOR_AGGREGATE_DELAY): events of
	// a partition up to this much out of order are not late. 0:
	// DefaultAggregateDelay; NoAggregateDelay: none.
	AggregateDelay time.Duration
	// AggregateMaxGroups bounds the groups of aggregate rules per
	// aggregate-input partition (EXO_PROCESSOR_AGGREGATE_MAX_GROUPS). 0:
	// DefaultAggregateMaxGroups.
	AggregateMaxGroups int
	// Clock is the wall clock (tests inject one).
	Clock      engine.Clock
	Log        *slog.Logger
	Registerer prometheus.Registerer
	// Ready, if set, is closed once the rule and endpoint tables are loaded.
	Ready chan<- struct{}
	// KafkaOpts are appended to the options of every Kafka client the
	// processor makes (tests route them through a dialer they can cut).
	KafkaOpts []kgo.Opt
	// TenantQuota and GlobalQuota are the delivery caps per minute of
	// event time (EXO_TENANT_DELIVERY_QUOTA, EXO_GLOBAL_DELIVERY_QUOTA; 0:
	// none); an operator's override on tenant-limits replaces TenantQuota
	// for its tenant (processor/quota).
	TenantQuota, GlobalQuota int64
	// StrictKeys (EXO_PROCESSOR_STRICT_KEYS=on) sends an event whose
	// record key does not start with "<its tenantid>/" to the invalid
	// topic instead of processing it, so that write access to the events
	// topic under a key prefix is write access to that tenant's alerts
	// only. Off: such an event is processed and counted
	// (exo_processor_miskeyed_events_total).
	StrictKeys bool
}

func (c *Config) validate() error {
	var problems []string
	if len(c.Brokers) == 0 {
		problems = append(problems, "no Kafka brokers (KAFKA_BROKERS)")
	}
	if c.Partitions < 1 {
		problems = append(problems, "partitions must be >= 1")
	}
	if c.MaxEventBytes < 1024 {
		problems = append(problems, "max event bytes must be >= 1024")
	}
	if c.Tick < 10*time.Millisecond {
		problems = append(problems, "tick must be >= 10ms")
	}
	if c.TenantQuota < 0 || c.GlobalQuota < 0 {
		problems = append(problems, "delivery quotas must be >= 0")
	}
	if c.AggregateDelay < 0 || c.AggregateDelay > MaxAggregateDelay {
		problems = append(problems, fmt.Sprintf("aggregate delay must be within 0s and %s (EXO_PROCESSOR_AGGREGATE_DELAY)", MaxAggregateDelay))
	}
	if c.AggregateMaxGroups < 1 {
		problems = append(problems, "aggregate max groups must be >= 1 (EXO_PROCESSOR_AGGREGATE_MAX_GROUPS)")
	}
	if len(problems) > 0 {
		return fmt.Errorf("processor: invalid config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Stage 2's defaults and limits (docs/design/aggregate-alerts.md §2.4, §2.5).
const (
	DefaultAggregateDelay     = 5 * time.Second
	MaxAggregateDelay         = 5 * time.Minute
	DefaultAggregateMaxGroups = 200_000
	// NoAggregateDelay is Config.AggregateDelay for no delay at all (0
	// means the default).
	NoAggregateDelay time.Duration = -1
)

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

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
		c.TransactionalID = c.Topics.Prefix + "processor-" + host
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = MaxEventBytes
	}
	if c.Tick == 0 {
		c.Tick = 200 * time.Millisecond
	}
	switch c.AggregateDelay {
	case 0:
		c.AggregateDelay = DefaultAggregateDelay
	case NoAggregateDelay:
		c.AggregateDelay = 0
	}
	if c.AggregateMaxGroups == 0 {
		c.AggregateMaxGroups = DefaultAggregateMaxGroups
	}
	if c.Clock == nil {
		c.Clock = wallClock{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
}

// Processor matches workflow events against alert rules.
type Processor struct {
	cfg        Config
	log        *slog.Logger
	m          *metrics
	rules      *ruleIndex
	rulesTable *ktable.Table[schemas.RuleRecord]
	endpoints  *ktable.Table[schemas.EndpointRecord]
	// rollout says which tenants are served: a tenant switched off gets
	// no alerts (servedRules), its events are counted tenant_off.
	rollout *rollout.Table
	limits  limitsTable
	quota   *quota.Quota
	eng     *engine.Engine
	// agg is stage 2, the engine of aggregate rules, over the assigned
	// partitions of processor.aggregate-input; inputs are those
	// partitions, with when each was assigned.
	agg    *aggregate.Engine
	inputs map[int32]time.Time
	adm    *kadm.Client
	client *kgo.Client
	runs   atomic.Int64
	base   []kgo.Opt
	topo   topology
	// marks is the watermark markers' bookkeeping (markers.go).
	marks marks

	// rebalance events from the group callbacks, applied by the loop.
	rbMu    sync.Mutex
	rbQueue []rebalance

	// next offset to process and last known lag per assigned partition.
	next     map[int32]int64
	caughtUp map[int32]bool
	lagAt    time.Time
	// endedAt is when the last transaction ended; settling is set while
	// awaitSettled's asker runs.
	endedAt  time.Time
	settling atomic.Bool
	// miskeyedLogged is when a mis-keyed event was last logged.
	miskeyedLogged time.Time
	// counts are the event outcomes of the batch in progress: they reach
	// the metrics when its transaction commits, so an aborted batch,
	// processed again, is not counted twice.
	counts map[string]int
	// Events whose output Kafka refused for good (kafka.RefusedForGood) in
	// an aborted transaction of the batch in progress: suspects' outputs
	// are produced one at a time on the retry, to tell the record at fault
	// from its batch-mates (the broker refuses a whole batch); poison are
	// the events at fault, set aside on the invalid topic on the retry.
	// Both are cleared when the batch commits.
	suspects map[eventAt]bool
	poison   map[eventAt]error
	// carry is the batches with nothing to produce whose offsets wait for
	// the next transaction (txn.go).
	carry carried
	// stateSeen is keepLastStates' set, kept between batches.
	stateSeen map[stateKey]struct{}
	// arena is the memory of output records (arena.go).
	arena recordArena

	// aggInvalid counts the records of processor.aggregate-input set aside
	// as invalid, in committed batches.
	aggInvalid atomic.Uint64
}

// eventAt is an event's partition and offset; noEvent stands for the
// output of a timer (no event made it).
type eventAt struct {
	part int32
	off  int64
}

var noEvent = eventAt{off: -1}

// Run runs the processor until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	log := cfg.Log.With("component", "processor")
	p := &Processor{cfg: cfg, log: log, rules: newRuleIndex(log), next: map[int32]int64{}, caughtUp: map[int32]bool{}, inputs: map[int32]time.Time{}}
	p.base = append(kafka.ClientOpts(cfg.Brokers, log), cfg.KafkaOpts...)
	// Started while Kafka is unreachable (restarted during an outage), the
	// processor waits for it, not ready, rather than exiting.
	topo, err := ensureTopics(ctx, p.base, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	p.topo = topo
	p.rulesTable = ktable.New(cfg.Topics.Rules, decodeRule, p.rules.apply, log)
	p.endpoints = ktable.New(cfg.Topics.Endpoints, func(b []byte) (schemas.EndpointRecord, error) {
		var e schemas.EndpointRecord
		err := json.Unmarshal(b, &e)
		return e, err
	}, p.rules.endpoints.apply, log)
	p.rollout = rollout.NewTable(cfg.Topics.Tenants, log)
	p.limits, p.quota = newQuota(ctx, p)
	served := servedRules{rules: p.rules, rollout: p.rollout}
	// ReuseOutput: handle and the loop's Tick encode each engine Output
	// into records (appendRecords) before the engine's next call.
	p.eng = engine.New(engine.Config{Clock: cfg.Clock, Grace: cfg.Grace, MaxClockSkew: 5 * time.Minute, Quota: p.quota, ReuseOutput: true}, served, endpointSet{p.endpoints})
	p.agg = aggregate.New(aggregate.Config{Sources: int(topo.events), Delay: cfg.AggregateDelay, MaxGroupsPerPartition: cfg.AggregateMaxGroups},
		aggregateRules{served}, endpointSet{p.endpoints}, p.quota)
	p.m, err = newMetrics(cfg.Registerer, p)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, run := range []func(context.Context, []kgo.Opt) error{p.rulesTable.Run, p.endpoints.Run, p.rollout.Run, p.limits.Run} {
		wg.Go(func() {
			if err := run(ctx, p.base); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	defer wg.Wait()
	defer cancel()

	// Rules (and who is served) ready before events.
	for _, ready := range []<-chan struct{}{p.rulesTable.Ready(), p.endpoints.Ready(), p.rollout.Ready(), p.limits.Ready()} {
		select {
		case <-ready:
		case <-ctx.Done():
			return firstErr(errs)
		}
	}
	log.Info("rule, endpoint and rollout tables loaded", "rules", p.rules.len(), "endpoints", p.endpoints.Len(), "rollout_default", p.rollout.Default())
	if cfg.Ready != nil {
		close(cfg.Ready)
	}
	if err := p.consume(ctx); err != nil {
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

// topology is the partition counts the processor found at start.
type topology struct {
	// events is the partition count of workflow-events (and of the
	// run-state changelog): the sources of stage 2's watermark.
	events int32
	// inputs is the partition count of processor.aggregate-input (and of
	// the aggregate-state changelog): aggregate inputs are placed by
	// aggregatePartition over it.
	inputs int32
}

// ensureTopics creates the topics and checks that each changelog is
// co-partitioned with the topic it is the state of (run state with the
// events, aggregate state with the aggregate inputs), waiting while Kafka
// is unreachable (kafka.Wait). Only a permanent error ends it: a client
// configuration refused, a missing authorisation, or topics that are not
// co-partitioned.
func ensureTopics(ctx context.Context, base []kgo.Opt, cfg Config, log *slog.Logger) (topology, error) {
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return topology{}, fmt.Errorf("processor: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var topo topology
	err = kafka.Wait(ctx, log, "processor: create topics", func(ctx context.Context) error {
		var err error
		topo, err = checkTopics(ctx, adm, cfg)
		return err
	})
	return topo, err
}

// checkTopics is one try of ensureTopics.
func checkTopics(ctx context.Context, adm *kadm.Client, cfg Config) (topology, error) {
	if err := kafka.EnsureTopics(ctx, adm, cfg.Topics.Specs(cfg.Partitions)); err != nil {
		return topology{}, err
	}
	// A run's state lives on the partition of its events, a rule's groups
	// on the partition of its inputs: topics made by hand with other
	// partition counts would split them. (Topics created a moment ago may
	// show no partitions yet: metadata catches up.)
	pairs := []struct{ topic, changelog, what string }{
		{cfg.Topics.Events, cfg.Topics.RunState, "the run-state changelog must have as many partitions as the events topic"},
		{cfg.Topics.AggregateInput, cfg.Topics.AggregateState, "the aggregate-state changelog must have as many partitions as the aggregate-input topic"},
	}
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		td, err := adm.ListTopics(ctx, cfg.Topics.Events, cfg.Topics.RunState, cfg.Topics.AggregateInput, cfg.Topics.AggregateState)
		if err != nil {
			return topology{}, fmt.Errorf("processor: describe topics: %w", err)
		}
		listed := true
		for _, pair := range pairs {
			n, c := len(td[pair.topic].Partitions), len(td[pair.changelog].Partitions)
			if n > 0 && c > 0 && n != c {
				return topology{}, kafka.Permanent(fmt.Errorf("processor: %s has %d partitions and %s has %d; %s",
					pair.topic, n, pair.changelog, c, pair.what))
			}
			if n == 0 || c == 0 {
				listed = false
				if wait > 5*time.Second {
					return topology{}, fmt.Errorf("processor: no partitions listed for %s (%d) or %s (%d)", pair.topic, n, pair.changelog, c)
				}
			}
		}
		if listed {
			return topology{
				events: int32(len(td[cfg.Topics.Events].Partitions)),         //nolint:gosec // Kafka's partition count is an int32
				inputs: int32(len(td[cfg.Topics.AggregateInput].Partitions)), //nolint:gosec // Kafka's partition count is an int32
			}, nil
		}
		select {
		case <-ctx.Done():
			return topology{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// partitioner places the records of the topics whose partition the
// processor sets itself (manually): run state on the partition of its
// run's events, aggregate inputs by aggregatePartition, aggregate state on
// the partition of its inputs, markers on every input partition. It hashes
// every other record by key.
type partitioner struct{ manual map[string]bool }

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if p.manual[topic] {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return kgo.StickyKeyPartitioner(nil).ForTopic(topic)
}

// keyHash is kgo's default key partitioner (murmur2, as Kafka's Java
// client), used only through Partition for records with a key.
var keyHash = kgo.StickyKeyPartitioner(nil).ForTopic("")

// aggregatePartition is the partition of processor.aggregate-input (of n)
// that takes the inputs keyed key (tenant/rule): murmur2(key) % n, what the
// default partitioner would choose. Set by the processor rather than left
// to the producer, so that stage 2 (and its changelog) can rely on it.
func aggregatePartition(key []byte, n int32) int32 {
	return int32(keyHash.Partition(&kgo.Record{Key: key}, int(n))) //nolint:gosec // a partition number below n, an int32
}

// consume runs the exactly-once loop in transaction sessions until ctx ends
// or an error is fatal.
//
// A session ends on any other error: Kafka unreachable or timing out, a
// coordinator moving, a transaction that could neither commit nor abort.
// The batch in flight is then abandoned (its outcome may even be unknown:
// a commit whose answer was lost), the partitions' in-memory state is
// dropped, and after a capped backoff a new session takes over exactly as a
// restarted processor does: its transactional id fences the old session
// and aborts whatever it left open, it rejoins the group, restores run
// state from the changelog and resumes from the committed offsets. Whether
// the abandoned batch committed or not, nothing is lost and nothing is
// produced twice. The outage is logged once when it starts and once when it
// ends; only a fatal error (fenced by another instance with this
// transactional id, not authorised) ends Run.
func (p *Processor) consume(ctx context.Context) error {
	var o outage
	for {
		err := p.session(ctx, &o)
		p.dropPartitions()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil || fatalKafkaErr(err) {
			return err
		}
		p.m.restarts.Inc()
		p.m.kafkaDown.Set(1)
		wait := o.failed(p.log, err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Backoff between transaction sessions during a Kafka outage.
const (
	minSessionBackoff = 250 * time.Millisecond
	maxSessionBackoff = 10 * time.Second
)

// outage is a run of transient Kafka failures of the loop: logged when it
// starts and when it ends, not at every retry.
type outage struct {
	since   time.Time
	retries int
	backoff time.Duration
}

// failed records a failed session and returns how long to wait before the next.
func (o *outage) failed(log *slog.Logger, err error) time.Duration {
	o.retries++
	if o.since.IsZero() {
		o.since = time.Now()
		o.backoff = minSessionBackoff
		log.Warn("Kafka failing: the batch in flight is abandoned and processed again in a new transaction session once Kafka answers; retrying with backoff (logged once per outage)",
			"err", err)
		return o.backoff
	}
	o.backoff = min(2*o.backoff, maxSessionBackoff)
	log.Debug("transaction session failed again; retrying", "err", err, "retries", o.retries, "backoff", o.backoff)
	return o.backoff
}

// over ends the outage, if there is one: a session works again.
func (o *outage) over(log *slog.Logger) {
	if o.since.IsZero() {
		return
	}
	log.Warn("Kafka answers again; processing resumed", "outage_s", time.Since(o.since).Round(time.Millisecond).Seconds(), "sessions_retried", o.retries)
	*o = outage{}
}

// errFatal marks an error of the loop that no retry can cure.
var errFatal = errors.New("fatal")

// fatalKafkaErr reports whether err must end the processor rather than its
// transaction session. Another instance with this transactional id fenced
// this one (starting a new session would fence it back, and the two would
// take turns); a missing authorisation or an invalid client configuration
// will not change by retrying. Every other error is treated as transient:
// retrying it costs a backoff, dying costs alerting.
func fatalKafkaErr(err error) bool {
	for _, fatal := range []error{
		errFatal,
		kerr.ProducerFenced, kerr.InvalidProducerEpoch, kerr.FencedInstanceID,
		kerr.TransactionalIDAuthorizationFailed, kerr.GroupAuthorizationFailed,
		kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed,
	} {
		if errors.Is(err, fatal) {
			return true
		}
	}
	return false
}

// dropPartitions forgets every partition's in-memory state when a session
// ends: the next session restores what it is assigned from the changelog.
func (p *Processor) dropPartitions() {
	p.eng.Abort()
	p.quota.Abort()
	p.agg.Abort()
	for part := range p.next {
		p.eng.Revoke(part)
	}
	for part := range p.inputs {
		p.agg.Revoke(part)
	}
	clear(p.inputs)
	clear(p.next)
	clear(p.caughtUp)
	clear(p.counts)
	p.carry.reset()
	p.marks.forget()
	p.lagAt = time.Time{}
	p.rbMu.Lock()
	p.rbQueue = nil
	p.rbMu.Unlock()
	p.m.parts.setLags(nil)
	p.m.parts.setWatermarks(nil)
}

// closeSession closes a transaction session, leaving the group for at most
// a few seconds: with Kafka away the leave cannot be sent, and the group
// forgets the member at its session timeout anyway.
func closeSession(sess *kgo.GroupTransactSession) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = sess.Client().LeaveGroupContext(ctx) // best effort; see above
	sess.Close()
}

// session is one transaction session of the exactly-once loop: poll,
// process, produce, commit in one transaction; on abort the engine's changes
// are undone too. It returns nil when ctx ends, else the error that ended
// it.
func (p *Processor) session(ctx context.Context, o *outage) error {
	sess, err := kgo.NewGroupTransactSession(append(p.base,
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.Topics.Events, p.cfg.Topics.AggregateInput),
		kgo.TransactionalID(p.cfg.TransactionalID),
		kgo.TransactionTimeout(20*time.Second),
		kgo.ConcurrentTransactionsBackoff(concurrentTxnBackoff),
		kgo.MetadataMinAge(metadataMinAge),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.SessionTimeout(10*time.Second),
		kgo.RecordPartitioner(partitioner{manual: map[string]bool{
			p.cfg.Topics.RunState: true, p.cfg.Topics.AggregateInput: true, p.cfg.Topics.AggregateState: true,
		}}),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			p.queueRebalance(true, m)
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			p.queueRebalance(false, m)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			p.queueRebalance(false, m)
		}),
	)...)
	if err != nil {
		return fmt.Errorf("processor: transact session: %w: %w", errFatal, err) // invalid options
	}
	defer closeSession(sess)
	p.client = sess.Client()
	p.adm = kadm.NewClient(p.client)
	// Fence a predecessor with the same transactional id now rather than at
	// the first produce: its open transaction is aborted at once instead of
	// at its timeout, so it stops holding back read_committed readers of the
	// deliveries and, if it had sent offsets, this group's offset fetch.
	if _, _, err := p.client.ProducerID(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("processor: init transactional producer: %w", err)
	}

	for {
		pctx, cancel := context.WithTimeout(ctx, p.cfg.Tick)
		fetches := sess.PollRecords(pctx, maxBatch)
		cancel()
		if ctx.Err() != nil {
			if fetches.NumRecords() == 0 {
				// Nothing polled but not processed: the carried offsets
				// are all there is to commit, so that a restart does not
				// read those events again.
				p.commitCarried(ctx, sess)
			}
			return nil
		}
		if err := fatalFetchErr(fetches); err != nil {
			return err
		}
		if err := p.applyRebalances(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// The producer id is initialised and the group's partitions
		// restored: this session works.
		o.over(p.log)
		p.m.kafkaDown.Set(0)
		records := fetches.Records()
		// Started before the tables are synced so that its round trips
		// overlap theirs (awaitSettled).
		settled := p.awaitSettled(ctx)
		if len(records) > 0 {
			p.syncTables(ctx)
		}
		p.refreshLag(ctx, fetches)

		p.eng.Begin()
		p.quota.Begin()
		p.agg.Begin()
		first := map[int32]int64{}
		var out []*kgo.Record
		var from []eventAt // the event that made each record of out
		inputs := false    // the batch holds records of processor.aggregate-input
		decoded := p.decodeAll(records)
		for i, r := range records {
			if r.Topic == p.cfg.Topics.AggregateInput {
				inputs = true
				// Stage 2 (a record of a partition not assigned: as below).
				// Its outputs are no event's: a refusal of one must not
				// make the next event a suspect.
				if p.agg.Assigned(r.Partition) {
					out = append(out, p.aggregateInput(r)...)
				}
				for len(from) < len(out) {
					from = append(from, noEvent)
				}
				continue
			}
			if !p.eng.Assigned(r.Partition) {
				// The group calls OnPartitionsAssigned before it fetches a
				// partition, and applyRebalances ran after this poll: a record
				// of an unassigned partition was fetched before the partition
				// was revoked (or lost). Another instance owns it now, and this
				// transaction aborts; restoring it here would keep it, and fire
				// its timers, alongside its new owner.
				continue
			}
			if _, ok := first[r.Partition]; !ok {
				first[r.Partition] = r.Offset
			}
			at := eventAt{r.Partition, r.Offset}
			if reason, ok := p.poison[at]; ok {
				p.count("invalid")
				p.log.Error("workflow event whose output Kafka refuses sent to the invalid topic", "partition", r.Partition,
					"offset", r.Offset, "reason", reason)
				out = append(out, p.invalidRecord(r, reason))
			} else {
				out = p.handle(out, r, decoded[i])
			}
			for len(from) < len(out) {
				from = append(from, at)
			}
			p.next[r.Partition] = r.Offset + 1
		}
		for part := range p.next {
			if p.eng.Assigned(part) {
				out = p.appendRecords(out, part, p.eng.Tick(part, p.caughtUp[part]))
			}
		}
		out = append(out, p.markers(time.Now())...)
		out = append(out, p.aggregateEnd()...)
		// Last: both stages' suppressions of the batch.
		out = append(out, p.quotaRecords()...)
		p.runs.Store(int64(p.eng.TotalRuns()))
		p.m.parts.setWatermarks(p.watermarks())
		// Nothing to produce (only the watermark moved, or every event was
		// a duplicate or of a type not alerted on): the offsets of the
		// batch, if any, ride the next transaction (txn.go). Stage 2's
		// inputs are not carried: their batches keep a transaction each.
		nothing := len(out) == 0 && !inputs
		now := time.Now()
		if nothing && len(records) > 0 {
			p.carry.add(first, now)
		}
		if nothing && !p.carry.due(now, len(records) == 0) {
			settled(false)
			p.eng.Commit()
			p.quota.Commit()
			p.agg.Commit()
			if !p.carry.pending() {
				p.flushCounts()
			}
			p.aggregateGauges()
			continue
		}
		for len(from) < len(out) {
			from = append(from, noEvent)
		}
		out, from = p.keepLastStates(out, from)
		settled(true)
		committed, err := p.transact(ctx, sess, out, from)
		p.endedAt = time.Now()
		if err != nil {
			p.eng.Abort()
			p.quota.Abort()
			p.agg.Abort()
			p.marks.forget()
			p.carry.reset()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if committed {
			p.eng.Commit()
			p.quota.Commit()
			p.agg.Commit()
			p.flushCounts()
			p.aggregateGauges()
			clear(p.suspects)
			clear(p.poison)
			p.carry.reset()
			p.m.txns.WithLabelValues("committed").Inc()
		} else {
			p.eng.Abort()
			p.quota.Abort()
			p.agg.Abort()
			p.marks.forget() // its markers are sent again
			clear(p.counts)  // the batch is processed, and counted, again
			// The carried batches are read again too (the client resumes
			// from the committed offsets): they made no change to undo.
			for part, off := range p.carry.first {
				if cur, ok := first[part]; !ok || off < cur {
					if _, assigned := p.next[part]; assigned {
						first[part] = off
					}
				}
			}
			p.carry.reset()
			for part, off := range first {
				p.next[part] = off
				// Behind again: the wall clock must not move the watermark
				// before the rewound events are processed again.
				p.caughtUp[part] = false
			}
			p.lagAt = time.Time{}
			p.m.txns.WithLabelValues("aborted").Inc()
			p.log.Warn("transaction aborted; its records will be processed again")
		}
	}
}

// endTimeout bounds how long a transaction may take to end, shutdown or not.
const endTimeout = 15 * time.Second

// transact writes out and the consumed offsets in one transaction. It ends
// the transaction even when ctx ends meanwhile (a shutdown): a batch already
// processed is committed, rather than left open on the broker, where it
// would hold back every read_committed reader of the deliveries (the
// dispatcher) until the transaction timeout.
//
// from[i] is the event that made out[i]. A record Kafka refuses for good
// aborts the transaction and makes its event a suspect; a suspect's records
// are produced alone (the buffer flushed before and after each), so one
// refused then is at fault: its event becomes poison, set aside by the
// retry, and nothing more is produced in this transaction.
func (p *Processor) transact(ctx context.Context, sess *kgo.GroupTransactSession, out []*kgo.Record, from []eventAt) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	if err := sess.Begin(); err != nil {
		return false, fmt.Errorf("processor: begin transaction: %w", err)
	}
	var (
		mu         sync.Mutex
		produceErr error
		refused    = map[int]error{} // by index in out
	)
	produce := func(i int) {
		sess.Produce(ctx, out[i], func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				produceErr = errors.Join(produceErr, err)
				if kafka.RefusedForGood(err) {
					refused[i] = err
				}
				mu.Unlock()
			}
		})
	}
	var flushErr error
	for i := range out {
		if from[i] == noEvent || !p.suspects[from[i]] {
			produce(i)
			continue
		}
		if flushErr = sess.Client().Flush(ctx); flushErr != nil {
			break
		}
		produce(i)
		if flushErr = sess.Client().Flush(ctx); flushErr != nil {
			break
		}
		mu.Lock()
		err, alone := refused[i]
		mu.Unlock()
		if alone {
			if p.poison == nil {
				p.poison = map[eventAt]error{}
			}
			p.poison[from[i]] = fmt.Errorf("its output to %s is refused by Kafka: %w", out[i].Topic, err)
			break
		}
	}
	// Every record's fate is known before deciding: End commits the offsets
	// and whatever was produced even if a record failed (too large, say),
	// and the batch would be committed with that record lost.
	if flushErr == nil {
		flushErr = sess.Client().Flush(ctx)
	}
	mu.Lock()
	failed := errors.Join(produceErr, flushErr)
	for i := range refused {
		if from[i] != noEvent {
			if p.suspects == nil {
				p.suspects = map[eventAt]bool{}
			}
			p.suspects[from[i]] = true
		}
	}
	mu.Unlock()
	if failed != nil {
		p.log.Error("produce failed inside the transaction; aborting it", "err", failed)
	}
	committed, err := sess.End(ctx, kgo.TransactionEndTry(failed == nil))
	if err != nil {
		return false, fmt.Errorf("processor: end transaction: %w", err)
	}
	return committed && failed == nil, nil
}

// syncTableTimeout bounds how long a batch waits for the rule, endpoint and
// rollout tables to catch up.
const syncTableTimeout = 2 * time.Second

// syncTables makes every rule, endpoint and rollout change already on Kafka
// take effect before the batch is matched, so a rule created (or a tenant
// switched off) just before an event applies to it. If the tables cannot
// catch up in time the batch proceeds (a change is then live within the
// tables' tailing delay, 200 ms). The four tables are synced at once:
// each sync asks the broker for its topic's end offsets, and one round
// trip instead of four in a row is that much less latency per batch.
func (p *Processor) syncTables(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, syncTableTimeout)
	defer cancel()
	syncs := []func(context.Context) error{p.rulesTable.Sync, p.endpoints.Sync, p.rollout.Sync, p.limits.Sync}
	errs := make([]error, len(syncs))
	var wg sync.WaitGroup
	for i, catchUp := range syncs {
		wg.Go(func() { errs[i] = catchUp(sctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil && ctx.Err() == nil {
		p.log.Warn("rule tables not caught up; matching with what is loaded", "err", err)
	}
}

func fatalFetchErr(fetches kgo.Fetches) error {
	var fatal error
	fetches.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
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

// handle appends the records to produce for one event record to recs.
func (p *Processor) handle(recs []*kgo.Record, r *kgo.Record, d decodedEvent) []*kgo.Record {
	ev, err := d.ev, d.err
	if err == nil && p.cfg.StrictKeys {
		err = keyProblem(r.Key, ev)
	}
	if err != nil {
		p.count("invalid")
		p.log.Warn("invalid workflow event sent to the invalid topic", "partition", r.Partition, "offset", r.Offset, "reason", err)
		return append(recs, p.invalidRecord(r, err))
	}
	switch ev.Type {
	case schemas.TypeRunStarted, schemas.TypeRunSucceeded, schemas.TypeRunFailed:
	default:
		p.count("ignored_type")
		return recs
	}
	if !isRecordKey(r.Key, ev.TenantID, ev.Data.Run.ID) {
		// Processed all the same; the operator must fix the producer.
		p.count(outcomeMiskeyed)
		if time.Since(p.miskeyedLogged) > time.Minute {
			p.miskeyedLogged = time.Now()
			p.log.Warn("event record key is not tenantid/run id: a run's events may land on different partitions, and its duration alerts go wrong (logged once a minute)",
				"key", string(r.Key), "want", string(schemas.RecordKey(ev.TenantID, ev.Data.Run.ID)), "partition", r.Partition, "offset", r.Offset)
		}
	}
	// A tenant not served (the rollout) gets no alerts: the engine sees no
	// rule of it (servedRules), but still tracks its runs, so duplicates
	// stay duplicates and, once it is served again, its runs in progress
	// alert as a reactivated rule's would.
	served := p.rollout.Served(ev.TenantID)
	out := p.eng.Event(r.Partition, ev)
	switch {
	case !served:
		p.count(outcomeTenantOff)
	case out.Duplicate:
		p.count("duplicate")
	case out.Matched > 0 || len(out.Inputs) > 0:
		p.count("matched")
	default:
		p.count("unmatched")
	}
	return p.appendRecords(recs, r.Partition, out)
}

// isRecordKey reports whether key is schemas.RecordKey(tenant, id),
// tenant/id, without building it: a check made at every event.
func isRecordKey(key []byte, tenant, id string) bool {
	return len(key) == len(tenant)+1+len(id) && string(key[:len(tenant)]) == tenant &&
		key[len(tenant)] == '/' && string(key[len(tenant)+1:]) == id
}

// outcomeTenantOff counts the events of tenants the rollout does not serve
// (exo_processor_events_total{outcome="tenant_off"}).
const outcomeTenantOff = "tenant_off"

// outcomeMiskeyed counts events under a key other than tenantid/run id
// (exo_processor_miskeyed_events_total), besides their outcome.
const outcomeMiskeyed = "miskeyed"

func (p *Processor) count(outcome string) {
	if p.counts == nil {
		p.counts = map[string]int{}
	}
	p.counts[outcome]++
}

func (p *Processor) flushCounts() {
	for outcome, n := range p.counts {
		switch outcome {
		case outcomeMiskeyed:
			p.m.miskeyed.Add(float64(n))
		case outcomeAggregateInvalid:
			p.aggInvalid.Add(uint64(n)) //nolint:gosec // a count of records, never negative
		default:
			p.m.events.WithLabelValues(outcome).Add(float64(n))
		}
	}
	clear(p.counts)
}

// maxBatch caps the records of one transaction, so a backlog commits (and
// becomes visible to the dispatcher) in steps rather than in one huge
// transaction.
const maxBatch = 2000
