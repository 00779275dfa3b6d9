package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// DefaultPrefix is prepended to every topic name unless configured otherwise.
const DefaultPrefix = "exo."

// Topics are the names of every topic (docs/architecture.md, "Topics"),
// prefixed.
type Topics struct {
	Prefix          string
	Events          string
	EventsInvalid   string
	Rules           string
	Endpoints       string
	RunState        string
	Deliveries      string
	DeliveriesDLQ   string
	DeliveryResults string
	RuleErrors      string
	// Tenants is the compacted rollout table: each tenant's state and the
	// global default (schemas.TenantRecord).
	Tenants string
	// AggregateInput is the processor's internal repartition topic of
	// aggregate rules: inputs keyed tenant/rule and watermark markers
	// (schemas.AggregateInput), consumed by stage 2 in the same session.
	AggregateInput string
	// AggregateState is the compacted changelog of stage 2's groups
	// (schemas.AggregateStateRecord), co-partitioned with AggregateInput.
	AggregateState string
	// AggregateGroups is the compacted current state of groups for the
	// API (schemas.AggregateGroupStatus), stored by the recorder.
	AggregateGroups string
	// QuotaUsage counts the alerts suppressed by the delivery quota
	// (schemas.QuotaUsageRecord).
	QuotaUsage string
	// EndpointHealth reports endpoints whose breaker stays open
	// (schemas.EndpointHealthRecord).
	EndpointHealth string
	// TenantLimits is the compacted table of operator-set tenant limits
	// (schemas.TenantLimitsRecord).
	TenantLimits string
}

// NewTopics returns the topic names under prefix.
func NewTopics(prefix string) Topics {
	return Topics{
		Prefix:          prefix,
		Events:          prefix + "workflow-events",
		EventsInvalid:   prefix + "workflow-events.invalid",
		Rules:           prefix + "alert-rules",
		Endpoints:       prefix + "webhook-endpoints",
		RunState:        prefix + "processor.run-state",
		Deliveries:      prefix + "deliveries",
		DeliveriesDLQ:   prefix + "deliveries.dlq",
		DeliveryResults: prefix + "delivery-results",
		RuleErrors:      prefix + "rule-errors",
		Tenants:         prefix + "tenants",
		AggregateInput:  prefix + "processor.aggregate-input",
		AggregateState:  prefix + "processor.aggregate-state",
		AggregateGroups: prefix + "aggregate-groups",
		QuotaUsage:      prefix + "quota-usage",
		EndpointHealth:  prefix + "endpoint-health",
		TenantLimits:    prefix + "tenant-limits",
	}
}

// Spec describes a topic to create.
type Spec struct {
	Name       string
	Partitions int32
	Configs    map[string]*string
}

func ptr(s string) *string { return &s }

func days(n int) *string { return ptr(fmt.Sprint(int64(n) * 24 * int64(time.Hour/time.Millisecond))) }

// Specs returns the specs of every topic with the given partition count.
// workflow-events and processor.run-state share the partition count, which
// keeps them co-partitioned; so do processor.aggregate-input and
// processor.aggregate-state.
func (t Topics) Specs(partitions int32) []Spec {
	compact := map[string]*string{"cleanup.policy": ptr("compact"), "min.compaction.lag.ms": ptr("0"), "segment.ms": ptr("3600000")}
	return []Spec{
		{Name: t.Events, Partitions: partitions, Configs: map[string]*string{"cleanup.policy": ptr("delete"), "retention.ms": days(7)}},
		{Name: t.EventsInvalid, Partitions: partitions, Configs: map[string]*string{"cleanup.policy": ptr("delete"), "retention.ms": days(14)}},
		{Name: t.Rules, Partitions: partitions, Configs: compact},
		{Name: t.Endpoints, Partitions: partitions, Configs: compact},
		{Name: t.RunState, Partitions: partitions, Configs: compact},
		{Name: t.Deliveries, Partitions: partitions, Configs: map[string]*string{"cleanup.policy": ptr("delete")}},
		{Name: t.DeliveriesDLQ, Partitions: partitions, Configs: map[string]*string{"cleanup.policy": ptr("delete"), "retention.ms": days(30)}},
		{Name: t.DeliveryResults, Partitions: partitions, Configs: map[string]*string{"cleanup.policy": ptr("delete")}},
		{Name: t.RuleErrors, Partitions: partitions, Configs: map[string]*string{"cleanup.policy": ptr("delete"), "retention.ms": days(7)}},
		// A handful of records (one per tenant with an explicit state, and
		// the default): one partition, whatever the others have.
		{Name: t.Tenants, Partitions: 1, Configs: compact},
		{Name: t.AggregateInput, Partitions: partitions, Configs: map[string]*string{"cleanup.policy": ptr("delete"), "retention.ms": days(7)}},
		{Name: t.AggregateState, Partitions: partitions, Configs: compact},
		{Name: t.AggregateGroups, Partitions: partitions, Configs: compact},
		{Name: t.QuotaUsage, Partitions: partitions, Configs: map[string]*string{"cleanup.policy": ptr("delete"), "retention.ms": days(7)}},
		{Name: t.EndpointHealth, Partitions: partitions, Configs: map[string]*string{"cleanup.policy": ptr("delete"), "retention.ms": days(7)}},
		// Like tenants: a few records, read whole and in order.
		{Name: t.TenantLimits, Partitions: 1, Configs: compact},
	}
}

// EnsureTopics creates every topic that does not exist yet. Existing topics
// are left as they are, but their cleanup policy is checked (see
// checkPolicies): a topic that must be compacted and is not, or the other
// way round, is refused with a Permanent error naming it and the fix.
func EnsureTopics(ctx context.Context, adm *kadm.Client, specs []Spec) error {
	var existing []Spec
	for _, s := range specs {
		resp, err := adm.CreateTopic(ctx, s.Partitions, -1, s.Configs, s.Name)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			existing = append(existing, s)
			continue
		}
		if err != nil {
			return fmt.Errorf("kafka: create topic %s: %w", s.Name, err)
		}
	}
	return checkPolicies(ctx, adm, existing)
}

// SplitBrokers splits a comma-separated broker list.
func SplitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// ClientOpts are the options every client of the project starts from.
func ClientOpts(brokers []string, log *slog.Logger) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RetryTimeout(30 * time.Second),
		kgo.ProducerLinger(0),
		// A topic created a moment ago may be unknown to the broker answering
		// for a little while (seen on a freshly started broker): keep retrying
		// rather than failing the record after the default 4 tries.
		kgo.UnknownTopicRetries(60),
	}
	if log != nil {
		// franz-go's warnings and errors, an outage logged once and its
		// end once (see outage).
		log = log.With("component", "kgo")
		o := newOutage(log, brokers)
		kl := slog.New(minLevel{Handler: o.handler(log.Handler()), min: slog.LevelWarn})
		opts = append(opts, kgo.WithLogger(kslog.New(kl)), kgo.WithHooks(o))
	}
	return opts
}

// Header returns the value of the first header named k, or "".
func Header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}
