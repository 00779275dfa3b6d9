package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The statements are tested end to end by the control plane's API tests;
// these check what every caller relies on: a tenant transaction's
// statements see only its tenant, lists page, and soft deletes hide.

type env struct {
	pool *pgxpool.Pool
	db   *store.Store
}

func setup(t *testing.T) *env {
	t.Helper()
	pool := testenv.Pool(t)
	e := &env{pool: pool, db: store.New(pool, "exo_app")}
	for _, tenant := range []string{"acme", "globex", "acme"} { // twice: EnsureTenant is idempotent
		if err := e.db.EnsureTenant(context.Background(), tenant, tenant); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// in runs fn in a tenant transaction and fails the test on an error.
func (e *env) in(t *testing.T, tenant string, fn func(*store.Tx) error) {
	t.Helper()
	if _, err := e.db.InTenant(context.Background(), tenant, false, fn); err != nil {
		t.Fatal(err)
	}
}

func sealed(key string) schemas.Sealed { return schemas.Sealed{KeyID: key, Ciphertext: "c2VhbGVk"} }

func endpoint(id, tenant string, active bool) *store.EndpointRow {
	return &store.EndpointRow{ID: id, TenantID: tenant, Name: id, Kind: schemas.EndpointKindWebhook, TargetURL: "https://example.com/" + id,
		Secret: sealed("k1"), SecretHint: "…abcd", Headers: map[string]schemas.Sealed{"X-A": sealed("k1")}, IsActive: active, CreatedBy: "test"}
}

func TestEndpointsAndRulesOfATenant(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.in(t, "acme", func(tx *store.Tx) error {
		for _, ep := range []*store.EndpointRow{endpoint("whk_1", "acme", true), endpoint("whk_2", "acme", false)} {
			if err := tx.InsertEndpoint(ctx, ep); err != nil || ep.Version != 1 {
				t.Fatalf("InsertEndpoint = %v, version %d", err, ep.Version)
			}
		}
		return tx.InsertRule(ctx, &store.RuleRow{ID: "rul_1", TenantID: "acme", Name: "r", EventType: schemas.TypeRunFailed,
			WebhookEndpointID: "whk_1", IsActive: true, MaxAttempts: 8, Severity: "error", CreatedBy: "test"})
	})

	e.in(t, "globex", func(tx *store.Tx) error {
		if _, err := tx.GetEndpoint(ctx, "whk_1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("another tenant's GetEndpoint = %v, want ErrNotFound", err)
		}
		if _, err := tx.GetRule(ctx, "rul_1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("another tenant's GetRule = %v, want ErrNotFound", err)
		}
		if rows, _, err := tx.ListEndpoints(ctx, nil, 10, store.EndpointFilter{}); err != nil || len(rows) != 0 {
			t.Errorf("another tenant's ListEndpoints = %d rows, %v; want none", len(rows), err)
		}
		if err := tx.DeleteEndpoint(ctx, "whk_1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("another tenant's DeleteEndpoint = %v, want ErrNotFound", err)
		}
		return nil
	})

	e.in(t, "acme", func(tx *store.Tx) error {
		first, next, err := tx.ListEndpoints(ctx, nil, 1, store.EndpointFilter{})
		if err != nil || len(first) != 1 || next == "" {
			t.Fatalf("first page = %d rows, next %q, %v", len(first), next, err)
		}
		cur, err := store.ParseCursor(next)
		if err != nil {
			t.Fatal(err)
		}
		second, next, err := tx.ListEndpoints(ctx, cur, 1, store.EndpointFilter{})
		if err != nil || len(second) != 1 || next != "" || second[0].ID == first[0].ID {
			t.Fatalf("second page = %v, next %q, %v", second, next, err)
		}
		inactive, _, err := tx.ListEndpoints(ctx, nil, 10, store.EndpointFilter{IsActive: new(false)})
		if err != nil || len(inactive) != 1 || inactive[0].ID != "whk_2" {
			t.Errorf("inactive endpoints = %v, %v; want whk_2", inactive, err)
		}
		rules, _, err := tx.ListRules(ctx, nil, 10, store.RuleFilter{WebhookEndpointID: "whk_2"})
		if err != nil || len(rules) != 0 {
			t.Errorf("rules of whk_2 = %v, %v; want none", rules, err)
		}

		ep, err := tx.GetEndpointForUpdate(ctx, "whk_1")
		if err != nil {
			return err
		}
		ep.Name = "renamed"
		if err := tx.UpdateEndpoint(ctx, ep); err != nil || ep.Version != 2 {
			t.Errorf("UpdateEndpoint = %v, version %d; want 2", err, ep.Version)
		}
		active, err := tx.ActiveRulesOfEndpointForUpdate(ctx, "whk_1")
		if err != nil || len(active) != 1 || active[0].ID != "rul_1" {
			t.Errorf("active rules of whk_1 = %v, %v; want rul_1", active, err)
		}
		if err := tx.DeleteEndpoint(ctx, "whk_1"); err != nil {
			return err
		}
		if err := tx.DeleteEndpoint(ctx, "whk_1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second DeleteEndpoint = %v, want ErrNotFound", err)
		}
		if _, err := tx.GetEndpointForShare(ctx, "whk_1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetEndpointForShare of a deleted endpoint = %v, want ErrNotFound", err)
		}
		return nil
	})

	// The recorder keeps a rule's last error; RuleErrors reads it back.
	if _, err := e.pool.Exec(ctx, `UPDATE alert_rules SET last_error = 'budget', last_error_at = now(), last_error_rule_version = 1, error_count = 3 WHERE id = 'rul_1'`); err != nil {
		t.Fatal(err)
	}
	e.in(t, "acme", func(tx *store.Tx) error {
		errs, err := tx.RuleErrors(ctx, []string{"rul_1", "rul_none"})
		if got := errs["rul_1"]; err != nil || len(errs) != 1 || got.Message != "budget" || got.Count != 3 || got.At.Location() != time.UTC {
			t.Errorf("RuleErrors = %+v, %v", errs, err)
		}
		return nil
	})

	// Across tenants: the demo receiver sees live endpoints, re-encryption
	// every endpoint.
	secrets, err := e.db.EndpointSecrets(ctx)
	if err != nil || len(secrets) != 1 || secrets[0].ID != "whk_2" || secrets[0].Secret != sealed("k1") {
		t.Errorf("EndpointSecrets = %+v, %v; want whk_2 only", secrets, err)
	}
	all, err := e.db.SealedEndpoints(ctx, "", 10)
	if err != nil || len(all) != 2 || all[0].ID != "whk_1" || all[0].Err != nil || all[0].Headers["X-A"] != sealed("k1") {
		t.Fatalf("SealedEndpoints = %+v, %v", all, err)
	}
	err = e.db.System(ctx, func(tx *store.Tx) error {
		v, err := tx.LockSealedEndpoint(ctx, "whk_1")
		if err != nil {
			return err
		}
		if !v.Deleted || v.TenantID != "acme" || v.Version != 3 {
			t.Errorf("LockSealedEndpoint = %+v; want deleted, acme, version 3", v)
		}
		v.Secret = sealed("k2")
		row, err := tx.UpdateSealedEndpoint(ctx, v)
		if err != nil || row.Version != 4 || row.Secret != sealed("k2") {
			t.Errorf("UpdateSealedEndpoint = %+v, %v", row, err)
		}
		if _, err := tx.LockSealedEndpoint(ctx, "whk_none"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LockSealedEndpoint(whk_none) = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	hash := []byte("0123456789abcdef0123456789abcdef")
	err := e.db.System(ctx, func(tx *store.Tx) error {
		k := &store.APIKey{ID: "key_1", TenantID: "acme", Name: "ci", Role: "admin", Prefix: "exo_abcdef"}
		if ok, err := tx.InsertAPIKey(ctx, k, hash); err != nil || !ok || k.CreatedAt.IsZero() {
			t.Errorf("InsertAPIKey = %v, %v, created %v", ok, err, k.CreatedAt)
		}
		again := &store.APIKey{ID: "key_2", TenantID: "globex", Name: "x", Role: "viewer", Prefix: "exo_abcdef"}
		if ok, err := tx.InsertAPIKey(ctx, again, hash); err != nil || ok {
			t.Errorf("InsertAPIKey of a taken hash = %v, %v; want false", ok, err)
		}
		got, err := tx.APIKeyByHash(ctx, hash)
		if err != nil || got.ID != "key_1" || got.TenantID != "acme" {
			t.Errorf("APIKeyByHash = %+v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if k, err := e.db.LookupAPIKey(ctx, hash); err != nil || k.ID != "key_1" || k.Role != "admin" {
		t.Errorf("LookupAPIKey = %+v, %v", k, err)
	}
	if _, err := e.db.LookupAPIKey(ctx, []byte("unknown")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupAPIKey of an unknown key = %v, want ErrNotFound", err)
	}
	err = e.db.System(ctx, func(tx *store.Tx) error {
		k, err := tx.RevokeAPIKey(ctx, "key_1")
		if err != nil || k.RevokedAt == nil || k.TenantID != "acme" {
			t.Errorf("RevokeAPIKey = %+v, %v", k, err)
		}
		if _, err := tx.RevokeAPIKey(ctx, "key_1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second RevokeAPIKey = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.LookupAPIKey(ctx, hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupAPIKey of a revoked key = %v, want ErrNotFound", err)
	}
	for tenant, want := range map[string]int{"acme": 1, "globex": 0, "": 1} {
		if keys, err := e.db.ListAPIKeys(ctx, tenant); err != nil || len(keys) != want {
			t.Errorf("ListAPIKeys(%q) = %d keys, %v; want %d", tenant, len(keys), err, want)
		}
	}
}

func TestListAudit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	e.in(t, "acme", func(tx *store.Tx) error {
		for _, action := range []string{"webhook.create", "webhook.update", "webhook.delete"} {
			if err := tx.InsertAudit(ctx, "acme", "test", action, "webhook", "whk_1", nil, map[string]int{"v": 1}, "req_1"); err != nil {
				return err
			}
		}
		page, err := tx.ListAudit(ctx, store.AuditFilter{}, 2)
		if err != nil || len(page) != 2 || page[0].Action != "webhook.delete" || page[0].Before != nil || string(page[0].After) != `{"v": 1}` {
			t.Fatalf("first page = %+v, %v", page, err)
		}
		rest, err := tx.ListAudit(ctx, store.AuditFilter{BeforeID: page[1].ID}, 2)
		if err != nil || len(rest) != 1 || rest[0].Action != "webhook.create" {
			t.Errorf("after the first page = %+v, %v", rest, err)
		}
		one, err := tx.ListAudit(ctx, store.AuditFilter{Action: "webhook.update", Until: time.Now().Add(time.Hour)}, 10)
		if err != nil || len(one) != 1 {
			t.Errorf("action filter = %+v, %v", one, err)
		}
		none, err := tx.ListAudit(ctx, store.AuditFilter{Since: time.Now().Add(time.Hour)}, 10)
		if err != nil || len(none) != 0 {
			t.Errorf("since an hour ahead = %+v, %v", none, err)
		}
		return nil
	})
	e.in(t, "globex", func(tx *store.Tx) error {
		if rows, err := tx.ListAudit(ctx, store.AuditFilter{}, 10); err != nil || len(rows) != 0 {
			t.Errorf("another tenant's trail = %d rows, %v; want none", len(rows), err)
		}
		return nil
	})
}

func TestUnpublished(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	xid, err := e.db.InTenant(ctx, "acme", true, func(tx *store.Tx) error {
		return tx.InsertOutbox(ctx, "topic", "acme/whk_1", []byte("{}"))
	})
	if err != nil || xid == "" {
		t.Fatalf("InTenant = %q, %v", xid, err)
	}
	if pending, err := e.db.Unpublished(ctx, xid); err != nil || !pending {
		t.Errorf("Unpublished before the relay = %v, %v; want true", pending, err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE outbox SET sent_at = now()`); err != nil {
		t.Fatal(err)
	}
	if pending, err := e.db.Unpublished(ctx, xid); err != nil || pending {
		t.Errorf("Unpublished after the relay = %v, %v; want false", pending, err)
	}
	if _, err := e.db.Unpublished(ctx, "not a number"); err == nil {
		t.Error("Unpublished of a malformed transaction id: no error")
	}
}
