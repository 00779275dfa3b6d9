package processor

import (
	"log/slog"
	"slices"
	"strconv"
	"testing"

	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// An aggregate rule watching workflow.run.finished is a candidate for both
// terminal types, and only those; the index counts active aggregate rules
// through creates, updates, deactivations and deletes.
func TestRuleIndexAggregates(t *testing.T) {
	t.Parallel()
	x := newRuleIndex(slog.New(slog.DiscardHandler))
	put := func(r schemas.RuleRecord) {
		r.TenantID = "acme"
		key := schemas.TenantKey(r.TenantID, r.ID)
		x.apply(ktable.Change[schemas.RuleRecord]{Key: key, Value: &r})
	}
	del := func(id string) { x.apply(ktable.Change[schemas.RuleRecord]{Key: schemas.TenantKey("acme", id)}) }
	ids := func(typ string) map[string]bool {
		m := map[string]bool{}
		for _, r := range x.Candidates("acme", typ) {
			m[r.ID] = true
		}
		return m
	}
	rate := schemas.RuleRecord{ID: "rate", IsActive: true, Kind: schemas.RuleKindRate, EventType: schemas.TypeRunFinished,
		WindowMS: 3600_000, SuccessRatioBelowBP: 9500, MinRuns: 10}
	put(rate)
	put(schemas.RuleRecord{ID: "count", IsActive: true, Kind: schemas.RuleKindCount, EventType: schemas.TypeRunFailed, WindowMS: 60_000, Threshold: 3})
	put(schemas.RuleRecord{ID: "per-event", IsActive: true, EventType: schemas.TypeRunFailed})
	put(schemas.RuleRecord{ID: "bad-finished", IsActive: true, EventType: schemas.TypeRunFinished}) // per-event: refused

	if got := ids(schemas.TypeRunSucceeded); len(got) != 1 || !got["rate"] {
		t.Fatalf("candidates for succeeded %v, want the rate rule", got)
	}
	if got := ids(schemas.TypeRunFailed); len(got) != 3 || !got["rate"] || !got["count"] || !got["per-event"] {
		t.Fatalf("candidates for failed %v, want rate, count, per-event", got)
	}
	if got := ids(schemas.TypeRunStarted); len(got) != 0 {
		t.Fatalf("candidates for started %v, want none", got)
	}
	if n := x.AggregateCount(); n != 2 {
		t.Fatalf("AggregateCount %d, want 2", n)
	}
	r := x.Get("acme", "rate")
	if r == nil || len(r.Spec) != 16 {
		t.Fatalf("rate rule %+v: want a 16-hex spec", r)
	}
	spec := r.Spec
	rate.Version, rate.Name = 2, "renamed" // not part of the spec
	put(rate)
	if r := x.Get("acme", "rate"); r.Spec != spec || x.AggregateCount() != 2 {
		t.Fatalf("renamed: spec %s (was %s), %d aggregates", r.Spec, spec, x.AggregateCount())
	}
	rate.SuccessRatioBelowBP = 9000
	put(rate)
	if r := x.Get("acme", "rate"); r.Spec == spec {
		t.Fatalf("ratio changed: spec %s unchanged", r.Spec)
	}
	rate.IsActive = false
	put(rate)
	if got := ids(schemas.TypeRunSucceeded); len(got) != 0 || x.AggregateCount() != 1 {
		t.Fatalf("deactivated: candidates for succeeded %v, %d aggregates; want none and 1", got, x.AggregateCount())
	}
	del("count")
	if got := ids(schemas.TypeRunFailed); len(got) != 1 || x.AggregateCount() != 0 {
		t.Fatalf("deleted: candidates for failed %v, %d aggregates; want per-event and 0", got, x.AggregateCount())
	}
}

// Candidates come in rule id order, and a list handed out is never changed
// by later rule changes (callers share it without a copy).
func TestRuleIndexCandidatesSharedAndOrdered(t *testing.T) {
	t.Parallel()
	x := newRuleIndex(slog.New(slog.DiscardHandler))
	put := func(id string, active bool) {
		r := schemas.RuleRecord{ID: id, TenantID: "acme", IsActive: active, EventType: schemas.TypeRunFailed}
		x.apply(ktable.Change[schemas.RuleRecord]{Key: schemas.TenantKey("acme", id), Value: &r})
	}
	ids := func(rs []*engine.Rule) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, id := range []string{"c", "a", "d", "b"} {
		put(id, true)
	}
	before := x.Candidates("acme", schemas.TypeRunFailed)
	if got := ids(before); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("candidates %v, want a b c d", got)
	}
	put("b", false)
	put("e", true)
	if got := ids(x.Candidates("acme", schemas.TypeRunFailed)); !slices.Equal(got, []string{"a", "c", "d", "e"}) {
		t.Fatalf("after changes: candidates %v, want a c d e", got)
	}
	if got := ids(before); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("a list handed out before the changes became %v", got)
	}
	if got := x.Candidates("acme", schemas.TypeRunSucceeded); got != nil {
		t.Fatalf("candidates of another type %v, want none", ids(got))
	}
	if got := x.Candidates("other", schemas.TypeRunFailed); got != nil {
		t.Fatalf("candidates of another tenant %v, want none", ids(got))
	}
}

