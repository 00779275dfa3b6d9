package dispatcher

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

func testDelivery(t *testing.T, typ string) *schemas.DeliveryRecord {
	t.Helper()
	d := int64(84211)
	th := int64(60000)
	p := schemas.WebhookPayload{Type: typ, Timestamp: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), Data: schemas.PayloadData{
		AlertID: "alrt_0123456789abcdef0123456789abcdef", TenantID: "acme",
		Rule:     schemas.RuleRef{ID: "rul_1", Name: "ETL <failures>"},
		Event:    schemas.EventRef{ID: "ev1", Type: typ, OccurredAt: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)},
		Workflow: schemas.Workflow{ID: "wf_9", Name: "nightly-etl"},
		Run:      schemas.PayloadRun{ID: "run_123", Status: "failed", DurationMS: &d},
		Error:    &schemas.PayloadError{Code: "NODE_ERRORED"}, Labels: map[string]string{"env": "prod"},
	}}
	if typ == schemas.TypeRunDurationExceeded {
		p.Data.ThresholdMS, p.Data.Error = &th, nil
	}
	body, _ := json.Marshal(p)
	return &schemas.DeliveryRecord{AlertID: p.Data.AlertID, TenantID: "acme", RuleID: "rul_1", EndpointID: "whk_1",
		EventType: typ, MaxAttempts: 8, Severity: "critical", Payload: body}
}

func TestRenderWebhookIsThePayload(t *testing.T) {
	t.Parallel()
	d := testDelivery(t, schemas.TypeRunFailed)
	m, err := render(schemas.EndpointKindWebhook, d, "whsec_x", "")
	if err != nil || string(m.body) != string(d.Payload) || !m.sign {
		t.Fatalf("webhook message = %s, sign %v, %v", m.body, m.sign, err)
	}
}

func TestRenderSlack(t *testing.T) {
	t.Parallel()
	m, err := render(schemas.EndpointKindSlack, testDelivery(t, schemas.TypeRunFailed), "", "https://app.example.com/t/{tenant_id}/runs/{run_id}")
	if err != nil || m.sign {
		t.Fatalf("render: %v, sign %v", err, m.sign)
	}
	var msg struct {
		Text   string           `json:"text"`
		Blocks []map[string]any `json:"blocks"`
	}
	if err := json.Unmarshal(m.body, &msg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"acme", "nightly-etl", "failed", "run_123", "1m24s"} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("fallback text %q lacks %q", msg.Text, want)
		}
	}
	raw := string(m.body)
	if !strings.Contains(raw, "https://app.example.com/t/acme/runs/run_123") {
		t.Errorf("no dashboard link: %s", raw)
	}
	if strings.Contains(raw, "ETL <failures>") || !strings.Contains(raw, "ETL &lt;failures&gt;") {
		t.Errorf("rule name not escaped for mrkdwn: %s", raw)
	}
	if len(msg.Blocks) != 4 {
		t.Errorf("%d blocks, want 4 (headline, fields, context, link)", len(msg.Blocks))
	}
}

func TestRenderPagerDuty(t *testing.T) {
	t.Parallel()
	m, err := render(schemas.EndpointKindPagerDuty, testDelivery(t, schemas.TypeRunDurationExceeded), "R0UT1NGKEY", "")
	if err != nil || m.sign {
		t.Fatalf("render: %v", err)
	}
	var ev struct {
		RoutingKey  string `json:"routing_key"`
		EventAction string `json:"event_action"`
		DedupKey    string `json:"dedup_key"`
		Payload     struct {
			Summary, Source, Severity, Timestamp string
			Details                              map[string]any `json:"custom_details"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(m.body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.RoutingKey != "R0UT1NGKEY" || ev.EventAction != "trigger" || ev.DedupKey != "alrt_0123456789abcdef0123456789abcdef" ||
		ev.Payload.Severity != "critical" || !strings.Contains(ev.Payload.Summary, "longer than 1m0s") ||
		ev.Payload.Source != "exosphere/acme/wf_9" || ev.Payload.Details["threshold_ms"] != float64(60000) {
		t.Fatalf("event: %s", m.body)
	}
}

func TestRenderRejectsUnknownKind(t *testing.T) {
	t.Parallel()
	if _, err := render("carrier-pigeon", testDelivery(t, schemas.TypeRunFailed), "", ""); err == nil {
		t.Fatal("unknown kind rendered")
	}
}

// A test delivery reads as one in Slack and PagerDuty, not as a workflow
// named after the test event.
func TestRenderTestDelivery(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{schemas.EndpointKindSlack, schemas.EndpointKindPagerDuty} {
		m, err := render(kind, testDelivery(t, schemas.TypeWebhookTest), "R0UTINGKEY0000000000000000000001", "")
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !strings.Contains(string(m.body), "Test delivery from Exosphere Alerts") || strings.Contains(string(m.body), "Workflow nightly-etl webhook.test") {
			t.Errorf("%s test message: %s", kind, m.body)
		}
	}
}
