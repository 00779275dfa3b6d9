package processor_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// setRollout publishes a tenant's state (or the default's, key "*") on the
// tenants topic; "" is a tombstone (no explicit state).
func (e *kenv) setRollout(key, state string) {
	e.t.Helper()
	var v []byte
	if state != "" {
		v, _ = json.Marshal(schemas.TenantRecord{TenantID: key, State: state, UpdatedAt: time.Now().UTC()})
	}
	e.produce(&kgo.Record{Topic: e.topics.Tenants, Key: []byte(key), Value: v})
}

// A tenant switched off gets no alerts from the events produced after the
// switch — neither its rules' nor the duration alerts of its runs in
// progress — and its events are counted tenant_off, while another tenant
// keeps getting its alerts. Switched back on, its run still running past
// its threshold alerts (as after a rule is reactivated) and its new events
// alert again. No restart.
func TestTenantSwitchedOffGetsNoAlerts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, tn := range []string{"off", "on"} {
		e.putEndpoint(tn, "ep", true)
		e.putRule(schemas.RuleRecord{TenantID: tn, ID: "fail", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
		e.putRule(schemas.RuleRecord{TenantID: tn, ID: "slow", EventType: schemas.TypeRunDurationExceeded, WebhookEndpointID: "ep",
			IsActive: true, DurationThresholdMS: 1000})
	}
	deliveries := e.collect(e.topics.Deliveries)
	p := e.startProcessor("rollout", nil)
	tenantOff := func() float64 { return testenv.Metric(t, p.reg, "exo_processor_events_total", "outcome", "tenant_off") }
	if n := tenantOff(); n != 0 {
		t.Fatalf("tenant_off before any event: %v", n)
	}

	// Switched off; the processor catches up with the tenants topic before
	// each batch, so every event produced from now on sees it.
	e.setRollout("off", "off")
	now := time.Now().UTC().Truncate(time.Millisecond)
	ev := func(tenant, typ, run string) schemas.WorkflowEvent {
		return workload.Event(workload.Spec{Tenant: tenant, Type: typ, WorkflowName: "etl", RunID: run, Time: now})
	}
	offFailed, onFailed := ev("off", schemas.TypeRunFailed, "run_f1"), ev("on", schemas.TypeRunFailed, "run_f2")
	e.produceOn(e.onPartition(ev("off", schemas.TypeRunStarted, "run_slow"), 1), e.onPartition(ev("on", schemas.TypeRunStarted, "run_slow"), 1),
		e.onPartition(offFailed, 1), e.onPartition(onFailed, 1))

	// "on"'s duration alert comes once the partition's watermark passed the
	// deadline both runs share: "off"'s would have fired by then.
	want := map[string]bool{
		engine.AlertID("on", "fail", onFailed.ID):        true,
		engine.DurationAlertID("on", "slow", "run_slow"): true,
	}
	deliveries.waitFor(20*time.Second, "the served tenant's alerts", deliveries.has(want), deliveries.missing(want))
	e.waitCaughtUp(20 * time.Second)
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want)
	if n := tenantOff(); n != 2 {
		t.Errorf("exo_processor_events_total{outcome=tenant_off} = %v, want 2 (the switched-off tenant's events)", n)
	}

	// Switched back on (its state cleared: the default, ga, serves it).
	e.setRollout("off", "")
	again := ev("off", schemas.TypeRunFailed, "run_f3")
	e.produceOn(e.onPartition(again, 1))
	for id := range map[string]bool{engine.AlertID("off", "fail", again.ID): true, engine.DurationAlertID("off", "slow", "run_slow"): true} {
		want[id] = true
	}
	deliveries.waitFor(20*time.Second, "the tenant's alerts once it is on again", deliveries.has(want), deliveries.missing(want))
	e.waitCaughtUp(20 * time.Second)
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want) // and none for the events it had while off
	if n := tenantOff(); n != 2 {
		t.Errorf("tenant_off = %v after the tenant is on again, want still 2", n)
	}

	// The global kill switch: nobody; then ga again.
	e.setRollout(schemas.RolloutDefaultKey, "off")
	killed := []schemas.WorkflowEvent{ev("on", schemas.TypeRunFailed, "run_k1"), ev("off", schemas.TypeRunFailed, "run_k2")}
	e.produce(e.record(killed[0]), e.record(killed[1]))
	e.waitCaughtUp(20 * time.Second)
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want)
	eventually(t, 5*time.Second, "tenant_off to count the events of the kill switch", func() bool { return tenantOff() == 4 },
		func() string { return fmt.Sprintf("tenant_off %v", tenantOff()) })
}
