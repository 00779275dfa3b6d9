package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// APIKey is an API key as operators see it: never the key or its hash, only
// the prefix that identifies it.
type APIKey struct {
	ID, TenantID, Name, Role string
	// Prefix is the first characters of the key (exo_ and six more).
	Prefix     string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// apiKeyAudit is what the audit trail keeps of a key: never the key, its
// hash or its prefix.
type apiKeyAudit struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// actorCLI is the audit actor of changes made with the exo-alerts command.
const actorCLI = "cli"

// ListAPIKeys lists the keys of tenant (of every tenant when tenant is ""),
// revoked ones included, by tenant and creation time.
func ListAPIKeys(ctx context.Context, pool *pgxpool.Pool, tenant string) ([]APIKey, error) {
	rows, err := pool.Query(ctx, `SELECT id, tenant_id, name, role, key_prefix, created_at, last_used_at, revoked_at
		FROM api_keys WHERE $1 = '' OR tenant_id = $1 ORDER BY tenant_id, created_at, id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("controlplane: list api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (APIKey, error) {
		var k APIKey
		err := row.Scan(&k.ID, &k.TenantID, &k.Name, &k.Role, &k.Prefix, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("controlplane: list api keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey revokes the key id: the API refuses it from the next request
// on. It returns ErrNotFound when there is no such key or it is already
// revoked. The revocation is audited (actor cli) in the same transaction.
func RevokeAPIKey(ctx context.Context, pool *pgxpool.Pool, id string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var tenant string
		var a apiKeyAudit
		err := tx.QueryRow(ctx, `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL
			RETURNING tenant_id, id, name, role, created_at, revoked_at`, id).
			Scan(&tenant, &a.ID, &a.Name, &a.Role, &a.CreatedAt, &a.RevokedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("controlplane: revoke api key %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("controlplane: revoke api key: %w", err)
		}
		before := a
		before.RevokedAt = nil
		return store.Of(tx).InsertAudit(ctx, tenant, actorCLI, "api_key.revoke", "api_key", a.ID, before, a, "")
	})
}
