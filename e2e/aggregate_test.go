package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/e2e/harness"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// movableClock is the wall clock moved ahead by what the test says: the
// processor's, so windows pass without waiting for them.
type movableClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *movableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *movableClock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// aggSystem is the whole system with the processor's clock in the test's
// hands, and a producer of events and rule records.
type aggSystem struct {
	*system
	clock *movableClock
	cl    *kgo.Client
}

func startAggregate(t *testing.T) *aggSystem {
	t.Helper()
	clock := &movableClock{}
	h := harness.Start(t, harness.Options{ProcessorClock: clock})
	s := &system{pool: h.Pool, api: h.API, reg: h.Registry, brokers: h.Brokers, topics: h.Topics, keys: map[string]string{}, exited: h.Exited}
	key := controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(context.Background(), h.Pool, "acme", "e2e", controlplane.RoleAdmin, key); err != nil {
		t.Fatal(err)
	}
	s.keys["acme"] = key
	cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &aggSystem{system: s, clock: clock, cl: cl}
}

// putRule publishes an aggregate rule of tenant acme on the rules topic, as
// the control plane's outbox does (the API for aggregate rules is another
// piece's), and waits until the processor has it.
func (s *aggSystem) putRule(t *testing.T, r schemas.RuleRecord, active int) {
	t.Helper()
	r.TenantID, r.IsActive, r.Version, r.UpdatedAt = "acme", true, 1, time.Now().UTC()
	if r.Name == "" {
		r.Name = r.ID
	}
	v, _ := json.Marshal(r)
	if err := workload.Produce(context.Background(), s.cl, &kgo.Record{Topic: s.topics.Rules, Key: schemas.RecordKey(r.TenantID, r.ID), Value: v}); err != nil {
		t.Fatal(err)
	}
	s.waitGauge(t, "exo_processor_rules_active", float64(active))
}

// fail produces a failed run of workflow wf now.
func (s *aggSystem) produce(t *testing.T, typ, wf string) schemas.WorkflowEvent {
	t.Helper()
	ev := workload.Event(workload.Spec{Tenant: "acme", Type: typ, WorkflowName: wf, Duration: time.Second, ErrorCode: "NODE_ERRORED"})
	rec, _ := workload.Record(s.topics.Events, ev)
	if err := workload.Produce(context.Background(), s.cl, rec); err != nil {
		t.Fatal(err)
	}
	return ev
}

// waitRulesClock waits until the clock of count and rate rules (stage 2's
// effective watermark, every input partition) has passed at: every input
// made before at is counted, and every boundary before it evaluated.
func (s *aggSystem) waitRulesClock(t *testing.T, at time.Time) {
	t.Helper()
	var seen string
	waitUntil(t, 30*time.Second, "the rules' clock to pass "+at.Format(time.RFC3339Nano), func() bool {
		mfs, err := s.reg.Gather()
		if err != nil {
			return false
		}
		now := s.clock.Now()
		n := 0
		for _, mf := range mfs {
			if mf.GetName() != "exo_processor_aggregate_watermark_lag_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				lag := time.Duration(m.GetGauge().GetValue() * float64(time.Second))
				if now.Add(-lag).Before(at) {
					seen = fmt.Sprintf("partition %v lags %s", m.GetLabel(), lag)
					return false
				}
				n++
			}
		}
		seen = fmt.Sprintf("%d partitions reported", n)
		return n > 0
	}, func() string { return seen })
}

// pdTrigger is a PagerDuty Events API v2 trigger.
type pdTrigger struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Payload     struct {
		Summary  string `json:"summary"`
		Severity string `json:"severity"`
	} `json:"payload"`
}

