package processor_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// doublingBomb is a condition the compiler accepts (only let and string +)
// that doubles a 64-byte string 24 times: 1 GiB if nothing stopped it.
func doublingBomb() string {
	var b strings.Builder
	b.WriteString(`let s0 = "` + strings.Repeat("x", 64) + `";`)
	for i := 1; i <= 24; i++ {
		b.WriteString(" let s" + strconv.Itoa(i) + " = s" + strconv.Itoa(i-1) + " + s" + strconv.Itoa(i-1) + ";")
	}
	b.WriteString(" len(s24) > 0")
	return b.String()
}

// Issue #8's condition bomb, as a rule record an older control plane
// accepted and left on the rules topic (today's refuses it with 422).
const replaceBomb = `let a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; let b = replace(a, "", a); let c = replace(b, "", b); let d = replace(c, "", c); let e = replace(d, "", d); let f = replace(e, "", e); len(f) > 0`

// TestConditionBombIsARuleError: tenant A's rules hold condition bombs —
// one that compiles and goes over its evaluation budget on every event,
// and one put on the rules topic directly that no longer compiles. Tenant
// B's alerts (and A's other rule's) arrive exactly once, A's budget rule
// is reported on the rule-errors topic in the processor's transaction and
// counted, and the processor stays up.
func TestConditionBombIsARuleError(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const a, b = "ta", "tb"
	e.putEndpoint(a, "ep", true)
	e.putEndpoint(b, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: a, ID: "bomb", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true, Condition: doublingBomb(), Version: 4})
	e.putRule(schemas.RuleRecord{TenantID: a, ID: "replace", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true, Condition: replaceBomb})
	e.putRule(schemas.RuleRecord{TenantID: a, ID: "plain", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
	e.putRule(schemas.RuleRecord{TenantID: b, ID: "fail", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
	p := e.startProcessor("bomb", nil)

	const perTenant = 20
	want := map[string]bool{}
	var recs []*kgo.Record
	for range perTenant {
		evA := workload.Event(workload.Spec{Tenant: a, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
		evB := workload.Event(workload.Spec{Tenant: b, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
		want[engine.AlertID(a, "plain", evA.ID)] = true
		want[engine.AlertID(b, "fail", evB.ID)] = true
		recs = append(recs, e.record(evA), e.record(evB))
	}
	e.produce(recs...)

	deliveries := e.collect(e.topics.Deliveries)
	deliveries.waitFor(60*time.Second, "every alert of tenant B and of A's plain rule", deliveries.has(want), deliveries.missing(want))
	e.waitCaughtUp(30 * time.Second)
	deliveries.drain()
	assertExactlyOnce(t, deliveries.counts(), want)

	errs := e.collect(e.topics.RuleErrors)
	var got []schemas.RuleErrorRecord
	errs.waitFor(30*time.Second, "a rule-error record", func() bool { return len(errs.recs) > 0 }, func() string { return "none" })
	errs.drain()
	for _, r := range errs.recs {
		if err := schemas.Validate(schemas.KindRuleError, r.Value); err != nil {
			t.Fatalf("rule-error record %s is not valid: %v", r.Value, err)
		}
		var re schemas.RuleErrorRecord
		_ = json.Unmarshal(r.Value, &re)
		if string(r.Key) != string(schemas.RecordKey(a, "bomb")) {
			t.Fatalf("rule-error record under key %q, want %q", r.Key, schemas.RecordKey(a, "bomb"))
		}
		got = append(got, re)
	}
	// The first failure is reported at once; the others within the same
	// minute wait for the next record.
	if len(got) == 0 || got[0].RuleID != "bomb" || got[0].RuleVersion != 4 || !strings.Contains(got[0].Error, "budget") {
		t.Fatalf("rule-error records %+v, want the bomb rule's budget error", got)
	}
	if n := testenv.Metric(t, p.reg, "exo_processor_rule_errors_total", "reason", "budget"); n != perTenant {
		t.Fatalf("exo_processor_rule_errors_total{reason=budget} = %v, want %d", n, perTenant)
	}
	if p.exited {
		t.Fatalf("processor exited: %v", p.err)
	}
}
