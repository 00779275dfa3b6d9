package processor_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// TestEndpointChangesApplyToRules changes an endpoint while the processor
// runs: every event is matched against the endpoint as the endpoints topic
// held it when the event was produced — a rule whose endpoint does not
// exist yet, is made active, made inactive, deleted, made active again,
// and a rule replaced while its endpoint is active. Another rule, on an
// endpoint that never changes, alerts for every event.
func TestEndpointChangesApplyToRules(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const tn = "te"
	e.putEndpoint(tn, "steady", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "steady", EventType: schemas.TypeRunFailed, WebhookEndpointID: "steady", IsActive: true})
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "moving", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
	deliveries := e.collect(e.topics.Deliveries)
	e.startProcessor("endpoints", nil)

	want := map[string]bool{}
	step := func(what string, moving bool) {
		t.Helper()
		ev := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
		e.produce(e.record(ev))
		steady := engine.AlertID(tn, "steady", ev.ID)
		want[steady] = true
		if moving {
			want[engine.AlertID(tn, "moving", ev.ID)] = true
		}
		// The steady rule's alert says the event was processed; the moving
		// rule's, when due, is in the same transaction.
		deliveries.waitFor(30*time.Second, what, deliveries.has(map[string]bool{steady: true}), deliveries.missing(map[string]bool{steady: true}))
	}
	step("endpoint not there yet", false)
	e.putEndpoint(tn, "ep", true)
	step("endpoint active", true)
	e.putEndpoint(tn, "ep", false)
	step("endpoint inactive", false)
	e.produce(&kgo.Record{Topic: e.topics.Endpoints, Key: schemas.RecordKey(tn, "ep")}) // deleted
	step("endpoint deleted", false)
	e.putEndpoint(tn, "ep", true)
	step("endpoint active again", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "moving", Name: "moving, renamed", Version: 2, EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
	step("rule replaced, endpoint active", true)

	deliveries.waitFor(30*time.Second, "every alert", deliveries.has(want), deliveries.missing(want))
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want)
}