// expectFiring checks the first message of a PagerDuty- and a Slack-shaped
// receiver: a trigger of an incident naming group with severity, and a
// FIRING message naming it.
func expectFiring(t *testing.T, pd, slack *posts, group, severity string) pdTrigger {
	t.Helper()
	var trigger pdTrigger
	body, _ := pd.get(0)
	if err := json.Unmarshal(body, &trigger); err != nil || trigger.EventAction != "trigger" || trigger.RoutingKey != pdKey ||
		!strings.HasPrefix(trigger.DedupKey, "inc_") || !strings.Contains(trigger.Payload.Summary, group) || trigger.Payload.Severity != severity {
		t.Fatalf("PagerDuty trigger %s (%v), want a trigger of %s, severity %s", body, err, group, severity)
	}
	if body, _ := slack.get(0); !strings.Contains(string(body), "FIRING") || !strings.Contains(string(body), group) {
		t.Fatalf("Slack firing message %s", body)
	}
	return trigger
}

// expectResolve waits for the second message of each receiver: PagerDuty's
// resolve, exactly routing_key, event_action and the trigger's dedup_key
// (Events API v2 needs no payload), and Slack's RESOLVED message.
func expectResolve(t *testing.T, pd, slack *posts, group, dedupKey string) {
	t.Helper()
	pd.wait(t, 2, "the PagerDuty resolve")
	slack.wait(t, 2, "the Slack RESOLVED message")
	body, _ := pd.get(1)
	var resolve map[string]any
	if err := json.Unmarshal(body, &resolve); err != nil {
		t.Fatal(err)
	}
	if len(resolve) != 3 || resolve["event_action"] != "resolve" || resolve["dedup_key"] != dedupKey || resolve["routing_key"] != pdKey {
		t.Fatalf("PagerDuty resolve %s, want exactly routing_key, event_action resolve and dedup_key %s", body, dedupKey)
	}
	if body, _ := slack.get(1); !strings.Contains(string(body), "RESOLVED") || !strings.Contains(string(body), group) {
		t.Fatalf("Slack resolved message %s", body)
	}
}

// pdKey is a PagerDuty routing key (32 letters and digits).
const pdKey = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12"

// posts is what a receiver got, in order.
type posts struct {
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
}

func (p *posts) server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.bodies = append(p.bodies, body)
		p.heads = append(p.heads, r.Header.Clone())
		p.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (p *posts) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.bodies)
}

func (p *posts) get(i int) ([]byte, http.Header) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bodies[i], p.heads[i]
}

func (p *posts) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, body := range p.bodies {
		fmt.Fprintf(&b, "\n  %s", body)
	}
	return fmt.Sprintf("%d posts:%s", len(p.bodies), b.String())
}

func (p *posts) wait(t *testing.T, n int, what string) {
	t.Helper()
	waitUntil(t, 60*time.Second, what, func() bool { return p.len() >= n }, p.String)
}

