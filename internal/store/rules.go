package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The alert rules of a tenant transaction: every statement here is scoped
// to the transaction's tenant (Tx.Tenant), on top of row-level security.
// A deleted rule (deleted_at set) is invisible to them.

// InsertRule stores a new rule and fills in its created_at, updated_at and
// version.
func (t *Tx) InsertRule(ctx context.Context, r *RuleRow) error {
	err := t.tx.QueryRow(ctx, `INSERT INTO alert_rules
		(id, tenant_id, name, description, event_type, condition, duration_threshold_ms, webhook_endpoint_id,
		 is_active, max_attempts, rate_limit_per_minute, cooldown_ms, severity, include_error_message, created_by,
		 kind, window_ms, threshold, success_ratio_below_bp, min_runs, group_by, max_groups, hold_ms, repeat_interval_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
		 $16, $17, $18, $19, $20, $21, $22, $23, $24)
		RETURNING created_at, updated_at, version`,
		r.ID, r.TenantID, r.Name, r.Description, r.EventType, r.Condition, r.DurationThresholdMS, r.WebhookEndpointID,
		r.IsActive, r.MaxAttempts, r.RateLimitPerMinute, r.CooldownMS, r.Severity, r.IncludeErrorMessage, r.CreatedBy,
		r.kind(), r.WindowMS, r.Threshold, r.SuccessRatioBelowBP, r.MinRuns, r.groupBy(), r.MaxGroups, r.HoldMS, r.RepeatIntervalMS,
	).Scan(&r.CreatedAt, &r.UpdatedAt, &r.Version)
	if err != nil {
		return fmt.Errorf("store: insert rule: %w", err)
	}
	return nil
}

// GetRule reads rule id (ErrNotFound when the tenant has none).
func (t *Tx) GetRule(ctx context.Context, id string) (*RuleRow, error) {
	return t.getRule(ctx, id, "")
}

// GetRuleForUpdate is GetRule with the row locked until the end of the
// transaction, so a version check and the update that follows it are one.
func (t *Tx) GetRuleForUpdate(ctx context.Context, id string) (*RuleRow, error) {
	return t.getRule(ctx, id, " FOR UPDATE")
}

func (t *Tx) getRule(ctx context.Context, id, lock string) (*RuleRow, error) {
	return ScanRule(t.tx.QueryRow(ctx, `SELECT `+RuleCols+` FROM alert_rules
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`+lock, t.tenant, id))
}

