package aggregate

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// one runs a step in a batch and returns its output and the Flush's.
func (r *rig) one(a act) (Output, Output) {
	r.e.Begin()
	out := a(r)
	fl := r.e.Flush(0)
	r.e.Commit()
	validateRecords(r.t, fl)
	return out, fl
}

// TestDeliveryRecords: the firing, repeat and resolve of a count episode
// carry the §3.2 ids, the rule's delivery settings and the §3.3 payload.
func TestDeliveryRecords(t *testing.T) {
	t.Parallel()
	rule := countRule("rul_c", 15*time.Minute, 2)
	rule.GroupBy, rule.RepeatIntervalMS, rule.Version = []string{"workflow.name", "labels.team"}, (5 * time.Minute).Milliseconds(), 7
	r := newRig(t, Config{}, rule)
	r.one(mark(0, 0))
	r.one(input("rul_c", time.Minute, matched, "nightly-etl", "data"))
	crossing := r.in("rul_c", time.Minute+time.Second, matched, "nightly-etl", "data")
	r.e.Begin()
	out := r.e.Input(0, crossing)
	r.e.Commit()
	if len(out.Deliveries) != 1 {
		t.Fatalf("deliveries %+v", out.Deliveries)
	}
	fire := out.Deliveries[0]
	inc := IncidentID("acme", "rul_c", GroupKey("acme", "rul_c", []string{"nightly-etl", "data"}), crossing.At)
	if fire.AlertID != FiringAlertID(inc) || fire.TenantID != "acme" || fire.RuleID != "rul_c" || fire.EndpointID != "wh_1" ||
		fire.EventType != schemas.TypeAlertFiring || fire.MaxAttempts != 5 || fire.RuleVersion != 7 || fire.Severity != "critical" ||
		!fire.CreatedAt.Equal(crossing.At) {
		t.Fatalf("firing record %+v", fire)
	}
	p := payloadOf(t, fire)
	a := p.Data.Aggregate
	if p.Data.AlertID != fire.AlertID || p.Data.Rule != (schemas.RuleRef{ID: "rul_c", Name: "rule rul_c"}) ||
		p.Data.Event != (schemas.EventRef{ID: crossing.Event.ID, Type: schemas.TypeRunFailed, OccurredAt: crossing.At}) ||
		p.Data.Workflow.Name != "nightly-etl" || p.Data.Run.ID != crossing.Event.RunID || p.Data.Run.Status != "failed" ||
		p.Data.Error == nil || p.Data.Error.Code != "NODE_ERRORED" || !maps.Equal(p.Data.Labels, map[string]string{"team": "data"}) ||
		a.IncidentID != inc || a.Kind != "count" || a.State != "firing" || a.WindowMS != 900_000 || *a.Threshold != 2 ||
		!maps.Equal(a.Group, map[string]string{"workflow.name": "nightly-etl", "labels.team": "data"}) ||
		*a.Value.Matched != 2 || !a.FiringSince.Equal(crossing.At) || a.ResolvedAt != nil || a.Repeat != 0 {
		t.Fatalf("firing payload %s", fire.Payload)
	}

	// The rule moves to another endpoint: the repeat goes there, the
	// resolve to the endpoint that got the firing. The quota is asked for
	// the firing and the repeat only.
	moved := rule
	moved.WebhookEndpointID = "wh_2"
	r.one(setRule(moved))
	rep, _ := r.one(mark(0, 7*time.Minute))
	if len(rep.Deliveries) != 1 || rep.Deliveries[0].AlertID != RepeatAlertID(inc, 1) || rep.Deliveries[0].EndpointID != "wh_2" ||
		payloadOf(t, rep.Deliveries[0]).Data.Aggregate.Repeat != 1 || rep.Deliveries[0].RuleVersion != 8 {
		t.Fatalf("repeat %+v", rep.Deliveries)
	}
	res, _ := r.one(mark(0, time.Hour))
	if len(res.Deliveries) != 2 || res.Deliveries[0].AlertID != RepeatAlertID(inc, 2) || res.Deliveries[0].EndpointID != "wh_2" {
		t.Fatalf("second repeat and resolve %+v", res.Deliveries)
	}
	d := res.Deliveries[1]
	p = payloadOf(t, d)
	a = p.Data.Aggregate
	at := t0.Add(16*time.Minute + 15*time.Second)
	if d.AlertID != ResolvedAlertID(inc) || d.EndpointID != "wh_1" || d.EventType != schemas.TypeAlertResolved || d.RuleVersion != 7 ||
		p.Data.Event != (schemas.EventRef{ID: inc, Type: schemas.TypeAlertResolved, OccurredAt: at}) || p.Data.Error != nil ||
		p.Data.Run.ID != crossing.Event.RunID || a.State != "resolved" || !a.ResolvedAt.Equal(at) ||
		*a.ResolveReason != schemas.ResolveReasonConditionFalse || a.IncidentID != inc || *a.Value.Matched != 0 {
		t.Fatalf("resolve %+v\n%s", d, d.Payload)
	}
	if len(r.q.asked) != 3 || !r.q.asked[0].Equal(crossing.At) {
		t.Fatalf("quota asked at %v, want the firing and the repeats only", r.q.asked)
	}
}

