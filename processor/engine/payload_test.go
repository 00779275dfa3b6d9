package engine

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// refEventDelivery is a delivery built as the engine built it before its
// payloads were encoded in place (a payload value and json.Marshal): the
// reference the engine's records must equal byte for byte.
func refEventDelivery(tb testing.TB, ev *schemas.WorkflowEvent, r *Rule) schemas.DeliveryRecord {
	p := schemas.WebhookPayload{
		Type: ev.Type, Timestamp: ev.Time.UTC(),
		Data: schemas.PayloadData{
			AlertID: AlertID(ev.TenantID, r.ID, ev.ID), TenantID: ev.TenantID,
			Rule:     schemas.RuleRef{ID: r.ID, Name: r.Name},
			Event:    schemas.EventRef{ID: ev.ID, Type: ev.Type, OccurredAt: ev.Time.UTC()},
			Workflow: ev.Data.Workflow,
			Run: schemas.PayloadRun{ID: ev.Data.Run.ID, Status: ev.Data.Run.Status, StartedAt: ev.Data.Run.StartedAt,
				FinishedAt: ev.Data.Run.FinishedAt, DurationMS: ev.Data.Run.DurationMS},
			Labels: ev.Data.Labels,
		},
	}
	if e := ev.Data.Error; e != nil {
		p.Data.Error = &schemas.PayloadError{Code: e.Code}
		if r.IncludeErrorMessage {
			p.Data.Error.Message = e.Message
		}
	}
	return refDelivery(tb, p, r, ev.Time)
}

func refDurationDelivery(tb testing.TB, st *schemas.RunState, r *Rule, deadline time.Time, elapsed time.Duration) schemas.DeliveryRecord {
	threshold := r.DurationThresholdMS
	ms := elapsed.Milliseconds()
	p := schemas.WebhookPayload{
		Type: schemas.TypeRunDurationExceeded, Timestamp: deadline.UTC(),
		Data: schemas.PayloadData{
			AlertID: DurationAttemptAlertID(st.TenantID, r.ID, st.RunID, st.Attempt), TenantID: st.TenantID,
			Rule:        schemas.RuleRef{ID: r.ID, Name: r.Name},
			Event:       schemas.EventRef{ID: st.StartEventID, Type: schemas.TypeRunDurationExceeded, OccurredAt: deadline.UTC()},
			Workflow:    st.Workflow,
			Run:         schemas.PayloadRun{ID: st.RunID, Status: "running", StartedAt: st.StartedAt, DurationMS: &ms},
			ThresholdMS: &threshold,
			Labels:      st.Labels,
		},
	}
	if p.Data.Event.ID == "" {
		p.Data.Event.ID = st.RunID
	}
	return refDelivery(tb, p, r, deadline)
}

func refDelivery(tb testing.TB, p schemas.WebhookPayload, r *Rule, at time.Time) schemas.DeliveryRecord {
	if p.Data.Labels == nil {
		p.Data.Labels = map[string]string{}
	}
	body, err := json.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	return schemas.DeliveryRecord{
		AlertID: p.Data.AlertID, TenantID: p.Data.TenantID, RuleID: r.ID, EndpointID: r.WebhookEndpointID,
		EventType: p.Type, MaxAttempts: maxAttempts(r), RuleVersion: r.Version, Severity: r.Severity, CreatedAt: at.UTC(), Payload: body,
	}
}

