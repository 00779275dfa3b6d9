package store

import (
	"context"
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
	c := conds{args: []any{t.tenant, s.Limit}}
	for _, f := range []struct{ cond, v string }{
		{"a.alert_id = $%d", s.AlertID}, {"a.rule_id = $%d", s.RuleID}, {"a.endpoint_id = $%d", s.EndpointID},
		{"a.run_id = $%d", s.RunID}, {"a.workflow_name = $%d", s.Workflow}, {"coalesce(last.outcome, 'pending') = $%d", s.Status},
	} {
		if f.v != "" {
			c.add(f.cond, f.v)
		}
	}
	if !s.Since.IsZero() {
		c.add("a.created_at >= $%d", s.Since)
	}
	if !s.Until.IsZero() {
		c.add("a.created_at < $%d", s.Until)
	}
	c.before("a.created_at, a.alert_id", s.After)
	return t.queryDeliveries(ctx, "search deliveries", `SELECT `+deliveryCols+deliveryFrom+`
		WHERE a.tenant_id = $1`+c.where+`
		ORDER BY a.created_at DESC, a.alert_id DESC LIMIT $2`, c.args...)
}
