package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The cases as a tenant meets them: rules created through the API
// (published by the outbox), events stamped with the processor's clock,
// which the test moves so that 15-minute windows pass at once; the
// deliveries land on PagerDuty-, Slack- and webhook-shaped receivers, and the
// groups' state is read back through the API (the recorder's path).

// produceNow produces an event of workflow wf stamped with the processor's
// clock.
func (s *aggSystem) produceNow(t *testing.T, typ, wf string) schemas.WorkflowEvent {
	t.Helper()
	ev := workload.Event(workload.Spec{Tenant: "acme", Type: typ, WorkflowName: wf, Duration: time.Second, ErrorCode: "NODE_ERRORED",
		Time: s.clock.Now().UTC().Truncate(time.Millisecond)})
	rec, _ := workload.Record(s.topics.Events, ev)
	if err := workload.Produce(context.Background(), s.cl, rec); err != nil {
		t.Fatal(err)
	}
	return ev
}

// groups lists a rule's groups through the API.
func (s *aggSystem) groups(t *testing.T, rule string) []map[string]any {
	t.Helper()
	out := s.call(t, "acme", http.MethodGet, "/v1/alert-rules/"+rule+"/groups", "", http.StatusOK)
	items, _ := out["items"].([]any)
	var gs []map[string]any
	for _, it := range items {
		gs = append(gs, it.(map[string]any))
	}
	return gs
}

// Count rule: 3 failures of nightly-etl within 15 minutes fire exactly once,
// at the third and not at the fourth; another workflow's failures are its own
// group; the groups API says "firing since" the third; once 15 minutes pass
// without failures the episode resolves, to PagerDuty (event_action resolve,
// the trigger's dedup_key) and to Slack (a RESOLVED message).
func TestCountRuleThroughTheAPI(t *testing.T) {
	t.Parallel()
	s := startAggregate(t)
	var pd, slack posts
	pdSrv, slackSrv := pd.server(t), slack.server(t)
	pdEp := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "pd", "kind": "pagerduty", "target_url": pdSrv.URL + "/v2/enqueue", "secret": pdKey})
	slackEp := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "slack", "kind": "slack", "target_url": slackSrv.URL + "/services/T0/B0/x"})
	var ids []string
	for _, ep := range []map[string]any{pdEp, slackEp} {
		r := s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "nightly-etl keeps failing", "kind": "count",
			"event_type": "workflow.run.failed", "window": "15m", "threshold": 3, "group_by": []string{"workflow.name"},
			"severity": "critical", "webhook_endpoint_id": ep["id"]})
		if r["kind"] != "count" || r["window"] != "15m0s" && r["window"] != "15m" || r["window_ms"] != float64(900_000) {
			t.Fatalf("created rule %v", r)
		}
		ids = append(ids, r["id"].(string))
	}
	s.waitGauge(t, "exo_processor_endpoints", 2)
	s.waitGauge(t, "exo_processor_rules_active", 2)

	s.produceNow(t, schemas.TypeRunFailed, "nightly-etl")
	s.produceNow(t, schemas.TypeRunFailed, "nightly-etl")
	for range 2 {
		s.produceNow(t, schemas.TypeRunFailed, "reports") // another group: two of three
	}
	last := s.produceNow(t, schemas.TypeRunSucceeded, "nightly-etl").Time
	s.waitRulesClock(t, last.Add(time.Second))
	if pd.len() != 0 || slack.len() != 0 {
		t.Fatalf("after two failures: PagerDuty %s; Slack %s; want nothing", pd.String(), slack.String())
	}
	third := s.produceNow(t, schemas.TypeRunFailed, "nightly-etl")
	pd.wait(t, 1, "the PagerDuty trigger at the third failure")
	slack.wait(t, 1, "the Slack FIRING message")
	last = s.produceNow(t, schemas.TypeRunFailed, "nightly-etl").Time // the fourth
	s.waitRulesClock(t, last.Add(time.Second))
	if pd.len() != 1 || slack.len() != 1 {
		t.Fatalf("after the fourth failure: PagerDuty %s; Slack %s; want one each", pd.String(), slack.String())
	}
	trigger := expectFiring(t, &pd, &slack, "nightly-etl", "critical")

	// The state of each group, through the recorder and the API.
	var firing map[string]any
	waitUntil(t, 30*time.Second, "the firing group in the API", func() bool {
		for _, g := range s.groups(t, ids[0]) {
			if g["state"] == "firing" {
				firing = g
			}
		}
		return firing != nil
	}, func() string { return fmt.Sprint(s.groups(t, ids[0])) })
	since, err := time.Parse(time.RFC3339Nano, fmt.Sprint(firing["firing_since"]))
	if err != nil || !since.Equal(third.Time) || firing["group"].(map[string]any)["workflow.name"] != "nightly-etl" || firing["incident_id"] != trigger.DedupKey {
		t.Fatalf("firing group %v, want nightly-etl firing since the third failure (%s), incident %s", firing, third.Time, trigger.DedupKey)
	}
	out := s.call(t, "acme", http.MethodGet, "/v1/alert-groups?state=firing", "", http.StatusOK)
	if items, _ := out["items"].([]any); len(items) != 2 { // nightly-etl under each of the two rules; reports is not firing
		t.Fatalf("firing groups of the tenant: %v, want two", out)
	}

	s.clock.advance(16 * time.Minute) // the window passes without failures
	expectResolve(t, &pd, &slack, "nightly-etl", trigger.DedupKey)
	waitUntil(t, 30*time.Second, "no firing group in the API", func() bool {
		out := s.call(t, "acme", http.MethodGet, "/v1/alert-groups?state=firing", "", http.StatusOK)
		items, _ := out["items"].([]any)
		return len(items) == 0
	}, func() string { return fmt.Sprint(s.groups(t, ids[0])) })
	s.waitRulesClock(t, s.clock.Now().Add(-10*time.Second))
	if pd.len() != 2 || slack.len() != 2 {
		t.Fatalf("PagerDuty %s; Slack %s; want a trigger and a resolve each", pd.String(), slack.String())
	}
	s.alive(t)
}