// TestRateDeliveryNamesLastFailure: a rate firing, decided at a boundary,
// names the group's last failed run and the window's ratio.
func TestRateDeliveryNamesLastFailure(t *testing.T) {
	t.Parallel()
	r := newRig(t, Config{}, rateRule("rul_r", time.Hour, 9_500, 10))
	r.one(mark(0, 0))
	r.play(finished("rul_r", time.Minute, 0, 2))
	last := r.in("rul_r", time.Minute+2*time.Second, failed)
	r.one(func(r *rig) Output { return r.e.Input(0, last) })
	r.play(finished("rul_r", time.Minute+3*time.Second, 9, 0))
	out, _ := r.one(mark(0, 2*time.Minute))
	if len(out.Deliveries) != 1 {
		t.Fatalf("deliveries %+v", out.Deliveries)
	}
	p := payloadOf(t, out.Deliveries[0])
	a := p.Data.Aggregate
	if p.Data.Event.ID != last.Event.ID || p.Data.Run.Status != "failed" || p.Data.Error != nil || a.Kind != "rate" ||
		*a.SuccessRatioBelow != 0.95 || *a.MinRuns != 10 || a.Threshold != nil || *a.Value.Failed != 3 || *a.Value.Succeeded != 9 ||
		*a.Value.Ratio != 0.75 || !a.FiringSince.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("rate firing %s", out.Deliveries[0].Payload)
	}
}

// TestLaggingSourceCannotFakeALowRatio: the failures of one events
// partition arrive before the successes of a lagging one; the rate rule
// decides only once both reported past the boundary, on the whole window.
func TestLaggingSourceCannotFakeALowRatio(t *testing.T) {
	t.Parallel()
	// Success ratio below 0.8 with at least 5 runs: the 5 failures alone
	// would fire; with the 50 successes of the same minute (50/55) not.
	r := newRig(t, Config{Sources: 2}, rateRule("rul_r", time.Hour, 8_000, 5))
	got, _ := r.play(steps(mark(0, 0), mark(1, 0), finished("rul_r", time.Minute, 0, 5), mark(0, 10*time.Minute),
		finished("rul_r", time.Minute+5*time.Second, 50, 0), mark(1, 10*time.Minute), mark(0, 3*time.Hour), mark(1, 3*time.Hour)))
	if len(got) != 0 {
		t.Fatalf("deliveries %v, want none: 50 of 55 runs succeeded", got)
	}
	if w := r.e.Watermark(0); !w.Equal(t0.Add(3 * time.Hour)) {
		t.Fatalf("watermark %v", w)
	}
}

