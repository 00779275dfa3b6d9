package engine

import (
	"strconv"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/processor/quota"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The delivery quota comes after a rule's rate limit: an alert the rule
// suppresses spends none of the tenant's quota, an alert the quota refuses
// produces no delivery, and another tenant is not affected.
func TestQuotaAfterNoiseControl(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := quota.New(quota.Config{TenantDefault: 3, Partitions: 1}, nil)
	b.eng = New(Config{Clock: b.clock, Grace: grace, MaxRunAge: maxRunAge, Quota: q}, b.rules, b.eps)
	for _, tenant := range []string{"acme", "globex"} {
		b.rules.put(t, schemas.RuleRecord{TenantID: tenant, ID: "limited", EventType: schemas.TypeRunFailed, RateLimitPerMinute: 2})
		b.rules.put(t, schemas.RuleRecord{TenantID: tenant, ID: "all", EventType: schemas.TypeRunFailed})
	}
	got := map[string]int{}
	for i := range 5 {
		for _, a := range b.event(t, failed(t, "run_"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Second))) {
			got[a.TenantID+"/"+a.RuleID]++
		}
	}
	a := b.event(t, failed(t, "run_g", t0.Add(10*time.Second), withTenant("globex")))
	// acme: "all" asks the quota 5 times, "limited" twice (its rate limit
	// suppresses its 3 others before the quota is asked): 7 asked, 3
	// admitted, 4 suppressed by the quota.
	if n := got["acme/limited"] + got["acme/all"]; n != 3 {
		t.Fatalf("acme alerts %v, want 3 in all", got)
	}
	if len(a) != 2 {
		t.Fatalf("globex got %d alerts, want its 2: another tenant's quota must not touch it", len(a))
	}
	usage := q.Usage()
	if len(usage) != 1 || usage[0].TenantID != "acme" || usage[0].Suppressed != 4 {
		t.Fatalf("usage %+v, want acme 4 suppressed", usage)
	}
	if n := b.eng.Stats.SuppressedRate.Load(); n != 3 {
		t.Fatalf("rate-limited %d, want 3", n)
	}
}

// Duration alerts are admitted by the quota too, in the partition whose
// watermark made them due.
func TestQuotaDurationAlerts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := quota.New(quota.Config{TenantDefault: 1, Partitions: 1}, nil)
	b.eng = New(Config{Clock: b.clock, Grace: grace, MaxRunAge: maxRunAge, Quota: q}, b.rules, b.eps)
	b.rules.put(t, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 60_000})
	for _, run := range []string{"run_1", "run_2"} {
		none(t, "start "+run, b.event(t, started(t, run, t0)))
	}
	if alerts := b.tick(t, t0.Add(2*time.Minute), true); len(alerts) != 1 {
		t.Fatalf("%d duration alerts, want 1 under a quota of 1", len(alerts))
	}
	if u := q.Usage(); len(u) != 1 || u[0].Suppressed != 1 || !u[0].Minute.Equal(t0.Add(time.Minute)) {
		t.Fatalf("usage %+v, want 1 suppressed in the deadline's minute", u)
	}
}
