package engine

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// budgetBomb compiles (it uses only allowed operations) but doubles a
// string past the evaluation budget on every event.
func budgetBomb() string {
	var b strings.Builder
	b.WriteString(`let s0 = "` + strings.Repeat("x", 64) + `";`)
	for i := 1; i <= 20; i++ {
		b.WriteString(" let s" + strconv.Itoa(i) + " = s" + strconv.Itoa(i-1) + " + s" + strconv.Itoa(i-1) + ";")
	}
	b.WriteString(" len(s20) > 0")
	return b.String()
}

// A rule whose condition goes over its budget is skipped for that event and
// reported, at most once a minute with the failures counted; the other
// rules, of the same tenant and of others, alert as usual.
func TestRuleErrorSkipsOnlyThatRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.rules.put(t, schemas.RuleRecord{ID: "bomb", EventType: schemas.TypeRunFailed, Condition: budgetBomb(), Version: 3})
	b.rules.put(t, schemas.RuleRecord{ID: "on_fail", EventType: schemas.TypeRunFailed})
	b.rules.put(t, schemas.RuleRecord{TenantID: "globex", ID: "on_fail", EventType: schemas.TypeRunFailed})

	var records []schemas.RuleErrorRecord
	alerts := map[string]int{}
	for i := range 5 {
		for _, tenant := range []string{"acme", "globex"} {
			ev := newEvent(t, schemas.TypeRunFailed, "ev_"+tenant+strconv.Itoa(i), "run_"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Second), withTenant(tenant))
			out := b.eng.Event(0, ev)
			for _, a := range check(t, out) {
				alerts[a.TenantID+"/"+a.RuleID]++
			}
			records = append(records, out.RuleErrors...)
		}
	}
	if alerts["acme/on_fail"] != 5 || alerts["globex/on_fail"] != 5 || alerts["acme/bomb"] != 0 {
		t.Fatalf("alerts by rule %v, want 5 of each on_fail and none of bomb", alerts)
	}
	if len(records) != 1 || records[0].Errors != 1 || records[0].RuleID != "bomb" || records[0].RuleVersion != 3 ||
		records[0].EventID != "ev_acme"+strconv.Itoa(0) || !strings.Contains(records[0].Error, "budget") {
		t.Fatalf("rule errors %+v, want one record of the first failure naming the budget", records)
	}
	// Within the minute nothing more; a minute later the 4 failures since.
	if out := b.eng.Tick(0, false); len(out.RuleErrors) != 0 {
		t.Fatalf("Tick within the minute reported %+v", out.RuleErrors)
	}
	b.clock.now = b.clock.now.Add(RuleErrorInterval)
	out := b.eng.Tick(0, false)
	if len(out.RuleErrors) != 1 || out.RuleErrors[0].Errors != 4 || out.RuleErrors[0].EventID != "ev_acme"+strconv.Itoa(4) {
		t.Fatalf("rule errors a minute later %+v, want one counting 4 failures", out.RuleErrors)
	}
	for _, rec := range append(records, out.RuleErrors...) {
		doc, _ := json.Marshal(rec)
		if err := schemas.Validate(schemas.KindRuleError, doc); err != nil {
			t.Fatalf("rule error %s is not valid: %v", doc, err)
		}
	}
	if n, m := b.eng.Stats.RuleErrorsBudget.Load(), b.eng.Stats.RuleErrorsRuntime.Load(); n != 5 || m != 0 {
		t.Fatalf("rule errors counted budget %d, runtime %d; want 5, 0", n, m)
	}
	if out := b.eng.Tick(0, false); len(out.RuleErrors) != 0 {
		t.Fatalf("nothing pending, yet Tick reported %+v", out.RuleErrors)
	}
}

// A run-time failure is a rule error of reason runtime; the record does not
// quote the event's data.
func TestRuleErrorRuntime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.rules.put(t, schemas.RuleRecord{ID: "num", EventType: schemas.TypeRunFailed, Condition: `int(labels.n) > 1`})
	out := b.eng.Event(0, failed(t, "run_1", t0, withLabels("n", "private-value")))
	if len(out.RuleErrors) != 1 || strings.Contains(out.RuleErrors[0].Error, "private") || b.eng.Stats.RuleErrorsRuntime.Load() != 1 {
		t.Fatalf("rule errors %+v (runtime count %d), want one without the label's value", out.RuleErrors, b.eng.Stats.RuleErrorsRuntime.Load())
	}
}

// A batch that aborts is processed again: its rule errors are reported
// again and counted once.
func TestRuleErrorUndoneOnAbort(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.rules.put(t, schemas.RuleRecord{ID: "bomb", EventType: schemas.TypeRunFailed, Condition: budgetBomb()})
	ev := failed(t, "run_1", t0)
	b.eng.Begin()
	if out := b.eng.Event(0, ev); len(out.RuleErrors) != 1 {
		t.Fatalf("rule errors %+v, want 1", out.RuleErrors)
	}
	b.eng.Abort()
	b.eng.Begin()
	out := b.eng.Event(0, ev)
	b.eng.Commit()
	if len(out.RuleErrors) != 1 || out.RuleErrors[0].Errors != 1 {
		t.Fatalf("after abort, rule errors %+v, want the same one again", out.RuleErrors)
	}
	if n := b.eng.Stats.RuleErrorsBudget.Load(); n != 1 {
		t.Fatalf("budget errors counted %d, want 1", n)
	}
}