// Rate rule with min_runs 10 and success_ratio_below 0.8: quiet at 1 failure
// of 1 run; fires at 3 failures of 12 runs (a ratio of 0.75); resolves when
// successes bring the ratio back to 0.8 — signed webhooks of one incident.
func TestRateRuleThroughTheAPI(t *testing.T) {
	t.Parallel()
	s := startAggregate(t)
	var hook posts
	srv := hook.server(t)
	ep := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "hook", "target_url": srv.URL + "/hook"})
	r := s.post(t, "acme", "/v1/alert-rules", map[string]any{"name": "prod success rate", "kind": "rate", "window": "15m",
		"success_ratio_below": 0.8, "min_runs": 10, "webhook_endpoint_id": ep["id"]})
	if r["event_type"] != schemas.TypeRunFinished {
		t.Fatalf("rate rule %v, want event_type workflow.run.finished filled in", r)
	}
	s.waitGauge(t, "exo_processor_endpoints", 1)
	s.waitGauge(t, "exo_processor_rules_active", 1)
	// decide moves the rules' clock past a bucket of the window (15 s) and
	// waits until every boundary before it is decided.
	decide := func() {
		t.Helper()
		s.clock.advance(20 * time.Second)
		s.waitRulesClock(t, s.clock.Now().Add(-6*time.Second))
	}

	s.produceNow(t, schemas.TypeRunFailed, "etl")
	decide()
	if hook.len() != 0 {
		t.Fatalf("1 failed run of min 10: %s, want nothing", hook.String())
	}
	for range 9 {
		s.produceNow(t, schemas.TypeRunSucceeded, "etl")
	}
	for range 2 {
		s.produceNow(t, schemas.TypeRunFailed, "etl")
	}
	decide()
	hook.wait(t, 1, "the firing (3 failed of 12 runs)")
	body, h := hook.get(0)
	if !verifyStandardWebhooks(h, body, ep["secret"].(string)) {
		t.Fatalf("firing not signed with the endpoint's secret: %v", h)
	}
	var firing schemas.WebhookPayload
	if err := json.Unmarshal(body, &firing); err != nil || firing.Type != schemas.TypeAlertFiring || firing.Data.Aggregate == nil {
		t.Fatalf("firing %s (%v)", body, err)
	}
	a := firing.Data.Aggregate
	if v := a.Value; v.Failed == nil || *v.Failed != 3 || v.Succeeded == nil || *v.Succeeded != 9 || a.MinRuns == nil || *a.MinRuns != 10 ||
		a.SuccessRatioBelow == nil || *a.SuccessRatioBelow != 0.8 || a.Kind != schemas.RuleKindRate {
		t.Fatalf("firing aggregate %+v value %+v, want 3 failed and 9 succeeded under ratio 0.8, min 10", a, a.Value)
	}
	if err := schemas.Validate(schemas.KindWebhookPayload, body); err != nil {
		t.Fatalf("firing payload not valid: %v", err)
	}
	for range 3 {
		s.produceNow(t, schemas.TypeRunSucceeded, "etl")
	}
	decide()
	hook.wait(t, 2, "the resolve (12 of 15 succeeded: 0.8)")
	body, h = hook.get(1)
	var resolved schemas.WebhookPayload
	if err := json.Unmarshal(body, &resolved); err != nil || resolved.Type != schemas.TypeAlertResolved || !verifyStandardWebhooks(h, body, ep["secret"].(string)) {
		t.Fatalf("resolve %s (%v)", body, err)
	}
	if resolved.Data.Aggregate.IncidentID != a.IncidentID || resolved.Data.AlertID == firing.Data.AlertID ||
		resolved.Data.Aggregate.ResolveReason == nil || *resolved.Data.Aggregate.ResolveReason != schemas.ResolveReasonConditionFalse {
		t.Fatalf("resolve %+v, want incident %s under another alert id, condition_false", resolved.Data.Aggregate, a.IncidentID)
	}
	decide()
	if hook.len() != 2 {
		t.Fatalf("%s, want a firing and a resolve", hook.String())
	}
	s.alive(t)
}
