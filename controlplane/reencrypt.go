package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

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
	run := reencrypter{db: store.New(pool, ""), ring: ring, topics: topics, requestID: newID("reencrypt")}
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
	db        *store.Store
	ring      *keyring.Ring
	topics    kafka.Topics
	requestID string
}

// staleKeys returns the ids of the keys other than primary v's values are
// sealed under, sorted.
func staleKeys(v *store.SealedEndpoint, primary string) []string {
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
	rows, err := r.db.SealedEndpoints(ctx, after, reencryptBatch)
	if err != nil {
		return nil, "", fmt.Errorf("controlplane: reencrypt: list endpoints: %w", err)
	}
	for _, v := range rows {
		last = v.ID
		if v.Err != nil || len(staleKeys(&v, r.ring.PrimaryID())) > 0 {
			ids = append(ids, v.ID) // one() reports an unreadable row
		}
	}
	if len(rows) < reencryptBatch {
		last = ""
	}
	return ids, last, nil
}

// one re-seals the stale values of endpoint id in a transaction of its own,
// reporting whether it changed anything.
func (r *reencrypter) one(ctx context.Context, id string) (changed bool, err error) {
	primary := r.ring.PrimaryID()
	err = r.db.System(ctx, func(tx *store.Tx) error {
		v, err := tx.LockSealedEndpoint(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		stale := staleKeys(v, primary)
		if len(stale) == 0 {
			return nil // done meanwhile
		}
		tenant := v.TenantID
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
		}
		if v.TargetURL != nil {
			u, err := reseal(*v.TargetURL, schemas.TargetURLAAD(tenant, id), "target url")
			if err != nil {
				return err
			}
			v.TargetURL = &u
		}
		for name, h := range v.Headers {
			if v.Headers[name], err = reseal(h, schemas.HeaderAAD(tenant, id, name), "header "+name); err != nil {
				return err
			}
		}
		e, err := tx.UpdateSealedEndpoint(ctx, v)
		if err != nil {
			return err
		}
		before := map[string]any{"version": v.Version, "key_ids": stale}
		after := map[string]any{"version": v.Version + 1, "key_ids": []string{primary}}
		if err := tx.InsertAudit(ctx, tenant, actorSystem, "webhook.reencrypt", "webhook", id, before, after, r.requestID); err != nil {
			return err
		}
		changed = true
		if v.Deleted {
			return nil // its topic entry is a tombstone; a snapshot would revive it
		}
		snap, err := json.Marshal(e.Record())
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		return tx.InsertOutbox(ctx, r.topics.Endpoints, schemas.TenantKey(tenant, id), snap)
	})
	if err != nil {
		return false, fmt.Errorf("controlplane: reencrypt endpoint %s: %w", id, err)
	}
	return changed, nil
}
