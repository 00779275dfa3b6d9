package dispatcher

import (
	"fmt"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The messages of a tenant.notice delivery to Slack and PagerDuty endpoints
// (docs/design/aggregate-alerts.md §6); webhook endpoints get the signed
// payload like any delivery.

// noticeHeadline is the one line of a notice: "Notice: <title>".
func noticeHeadline(p *schemas.WebhookPayload) string {
	return fmt.Sprintf("[%s] Notice: %s", p.Data.TenantID, p.Data.Notice.Title)
}

// noticeSlackBody is a Slack incoming-webhook message of a notice.
func noticeSlackBody(p *schemas.WebhookPayload) []byte {
	n := p.Data.Notice
	fields := []map[string]string{
		{"type": "mrkdwn", "text": "*Kind*\n" + slackEscape(n.Kind)},
		{"type": "mrkdwn", "text": "*Tenant*\n" + slackEscape(p.Data.TenantID)},
	}
	if n.RuleID != nil {
		fields = append(fields, map[string]string{"type": "mrkdwn", "text": "*Rule*\n" + slackEscape(*n.RuleID)})
	}
	if n.EndpointID != nil {
		fields = append(fields, map[string]string{"type": "mrkdwn", "text": "*Endpoint*\n" + slackEscape(*n.EndpointID)})
	}
	if n.Count > 1 {
		fields = append(fields, map[string]string{"type": "mrkdwn", "text": fmt.Sprintf("*Count*\n%d", n.Count)})
	}
	blocks := []any{
		map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": "*" + slackEscape(noticeHeadline(p)) + "*"}},
		map[string]any{"type": "section", "fields": fields},
		map[string]any{"type": "context", "elements": []map[string]string{{"type": "mrkdwn",
			"text": "notice " + n.ID + " · " + n.CreatedAt.UTC().Format(time.RFC3339)}}},
	}
	return marshal(map[string]any{"text": slackEscape(noticeHeadline(p)), "blocks": blocks})
}

// noticePagerDutyBody is an Events API v2 trigger of a notice: dedup_key is
// the notice id (one incident per notice, however often it is delivered),
// severity warning.
func noticePagerDutyBody(p *schemas.WebhookPayload, routingKey string) []byte {
	n := p.Data.Notice
	return marshal(map[string]any{
		"routing_key":  routingKey,
		"event_action": "trigger",
		"dedup_key":    n.ID,
		"payload": map[string]any{
			"summary":        truncate(noticeHeadline(p), 1024),
			"source":         "exosphere/" + p.Data.TenantID,
			"severity":       "warning",
			"timestamp":      n.CreatedAt.UTC().Format(time.RFC3339Nano),
			"group":          p.Data.TenantID,
			"class":          p.Type,
			"custom_details": map[string]any{"tenant_id": p.Data.TenantID, "notice": n},
		},
	})
}
