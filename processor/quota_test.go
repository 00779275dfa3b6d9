package processor_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// setQuota publishes a tenant's override on tenant-limits; negative is a
// tombstone (the default).
func (e *kenv) setQuota(tenant string, perMinute int64) {
	e.t.Helper()
	var v []byte
	if perMinute >= 0 {
		v, _ = json.Marshal(schemas.TenantLimitsRecord{TenantID: tenant, DeliveryQuotaPerMinute: perMinute, UpdatedAt: time.Now().UTC()})
	}
	e.produce(&kgo.Record{Topic: e.topics.TenantLimits, Key: []byte(tenant), Value: v})
}

// quotaUsage decodes the quota-usage records read so far.
func quotaUsage(t *testing.T, c *collector) []schemas.QuotaUsageRecord {
	t.Helper()
	var out []schemas.QuotaUsageRecord
	for _, r := range c.recs {
		if err := schemas.Validate(schemas.KindQuotaUsage, r.Value); err != nil {
			t.Fatalf("quota-usage record %s: %v", r.Value, err)
		}
		var u schemas.QuotaUsageRecord
		_ = json.Unmarshal(r.Value, &u)
		if string(r.Key) != u.TenantID {
			t.Errorf("quota-usage record keyed %q, want its tenant %q", r.Key, u.TenantID)
		}
		out = append(out, u)
	}
	return out
}

// TestQuotaShareAcrossPartitions: a tenant whose operator cap is 6 per
// minute gets ceil(6/3) = 2 alerts per events partition in a minute of
// event time, 6 in all; quota-usage counts exactly the rest, for that
// tenant, in the batches' transactions. Another tenant on the default (no
// cap) and the global cap (none) is not touched. The next minute admits
// again.
func TestQuotaShareAcrossPartitions(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, tn := range []string{"noisy", "calm"} {
		e.putEndpoint(tn, "ep", true)
		e.putRule(schemas.RuleRecord{TenantID: tn, ID: "fail", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
	}
	e.setQuota("noisy", 6)
	deliveries := e.collect(e.topics.Deliveries)
	usage := e.collect(e.topics.QuotaUsage)
	p := e.startProcessor("quota", func(c *processor.Config) { c.GlobalQuota = 0 })
	suppressed := func(scope string) float64 {
		return testenv.Metric(t, p.reg, "exo_processor_quota_suppressed_total", "scope", scope)
	}
	if suppressed("tenant") != 0 || suppressed("global") != 0 {
		t.Fatal("exo_processor_quota_suppressed_total not at 0 from the start")
	}

	minute := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Minute)
	const perPartition = 10
	var recs []*kgo.Record
	var calm []string
	for part := range int32(partitions) {
		for i := range perPartition {
			at := minute.Add(time.Duration(int(part)*perPartition+i) * 100 * time.Millisecond)
			ev := workload.Event(workload.Spec{Tenant: "noisy", Type: schemas.TypeRunFailed, WorkflowName: "etl", RunID: fmt.Sprintf("run_%d_%d", part, i), Time: at})
			recs = append(recs, e.onPartition(ev, part))
			cev := workload.Event(workload.Spec{Tenant: "calm", Type: schemas.TypeRunFailed, WorkflowName: "etl", RunID: fmt.Sprintf("calm_%d_%d", part, i), Time: at})
			recs = append(recs, e.onPartition(cev, part))
			calm = append(calm, engine.AlertID("calm", "fail", cev.ID))
		}
	}
	e.produceOn(recs...)
	e.waitCaughtUp(30 * time.Second)
	deliveries.drain()
	usage.drain()

	byTenant := map[string]int{}
	for _, d := range deliveries.deliveries() {
		byTenant[d.TenantID]++
	}
	total := partitions * perPartition
	if byTenant["noisy"] != 6 {
		t.Errorf("noisy got %d deliveries, want 2 per partition: 6", byTenant["noisy"])
	}
	want := map[string]bool{}
	for _, id := range calm {
		want[id] = true
	}
	counts := deliveries.counts()
	if countMissing(counts, want) != 0 || byTenant["calm"] != total {
		t.Errorf("calm got %d deliveries, want all its %d", byTenant["calm"], total)
	}
	var got int64
	for _, u := range quotaUsage(t, usage) {
		if u.TenantID != "noisy" || u.Scope != schemas.QuotaScopeTenant || u.Limit != 6 || !u.Minute.Equal(minute) {
			t.Errorf("quota-usage record %+v, want noisy's, scope tenant, limit 6, minute %s", u, minute)
		}
		got += u.Suppressed
	}
	if got != int64(total-6) {
		t.Errorf("quota-usage counts %d suppressed, want exactly the %d not delivered", got, total-6)
	}
	eventually(t, 5*time.Second, "the metric to count the suppressions", func() bool { return suppressed("tenant") == float64(total-6) },
		func() string { return fmt.Sprintf("tenant %v global %v", suppressed("tenant"), suppressed("global")) })

	// The next minute of event time admits noisy again; the override
	// cleared (default: no cap) admits everything.
	next := workload.Event(workload.Spec{Tenant: "noisy", Type: schemas.TypeRunFailed, WorkflowName: "etl", RunID: "run_next", Time: minute.Add(time.Minute)})
	e.produceOn(e.onPartition(next, 0))
	want = map[string]bool{engine.AlertID("noisy", "fail", next.ID): true}
	deliveries.waitFor(20*time.Second, "noisy's alert of the next minute", deliveries.has(want), deliveries.missing(want))
	e.setQuota("noisy", -1)
	var more []*kgo.Record
	for i := range 5 {
		ev := workload.Event(workload.Spec{Tenant: "noisy", Type: schemas.TypeRunFailed, WorkflowName: "etl", RunID: fmt.Sprintf("run_free_%d", i), Time: minute.Add(time.Minute + time.Second)})
		more = append(more, e.onPartition(ev, 0))
		want[engine.AlertID("noisy", "fail", ev.ID)] = true
	}
	e.produceOn(more...)
	deliveries.waitFor(20*time.Second, "noisy's alerts once its override is cleared", deliveries.has(want), deliveries.missing(want))
}
