// The delivery quota's inputs: the operator's per-tenant caps, tailed from
// the compacted one-partition tenant-limits topic like the rollout, and
// the partition count each partition's share is taken of.

package processor

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/processor/quota"
	"github.com/exospherehost/exo-alerts/schemas"
)

// limitsTable is the tenant-limits topic as a table: a tenant without a
// record (a tombstone) is on the defaults.
type limitsTable struct {
	*ktable.Table[schemas.TenantLimitsRecord]
}

func newLimitsTable(topic string, p *Processor) limitsTable {
	return limitsTable{ktable.New(topic, decodeLimits, nil, p.log)}
}

func decodeLimits(b []byte) (schemas.TenantLimitsRecord, error) {
	var r schemas.TenantLimitsRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	if r.DeliveryQuotaPerMinute < 0 {
		return r, fmt.Errorf("negative delivery_quota_per_minute %d", r.DeliveryQuotaPerMinute)
	}
	return r, nil
}

// TenantLimit is the operator's cap of tenant (quota.Limits).
func (t limitsTable) TenantLimit(tenant string) (int64, bool) {
	r, ok := t.Get(tenant)
	return r.DeliveryQuotaPerMinute, ok
}

// topicPartitions returns how many partitions topic has: the P whose share
// of a cap each partition admits.
func topicPartitions(ctx context.Context, base []kgo.Opt, topic string) (int, error) {
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return 0, fmt.Errorf("processor: kafka client: %w", err)
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("processor: describe %s: %w", topic, err)
	}
	n := len(td[topic].Partitions)
	if n == 0 {
		return 0, fmt.Errorf("processor: no partitions listed for %s", topic)
	}
	return n, nil
}

// newQuota returns the tenant-limits table (Run fills it) and the quota of
// the events topic's partitions. When the partition count cannot be read
// (the topics were just made), the configured count stands in.
func newQuota(ctx context.Context, p *Processor) (limitsTable, *quota.Quota) {
	limits := newLimitsTable(p.cfg.Topics.TenantLimits, p)
	parts, err := topicPartitions(ctx, p.base, p.cfg.Topics.Events)
	if err != nil {
		parts = int(p.cfg.Partitions)
		if ctx.Err() == nil {
			p.log.Warn("partition count of the events topic not read; the quota's shares use the configured count", "err", err, "partitions", parts)
		}
	}
	q := quota.New(quota.Config{TenantDefault: p.cfg.TenantQuota, Global: p.cfg.GlobalQuota, Partitions: parts}, limits)
	if p.cfg.TenantQuota > 0 || p.cfg.GlobalQuota > 0 {
		p.log.Info("delivery quota", "tenant_per_minute", p.cfg.TenantQuota, "global_per_minute", p.cfg.GlobalQuota, "partitions", parts)
	}
	return limits, q
}

// quotaRecords are the quota-usage records of the batch's suppressions,
// keyed by tenant.
func (p *Processor) quotaRecords() []*kgo.Record {
	usage := p.quota.Usage()
	recs := make([]*kgo.Record, 0, len(usage))
	for _, u := range usage {
		value, _ := json.Marshal(u) // plain struct: cannot fail
		recs = append(recs, &kgo.Record{Topic: p.cfg.Topics.QuotaUsage, Key: []byte(u.TenantID), Value: value})
	}
	return recs
}

// quotaCollector exports exo_processor_quota_suppressed_total{scope}: no
// tenant label (cardinality); the tenants are on quota-usage and in
// `exo-alerts quota list`.
type quotaCollector struct {
	desc *prometheus.Desc
	p    *Processor
}

func newQuotaCollector(p *Processor) quotaCollector {
	return quotaCollector{p: p, desc: prometheus.NewDesc("exo_processor_quota_suppressed_total",
		"Alerts the delivery quota suppressed (no delivery), by the scope whose cap was reached (tenant, global); each is counted on quota-usage for its tenant (GET /v1/quota).",
		[]string{"scope"}, nil)}
}

func (c quotaCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c quotaCollector) Collect(ch chan<- prometheus.Metric) {
	for _, scope := range []string{schemas.QuotaScopeTenant, schemas.QuotaScopeGlobal} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.p.quota.Suppressed(scope)), scope)
	}
}
