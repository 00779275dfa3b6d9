package engine

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/condition"
	"github.com/exospherehost/exo-alerts/schemas"
)

// t0 is the event time the scenarios start at.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is the wall clock, set by the test.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// fakeRules is a map of active rules; every change bumps the version.
type fakeRules struct {
	byKey   map[string]*Rule              // tenant/id
	index   map[string]map[string][]*Rule // tenant -> type -> rules sorted by id
	version uint64
	// progs shares compiled conditions by source, as the processor's rule
	// index does (the same condition.Programs), so the engine evaluates
	// the programs production gives it: BenchmarkEngineEvent's 10,000
	// rules hold 7 programs, not 10,000.
	progs condition.Programs
	// endpoints, when not nil, gives each rule put its endpoint's state
	// (Rule.Endpoint, by tenant/id, made inactive when missing), as the
	// processor's rule index does; nil: rules have none and the engine
	// asks the fakeEndpoints.
	endpoints map[string]*EndpointState
}

func newFakeRules() *fakeRules {
	return &fakeRules{byKey: map[string]*Rule{}, index: map[string]map[string][]*Rule{}}
}

// put adds or replaces a rule, its condition compiled (or shared) as the
// processor's rule index does. Defaults: active, endpoint ep1, a name.
func (f *fakeRules) put(tb testing.TB, rec schemas.RuleRecord) *Rule {
	tb.Helper()
	if rec.TenantID == "" {
		rec.TenantID = "acme"
	}
	if rec.WebhookEndpointID == "" {
		rec.WebhookEndpointID = "ep1"
	}
	if rec.Name == "" {
		rec.Name = "rule " + rec.ID
	}
	rec.IsActive = true
	cond, err := f.progs.Compile(rec.Condition)
	if err != nil {
		tb.Fatalf("rule %s: %v", rec.ID, err)
	}
	f.remove(rec.TenantID, rec.ID)
	r := &Rule{RuleRecord: rec, Cond: cond}
	if f.endpoints != nil {
		key := rec.TenantID + "/" + rec.WebhookEndpointID
		if f.endpoints[key] == nil {
			f.endpoints[key] = &EndpointState{}
		}
		r.Endpoint = f.endpoints[key]
	}
	if rec.IsAggregate() {
		r.Spec = "5d41402abc4b2a76"
	}
	f.byKey[rec.TenantID+"/"+rec.ID] = r
	byType := f.index[rec.TenantID]
	if byType == nil {
		byType = map[string][]*Rule{}
		f.index[rec.TenantID] = byType
	}
	rs := append(byType[rec.EventType], r)
	slices.SortFunc(rs, func(a, b *Rule) int { return strings.Compare(a.ID, b.ID) })
	byType[rec.EventType] = rs
	f.version++
	return r
}

func (f *fakeRules) remove(tenant, id string) {
	old := f.byKey[tenant+"/"+id]
	if old == nil {
		return
	}
	delete(f.byKey, tenant+"/"+id)
	f.progs.Release(old.Condition)
	f.index[tenant][old.EventType] = slices.DeleteFunc(f.index[tenant][old.EventType], func(r *Rule) bool { return r == old })
	f.version++
}

func (f *fakeRules) Candidates(tenant, alertType string) []*Rule { return f.index[tenant][alertType] }
func (f *fakeRules) Get(tenant, id string) *Rule                 { return f.byKey[tenant+"/"+id] }
func (f *fakeRules) Version() uint64                             { return f.version }

// fakeEndpoints lists the active endpoints by tenant/id.
type fakeEndpoints map[string]bool

func (f fakeEndpoints) Active(tenant, id string) bool { return f[tenant+"/"+id] }

// bundle is what an engine test needs.
type bundle struct {
	eng   *Engine
	clock *fakeClock
	rules *fakeRules
	eps   fakeEndpoints
}

const (
	grace     = 10 * time.Minute
	maxRunAge = 24 * time.Hour
)

// setup returns an engine with Grace 10m, MaxRunAge 24h, the clock at t0,
// no rules, and endpoints acme/ep1 and globex/ep1 active.
func setup(tb testing.TB) *bundle {
	tb.Helper()
	b := &bundle{clock: &fakeClock{now: t0}, rules: newFakeRules(), eps: fakeEndpoints{"acme/ep1": true, "globex/ep1": true}}
	b.eng = New(Config{Clock: b.clock, Grace: grace, MaxRunAge: maxRunAge}, b.rules, b.eps)
	return b
}

