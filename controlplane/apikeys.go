package controlplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// Roles of API keys. An admin, viewer or ingest key belongs to a tenant;
// an operator key belongs to none and serves only the operator API (the
// rollout), which no tenant key may use: tenants must not be able to
// switch themselves on. An ingest key serves only POST /v1/events (a
// workflow engine sending its events); an admin key may send events too.
const (
	RoleAdmin    = "admin"
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleIngest   = "ingest"
)

// ErrKeyTaken is returned when a fixed API key is already registered for
// another tenant or role.
var ErrKeyTaken = errors.New("controlplane: this API key is already registered for another tenant or role")

// apiKeyAudit is what the audit trail keeps of a key: never the key, its
// hash or its prefix.
type apiKeyAudit struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

func auditOfKey(k *store.APIKey) apiKeyAudit {
	return apiKeyAudit{ID: k.ID, Name: k.Name, Role: k.Role, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}

// actorCLI is the audit actor of changes made with the exo-alerts command.
const actorCLI = "cli"

// MintAPIKey stores key (hashed) for tenant, creating the tenant if needed
// (an operator key has no tenant: tenant must be ""),
// with its api_key.create audit row (actor cli) in the same transaction, and
// returns the key's id: what `exo-alerts apikey create` and dev mode use.
// Pass NewAPIKey() unless a fixed key is wanted: a fixed key already
// registered with the same tenant and role returns its id (dev mode
// restarts), with another tenant or role ErrKeyTaken.
func MintAPIKey(ctx context.Context, pool *pgxpool.Pool, tenant, name, role, key string) (string, error) {
	return createAPIKey(ctx, pool, tenant, name, role, key, true)
}

// CreateAPIKey is MintAPIKey without the audit row, for test fixtures whose
// audit trail must hold only what the test does.
func CreateAPIKey(ctx context.Context, pool *pgxpool.Pool, tenant, name, role, key string) (string, error) {
	return createAPIKey(ctx, pool, tenant, name, role, key, false)
}

func createAPIKey(ctx context.Context, pool *pgxpool.Pool, tenant, name, role, key string, audit bool) (string, error) {
	switch {
	case role != RoleAdmin && role != RoleViewer && role != RoleOperator && role != RoleIngest:
		return "", fmt.Errorf("controlplane: role %q: want admin, viewer, ingest or operator", role)
	case role == RoleOperator && tenant != "":
		return "", errors.New("controlplane: an operator key belongs to no tenant")
	case role != RoleOperator && tenant == "":
		return "", fmt.Errorf("controlplane: a key of role %s needs a tenant", role)
	}
	if len(key) < 20 {
		return "", errors.New("controlplane: an API key must be at least 20 characters")
	}
	db := store.New(pool, "")
	if tenant != "" {
		if err := db.EnsureTenant(ctx, tenant, tenant); err != nil {
			return "", err
		}
	}
	var id string
	err := db.System(ctx, func(tx *store.Tx) error {
		k := &store.APIKey{ID: newID("key"), TenantID: tenant, Name: name, Role: role, Prefix: keyPrefix(key)}
		inserted, err := tx.InsertAPIKey(ctx, k, hashKey(key))
		if err != nil {
			return err
		}
		if !inserted {
			got, err := tx.APIKeyByHash(ctx, hashKey(key))
			if err != nil {
				return fmt.Errorf("controlplane: look up api key: %w", err)
			}
			id = got.ID
			if got.TenantID != tenant || got.Role != role || got.RevokedAt != nil {
				return ErrKeyTaken
			}
			return nil
		}
		id = k.ID
		if !audit {
			return nil
		}
		return tx.InsertAudit(ctx, tenant, actorCLI, "api_key.create", "api_key", k.ID, nil, auditOfKey(k), "")
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// RevokeAPIKey revokes the key id: the API refuses it from the next request
// on. It returns ErrNotFound when there is no such key or it is already
// revoked. The revocation is audited (actor cli) in the same transaction.
func RevokeAPIKey(ctx context.Context, pool *pgxpool.Pool, id string) error {
	return store.New(pool, "").System(ctx, func(tx *store.Tx) error {
		k, err := tx.RevokeAPIKey(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("controlplane: revoke api key %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		after := auditOfKey(k)
		before := after
		before.RevokedAt = nil
		return tx.InsertAudit(ctx, k.TenantID, actorCLI, "api_key.revoke", "api_key", k.ID, before, after, "")
	})
}

// principal is who an API key speaks for ("" TenantID: an operator).
type principal struct {
	KeyID, KeyName, TenantID, Role string
	// rolloutState and rolloutDefault are the rollout of the tenant, read
	// with the key (store.APIKey).
	rolloutState, rolloutDefault string
}

func (p *principal) actor() string { return "key:" + p.KeyID + " (" + p.KeyName + ")" }

// lookupKey returns who key speaks for (ErrNotFound: no such key, or
// revoked).
func (s *Server) lookupKey(ctx context.Context, key string) (*principal, error) {
	k, err := s.db.LookupAPIKey(ctx, hashKey(key))
	if err != nil {
		return nil, err
	}
	return &principal{KeyID: k.ID, KeyName: k.Name, TenantID: k.TenantID, Role: k.Role,
		rolloutState: k.RolloutState, rolloutDefault: k.RolloutDefault}, nil
}
