package dispatcher

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
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

// exampleDelivery reads a delivery of schemas/examples (valid against the
// delivery and payload schemas), with its payload changed by edit.
func exampleDelivery(t *testing.T, name string, edit func(*schemas.WebhookPayload)) *schemas.DeliveryRecord {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "schemas", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	var d schemas.DeliveryRecord
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		var p schemas.WebhookPayload
		if err := json.Unmarshal(d.Payload, &p); err != nil {
			t.Fatal(err)
		}
		edit(&p)
		if d.Payload, err = json.Marshal(p); err != nil {
			t.Fatal(err)
		}
		if err := schemas.Validate(schemas.KindWebhookPayload, d.Payload); err != nil {
			t.Fatalf("edited payload: %v", err)
		}
	}
	return &d
}

// firingDelivery is a count rule's firing (3 failures in 15m, threshold 3,
// group workflow.name nightly-etl), made from the resolved example's
// delivery record and the firing example's payload.
func firingDelivery(t *testing.T, repeat int) *schemas.DeliveryRecord {
	t.Helper()
	d := exampleDelivery(t, "delivery.resolved.json", nil)
	raw, err := os.ReadFile(filepath.Join("..", "schemas", "examples", "webhook-payload-v1.firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p schemas.WebhookPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	p.Data.Aggregate.Repeat = repeat
	d.Payload, _ = json.Marshal(p)
	d.EventType, d.AlertID, d.Severity = p.Type, p.Data.AlertID, "critical"
	return d
}

func TestRenderAggregateWebhookIsThePayload(t *testing.T) {
	t.Parallel()
	for _, d := range []*schemas.DeliveryRecord{firingDelivery(t, 0), exampleDelivery(t, "delivery.resolved.json", nil)} {
		m, err := render(schemas.EndpointKindWebhook, d, "whsec_x", "")
		if err != nil || string(m.body) != string(d.Payload) || !m.sign {
			t.Fatalf("webhook message = %s, sign %v, %v", m.body, m.sign, err)
		}
	}
}

// A resolve is exactly {routing_key, event_action: "resolve", dedup_key}
// with the incident id the firing triggered with.
func TestRenderAggregatePagerDutyResolve(t *testing.T) {
	t.Parallel()
	d := exampleDelivery(t, "delivery.resolved.json", nil)
	m, err := render(schemas.EndpointKindPagerDuty, d, "R0UT1NGKEY", "https://app.example.com/{run_id}")
	if err != nil || m.sign {
		t.Fatalf("render: %v, sign %v", err, m.sign)
	}
	var got map[string]any
	if err := json.Unmarshal(m.body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"routing_key": "R0UT1NGKEY", "event_action": "resolve", "dedup_key": "inc_2c26b46b68ffc68ff99b453c1d304134"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("resolve body = %s, want exactly %v", m.body, want)
	}
}

// The firing and every repeat trigger the one incident of the episode:
// dedup_key is the incident id, not the delivery's alert id.
func TestRenderAggregatePagerDutyTrigger(t *testing.T) {
	t.Parallel()
	for _, repeat := range []int{0, 2} {
		m, err := render(schemas.EndpointKindPagerDuty, firingDelivery(t, repeat), "R0UT1NGKEY", "")
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			RoutingKey  string `json:"routing_key"`
			EventAction string `json:"event_action"`
			DedupKey    string `json:"dedup_key"`
			Payload     struct {
				Summary, Source, Severity, Class string
				Details                          schemas.PayloadAggregate `json:"custom_details"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(m.body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.RoutingKey != "R0UT1NGKEY" || ev.EventAction != "trigger" || ev.DedupKey != "inc_9f86d081884c7d659a2feaa0c55ad015" ||
			ev.Payload.Summary != "3 failures in 15m (threshold 3) — nightly-etl — rule nightly-etl keeps failing" ||
			ev.Payload.Severity != "critical" || ev.Payload.Class != schemas.TypeAlertFiring ||
			ev.Payload.Details.IncidentID != ev.DedupKey || ev.Payload.Details.Repeat != repeat {
			t.Fatalf("repeat %d: trigger = %s", repeat, m.body)
		}
	}
}

type slackMsg struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type   string `json:"type"`
		Text   struct{ Text string }
		Fields []struct{ Text string }
	} `json:"blocks"`
}

func renderSlack(t *testing.T, d *schemas.DeliveryRecord) slackMsg {
	t.Helper()
	m, err := render(schemas.EndpointKindSlack, d, "", "")
	if err != nil || m.sign {
		t.Fatalf("render: %v, sign %v", err, m.sign)
	}
	var msg slackMsg
	if err := json.Unmarshal(m.body, &msg); err != nil {
		t.Fatal(err)
	}
	return msg
}

func fieldTexts(msg slackMsg) []string {
	var out []string
	for _, b := range msg.Blocks {
		for _, f := range b.Fields {
			out = append(out, f.Text)
		}
	}
	return out
}

func TestRenderAggregateSlack(t *testing.T) {
	t.Parallel()
	removed := exampleDelivery(t, "delivery.resolved.json", func(p *schemas.WebhookPayload) {
		r := schemas.ResolveReasonRuleRemoved
		p.Data.Aggregate.ResolveReason = &r
	})
	for _, tc := range []struct {
		name     string
		d        *schemas.DeliveryRecord
		text     string
		headline string
		fields   []string
	}{
		{
			name:     "firing",
			d:        firingDelivery(t, 0),
			text:     "[acme] FIRING: 3 failures in 15m (threshold 3) — nightly-etl — rule nightly-etl keeps failing",
			headline: "*[acme] FIRING: 3 failures in 15m (threshold 3) — nightly-etl*",
			fields: []string{"*Group*\nnightly-etl", "*Value*\n3 failures in 15m (threshold 3)", "*Window*\n15m",
				"*Firing since*\n2026-11-28T10:02:00Z", "*Incident*\ninc_9f86d081884c7d659a2feaa0c55ad015", "*Rule*\nnightly-etl keeps failing"},
		},
		{
			name:     "repeat",
			d:        firingDelivery(t, 2),
			text:     "[acme] FIRING (repeat 2): 3 failures in 15m (threshold 3) — nightly-etl — rule nightly-etl keeps failing",
			headline: "*[acme] FIRING (repeat 2): 3 failures in 15m (threshold 3) — nightly-etl*",
		},
		{
			name:     "resolved",
			d:        exampleDelivery(t, "delivery.resolved.json", nil),
			text:     "[acme] RESOLVED: data (firing since 10:20 UTC, for 45m) — rule prod success rate",
			headline: "*[acme] RESOLVED: data (firing since 10:20 UTC, for 45m)*",
			fields: []string{"*Group*\ndata", "*Value now*\nsuccess ratio 97.56% of 41 runs in 1h (below 95%, min 10 runs)",
				"*Resolved at*\n2026-11-28T11:05:00Z", "*Reason*\ncondition false", "*Rule*\nprod success rate"},
		},
		{
			name:     "resolved because the rule was removed",
			d:        removed,
			text:     "[acme] RESOLVED: data (firing since 10:20 UTC, for 45m): rule removed — rule prod success rate",
			headline: "*[acme] RESOLVED: data (firing since 10:20 UTC, for 45m): rule removed*",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			msg := renderSlack(t, tc.d)
			if msg.Text != tc.text {
				t.Errorf("text\n got %q\nwant %q", msg.Text, tc.text)
			}
			if len(msg.Blocks) != 3 || msg.Blocks[0].Text.Text != tc.headline {
				t.Errorf("blocks %+v, want the headline %q, fields, context", msg.Blocks, tc.headline)
			}
			if tc.fields != nil && !slices.Equal(fieldTexts(msg), tc.fields) {
				t.Errorf("fields\n got %q\nwant %q", fieldTexts(msg), tc.fields)
			}
		})
	}
}