// evOpt adjusts an event built by newEvent.
type evOpt func(*schemas.WorkflowEvent)

func withTenant(t string) evOpt { return func(e *schemas.WorkflowEvent) { e.TenantID = t } }
func withLabels(kv ...string) evOpt {
	return func(e *schemas.WorkflowEvent) {
		e.Data.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			e.Data.Labels[kv[i]] = kv[i+1]
		}
	}
}
func withError(code, msg string) evOpt {
	return func(e *schemas.WorkflowEvent) {
		e.Data.Error = &schemas.ErrorInfo{Code: code, Message: msg, Node: "load"}
	}
}
func withStartedAt(at time.Time) evOpt {
	return func(e *schemas.WorkflowEvent) { e.Data.Run.StartedAt = &at }
}
func withFinishedAt(at time.Time) evOpt {
	return func(e *schemas.WorkflowEvent) { e.Data.Run.FinishedAt = &at }
}

// newEvent builds a valid workflow event of tenant acme, workflow
// wf_1/nightly-etl, for run at event time at.
func newEvent(tb testing.TB, typ, id, run string, at time.Time, opts ...evOpt) *schemas.WorkflowEvent {
	tb.Helper()
	ev := rawEvent(typ, id, run, at, opts...)
	doc, err := json.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	if err := schemas.Validate(schemas.KindWorkflowEvent, doc); err != nil {
		tb.Fatalf("test event %s is not valid: %v", id, err)
	}
	return ev
}

// rawEvent is newEvent without the schema check, for loops and benchmarks.
func rawEvent(typ, id, run string, at time.Time, opts ...evOpt) *schemas.WorkflowEvent {
	ev := &schemas.WorkflowEvent{
		SpecVersion: "1.0", ID: id, Source: "exosphere/state-manager", Type: typ, Time: at, TenantID: "acme",
		Data: schemas.WorkflowEventData{
			Workflow: schemas.Workflow{ID: "wf_1", Name: "nightly-etl"},
			Run:      schemas.Run{ID: run, Attempt: 1},
		},
	}
	switch typ {
	case schemas.TypeRunStarted:
		ev.Data.Run.Status = "running"
	case schemas.TypeRunSucceeded, schemas.TypeRunFailed:
		ev.Data.Run.Status = strings.TrimPrefix(typ, "workflow.run.")
		ev.Data.Run.FinishedAt = &at
	}
	for _, o := range opts {
		o(ev)
	}
	if ev.Data.Run.StartedAt != nil && ev.Data.Run.FinishedAt != nil {
		d := ev.Data.Run.FinishedAt.Sub(*ev.Data.Run.StartedAt).Milliseconds()
		ev.Data.Run.DurationMS = &d
	}
	return ev
}

func started(tb testing.TB, run string, at time.Time, opts ...evOpt) *schemas.WorkflowEvent {
	tb.Helper()
	return newEvent(tb, schemas.TypeRunStarted, "ev_start_"+run, run, at, opts...)
}

func failed(tb testing.TB, run string, at time.Time, opts ...evOpt) *schemas.WorkflowEvent {
	tb.Helper()
	return newEvent(tb, schemas.TypeRunFailed, "ev_fail_"+run, run, at, opts...)
}

func succeeded(tb testing.TB, run string, at time.Time, opts ...evOpt) *schemas.WorkflowEvent {
	tb.Helper()
	return newEvent(tb, schemas.TypeRunSucceeded, "ev_ok_"+run, run, at, opts...)
}

// alert is a delivery checked against the schemas, with its payload decoded.
type alert struct {
	schemas.DeliveryRecord
	P schemas.WebhookPayload
}

var alertIDPattern = regexp.MustCompile(`^alrt_[0-9a-f]{32}$`)

