package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

// histInsert stores an alert with its attempts (outcomes, oldest first)
// and, when dead, its dead letter, as the recorder would.
func histInsert(t *testing.T, b *bundle, tenant, rule, endpoint string, at time.Time, dead bool, outcomes ...string) schemas.DeliveryRecord {
	t.Helper()
	ctx := context.Background()
	d, raw := histDelivery(t, tenant, rule, endpoint, at)
	if _, err := b.pool.Exec(ctx, `INSERT INTO alerts (alert_id, tenant_id, rule_id, endpoint_id, event_type, record, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, d.AlertID, tenant, rule, endpoint, d.EventType, raw, at); err != nil {
		t.Fatal(err)
	}
	for i, o := range outcomes {
		status := 200
		if o != schemas.OutcomeDelivered {
			status = 503
		}
		if _, err := b.pool.Exec(ctx, `INSERT INTO delivery_attempts (alert_id, attempt, delivery_id, tenant_id, rule_id, endpoint_id,
			outcome, status_code, latency_ms, response_excerpt, attempted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 42, 'answer', $9)`,
			d.AlertID, i+1, "dlv_"+histHex(6), tenant, rule, endpoint, o, status, at.Add(time.Duration(i+1)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if dead {
		if _, err := b.pool.Exec(ctx, `INSERT INTO dead_letters (alert_id, tenant_id, rule_id, endpoint_id, attempts, last_error, record, dead_at)
			VALUES ($1, $2, $3, $4, $5, 'http_status: HTTP 503', $6, $7)`, d.AlertID, tenant, rule, endpoint, len(outcomes), raw,
			at.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func histItems(t *testing.T, body map[string]any) []map[string]any {
	t.Helper()
	raw, ok := body["items"].([]any)
	if !ok {
		t.Fatalf("no items in %v", body)
	}
	out := make([]map[string]any, 0, len(raw))
	for _, r := range raw {
		out = append(out, r.(map[string]any))
	}
	return out
}

// The history API lists a rule's and an endpoint's alerts newest first
// with their attempts, pages and filters them, shows one alert with its
// payload, lists dead letters; deleted rules keep their history; another
// tenant gets 404s and empty lists.
func TestDeliveryHistoryAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, _, wh := b.do(t, "POST", "/v1/webhooks", b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/x"}`)
	endpoint := wh["id"].(string)
	_, _, rule := b.do(t, "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.failed","webhook_endpoint_id":"`+endpoint+`"}`)
	ruleID := rule["id"].(string)
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	delivered := histInsert(t, b, "acme", ruleID, endpoint, t0, false, schemas.OutcomeRetry, schemas.OutcomeDelivered)
	dead := histInsert(t, b, "acme", ruleID, endpoint, t0.Add(time.Minute), true, schemas.OutcomeRetry, schemas.OutcomeDead)
	pending := histInsert(t, b, "acme", ruleID, endpoint, t0.Add(2*time.Minute), false)
	// A test delivery shows under the endpoint, not under the rule.
	test := histInsert(t, b, "acme", schemas.TestRuleID, endpoint, t0.Add(3*time.Minute), false, schemas.OutcomeDelivered)
	theirs := histInsert(t, b, "globex", "rul_theirs", "whk_theirs", t0, true, schemas.OutcomeDead)

	status, _, page := b.do(t, "GET", "/v1/alert-rules/"+ruleID+"/deliveries?limit=2", b.viewKey, "")
	if status != 200 {
		t.Fatalf("rule deliveries: %d %v", status, page)
	}
	got := histItems(t, page)
	if len(got) != 2 || got[0]["alert_id"] != pending.AlertID || got[1]["alert_id"] != dead.AlertID {
		t.Fatalf("first page, newest first: %v", got)
	}
	if got[0]["status"] != "pending" || len(got[0]["attempts"].([]any)) != 0 {
		t.Errorf("pending alert: %v", got[0])
	}
	if got[1]["status"] != "dead" || got[1]["dead_lettered"] != true || got[1]["workflow_name"] != "nightly-etl" {
		t.Errorf("dead alert: %v", got[1])
	}
	attempts := got[1]["attempts"].([]any)
	first := attempts[0].(map[string]any)
	if len(attempts) != 2 || first["attempt"] != float64(1) || first["outcome"] != "retry" || first["status_code"] != float64(503) ||
		first["latency_ms"] != float64(42) || first["response_excerpt"] != "answer" {
		t.Errorf("attempts, oldest first: %v", attempts)
	}
	next, _ := page["next_cursor"].(string)
	if next == "" {
		t.Fatal("no next_cursor on a full page")
	}
	_, _, page = b.do(t, "GET", "/v1/alert-rules/"+ruleID+"/deliveries?limit=2&cursor="+url.QueryEscape(next), b.viewKey, "")
	if got := histItems(t, page); len(got) != 1 || got[0]["alert_id"] != delivered.AlertID || got[0]["status"] != "delivered" || page["next_cursor"] != "" {
		t.Errorf("second page: %v", page)
	}
	for outcome, want := range map[string]string{"dead": dead.AlertID, "delivered": delivered.AlertID, "pending": pending.AlertID} {
		_, _, page = b.do(t, "GET", "/v1/alert-rules/"+ruleID+"/deliveries?outcome="+outcome, b.viewKey, "")
		if got := histItems(t, page); len(got) != 1 || got[0]["alert_id"] != want {
			t.Errorf("outcome=%s: %v", outcome, got)
		}
	}
	_, _, page = b.do(t, "GET", "/v1/webhooks/"+endpoint+"/deliveries", b.viewKey, "")
	if got := histItems(t, page); len(got) != 4 || got[0]["alert_id"] != test.AlertID || got[0]["rule_id"] != "test" {
		t.Errorf("endpoint deliveries: %v", got)
	}

	status, _, one := b.do(t, "GET", "/v1/deliveries/"+dead.AlertID, b.viewKey, "")
	if status != 200 || one["alert_id"] != dead.AlertID || len(one["attempts"].([]any)) != 2 {
		t.Fatalf("get delivery: %d %v", status, one)
	}
	var payload schemas.WebhookPayload
	raw, _ := json.Marshal(one["payload"])
	if err := json.Unmarshal(raw, &payload); err != nil || payload.Data.AlertID != dead.AlertID || payload.Data.Workflow.Name != "nightly-etl" {
		t.Errorf("payload: %s (%v)", raw, err)
	}

	_, _, page = b.do(t, "GET", "/v1/dead-letters?replayed=false&endpoint_id="+endpoint, b.viewKey, "")
	if got := histItems(t, page); len(got) != 1 || got[0]["alert_id"] != dead.AlertID || got[0]["attempts"] != float64(2) ||
		got[0]["last_error"] != "http_status: HTTP 503" || got[0]["replayed_at"] != nil {
		t.Errorf("dead letters: %v", got)
	}
	for _, q := range []string{"replayed=true", "rule_id=rul_other", "until=" + url.QueryEscape(t0.Format(time.RFC3339Nano)),
		"since=" + url.QueryEscape(t0.Add(time.Hour).Format(time.RFC3339Nano))} {
		if _, _, page = b.do(t, "GET", "/v1/dead-letters?"+q, b.viewKey, ""); len(histItems(t, page)) != 0 {
			t.Errorf("dead letters ?%s: %v", q, page)
		}
	}

	// A deleted rule keeps its history.
	if _, err := b.pool.Exec(context.Background(), `UPDATE alert_rules SET deleted_at = now() WHERE id = $1`, ruleID); err != nil {
		t.Fatal(err)
	}
	if _, _, page = b.do(t, "GET", "/v1/alert-rules/"+ruleID+"/deliveries", b.viewKey, ""); len(histItems(t, page)) != 3 {
		t.Errorf("deleted rule's history: %v", page)
	}

	// Another tenant sees none of it; unknown ids are 404 too.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/alert-rules/" + ruleID + "/deliveries"},
		{"GET", "/v1/webhooks/" + endpoint + "/deliveries"},
		{"GET", "/v1/deliveries/" + dead.AlertID},
		{"POST", "/v1/deliveries/" + dead.AlertID + "/redeliver"},
		{"POST", "/v1/dead-letters/" + dead.AlertID + "/replay"},
		{"POST", "/v1/webhooks/" + endpoint + "/test"},
	} {
		if status, h, problem := b.do(t, c.method, c.path, b.otherKey, ""); status != 404 || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
			t.Errorf("globex %s %s = %d %v, want a 404 problem", c.method, c.path, status, problem)
		}
	}
	if status, _, _ := b.do(t, "GET", "/v1/alert-rules/rul_nope/deliveries", b.adminKey, ""); status != 404 {
		t.Errorf("unknown rule: %d, want 404", status)
	}
	_, _, page = b.do(t, "GET", "/v1/dead-letters", b.otherKey, "")
	if got := histItems(t, page); len(got) != 1 || got[0]["alert_id"] != theirs.AlertID {
		t.Errorf("globex dead letters: %v", got)
	}

	// Writes need an admin key. A replay queues the delivery in the outbox
	// in the transaction that marks the dead letter and audits it: all or
	// nothing, whether Kafka is up or not (this server runs no relay).
	if status, _, _ := b.do(t, "POST", "/v1/dead-letters/"+dead.AlertID+"/replay", b.viewKey, ""); status != 403 {
		t.Errorf("viewer replay: %d, want 403", status)
	}
	status, _, problem := b.do(t, "POST", "/v1/dead-letters/"+dead.AlertID+"/replay", b.adminKey, "")
	if status != 202 {
		t.Errorf("replay: %d %v, want 202", status, problem)
	}
	if n := b.count(t, "dead_letters WHERE replayed_at IS NOT NULL"); n != 1 {
		t.Errorf("the replay marked %d dead letters, want 1", n)
	}
	if n := b.count(t, "outbox WHERE topic LIKE '%deliveries' AND sent_at IS NULL AND convert_from(value, 'UTF8') LIKE '%"+dead.AlertID+"%'"); n != 1 {
		t.Errorf("%d deliveries queued in the outbox for the replayed alert, want 1", n)
	}
	if n := b.count(t, "audit_events WHERE action = 'dead_letter.replay'"); n != 1 {
		t.Errorf("%d audit rows for the replay, want 1", n)
	}
	if status, _, problem = b.do(t, "POST", "/v1/dead-letters/replay", b.adminKey, `{"since":"2026-01-02T00:00:00Z","until":"2026-01-01T00:00:00Z"}`); status != 422 {
		t.Errorf("bulk replay with until before since: %d %v", status, problem)
	}
}

// histReceiver is a webhook histReceiver whose answer the test sets.
type histReceiver struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	got    []histReceived
}

type histReceived struct {
	webhookID string
	body      []byte
	header    http.Header
}

func newHistReceiver(t *testing.T) *histReceiver {
	r := &histReceiver{}
	r.status.Store(200)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, histReceived{webhookID: req.Header.Get("webhook-id"), body: body, header: req.Header.Clone()})
		r.mu.Unlock()
		w.WriteHeader(int(r.status.Load()))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// requests returns what arrived with webhook-id id.
func (r *histReceiver) requests(id string) []histReceived {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []histReceived
	for _, g := range r.got {
		if g.webhookID == id {
			out = append(out, g)
		}
	}
	return out
}

// Through the real dispatcher: a test delivery arrives signed; a dead
// letter replayed and an alert redelivered arrive again with the same
// webhook-id; a bulk replay pages through the dead letters; an endpoint
// answering 410 gets its rule disabled by the system.
func TestRedeliverAndReplayThroughDispatcher(t *testing.T) {
	t.Parallel()
	l := startHistEnv(t, nil)
	rcv := newHistReceiver(t)
	endpoint, rule, secret := l.createRule(t, rcv.srv.URL+"/hook")

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- dispatcher.Run(ctx, dispatcher.Config{
			Brokers: l.brokers, Topics: l.topics, Keyring: l.ring, Allowlist: []string{"127.0.0.1"}, Group: "dispatcher-" + histHex(4),
			Tiers: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}, Registerer: prometheus.NewRegistry(),
			Log: testenv.Log(t), Ready: ready,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("dispatcher stopped: %v", err)
	}

	// Test delivery: signed, payload v1 of type webhook.test, recorded.
	status, acc := l.do(t, "POST", "/v1/webhooks/"+endpoint+"/test", l.adminKey, "")
	if status != http.StatusAccepted {
		t.Fatalf("test webhook: %d %v", status, acc)
	}
	testID := acc["alert_id"].(string)
	histWait(t, "test delivery histReceived", func() (bool, string) { return len(rcv.requests(testID)) == 1, "nothing yet" })
	got := rcv.requests(testID)[0]
	if err := signature.VerifyStandard(got.header, got.body, secret, time.Now(), 5*time.Minute); err != nil {
		t.Errorf("test delivery signature: %v", err)
	}
	if err := schemas.Validate(schemas.KindWebhookPayload, got.body); err != nil || !strings.Contains(string(got.body), `"type":"webhook.test"`) {
		t.Errorf("test delivery body %s: %v", got.body, err)
	}
	histWait(t, "test delivery in the endpoint's history", func() (bool, string) {
		_, page := l.do(t, "GET", "/v1/webhooks/"+endpoint+"/deliveries", l.adminKey, "")
		raw, _ := json.Marshal(page)
		return strings.Contains(string(raw), testID) && strings.Contains(string(raw), `"status":"delivered"`), string(raw)
	})

	// A failing alert with one attempt is dead-lettered; replayed, it
	// arrives with the same webhook-id.
	rcv.status.Store(500)
	d, _ := histDelivery(t, "acme", rule, endpoint, time.Now().UTC())
	d.MaxAttempts = 1
	raw, _ := json.Marshal(d)
	l.produce(t, l.topics.Deliveries, schemas.RecordKey("acme", endpoint), raw)
	histWait(t, "dead letter listed", func() (bool, string) {
		_, page := l.do(t, "GET", "/v1/dead-letters?replayed=false", l.adminKey, "")
		raw, _ := json.Marshal(page)
		return strings.Contains(string(raw), d.AlertID), string(raw)
	})
	rcv.status.Store(200)
	status, body := l.do(t, "POST", "/v1/dead-letters/"+d.AlertID+"/replay", l.adminKey, "")
	if status != http.StatusAccepted || body["alert_id"] != d.AlertID {
		t.Fatalf("replay: %d %v", status, body)
	}
	histWait(t, "replayed alert delivered", func() (bool, string) {
		_, one := l.do(t, "GET", "/v1/deliveries/"+d.AlertID, l.adminKey, "")
		return one["status"] == "delivered" && len(rcv.requests(d.AlertID)) == 2, fmt.Sprintf("%v; %d requests", one["status"], len(rcv.requests(d.AlertID)))
	})
	if _, page := l.do(t, "GET", "/v1/dead-letters?replayed=true", l.adminKey, ""); len(histItems(t, page)) != 1 {
		t.Errorf("replayed dead letter not marked: %v", page)
	}

	// Redelivered: the same webhook-id a third time.
	if status, body := l.do(t, "POST", "/v1/deliveries/"+d.AlertID+"/redeliver", l.adminKey, ""); status != http.StatusAccepted {
		t.Fatalf("redeliver: %d %v", status, body)
	}
	histWait(t, "redelivered", func() (bool, string) {
		return len(rcv.requests(d.AlertID)) == 3, fmt.Sprintf("%d requests", len(rcv.requests(d.AlertID)))
	})
	reqs := rcv.requests(d.AlertID)
	if string(reqs[2].body) != string(reqs[1].body) {
		t.Errorf("redelivery body differs:\n%s\n%s", reqs[2].body, reqs[1].body)
	}

	// Bulk replay, one per call: the answer says whether more remain.
	rcv.status.Store(500)
	var bulk []string
	for range 2 {
		b, _ := histDelivery(t, "acme", rule, endpoint, time.Now().UTC())
		b.MaxAttempts = 1
		raw, _ := json.Marshal(b)
		l.produce(t, l.topics.Deliveries, schemas.RecordKey("acme", endpoint), raw)
		bulk = append(bulk, b.AlertID)
	}
	histWait(t, "two more dead letters", func() (bool, string) {
		_, page := l.do(t, "GET", "/v1/dead-letters?replayed=false", l.adminKey, "")
		n := len(histItems(t, page))
		return n == 2, fmt.Sprintf("%d not replayed", n)
	})
	rcv.status.Store(200)
	span := fmt.Sprintf(`"since":%q,"until":%q`, time.Now().Add(-time.Hour).Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
	status, first := l.do(t, "POST", "/v1/dead-letters/replay", l.adminKey, `{`+span+`,"endpoint_id":"`+endpoint+`","limit":1}`)
	if status != http.StatusAccepted || first["replayed"] != float64(1) || first["more"] != true {
		t.Fatalf("bulk replay 1: %d %v", status, first)
	}
	_, second := l.do(t, "POST", "/v1/dead-letters/replay", l.adminKey, `{`+span+`}`)
	if second["replayed"] != float64(1) || second["more"] != false {
		t.Fatalf("bulk replay 2: %v", second)
	}
	histWait(t, "bulk replays delivered", func() (bool, string) {
		a, b := len(rcv.requests(bulk[0])), len(rcv.requests(bulk[1]))
		return a == 2 && b == 2, fmt.Sprintf("%d and %d requests", a, b)
	})
	_, third := l.do(t, "POST", "/v1/dead-letters/replay", l.adminKey, `{`+span+`}`)
	if third["replayed"] != float64(0) {
		t.Errorf("a third bulk replay sent %v again", third["replayed"])
	}
	if n := l.count(t, `SELECT count(*) FROM audit_events WHERE action IN ('webhook.test', 'dead_letter.replay', 'delivery.redeliver', 'dead_letter.replay_range')`); n != 5 {
		t.Errorf("%d audit rows for test, replay, redeliver and two bulk replays, want 5", n)
	}

	// The endpoint is gone: its rule is disabled by the system.
	rcv.status.Store(410)
	g, graw := histDelivery(t, "acme", rule, endpoint, time.Now().UTC())
	l.produce(t, l.topics.Deliveries, schemas.RecordKey("acme", endpoint), graw)
	histWait(t, "rule disabled", func() (bool, string) {
		_, r := l.do(t, "GET", "/v1/alert-rules/"+rule, l.adminKey, "")
		return r["is_active"] == false, fmt.Sprint(r)
	})
	_, r := l.do(t, "GET", "/v1/alert-rules/"+rule, l.adminKey, "")
	if reason, _ := r["disabled_reason"].(string); !strings.Contains(reason, "410") {
		t.Errorf("disabled_reason %q does not say 410", reason)
	}
	if n := l.count(t, `SELECT count(*) FROM audit_events WHERE actor = 'system' AND action = 'alert_rule.disable' AND resource_id = $1`, rule); n != 1 {
		t.Errorf("%d system audit rows for the disable, want 1", n)
	}
	if n := l.count(t, `SELECT count(*) FROM outbox WHERE topic = $1 AND convert_from(value, 'UTF8') LIKE '%"is_active":false%'`, l.topics.Rules); n != 1 {
		t.Errorf("%d disabled-rule snapshots in the outbox, want 1", n)
	}
	_, one := l.do(t, "GET", "/v1/deliveries/"+g.AlertID, l.adminKey, "")
	if one["status"] != "endpoint_gone" {
		t.Errorf("gone alert status %v", one["status"])
	}
}
