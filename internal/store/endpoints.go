package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The webhook endpoints of a tenant transaction: every statement here is
// scoped to the transaction's tenant (Tx.Tenant), on top of row-level
// security. A deleted endpoint (deleted_at set) is invisible to them.

// InsertEndpoint stores a new endpoint and fills in its created_at,
// updated_at and version.
func (t *Tx) InsertEndpoint(ctx context.Context, e *EndpointRow) error {
	secret, _ := json.Marshal(e.Secret)
	headers, _ := json.Marshal(e.Headers)
	err := t.tx.QueryRow(ctx, `INSERT INTO webhook_endpoints
		(id, tenant_id, name, kind, target_url, target_url_sealed, secret, secret_hint, headers, is_active, created_by, rate_limit_per_second)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		RETURNING created_at, updated_at, version`,
		e.ID, e.TenantID, e.Name, e.Kind, e.TargetURL, SealedJSON(e.TargetURLSealed), secret, e.SecretHint, headers, e.IsActive, e.CreatedBy, e.RateLimitPerSecond,
	).Scan(&e.CreatedAt, &e.UpdatedAt, &e.Version)
	if err != nil {
		return fmt.Errorf("store: insert endpoint: %w", err)
	}
	return nil
}

// GetEndpoint reads endpoint id (ErrNotFound when the tenant has none).
func (t *Tx) GetEndpoint(ctx context.Context, id string) (*EndpointRow, error) {
	return t.getEndpoint(ctx, id, "")
}

// GetEndpointForUpdate is GetEndpoint with the row locked until the end of
// the transaction, so a version check and the update that follows it are one.
func (t *Tx) GetEndpointForUpdate(ctx context.Context, id string) (*EndpointRow, error) {
	return t.getEndpoint(ctx, id, " FOR UPDATE")
}

// GetEndpointForShare is GetEndpoint with the row share-locked until the
// end of the transaction: a rule that is created on it or reactivated
// cannot race with its deletion (which locks it FOR UPDATE and then
// deactivates the rules it sees).
func (t *Tx) GetEndpointForShare(ctx context.Context, id string) (*EndpointRow, error) {
	return t.getEndpoint(ctx, id, " FOR SHARE")
}

func (t *Tx) getEndpoint(ctx context.Context, id, lock string) (*EndpointRow, error) {
	return ScanEndpoint(t.tx.QueryRow(ctx, `SELECT `+EndpointCols+` FROM webhook_endpoints
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`+lock, t.tenant, id))
}

// UpdateEndpoint writes e's editable columns and bumps its version (and
// e's UpdatedAt and Version with it).
func (t *Tx) UpdateEndpoint(ctx context.Context, e *EndpointRow) error {
	secret, _ := json.Marshal(e.Secret)
	headers, _ := json.Marshal(e.Headers)
	err := t.tx.QueryRow(ctx, `UPDATE webhook_endpoints SET
		name = $3, target_url = $4, secret = $5, secret_hint = $6, previous_secret = $7, previous_secret_expires_at = $8,
		headers = $9, is_active = $10, disabled_reason = $11, target_url_sealed = $12, rate_limit_per_second = $13,
		updated_at = now(), version = version + 1
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
		RETURNING updated_at, version`,
		e.TenantID, e.ID, e.Name, e.TargetURL, secret, e.SecretHint, SealedJSON(e.PreviousSecret), e.PreviousSecretExpiresAt,
		headers, e.IsActive, e.DisabledReason, SealedJSON(e.TargetURLSealed), e.RateLimitPerSecond,
	).Scan(&e.UpdatedAt, &e.Version)
	if err != nil {
		return fmt.Errorf("store: update endpoint: %w", err)
	}
	return nil
}

// DeleteEndpoint soft-deletes endpoint id (see softDelete).
func (t *Tx) DeleteEndpoint(ctx context.Context, id string) error {
	return t.softDelete(ctx, "webhook_endpoints", id)
}

// EndpointFilter narrows ListEndpoints; zero members do not filter.
type EndpointFilter struct {
	IsActive *bool
}

// ListEndpoints returns up to limit endpoints after cur (nil: from the
// start) in creation order, and the cursor of the next page ("" on the
// last).
func (t *Tx) ListEndpoints(ctx context.Context, cur *Cursor, limit int, f EndpointFilter) ([]*EndpointRow, string, error) {
	var filters []filter
	if f.IsActive != nil {
		filters = append(filters, filter{"is_active", *f.IsActive})
	}
	return listPage(ctx, t, "webhook_endpoints", EndpointCols, cur, limit, filters, ScanEndpoint,
		func(e *EndpointRow) Cursor { return Cursor{CreatedAt: e.CreatedAt, ID: e.ID} })
}

// EndpointSecret is what the dev-mode demo receiver needs of an endpoint
// to verify what it receives: where it sends and its signing secret.
type EndpointSecret struct {
	TenantID, ID, TargetURL string
	Secret                  schemas.Sealed
}

// EndpointSecrets returns the live endpoints of every tenant with their
// sealed secrets, for the dev-mode demo receiver (never for a request).
// An endpoint whose secret column does not decode is left out: it cannot
// verify anything.
func (s *Store) EndpointSecrets(ctx context.Context) ([]EndpointSecret, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, id, target_url, secret FROM webhook_endpoints WHERE deleted_at IS NULL`)
	if err != nil {
		return nil, fmt.Errorf("store: endpoint secrets: %w", err)
	}
	defer rows.Close()
	var out []EndpointSecret
	for rows.Next() {
		var e EndpointSecret
		var sealed []byte
		if err := rows.Scan(&e.TenantID, &e.ID, &e.TargetURL, &sealed); err != nil {
			return nil, fmt.Errorf("store: endpoint secrets: %w", err)
		}
		if json.Unmarshal(sealed, &e.Secret) != nil {
			continue
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: endpoint secrets: %w", err)
	}
	return out, nil
}
