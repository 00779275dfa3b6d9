package controlplane

import (
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Webhook is a webhook endpoint as the API shows it. The secret appears only
// in the answer to a create; afterwards only its hint.
type Webhook struct {
	ID                 string            `json:"id" doc:"Endpoint id" example:"whk_k3jd8f2m1q9x7c4v5b6n"`
	Name               string            `json:"name"`
	Kind               string            `json:"kind" enum:"webhook,slack,pagerduty"`
	TargetURL          string            `json:"target_url" format:"uri" doc:"The target URL; a credential in it (the token path of a Slack incoming-webhook URL, query values) is masked with ****: the whole URL is stored encrypted."`
	Headers            map[string]string `json:"headers" doc:"Extra headers sent with every delivery; values are masked."`
	RateLimitPerSecond *int              `json:"rate_limit_per_second" doc:"At most this many delivery attempts per second to this endpoint from each dispatcher; null: the operator's default (EXO_DISPATCHER_ENDPOINT_RATE, 50)."`
	IsActive           bool              `json:"is_active"`
	DisabledReason     *string           `json:"disabled_reason"`
	Secret             string            `json:"secret,omitempty" doc:"The signing secret (whsec_...). Shown once, in the answer to the create."`
	SecretHint         string            `json:"secret_hint" doc:"The last characters of the secret, to recognise it."`
	CreatedBy          string            `json:"created_by"`
	CreatedAt          time.Time         `json:"created_at"`
	UpdatedAt          time.Time         `json:"updated_at"`
	Version            int64             `json:"version"`
}

// WebhookCreate is the body of POST /v1/webhooks.
type WebhookCreate struct {
	Name               string            `json:"name" minLength:"1" maxLength:"200"`
	TargetURL          string            `json:"target_url" minLength:"1" maxLength:"2048" doc:"http(s) URL that receives the deliveries"`
	Kind               string            `json:"kind,omitempty" enum:"webhook,slack,pagerduty" default:"webhook" doc:"webhook: signed payload v1; slack: an incoming-webhook URL as target_url; pagerduty: the Events API v2 URL as target_url and the integration's routing key as secret"`
	Headers            map[string]string `json:"headers,omitempty" maxProperties:"20" doc:"Extra headers sent with every delivery (stored encrypted)"`
	Secret             string            `json:"secret,omitempty" maxLength:"128" doc:"webhook and slack: optional signing secret whsec_<base64>, generated when absent. pagerduty: the routing key (required)."`
	IsActive           *bool             `json:"is_active,omitempty" doc:"Default true"`
	RateLimitPerSecond int               `json:"rate_limit_per_second,omitempty" minimum:"1" maximum:"10000" doc:"At most this many delivery attempts per second to this endpoint from each dispatcher; absent: the operator's default (EXO_DISPATCHER_ENDPOINT_RATE, 50). Alerts above the rate wait; waiting uses no attempt."`
}

// AlertRule is an alert rule as the API shows it.
type AlertRule struct {
	ID                  string    `json:"id" example:"rul_p2k8d7s1m4n6b3v9c5x0"`
	Name                string    `json:"name"`
	Description         string    `json:"description"`
	EventType           string    `json:"event_type"`
	Condition           string    `json:"condition"`
	DurationThresholdMS *int64    `json:"duration_threshold_ms"`
	WebhookEndpointID   string    `json:"webhook_endpoint_id"`
	IsActive            bool      `json:"is_active"`
	DisabledReason      *string   `json:"disabled_reason"`
	MaxAttempts         int       `json:"max_attempts"`
	Severity            string    `json:"severity"`
	IncludeErrorMessage bool      `json:"include_error_message"`
	DurationThreshold   string    `json:"duration_threshold,omitempty" doc:"For workflow.run.duration_exceeded: how long a run may run"`
	RateLimitPerMinute  *int      `json:"rate_limit_per_minute"`
	Cooldown            string    `json:"cooldown,omitempty"`
	CooldownMS          *int64    `json:"cooldown_ms"`
	CreatedBy           string    `json:"created_by"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
	Version             int64     `json:"version"`
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

// AlertRuleCreate is the body of POST /v1/alert-rules.
type AlertRuleCreate struct {
	Name                string `json:"name" minLength:"1" maxLength:"200"`
	Description         string `json:"description,omitempty" maxLength:"2000"`
	EventType           string `json:"event_type" enum:"workflow.run.failed,workflow.run.succeeded,workflow.run.started,workflow.run.duration_exceeded"`
	Condition           string `json:"condition,omitempty" maxLength:"2048" doc:"Optional expr-lang condition over the event, e.g. labels.env == \"prod\""`
	WebhookEndpointID   string `json:"webhook_endpoint_id" minLength:"1" maxLength:"64"`
	IsActive            *bool  `json:"is_active,omitempty" doc:"Default true"`
	MaxAttempts         int    `json:"max_attempts,omitempty" minimum:"1" maximum:"50" default:"8"`
	Severity            string `json:"severity,omitempty" enum:"critical,error,warning,info" default:"error"`
	IncludeErrorMessage bool   `json:"include_error_message,omitempty" doc:"Include the run's error message in payloads (off: only the error code)"`
	DurationThreshold   string `json:"duration_threshold,omitempty" maxLength:"32" doc:"Required for workflow.run.duration_exceeded, refused otherwise: a Go duration between 1s and 168h, e.g. 15m"`
	RateLimitPerMinute  int    `json:"rate_limit_per_minute,omitempty" minimum:"1" maximum:"100000" doc:"At most this many alerts per minute from this rule; the rest are suppressed and counted"`
	Cooldown            string `json:"cooldown,omitempty" maxLength:"32" doc:"After an alert, suppress this rule's alerts for this long (Go duration, 1s to 720h)"`
}

func (e *endpointRow) api() *Webhook {
	headers := make(map[string]string, len(e.Headers))
	for k := range e.Headers {
		headers[k] = "********"
	}
	return &Webhook{
		ID: e.ID, Name: e.Name, Kind: e.Kind, TargetURL: e.TargetURL, Headers: headers, RateLimitPerSecond: e.RateLimitPerSecond, IsActive: e.IsActive,
		DisabledReason: e.DisabledReason, SecretHint: e.SecretHint, CreatedBy: e.CreatedBy,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, Version: e.Version,
	}
}

func (e *endpointRow) snapshot() schemas.EndpointRecord {
	return schemas.EndpointRecord{
		TenantID: e.TenantID, ID: e.ID, Name: e.Name, Kind: e.Kind, TargetURL: e.TargetURL, Secret: e.Secret,
		PreviousSecret: e.PreviousSecret, PreviousSecretExpiresAt: e.PreviousSecretExpiresAt,
		TargetURLSealed: e.TargetURLSealed,
		Headers:         e.Headers, IsActive: e.IsActive, Version: e.Version, UpdatedAt: e.UpdatedAt.UTC(),
		RateLimitPerSecond: deref(e.RateLimitPerSecond),
	}
}

func (r *ruleRow) api() *AlertRule {
	out := &AlertRule{
		ID: r.ID, Name: r.Name, Description: r.Description, EventType: r.EventType, Condition: r.Condition,
		DurationThresholdMS: r.DurationThresholdMS, WebhookEndpointID: r.WebhookEndpointID, IsActive: r.IsActive,
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
	return out
}

func (r *ruleRow) snapshot() schemas.RuleRecord {
	s := schemas.RuleRecord{
		TenantID: r.TenantID, ID: r.ID, Name: r.Name, EventType: r.EventType, Condition: r.Condition,
		WebhookEndpointID: r.WebhookEndpointID, IsActive: r.IsActive, MaxAttempts: r.MaxAttempts,
		IncludeErrorMessage: r.IncludeErrorMessage, Version: r.Version, UpdatedAt: r.UpdatedAt.UTC(),
	}
	if r.DurationThresholdMS != nil {
		s.DurationThresholdMS = *r.DurationThresholdMS
	}
	if r.RateLimitPerMinute != nil {
		s.RateLimitPerMinute = *r.RateLimitPerMinute
	}
	if r.CooldownMS != nil {
		s.CooldownMS = *r.CooldownMS
	}
	s.Severity = r.Severity
	return s
}

// WebhookPatch documents the body of PATCH /v1/webhooks/{id}: a JSON merge
// patch of the create document.
type WebhookPatch struct {
	Name               string             `json:"name,omitempty" minLength:"1" maxLength:"200"`
	TargetURL          string             `json:"target_url,omitempty" minLength:"1" maxLength:"2048"`
	Headers            map[string]*string `json:"headers,omitempty" nullable:"true" doc:"Header name to new value; null removes the header. null for the whole member removes all headers."`
	IsActive           *bool              `json:"is_active,omitempty" doc:"Reactivating an endpoint clears its disabled_reason"`
	RateLimitPerSecond *int               `json:"rate_limit_per_second,omitempty" nullable:"true" minimum:"1" maximum:"10000" doc:"null: back to the operator's default"`
}

// AlertRulePatch documents the body of PATCH /v1/alert-rules/{id}: a JSON
// merge patch of the create document (null resets a member to its default).
type AlertRulePatch struct {
	Name                string  `json:"name,omitempty" minLength:"1" maxLength:"200"`
	Description         *string `json:"description,omitempty" nullable:"true" maxLength:"2000"`
	EventType           string  `json:"event_type,omitempty" enum:"workflow.run.failed,workflow.run.succeeded,workflow.run.started,workflow.run.duration_exceeded"`
	Condition           *string `json:"condition,omitempty" nullable:"true" maxLength:"2048"`
	WebhookEndpointID   string  `json:"webhook_endpoint_id,omitempty" maxLength:"64"`
	IsActive            *bool   `json:"is_active,omitempty" nullable:"true" doc:"Reactivating a rule clears its disabled_reason"`
	MaxAttempts         *int    `json:"max_attempts,omitempty" nullable:"true" minimum:"1" maximum:"50"`
	Severity            *string `json:"severity,omitempty" nullable:"true" enum:"critical,error,warning,info"`
	IncludeErrorMessage *bool   `json:"include_error_message,omitempty" nullable:"true"`
	DurationThreshold   *string `json:"duration_threshold,omitempty" nullable:"true" maxLength:"32"`
	RateLimitPerMinute  *int    `json:"rate_limit_per_minute,omitempty" nullable:"true" minimum:"1" maximum:"100000"`
	Cooldown            *string `json:"cooldown,omitempty" nullable:"true" maxLength:"32"`
}

// optional is the nullable column value of an optional create member: nil
// for its zero value (absent: the default).
func optional(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}