// Rules with the same condition source share one compiled program: 7,000
// rules of 7 sources hold 7 programs, updates keep them, and the last rule
// of a source to go drops its program.
func TestRuleIndexSharesPrograms(t *testing.T) {
	t.Parallel()
	x := newRuleIndex(slog.New(slog.DiscardHandler))
	sources := []string{``, `labels.env == "prod"`, `error.code == "TIMEOUT"`, `labels.env == "prod" && run.attempt > 1`,
		`workflow.name in ["etl", "sync"]`, `run.duration_ms > 600000`, `labels.team == "ml"`}
	key := func(i int) string { return schemas.TenantKey("tenant_"+strconv.Itoa(i%1000), "rule_"+strconv.Itoa(i)) }
	put := func(i int, src string, active bool) {
		r := schemas.RuleRecord{ID: "rule_" + strconv.Itoa(i), TenantID: "tenant_" + strconv.Itoa(i%1000), IsActive: active,
			EventType: schemas.TypeRunFailed, Condition: src}
		x.apply(ktable.Change[schemas.RuleRecord]{Key: key(i), Value: &r})
	}
	for i := range 7000 {
		put(i, sources[i%len(sources)], true)
	}
	if n := x.progs.Len(); n != len(sources) {
		t.Fatalf("%d programs for 7,000 rules of %d sources", n, len(sources))
	}
	for i := range 7000 {
		if a, b := x.byKey[key(i)].Cond, x.byKey[key(i%len(sources))].Cond; a != b {
			t.Fatalf("rule %d does not share the program of rule %d (same source %q)", i, i%len(sources), sources[i%len(sources)])
		}
	}
	// An update that keeps its source keeps the program; one that changes
	// it takes the other source's.
	p := x.byKey[key(1)].Cond
	put(1, sources[1], true)
	if x.byKey[key(1)].Cond != p {
		t.Fatal("an update keeping the source compiled a new program")
	}
	put(1, sources[2], true)
	if x.byKey[key(1)].Cond != x.byKey[key(2)].Cond {
		t.Fatal("a rule changed to another source does not share its program")
	}
	// Rules of a source that do not compile are not cached.
	put(7000, `labels.env ==`, true)
	if _, ok := x.byKey[key(7000)]; ok || x.progs.Len() != len(sources) {
		t.Fatalf("a condition that does not compile: indexed %v, %d programs", ok, x.progs.Len())
	}
	for i := range 7000 {
		if i%2 == 0 {
			x.apply(ktable.Change[schemas.RuleRecord]{Key: key(i)})
		} else {
			put(i, sources[i%len(sources)], false)
		}
	}
	if x.progs.Len() != 0 || x.len() != 0 {
		t.Fatalf("every rule gone: %d programs and %d rules left", x.progs.Len(), x.len())
	}
}
