// Package model holds the API's views of endpoints and rules, built from
// their rows: what the control plane answers and what the audit trail
// records, whoever writes it (the control plane, the recorder).
package model

import (
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// WebhookEndpoint is a webhook endpoint as the API shows it. The secret
// appears only in the answer to a create; afterwards only its hint.
type WebhookEndpoint struct {
	ID                 string            `json:"id" doc:"Endpoint id" example:"whk_k3jd8f2m1q9x7c4v5b6n"`
	Name               string            `json:"name" doc:"A name for people"`
	Kind               string            `json:"kind" enum:"webhook,slack,pagerduty" doc:"webhook: signed payload v1; slack: a Slack incoming webhook; pagerduty: PagerDuty Events API v2"`
	TargetURL          string            `json:"target_url" format:"uri" doc:"The target URL; a credential in it (the token path of a Slack incoming-webhook URL, query values) is masked with ****: the whole URL is stored encrypted."`
	Headers            map[string]string `json:"headers" doc:"Extra headers sent with every delivery; values are masked."`
	RateLimitPerSecond *int              `json:"rate_limit_per_second" doc:"At most this many delivery attempts per second to this endpoint from each dispatcher; null: the operator's default (EXO_DISPATCHER_ENDPOINT_RATE, 50)."`
	IsActive           bool              `json:"is_active" doc:"Inactive endpoints receive nothing"`
	DisabledReason     *string           `json:"disabled_reason" doc:"Why the endpoint was deactivated automatically, null if it was not"`
	Secret             string            `json:"secret,omitempty" doc:"The signing secret (whsec_...). Shown once, in the answer to the create."`
	SecretHint         string            `json:"secret_hint" doc:"The last characters of the secret, to recognise it."`
	CreatedBy          string            `json:"created_by" doc:"Who created it (an API key's id)"`
	CreatedAt          time.Time         `json:"created_at"`
	UpdatedAt          time.Time         `json:"updated_at"`
	Version            int64             `json:"version" doc:"Incremented by every change; the ETag"`
}

// AlertRule is an alert rule as the API shows it.
type AlertRule struct {
	ID                  string `json:"id" example:"rul_p2k8d7s1m4n6b3v9c5x0"`
	Name                string `json:"name"`
	Description         string `json:"description"`
	EventType           string `json:"event_type" enum:"workflow.run.failed,workflow.run.succeeded,workflow.run.started,workflow.run.duration_exceeded,workflow.run.finished" doc:"The alert type watched"`
	Condition           string `json:"condition" doc:"The expr-lang condition over the event; empty: every event of the type"`
	DurationThresholdMS *int64 `json:"duration_threshold_ms" doc:"duration_threshold in milliseconds, null unless event_type is workflow.run.duration_exceeded"`
	EndpointID          string `json:"endpoint_id" doc:"The webhook endpoint the rule delivers to" example:"whk_k3jd8f2m1q9x7c4v5b6n"`
	// WebhookEndpointID is EndpointID under its former name, kept for
	// clients written before the rename (the dashboard reads it).
	WebhookEndpointID   string  `json:"webhook_endpoint_id" deprecated:"true" doc:"Deprecated: the same value as endpoint_id, under its former name; read endpoint_id."`
	IsActive            bool    `json:"is_active" doc:"Inactive rules match nothing"`
	DisabledReason      *string `json:"disabled_reason" doc:"Why the rule was deactivated automatically (e.g. its endpoint answered 410 Gone), null if it was not"`
	MaxAttempts         int     `json:"max_attempts" doc:"Delivery attempts per alert before it is dead-lettered"`
	Severity            string  `json:"severity" enum:"critical,error,warning,info"`
	IncludeErrorMessage bool    `json:"include_error_message" doc:"Whether payloads carry the run's error message (otherwise only its code)"`
	DurationThreshold   string  `json:"duration_threshold,omitempty" doc:"For workflow.run.duration_exceeded: how long a run may run"`
	RateLimitPerMinute  *int    `json:"rate_limit_per_minute" doc:"At most this many alerts per minute from this rule; null: no limit"`
	Cooldown            string  `json:"cooldown,omitempty" doc:"After an alert, this rule's alerts are suppressed for this long"`
	CooldownMS          *int64  `json:"cooldown_ms" doc:"cooldown in milliseconds; null: none"`
	// Kind and the members of the aggregate kinds (count and rate rules;
	// absent for per-event rules). Durations come as a Go duration and in
	// milliseconds.
	Kind              string    `json:"kind" enum:"per_event,count,rate" doc:"per_event: an alert per matching event; count: at least threshold matching events in window; rate: success ratio of finished runs below success_ratio_below over window"`
	Window            string    `json:"window,omitempty" doc:"count and rate: the sliding window, e.g. 15m" example:"15m"`
	WindowMS          *int64    `json:"window_ms,omitempty" doc:"window in milliseconds"`
	Threshold         *int      `json:"threshold,omitempty" doc:"count: fires at this many matching events in the window"`
	SuccessRatioBelow *float64  `json:"success_ratio_below,omitempty" doc:"rate: fires when succeeded / (succeeded + failed) in the window is below this"`
	MinRuns           *int      `json:"min_runs,omitempty" doc:"rate: no decision below this many finished runs in the window"`
	GroupBy           []string  `json:"group_by,omitzero" doc:"count and rate: the fields whose values form the groups watched separately; [] is one group"`
	MaxGroups         *int      `json:"max_groups,omitempty" doc:"count and rate: the most groups kept; inputs of further groups are dropped and counted"`
	Hold              string    `json:"hold,omitempty" doc:"count and rate: how long the condition must stay false before the alert resolves"`
	HoldMS            *int64    `json:"hold_ms,omitempty" doc:"hold in milliseconds"`
	RepeatInterval    string    `json:"repeat_interval,omitempty" doc:"count and rate: re-send the firing this often while it lasts; absent: never"`
	RepeatIntervalMS  *int64    `json:"repeat_interval_ms,omitempty" doc:"repeat_interval in milliseconds"`
	CreatedBy         string    `json:"created_by" doc:"Who created it (an API key's id)"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	Version           int64     `json:"version" doc:"Incremented by every change; the ETag"`
	// LastError is read-only: kept by the recorder from the rule-errors
	// topic, cleared when the condition changes.
	LastError *RuleLastError `json:"last_error" readOnly:"true" doc:"The latest error evaluating this rule's condition (the rule was skipped for that event; other rules were not), null if none since the condition last changed. Read-only."`
}

// RuleLastError is the latest error evaluating a rule, as the processor
// reported it (schemas.RuleErrorRecord).
type RuleLastError struct {
	Message     string    `json:"message" doc:"What went wrong, e.g. that the condition exceeded its evaluation budget"`
	At          time.Time `json:"at" doc:"When it last happened"`
	EventID     *string   `json:"event_id" doc:"The (last) event the rule failed on"`
	RuleVersion int64     `json:"rule_version" doc:"The rule version that failed"`
	Count       int64     `json:"count" doc:"Events the rule failed on since its condition last changed (as reported; approximate)"`
}

// ruleLastErrorDoc has RuleLastError's fields without its Schema method.
type ruleLastErrorDoc RuleLastError

// Schema documents RuleLastError inline and nullable (huma refuses
// nullable on a referenced object schema).
func (RuleLastError) Schema(r huma.Registry) *huma.Schema {
	s := huma.SchemaFromType(r, reflect.TypeFor[ruleLastErrorDoc]())
	s.Nullable = true
	return s
}

// WebhookOf is the API view of an endpoint row: header values masked, the
// secret only as its hint.
func WebhookOf(e *store.EndpointRow) *WebhookEndpoint {
	headers := make(map[string]string, len(e.Headers))
	for k := range e.Headers {
		headers[k] = "********"
	}
	return &WebhookEndpoint{
		ID: e.ID, Name: e.Name, Kind: e.Kind, TargetURL: e.TargetURL, Headers: headers, RateLimitPerSecond: e.RateLimitPerSecond, IsActive: e.IsActive,
		DisabledReason: e.DisabledReason, SecretHint: e.SecretHint, CreatedBy: e.CreatedBy,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, Version: e.Version,
	}
}

// RuleOf is the API view of a rule row (without its last error).
func RuleOf(r *store.RuleRow) *AlertRule {
	out := &AlertRule{
		ID: r.ID, Name: r.Name, Description: r.Description, EventType: r.EventType, Condition: r.Condition,
		DurationThresholdMS: r.DurationThresholdMS, EndpointID: r.WebhookEndpointID, WebhookEndpointID: r.WebhookEndpointID, IsActive: r.IsActive,
		DisabledReason: r.DisabledReason, MaxAttempts: r.MaxAttempts, Severity: r.Severity,
		IncludeErrorMessage: r.IncludeErrorMessage, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt,
		UpdatedAt: r.UpdatedAt, Version: r.Version, RateLimitPerMinute: r.RateLimitPerMinute, CooldownMS: r.CooldownMS,
	}
	if r.DurationThresholdMS != nil {
		out.DurationThreshold = (time.Duration(*r.DurationThresholdMS) * time.Millisecond).String()
	}
	if r.CooldownMS != nil {
		out.Cooldown = (time.Duration(*r.CooldownMS) * time.Millisecond).String()
	}
	out.Kind = r.Kind
	if out.Kind == "" {
		out.Kind = schemas.RuleKindPerEvent
	}
	if !r.IsAggregate() {
		return out
	}
	out.WindowMS, out.Threshold, out.MinRuns, out.MaxGroups = r.WindowMS, r.Threshold, r.MinRuns, r.MaxGroups
	out.HoldMS, out.RepeatIntervalMS = r.HoldMS, r.RepeatIntervalMS
	out.GroupBy = append([]string{}, r.GroupBy...)
	if r.WindowMS != nil {
		out.Window = DurationString(*r.WindowMS)
	}
	if r.HoldMS != nil {
		out.Hold = DurationString(*r.HoldMS)
	}
	if r.RepeatIntervalMS != nil {
		out.RepeatInterval = DurationString(*r.RepeatIntervalMS)
	}
	if r.SuccessRatioBelowBP != nil {
		x := float64(*r.SuccessRatioBelowBP) / 10000
		out.SuccessRatioBelow = &x
	}
	return out
}

// DurationString is the Go duration of ms milliseconds, as the API shows
// it (15m0s, 1h0m0s).
func DurationString(ms int64) string {
	return (time.Duration(ms) * time.Millisecond).String()
}
