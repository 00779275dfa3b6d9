package engine

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// putFinished adds an aggregate rule watching workflow.run.finished, indexed
// under both terminal types as the processor's rule index does.
func (f *fakeRules) putFinished(tb testing.TB, rec schemas.RuleRecord) *Rule {
	tb.Helper()
	rec.EventType = schemas.TypeRunSucceeded
	r := f.put(tb, rec)
	f.index[r.TenantID][schemas.TypeRunFailed] = append(f.index[r.TenantID][schemas.TypeRunFailed], r)
	r.EventType = schemas.TypeRunFinished
	return r
}

// inputs validates the aggregate inputs of out against their schema and
// returns them.
func inputs(tb testing.TB, out Output) []schemas.AggregateInput {
	tb.Helper()
	for _, in := range out.Inputs {
		doc, err := json.Marshal(in)
		if err != nil {
			tb.Fatal(err)
		}
		if err := schemas.Validate(schemas.KindAggregateInput, doc); err != nil {
			tb.Fatalf("aggregate input is not valid: %v\n%s", err, doc)
		}
	}
	return out.Inputs
}

func countRule(id, eventType, cond string, groupBy ...string) schemas.RuleRecord {
	return schemas.RuleRecord{ID: id, Kind: schemas.RuleKindCount, EventType: eventType, Condition: cond,
		WindowMS: 15 * 60_000, Threshold: 3, GroupBy: groupBy, MaxGroups: 100}
}

func TestAggregateInputs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	count := b.rules.put(t, countRule("count", schemas.TypeRunFailed, `labels.env == "prod"`, "workflow.name", "labels.team", "error.code"))
	count.Spec = "0123456789abcdef"
	rate := b.rules.putFinished(t, schemas.RuleRecord{ID: "rate", Kind: schemas.RuleKindRate, WindowMS: 3600_000, SuccessRatioBelowBP: 9500, MinRuns: 10})
	rate.Spec = "fedcba9876543210"
	// An endpoint that cannot receive does not stop the counting.
	off := b.rules.put(t, countRule("count-endpoint-off", schemas.TypeRunFailed, ""))
	off.WebhookEndpointID = "ep_off"
	b.rules.put(t, schemas.RuleRecord{ID: "per-event", EventType: schemas.TypeRunFailed})

	t1 := t0.Add(1500 * time.Millisecond)
	out := b.eng.Event(part, failed(t, "r1", t1, withLabels("env", "prod", "team", "data"), withError("NODE_ERRORED", "boom")))
	if alerts := check(t, out); len(alerts) != 1 || alerts[0].RuleID != "per-event" {
		t.Fatalf("deliveries %v, want only the per-event rule's: aggregate rules do not alert per event", ruleIDs(check(t, out)))
	}
	if out.Matched != 1 {
		t.Fatalf("matched %d, want 1", out.Matched)
	}
	got := map[string]schemas.AggregateInput{}
	for _, in := range inputs(t, out) {
		if _, dup := got[in.RuleID]; dup {
			t.Fatalf("two inputs of rule %s for one event", in.RuleID)
		}
		got[in.RuleID] = in
	}
	if len(got) != 3 {
		t.Fatalf("inputs of rules %v, want count, rate and count-endpoint-off", got)
	}
	c := got["count"]
	wantEvent := schemas.AggregateEvent{ID: "ev_fail_r1", Type: schemas.TypeRunFailed, RunID: "r1", Workflow: schemas.Workflow{ID: "wf_1", Name: "nightly-etl"}, ErrorCode: "NODE_ERRORED"}
	switch {
	case c.Kind != schemas.AggregateInputKindInput || c.TenantID != "acme" || c.Spec != "0123456789abcdef" || c.Outcome != schemas.AggregateOutcomeMatched:
		t.Fatalf("count input %+v", c)
	case len(c.Group) != 3 || c.Group[0] != "nightly-etl" || c.Group[1] != "data" || c.Group[2] != "NODE_ERRORED":
		t.Fatalf("count input group %q, want the values of workflow.name, labels.team, error.code", c.Group)
	case !c.At.Equal(t1) || c.Event == nil || *c.Event != wantEvent:
		t.Fatalf("count input at %v event %+v, want %v %+v", c.At, c.Event, t1, wantEvent)
	}
	if r := got["rate"]; r.Outcome != schemas.AggregateOutcomeFailed || r.Spec != "fedcba9876543210" || r.Group != nil {
		t.Fatalf("rate input %+v, want outcome failed, no group", r)
	}

	steps := []struct {
		name string
		ev   *schemas.WorkflowEvent
		want map[string]string // rule -> outcome
	}{
		{"the same failure again (a duplicate)", failed(t, "r1", t1, withLabels("env", "prod")), nil},
		{"a failure outside the condition", failed(t, "r2", t1, withLabels("env", "dev")), map[string]string{"rate": "failed", "count-endpoint-off": "matched"}},
		{"a success", succeeded(t, "r3", t1), map[string]string{"rate": "succeeded"}},
		{"a start", started(t, "r4", t1), nil},
		{"a failure without the labels", failed(t, "r5", t1, withLabels("env", "prod")), map[string]string{"count": "matched", "rate": "failed", "count-endpoint-off": "matched"}},
	}
	for _, s := range steps {
		ins := inputs(t, b.eng.Event(part, s.ev))
		gotOut := map[string]string{}
		for _, in := range ins {
			gotOut[in.RuleID] = in.Outcome
		}
		if len(ins) != len(s.want) || len(gotOut) != len(s.want) {
			t.Fatalf("%s: inputs %v, want %v", s.name, gotOut, s.want)
		}
		for rule, o := range s.want {
			if gotOut[rule] != o {
				t.Fatalf("%s: inputs %v, want %v", s.name, gotOut, s.want)
			}
		}
		if s.name == "a failure without the labels" && ins[0].RuleID == "count" && (ins[0].Group[1] != "" || ins[0].Group[2] != "") {
			t.Fatalf("%s: group %q, want the missing label and error code as \"\"", s.name, ins[0].Group)
		}
	}
}