// TestStatsGaugesAndPartitions: the counters count each input once by its
// outcome and each transition; an aborted batch counts nothing.
func TestStatsGaugesAndPartitions(t *testing.T) {
	t.Parallel()
	rule := countRule("rul_c", 15*time.Minute, 3)
	rule.GroupBy, rule.MaxGroups, rule.HoldMS = []string{"workflow.name"}, 2, 60_000
	r := newRig(t, Config{Delay: time.Second}, rule)
	if !r.e.Assigned(0) || r.e.Assigned(1) || !r.e.Watermark(0).IsZero() {
		t.Fatal("partition 0 only, no watermark yet")
	}
	stale := r.in("rul_c", time.Minute, matched, "a")
	stale.Spec = "0000000000000000"
	wrong := r.in("rul_c", time.Minute, failed, "a")
	r.play(steps(mark(0, 20*time.Minute), inputs("rul_c", 10*time.Minute, 3, matched, "a"), input("rul_c", time.Minute, matched, "a"),
		input("rul_c", 10*time.Minute, matched, "b"), input("rul_c", 10*time.Minute, matched, "c"),
		act(func(r *rig) Output { r.e.Input(0, wrong); return r.e.Input(0, stale) })))
	if got := r.e.Groups(); got[schemas.AggregateStateFiring] != 1 || got[schemas.AggregateStateInactive] != 1 || got[schemas.AggregateStateResolving] != 0 {
		t.Fatalf("groups %v", got)
	}
	if w := r.e.Watermark(0); !w.Equal(t0.Add(20*time.Minute - time.Second)) {
		t.Fatalf("watermark %v, want the marker less the delay", w)
	}
	r.e.Begin()
	r.e.Input(0, marker(0, 2*time.Hour))
	r.e.Input(0, r.in("rul_c", 3*time.Hour, matched, "d"))
	r.e.Abort()
	r.play(steps(mark(0, 25*time.Minute+10*time.Second), mark(0, time.Hour)))
	want := [8]uint64{4, 1, 1, 2, 1, 1, 1, 0} // counted, late, dropped, stale_spec, firing, resolving, resolved, repeat
	if got := statsOf(r.e.Stats); got != want {
		t.Fatalf("stats %v, want %v", got, want)
	}
	if got := r.e.Groups(); got[schemas.AggregateStateFiring]+got[schemas.AggregateStateInactive]+got[schemas.AggregateStateResolving] != 0 {
		t.Fatalf("groups after every window passed: %v", got)
	}
	r.e.Revoke(0)
	if r.e.Assigned(0) || len(r.e.Input(0, marker(0, 0)).Deliveries) != 0 || r.e.Tick(0).States != nil || r.e.Flush(0).States != nil ||
		!r.e.Watermark(0).IsZero() {
		t.Fatal("a revoked partition still answers")
	}
	src := int32(5)
	r.e.Assign(0, nil)
	if out := r.e.Input(0, &schemas.AggregateInput{Kind: schemas.AggregateInputKindWatermark, SourcePartition: &src, Watermark: t0}); len(r.e.Flush(0).States) != 0 || out.Deliveries != nil {
		t.Fatal("a marker of an unknown source was taken")
	}
}

type statusRec struct {
	key   string
	value *schemas.AggregateGroupStatus
}

func statuses(t *testing.T, cs []StateChange) []statusRec {
	t.Helper()
	var out []statusRec
	for _, c := range cs {
		s := statusRec{key: c.Key}
		if c.Value != nil {
			s.value = &schemas.AggregateGroupStatus{}
			if err := json.Unmarshal(c.Value, s.value); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, s)
	}
	return out
}