// check validates everything out would write (delivery records, their
// payloads, run states) and returns the deliveries with decoded payloads.
func check(tb testing.TB, out Output) []alert {
	tb.Helper()
	var alerts []alert
	for _, d := range out.Deliveries {
		if err := schemas.Validate(schemas.KindWebhookPayload, d.Payload); err != nil {
			tb.Fatalf("payload of %s is not valid: %v\n%s", d.AlertID, err, d.Payload)
		}
		rec, err := json.Marshal(d)
		if err != nil {
			tb.Fatal(err)
		}
		if err := schemas.Validate(schemas.KindDelivery, rec); err != nil {
			tb.Fatalf("delivery %s is not valid: %v\n%s", d.AlertID, err, rec)
		}
		a := alert{DeliveryRecord: d}
		if err := json.Unmarshal(d.Payload, &a.P); err != nil {
			tb.Fatalf("payload of %s: %v", d.AlertID, err)
		}
		if !alertIDPattern.MatchString(d.AlertID) || a.P.Data.AlertID != d.AlertID || a.P.Data.TenantID != d.TenantID ||
			a.P.Data.Rule.ID != d.RuleID || a.P.Type != d.EventType {
			tb.Fatalf("delivery %+v disagrees with its payload %+v", d, a.P)
		}
		// The payload is exactly json.Marshal's bytes of what it holds.
		if again, err := json.Marshal(a.P); err != nil || string(again) != string(d.Payload) {
			tb.Fatalf("payload of %s is not json.Marshal's (%v):\n%s\n%s", d.AlertID, err, d.Payload, again)
		}
		alerts = append(alerts, a)
	}
	for _, s := range out.States {
		if s.Value == nil {
			continue
		}
		if s.Key != s.Value.TenantID+"/"+s.Value.RunID {
			tb.Fatalf("state key %q for %s/%s", s.Key, s.Value.TenantID, s.Value.RunID)
		}
		doc, err := json.Marshal(s.Value)
		if err != nil {
			tb.Fatal(err)
		}
		if err := schemas.Validate(schemas.KindRunState, doc); err != nil {
			tb.Fatalf("run state %s is not valid: %v\n%s", s.Key, err, doc)
		}
	}
	return alerts
}

// ruleIDs lists the rule of each alert, in order.
func ruleIDs(alerts []alert) []string {
	ids := make([]string, 0, len(alerts))
	for _, a := range alerts {
		ids = append(ids, a.RuleID)
	}
	return ids
}

// lastState returns the last state change of key in out (nil Value for a
// tombstone) and whether there was one.
func lastState(out Output, key string) (StateChange, bool) {
	for i := len(out.States) - 1; i >= 0; i-- {
		if out.States[i].Key == key {
			return out.States[i], true
		}
	}
	return StateChange{}, false
}

