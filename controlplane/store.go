package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when a row does not exist for the tenant.
var ErrNotFound = store.ErrNotFound

func insertEndpoint(ctx context.Context, tx pgx.Tx, e *store.EndpointRow) error {
	secret, _ := json.Marshal(e.Secret)
	headers, _ := json.Marshal(e.Headers)
	err := tx.QueryRow(ctx, `INSERT INTO webhook_endpoints
		(id, tenant_id, name, kind, target_url, target_url_sealed, secret, secret_hint, headers, is_active, created_by, rate_limit_per_second)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		RETURNING created_at, updated_at, version`,
		e.ID, e.TenantID, e.Name, e.Kind, e.TargetURL, store.SealedJSON(e.TargetURLSealed), secret, e.SecretHint, headers, e.IsActive, e.CreatedBy, e.RateLimitPerSecond,
	).Scan(&e.CreatedAt, &e.UpdatedAt, &e.Version)
	if err != nil {
		return fmt.Errorf("controlplane: insert endpoint: %w", err)
	}
	return nil
}

func getEndpoint(ctx context.Context, q pgx.Tx, tenant, id string) (*store.EndpointRow, error) {
	return store.ScanEndpoint(q.QueryRow(ctx, `SELECT `+store.EndpointCols+` FROM webhook_endpoints
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, tenant, id))
}

func insertRule(ctx context.Context, tx pgx.Tx, r *store.RuleRow) error {
	err := tx.QueryRow(ctx, `INSERT INTO alert_rules
		(id, tenant_id, name, description, event_type, condition, duration_threshold_ms, webhook_endpoint_id,
		 is_active, max_attempts, rate_limit_per_minute, cooldown_ms, severity, include_error_message, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		RETURNING created_at, updated_at, version`,
		r.ID, r.TenantID, r.Name, r.Description, r.EventType, r.Condition, r.DurationThresholdMS, r.WebhookEndpointID,
		r.IsActive, r.MaxAttempts, r.RateLimitPerMinute, r.CooldownMS, r.Severity, r.IncludeErrorMessage, r.CreatedBy,
	).Scan(&r.CreatedAt, &r.UpdatedAt, &r.Version)
	if err != nil {
		return fmt.Errorf("controlplane: insert rule: %w", err)
	}
	return nil
}

func getRule(ctx context.Context, q pgx.Tx, tenant, id string) (*store.RuleRow, error) {
	return store.ScanRule(q.QueryRow(ctx, `SELECT `+store.RuleCols+` FROM alert_rules
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, tenant, id))
}

// listPage runs a tenant-scoped list query after cur, returning limit+1 rows at most.
func listPage[T any](ctx context.Context, tx pgx.Tx, table, cols, tenant string, cur *store.Cursor, limit int, filters []filter,
	scan func(pgx.Row) (*T, error), pos func(*T) store.Cursor,
) ([]*T, string, error) {
	args := []any{tenant, limit + 1}
	where := ""
	if cur != nil {
		where = ` AND (created_at, id) > ($3, $4)`
		args = append(args, cur.CreatedAt, cur.ID)
	}
	for _, f := range filters {
		args = append(args, f.value)
		where += fmt.Sprintf(" AND %s = $%d", f.column, len(args))
	}
	rows, err := tx.Query(ctx, `SELECT `+cols+` FROM `+table+` WHERE tenant_id = $1 AND deleted_at IS NULL`+where+
		` ORDER BY created_at, id LIMIT $2`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("controlplane: list %s: %w", table, err)
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("controlplane: list %s: %w", table, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = pos(out[len(out)-1]).String()
	}
	return out, next, nil
}

// EnsureTenant creates the tenant if it does not exist.
func EnsureTenant(ctx context.Context, pool *pgxpool.Pool, id, name string) error {
	if _, err := pool.Exec(ctx, `INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, id, name); err != nil {
		return fmt.Errorf("controlplane: ensure tenant %q: %w", id, err)
	}
	return nil
}

// Roles of API keys.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// ErrKeyTaken is returned when a fixed API key is already registered for
// another tenant or role.
var ErrKeyTaken = errors.New("controlplane: this API key is already registered for another tenant or role")

// MintAPIKey stores key (hashed) for tenant, creating the tenant if needed,
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
	if role != RoleAdmin && role != RoleViewer {
		return "", fmt.Errorf("controlplane: role %q: want admin or viewer", role)
	}
	if len(key) < 20 {
		return "", errors.New("controlplane: an API key must be at least 20 characters")
	}
	if err := EnsureTenant(ctx, pool, tenant, tenant); err != nil {
		return "", err
	}
	var id string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var a apiKeyAudit
		err := tx.QueryRow(ctx, `INSERT INTO api_keys (id, tenant_id, name, role, key_hash, key_prefix) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (key_hash) DO NOTHING RETURNING id, name, role, created_at`,
			newID("key"), tenant, name, role, hashKey(key), keyPrefix(key)).Scan(&a.ID, &a.Name, &a.Role, &a.CreatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			var gotTenant, gotRole string
			var revoked *time.Time
			if err := tx.QueryRow(ctx, `SELECT id, tenant_id, role, revoked_at FROM api_keys WHERE key_hash = $1`, hashKey(key)).
				Scan(&id, &gotTenant, &gotRole, &revoked); err != nil {
				return fmt.Errorf("controlplane: look up api key: %w", err)
			}
			if gotTenant != tenant || gotRole != role || revoked != nil {
				return ErrKeyTaken
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("controlplane: insert api key: %w", err)
		}
		id = a.ID
		if !audit {
			return nil
		}
		return store.Of(tx).InsertAudit(ctx, tenant, actorCLI, "api_key.create", "api_key", a.ID, nil, a, "")
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// principal is who an API key speaks for.
type principal struct {
	KeyID, KeyName, TenantID, Role string
}

func (p *principal) actor() string { return "key:" + p.KeyID + " (" + p.KeyName + ")" }

func lookupKey(ctx context.Context, pool *pgxpool.Pool, key string) (*principal, error) {
	var p principal
	// last_used_at is refreshed at most once a minute: a read-only request
	// does not write (and serialise on the key's row) every time.
	err := pool.QueryRow(ctx, `WITH k AS (
			SELECT id, name, tenant_id, role, last_used_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL
		), touched AS (
			UPDATE api_keys SET last_used_at = now() FROM k
			WHERE api_keys.id = k.id AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')
		)
		SELECT id, name, tenant_id, role FROM k`, hashKey(key)).Scan(&p.KeyID, &p.KeyName, &p.TenantID, &p.Role)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("controlplane: look up api key: %w", err)
	}
	return &p, nil
}

// getEndpointForUpdate is getEndpoint with the row locked until the end of
// the transaction, so a version check and the update that follows it are one.
func getEndpointForUpdate(ctx context.Context, q pgx.Tx, tenant, id string) (*store.EndpointRow, error) {
	return store.ScanEndpoint(q.QueryRow(ctx, `SELECT `+store.EndpointCols+` FROM webhook_endpoints
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE`, tenant, id))
}

// updateEndpoint writes e's editable columns and bumps its version.
func updateEndpoint(ctx context.Context, tx pgx.Tx, e *store.EndpointRow) error {
	secret, _ := json.Marshal(e.Secret)
	headers, _ := json.Marshal(e.Headers)
	err := tx.QueryRow(ctx, `UPDATE webhook_endpoints SET
		name = $3, target_url = $4, secret = $5, secret_hint = $6, previous_secret = $7, previous_secret_expires_at = $8,
		headers = $9, is_active = $10, disabled_reason = $11, target_url_sealed = $12, rate_limit_per_second = $13,
		updated_at = now(), version = version + 1
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
		RETURNING updated_at, version`,
		e.TenantID, e.ID, e.Name, e.TargetURL, secret, e.SecretHint, store.SealedJSON(e.PreviousSecret), e.PreviousSecretExpiresAt,
		headers, e.IsActive, e.DisabledReason, store.SealedJSON(e.TargetURLSealed), e.RateLimitPerSecond,
	).Scan(&e.UpdatedAt, &e.Version)
	if err != nil {
		return fmt.Errorf("controlplane: update endpoint: %w", err)
	}
	return nil
}

func getRuleForUpdate(ctx context.Context, q pgx.Tx, tenant, id string) (*store.RuleRow, error) {
	return store.ScanRule(q.QueryRow(ctx, `SELECT `+store.RuleCols+` FROM alert_rules
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE`, tenant, id))
}

// updateRule writes r's editable columns and bumps its version.
func updateRule(ctx context.Context, tx pgx.Tx, r *store.RuleRow) error {
	err := tx.QueryRow(ctx, `UPDATE alert_rules SET
		name = $3, description = $4, event_type = $5, condition = $6, duration_threshold_ms = $7, webhook_endpoint_id = $8,
		is_active = $9, disabled_reason = $10, max_attempts = $11, rate_limit_per_minute = $12, cooldown_ms = $13,
		severity = $14, include_error_message = $15, updated_at = now(), version = version + 1
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
		RETURNING updated_at, version`,
		r.TenantID, r.ID, r.Name, r.Description, r.EventType, r.Condition, r.DurationThresholdMS, r.WebhookEndpointID,
		r.IsActive, r.DisabledReason, r.MaxAttempts, r.RateLimitPerMinute, r.CooldownMS, r.Severity, r.IncludeErrorMessage,
	).Scan(&r.UpdatedAt, &r.Version)
	if err != nil {
		return fmt.Errorf("controlplane: update rule: %w", err)
	}
	return nil
}

// softDelete marks a row of table deleted and inactive: hidden from the API's
// lists and gets, kept for audit and history.
func softDelete(ctx context.Context, tx pgx.Tx, table, tenant, id string) error {
	tag, err := tx.Exec(ctx, `UPDATE `+table+` SET deleted_at = now(), is_active = false, updated_at = now(), version = version + 1
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, tenant, id)
	if err != nil {
		return fmt.Errorf("controlplane: delete from %s: %w", table, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// filter is one extra condition of a list query: column = value.
type filter struct {
	column string
	value  any
}

// getEndpointForShare is getEndpoint with the row share-locked until the
// end of the transaction: a rule that is created on it or reactivated
// cannot race with its deletion (which locks it FOR UPDATE and then
// deactivates the rules it sees).
func getEndpointForShare(ctx context.Context, q pgx.Tx, tenant, id string) (*store.EndpointRow, error) {
	return store.ScanEndpoint(q.QueryRow(ctx, `SELECT `+store.EndpointCols+` FROM webhook_endpoints
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL FOR SHARE`, tenant, id))
}
