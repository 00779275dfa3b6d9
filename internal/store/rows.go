package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/exospherehost/exo-alerts/schemas"
)

// EndpointRow is a webhook_endpoints row.
type EndpointRow struct {
	ID, TenantID, Name, Kind, TargetURL string
	Secret                              schemas.Sealed
	TargetURLSealed                     *schemas.Sealed
	SecretHint                          string
	PreviousSecret                      *schemas.Sealed
	PreviousSecretExpiresAt             *time.Time
	Headers                             map[string]schemas.Sealed
	// RateLimitPerSecond is the endpoint's own rate (nil: the dispatcher's default).
	RateLimitPerSecond   *int
	IsActive             bool
	DisabledReason       *string
	CreatedBy            string
	CreatedAt, UpdatedAt time.Time
	Version              int64
}

// RuleRow is an alert_rules row.
type RuleRow struct {
	ID, TenantID, Name, Description, EventType, Condition string
	DurationThresholdMS                                   *int64
	WebhookEndpointID                                     string
	IsActive                                              bool
	DisabledReason                                        *string
	MaxAttempts                                           int
	RateLimitPerMinute                                    *int
	CooldownMS                                            *int64
	Severity                                              string
	IncludeErrorMessage                                   bool
	// Kind is per_event, count or rate (schemas.RuleKind*). The members
	// after it are those of the aggregate kinds (docs/design/
	// aggregate-alerts.md §1): nil (GroupBy empty) for per_event rules.
	Kind                 string
	WindowMS             *int64
	Threshold            *int // count
	SuccessRatioBelowBP  *int // rate: the ratio × 10,000
	MinRuns              *int // rate
	GroupBy              []string
	MaxGroups            *int
	HoldMS               *int64
	RepeatIntervalMS     *int64 // nil: no repeat
	CreatedBy            string
	CreatedAt, UpdatedAt time.Time
	Version              int64
}

// IsAggregate reports whether the rule is a count or rate rule.
func (r *RuleRow) IsAggregate() bool {
	return r.Kind == schemas.RuleKindCount || r.Kind == schemas.RuleKindRate
}

// EndpointCols are the columns ScanEndpoint reads, in its order.
const EndpointCols = `id, tenant_id, name, kind, target_url, target_url_sealed, secret, secret_hint, previous_secret, previous_secret_expires_at, headers, rate_limit_per_second, is_active, disabled_reason, created_by, created_at, updated_at, version`

// ScanEndpoint reads a row of EndpointCols.
func ScanEndpoint(row pgx.Row) (*EndpointRow, error) {
	var e EndpointRow
	var sealedURL, secret, previous, headers []byte
	err := row.Scan(&e.ID, &e.TenantID, &e.Name, &e.Kind, &e.TargetURL, &sealedURL, &secret, &e.SecretHint, &previous, &e.PreviousSecretExpiresAt, &headers, &e.RateLimitPerSecond,
		&e.IsActive, &e.DisabledReason, &e.CreatedBy, &e.CreatedAt, &e.UpdatedAt, &e.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan endpoint: %w", err)
	}
	if err := json.Unmarshal(secret, &e.Secret); err != nil {
		return nil, fmt.Errorf("store: endpoint secret column: %w", err)
	}
	if sealedURL != nil {
		e.TargetURLSealed = new(schemas.Sealed)
		if err := json.Unmarshal(sealedURL, e.TargetURLSealed); err != nil {
			return nil, fmt.Errorf("store: endpoint target_url_sealed column: %w", err)
		}
	}
	if previous != nil {
		e.PreviousSecret = new(schemas.Sealed)
		if err := json.Unmarshal(previous, e.PreviousSecret); err != nil {
			return nil, fmt.Errorf("store: endpoint previous_secret column: %w", err)
		}
	}
	if err := json.Unmarshal(headers, &e.Headers); err != nil {
		return nil, fmt.Errorf("store: endpoint headers column: %w", err)
	}
	return &e, nil
}

// RuleCols are the columns ScanRule reads, in its order.
const RuleCols = `id, tenant_id, name, description, event_type, condition, duration_threshold_ms, webhook_endpoint_id, is_active, disabled_reason, max_attempts, rate_limit_per_minute, cooldown_ms, severity, include_error_message, kind, window_ms, threshold, success_ratio_below_bp, min_runs, group_by, max_groups, hold_ms, repeat_interval_ms, created_by, created_at, updated_at, version`

