package schemas

import (
	"encoding/json"
	"time"
)

// Event types produced by the workflow engine.
const (
	TypeRunStarted   = "workflow.run.started"
	TypeRunSucceeded = "workflow.run.succeeded"
	TypeRunFailed    = "workflow.run.failed"
	// TypeRunDurationExceeded is derived by the processor; rules may watch it.
	TypeRunDurationExceeded = "workflow.run.duration_exceeded"
	// TypeWebhookTest is a test delivery sent from the API or dashboard
	// (POST /v1/webhooks/{id}/test). No rule watches it; its rule id is
	// TestRuleID.
	TypeWebhookTest = "webhook.test"
)

// TestRuleID is the rule id of test deliveries.
const TestRuleID = "test"

// AlertTypes lists every event type an alert rule may watch.
var AlertTypes = []string{TypeRunFailed, TypeRunSucceeded, TypeRunStarted, TypeRunDurationExceeded}

// IsAlertType reports whether t is a type an alert rule may watch.
func IsAlertType(t string) bool {
	for _, a := range AlertTypes {
		if a == t {
			return true
		}
	}
	return false
}

// WorkflowEvent is a CloudEvents 1.0 workflow run event (structured mode JSON).
type WorkflowEvent struct {
	SpecVersion     string            `json:"specversion"`
	ID              string            `json:"id"`
	Source          string            `json:"source"`
	Type            string            `json:"type"`
	Time            time.Time         `json:"time"`
	Subject         string            `json:"subject,omitempty"`
	TenantID        string            `json:"tenantid"`
	DataContentType string            `json:"datacontenttype,omitempty"`
	Data            WorkflowEventData `json:"data"`
}

// WorkflowEventData is the data of a workflow run event.
type WorkflowEventData struct {
	Workflow Workflow          `json:"workflow"`
	Run      Run               `json:"run"`
	Error    *ErrorInfo        `json:"error,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Workflow identifies a workflow (an Exosphere graph).
type Workflow struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Run describes one run of a workflow.
type Run struct {
	ID         string     `json:"id"`
	Attempt    int        `json:"attempt,omitempty"`
	Status     string     `json:"status,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	DurationMS *int64     `json:"duration_ms,omitempty"`
}

// ErrorInfo describes why a run failed.
type ErrorInfo struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Node    string `json:"node,omitempty"`
}

// WebhookPayload is the fixed v1 body POSTed to "webhook" endpoints.
type WebhookPayload struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      PayloadData `json:"data"`
}

// PayloadData carries IDs and summary fields only.
type PayloadData struct {
	AlertID     string            `json:"alert_id"`
	TenantID    string            `json:"tenant_id"`
	Rule        RuleRef           `json:"rule"`
	Event       EventRef          `json:"event"`
	Workflow    Workflow          `json:"workflow"`
	Run         PayloadRun        `json:"run"`
	ThresholdMS *int64            `json:"threshold_ms"`
	Error       *PayloadError     `json:"error"`
	Labels      map[string]string `json:"labels"`
}

// RuleRef names the rule that fired.
type RuleRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// EventRef names the event that made the rule fire.
type EventRef struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
}

