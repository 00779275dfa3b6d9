package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The dead letters (alerts that ran out of attempts) as the dead-letter API
// lists and replays them, in a tenant transaction.

// DeadLetterRow is a dead_letters row with what its record says of the
// alert.
type DeadLetterRow struct {
	AlertID, RuleID, EndpointID, EventType string
	// WorkflowID and RunID come from the alert's payload ("" when absent).
	WorkflowID, RunID string
	Attempts          int
	LastError         string
	// CreatedAt is when the alert was raised (dead_at if the record does
	// not say).
	CreatedAt, DeadAt time.Time
	ReplayedAt        *time.Time
}

// DeadLetterFilter selects a page of dead letters, latest death first.
type DeadLetterFilter struct {
	EndpointID, RuleID string // "": any
	// Since and Until bound dead_at to [Since, Until) (zero: unbounded).
	Since, Until time.Time
	// Replayed: only replayed ones (true), only ones not replayed (false);
	// nil: both.
	Replayed *bool
	// After: only dead letters after this position (nil: from the latest).
	After *Cursor
	Limit int
}

const deadLetterCols = `d.alert_id, d.rule_id, d.endpoint_id, coalesce(d.record->>'event_type', ''),
	coalesce(d.record #>> '{payload,data,workflow,id}', ''), coalesce(d.record #>> '{payload,data,run,id}', ''),
	d.attempts, d.last_error, coalesce((d.record->>'created_at')::timestamptz, d.dead_at), d.dead_at, d.replayed_at`

// ListDeadLetters returns the tenant's dead letters that f selects.
func (t *Tx) ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]*DeadLetterRow, error) {
	c := conds{args: []any{t.tenant, f.Limit}}
	if f.EndpointID != "" {
		c.add("d.endpoint_id = $%d", f.EndpointID)
	}
	if f.RuleID != "" {
		c.add("d.rule_id = $%d", f.RuleID)
	}
	if !f.Since.IsZero() {
		c.add("d.dead_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		c.add("d.dead_at < $%d", f.Until)
	}
	if f.Replayed != nil {
		if *f.Replayed {
			c.addRaw("d.replayed_at IS NOT NULL")
		} else {
			c.addRaw("d.replayed_at IS NULL")
		}
	}
	c.before("d.dead_at, d.alert_id", f.After)
	rows, err := t.tx.Query(ctx, `SELECT `+deadLetterCols+` FROM dead_letters d WHERE d.tenant_id = $1`+c.where+`
		ORDER BY d.dead_at DESC, d.alert_id DESC LIMIT $2`, c.args...)
	if err != nil {
		return nil, fmt.Errorf("store: list dead letters: %w", err)
	}
	defer rows.Close()
	var items []*DeadLetterRow
	for rows.Next() {
		var dl DeadLetterRow
		if err := rows.Scan(&dl.AlertID, &dl.RuleID, &dl.EndpointID, &dl.EventType, &dl.WorkflowID, &dl.RunID,
			&dl.Attempts, &dl.LastError, &dl.CreatedAt, &dl.DeadAt, &dl.ReplayedAt); err != nil {
			return nil, fmt.Errorf("store: scan dead letter: %w", err)
		}
		items = append(items, &dl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list dead letters: %w", err)
	}
	return items, nil
}

// LockDeadLetter locks dead letter alertID (FOR UPDATE) and returns its
// stored delivery record, its endpoint and when it was last replayed (nil:
// never), or ErrNotFound.
func (t *Tx) LockDeadLetter(ctx context.Context, alertID string) (record []byte, endpointID string, replayedAt *time.Time, err error) {
	err = t.tx.QueryRow(ctx, `SELECT record, endpoint_id, replayed_at FROM dead_letters WHERE tenant_id = $1 AND alert_id = $2
		FOR UPDATE`, t.tenant, alertID).Scan(&record, &endpointID, &replayedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", nil, ErrNotFound
	}
	if err != nil {
		return nil, "", nil, fmt.Errorf("store: load dead letter: %w", err)
	}
	return record, endpointID, replayedAt, nil
}

// MarkDeadLetterReplayed sets dead letter alertID's replayed_at to now and
// returns it.
func (t *Tx) MarkDeadLetterReplayed(ctx context.Context, alertID string) (time.Time, error) {
	var at time.Time
	if err := t.tx.QueryRow(ctx, `UPDATE dead_letters SET replayed_at = now() WHERE tenant_id = $1 AND alert_id = $2
		RETURNING replayed_at`, t.tenant, alertID).Scan(&at); err != nil {
		return time.Time{}, fmt.Errorf("store: mark dead letter replayed: %w", err)
	}
	return at, nil
}

// DeadLetterRange selects the not yet replayed dead letters that died in
// [Since, Until), of one endpoint or rule if set, for a bulk replay.
type DeadLetterRange struct {
	Since, Until       time.Time
	EndpointID, RuleID string // "": any
}

// StoredDeadLetter is a dead letter's alert id and stored delivery record.
type StoredDeadLetter struct {
	AlertID string
	Record  []byte
}

const deadLetterRange = ` FROM dead_letters d
	LEFT JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
	WHERE d.tenant_id = $1 AND d.replayed_at IS NULL AND d.dead_at >= $2 AND d.dead_at < $3
		AND ($4 = '' OR d.endpoint_id = $4) AND ($5 = '' OR d.rule_id = $5)`

func (r DeadLetterRange) args(tenant string) []any {
	return []any{tenant, r.Since, r.Until, r.EndpointID, r.RuleID}
}

// CountUndeliverableDeadLetters counts the dead letters of r whose endpoint
// is deleted or disabled: a replay skips them.
func (t *Tx) CountUndeliverableDeadLetters(ctx context.Context, r DeadLetterRange) (int, error) {
	var n int
	if err := t.tx.QueryRow(ctx, `SELECT count(*)`+deadLetterRange+` AND NOT coalesce(e.deleted_at IS NULL AND e.is_active, false)`,
		r.args(t.tenant)...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count skipped dead letters: %w", err)
	}
	return n, nil
}

// LockDeliverableDeadLetters locks (FOR UPDATE, skipping those another
// replay holds) and returns at most limit dead letters of r whose endpoint
// is live and active, oldest death first.
func (t *Tx) LockDeliverableDeadLetters(ctx context.Context, r DeadLetterRange, limit int) ([]StoredDeadLetter, error) {
	rows, err := t.tx.Query(ctx, `SELECT d.alert_id, d.record`+deadLetterRange+` AND e.deleted_at IS NULL AND e.is_active
		ORDER BY d.dead_at, d.alert_id LIMIT $6 FOR UPDATE OF d SKIP LOCKED`, append(r.args(t.tenant), limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: select dead letters: %w", err)
	}
	defer rows.Close()
	var out []StoredDeadLetter
	for rows.Next() {
		var d StoredDeadLetter
		if err := rows.Scan(&d.AlertID, &d.Record); err != nil {
			return nil, fmt.Errorf("store: scan dead letter: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: select dead letters: %w", err)
	}
	return out, nil
}

// MarkDeadLettersReplayed sets the replayed_at of dead letters alertIDs to
// now.
func (t *Tx) MarkDeadLettersReplayed(ctx context.Context, alertIDs []string) error {
	if _, err := t.tx.Exec(ctx, `UPDATE dead_letters SET replayed_at = now() WHERE tenant_id = $1 AND alert_id = ANY($2)`,
		t.tenant, alertIDs); err != nil {
		return fmt.Errorf("store: mark dead letters replayed: %w", err)
	}
	return nil
}