// TestStatusRecords: a group's status is written on every state change
// and, firing or resolving, once per minute of event time; a dropped group
// and a removed rule leave tombstones; the rule's summary counts its groups,
// drops and late inputs.
func TestStatusRecords(t *testing.T) {
	t.Parallel()
	rule := countRule("rul_c", 15*time.Minute, 2)
	rule.GroupBy, rule.MaxGroups = []string{"workflow.name"}, 1
	r := newRig(t, Config{}, rule)
	gk := "acme/rul_c/" + GroupKey("acme", "rul_c", []string{"a"})
	_, fl := r.one(input("rul_c", time.Minute, matched, "a"))
	st := statuses(t, fl.Status)
	if len(st) != 2 || st[0].key != "acme/rul_c" || st[0].value.Rule.Groups != 1 || st[1].key != gk || st[1].value.Group.State != "inactive" ||
		!maps.Equal(st[1].value.Group.Group, map[string]string{"workflow.name": "a"}) || *st[1].value.Group.Value.Matched != 1 || st[1].value.Group.EvaluatedAt != nil {
		t.Fatalf("new group: %+v", st)
	}
	r.one(mark(0, 30*time.Second))
	_, fl = r.one(input("rul_c", time.Minute+time.Second, matched, "a"))
	if st = statuses(t, fl.Status); len(st) != 1 || st[0].value.Group.State != "firing" || st[0].value.Group.FiringSince == nil ||
		st[0].value.Group.IncidentID == "" || st[0].value.Group.RuleVersion != 1 {
		t.Fatalf("firing: %+v", st)
	}
	// Firing: one refresh per minute of E, none in between.
	var refreshes int
	for s := 31; s < 150; s += 7 {
		_, fl = r.one(mark(0, time.Duration(s)*time.Second))
		refreshes += len(fl.Status)
	}
	if refreshes != 2 { // E crosses 1m and 2m
		t.Fatalf("%d refreshes of a firing group over 2 minutes, want 2", refreshes)
	}
	_, fl = r.one(input("rul_c", 3*time.Minute, matched, "b"))
	if st = statuses(t, fl.Status); len(st) != 1 || st[0].value.Rule == nil || st[0].value.Rule.Dropped != 1 {
		t.Fatalf("drop: %+v", st)
	}
	_, fl = r.one(input("rul_c", -30*time.Minute, matched, "a"))
	if st = statuses(t, fl.Status); len(st) != 1 || st[0].value.Rule.Late != 1 || st[0].value.Rule.Groups != 1 {
		t.Fatalf("late: %+v", st)
	}
	_, fl = r.one(mark(0, time.Hour))
	st = statuses(t, fl.Status)
	keys := []string{}
	for _, s := range st {
		keys = append(keys, s.key)
	}
	if !slices.Equal(keys, []string{"acme/rul_c", gk}) || st[0].value.Rule.Groups != 0 || st[1].value != nil {
		t.Fatalf("resolved and dropped: %+v", st)
	}
	for _, s := range fl.States {
		if s.Key == gk && s.Value != nil {
			t.Fatal("the dropped group's changelog record is not a tombstone")
		}
	}
	r.one(input("rul_c", time.Hour, matched, "a"))
	_, fl = r.one(removeRule("rul_c"))
	if st = statuses(t, fl.Status); len(st) != 2 || st[0].key != "acme/rul_c" || st[0].value != nil || st[1].value != nil {
		t.Fatalf("rule removed: %+v", st)
	}
}

// TestSpecOf: the spec covers what decides the windows and the condition,
// not the delivery settings.
func TestSpecOf(t *testing.T) {
	t.Parallel()
	base := countRule("rul_c", 15*time.Minute, 3)
	base.GroupBy = []string{"workflow.name"}
	spec := SpecOf(base)
	if len(spec) != 16 || SpecOf(base) != spec {
		t.Fatalf("spec %q", spec)
	}
	same := []func(*schemas.RuleRecord){
		func(r *schemas.RuleRecord) { r.Name = "x" }, func(r *schemas.RuleRecord) { r.WebhookEndpointID = "wh_9" },
		func(r *schemas.RuleRecord) { r.HoldMS = 60_000 }, func(r *schemas.RuleRecord) { r.RepeatIntervalMS = 60_000 },
		func(r *schemas.RuleRecord) { r.Severity = "info" }, func(r *schemas.RuleRecord) { r.MaxAttempts = 3 },
		func(r *schemas.RuleRecord) { r.Version = 9 },
	}
	other := []func(*schemas.RuleRecord){
		func(r *schemas.RuleRecord) { r.Kind = schemas.RuleKindRate }, func(r *schemas.RuleRecord) { r.EventType = schemas.TypeRunStarted },
		func(r *schemas.RuleRecord) { r.Condition = "labels.env == \"prod\"" }, func(r *schemas.RuleRecord) { r.WindowMS *= 2 },
		func(r *schemas.RuleRecord) { r.Threshold++ }, func(r *schemas.RuleRecord) { r.SuccessRatioBelowBP = 10 },
		func(r *schemas.RuleRecord) { r.MinRuns = 10 }, func(r *schemas.RuleRecord) { r.GroupBy = []string{"workflow.id"} },
		func(r *schemas.RuleRecord) { r.GroupBy = nil }, func(r *schemas.RuleRecord) { r.DurationThresholdMS = 1000 },
	}
	for i, f := range same {
		r := base
		f(&r)
		if SpecOf(r) != spec {
			t.Errorf("change %d moved the spec", i)
		}
	}
	for i, f := range other {
		r := base
		f(&r)
		if SpecOf(r) == spec {
			t.Errorf("change %d kept the spec", i)
		}
	}
}