// PayloadRun is the run summary in a payload.
type PayloadRun struct {
	ID         string     `json:"id"`
	Status     string     `json:"status,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	DurationMS *int64     `json:"duration_ms,omitempty"`
}

// PayloadError is the error summary; Message only when the rule opts in.
type PayloadError struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// RuleRecord is the snapshot of an alert rule on the compacted alert-rules topic.
type RuleRecord struct {
	TenantID            string    `json:"tenant_id"`
	ID                  string    `json:"id"`
	Name                string    `json:"name"`
	EventType           string    `json:"event_type"`
	Condition           string    `json:"condition,omitempty"`
	WebhookEndpointID   string    `json:"webhook_endpoint_id"`
	IsActive            bool      `json:"is_active"`
	MaxAttempts         int       `json:"max_attempts"`
	DurationThresholdMS int64     `json:"duration_threshold_ms,omitempty"`
	IncludeErrorMessage bool      `json:"include_error_message"`
	RateLimitPerMinute  int       `json:"rate_limit_per_minute,omitempty"`
	CooldownMS          int64     `json:"cooldown_ms,omitempty"`
	Severity            string    `json:"severity,omitempty"`
	Version             int64     `json:"version"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// Sealed is a value encrypted with AES-256-GCM under the key ring key KeyID.
type Sealed struct {
	KeyID      string `json:"key_id"`
	Ciphertext string `json:"ciphertext"` // base64(nonce || ciphertext || tag)
}

// EndpointRecord is the snapshot of a webhook endpoint on the compacted
// webhook-endpoints topic. Secret and header values stay encrypted.
type EndpointRecord struct {
	TenantID  string `json:"tenant_id"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	TargetURL string `json:"target_url"`
	// TargetURLSealed is the whole target URL, sealed, when it carries a
	// credential; TargetURL is then its masked display form.
	TargetURLSealed *Sealed `json:"target_url_sealed,omitempty"`
	Secret          Sealed  `json:"secret"`
	// PreviousSecret still signs, next to Secret, until PreviousSecretExpiresAt
	// (the grace period of a rotation).
	PreviousSecret          *Sealed           `json:"previous_secret,omitempty"`
	PreviousSecretExpiresAt *time.Time        `json:"previous_secret_expires_at,omitempty"`
	Headers                 map[string]Sealed `json:"headers,omitempty"`
	// RateLimitPerSecond caps attempts per second to the endpoint from each
	// dispatcher instance; 0 means the operator's default.
	RateLimitPerSecond int       `json:"rate_limit_per_second,omitempty"`
	IsActive           bool      `json:"is_active"`
	Version            int64     `json:"version"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// DeliveryRecord is one alert to deliver, on the deliveries topic.
type DeliveryRecord struct {
	AlertID     string `json:"alert_id"`
	TenantID    string `json:"tenant_id"`
	RuleID      string `json:"rule_id"`
	EndpointID  string `json:"endpoint_id"`
	EventType   string `json:"event_type"`
	MaxAttempts int    `json:"max_attempts"`
	// RuleVersion is the version of the rule that made the alert.
	RuleVersion int64           `json:"rule_version,omitempty"`
	Severity    string          `json:"severity,omitempty"` // the rule's: critical, error, warning, info
	CreatedAt   time.Time       `json:"created_at"`
	Payload     json.RawMessage `json:"payload"` // a WebhookPayload
}

// Delivery outcomes of one attempt.
const (
	OutcomeDelivered    = "delivered"
	OutcomeRetry        = "retry"
	OutcomeEndpointGone = "endpoint_gone"
	OutcomeDead         = "dead"
)

// ResultRecord reports one delivery attempt, on the delivery-results topic.
type ResultRecord struct {
	AlertID         string    `json:"alert_id"`
	DeliveryID      string    `json:"delivery_id"`
	TenantID        string    `json:"tenant_id"`
	RuleID          string    `json:"rule_id"`
	EndpointID      string    `json:"endpoint_id"`
	Attempt         int       `json:"attempt"`
	RuleVersion     int64     `json:"rule_version,omitempty"` // the delivery's
	Outcome         string    `json:"outcome"`
	StatusCode      int       `json:"status_code,omitempty"`
	LatencyMS       int64     `json:"latency_ms"`
	ErrorClass      string    `json:"error_class,omitempty"`
	Error           string    `json:"error,omitempty"`
	ResponseExcerpt string    `json:"response_excerpt,omitempty"`
	AttemptedAt     time.Time `json:"attempted_at"`
}

// RunState is the processor's state of one run, on the compacted
// processor.run-state changelog (key tenant_id/run_id, same partition as the
// run's events). A tombstone removes a finished run after its grace period.
type RunState struct {
	TenantID     string            `json:"tenant_id"`
	RunID        string            `json:"run_id"`
	Workflow     Workflow          `json:"workflow"`
	Attempt      int               `json:"attempt,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	StartEventID string            `json:"start_event_id,omitempty"`
	StartedAt    *time.Time        `json:"started_at,omitempty"`
	FinishedAt   *time.Time        `json:"finished_at,omitempty"`
	// Seen lists the event types already processed for the run's current
	// attempt (Attempt), so an event the engine sends twice fires once; a
	// later attempt starts afresh.
	Seen []string `json:"seen"`
	// Fired lists the duration rules that already fired for the run's
	// current attempt.
	Fired       []string  `json:"fired,omitempty"`
	LastEventAt time.Time `json:"last_event_at"`
}

// RuleErrorRecord reports a rule that could not be evaluated for an event
// (its condition exceeded the evaluation budget or failed at run time), on
// the rule-errors topic. The processor writes at most one per rule and
// minute; the recorder keeps the latest as the rule's last_error.
type RuleErrorRecord struct {
	TenantID    string    `json:"tenant_id"`
	RuleID      string    `json:"rule_id"`
	RuleVersion int64     `json:"rule_version"`
	EventID     string    `json:"event_id,omitempty"`
	Error       string    `json:"error"`
	Errors      int64     `json:"errors"`
	At          time.Time `json:"at"`
}

// TenantRecord is a tenant's rollout state, or the global default, on the
// compacted tenants topic (key: the tenant id, or RolloutDefaultKey). A
// tenant without an explicit state is a tombstone. Who is served by which
// states is the rollout package's (internal/rollout) to say.
type TenantRecord struct {
	TenantID  string    `json:"tenant_id"` // RolloutDefaultKey for the global default
	State     string    `json:"state"`     // RolloutOff, RolloutBeta or RolloutGA
	UpdatedAt time.Time `json:"updated_at"`
}
