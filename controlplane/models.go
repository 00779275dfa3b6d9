package controlplane

import "github.com/exospherehost/exo-alerts/internal/model"

// The API's views of a webhook and a rule are model's: the recorder writes
// them into the audit trail too.
type (
	WebhookEndpoint = model.WebhookEndpoint
	AlertRule       = model.AlertRule
	RuleLastError   = model.RuleLastError
)

// WebhookEndpointCreate is the body of POST /v1/webhooks.
type WebhookEndpointCreate struct {
	Name               string            `json:"name" minLength:"1" maxLength:"200" doc:"A name for people"`
	TargetURL          string            `json:"target_url" minLength:"1" maxLength:"2048" doc:"http(s) URL that receives the deliveries"`
	Kind               string            `json:"kind,omitempty" enum:"webhook,slack,pagerduty" default:"webhook" doc:"webhook: signed payload v1; slack: an incoming-webhook URL as target_url; pagerduty: the Events API v2 URL as target_url and the integration's routing key as secret"`
	Headers            map[string]string `json:"headers,omitempty" maxProperties:"20" doc:"Extra headers sent with every delivery (stored encrypted)"`
	Secret             string            `json:"secret,omitempty" maxLength:"128" doc:"webhook and slack: optional signing secret whsec_<base64>, generated when absent. pagerduty: the routing key (required)."`
	IsActive           *bool             `json:"is_active,omitempty" doc:"Default true"`
	RateLimitPerSecond int               `json:"rate_limit_per_second,omitempty" minimum:"1" maximum:"10000" doc:"At most this many delivery attempts per second to this endpoint from each dispatcher; absent: the operator's default (EXO_DISPATCHER_ENDPOINT_RATE, 50). Alerts above the rate wait; waiting uses no attempt."`
}

// AlertRuleCreate is the body of POST /v1/alert-rules.
type AlertRuleCreate struct {
	Name                string `json:"name" minLength:"1" maxLength:"200" doc:"A name for people"`
	Description         string `json:"description,omitempty" maxLength:"2000" doc:"Free text for people"`
	EventType           string `json:"event_type,omitempty" enum:"workflow.run.failed,workflow.run.succeeded,workflow.run.started,workflow.run.duration_exceeded,workflow.run.finished" doc:"The alert type watched. Required, except for rate rules, which watch workflow.run.finished (filled in when absent). workflow.run.finished (a run's succeeded or failed event) is for count and rate rules only."`
	Condition           string `json:"condition,omitempty" maxLength:"2048" doc:"Optional expr-lang condition over the event, e.g. labels.env == \"prod\""`
	EndpointID          string `json:"endpoint_id,omitempty" maxLength:"64" doc:"Required: the webhook endpoint (of your tenant) the rule delivers to" example:"whk_k3jd8f2m1q9x7c4v5b6n"`
	WebhookEndpointID   string `json:"webhook_endpoint_id,omitempty" maxLength:"64" deprecated:"true" doc:"Deprecated: the former name of endpoint_id, still accepted (it must then equal endpoint_id if both are sent)."`
	IsActive            *bool  `json:"is_active,omitempty" doc:"Default true"`
	MaxAttempts         int    `json:"max_attempts,omitempty" minimum:"1" maximum:"50" default:"8" doc:"Delivery attempts per alert before it is dead-lettered"`
	Severity            string `json:"severity,omitempty" enum:"critical,error,warning,info" default:"error" doc:"The severity the alerts carry"`
	IncludeErrorMessage bool   `json:"include_error_message,omitempty" doc:"Include the run's error message in payloads (off: only the error code)"`
	DurationThreshold   string `json:"duration_threshold,omitempty" maxLength:"32" doc:"Required for workflow.run.duration_exceeded, refused otherwise: a Go duration between 1s and 168h, e.g. 15m"`
	RateLimitPerMinute  int    `json:"rate_limit_per_minute,omitempty" minimum:"1" maximum:"100000" doc:"At most this many alerts per minute from this rule; the rest are suppressed and counted"`
	Cooldown            string `json:"cooldown,omitempty" maxLength:"32" doc:"After an alert, suppress this rule's alerts for this long (Go duration, 1s to 720h)"`
	AggregateMembers
}

