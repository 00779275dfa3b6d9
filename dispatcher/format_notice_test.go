package dispatcher

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/schemas"
)

// noticeDelivery is the schemas' example of a tenant.notice delivery.
func noticeDelivery(t *testing.T) *schemas.DeliveryRecord {
	t.Helper()
	raw, err := os.ReadFile("../schemas/examples/delivery.notice.json")
	if err != nil {
		t.Fatal(err)
	}
	var d schemas.DeliveryRecord
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// A notice reaches Slack as "Notice: <title>" and PagerDuty as a warning
// trigger deduplicated on the notice id; webhooks get the signed payload.
func TestRenderNotice(t *testing.T) {
	t.Parallel()
	d := noticeDelivery(t)
	var p schemas.WebhookPayload
	if err := json.Unmarshal(d.Payload, &p); err != nil || p.Data.Notice == nil {
		t.Fatalf("example: %v", err)
	}
	n := p.Data.Notice

	m, err := render(schemas.EndpointKindWebhook, d, "whsec_x", "")
	if err != nil || string(m.body) != string(d.Payload) || !m.sign {
		t.Errorf("webhook: %s sign %v: %v", m.body, m.sign, err)
	}

	m, err = render(schemas.EndpointKindSlack, d, "", "https://app.example.com/{run_id}")
	if err != nil || m.sign {
		t.Fatalf("slack: %v, sign %v", err, m.sign)
	}
	var slack struct {
		Text   string           `json:"text"`
		Blocks []map[string]any `json:"blocks"`
	}
	if err := json.Unmarshal(m.body, &slack); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(slack.Text, "[acme] Notice: ") || !strings.Contains(slack.Text, "ETL failures") || len(slack.Blocks) != 3 {
		t.Errorf("slack text %q, %d blocks", slack.Text, len(slack.Blocks))
	}
	for _, want := range []string{n.ID, *n.RuleID, *n.EndpointID, n.Kind} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("slack message lacks %q: %s", want, m.body)
		}
	}
	if strings.Contains(string(m.body), "app.example.com") {
		t.Errorf("a notice has no run to link to: %s", m.body)
	}

	m, err = render(schemas.EndpointKindPagerDuty, d, "R0UTING", "")
	if err != nil || m.sign {
		t.Fatalf("pagerduty: %v, sign %v", err, m.sign)
	}
	var pd struct {
		RoutingKey  string `json:"routing_key"`
		EventAction string `json:"event_action"`
		DedupKey    string `json:"dedup_key"`
		Payload     struct {
			Summary, Source, Severity, Class string
			Details                          map[string]any `json:"custom_details"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(m.body, &pd); err != nil {
		t.Fatal(err)
	}
	if pd.RoutingKey != "R0UTING" || pd.EventAction != "trigger" || pd.DedupKey != n.ID || pd.Payload.Severity != "warning" ||
		!strings.Contains(pd.Payload.Summary, "Notice: "+n.Title) || pd.Payload.Class != schemas.TypeTenantNotice || pd.Payload.Details["notice"] == nil {
		t.Errorf("pagerduty body: %s", m.body)
	}
}
