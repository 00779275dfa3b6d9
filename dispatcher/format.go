package dispatcher

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// message is what is POSTed for one delivery.
type message struct {
	body []byte
	// sign: the Standard Webhooks and Exosphere signatures are added (webhook
	// kind; Slack and PagerDuty authenticate by their URL or routing key).
	sign bool
}

// LinkTemplate builds the dashboard link of an alert: {tenant_id},
// {workflow_id}, {run_id} and {alert_id} are replaced (URL-escaped). Empty:
// no link.
type LinkTemplate string

func (lt LinkTemplate) link(d *schemas.PayloadData) string {
	if lt == "" {
		return ""
	}
	return strings.NewReplacer(
		"{tenant_id}", url.PathEscape(d.TenantID), "{workflow_id}", url.PathEscape(d.Workflow.ID),
		"{run_id}", url.PathEscape(d.Run.ID), "{alert_id}", url.PathEscape(d.AlertID),
	).Replace(string(lt))
}

// render builds the message of delivery d for an endpoint of kind. secret is
// the endpoint's decrypted secret (the routing key, for PagerDuty).
func render(kind string, d *schemas.DeliveryRecord, secret string, links LinkTemplate) (message, error) {
	switch kind {
	case "", schemas.EndpointKindWebhook:
		return message{body: d.Payload, sign: true}, nil
	case schemas.EndpointKindSlack, schemas.EndpointKindPagerDuty:
	default:
		return message{}, fmt.Errorf("unknown endpoint kind %q", kind)
	}
	var p schemas.WebhookPayload
	if err := json.Unmarshal(d.Payload, &p); err != nil {
		return message{}, fmt.Errorf("payload: %w", err)
	}
	if m, ok := renderAggregate(kind, &p, d.Severity, secret, links.link(&p.Data)); ok {
		return m, nil
	}
	if kind == schemas.EndpointKindSlack {
		return message{body: slackBody(&p, links.link(&p.Data))}, nil
	}
	return message{body: pagerDutyBody(&p, d.Severity, secret, links.link(&p.Data))}, nil
}

// headline is a one-line summary of an alert.
func headline(p *schemas.WebhookPayload) string {
	d := &p.Data
	if p.Type == schemas.TypeWebhookTest {
		return fmt.Sprintf("[%s] Test delivery from Exosphere Alerts: this endpoint is set up", d.TenantID)
	}
	if isAggregate(p) {
		return aggregateHeadline(p)
	}
	wf := d.Workflow.Name
	if wf == "" {
		wf = d.Workflow.ID
	}
	var what string
	switch p.Type {
	case schemas.TypeRunFailed:
		what = "failed"
	case schemas.TypeRunSucceeded:
		what = "succeeded"
	case schemas.TypeRunStarted:
		what = "started"
	case schemas.TypeRunDurationExceeded:
		what = "is running longer than " + ms(d.ThresholdMS)
	default:
		what = p.Type
	}
	s := fmt.Sprintf("[%s] Workflow %s %s (run %s", d.TenantID, wf, what, d.Run.ID)
	if d.Run.DurationMS != nil && p.Type != schemas.TypeRunDurationExceeded {
		s += ", " + ms(d.Run.DurationMS)
	} else if d.Run.DurationMS != nil {
		s += ", running for " + ms(d.Run.DurationMS)
	}
	return s + ")"
}

func ms(v *int64) string {
	if v == nil {
		return "?"
	}
	return (time.Duration(*v) * time.Millisecond).Round(time.Second).String()
}

// slackBody is an incoming-webhook message: a text fallback and blocks.
func slackBody(p *schemas.WebhookPayload, link string) []byte {
	d := &p.Data
	text := slackEscape(headline(p) + " — rule " + d.Rule.Name)
	fields := []map[string]string{
		{"type": "mrkdwn", "text": "*Workflow*\n" + slackEscape(d.Workflow.Name+" ("+d.Workflow.ID+")")},
		{"type": "mrkdwn", "text": "*Run*\n" + slackEscape(d.Run.ID)},
		{"type": "mrkdwn", "text": "*Rule*\n" + slackEscape(d.Rule.Name)},
		{"type": "mrkdwn", "text": "*Tenant*\n" + slackEscape(d.TenantID)},
	}
	if d.Run.DurationMS != nil {
		fields = append(fields, map[string]string{"type": "mrkdwn", "text": "*Duration*\n" + ms(d.Run.DurationMS)})
	}
	if d.Error != nil && d.Error.Code != "" {
		e := d.Error.Code
		if d.Error.Message != "" {
			e += ": " + d.Error.Message
		}
		fields = append(fields, map[string]string{"type": "mrkdwn", "text": "*Error*\n" + slackEscape(e)})
	}
	blocks := []any{
		map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": "*" + slackEscape(headline(p)) + "*"}},
		map[string]any{"type": "section", "fields": fields},
		map[string]any{"type": "context", "elements": []map[string]string{{"type": "mrkdwn", "text": "alert " + d.AlertID + " · " + p.Timestamp.UTC().Format(time.RFC3339)}}},
	}
	if link != "" {
		blocks = append(blocks, map[string]any{"type": "actions", "elements": []any{map[string]any{
			"type": "button", "text": map[string]string{"type": "plain_text", "text": "Open run"}, "url": link,
		}}})
	}
	return marshal(map[string]any{"text": text, "blocks": blocks})
}

// slackEscape escapes the three characters Slack's mrkdwn treats as control.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// pagerDutyBody is an Events API v2 trigger; dedup_key = alert_id, so a
// retried or replayed alert never opens a second incident.
func pagerDutyBody(p *schemas.WebhookPayload, severity, routingKey, link string) []byte {
	switch severity {
	case "critical", "error", "warning", "info":
	default:
		severity = "error"
	}
	d := &p.Data
	details := map[string]any{
		"tenant_id": d.TenantID, "rule": d.Rule, "workflow": d.Workflow, "run": d.Run, "event": d.Event, "labels": d.Labels,
	}
	if d.Error != nil {
		details["error"] = d.Error
	}
	if d.ThresholdMS != nil {
		details["threshold_ms"] = *d.ThresholdMS
	}
	ev := map[string]any{
		"routing_key":  routingKey,
		"event_action": "trigger",
		"dedup_key":    d.AlertID,
		"payload": map[string]any{
			"summary":        truncate(headline(p)+" — rule "+d.Rule.Name, 1024),
			"source":         "exosphere/" + d.TenantID + "/" + d.Workflow.ID,
			"severity":       severity,
			"timestamp":      p.Timestamp.UTC().Format(time.RFC3339Nano),
			"component":      d.Workflow.Name,
			"group":          d.TenantID,
			"class":          p.Type,
			"custom_details": details,
		},
	}
	if link != "" {
		ev["links"] = []map[string]string{{"href": link, "text": "Open run"}}
	}
	return marshal(ev)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// marshal encodes v without HTML escaping (the bodies are JSON, not HTML).
func marshal(v any) []byte {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // maps of plain values: cannot fail
	return []byte(strings.TrimSuffix(b.String(), "\n"))
}