// AggregateMembers are the members of a rule create document that choose
// its kind and configure the aggregate kinds (count and rate rules). A
// per-event rule takes none of them but kind.
type AggregateMembers struct {
	Kind              string   `json:"kind,omitempty" enum:"per_event,count,rate" default:"per_event" doc:"per_event: an alert per matching event. count: fires once when at least threshold matching events fall in window, resolves when they no longer do. rate: fires once when the success ratio of finished runs in window is below success_ratio_below (with at least min_runs runs), resolves when it recovers."`
	Window            string   `json:"window,omitempty" maxLength:"32" doc:"count and rate (required): the sliding window, a Go duration in whole minutes from 1m to 24h" example:"15m"`
	Threshold         int      `json:"threshold,omitempty" minimum:"1" maximum:"100000" example:"3" doc:"count (required): fire at this many matching events in the window"`
	SuccessRatioBelow float64  `json:"success_ratio_below,omitempty" minimum:"0.0001" maximum:"1" example:"0.95" doc:"rate (required): fire when succeeded / (succeeded + failed) in the window is below this (at most 4 decimals)"`
	MinRuns           int      `json:"min_runs,omitempty" minimum:"1" maximum:"100000" doc:"rate: decide only with at least this many finished runs in the window (default 10), so 1 failure of 1 does not page"`
	GroupBy           []string `json:"group_by,omitempty" nullable:"true" maxItems:"4" doc:"count and rate: watch each combination of these fields' values separately (workflow.id, workflow.name, labels.<name>; error.code and error.node for workflow.run.failed); default none: one group"`
	MaxGroups         int      `json:"max_groups,omitempty" minimum:"1" maximum:"5000" doc:"count and rate with group_by: the most groups watched (default 500); inputs of further groups are dropped and counted. Without group_by: 1 or absent."`
	Hold              string   `json:"hold,omitempty" maxLength:"32" example:"10m" doc:"count and rate: how long the condition must stay false before the alert resolves, a Go duration from 0s to 24h (default 0s)"`
	RepeatInterval    string   `json:"repeat_interval,omitempty" maxLength:"32" example:"4h" doc:"count and rate: re-send the firing this often while it lasts, a Go duration from 1m to 168h; absent: never"`
}

// WebhookEndpointPatch documents the body of PATCH /v1/webhooks/{id}: a
// JSON merge patch of the create document.
type WebhookEndpointPatch struct {
	Name               string             `json:"name,omitempty" minLength:"1" maxLength:"200" doc:"A name for people"`
	TargetURL          string             `json:"target_url,omitempty" minLength:"1" maxLength:"2048" doc:"http(s) URL that receives the deliveries"`
	Headers            map[string]*string `json:"headers,omitempty" nullable:"true" doc:"Header name to new value; null removes the header. null for the whole member removes all headers."`
	IsActive           *bool              `json:"is_active,omitempty" doc:"Reactivating an endpoint clears its disabled_reason"`
	RateLimitPerSecond *int               `json:"rate_limit_per_second,omitempty" nullable:"true" minimum:"1" maximum:"10000" doc:"null: back to the operator's default"`
}

// AlertRulePatch documents the body of PATCH /v1/alert-rules/{id}: a JSON
// merge patch of the create document (null resets a member to its default).
type AlertRulePatch struct {
	Name                string  `json:"name,omitempty" minLength:"1" maxLength:"200" doc:"A name for people"`
	Description         *string `json:"description,omitempty" nullable:"true" maxLength:"2000" doc:"null: no description"`
	EventType           *string `json:"event_type,omitempty" nullable:"true" enum:"workflow.run.failed,workflow.run.succeeded,workflow.run.started,workflow.run.duration_exceeded,workflow.run.finished" doc:"The alert type watched"`
	Condition           *string `json:"condition,omitempty" nullable:"true" maxLength:"2048" doc:"null: no condition (every event of the type)"`
	EndpointID          string  `json:"endpoint_id,omitempty" maxLength:"64" doc:"Move the rule to this webhook endpoint"`
	WebhookEndpointID   string  `json:"webhook_endpoint_id,omitempty" maxLength:"64" deprecated:"true" doc:"Deprecated: the former name of endpoint_id, still accepted."`
	IsActive            *bool   `json:"is_active,omitempty" nullable:"true" doc:"Reactivating a rule clears its disabled_reason"`
	MaxAttempts         *int    `json:"max_attempts,omitempty" nullable:"true" minimum:"1" maximum:"50"`
	Severity            *string `json:"severity,omitempty" nullable:"true" enum:"critical,error,warning,info"`
	IncludeErrorMessage *bool   `json:"include_error_message,omitempty" nullable:"true"`
	DurationThreshold   *string `json:"duration_threshold,omitempty" nullable:"true" maxLength:"32"`
	RateLimitPerMinute  *int    `json:"rate_limit_per_minute,omitempty" nullable:"true" minimum:"1" maximum:"100000"`
	Cooldown            *string `json:"cooldown,omitempty" nullable:"true" maxLength:"32"`
	// The aggregate members (see AggregateMembers); a member the new kind
	// refuses must be set to null in the same patch.
	Kind              *string   `json:"kind,omitempty" nullable:"true" enum:"per_event,count,rate" doc:"Changing the kind: set to null, in the same patch, every member the new kind refuses (the 422 names each)"`
	Window            *string   `json:"window,omitempty" nullable:"true" maxLength:"32"`
	Threshold         *int      `json:"threshold,omitempty" nullable:"true" minimum:"1" maximum:"100000"`
	SuccessRatioBelow *float64  `json:"success_ratio_below,omitempty" nullable:"true" minimum:"0.0001" maximum:"1"`
	MinRuns           *int      `json:"min_runs,omitempty" nullable:"true" minimum:"1" maximum:"100000"`
	GroupBy           *[]string `json:"group_by,omitempty" nullable:"true" maxItems:"4"`
	MaxGroups         *int      `json:"max_groups,omitempty" nullable:"true" minimum:"1" maximum:"5000"`
	Hold              *string   `json:"hold,omitempty" nullable:"true" maxLength:"32"`
	RepeatInterval    *string   `json:"repeat_interval,omitempty" nullable:"true" maxLength:"32" doc:"null: no repeats"`
}

// optional is the nullable column value of an optional create member: nil
// for its zero value (absent: the default).
func optional(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}