func TestAggregateInputsUndoneOnAbort(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.rules.put(t, countRule("count", schemas.TypeRunFailed, ""))
	ev := failed(t, "r1", t0)
	b.eng.Begin()
	if n := len(inputs(t, b.eng.Event(part, ev))); n != 1 {
		t.Fatalf("%d inputs, want 1", n)
	}
	b.eng.Abort()
	// The batch is processed again: the event is not a duplicate.
	b.eng.Begin()
	if n := len(inputs(t, b.eng.Event(part, ev))); n != 1 {
		t.Fatalf("after an abort: %d inputs, want 1 (the aborted batch left its run state behind)", n)
	}
	b.eng.Commit()
	if n := len(inputs(t, b.eng.Event(part, ev))); n != 0 {
		t.Fatalf("after the commit: %d inputs for a duplicate, want 0", n)
	}
	if n := b.eng.Stats.AggregateInputs.Load(); n != 1 {
		t.Fatalf("AggregateInputs %d, want 1 (the aborted batch not counted)", n)
	}
}

func TestAggregateDurationCountRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec := slowRule("slow-count", 5*time.Minute, `labels.env == "prod"`)
	rec.Kind, rec.WindowMS, rec.Threshold, rec.GroupBy = schemas.RuleKindCount, 3600_000, 2, []string{"labels.team"}
	b.rules.put(t, rec)
	b.event(t, started(t, "slow", t0, withLabels("env", "prod", "team", "data")))
	b.event(t, started(t, "dev", t0, withLabels("env", "dev")))
	b.event(t, started(t, "fast", t0, withLabels("env", "prod")))
	b.event(t, succeeded(t, "fast", t0.Add(time.Minute)))

	b.clock.now = t0.Add(4 * time.Minute)
	if out := b.eng.Tick(part, true); len(out.Inputs) != 0 {
		t.Fatalf("before the deadline: inputs %+v", out.Inputs)
	}
	b.clock.now = t0.Add(6 * time.Minute)
	out := b.eng.Tick(part, true)
	none(t, "past the deadline", check(t, out))
	ins := inputs(t, out)
	if len(ins) != 1 {
		t.Fatalf("past the deadline: %d inputs %+v, want one, for the slow prod run", len(ins), ins)
	}
	in := ins[0]
	if in.RuleID != "slow-count" || in.Outcome != schemas.AggregateOutcomeMatched || !in.At.Equal(t0.Add(5*time.Minute)) ||
		len(in.Group) != 1 || in.Group[0] != "data" || in.Event.ID != "ev_start_slow" || in.Event.Type != schemas.TypeRunDurationExceeded || in.Event.RunID != "slow" {
		t.Fatalf("input %+v event %+v", in, in.Event)
	}
	b.clock.now = t0.Add(time.Hour)
	if out := b.eng.Tick(part, true); len(out.Inputs) != 0 {
		t.Fatalf("later: inputs %+v, want none (one per run)", out.Inputs)
	}
}
