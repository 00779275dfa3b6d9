package store

import (
	"context"
	"fmt"
	"time"
)

// DeliverySearch selects a page of the tenant's alerts across rules and
// endpoints, newest first (created_at, alert_id). Every set field narrows
// the search; zero values do not filter.
type DeliverySearch struct {
	AlertID, RuleID, EndpointID string
	// RunID and Workflow match the alert payload's run id and workflow
	// name exactly.
	RunID, Workflow string
	// Status: only alerts whose latest attempt had this outcome
	// ("pending": none yet).
	Status string
	// Since and Until bound the alert's created_at: [Since, Until).
	Since, Until time.Time
	// After: only alerts older than this position (nil: from the newest).
	After *Cursor
	Limit int
}

// SearchDeliveries returns a page of s with each alert's attempts. The
// run and workflow filters compare alerts.run_id and workflow_name, which
// a trigger fills from the same paths of the record that deliveryCols
// reads (migration 0014: under row-level security only a plain column
// comparison can use an index).
func (t *Tx) SearchDeliveries(ctx context.Context, s DeliverySearch) ([]*DeliveryRow, error) {
	args := []any{t.tenant, s.Limit}
	where := ""
	add := func(cond string, val any) {
		args = append(args, val)
		where += " AND " + fmt.Sprintf(cond, len(args))
	}
	if s.AlertID != "" {
		add("a.alert_id = $%d", s.AlertID)
	}
	if s.RuleID != "" {
		add("a.rule_id = $%d", s.RuleID)
	}
	if s.EndpointID != "" {
		add("a.endpoint_id = $%d", s.EndpointID)
	}
	if s.RunID != "" {
		add("a.run_id = $%d", s.RunID)
	}
	if s.Workflow != "" {
		add("a.workflow_name = $%d", s.Workflow)
	}
	if s.Status != "" {
		add("coalesce(last.outcome, 'pending') = $%d", s.Status)
	}
	if !s.Since.IsZero() {
		add("a.created_at >= $%d", s.Since)
	}
	if !s.Until.IsZero() {
		add("a.created_at < $%d", s.Until)
	}
	if s.After != nil {
		args = append(args, s.After.CreatedAt, s.After.ID)
		where += fmt.Sprintf(" AND (a.created_at, a.alert_id) < ($%d, $%d)", len(args)-1, len(args))
	}
	return t.queryDeliveries(ctx, "search deliveries", `SELECT `+deliveryCols+deliveryFrom+`
		WHERE a.tenant_id = $1`+where+`
		ORDER BY a.created_at DESC, a.alert_id DESC LIMIT $2`, args...)
}