// ActiveRulesOfEndpointForUpdate returns the active rules that deliver to
// endpoint, each locked until the end of the transaction: what deleting the
// endpoint deactivates.
func (t *Tx) ActiveRulesOfEndpointForUpdate(ctx context.Context, endpoint string) ([]*RuleRow, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+RuleCols+` FROM alert_rules
		WHERE tenant_id = $1 AND webhook_endpoint_id = $2 AND deleted_at IS NULL AND is_active FOR UPDATE`, t.tenant, endpoint)
	if err != nil {
		return nil, fmt.Errorf("store: rules of endpoint: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*RuleRow, error) { return ScanRule(r) })
}

// UpdateRule writes r's editable columns and bumps its version (and r's
// UpdatedAt and Version with it).
func (t *Tx) UpdateRule(ctx context.Context, r *RuleRow) error {
	err := t.tx.QueryRow(ctx, `UPDATE alert_rules SET
		name = $3, description = $4, event_type = $5, condition = $6, duration_threshold_ms = $7, webhook_endpoint_id = $8,
		is_active = $9, disabled_reason = $10, max_attempts = $11, rate_limit_per_minute = $12, cooldown_ms = $13,
		severity = $14, include_error_message = $15, kind = $16, window_ms = $17, threshold = $18,
		success_ratio_below_bp = $19, min_runs = $20, group_by = $21, max_groups = $22, hold_ms = $23, repeat_interval_ms = $24,
		updated_at = now(), version = version + 1
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
		RETURNING updated_at, version`,
		r.TenantID, r.ID, r.Name, r.Description, r.EventType, r.Condition, r.DurationThresholdMS, r.WebhookEndpointID,
		r.IsActive, r.DisabledReason, r.MaxAttempts, r.RateLimitPerMinute, r.CooldownMS, r.Severity, r.IncludeErrorMessage,
		r.kind(), r.WindowMS, r.Threshold, r.SuccessRatioBelowBP, r.MinRuns, r.groupBy(), r.MaxGroups, r.HoldMS, r.RepeatIntervalMS,
	).Scan(&r.UpdatedAt, &r.Version)
	if err != nil {
		return fmt.Errorf("store: update rule: %w", err)
	}
	return nil
}

// DeleteRule soft-deletes rule id (see softDelete).
func (t *Tx) DeleteRule(ctx context.Context, id string) error {
	return t.softDelete(ctx, "alert_rules", id)
}

// kind is the rule's kind column: per_event when unset.
func (r *RuleRow) kind() string {
	if r.Kind == "" {
		return schemas.RuleKindPerEvent
	}
	return r.Kind
}

// groupBy is the rule's group_by column: never NULL.
func (r *RuleRow) groupBy() []string {
	if r.GroupBy == nil {
		return []string{}
	}
	return r.GroupBy
}

// RuleFilter narrows ListRules; zero members do not filter.
type RuleFilter struct {
	IsActive          *bool
	EventType         string
	WebhookEndpointID string
	Kind              string
}

// ListRules returns up to limit rules after cur (nil: from the start) in
// creation order, and the cursor of the next page ("" on the last).
func (t *Tx) ListRules(ctx context.Context, cur *Cursor, limit int, f RuleFilter) ([]*RuleRow, string, error) {
	var filters []filter
	if f.IsActive != nil {
		filters = append(filters, filter{"is_active", *f.IsActive})
	}
	if f.EventType != "" {
		filters = append(filters, filter{"event_type", f.EventType})
	}
	if f.WebhookEndpointID != "" {
		filters = append(filters, filter{"webhook_endpoint_id", f.WebhookEndpointID})
	}
	if f.Kind != "" {
		filters = append(filters, filter{"kind", f.Kind})
	}
	return listPage(ctx, t, "alert_rules", RuleCols, cur, limit, filters, ScanRule,
		func(r *RuleRow) Cursor { return Cursor{CreatedAt: r.CreatedAt, ID: r.ID} })
}

// RuleError is the latest error evaluating a rule, kept by the recorder
// from the rule-errors topic.
type RuleError struct {
	Message     string
	At          time.Time // UTC
	EventID     *string
	RuleVersion int64
	Count       int64
}

// RuleErrors returns the last errors of the rules ids that have one, by
// rule id.
func (t *Tx) RuleErrors(ctx context.Context, ids []string) (map[string]RuleError, error) {
	rows, err := t.tx.Query(ctx, `SELECT id, last_error, last_error_at, last_error_event_id, last_error_rule_version, error_count
		FROM alert_rules WHERE tenant_id = $1 AND id = ANY($2) AND last_error IS NOT NULL`, t.tenant, ids)
	if err != nil {
		return nil, fmt.Errorf("store: rule last errors: %w", err)
	}
	defer rows.Close()
	out := map[string]RuleError{}
	for rows.Next() {
		var id string
		var e RuleError
		if err := rows.Scan(&id, &e.Message, &e.At, &e.EventID, &e.RuleVersion, &e.Count); err != nil {
			return nil, fmt.Errorf("store: rule last errors: %w", err)
		}
		e.At = e.At.UTC()
		out[id] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: rule last errors: %w", err)
	}
	return out, nil
}

// AggregateLoad is what a tenant's active aggregate rules take of its
// caps: how many there are and the sum of their max_groups.
type AggregateLoad struct {
	Rules  int
	Groups int64
}

// LockAggregateRules takes the tenant's aggregate-rules lock until the end
// of the transaction and returns the load of its active aggregate rules
// other than except (the rule being changed; "" for a create). Two
// transactions that check the caps and then write an aggregate rule
// serialise on the lock, so both cannot pass a check the other breaks.
func (t *Tx) LockAggregateRules(ctx context.Context, except string) (AggregateLoad, error) {
	if _, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('aggregate-rules/' || $1))`, t.tenant); err != nil {
		return AggregateLoad{}, fmt.Errorf("store: lock aggregate rules: %w", err)
	}
	var l AggregateLoad
	err := t.tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(coalesce(max_groups, 1)), 0) FROM alert_rules
		WHERE tenant_id = $1 AND kind <> 'per_event' AND is_active AND deleted_at IS NULL AND id <> $2`, t.tenant, except).Scan(&l.Rules, &l.Groups)
	if err != nil {
		return AggregateLoad{}, fmt.Errorf("store: aggregate rules load: %w", err)
	}
	return l, nil
}
