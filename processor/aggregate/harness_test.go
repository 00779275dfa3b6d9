package aggregate

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// fakeRules is the rule table of the tests: Version moves on every change.
type fakeRules struct {
	rules   map[string]schemas.RuleRecord
	version uint64
}

func newRules(rs ...schemas.RuleRecord) *fakeRules {
	f := &fakeRules{rules: map[string]schemas.RuleRecord{}, version: 1}
	for _, r := range rs {
		f.set(r)
	}
	return f
}

func (f *fakeRules) set(r schemas.RuleRecord) {
	f.version++
	if old, ok := f.rules[schemas.TenantKey(r.TenantID, r.ID)]; ok && r.Version <= old.Version {
		r.Version = old.Version + 1
	}
	f.rules[schemas.TenantKey(r.TenantID, r.ID)] = r
}

func (f *fakeRules) remove(tenant, id string) {
	f.version++
	delete(f.rules, schemas.TenantKey(tenant, id))
}

func (f *fakeRules) Rule(tenant, id string) (schemas.RuleRecord, bool) {
	r, ok := f.rules[schemas.TenantKey(tenant, id)]
	return r, ok
}
func (f *fakeRules) Version() uint64 { return f.version }

// fakeEndpoints: every endpoint is active but those listed.
type fakeEndpoints map[string]bool

func (f fakeEndpoints) Active(tenant, id string) bool { return !f[id] }

// fakeQuota refuses the listed times (unix ms) and records every ask.
type fakeQuota struct {
	refuse map[int64]bool
	asked  []time.Time
}

func (q *fakeQuota) Admit(p int32, tenant string, at time.Time) bool {
	q.asked = append(q.asked, at)
	return !q.refuse[at.UnixMilli()]
}

func countRule(id string, window time.Duration, threshold int) schemas.RuleRecord {
	return schemas.RuleRecord{TenantID: "acme", ID: id, Name: "rule " + id, EventType: schemas.TypeRunFailed,
		WebhookEndpointID: "wh_1", IsActive: true, MaxAttempts: 5, Severity: "critical", Kind: schemas.RuleKindCount,
		WindowMS: window.Milliseconds(), Threshold: threshold, Version: 1, UpdatedAt: t0}
}

func rateRule(id string, window time.Duration, bp, minRuns int) schemas.RuleRecord {
	return schemas.RuleRecord{TenantID: "acme", ID: id, Name: "rule " + id, EventType: schemas.TypeRunFinished,
		WebhookEndpointID: "wh_1", IsActive: true, Kind: schemas.RuleKindRate, WindowMS: window.Milliseconds(),
		SuccessRatioBelowBP: bp, MinRuns: minRuns, Version: 1, UpdatedAt: t0}
}

// rig is an engine on partition 0 fed by a test, with one events source.
type rig struct {
	t     *testing.T
	rules *fakeRules
	eps   fakeEndpoints
	q     *fakeQuota
	e     *Engine
	seq   int
}

func newRig(t *testing.T, cfg Config, rs ...schemas.RuleRecord) *rig {
	t.Helper()
	if cfg.Sources == 0 {
		cfg.Sources = 1
	}
	r := &rig{t: t, rules: newRules(rs...), eps: fakeEndpoints{}, q: &fakeQuota{refuse: map[int64]bool{}}}
	r.e = New(cfg, r.rules, r.eps, r.q)
	r.e.Assign(0, nil)
	return r
}

// in makes an input of rule id with outcome o at t0+at, for group values.
func (r *rig) in(id string, at time.Duration, outcome string, group ...string) *schemas.AggregateInput {
	r.seq++
	rule := r.rules.rules[schemas.TenantKey("acme", id)]
	typ := schemas.TypeRunFailed
	if outcome == schemas.AggregateOutcomeSucceeded {
		typ = schemas.TypeRunSucceeded
	}
	return &schemas.AggregateInput{Kind: schemas.AggregateInputKindInput, TenantID: "acme", RuleID: id, Spec: SpecOf(rule),
		Group: group, Outcome: outcome, At: t0.Add(at),
		Event: &schemas.AggregateEvent{ID: fmt.Sprintf("ev%d", r.seq), Type: typ, RunID: fmt.Sprintf("run_%d", r.seq),
			Workflow: schemas.Workflow{ID: "wf_9", Name: "nightly-etl"}, ErrorCode: "NODE_ERRORED"}}
}

func marker(src int32, at time.Duration) *schemas.AggregateInput {
	return &schemas.AggregateInput{Kind: schemas.AggregateInputKindWatermark, SourcePartition: &src, Watermark: t0.Add(at)}
}

// payloadOf decodes a delivery's payload, validating it and the record
// against their schemas.
func payloadOf(t *testing.T, d schemas.DeliveryRecord) schemas.WebhookPayload {
	t.Helper()
	raw, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.Validate(schemas.KindDelivery, raw); err != nil {
		t.Fatalf("delivery %s: %v\n%s", d.EventType, err, raw)
	}
	if err := schemas.Validate(schemas.KindWebhookPayload, d.Payload); err != nil {
		t.Fatalf("payload: %v\n%s", err, d.Payload)
	}
	var p schemas.WebhookPayload
	if err := json.Unmarshal(d.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// describe names a delivery for the tables: "firing@1m2s(3)" — type, time
// after t0, and the window's value (matched, or failed/runs).
func describe(t *testing.T, d schemas.DeliveryRecord) string {
	t.Helper()
	p := payloadOf(t, d)
	a := p.Data.Aggregate
	name := map[string]string{schemas.TypeAlertFiring: "firing", schemas.TypeAlertResolved: "resolved"}[d.EventType]
	if d.EventType == schemas.TypeAlertFiring && a.Repeat > 0 {
		name = fmt.Sprintf("repeat%d", a.Repeat)
	}
	v := ""
	switch {
	case a.Value.Matched != nil:
		v = fmt.Sprint(*a.Value.Matched)
	case a.Value.Failed != nil:
		v = fmt.Sprintf("%d/%d", *a.Value.Failed, *a.Value.Failed+*a.Value.Succeeded)
	}
	s := fmt.Sprintf("%s@%s(%s)", name, p.Timestamp.Sub(t0), v)
	if a.ResolveReason != nil && *a.ResolveReason != schemas.ResolveReasonConditionFalse {
		s += ":" + *a.ResolveReason
	}
	return s
}
