// Package store owns every SQL statement of Exosphere Alerts: the control
// plane's handlers, the outbox relay, the recorder, the operator commands
// and the dev-mode receiver call it and write no SQL of their own.
//
// Two kinds of transaction exist. A tenant's (Store.InTenant) runs as the
// application role with exo.tenant_id set, so Postgres row-level security
// shows and accepts only that tenant's rows whatever a query says: every
// API request runs in one. The system's (Store.System) runs as the
// connecting role (the tables' owner), for work across tenants: the relay,
// the recorder, retention, the operator commands. Never for a request.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when a row does not exist (for the tenant).
var ErrNotFound = errors.New("store: not found")

// Store is the database of one deployment.
type Store struct {
	pool    *pgxpool.Pool
	appRole string
}

// New returns the store over pool. appRole is the role tenant transactions
// run as ("" or "off": the connecting role, with row-level security only
// if that role is subject to it).
func New(pool *pgxpool.Pool, appRole string) *Store {
	if appRole == "off" {
		appRole = ""
	}
	return &Store{pool: pool, appRole: appRole}
}

// Pool is the connection pool, for what is not SQL of the schema: pings,
// LISTEN connections, closing.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Tx is a transaction of the store. Its methods are the statements; a
// tenant transaction's methods see only its tenant's rows.
type Tx struct {
	tx     pgx.Tx
	tenant string // "" in a system transaction
}

// Tenant is the tenant of a tenant transaction ("" in a system one).
func (t *Tx) Tenant() string { return t.tenant }

// InTenant runs fn in a transaction of tenant and commits it if fn returns
// nil. When wantXID is true and the transaction wrote, it returns the
// transaction's id (pg_current_xact_id) for Unpublished.
func (s *Store) InTenant(ctx context.Context, tenant string, wantXID bool, fn func(*Tx) error) (xid string, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('exo.tenant_id', $1, true), CASE WHEN $2 <> '' THEN set_config('role', $2, true) END`, tenant, s.appRole); err != nil {
			return fmt.Errorf("store: enter tenant %q: %w", tenant, err)
		}
		if err := fn(&Tx{tx: tx, tenant: tenant}); err != nil {
			return err
		}
		if !wantXID {
			return nil
		}
		var id *string
		if err := tx.QueryRow(ctx, `SELECT pg_current_xact_id_if_assigned()::text`).Scan(&id); err != nil {
			return err
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

// System runs fn in a transaction as the connecting role, across tenants.
func (s *Store) System(ctx context.Context, fn func(*Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(&Tx{tx: tx}) })
}