// ScanRule reads a row of RuleCols.
func ScanRule(row pgx.Row) (*RuleRow, error) {
	var r RuleRow
	err := row.Scan(&r.ID, &r.TenantID, &r.Name, &r.Description, &r.EventType, &r.Condition, &r.DurationThresholdMS,
		&r.WebhookEndpointID, &r.IsActive, &r.DisabledReason, &r.MaxAttempts, &r.RateLimitPerMinute, &r.CooldownMS, &r.Severity, &r.IncludeErrorMessage,
		&r.Kind, &r.WindowMS, &r.Threshold, &r.SuccessRatioBelowBP, &r.MinRuns, &r.GroupBy, &r.MaxGroups, &r.HoldMS, &r.RepeatIntervalMS,
		&r.CreatedBy, &r.CreatedAt, &r.UpdatedAt, &r.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan rule: %w", err)
	}
	return &r, nil
}

// Record is the endpoint's snapshot on the compacted endpoints topic.
func (e *EndpointRow) Record() schemas.EndpointRecord {
	return schemas.EndpointRecord{
		TenantID: e.TenantID, ID: e.ID, Name: e.Name, Kind: e.Kind, TargetURL: e.TargetURL, Secret: e.Secret,
		PreviousSecret: e.PreviousSecret, PreviousSecretExpiresAt: e.PreviousSecretExpiresAt,
		TargetURLSealed: e.TargetURLSealed,
		Headers:         e.Headers, IsActive: e.IsActive, Version: e.Version, UpdatedAt: e.UpdatedAt.UTC(),
		RateLimitPerSecond: derefInt(e.RateLimitPerSecond),
	}
}

// Record is the rule's snapshot on the compacted rules topic.
func (r *RuleRow) Record() schemas.RuleRecord {
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
	if r.IsAggregate() {
		s.Kind = r.Kind
		s.WindowMS, s.Threshold, s.SuccessRatioBelowBP = derefInt64(r.WindowMS), derefInt(r.Threshold), derefInt(r.SuccessRatioBelowBP)
		s.MinRuns, s.MaxGroups, s.HoldMS = derefInt(r.MinRuns), derefInt(r.MaxGroups), derefInt64(r.HoldMS)
		s.RepeatIntervalMS = derefInt64(r.RepeatIntervalMS)
		if len(r.GroupBy) > 0 {
			s.GroupBy = r.GroupBy
		}
	}
	return s
}

func derefInt64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// Cursor is an opaque position in a list ordered by (created_at, id).
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + c.ID))
}

// ParseCursor reads a Cursor's String; "" is no cursor (nil).
func ParseCursor(s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("malformed cursor")
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil || id == "" {
		return nil, errors.New("malformed cursor")
	}
	return &Cursor{CreatedAt: t, ID: id}, nil
}

// SealedJSON is an optional sealed column's value (NULL when absent).
func SealedJSON(s *schemas.Sealed) []byte {
	if s == nil {
		return nil
	}
	b, _ := json.Marshal(s)
	return b
}

// InsertAudit appends an audit event; before and after are marshalled to
// JSON (nil: NULL).
func (t *Tx) InsertAudit(ctx context.Context, tenant, actor, action, resType, resID string, before, after any, requestID string) error {
	var b, a []byte
	if before != nil {
		b, _ = json.Marshal(before)
	}
	if after != nil {
		a, _ = json.Marshal(after)
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO audit_events (tenant_id, actor, action, resource_type, resource_id, before, after, request_id)
		VALUES (NULLIF($1, ''), $2, $3, $4, $5, $6, $7, $8)`, tenant, actor, action, resType, resID, b, a, requestID)
	if err != nil {
		return fmt.Errorf("store: insert audit event: %w", err)
	}
	return nil
}

// InsertOutbox queues value for topic under key; the relay publishes it
// after the transaction commits.
func (t *Tx) InsertOutbox(ctx context.Context, topic, key string, value []byte) error {
	if _, err := t.tx.Exec(ctx, `INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)`, topic, key, value); err != nil {
		return fmt.Errorf("store: insert outbox row: %w", err)
	}
	return nil
}