// A count rule (3 failures of a workflow in a minute) sends one trigger to
// a PagerDuty service at the third failure, none at the fourth, and a
// resolve with the same dedup_key once the window has passed; the same
// rule towards Slack posts FIRING then RESOLVED.
func TestCountRuleFiresOnceAndResolves(t *testing.T) {
	t.Parallel()
	s := startAggregate(t)
	var pd, slack posts
	pdSrv, slackSrv := pd.server(t), slack.server(t)
	pdEp := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "pd", "kind": "pagerduty", "target_url": pdSrv.URL + "/v2/enqueue", "secret": pdKey})
	slackEp := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "slack", "kind": "slack", "target_url": slackSrv.URL + "/services/T0/B0/x"})
	rule := schemas.RuleRecord{Kind: schemas.RuleKindCount, EventType: schemas.TypeRunFailed, WindowMS: 60_000, Threshold: 3,
		GroupBy: []string{"workflow.name"}, MaxGroups: 100, Severity: "critical", Name: "nightly-etl keeps failing"}
	rule.ID, rule.WebhookEndpointID = "count-pd", pdEp["id"].(string)
	s.waitGauge(t, "exo_processor_endpoints", 2) // a firing to an endpoint not known yet is not delivered
	s.putRule(t, rule, 1)
	rule.ID, rule.WebhookEndpointID = "count-slack", slackEp["id"].(string)
	s.putRule(t, rule, 2)

	for range 3 {
		s.produce(t, schemas.TypeRunFailed, "nightly-etl")
	}
	pd.wait(t, 1, "the PagerDuty trigger")
	slack.wait(t, 1, "the Slack FIRING message")
	last := s.produce(t, schemas.TypeRunFailed, "nightly-etl").Time // the fourth: no second trigger
	s.waitRulesClock(t, last.Add(time.Second))
	if pd.len() != 1 || slack.len() != 1 {
		t.Fatalf("after the fourth failure: PagerDuty %s; Slack %s; want one each", pd.String(), slack.String())
	}
	trigger := expectFiring(t, &pd, &slack, "nightly-etl", "critical")

	s.clock.advance(3 * time.Minute) // the window passes under the rules' clock
	expectResolve(t, &pd, &slack, "nightly-etl", trigger.DedupKey)
	s.waitRulesClock(t, s.clock.Now().Add(-10*time.Second))
	if pd.len() != 2 || slack.len() != 2 {
		t.Fatalf("PagerDuty %s; Slack %s; want a trigger and a resolve each", pd.String(), slack.String())
	}
	s.alive(t)
}

// A rate rule (success ratio below 0.5 with at least 5 runs) stays quiet
// while too few runs finished, however bad their ratio; fires once enough
// runs are mostly failures; and resolves, once, when successes bring the
// ratio back up — signed webhooks with the same incident id.
func TestRateRuleMinRunsFiresAndRecovers(t *testing.T) {
	t.Parallel()
	s := startAggregate(t)
	var hook posts
	srv := hook.server(t)
	ep := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "hook", "target_url": srv.URL + "/hook"})
	s.waitGauge(t, "exo_processor_endpoints", 1) // a firing to an endpoint not known yet is not delivered
	s.putRule(t, schemas.RuleRecord{ID: "prod-rate", Kind: schemas.RuleKindRate, EventType: schemas.TypeRunFinished, WindowMS: 60_000,
		SuccessRatioBelowBP: 5000, MinRuns: 5, WebhookEndpointID: ep["id"].(string)}, 1)

	var last time.Time
	for range 2 {
		last = s.produce(t, schemas.TypeRunFailed, "etl").Time
	}
	s.waitRulesClock(t, last.Add(2*time.Second)) // the boundaries of both failures are decided
	if hook.len() != 0 {
		t.Fatalf("2 failed runs of min 5: %s, want nothing", hook.String())
	}
	s.produce(t, schemas.TypeRunSucceeded, "etl")
	for range 2 {
		s.produce(t, schemas.TypeRunFailed, "etl")
	}
	hook.wait(t, 1, "the firing (4 failed of 5 runs)")
	body, h := hook.get(0)
	if !verifyStandardWebhooks(h, body, ep["secret"].(string)) {
		t.Fatalf("firing not signed with the endpoint's secret: %v", h)
	}
	var firing schemas.WebhookPayload
	if err := json.Unmarshal(body, &firing); err != nil || firing.Type != schemas.TypeAlertFiring || firing.Data.Aggregate == nil {
		t.Fatalf("firing %s (%v)", body, err)
	}
	if v := firing.Data.Aggregate.Value; v.Failed == nil || *v.Failed != 4 || v.Succeeded == nil || *v.Succeeded != 1 {
		t.Fatalf("firing value %+v, want 4 failed, 1 succeeded", v)
	}
	for range 5 {
		last = s.produce(t, schemas.TypeRunSucceeded, "etl").Time
	}
	hook.wait(t, 2, "the resolve (6 of 10 succeeded)")
	body, h = hook.get(1)
	var resolved schemas.WebhookPayload
	if err := json.Unmarshal(body, &resolved); err != nil || resolved.Type != schemas.TypeAlertResolved || !verifyStandardWebhooks(h, body, ep["secret"].(string)) {
		t.Fatalf("resolve %s (%v)", body, err)
	}
	if resolved.Data.Aggregate.IncidentID != firing.Data.Aggregate.IncidentID || resolved.Data.AlertID == firing.Data.AlertID {
		t.Fatalf("resolve incident %s alert %s; firing incident %s alert %s: want the same incident, another alert id",
			resolved.Data.Aggregate.IncidentID, resolved.Data.AlertID, firing.Data.Aggregate.IncidentID, firing.Data.AlertID)
	}
	s.waitRulesClock(t, last.Add(2*time.Second))
	if hook.len() != 2 {
		t.Fatalf("%s, want a firing and a resolve", hook.String())
	}
	s.alive(t)
}

