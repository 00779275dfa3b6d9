package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/exospherehost/exo-alerts/schemas"
)

// SealedEndpoint is the encrypted columns of an endpoint, deleted or not:
// what re-encryption under a new key reads and writes.
type SealedEndpoint struct {
	ID, TenantID   string
	Secret         schemas.Sealed
	TargetURL      *schemas.Sealed // the whole target URL when it carries a credential
	PreviousSecret *schemas.Sealed
	Headers        map[string]schemas.Sealed
	Version        int64
	Deleted        bool
	// Err is set by SealedEndpoints, with the values left empty, when the
	// row's columns do not decode.
	Err error
}

func decodeSealed(v *SealedEndpoint, targetURL, secret, previous, headers []byte) error {
	if targetURL != nil {
		if err := json.Unmarshal(targetURL, &v.TargetURL); err != nil {
			return fmt.Errorf("target_url_sealed column: %w", err)
		}
	}
	if err := json.Unmarshal(secret, &v.Secret); err != nil {
		return fmt.Errorf("secret column: %w", err)
	}
	if previous != nil {
		if err := json.Unmarshal(previous, &v.PreviousSecret); err != nil {
			return fmt.Errorf("previous_secret column: %w", err)
		}
	}
	if err := json.Unmarshal(headers, &v.Headers); err != nil {
		return fmt.Errorf("headers column: %w", err)
	}
	return nil
}

// SealedEndpoints returns the encrypted columns of up to limit endpoints
// of every tenant with an id after `after`, in id order, deleted ones
// included. A row whose columns do not decode comes with Err set. Only ID
// and the values are read: Version, TenantID and Deleted are left empty.
func (s *Store) SealedEndpoints(ctx context.Context, after string, limit int) ([]SealedEndpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, target_url_sealed, secret, previous_secret, headers FROM webhook_endpoints
		WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: sealed endpoints: %w", err)
	}
	defer rows.Close()
	var out []SealedEndpoint
	for rows.Next() {
		var v SealedEndpoint
		var targetURL, secret, previous, headers []byte
		if err := rows.Scan(&v.ID, &targetURL, &secret, &previous, &headers); err != nil {
			return nil, fmt.Errorf("store: sealed endpoints: %w", err)
		}
		if err := decodeSealed(&v, targetURL, secret, previous, headers); err != nil {
			v = SealedEndpoint{ID: v.ID, Err: err}
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: sealed endpoints: %w", err)
	}
	return out, nil
}

// LockSealedEndpoint reads the encrypted columns of endpoint id, deleted
// or not, and locks its row until the end of the transaction (ErrNotFound
// when there is no such endpoint). It runs in a system transaction.
func (t *Tx) LockSealedEndpoint(ctx context.Context, id string) (*SealedEndpoint, error) {
	v := SealedEndpoint{ID: id}
	var targetURL, secret, previous, headers []byte
	err := t.tx.QueryRow(ctx, `SELECT tenant_id, target_url_sealed, secret, previous_secret, headers, version, deleted_at IS NOT NULL
		FROM webhook_endpoints WHERE id = $1 FOR UPDATE`, id).Scan(&v.TenantID, &targetURL, &secret, &previous, &headers, &v.Version, &v.Deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: read sealed endpoint: %w", err)
	}
	if err := decodeSealed(&v, targetURL, secret, previous, headers); err != nil {
		return nil, fmt.Errorf("store: sealed endpoint %s: %w", id, err)
	}
	return &v, nil
}

// UpdateSealedEndpoint writes v's encrypted columns, bumps the endpoint's
// version and returns the endpoint as it is now (for its topic snapshot).
// It runs in a system transaction.
func (t *Tx) UpdateSealedEndpoint(ctx context.Context, v *SealedEndpoint) (*EndpointRow, error) {
	secret, err := json.Marshal(v.Secret)
	if err != nil {
		return nil, fmt.Errorf("store: secret: %w", err)
	}
	headers, err := json.Marshal(v.Headers)
	if err != nil {
		return nil, fmt.Errorf("store: headers: %w", err)
	}
	e, err := ScanEndpoint(t.tx.QueryRow(ctx, `UPDATE webhook_endpoints SET secret = $2, previous_secret = $3, headers = $4, target_url_sealed = $5,
		version = version + 1, updated_at = now() WHERE id = $1 RETURNING `+EndpointCols,
		v.ID, secret, SealedJSON(v.PreviousSecret), headers, SealedJSON(v.TargetURL)))
	if err != nil {
		return nil, fmt.Errorf("store: update sealed endpoint: %w", err)
	}
	return e, nil
}
