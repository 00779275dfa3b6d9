package store

import (
	"context"
	"fmt"
	"time"
)

// AuditEvent is an audit_events row.
type AuditEvent struct {
	ID                                      int64
	Actor, Action, ResourceType, ResourceID string
	// Before and After are JSON documents, nil when NULL.
	Before, After []byte
	RequestID     string
	CreatedAt     time.Time
}

// AuditFilter narrows ListAudit; zero members do not filter.
type AuditFilter struct {
	// BeforeID keeps events older than this one (a page's cursor).
	BeforeID                                int64
	ResourceType, ResourceID, Action, Actor string
	// Since keeps events at or after it, Until events before it.
	Since, Until time.Time
}

// ListAudit returns up to limit events of the transaction's tenant that
// pass f, newest first.
func (t *Tx) ListAudit(ctx context.Context, f AuditFilter, limit int) ([]*AuditEvent, error) {
	c := conds{args: []any{t.tenant, limit}}
	if f.BeforeID != 0 {
		c.add("id < $%d", f.BeforeID)
	}
	for _, col := range []struct{ name, v string }{
		{"resource_type", f.ResourceType}, {"resource_id", f.ResourceID}, {"action", f.Action}, {"actor", f.Actor},
	} {
		if col.v != "" {
			c.add(col.name+" = $%d", col.v)
		}
	}
	if !f.Since.IsZero() {
		c.add("created_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		c.add("created_at < $%d", f.Until)
	}
	rows, err := t.tx.Query(ctx, `SELECT id, actor, action, resource_type, resource_id, before, after, request_id, created_at FROM audit_events
		WHERE tenant_id = $1`+c.where+` ORDER BY id DESC LIMIT $2`, c.args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit events: %w", err)
	}
	defer rows.Close()
	var out []*AuditEvent
	for rows.Next() {
		var e AuditEvent
		if err := rows.Scan(&e.ID, &e.Actor, &e.Action, &e.ResourceType, &e.ResourceID, &e.Before, &e.After, &e.RequestID, &e.CreatedAt); err != nil {
			return nil, fmt.Errorf("store: scan audit event: %w", err)
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list audit events: %w", err)
	}
	return out, nil
}
