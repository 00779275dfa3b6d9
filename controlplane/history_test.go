package controlplane_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// histInsert stores an alert with its attempts (outcomes, oldest first)
// and, when dead, its dead letter, as the recorder would.
func histInsert(t *testing.T, b *bundle, tenant, rule, endpoint string, at time.Time, dead bool, outcomes ...string) schemas.DeliveryRecord {
	t.Helper()
	ctx := context.Background()
	d, raw := testenv.Delivery(t, tenant, rule, endpoint, at)
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
			d.AlertID, i+1, "dlv_"+testenv.HexID(6), tenant, rule, endpoint, o, status, at.Add(time.Duration(i+1)*time.Second)); err != nil {
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
