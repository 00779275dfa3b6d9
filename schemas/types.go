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
	// TypeRunFinished is a filter, not an event type: the run's
	// workflow.run.succeeded or workflow.run.failed. Only count and rate
	// rules may watch it (a rate rule always does); it is not in
	// AlertTypes, which per-event rules use.
	TypeRunFinished = "workflow.run.finished"
	// TypeAlertFiring and TypeAlertResolved are the delivery types of an
	// aggregate rule's episode: its firing (and repeats), and its resolve.
	TypeAlertFiring   = "workflow.alert.firing"
	TypeAlertResolved = "workflow.alert.resolved"
	// TypeTenantNotice is the delivery type of a health notice sent to the
	// tenant's notice endpoint; its rule id is NoticeRuleID.
	TypeTenantNotice = "tenant.notice"
)

// TestRuleID is the rule id of test deliveries.
const TestRuleID = "test"

// NoticeRuleID is the rule id of health-notice deliveries.
const NoticeRuleID = "notice"

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
	// labelsKey is LabelsKey, set by DecodeWorkflowEvent.
	labelsKey string
}

// LabelsKey is the event's labels in a canonical form, when the decoder
// made it (DecodeWorkflowEvent, for labels without escapes): each key and
// its value after its length as a uvarint, in key order (byte order of
// the keys). Two events with the same labels have the same key. "" when
// not made (an event built in code, escaped labels, no labels): Labels is
// then the only source. The engine interns a run's labels by it without
// reading the map.
func (d *WorkflowEventData) LabelsKey() string { return d.labelsKey }

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
	// Aggregate is set exactly for TypeAlertFiring and TypeAlertResolved.
	Aggregate *PayloadAggregate `json:"aggregate,omitempty"`
	// Notice is set exactly for TypeTenantNotice.
	Notice *PayloadNotice `json:"notice,omitempty"`
}

// PayloadAggregate is an episode of a count or rate rule's group in a
// workflow.alert.firing or workflow.alert.resolved payload. The firing, its
// repeats and its resolve share IncidentID (PagerDuty's dedup_key).
type PayloadAggregate struct {
	IncidentID        string                `json:"incident_id"`
	Kind              string                `json:"kind"`  // RuleKindCount or RuleKindRate
	State             string                `json:"state"` // AggregateStateFiring or "resolved"
	Group             map[string]string     `json:"group"` // group_by path → value; empty without group_by
	WindowMS          int64                 `json:"window_ms"`
	Threshold         *int                  `json:"threshold"`           // count
	SuccessRatioBelow *float64              `json:"success_ratio_below"` // rate
	MinRuns           *int                  `json:"min_runs"`            // rate
	Value             PayloadAggregateValue `json:"value"`
	FiringSince       time.Time             `json:"firing_since"`
	ResolvedAt        *time.Time            `json:"resolved_at"`
	ResolveReason     *string               `json:"resolve_reason"` // ResolveReason* on a resolve
	Repeat            int                   `json:"repeat"`
}

// PayloadAggregateValue is a group's window when a delivery was made:
// Matched for count rules; Succeeded, Failed and Ratio for rate rules; the
// others null (the payload's layout is closed: every member is present).
type PayloadAggregateValue struct {
	Matched   *int64   `json:"matched"`
	Succeeded *int64   `json:"succeeded"`
	Failed    *int64   `json:"failed"`
	Ratio     *float64 `json:"ratio"`
}

// Resolve reasons of an aggregate episode.
const (
	ResolveReasonConditionFalse = "condition_false"
	ResolveReasonRuleRemoved    = "rule_removed"
	ResolveReasonRuleChanged    = "rule_changed"
)

