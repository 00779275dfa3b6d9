package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The rollout flag's statements: the global default (rollout_default, one
// row) and each tenant's explicit state (tenants.rollout_state, NULL for
// none). Operators change them across tenants, in system transactions
// (Store.System, or SystemXID to wait for their outbox rows); what the
// states mean is internal/rollout's.

// rolloutLock is the advisory lock key that serialises changes of the
// global default ("exo_roll"): the first write of the default has no row
// to lock.
const rolloutLock = int64(0x65786f5f726f6c6c)

// RolloutDefault is the stored global default.
type RolloutDefault struct {
	State     string
	UpdatedAt time.Time
}

// TenantRollout is a tenant's rollout: State "" when it has no explicit
// state (it follows the default).
type TenantRollout struct {
	TenantID  string
	State     string
	UpdatedAt *time.Time
}

// SystemXID is Store.System that also returns the transaction's id when it
// wrote (for Unpublished), so the caller can wait for its outbox rows.
func (s *Store) SystemXID(ctx context.Context, fn func(*Tx) error) (xid string, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fn(&Tx{tx: tx}); err != nil {
			return err
		}
		var id *string
		if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id_if_assigned()::text`).Scan(&id); err != nil {
			return fmt.Errorf("store: transaction id: %w", err)
		}
		if id != nil {
			xid = *id
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return xid, nil
}

// LockRolloutDefault takes the lock of the global default for the rest of
// the transaction and returns the stored default (nil when none is stored).
func (t *Tx) LockRolloutDefault(ctx context.Context) (*RolloutDefault, error) {
	if _, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, rolloutLock); err != nil {
		return nil, fmt.Errorf("store: lock rollout default: %w", err)
	}
	var d RolloutDefault
	err := t.tx.QueryRow(ctx, `SELECT state, updated_at FROM rollout_default FOR UPDATE`).Scan(&d.State, &d.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read rollout default: %w", err)
	}
	return &d, nil
}

// SetRolloutDefault stores state as the global default (after
// LockRolloutDefault) and returns it.
func (t *Tx) SetRolloutDefault(ctx context.Context, state string) (*RolloutDefault, error) {
	var d RolloutDefault
	err := t.tx.QueryRow(ctx, `INSERT INTO rollout_default (state) VALUES ($1)
		ON CONFLICT (singleton) DO UPDATE SET state = EXCLUDED.state, updated_at = now()
		RETURNING state, updated_at`, state).Scan(&d.State, &d.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("store: set rollout default: %w", err)
	}
	return &d, nil
}

// RolloutDefault returns the stored global default, or nil when none is
// stored.
func (s *Store) RolloutDefault(ctx context.Context) (*RolloutDefault, error) {
	var d RolloutDefault
	err := s.pool.QueryRow(ctx, `SELECT state, updated_at FROM rollout_default`).Scan(&d.State, &d.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read rollout default: %w", err)
	}
	return &d, nil
}

// LockTenantRollout creates tenant if it does not exist yet (named after
// its id), locks its row for the rest of the transaction and returns its
// rollout.
func (t *Tx) LockTenantRollout(ctx context.Context, tenant string) (*TenantRollout, error) {
	if _, err := t.tx.Exec(ctx, `INSERT INTO tenants (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING`, tenant); err != nil {
		return nil, fmt.Errorf("store: ensure tenant %q: %w", tenant, err)
	}
	r, err := scanTenantRollout(t.tx.QueryRow(ctx, `SELECT id, COALESCE(rollout_state, ''), rollout_updated_at FROM tenants WHERE id = $1 FOR UPDATE`, tenant))
	if err != nil {
		return nil, fmt.Errorf("store: lock tenant rollout: %w", err)
	}
	return r, nil
}

// TenantRolloutForUpdate locks tenant's row and returns its rollout
// (ErrNotFound when there is no such tenant).
func (t *Tx) TenantRolloutForUpdate(ctx context.Context, tenant string) (*TenantRollout, error) {
	r, err := scanTenantRollout(t.tx.QueryRow(ctx, `SELECT id, COALESCE(rollout_state, ''), rollout_updated_at FROM tenants WHERE id = $1 FOR UPDATE`, tenant))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store: lock tenant rollout: %w", err)
	}
	return r, err
}

// SetTenantRollout stores tenant's explicit state ("" clears it: the
// tenant follows the default) and returns its rollout (ErrNotFound when
// there is no such tenant).
func (t *Tx) SetTenantRollout(ctx context.Context, tenant, state string) (*TenantRollout, error) {
	r, err := scanTenantRollout(t.tx.QueryRow(ctx, `UPDATE tenants SET rollout_state = NULLIF($2, ''), rollout_updated_at = now()
		WHERE id = $1 RETURNING id, COALESCE(rollout_state, ''), rollout_updated_at`, tenant, state))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store: set tenant rollout: %w", err)
	}
	return r, err
}

func scanTenantRollout(row pgx.Row) (*TenantRollout, error) {
	var r TenantRollout
	err := row.Scan(&r.TenantID, &r.State, &r.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// ListTenantRollouts lists the tenants after the tenant id after (a page's
// cursor; "" from the start), at most limit, by id, with their rollout.
// explicitOnly keeps the tenants with an explicit state.
func (s *Store) ListTenantRollouts(ctx context.Context, after string, limit int, explicitOnly bool) ([]TenantRollout, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, COALESCE(rollout_state, ''), rollout_updated_at FROM tenants
		WHERE id > $1 AND (NOT $3 OR rollout_state IS NOT NULL) ORDER BY id LIMIT $2`, after, limit, explicitOnly)
	if err != nil {
		return nil, fmt.Errorf("store: list tenant rollouts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TenantRollout, error) {
		r, err := scanTenantRollout(row)
		if err != nil {
			return TenantRollout{}, err
		}
		return *r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list tenant rollouts: %w", err)
	}
	return out, nil
}

// RepublishRollout returns the stored default (nil when none) and every
// tenant with an explicit state, read FOR SHARE like RepublishRules: a
// change being written concurrently commits before (and is read) or after.
func (t *Tx) RepublishRollout(ctx context.Context) (*RolloutDefault, []TenantRollout, error) {
	var d RolloutDefault
	def := &d
	err := t.tx.QueryRow(ctx, `SELECT state, updated_at FROM rollout_default FOR SHARE`).Scan(&d.State, &d.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		def = nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("store: rollout default: %w", err)
	}
	rows, err := t.tx.Query(ctx, `SELECT id, rollout_state, rollout_updated_at FROM tenants WHERE rollout_state IS NOT NULL ORDER BY id FOR SHARE`)
	if err != nil {
		return nil, nil, fmt.Errorf("store: tenant rollouts: %w", err)
	}
	tenants, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TenantRollout, error) {
		r, err := scanTenantRollout(row)
		if err != nil {
			return TenantRollout{}, err
		}
		return *r, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: tenant rollouts: %w", err)
	}
	return def, tenants, nil
}

// RolloutAuditTypes are the audit resource types of the rollout: the
// global default (resource id "*") and a tenant's state (the tenant's id).
const (
	AuditRolloutDefault = "rollout_default"
	AuditTenantRollout  = "tenant_rollout"
)

// ListRolloutAudit returns up to limit audit events of the rollout (every
// tenant's and the default's) older than beforeID (0: from the newest),
// newest first.
func (s *Store) ListRolloutAudit(ctx context.Context, beforeID int64, limit int) ([]*AuditEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, actor, action, resource_type, resource_id, before, after, request_id, created_at FROM audit_events
		WHERE resource_type IN ($1, $2) AND ($3 = 0 OR id < $3) ORDER BY id DESC LIMIT $4`,
		AuditRolloutDefault, AuditTenantRollout, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list rollout audit events: %w", err)
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
		return nil, fmt.Errorf("store: list rollout audit events: %w", err)
	}
	return out, nil
}
