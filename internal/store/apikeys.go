package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// APIKey is an api_keys row, without its hash: what operators see of a
// key, never the key itself.
type APIKey struct {
	// TenantID is "" for an operator key (role operator), which belongs to
	// no tenant.
	ID, TenantID, Name, Role string
	// Prefix is the first characters of the key (exo_ and six more).
	Prefix     string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
	// RolloutState and RolloutDefault are, as LookupAPIKey read them with
	// the key, the explicit rollout state of the key's tenant and the
	// stored global default ("": none); other statements leave them "".
	RolloutState, RolloutDefault string
}

const apiKeyCols = //nolint:gosec // column names, not a credential
`id, tenant_id, name, role, key_prefix, created_at, last_used_at, revoked_at`

func scanAPIKey(row pgx.Row) (*APIKey, error) {
	return scanAPIKeyWith(row)
}

// scanAPIKeyWith reads a row of apiKeyCols followed by the columns extra
// point at.
func scanAPIKeyWith(row pgx.Row, extra ...any) (*APIKey, error) {
	var k APIKey
	var tenant *string
	err := row.Scan(append([]any{&k.ID, &tenant, &k.Name, &k.Role, &k.Prefix, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt}, extra...)...)
	if tenant != nil {
		k.TenantID = *tenant
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan api key: %w", err)
	}
	return &k, nil
}

// LookupAPIKey returns the unrevoked key whose hash is hash (ErrNotFound
// when there is none) and notes its use. LastUsedAt is the use before
// this one: last_used_at is refreshed at most once a minute, so a
// read-only request does not write (and serialise on the key's row) every
// time.
//
// With the key it reads the rollout of the key's tenant (its explicit
// state and the global default), so the API's rollout check costs no
// second round trip and follows every change at once.
func (s *Store) LookupAPIKey(ctx context.Context, hash []byte) (*APIKey, error) {
	var state, def string
	k, err := scanAPIKeyWith(s.pool.QueryRow(ctx, `WITH k AS (
			SELECT `+apiKeyCols+` FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL
		), touched AS (
			UPDATE api_keys SET last_used_at = now() FROM k
			WHERE api_keys.id = k.id AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')
		)
		SELECT k.*, COALESCE(t.rollout_state, ''), COALESCE(d.state, '')
		FROM k LEFT JOIN tenants t ON t.id = k.tenant_id LEFT JOIN rollout_default d ON true`, hash), &state, &def)
	if k != nil {
		k.RolloutState, k.RolloutDefault = state, def
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store: look up api key: %w", err)
	}
	return k, err
}

// InsertAPIKey stores k under hash and fills in k.CreatedAt. It reports
// false, writing nothing, when a key with that hash exists already.
func (t *Tx) InsertAPIKey(ctx context.Context, k *APIKey, hash []byte) (bool, error) {
	err := t.tx.QueryRow(ctx, `INSERT INTO api_keys (id, tenant_id, name, role, key_hash, key_prefix) VALUES ($1, NULLIF($2, ''), $3, $4, $5, $6)
		ON CONFLICT (key_hash) DO NOTHING RETURNING created_at`,
		k.ID, k.TenantID, k.Name, k.Role, hash, k.Prefix).Scan(&k.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: insert api key: %w", err)
	}
	return true, nil
}

// APIKeyByHash returns the key whose hash is hash, revoked or not
// (ErrNotFound when there is none).
func (t *Tx) APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error) {
	k, err := scanAPIKey(t.tx.QueryRow(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE key_hash = $1`, hash))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store: look up api key: %w", err)
	}
	return k, err
}

// RevokeAPIKey revokes key id and returns it as revoked (ErrNotFound when
// there is no such key or it is revoked already).
func (t *Tx) RevokeAPIKey(ctx context.Context, id string) (*APIKey, error) {
	k, err := scanAPIKey(t.tx.QueryRow(ctx, `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL
		RETURNING `+apiKeyCols, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store: revoke api key: %w", err)
	}
	return k, err
}

// ListAPIKeys lists the keys of tenant (of every tenant, and the operator
// keys, when tenant is ""), revoked ones included, by tenant (operator keys
// last) and creation time.
func (s *Store) ListAPIKeys(ctx context.Context, tenant string) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyCols+`
		FROM api_keys WHERE $1 = '' OR tenant_id = $1 ORDER BY tenant_id, created_at, id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("store: list api keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (APIKey, error) {
		k, err := scanAPIKey(row)
		if err != nil {
			return APIKey{}, err
		}
		return *k, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list api keys: %w", err)
	}
	return keys, nil
}
