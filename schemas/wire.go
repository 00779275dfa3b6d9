package schemas

// The wire conventions shared by the services: the names of the Kafka
// headers they write and read, the record key, the strings that bind a
// sealed endpoint value to its owner, the endpoint kinds and the default
// number of delivery attempts. Each is spelled here once; a service that
// writes one and the service that reads it use the same constant.

// Kafka header names. Values are strings; numbers are decimal.
const (
	// HeaderAlertID carries a delivery's alert_id. The processor writes it
	// on every deliveries record; no service reads it (it is for operators
	// and tooling looking at the topic).
	HeaderAlertID = "exo-alert-id"
	// HeaderEventType carries a delivery's event_type. Written by the
	// processor on every deliveries record; no service reads it.
	HeaderEventType = "exo-event-type"

	// HeaderInvalidReason says why the processor could not use an event.
	// The processor writes it on the copy it puts on the events-invalid
	// topic; operators read it.
	HeaderInvalidReason = "exo-invalid-reason"
	// HeaderInvalidTruncatedFrom is the original length in bytes of an
	// invalid event whose copy the processor cut to its size limit.
	// Written by the processor on events-invalid; operators read it.
	HeaderInvalidTruncatedFrom = "exo-invalid-truncated-from"

	// HeaderOrigTopic, HeaderOrigPartition and HeaderOrigOffset locate the
	// record a copy was made from. The processor writes them on
	// events-invalid records (the event's coordinates); the dispatcher
	// writes them on retry and dead-letter records (the first deliveries
	// record's coordinates) and carries them over from a retry record.
	HeaderOrigTopic     = "exo-original-topic"
	HeaderOrigPartition = "exo-original-partition"
	HeaderOrigOffset    = "exo-original-offset"

	// HeaderAttempt is the number of the next attempt of a delivery on a
	// retry record. Written and read by the dispatcher.
	HeaderAttempt = "exo-attempt"
	// HeaderNotBefore is when a retry record is due, in unix milliseconds.
	// Written and read by the dispatcher.
	HeaderNotBefore = "exo-not-before"
	// HeaderDeferrals counts a retry record's backlog deferrals since its
	// last attempt. Written and read by the dispatcher.
	HeaderDeferrals = "exo-deferrals"
	// HeaderLastError is the class and message of a delivery's last
	// failure. The dispatcher writes it on retry and dead-letter records;
	// the recorder (control plane) reads it from dead letters.
	HeaderLastError = "exo-last-error"
	// HeaderLastErrorClass is the class alone of the last failure, on
	// retry records. Written by the dispatcher.
	HeaderLastErrorClass = "exo-last-error-class"
	// HeaderAttempts is how many attempts a dead-lettered delivery had.
	// The dispatcher writes it on dead letters; the recorder reads it.
	HeaderAttempts = "exo-attempts"
)

// TenantKey is the key "tenant/id" of a record owned by a tenant (events:
// tenant/run; rules and endpoints: tenant/its id; deliveries:
// tenant/endpoint; results: tenant/rule; rule errors: tenant/rule). The
// in-memory tables built from compacted topics are keyed by it too.
func TenantKey(tenant, id string) string { return tenant + "/" + id }

// RecordKey is TenantKey as a Kafka record key.
func RecordKey(tenant, id string) []byte { return []byte(tenant + "/" + id) }

// The additional data that binds a sealed endpoint value to its endpoint:
// a ciphertext opens only under the string it was sealed with, so one
// copied to another endpoint, tenant or field does not open. The control
// plane seals with these and the dispatcher opens with them; changing one
// makes every stored value unreadable.

// SecretAAD binds an endpoint's signing secret (current and previous) or
// routing key: "tenant/endpoint".
func SecretAAD(tenant, endpoint string) string { return tenant + "/" + endpoint }

// HeaderAAD binds the value of the endpoint's own HTTP header name:
// "tenant/endpoint/name".
func HeaderAAD(tenant, endpoint, name string) string {
	return tenant + "/" + endpoint + "/" + name
}

// TargetURLAAD binds an endpoint's target URL: "tenant/endpoint/target_url".
func TargetURLAAD(tenant, endpoint string) string {
	return tenant + "/" + endpoint + "/target_url"
}

// Endpoint kinds (EndpointRecord.Kind; "" means webhook). The API's enum
// tag on the endpoint body (controlplane/models.go) must list the same.
const (
	// EndpointKindWebhook receives the signed webhook payload v1.
	EndpointKindWebhook = "webhook"
	// EndpointKindSlack is a Slack incoming-webhook URL.
	EndpointKindSlack = "slack"
	// EndpointKindPagerDuty is the PagerDuty Events API v2; its secret is
	// the integration's routing key.
	EndpointKindPagerDuty = "pagerduty"
)

// DefaultMaxAttempts is the number of delivery attempts of a rule that
// does not set max_attempts. The migration's column default and the API's
// `default:"8"` tag must say the same.
const DefaultMaxAttempts = 8

// Rollout states (TenantRecord.State; tenants.rollout_state and
// rollout_default.state in Postgres, whose CHECK constraints list the same).
const (
	RolloutOff  = "off"
	RolloutBeta = "beta"
	RolloutGA   = "ga"
)

// RolloutDefaultKey is the key of the global default's record on the
// tenants topic; every other key is a tenant id, which cannot be "*".
const RolloutDefaultKey = "*"

// Rule kinds (RuleRecord.Kind; alert_rules.kind in Postgres, whose CHECK
// constraint lists the same). A record without a kind is per_event.
const (
	// RuleKindPerEvent alerts on each matching event (the rules that
	// existed before aggregate rules).
	RuleKindPerEvent = "per_event"
	// RuleKindCount fires when a window holds at least threshold matching
	// events.
	RuleKindCount = "count"
	// RuleKindRate fires when the success ratio of the window's finished
	// runs is below success_ratio_below_bp / 10,000, with at least
	// min_runs runs.
	RuleKindRate = "rate"
)

// AggregateInput kinds (AggregateInput.Kind).
const (
	// AggregateInputKindInput is one matching event of one aggregate rule.
	AggregateInputKindInput = "input"
	// AggregateInputKindWatermark is a stage-1 watermark marker of one
	// events partition, produced to every aggregate-input partition.
	AggregateInputKindWatermark = "watermark"
)

// Aggregate input outcomes (AggregateInput.Outcome).
const (
	AggregateOutcomeMatched   = "matched"   // count rules
	AggregateOutcomeSucceeded = "succeeded" // rate rules
	AggregateOutcomeFailed    = "failed"    // rate rules
)

// Aggregate group states (AggregateGroupState.State,
// AggregateGroupInfo.State; aggregate_groups.state in Postgres).
const (
	AggregateStateInactive  = "inactive"
	AggregateStateFiring    = "firing"
	AggregateStateResolving = "resolving"
)

// WatermarkKeyPrefix starts the key of a watermark marker on
// processor.aggregate-input ("~wm/<source partition>"); WatermarksKey is the
// key of a partition's watermarks on processor.aggregate-state. Tenant ids
// cannot start with "~", so neither collides with a tenant's key.
const (
	WatermarkKeyPrefix = "~wm/"
	WatermarksKey      = "~wm"
)

// Quota scopes (QuotaUsageRecord.Scope).
const (
	QuotaScopeTenant = "tenant"
	QuotaScopeGlobal = "global"
)

// Endpoint health states (EndpointHealthRecord.State).
const (
	EndpointUnhealthy = "unhealthy"
	EndpointHealthy   = "healthy"
)