// PayloadNotice is the health notice of a tenant.notice payload.
type PayloadNotice struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"` // rule_disabled, endpoint_unhealthy, dead_letters, quota_exceeded
	Title      string    `json:"title"`
	RuleID     *string   `json:"rule_id"`
	EndpointID *string   `json:"endpoint_id"`
	Count      int64     `json:"count"`
	CreatedAt  time.Time `json:"created_at"`
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
	TenantID            string `json:"tenant_id"`
	ID                  string `json:"id"`
	Name                string `json:"name"`
	EventType           string `json:"event_type"`
	Condition           string `json:"condition,omitempty"`
	WebhookEndpointID   string `json:"webhook_endpoint_id"`
	IsActive            bool   `json:"is_active"`
	MaxAttempts         int    `json:"max_attempts"`
	DurationThresholdMS int64  `json:"duration_threshold_ms,omitempty"`
	IncludeErrorMessage bool   `json:"include_error_message"`
	RateLimitPerMinute  int    `json:"rate_limit_per_minute,omitempty"`
	CooldownMS          int64  `json:"cooldown_ms,omitempty"`
	Severity            string `json:"severity,omitempty"`
	// Kind is RuleKindPerEvent, RuleKindCount or RuleKindRate; "" (a
	// record written before aggregate rules existed) reads as per_event.
	// The members below it are set for the aggregate kinds only.
	Kind                string    `json:"kind,omitempty"`
	WindowMS            int64     `json:"window_ms,omitempty"`
	Threshold           int       `json:"threshold,omitempty"`              // count
	SuccessRatioBelowBP int       `json:"success_ratio_below_bp,omitempty"` // rate: ratio × 10,000
	MinRuns             int       `json:"min_runs,omitempty"`               // rate
	GroupBy             []string  `json:"group_by,omitempty"`
	MaxGroups           int       `json:"max_groups,omitempty"`
	HoldMS              int64     `json:"hold_ms,omitempty"`
	RepeatIntervalMS    int64     `json:"repeat_interval_ms,omitempty"` // 0: no repeat
	Version             int64     `json:"version"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// RuleKind returns the rule's kind, RuleKindPerEvent when Kind is empty.
func (r *RuleRecord) RuleKind() string {
	if r.Kind == "" {
		return RuleKindPerEvent
	}
	return r.Kind
}

// IsAggregate reports whether the rule is a count or rate rule.
func (r *RuleRecord) IsAggregate() bool {
	k := r.RuleKind()
	return k == RuleKindCount || k == RuleKindRate
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

// AggregateInput is a record on the internal processor.aggregate-input
// topic: either one matching event of one aggregate rule (Kind "input",
// key tenant_id/rule_id, produced by stage 1 in the batch's transaction) or
// a watermark marker of one events partition (Kind "watermark", key
// "~wm/<source partition>", produced to every partition).
type AggregateInput struct {
	Kind     string `json:"kind"` // AggregateInputKindInput or AggregateInputKindWatermark
	TenantID string `json:"tenant_id,omitempty"`
	RuleID   string `json:"rule_id,omitempty"`
	// Spec is aggregate.SpecOf(rule) when the input was made; stage 2
	// ignores inputs of another spec.
	Spec string `json:"spec,omitempty"`
	// Group is the values of the rule's group_by paths, in order.
	Group   []string        `json:"group,omitempty"`
	Outcome string          `json:"outcome,omitempty"` // matched, succeeded or failed
	At      time.Time       `json:"at,omitzero"`       // the event's time
	Event   *AggregateEvent `json:"event,omitempty"`
	// SourcePartition and Watermark are a marker's: the events partition
	// and its watermark.
	SourcePartition *int32    `json:"source_partition,omitempty"`
	Watermark       time.Time `json:"watermark,omitzero"`
}

// AggregateEvent is what an aggregate rule keeps of an event: enough to
// name it in a firing's payload.
type AggregateEvent struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	RunID     string    `json:"run_id"`
	Workflow  Workflow  `json:"workflow"`
	ErrorCode string    `json:"error_code,omitempty"`
	At        time.Time `json:"at,omitzero"` // set in the changelog's last event
}

// AggregateStateRecord is a record on the compacted, co-partitioned
// processor.aggregate-state changelog; exactly one member is set. Keys:
// tenant/rule/grp_… (Group), tenant/rule (Rule), WatermarksKey
// (Watermarks). A tombstone drops a group. Private to the processor.
type AggregateStateRecord struct {
	Group      *AggregateGroupState `json:"group,omitempty"`
	Watermarks *AggregateWatermarks `json:"watermarks,omitempty"`
	Rule       *AggregateRuleState  `json:"rule,omitempty"`
}

// AggregateGroupState is one group of an aggregate rule: its window (sparse
// buckets) and its episode.
type AggregateGroupState struct {
	TenantID       string            `json:"tenant_id"`
	RuleID         string            `json:"rule_id"`
	Spec           string            `json:"spec"`
	GroupKey       string            `json:"group_key"`
	Group          []string          `json:"group,omitempty"`
	BucketMS       int64             `json:"bucket_ms"`
	Buckets        []AggregateBucket `json:"buckets,omitempty"`
	Evaluated      int64             `json:"evaluated"` // the last bucket index evaluated at its boundary
	State          string            `json:"state"`     // AggregateState*
	FiringSince    *time.Time        `json:"firing_since,omitempty"`
	FalseSince     *time.Time        `json:"false_since,omitempty"`
	IncidentID     string            `json:"incident_id,omitempty"`
	NotifiedAt     *time.Time        `json:"notified_at,omitempty"`
	Repeats        int               `json:"repeats"`
	LastResolvedAt *time.Time        `json:"last_resolved_at,omitempty"`
	Last           *AggregateEvent   `json:"last,omitempty"`
	Notify         *AggregateNotify  `json:"notify,omitempty"`
}

// AggregateBucket is one non-empty bucket of a group's window: index I
// (unix ms / bucket_ms), matched N, succeeded S, failed F.
type AggregateBucket struct {
	I int64  `json:"i"`
	N uint32 `json:"n,omitempty"`
	S uint32 `json:"s,omitempty"`
	F uint32 `json:"f,omitempty"`
}

// AggregateNotify is where and how a firing group's deliveries go, as
// recorded at firing (its resolve goes to the same endpoint).
type AggregateNotify struct {
	EndpointID  string `json:"endpoint_id"`
	RuleName    string `json:"rule_name"`
	RuleVersion int64  `json:"rule_version"`
	Severity    string `json:"severity,omitempty"`
	MaxAttempts int    `json:"max_attempts"`
	// Suppressed: the firing was suppressed by the delivery quota, so its
	// resolve is not sent.
	Suppressed bool `json:"suppressed,omitempty"`
}

// AggregateWatermarks is the newest watermark of every events partition
// (by partition number, decimal) seen by one aggregate-input partition.
type AggregateWatermarks struct {
	Sources map[string]time.Time `json:"sources"`
}

// AggregateRuleState counts, for one rule on one partition, the inputs
// dropped by max_groups and those too late for the window.
type AggregateRuleState struct {
	TenantID string `json:"tenant_id"`
	RuleID   string `json:"rule_id"`
	Spec     string `json:"spec"`
	Dropped  int64  `json:"dropped"`
	Late     int64  `json:"late"`
}

// AggregateGroupStatus is a record on the compacted aggregate-groups topic,
// the current state of groups that the recorder stores for the API; exactly
// one member is set. Keys: tenant/rule/grp_… (Group), tenant/rule (Rule).
type AggregateGroupStatus struct {
	Group *AggregateGroupInfo   `json:"group,omitempty"`
	Rule  *AggregateRuleSummary `json:"rule,omitempty"`
}

// AggregateGroupInfo is a group as the API shows it.
type AggregateGroupInfo struct {
	TenantID       string            `json:"tenant_id"`
	RuleID         string            `json:"rule_id"`
	RuleVersion    int64             `json:"rule_version"`
	GroupKey       string            `json:"group_key"`
	Group          map[string]string `json:"group"` // group_by path → value
	State          string            `json:"state"`
	FiringSince    *time.Time        `json:"firing_since,omitempty"`
	ResolvingSince *time.Time        `json:"resolving_since,omitempty"`
	LastResolvedAt *time.Time        `json:"last_resolved_at,omitempty"`
	IncidentID     string            `json:"incident_id,omitempty"`
	Value          AggregateValue    `json:"value"`
	LastEventAt    *time.Time        `json:"last_event_at,omitempty"`
	EvaluatedAt    *time.Time        `json:"evaluated_at,omitempty"`
}

// AggregateValue is a group's window: matched for count rules; succeeded,
// failed and ratio for rate rules.
type AggregateValue struct {
	Matched   *int64   `json:"matched,omitempty"`
	Succeeded *int64   `json:"succeeded,omitempty"`
	Failed    *int64   `json:"failed,omitempty"`
	Ratio     *float64 `json:"ratio,omitempty"`
}

// AggregateRuleSummary is a rule's groups and drop counts, summed over its
// partition.
type AggregateRuleSummary struct {
	TenantID string `json:"tenant_id"`
	RuleID   string `json:"rule_id"`
	Groups   int64  `json:"groups"`
	Dropped  int64  `json:"dropped"`
	Late     int64  `json:"late"`
}

// QuotaUsageRecord counts the alerts of a tenant suppressed by the delivery
// quota in one minute of event time, in one batch, on the quota-usage topic
// (key: the tenant id).
type QuotaUsageRecord struct {
	TenantID   string    `json:"tenant_id"`
	Minute     time.Time `json:"minute"`
	Scope      string    `json:"scope"` // QuotaScopeTenant or QuotaScopeGlobal
	Suppressed int64     `json:"suppressed"`
	Limit      int64     `json:"limit"` // the cap per minute that suppressed them
}

// EndpointHealthRecord reports that a dispatcher's breaker for an endpoint
// has stayed open (unhealthy) or closed again (healthy), on the
// endpoint-health topic (key tenant/endpoint).
type EndpointHealthRecord struct {
	TenantID            string    `json:"tenant_id"`
	EndpointID          string    `json:"endpoint_id"`
	State               string    `json:"state"` // EndpointUnhealthy or EndpointHealthy
	Since               time.Time `json:"since"` // when the breaker first opened
	ConsecutiveFailures int       `json:"consecutive_failures"`
	LastErrorClass      string    `json:"last_error_class,omitempty"`
	Instance            string    `json:"instance"`
	At                  time.Time `json:"at"`
}

// TenantLimitsRecord is a tenant's operator-set limits on the compacted
// one-partition tenant-limits topic (key: the tenant id); a tombstone means
// the defaults.
type TenantLimitsRecord struct {
	TenantID string `json:"tenant_id"`
	// DeliveryQuotaPerMinute caps the tenant's deliveries per minute of
	// event time; 0 means unlimited.
	DeliveryQuotaPerMinute int64     `json:"delivery_quota_per_minute"`
	UpdatedAt              time.Time `json:"updated_at"`
}