func TestEventMatching(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		rules     []schemas.RuleRecord
		inactive  []string // endpoints made inactive (tenant/id)
		event     func(testing.TB) *schemas.WorkflowEvent
		want      []string // rule ids of the deliveries, in rule id order
		condErrs  uint64
		wantError *schemas.PayloadError // payload error of every delivery
	}{
		{
			name:  "rule of the tenant and type fires",
			rules: []schemas.RuleRecord{{ID: "r1", EventType: schemas.TypeRunFailed}},
			event: func(tb testing.TB) *schemas.WorkflowEvent { return failed(tb, "run_1", t0) },
			want:  []string{"r1"},
		},
		{
			name: "another tenant's rule never fires",
			rules: []schemas.RuleRecord{
				{TenantID: "globex", ID: "r1", EventType: schemas.TypeRunFailed},
				{TenantID: "globex", ID: "r2", EventType: schemas.TypeRunFailed, Condition: `workflow.name == "nightly-etl"`},
			},
			event: func(tb testing.TB) *schemas.WorkflowEvent { return failed(tb, "run_1", t0) },
		},
		{
			name: "only the tenant's own rule fires when both have one",
			rules: []schemas.RuleRecord{
				{TenantID: "globex", ID: "g1", EventType: schemas.TypeRunFailed},
				{ID: "a1", EventType: schemas.TypeRunFailed},
			},
			event: func(tb testing.TB) *schemas.WorkflowEvent { return failed(tb, "run_1", t0) },
			want:  []string{"a1"},
		},
		{
			name: "type filter",
			rules: []schemas.RuleRecord{
				{ID: "on_ok", EventType: schemas.TypeRunSucceeded},
				{ID: "on_start", EventType: schemas.TypeRunStarted},
				{ID: "on_fail", EventType: schemas.TypeRunFailed},
			},
			event: func(tb testing.TB) *schemas.WorkflowEvent { return succeeded(tb, "run_1", t0) },
			want:  []string{"on_ok"},
		},
		{
			name: "condition true and false",
			rules: []schemas.RuleRecord{
				{ID: "prod", EventType: schemas.TypeRunFailed, Condition: `labels.env == "prod" && error.code == "TIMEOUT"`},
				{ID: "staging", EventType: schemas.TypeRunFailed, Condition: `labels.env == "staging"`},
			},
			event: func(tb testing.TB) *schemas.WorkflowEvent {
				return failed(tb, "run_1", t0, withLabels("env", "prod"), withError("TIMEOUT", "took too long"))
			},
			want:      []string{"prod"},
			wantError: &schemas.PayloadError{Code: "TIMEOUT"},
		},
		{
			name: "condition failing at run time is counted and does not match",
			rules: []schemas.RuleRecord{
				{ID: "bad", EventType: schemas.TypeRunFailed, Condition: `int(labels.shard) > 3`},
				{ID: "good", EventType: schemas.TypeRunFailed},
			},
			event: func(tb testing.TB) *schemas.WorkflowEvent {
				return failed(tb, "run_1", t0, withLabels("shard", "eu-1"))
			},
			want:     []string{"good"},
			condErrs: 1,
		},
		{
			name:     "inactive endpoint gets nothing",
			rules:    []schemas.RuleRecord{{ID: "r1", EventType: schemas.TypeRunFailed}, {ID: "r2", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep2"}},
			inactive: []string{"acme/ep1"},
			event:    func(tb testing.TB) *schemas.WorkflowEvent { return failed(tb, "run_1", t0) },
		},
		{
			name: "each rule's endpoint decides, whatever the rules before it",
			rules: []schemas.RuleRecord{
				{ID: "a", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep3"},
				{ID: "b", EventType: schemas.TypeRunFailed},
				{ID: "c", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep3"},
				{ID: "d", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep3"},
				{ID: "e", EventType: schemas.TypeRunFailed},
			},
			inactive: []string{"acme/ep3"},
			event:    func(tb testing.TB) *schemas.WorkflowEvent { return failed(tb, "run_1", t0) },
			want:     []string{"b", "e"},
		},
		{
			name:  "error message only when the rule includes it",
			rules: []schemas.RuleRecord{{ID: "with", EventType: schemas.TypeRunFailed, IncludeErrorMessage: true}},
			event: func(tb testing.TB) *schemas.WorkflowEvent {
				return failed(tb, "run_1", t0, withError("OOM", "node load: out of memory"))
			},
			want:      []string{"with"},
			wantError: &schemas.PayloadError{Code: "OOM", Message: "node load: out of memory"},
		},
		{
			name:  "error code without message by default",
			rules: []schemas.RuleRecord{{ID: "without", EventType: schemas.TypeRunFailed}},
			event: func(tb testing.TB) *schemas.WorkflowEvent {
				return failed(tb, "run_1", t0, withError("OOM", "node load: out of memory"))
			},
			want:      []string{"without"},
			wantError: &schemas.PayloadError{Code: "OOM"},
		},
		{
			name:  "started event",
			rules: []schemas.RuleRecord{{ID: "r1", EventType: schemas.TypeRunStarted, Condition: `run.status == "running"`}},
			event: func(tb testing.TB) *schemas.WorkflowEvent { return started(tb, "run_1", t0) },
			want:  []string{"r1"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			for _, r := range c.rules {
				b.rules.put(t, r)
			}
			for _, ep := range c.inactive {
				b.eps[ep] = false
			}
			ev := c.event(t)
			out := b.eng.Event(3, ev)
			alerts := check(t, out)
			if got := ruleIDs(alerts); !slices.Equal(got, c.want) {
				t.Fatalf("deliveries for rules %v, want %v", got, c.want)
			}
			if got := b.eng.Stats.ConditionErrors.Load(); got != c.condErrs {
				t.Fatalf("ConditionErrors = %d, want %d", got, c.condErrs)
			}
			if got := b.eng.Stats.Deliveries.Load(); got != uint64(len(c.want)) {
				t.Fatalf("Stats.Deliveries = %d, want %d", got, len(c.want))
			}
			for _, a := range alerts {
				r := b.rules.Get(ev.TenantID, a.RuleID)
				p := a.P
				if a.AlertID != AlertID(ev.TenantID, r.ID, ev.ID) || a.EndpointID != r.WebhookEndpointID || a.MaxAttempts != 8 || !a.CreatedAt.Equal(ev.Time) {
					t.Errorf("delivery %+v", a.DeliveryRecord)
				}
				if p.Type != ev.Type || !p.Timestamp.Equal(ev.Time) || p.Data.TenantID != ev.TenantID ||
					p.Data.Rule != (schemas.RuleRef{ID: r.ID, Name: r.Name}) ||
					p.Data.Event.ID != ev.ID || p.Data.Event.Type != ev.Type || !p.Data.Event.OccurredAt.Equal(ev.Time) ||
					p.Data.Workflow != ev.Data.Workflow || p.Data.Run.ID != ev.Data.Run.ID || p.Data.Run.Status != ev.Data.Run.Status ||
					p.Data.ThresholdMS != nil {
					t.Errorf("payload %+v does not describe event %+v", p, ev)
				}
				if !maps.Equal(p.Data.Labels, ev.Data.Labels) {
					t.Errorf("payload labels %v, want %v", p.Data.Labels, ev.Data.Labels)
				}
				switch {
				case c.wantError == nil && p.Data.Error != nil:
					t.Errorf("payload error %+v, want none", p.Data.Error)
				case c.wantError != nil && (p.Data.Error == nil || *p.Data.Error != *c.wantError):
					t.Errorf("payload error %+v, want %+v", p.Data.Error, c.wantError)
				}
			}
			// Whatever fired, the run is tracked.
			if st, ok := lastState(out, "acme/run_1"); !ok || st.Value == nil || !slices.Contains(st.Value.Seen, ev.Type) {
				t.Fatalf("run state %+v, want one that has seen %s", st.Value, ev.Type)
			}
		})
	}
}

// A delivery carries the rule's max_attempts, version and severity (the
// severity PagerDuty gets), for event and duration alerts alike.
func TestRuleSettingsReachTheDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.rules.put(t, schemas.RuleRecord{ID: "r1", EventType: schemas.TypeRunFailed, MaxAttempts: 3, Severity: "critical", Version: 7})
	b.rules.put(t, schemas.RuleRecord{ID: "r2", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 60_000, Severity: "warning", Version: 2})
	alerts := check(t, b.eng.Event(0, failed(t, "run_1", t0)))
	if len(alerts) != 1 || alerts[0].MaxAttempts != 3 || alerts[0].Severity != "critical" || alerts[0].RuleVersion != 7 {
		t.Fatalf("deliveries %+v, want one with MaxAttempts 3, severity critical, rule version 7", alerts)
	}
	check(t, b.eng.Event(0, started(t, "run_2", t0)))
	b.clock.now = t0.Add(2 * time.Minute)
	alerts = check(t, b.eng.Tick(0, true))
	if len(alerts) != 1 || alerts[0].Severity != "warning" || alerts[0].RuleVersion != 2 || alerts[0].MaxAttempts != 8 {
		t.Fatalf("duration deliveries %+v, want one with severity warning, rule version 2, MaxAttempts 8", alerts)
	}
}

func TestDuplicates(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		events   func(testing.TB) []*schemas.WorkflowEvent
		want     []string // alert ids, in order
		dups     uint64
		wantSeen []string
	}{
		{
			name: "same terminal event twice",
			events: func(tb testing.TB) []*schemas.WorkflowEvent {
				return []*schemas.WorkflowEvent{started(tb, "run_1", t0), failed(tb, "run_1", t0.Add(time.Minute)), failed(tb, "run_1", t0.Add(time.Minute))}
			},
			want:     []string{AlertID("acme", "on_start", "ev_start_run_1"), AlertID("acme", "on_fail", "ev_fail_run_1")},
			dups:     1,
			wantSeen: []string{schemas.TypeRunStarted, schemas.TypeRunFailed},
		},
		{
			name: "same run and type with another id",
			events: func(tb testing.TB) []*schemas.WorkflowEvent {
				return []*schemas.WorkflowEvent{
					failed(tb, "run_1", t0),
					newEvent(tb, schemas.TypeRunFailed, "ev_fail_again", "run_1", t0.Add(time.Second)),
				}
			},
			want:     []string{AlertID("acme", "on_fail", "ev_fail_run_1")},
			dups:     1,
			wantSeen: []string{schemas.TypeRunFailed},
		},
		{
			name: "duplicate started event",
			events: func(tb testing.TB) []*schemas.WorkflowEvent {
				return []*schemas.WorkflowEvent{
					started(tb, "run_1", t0),
					newEvent(tb, schemas.TypeRunStarted, "ev_start_again", "run_1", t0.Add(2*time.Second)),
				}
			},
			want:     []string{AlertID("acme", "on_start", "ev_start_run_1")},
			dups:     1,
			wantSeen: []string{schemas.TypeRunStarted},
		},
		{
			name: "each type of a run fires once",
			events: func(tb testing.TB) []*schemas.WorkflowEvent {
				return []*schemas.WorkflowEvent{started(tb, "run_1", t0), succeeded(tb, "run_1", t0.Add(time.Minute))}
			},
			want:     []string{AlertID("acme", "on_start", "ev_start_run_1"), AlertID("acme", "on_ok", "ev_ok_run_1")},
			wantSeen: []string{schemas.TypeRunStarted, schemas.TypeRunSucceeded},
		},
		{
			name: "same run id in another tenant is another run",
			events: func(tb testing.TB) []*schemas.WorkflowEvent {
				return []*schemas.WorkflowEvent{failed(tb, "run_1", t0), failed(tb, "run_1", t0, withTenant("globex"))}
			},
			want:     []string{AlertID("acme", "on_fail", "ev_fail_run_1"), AlertID("globex", "on_fail", "ev_fail_run_1")},
			wantSeen: []string{schemas.TypeRunFailed},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			for _, tenant := range []string{"acme", "globex"} {
				b.rules.put(t, schemas.RuleRecord{TenantID: tenant, ID: "on_start", EventType: schemas.TypeRunStarted})
				b.rules.put(t, schemas.RuleRecord{TenantID: tenant, ID: "on_fail", EventType: schemas.TypeRunFailed})
				b.rules.put(t, schemas.RuleRecord{TenantID: tenant, ID: "on_ok", EventType: schemas.TypeRunSucceeded})
			}
			var got []string
			var last StateChange
			for _, ev := range c.events(t) {
				before := b.eng.Stats.Duplicates.Load()
				out := b.eng.Event(0, ev)
				if b.eng.Stats.Duplicates.Load() != before && (len(out.Deliveries) > 0 || len(out.States) > 0) {
					t.Fatalf("duplicate %s produced %+v", ev.ID, out)
				}
				for _, a := range check(t, out) {
					got = append(got, a.AlertID)
				}
				if st, ok := lastState(out, "acme/run_1"); ok {
					last = st
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("alerts %v, want %v", got, c.want)
			}
			if d := b.eng.Stats.Duplicates.Load(); d != c.dups {
				t.Fatalf("Duplicates = %d, want %d", d, c.dups)
			}
			st := last
			if st.Value == nil || !slices.Equal(st.Value.Seen, c.wantSeen) {
				t.Fatalf("state %+v, want seen %v", st.Value, c.wantSeen)
			}
			if st.Value.StartedAt != nil && !st.Value.StartedAt.Equal(t0) {
				t.Fatalf("started_at %v moved by a duplicate, want %v", st.Value.StartedAt, t0)
			}
		})
	}
}

func TestAlertIDs(t *testing.T) {
	t.Parallel()
	ids := map[string]string{
		"event":                 AlertID("acme", "r1", "ev_1"),
		"other tenant":          AlertID("globex", "r1", "ev_1"),
		"other rule":            AlertID("acme", "r2", "ev_1"),
		"other event":           AlertID("acme", "r1", "ev_2"),
		"shifted separator":     AlertID("acme", "r1e", "v_1"),
		"duration":              DurationAlertID("acme", "r1", "ev_1"),
		"duration other run":    DurationAlertID("acme", "r1", "run_2"),
		"duration other rule":   DurationAlertID("acme", "r2", "ev_1"),
		"duration other tenant": DurationAlertID("globex", "r1", "ev_1"),
	}
	seen := map[string]string{}
	for name, id := range ids {
		if !alertIDPattern.MatchString(id) {
			t.Errorf("%s: id %q does not match %s", name, id, alertIDPattern)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%s and %s share id %s", name, other, id)
		}
		seen[id] = name
	}
	if AlertID("acme", "r1", "ev_1") != ids["event"] || DurationAlertID("acme", "r1", "ev_1") != ids["duration"] {
		t.Fatal("alert ids are not stable")
	}

	// A replay on a fresh engine (another processor) yields the same ids.
	replay := func() []string {
		b := setup(t)
		b.rules.put(t, schemas.RuleRecord{ID: "on_fail", EventType: schemas.TypeRunFailed})
		b.rules.put(t, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 60_000})
		var got []string
		for _, a := range check(t, b.eng.Event(1, started(t, "run_1", t0))) {
			got = append(got, a.AlertID)
		}
		for _, a := range check(t, b.eng.Event(1, failed(t, "run_2", t0.Add(2*time.Minute)))) {
			got = append(got, a.AlertID)
		}
		return got
	}
	// Time moves first: run_1's deadline (t0+1m) fires before run_2's failure (t0+2m) is applied.
	want := []string{DurationAlertID("acme", "slow", "run_1"), AlertID("acme", "on_fail", "ev_fail_run_2")}
	if first, second := replay(), replay(); !slices.Equal(first, want) || !slices.Equal(second, want) {
		t.Fatalf("replays gave %v and %v, want %v", first, second, want)
	}
}

// An event of a partition that was never assigned creates it on demand.
func TestEventUnassignedPartition(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.rules.put(t, schemas.RuleRecord{ID: "on_fail", EventType: schemas.TypeRunFailed})
	if b.eng.Assigned(9) || b.eng.Runs(9) != 0 || !b.eng.Watermark(9).IsZero() {
		t.Fatal("partition 9 exists before any event")
	}
	if out := b.eng.Tick(9, true); len(out.Deliveries)+len(out.States) != 0 {
		t.Fatalf("Tick of an unknown partition = %+v", out)
	}
	alerts := check(t, b.eng.Event(9, failed(t, "run_1", t0)))
	if len(alerts) != 1 {
		t.Fatalf("%d deliveries, want 1", len(alerts))
	}
	if !b.eng.Assigned(9) || b.eng.Runs(9) != 1 || !b.eng.Watermark(9).Equal(t0) || b.eng.TotalRuns() != 1 {
		t.Fatalf("after the event: assigned %v, runs %d, watermark %v", b.eng.Assigned(9), b.eng.Runs(9), b.eng.Watermark(9))
	}
}

// A rule's endpoint state, when it has one, says whether its alerts are
// delivered — for its event alerts and its duration alerts alike — and
// the Endpoints are not asked; a rule without one is judged by the
// Endpoints.
func TestRuleEndpointState(t *testing.T) {
	t.Parallel()
	b := setup(t) // acme/ep1 and globex/ep1 active in the Endpoints
	b.rules.endpoints = map[string]*EndpointState{}
	b.rules.put(t, schemas.RuleRecord{ID: "failures", EventType: schemas.TypeRunFailed})
	b.rules.put(t, slowRule("slow", time.Minute, ""))
	state := b.rules.endpoints["acme/ep1"]
	b.rules.endpoints = nil
	b.rules.put(t, schemas.RuleRecord{ID: "asks", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep2"})
	b.eps["acme/ep2"] = true

	ids := func(alerts []alert) []string { return ruleIDs(alerts) }
	if got := ids(b.event(t, failed(t, "run_1", t0))); !slices.Equal(got, []string{"asks"}) {
		t.Fatalf("state inactive: alerts of %v, want asks only", got)
	}
	state.SetActive(true)
	if got := ids(b.event(t, failed(t, "run_2", t0.Add(time.Second)))); !slices.Equal(got, []string{"asks", "failures"}) {
		t.Fatalf("state active: alerts of %v, want asks and failures", got)
	}
	b.eps["acme/ep1"], b.eps["acme/ep2"] = false, false
	if got := ids(b.event(t, failed(t, "run_3", t0.Add(2*time.Second)))); !slices.Equal(got, []string{"failures"}) {
		t.Fatalf("state active, Endpoints inactive: alerts of %v, want failures only", got)
	}
	b.event(t, started(t, "run_4", t0.Add(3*time.Second)))
	b.event(t, started(t, "run_5", t0.Add(4*time.Second)))
	state.SetActive(false)
	none(t, "run_4's deadline, state inactive", b.tick(t, t0.Add(63*time.Second+500*time.Millisecond), true))
	state.SetActive(true)
	if got := b.tick(t, t0.Add(65*time.Second), true); len(got) != 1 || got[0].RuleID != "slow" {
		t.Fatalf("run_5's deadline, state active: alerts of %v, want slow", ids(got))
	}
}
