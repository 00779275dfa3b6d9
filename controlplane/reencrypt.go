package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// reencryptBatch is how many endpoints Reencrypt reads at a time.
const reencryptBatch = 200

// actorSystem is the audit actor of the platform's own changes.
const actorSystem = "system"

// Reencrypt re-seals, under the ring's primary (newest) key, every endpoint
// secret, previous secret and header value sealed under another key, so
// the old key can then be removed from EXO_KEYRING. Each endpoint is
// updated in its own transaction that bumps its version, writes an audit row
// (actor system, no secrets) and, for a live endpoint, an outbox row with its
// new snapshot: the dispatcher opens the snapshots of the webhook-endpoints
// topic, which must not keep ciphertexts under the old key. Deleted endpoints
// are re-sealed too (their topic entry is a tombstone and stays one).
//
// It returns how many endpoints it changed; a second run changes none. A
// value that does not open (a key missing from the ring) fails that
// endpoint only; the others are still done and every failure is returned.
func Reencrypt(ctx context.Context, pool *pgxpool.Pool, ring *keyring.Ring, topics kafka.Topics) (int, error) {
	if ring == nil {
		return 0, errors.New("controlplane: reencrypt: no key ring")
	}
	run := reencrypter{pool: pool, ring: ring, topics: topics, requestID: newID("reencrypt")}
	n := 0
	var errs []error
	after := ""
	for {
		ids, last, err := run.staleBatch(ctx, after)
		if err != nil {
			return n, errors.Join(append(errs, err)...)
		}
		for _, id := range ids {
			changed, err := run.one(ctx, id)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if changed {
				n++
			}
		}
		if last == "" {
			return n, errors.Join(errs...)
		}
		after = last
	}
}

type reencrypter struct {
	pool      *pgxpool.Pool
	ring      *keyring.Ring
	topics    kafka.Topics
	requestID string
}

// sealedValues are the encrypted columns of an endpoint.
type sealedValues struct {
	Secret         schemas.Sealed
	TargetURL      *schemas.Sealed
	PreviousSecret *schemas.Sealed
	Headers        map[string]schemas.Sealed
}

func scanSealed(targetURL, secret, previous, headers []byte) (*sealedValues, error) {
	var v sealedValues
	if targetURL != nil {
		if err := json.Unmarshal(targetURL, &v.TargetURL); err != nil {
			return nil, fmt.Errorf("target_url_sealed column: %w", err)
		}
	}
	if err := json.Unmarshal(secret, &v.Secret); err != nil {
		return nil, fmt.Errorf("secret column: %w", err)
	}
	if previous != nil {
		if err := json.Unmarshal(previous, &v.PreviousSecret); err != nil {
			return nil, fmt.Errorf("previous_secret column: %w", err)
		}
	}
	if err := json.Unmarshal(headers, &v.Headers); err != nil {
		return nil, fmt.Errorf("headers column: %w", err)
	}
	return &v, nil
}

// staleKeys returns the ids of the keys other than primary the values are
// sealed under, sorted.
func (v *sealedValues) staleKeys(primary string) []string {
	var ids []string
	add := func(s schemas.Sealed) {
		if s.KeyID != primary && !slices.Contains(ids, s.KeyID) {
			ids = append(ids, s.KeyID)
		}
	}
	add(v.Secret)
	if v.TargetURL != nil {
		add(*v.TargetURL)
	}
	if v.PreviousSecret != nil {
		add(*v.PreviousSecret)
	}
	for _, h := range v.Headers {
		add(h)
	}
	slices.Sort(ids)
	return ids
}