// Groups of one rule are independent: a workflow's third failure fires its
// own episode, another's two failures fire nothing until its third, which
// fires a second episode; each resolves under its own incident.
func TestGroupByTwoWorkflowsIndependent(t *testing.T) {
	t.Parallel()
	s := startAggregate(t)
	var hook posts
	srv := hook.server(t)
	ep := s.post(t, "acme", "/v1/webhooks", map[string]any{"name": "hook", "target_url": srv.URL + "/hook"})
	s.waitGauge(t, "exo_processor_endpoints", 1) // a firing to an endpoint not known yet is not delivered
	s.putRule(t, schemas.RuleRecord{ID: "by-workflow", Kind: schemas.RuleKindCount, EventType: schemas.TypeRunFailed, WindowMS: 60_000, Threshold: 3,
		GroupBy: []string{"workflow.name"}, MaxGroups: 100, WebhookEndpointID: ep["id"].(string)}, 1)
	payload := func(i int) schemas.WebhookPayload {
		body, _ := hook.get(i)
		var p schemas.WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil || p.Data.Aggregate == nil {
			t.Fatalf("delivery %s (%v)", body, err)
		}
		return p
	}
	for range 3 {
		s.produce(t, schemas.TypeRunFailed, "etl")
	}
	var last time.Time
	for range 2 {
		last = s.produce(t, schemas.TypeRunFailed, "report").Time
	}
	hook.wait(t, 1, "etl's firing")
	s.waitRulesClock(t, last.Add(time.Second))
	if hook.len() != 1 {
		t.Fatalf("%s, want etl's firing alone", hook.String())
	}
	etl := payload(0)
	if etl.Type != schemas.TypeAlertFiring || etl.Data.Aggregate.Group["workflow.name"] != "etl" {
		t.Fatalf("first delivery %+v, want etl firing", etl.Data.Aggregate)
	}
	s.produce(t, schemas.TypeRunFailed, "report")
	hook.wait(t, 2, "report's firing")
	report := payload(1)
	if report.Type != schemas.TypeAlertFiring || report.Data.Aggregate.Group["workflow.name"] != "report" || report.Data.Aggregate.IncidentID == etl.Data.Aggregate.IncidentID {
		t.Fatalf("second delivery %+v, want report firing under its own incident", report.Data.Aggregate)
	}
	s.clock.advance(3 * time.Minute)
	hook.wait(t, 4, "both resolves")
	got := map[string]string{} // incident -> group
	for i := 2; i < 4; i++ {
		p := payload(i)
		if p.Type != schemas.TypeAlertResolved {
			t.Fatalf("delivery %d: %s, want a resolve", i, p.Type)
		}
		got[p.Data.Aggregate.IncidentID] = p.Data.Aggregate.Group["workflow.name"]
	}
	if got[etl.Data.Aggregate.IncidentID] != "etl" || got[report.Data.Aggregate.IncidentID] != "report" {
		t.Fatalf("resolves %v, want etl's and report's incidents", got)
	}
	s.alive(t)
}

// waitUntil polls cond every 20ms until it holds, failing after timeout
// with what state says.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; %s", timeout, what, state())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
