package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// The global default: none stored at first; stored, changed and read
// back; its audit rows have no tenant and no tenant's API transaction sees
// them.
func TestRolloutDefault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t)
	st := store.New(pool, "exo_app")
	if d, err := st.RolloutDefault(ctx); err != nil || d != nil {
		t.Fatalf("default of a new database: %+v, %v; want none", d, err)
	}
	for _, state := range []string{"beta", "ga"} {
		err := st.System(ctx, func(tx *store.Tx) error {
			before, err := tx.LockRolloutDefault(ctx)
			if err != nil {
				return err
			}
			if (state == "beta") != (before == nil) {
				t.Errorf("setting %s: before %+v", state, before)
			}
			if _, err := tx.SetRolloutDefault(ctx, state); err != nil {
				return err
			}
			return tx.InsertAudit(ctx, "", "cli", "rollout.default", store.AuditRolloutDefault, "*", before, map[string]string{"state": state}, "")
		})
		if err != nil {
			t.Fatal(err)
		}
		if d, err := st.RolloutDefault(ctx); err != nil || d == nil || d.State != state {
			t.Fatalf("default after setting %s: %+v, %v", state, d, err)
		}
	}
	err := st.System(ctx, func(tx *store.Tx) error {
		_, err := tx.SetRolloutDefault(ctx, "on")
		return err
	})
	if err == nil {
		t.Error("a default of state on was stored")
	}
	events, err := st.ListRolloutAudit(ctx, 0, 10)
	if err != nil || len(events) != 2 || events[0].After == nil || string(events[0].After) != `{"state": "ga"}` {
		t.Fatalf("rollout audit: %d events, %v", len(events), err)
	}
	if older, err := st.ListRolloutAudit(ctx, events[0].ID, 10); err != nil || len(older) != 1 || older[0].ID != events[1].ID {
		t.Fatalf("older page: %v, %v", older, err)
	}
	if err := st.EnsureTenant(ctx, "acme", "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.InTenant(ctx, "acme", false, func(tx *store.Tx) error {
		seen, err := tx.ListAudit(ctx, store.AuditFilter{}, 10)
		if len(seen) != 0 {
			t.Errorf("a tenant sees %d audit rows of the default", len(seen))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// Two operators changing the default at once are serialised by its lock:
// each sees the other's state as its before, never both none.
func TestRolloutDefaultSerialised(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testenv.Pool(t), "")
	befores := make(chan *store.RolloutDefault, 2)
	var wg sync.WaitGroup
	for _, state := range []string{"beta", "off"} {
		wg.Go(func() {
			err := st.System(ctx, func(tx *store.Tx) error {
				before, err := tx.LockRolloutDefault(ctx)
				if err != nil {
					return err
				}
				befores <- before
				_, err = tx.SetRolloutDefault(ctx, state)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(befores)
	none := 0
	for b := range befores {
		if b == nil {
			none++
		}
	}
	if none != 1 {
		t.Errorf("%d of the two changes saw no default before them, want 1", none)
	}
}

// A tenant's state: set (creating the tenant), changed, cleared; listed
// with or without the tenants that have none; a tenant unknown is
// ErrNotFound where nothing creates it; a bad state is refused.
func TestTenantRollout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testenv.Pool(t), "")
	if err := st.EnsureTenant(ctx, "globex", "Globex"); err != nil {
		t.Fatal(err)
	}
	set := func(tenant, state string) *store.TenantRollout {
		t.Helper()
		var got *store.TenantRollout
		err := st.System(ctx, func(tx *store.Tx) error {
			if _, err := tx.LockTenantRollout(ctx, tenant); err != nil {
				return err
			}
			var err error
			got, err = tx.SetTenantRollout(ctx, tenant, state)
			return err
		})
		if err != nil {
			t.Fatalf("set %s %q: %v", tenant, state, err)
		}
		return got
	}
	if r := set("acme", "beta"); r.State != "beta" || r.UpdatedAt == nil {
		t.Fatalf("acme after set beta: %+v", r)
	}
	if r := set("acme", "off"); r.State != "off" {
		t.Fatalf("acme after set off: %+v", r)
	}
	all, err := st.ListTenantRollouts(ctx, "", 10, false)
	if err != nil || len(all) != 2 || all[0].TenantID != "acme" || all[0].State != "off" || all[1].TenantID != "globex" || all[1].State != "" {
		t.Fatalf("list: %+v, %v", all, err)
	}
	if page, err := st.ListTenantRollouts(ctx, "acme", 10, false); err != nil || len(page) != 1 || page[0].TenantID != "globex" {
		t.Fatalf("page after acme: %+v, %v", page, err)
	}
	if explicit, err := st.ListTenantRollouts(ctx, "", 10, true); err != nil || len(explicit) != 1 || explicit[0].TenantID != "acme" {
		t.Fatalf("explicit only: %+v, %v", explicit, err)
	}
	err = st.System(ctx, func(tx *store.Tx) error {
		def, tenants, err := tx.RepublishRollout(ctx)
		if def != nil || len(tenants) != 1 || tenants[0].TenantID != "acme" || tenants[0].State != "off" {
			t.Errorf("republish: %+v %+v", def, tenants)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := set("acme", ""); r.State != "" {
		t.Fatalf("acme after clear: %+v", r)
	}
	err = st.System(ctx, func(tx *store.Tx) error {
		_, err := tx.TenantRolloutForUpdate(ctx, "initech")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown tenant: %v, want ErrNotFound", err)
	}
	err = st.System(ctx, func(tx *store.Tx) error {
		_, err := tx.SetTenantRollout(ctx, "acme", "on")
		return err
	})
	if err == nil {
		t.Error("state on was stored")
	}
	names, err := st.ListTenantRollouts(ctx, "", 10, false)
	if err != nil {
		t.Fatal(err)
	}
	if ids := []string{names[0].TenantID, names[1].TenantID}; !slices.Equal(ids, []string{"acme", "globex"}) {
		t.Errorf("tenants %v", ids)
	}
}

// The key lookup reads the rollout of the key's tenant with it; an
// operator key has no tenant.
func TestLookupAPIKeyReadsTheRollout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testenv.Pool(t), "")
	if err := st.EnsureTenant(ctx, "acme", "acme"); err != nil {
		t.Fatal(err)
	}
	err := st.System(ctx, func(tx *store.Tx) error {
		for _, k := range []struct {
			key    store.APIKey
			secret string
		}{
			{store.APIKey{ID: "key_a", TenantID: "acme", Name: "a", Role: "admin", Prefix: "exo_aaaaaa"}, "a"},
			{store.APIKey{ID: "key_o", Name: "ops", Role: "operator", Prefix: "exo_oooooo"}, "o"},
		} {
			if _, err := tx.InsertAPIKey(ctx, &k.key, []byte(k.secret)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []store.APIKey{
		{ID: "key_x", TenantID: "acme", Name: "x", Role: "operator", Prefix: "exo_xxxxxx"},
		{ID: "key_y", Name: "y", Role: "admin", Prefix: "exo_yyyyyy"},
	} {
		err := st.System(ctx, func(tx *store.Tx) error {
			_, err := tx.InsertAPIKey(ctx, &bad, []byte(bad.ID))
			return err
		})
		if err == nil {
			t.Errorf("key of role %s and tenant %q stored", bad.Role, bad.TenantID)
		}
	}
	k, err := st.LookupAPIKey(ctx, []byte("a"))
	if err != nil || k.TenantID != "acme" || k.RolloutState != "" || k.RolloutDefault != "" {
		t.Fatalf("acme's key before any rollout: %+v, %v", k, err)
	}
	err = st.System(ctx, func(tx *store.Tx) error {
		if _, err := tx.LockRolloutDefault(ctx); err != nil {
			return err
		}
		if _, err := tx.SetRolloutDefault(ctx, "beta"); err != nil {
			return err
		}
		_, err := tx.SetTenantRollout(ctx, "acme", "ga")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if k, err = st.LookupAPIKey(ctx, []byte("a")); err != nil || k.RolloutState != "ga" || k.RolloutDefault != "beta" {
		t.Fatalf("acme's key: %+v, %v", k, err)
	}
	if k, err = st.LookupAPIKey(ctx, []byte("o")); err != nil || k.TenantID != "" || k.Role != "operator" || k.RolloutDefault != "beta" {
		t.Fatalf("operator key: %+v, %v", k, err)
	}
	keys, err := st.ListAPIKeys(ctx, "")
	if err != nil || len(keys) != 2 || keys[1].ID != "key_o" {
		t.Fatalf("list: %+v, %v", keys, err)
	}
}