// staleBatch returns the ids after `after` (in id order) of endpoints with a
// value not under the primary key, and the last id read ("" at the end).
func (r *reencrypter) staleBatch(ctx context.Context, after string) (ids []string, last string, err error) {
	rows, err := r.pool.Query(ctx, `SELECT id, target_url_sealed, secret, previous_secret, headers FROM webhook_endpoints
		WHERE id > $1 ORDER BY id LIMIT $2`, after, reencryptBatch)
	if err != nil {
		return nil, "", fmt.Errorf("controlplane: reencrypt: list endpoints: %w", err)
	}
	defer rows.Close()
	read := 0
	for rows.Next() {
		var id string
		var targetURL, secret, previous, headers []byte
		if err := rows.Scan(&id, &targetURL, &secret, &previous, &headers); err != nil {
			return nil, "", fmt.Errorf("controlplane: reencrypt: list endpoints: %w", err)
		}
		read++
		last = id
		v, err := scanSealed(targetURL, secret, previous, headers)
		if err != nil || len(v.staleKeys(r.ring.PrimaryID())) > 0 {
			ids = append(ids, id) // one() reports an unreadable row
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("controlplane: reencrypt: list endpoints: %w", err)
	}
	if read < reencryptBatch {
		last = ""
	}
	return ids, last, nil
}

// one re-seals the stale values of endpoint id in a transaction of its own,
// reporting whether it changed anything.
func (r *reencrypter) one(ctx context.Context, id string) (changed bool, err error) {
	primary := r.ring.PrimaryID()
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		var tenant string
		var targetURL, secret, previous, headers []byte
		var version int64
		var deletedAt *time.Time
		err := tx.QueryRow(ctx, `SELECT tenant_id, target_url_sealed, secret, previous_secret, headers, version, deleted_at
			FROM webhook_endpoints WHERE id = $1 FOR UPDATE`, id).Scan(&tenant, &targetURL, &secret, &previous, &headers, &version, &deletedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		v, err := scanSealed(targetURL, secret, previous, headers)
		if err != nil {
			return err
		}
		stale := v.staleKeys(primary)
		if len(stale) == 0 {
			return nil // done meanwhile
		}
		aad := schemas.SecretAAD(tenant, id)
		reseal := func(s schemas.Sealed, aad, what string) (schemas.Sealed, error) {
			if s.KeyID == primary {
				return s, nil
			}
			pt, err := r.ring.Open(s, aad)
			if err != nil {
				return s, fmt.Errorf("%s: %w", what, err)
			}
			return r.ring.Seal(pt, aad), nil
		}
		if v.Secret, err = reseal(v.Secret, aad, "secret"); err != nil {
			return err
		}
		if v.PreviousSecret != nil {
			p, err := reseal(*v.PreviousSecret, aad, "previous secret")
			if err != nil {
				return err
			}
			v.PreviousSecret = &p
			if previous, err = json.Marshal(p); err != nil {
				return fmt.Errorf("previous secret: %w", err)
			}
		}
		if v.TargetURL != nil {
			u, err := reseal(*v.TargetURL, schemas.TargetURLAAD(tenant, id), "target url")
			if err != nil {
				return err
			}
			if targetURL, err = json.Marshal(u); err != nil {
				return fmt.Errorf("target url: %w", err)
			}
		}
		for name, h := range v.Headers {
			if v.Headers[name], err = reseal(h, schemas.HeaderAAD(tenant, id, name), "header "+name); err != nil {
				return err
			}
		}
		if secret, err = json.Marshal(v.Secret); err != nil {
			return fmt.Errorf("secret: %w", err)
		}
		if headers, err = json.Marshal(v.Headers); err != nil {
			return fmt.Errorf("headers: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET secret = $2, previous_secret = $3, headers = $4, target_url_sealed = $5,
			version = version + 1, updated_at = now() WHERE id = $1`, id, secret, previous, headers, targetURL); err != nil {
			return fmt.Errorf("update: %w", err)
		}
		before := map[string]any{"version": version, "key_ids": stale}
		after := map[string]any{"version": version + 1, "key_ids": []string{primary}}
		if err := store.Of(tx).InsertAudit(ctx, tenant, actorSystem, "webhook.reencrypt", "webhook", id, before, after, r.requestID); err != nil {
			return err
		}
		changed = true
		if deletedAt != nil {
			return nil // its topic entry is a tombstone; a snapshot would revive it
		}
		e, err := getEndpoint(ctx, tx, tenant, id)
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		snap, err := json.Marshal(e.Record())
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		return store.Of(tx).InsertOutbox(ctx, r.topics.Endpoints, schemas.TenantKey(tenant, id), snap)
	})
	if err != nil {
		return false, fmt.Errorf("controlplane: reencrypt endpoint %s: %w", id, err)
	}
	return changed, nil
}