// TestDeliveriesAreTheReference checks the engine's delivery records (with
// their payloads) against the reference construction, byte for byte, for
// events with and without labels, errors, error messages, times in other
// zones, later attempts, and duration alerts.
func TestDeliveriesAreTheReference(t *testing.T) {
	b := setup(t)
	b.rules.put(t, schemas.RuleRecord{ID: "any_failure", Name: "Any <failure> & \u2028", EventType: schemas.TypeRunFailed, Severity: "critical", MaxAttempts: 3})
	b.rules.put(t, schemas.RuleRecord{ID: "with_message", EventType: schemas.TypeRunFailed, IncludeErrorMessage: true, Condition: `error.code != ""`})
	b.rules.put(t, schemas.RuleRecord{ID: "succeeded", EventType: schemas.TypeRunSucceeded})
	b.rules.put(t, schemas.RuleRecord{ID: "slow", Name: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 1500})
	rules := map[string]*Rule{}
	for _, id := range []string{"any_failure", "with_message", "succeeded", "slow"} {
		rules[id] = b.rules.Get("acme", id)
	}
	zone := time.FixedZone("X", 3*3600)
	dur := int64(1234)
	events := []*schemas.WorkflowEvent{
		rawEvent(schemas.TypeRunStarted, "s1", "run_1", t0, withLabels("env", "prod", "<b>", "\"q\"")),
		rawEvent(schemas.TypeRunFailed, "f1", "run_1", t0.Add(time.Second), withError("OOM", "node load: out of <memory>")),
		rawEvent(schemas.TypeRunStarted, "s2", "run_2", t0.Add(time.Second).In(zone)),
		rawEvent(schemas.TypeRunSucceeded, "ok2", "run_2", t0.Add(4*time.Second).In(zone), func(e *schemas.WorkflowEvent) {
			e.Data.Labels, e.Data.Run.DurationMS = nil, &dur
		}),
		rawEvent(schemas.TypeRunStarted, "s3", "run_3", t0.Add(5*time.Second), func(e *schemas.WorkflowEvent) { e.Data.Run.Attempt = 3 }),
		rawEvent(schemas.TypeRunFailed, "f3", "run_3", t0.Add(9*time.Second), withError("", "no code"), func(e *schemas.WorkflowEvent) { e.Data.Run.Attempt = 3 }),
	}
	n, durations := 0, 0
	for _, ev := range events {
		// Duration alerts fire before the event is applied, from the run
		// state as it was: take the states the engine had.
		before := map[string]*schemas.RunState{}
		if pt := b.eng.parts[0]; pt != nil {
			for key, r := range pt.runs {
				before[key] = r.state()
			}
		}
		out := b.eng.Event(0, ev)
		check(t, out)
		for _, d := range out.Deliveries {
			var want schemas.DeliveryRecord
			r := rules[d.RuleID]
			if d.EventType == schemas.TypeRunDurationExceeded {
				var st *schemas.RunState
				for _, s := range before {
					if DurationAttemptAlertID(s.TenantID, r.ID, s.RunID, s.Attempt) == d.AlertID {
						st = s
					}
				}
				if st == nil {
					t.Fatalf("no run for duration alert %s", d.AlertID)
				}
				at := st.StartedAt.Add(time.Duration(r.DurationThresholdMS) * time.Millisecond)
				want = refDurationDelivery(t, st, r, at, ev.Time.Sub(*st.StartedAt))
				durations++
			} else {
				want = refEventDelivery(t, ev, r)
			}
			got, _ := json.Marshal(d)
			w, _ := json.Marshal(want)
			if string(got) != string(w) || string(d.Payload) != string(want.Payload) || d.AlertID != want.AlertID {
				t.Errorf("delivery of %s for %s:\n got %s\nwant %s", d.RuleID, ev.ID, got, w)
			}
			n++
		}
	}
	if n < 6 || durations < 2 {
		t.Fatalf("%d deliveries checked (%d duration alerts), want at least 6 (2)", n, durations)
	}
}

// A rule's payloads carry the rule as it is when they are made: the engine
// encodes a rule's own members once per Rule, and a changed rule is a new
// Rule (fakeRules.put replaces it, as the processor's rule index does), so
// a renamed rule's next payload has its new name, and another tenant's rule
// with the same id and name encodes its own tenant.
func TestPayloadsFollowRuleChanges(t *testing.T) {
	b := setup(t)
	names := []string{"first", "second <&> \u2028", "first"}
	for i, name := range names {
		r := b.rules.put(t, schemas.RuleRecord{ID: "fails", Name: name, EventType: schemas.TypeRunFailed})
		g := b.rules.put(t, schemas.RuleRecord{ID: "fails", Name: name, TenantID: "globex", EventType: schemas.TypeRunFailed})
		for _, rule := range []*Rule{r, g} {
			ev := rawEvent(schemas.TypeRunFailed, "f"+strconv.Itoa(i)+rule.TenantID, "run_"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Second),
				withTenant(rule.TenantID), withError("OOM", ""))
			out := b.eng.Event(0, ev)
			check(t, out)
			if len(out.Deliveries) != 1 {
				t.Fatalf("rule named %q of %s: %d deliveries, want 1", name, rule.TenantID, len(out.Deliveries))
			}
			want := refEventDelivery(t, ev, rule)
			if got := out.Deliveries[0].Payload; string(got) != string(want.Payload) {
				t.Fatalf("rule named %q of %s:\n got %s\nwant %s", name, rule.TenantID, got, want.Payload)
			}
		}
	}
}
