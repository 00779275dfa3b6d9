package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The delivery history the recorder keeps (alerts, attempts), as the
// history API reads it. Every statement here runs in a tenant transaction
// (row-level security); another tenant's alert, rule or endpoint is not
// found.

// DeliveryRow is an alert with the outcome of its latest attempt, whether
// it sits in the dead letters, and its attempts.
type DeliveryRow struct {
	AlertID, RuleID, EndpointID, EventType string
	// WorkflowID, WorkflowName and RunID come from the alert's payload
	// ("" when absent).
	WorkflowID, WorkflowName, RunID string
	CreatedAt                       time.Time
	// Status is the outcome of the latest attempt; "pending" when none is
	// recorded yet.
	Status       string
	DeadLettered bool
	ReplayedAt   *time.Time
	// Attempts are the recorded attempts, oldest first.
	Attempts []AttemptRow
	// Payload is the alert's webhook payload (GetDelivery only).
	Payload []byte
}

// AttemptRow is a delivery_attempts row.
type AttemptRow struct {
	DeliveryID                         string
	Attempt                            int
	Outcome                            string
	StatusCode                         *int
	LatencyMS                          int64
	ErrorClass, Error, ResponseExcerpt *string
	AttemptedAt                        time.Time
}

// DeliveryQuery selects a page of a rule's or an endpoint's deliveries,
// newest first.
type DeliveryQuery struct {
	// Outcome: only alerts whose latest attempt had it ("pending": none
	// yet; "": any).
	Outcome string
	// After: only alerts older than this position (nil: from the newest).
	After *Cursor
	Limit int
}

// deliveryCols selects a DeliveryRow (without attempts) from alerts a
// joined with its latest attempt (last) and its dead letter (d).
const deliveryCols = `a.alert_id, a.rule_id, a.endpoint_id, a.event_type,
	coalesce(a.record #>> '{payload,data,workflow,id}', ''), coalesce(a.record #>> '{payload,data,workflow,name}', ''),
	coalesce(a.record #>> '{payload,data,run,id}', ''), a.created_at,
	coalesce(last.outcome, 'pending'), d.alert_id IS NOT NULL, d.replayed_at`

const deliveryFrom = ` FROM alerts a
	LEFT JOIN LATERAL (SELECT x.outcome FROM delivery_attempts x WHERE x.tenant_id = a.tenant_id AND x.alert_id = a.alert_id
		ORDER BY x.attempted_at DESC, x.attempt DESC LIMIT 1) last ON true
	LEFT JOIN dead_letters d ON d.tenant_id = a.tenant_id AND d.alert_id = a.alert_id`

