package dispatcher

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The episodes of count and rate rules (workflow.alert.firing and
// workflow.alert.resolved, data.aggregate) as Slack and PagerDuty messages
// (docs/design/aggregate-alerts.md §3.3). Webhook endpoints get the payload
// itself, signed, like every other type.

// isAggregate says whether p is an episode of a count or rate rule.
func isAggregate(p *schemas.WebhookPayload) bool {
	return (p.Type == schemas.TypeAlertFiring || p.Type == schemas.TypeAlertResolved) && p.Data.Aggregate != nil
}

// renderAggregate builds the Slack or PagerDuty message of an episode;
// ok=false for any other payload.
func renderAggregate(kind string, p *schemas.WebhookPayload, severity, secret, link string) (message, bool) {
	if !isAggregate(p) {
		return message{}, false
	}
	if kind == schemas.EndpointKindSlack {
		return message{body: slackAggregateBody(p, link)}, true
	}
	return message{body: pagerDutyAggregateBody(p, severity, secret, link)}, true
}

// aggregateHeadline is headline() for an episode: "[acme] FIRING: 3
// failures in 15m (threshold 3) — nightly-etl", "[acme] RESOLVED:
// nightly-etl (firing since 10:02 UTC, for 18m)".
func aggregateHeadline(p *schemas.WebhookPayload) string {
	d, a := &p.Data, p.Data.Aggregate
	group := groupText(a)
	if p.Type == schemas.TypeAlertResolved {
		s := fmt.Sprintf("[%s] RESOLVED: ", d.TenantID)
		if group != "" {
			s += group + " "
		} else {
			s += "rule " + d.Rule.Name + " "
		}
		s += "(firing since " + a.FiringSince.UTC().Format("15:04") + " UTC"
		if a.ResolvedAt != nil {
			s += ", for " + shortDuration(a.ResolvedAt.Sub(a.FiringSince).Round(time.Minute))
		}
		s += ")"
		if a.ResolveReason != nil && *a.ResolveReason != schemas.ResolveReasonConditionFalse {
			s += ": " + strings.ReplaceAll(*a.ResolveReason, "_", " ")
		}
		return s
	}
	state := "FIRING"
	if a.Repeat > 0 {
		state = fmt.Sprintf("FIRING (repeat %d)", a.Repeat)
	}
	s := fmt.Sprintf("[%s] %s: %s", d.TenantID, state, valueText(a, d.Event.Type))
	if group != "" {
		s += " — " + group
	}
	return s
}

// groupText is the group's values, by path order: "nightly-etl",
// "team=data, env=prod" with more than one; "" without group_by.
func groupText(a *schemas.PayloadAggregate) string {
	paths := make([]string, 0, len(a.Group))
	for p := range a.Group {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	if len(paths) == 1 {
		return a.Group[paths[0]]
	}
	parts := make([]string, len(paths))
	for i, p := range paths {
		parts[i] = strings.TrimPrefix(p, "labels.") + "=" + a.Group[p]
	}
	return strings.Join(parts, ", ")
}

// noun names what a count rule counts, from the type of the event that
// crossed its threshold.
func noun(eventType string) string {
	switch eventType {
	case schemas.TypeRunFailed:
		return "failures"
	case schemas.TypeRunSucceeded:
		return "successes"
	case schemas.TypeRunStarted:
		return "starts"
	case schemas.TypeRunDurationExceeded:
		return "runs over their duration threshold"
	}
	return "matching events"
}

// valueText is the window's value against the rule: "3 failures in 15m
// (threshold 3)", "success ratio 75% of 12 runs in 1h (below 95%, min 10
// runs)".
func valueText(a *schemas.PayloadAggregate, eventType string) string {
	window := shortDuration(time.Duration(a.WindowMS) * time.Millisecond)
	if a.Kind == schemas.RuleKindRate {
		var ok, bad int64
		if a.Value.Succeeded != nil {
			ok = *a.Value.Succeeded
		}
		if a.Value.Failed != nil {
			bad = *a.Value.Failed
		}
		s := fmt.Sprintf("success ratio %s of %d runs in %s", percent(a.Value.Ratio), ok+bad, window)
		if a.SuccessRatioBelow != nil {
			s += " (below " + percent(a.SuccessRatioBelow)
			if a.MinRuns != nil {
				s += fmt.Sprintf(", min %d runs", *a.MinRuns)
			}
			s += ")"
		}
		return s
	}
	var n int64
	if a.Value.Matched != nil {
		n = *a.Value.Matched
	}
	s := fmt.Sprintf("%d %s in %s", n, noun(eventType), window)
	if a.Threshold != nil {
		s += fmt.Sprintf(" (threshold %d)", *a.Threshold)
	}
	return s
}

// shortDuration writes whole hours and minutes without their zero units:
// 15m, 1h, 1h30m, 18m; anything else as time.Duration does.
func shortDuration(d time.Duration) string {
	if d <= 0 || d%time.Minute != 0 {
		return d.String()
	}
	h, m := d/time.Hour, (d%time.Hour)/time.Minute
	switch {
	case h == 0:
		return fmt.Sprintf("%dm", m)
	case m == 0:
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%dm", h, m)
}

func percent(r *float64) string {
	if r == nil {
		return "n/a"
	}
	return strconv.FormatFloat(math.Round(*r*10_000)/100, 'f', -1, 64) + "%"
}

func slackField(title, text string) map[string]string {
	return map[string]string{"type": "mrkdwn", "text": "*" + title + "*\n" + slackEscape(text)}
}

// slackAggregateBody: firing — "FIRING: …" with Group, Value, Window,
// Firing since, Incident; resolved — "RESOLVED: … (firing since 10:02 UTC,
// for 18m)" with Group, Value now, Resolved at, Reason.
func slackAggregateBody(p *schemas.WebhookPayload, link string) []byte {
	d, a := &p.Data, p.Data.Aggregate
	head := aggregateHeadline(p)
	group := groupText(a)
	if group == "" {
		group = "(all runs)"
	}
	window := shortDuration(time.Duration(a.WindowMS) * time.Millisecond)
	var fields []map[string]string
	if p.Type == schemas.TypeAlertResolved {
		resolved, reason := "", schemas.ResolveReasonConditionFalse
		if a.ResolvedAt != nil {
			resolved = a.ResolvedAt.UTC().Format(time.RFC3339)
		}
		if a.ResolveReason != nil {
			reason = *a.ResolveReason
		}
		fields = []map[string]string{
			slackField("Group", group), slackField("Value now", valueText(a, "")),
			slackField("Resolved at", resolved), slackField("Reason", strings.ReplaceAll(reason, "_", " ")),
		}
	} else {
		fields = []map[string]string{
			slackField("Group", group), slackField("Value", valueText(a, d.Event.Type)), slackField("Window", window),
			slackField("Firing since", a.FiringSince.UTC().Format(time.RFC3339)), slackField("Incident", a.IncidentID),
		}
	}
	fields = append(fields, slackField("Rule", d.Rule.Name))
	blocks := []any{
		map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": "*" + slackEscape(head) + "*"}},
		map[string]any{"type": "section", "fields": fields},
		map[string]any{"type": "context", "elements": []map[string]string{{"type": "mrkdwn", "text": "alert " + d.AlertID + " · " + p.Timestamp.UTC().Format(time.RFC3339)}}},
	}
	if link != "" {
		blocks = append(blocks, map[string]any{"type": "actions", "elements": []any{map[string]any{
			"type": "button", "text": map[string]string{"type": "plain_text", "text": "Open run"}, "url": link,
		}}})
	}
	return marshal(map[string]any{"text": slackEscape(head + " — rule " + d.Rule.Name), "blocks": blocks})
}

// pagerDutyAggregateBody: a firing or repeat triggers with dedup_key =
// incident_id (one PagerDuty incident per episode); a resolve is exactly
// {routing_key, event_action: "resolve", dedup_key} (Events API v2 needs no
// payload to resolve).
func pagerDutyAggregateBody(p *schemas.WebhookPayload, severity, routingKey, link string) []byte {
	d, a := &p.Data, p.Data.Aggregate
	if p.Type == schemas.TypeAlertResolved {
		return marshal(map[string]any{"routing_key": routingKey, "event_action": "resolve", "dedup_key": a.IncidentID})
	}
	switch severity {
	case "critical", "error", "warning", "info":
	default:
		severity = "error"
	}
	summary := valueText(a, d.Event.Type)
	if g := groupText(a); g != "" {
		summary += " — " + g
	}
	summary += " — rule " + d.Rule.Name
	ev := map[string]any{
		"routing_key":  routingKey,
		"event_action": "trigger",
		"dedup_key":    a.IncidentID,
		"payload": map[string]any{
			"summary":        truncate(summary, 1024),
			"source":         "exosphere/" + d.TenantID + "/" + d.Rule.ID,
			"severity":       severity,
			"timestamp":      p.Timestamp.UTC().Format(time.RFC3339Nano),
			"component":      d.Workflow.Name,
			"group":          d.TenantID,
			"class":          p.Type,
			"custom_details": a,
		},
	}
	if link != "" {
		ev["links"] = []map[string]string{{"href": link, "text": "Open run"}}
	}
	return marshal(ev)
}
