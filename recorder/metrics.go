package recorder

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/metrics"
	"github.com/exospherehost/exo-alerts/internal/store"
)

// historyTables are the tables the recorder writes and retention prunes
// (the table label of exo_recorder_records_total and _pruned_rows_total);
// lastErrorTable counts the rule errors kept on the rules.
var historyTables = []string{"alerts", "delivery_attempts", "dead_letters"}

const lastErrorTable = "alert_rules.last_error"

// groupsTable counts the aggregate-groups records applied to
// aggregate_groups and aggregate_rule_stats (statuses and tombstones).
const groupsTable = "aggregate_groups"

// quotaTable holds the quota-usage records (written and pruned after
// store.QuotaUsageRetention).
const quotaTable = "quota_suppressions"

type recorderMetrics struct {
	skipped  *prometheus.CounterVec
	recorded *prometheus.CounterVec
	disabled prometheus.Counter
	pruned   *prometheus.CounterVec
	failures prometheus.Counter
	// quarantined: records Postgres refused with a data error, set aside.
	quarantined *prometheus.CounterVec
	// notices: health notices created, by kind.
	notices *prometheus.CounterVec
}

// newMetrics registers the recorder's metrics with reg, or returns those
// registered before (a second recorder in the same process). Every series
// of a known label value (the topics it reads, the tables it writes and
// prunes) exists from the start, at 0: the dashboard shows 0 rather than
// "No data", and a first quarantined record is an increase.
func newMetrics(reg prometheus.Registerer, t kafka.Topics) (*recorderMetrics, error) {
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
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exo_recorder_notices_total",
			Help: "Health notices created for tenants (GET /v1/notices), by kind: rule_disabled, endpoint_unhealthy, dead_letters, quota_exceeded.",
		}, []string{"kind"}),
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
	if err == nil {
		m.notices, err = metrics.Register(reg, m.notices)
	}
	if err != nil {
		return nil, fmt.Errorf("recorder: register metrics: %w", err)
	}
	for _, kind := range store.NoticeKinds {
		m.notices.WithLabelValues(kind)
	}
	for _, topic := range []string{t.Deliveries, t.DeliveryResults, t.DeliveriesDLQ, t.RuleErrors, t.AggregateGroups, t.QuotaUsage, t.EndpointHealth} {
		m.skipped.WithLabelValues(topic)
		m.quarantined.WithLabelValues(topic)
	}
	for _, table := range historyTables {
		m.recorded.WithLabelValues(table)
		m.pruned.WithLabelValues(table)
	}
	m.recorded.WithLabelValues(lastErrorTable)
	m.recorded.WithLabelValues(groupsTable)
	m.recorded.WithLabelValues(quotaTable)
	m.pruned.WithLabelValues(quotaTable)
	return m, nil
}