func scanDelivery(row pgx.Row, extra ...any) (*DeliveryRow, error) {
	var d DeliveryRow
	err := row.Scan(append([]any{&d.AlertID, &d.RuleID, &d.EndpointID, &d.EventType, &d.WorkflowID, &d.WorkflowName, &d.RunID,
		&d.CreatedAt, &d.Status, &d.DeadLettered, &d.ReplayedAt}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan delivery: %w", err)
	}
	d.Attempts = []AttemptRow{}
	return &d, nil
}

// ListRuleDeliveries returns a page of rule id's alerts with their
// attempts, or ErrNotFound if the tenant never had the rule (deleted rules
// keep their history).
func (t *Tx) ListRuleDeliveries(ctx context.Context, id string, q DeliveryQuery) ([]*DeliveryRow, error) {
	return t.listDeliveries(ctx, "alert_rules", "rule_id", id, q)
}

// ListEndpointDeliveries returns a page of endpoint id's alerts (test
// deliveries included) with their attempts, or ErrNotFound if the tenant
// never had the endpoint (deleted endpoints keep their history).
func (t *Tx) ListEndpointDeliveries(ctx context.Context, id string, q DeliveryQuery) ([]*DeliveryRow, error) {
	return t.listDeliveries(ctx, "webhook_endpoints", "endpoint_id", id, q)
}

func (t *Tx) listDeliveries(ctx context.Context, table, col, id string, q DeliveryQuery) ([]*DeliveryRow, error) {
	var exists bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE tenant_id = $1 AND id = $2)`,
		t.tenant, id).Scan(&exists); err != nil {
		return nil, fmt.Errorf("store: look up %s: %w", table, err)
	}
	if !exists {
		return nil, ErrNotFound
	}
	args := []any{t.tenant, id, q.Limit, q.Outcome}
	where := ""
	if q.After != nil {
		args = append(args, q.After.CreatedAt, q.After.ID)
		where = ` AND (a.created_at, a.alert_id) < ($5, $6)`
	}
	return t.queryDeliveries(ctx, "list deliveries", `SELECT `+deliveryCols+deliveryFrom+`
		WHERE a.tenant_id = $1 AND a.`+col+` = $2 AND ($4 = '' OR coalesce(last.outcome, 'pending') = $4)`+where+`
		ORDER BY a.created_at DESC, a.alert_id DESC LIMIT $3`, args...)
}

// queryDeliveries runs a page query of alerts (deliveryCols, deliveryFrom)
// and loads each one's attempts; what names it in errors.
func (t *Tx) queryDeliveries(ctx context.Context, what, sql string, args ...any) ([]*DeliveryRow, error) {
	rows, err := t.tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var items []*DeliveryRow
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	rows.Close()
	if err := t.loadAttempts(ctx, items); err != nil {
		return nil, err
	}
	return items, nil
}

// GetDelivery returns alert alertID with its payload and attempts, or
// ErrNotFound.
func (t *Tx) GetDelivery(ctx context.Context, alertID string) (*DeliveryRow, error) {
	var payload []byte
	d, err := scanDelivery(t.tx.QueryRow(ctx, `SELECT `+deliveryCols+`, a.record->'payload'`+deliveryFrom+`
		WHERE a.tenant_id = $1 AND a.alert_id = $2`, t.tenant, alertID), &payload)
	if err != nil {
		return nil, err
	}
	d.Payload = payload
	if err := t.loadAttempts(ctx, []*DeliveryRow{d}); err != nil {
		return nil, err
	}
	return d, nil
}

// loadAttempts fills in the attempts of ds.
func (t *Tx) loadAttempts(ctx context.Context, ds []*DeliveryRow) error {
	if len(ds) == 0 {
		return nil
	}
	byID := make(map[string]*DeliveryRow, len(ds))
	ids := make([]string, 0, len(ds))
	for _, d := range ds {
		byID[d.AlertID] = d
		ids = append(ids, d.AlertID)
	}
	rows, err := t.tx.Query(ctx, `SELECT alert_id, delivery_id, attempt, outcome, status_code, latency_ms, error_class, error,
			response_excerpt, attempted_at
		FROM delivery_attempts WHERE tenant_id = $1 AND alert_id = ANY($2)
		ORDER BY alert_id, attempted_at, attempt`, t.tenant, ids)
	if err != nil {
		return fmt.Errorf("store: load attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a AttemptRow
		if err := rows.Scan(&id, &a.DeliveryID, &a.Attempt, &a.Outcome, &a.StatusCode, &a.LatencyMS, &a.ErrorClass, &a.Error,
			&a.ResponseExcerpt, &a.AttemptedAt); err != nil {
			return fmt.Errorf("store: scan attempt: %w", err)
		}
		if d := byID[id]; d != nil {
			d.Attempts = append(d.Attempts, a)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: load attempts: %w", err)
	}
	return nil
}

// AlertRecord returns the stored delivery record of alert alertID and its
// endpoint, or ErrNotFound.
func (t *Tx) AlertRecord(ctx context.Context, alertID string) (record []byte, endpointID string, err error) {
	err = t.tx.QueryRow(ctx, `SELECT record, endpoint_id FROM alerts WHERE tenant_id = $1 AND alert_id = $2`,
		t.tenant, alertID).Scan(&record, &endpointID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("store: load alert: %w", err)
	}
	return record, endpointID, nil
}

// EndpointStatus reports whether the tenant's endpoint id exists (deleted
// ones included), is deleted, and is active.
func (t *Tx) EndpointStatus(ctx context.Context, id string) (exists, deleted, active bool, err error) {
	err = t.tx.QueryRow(ctx, `SELECT deleted_at IS NOT NULL, is_active FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2`,
		t.tenant, id).Scan(&deleted, &active)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, false, nil
	}
	if err != nil {
		return false, false, false, fmt.Errorf("store: endpoint state: %w", err)
	}
	return true, deleted, active, nil
}
