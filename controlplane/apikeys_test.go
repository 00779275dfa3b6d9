package controlplane_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/store"
)

// keyID returns the id of the one key of tenant with role.
func keyID(t *testing.T, b *bundle, tenant, role string) string {
	t.Helper()
	keys, err := store.New(b.pool, "").ListAPIKeys(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Role == role {
			return k.ID
		}
	}
	t.Fatalf("no %s key of %s in %v", role, tenant, keys)
	return ""
}

func TestListAPIKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// A key that was used shows when.
	if status, _, _ := b.do(t, "GET", "/v1/webhooks", b.viewKey, ""); status != 200 {
		t.Fatalf("GET with the viewer key: %d", status)
	}
	cases := []struct {
		tenant string
		want   int
	}{{"acme", 2}, {"globex", 1}, {"", 3}, {"initech", 0}}
	for _, c := range cases {
		keys, err := store.New(b.pool, "").ListAPIKeys(ctx, c.tenant)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != c.want {
			t.Fatalf("ListAPIKeys(%q) = %d keys, want %d", c.tenant, len(keys), c.want)
		}
		for _, k := range keys {
			if c.tenant != "" && k.TenantID != c.tenant {
				t.Errorf("ListAPIKeys(%q) shows a key of %s", c.tenant, k.TenantID)
			}
			if k.ID == "" || k.Name != "test" || k.CreatedAt.IsZero() || k.RevokedAt != nil {
				t.Errorf("key %+v", k)
			}
		}
	}
	keys, _ := store.New(b.pool, "").ListAPIKeys(ctx, "")
	secrets := map[string]string{b.adminKey: "acme admin", b.viewKey: "acme viewer", b.otherKey: "globex admin"}
	for _, k := range keys {
		// Nothing the list shows is a key or its hash.
		shown := fmt.Sprintf("%+v", k)
		for key, who := range secrets {
			sum := sha256.Sum256([]byte(key))
			for _, leak := range []string{key, hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:]), string(sum[:])} {
				if strings.Contains(shown, leak) {
					t.Fatalf("the list shows the %s key or its hash: %s", who, shown)
				}
			}
		}
		if used := k.Prefix == b.viewKey[:10]; used != (k.LastUsedAt != nil) {
			t.Errorf("key %s (prefix %s) last_used_at = %v; only the viewer key was used", k.ID, k.Prefix, k.LastUsedAt)
		}
		if !strings.HasPrefix(k.Prefix, "exo_") || len(k.Prefix) != 10 {
			t.Errorf("prefix %q", k.Prefix)
		}
	}
}

// A revoked key is refused from the next request on, and the revocation is
// in the tenant's audit trail without the key.
func TestRevokeAPIKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if status, _, _ := b.do(t, "GET", "/v1/webhooks", b.adminKey, ""); status != 200 {
		t.Fatalf("before revoke: %d", status)
	}
	id := keyID(t, b, "acme", controlplane.RoleAdmin)
	if err := controlplane.RevokeAPIKey(ctx, b.pool, id); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ method, path, body string }{
		{"GET", "/v1/webhooks", ""}, {"POST", "/v1/webhooks", `{"name":"a","target_url":"https://e.com/a"}`},
	} {
		if status, hdr, _ := b.do(t, m.method, m.path, b.adminKey, m.body); status != 401 || !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("%s %s with a revoked key: %d %q, want 401 invalid_token", m.method, m.path, status, hdr.Get("WWW-Authenticate"))
		}
	}
	// The tenant's other keys still work.
	if status, _, _ := b.do(t, "GET", "/v1/webhooks", b.viewKey, ""); status != 200 {
		t.Errorf("the viewer key after revoking the admin key: %d", status)
	}
	keys, _ := store.New(b.pool, "").ListAPIKeys(ctx, "acme")
	for _, k := range keys {
		if (k.ID == id) != (k.RevokedAt != nil) {
			t.Errorf("key %s revoked_at = %v", k.ID, k.RevokedAt)
		}
	}
	for _, again := range []string{id, "key_doesnotexist"} {
		if err := controlplane.RevokeAPIKey(ctx, b.pool, again); !errors.Is(err, controlplane.ErrNotFound) {
			t.Errorf("RevokeAPIKey(%s) = %v, want ErrNotFound", again, err)
		}
	}
	items, _, _ := b.auditPage(t, b.viewKey, "resource_type=api_key")
	if len(items) != 1 || items[0]["action"] != "api_key.revoke" || items[0]["resource_id"] != id || items[0]["actor"] != "cli" {
		t.Fatalf("api_key audit events = %v, want one revoke by cli", items)
	}
	after, _ := items[0]["after"].(map[string]any)
	before, _ := items[0]["before"].(map[string]any)
	if after["revoked_at"] == nil || before["revoked_at"] != nil || after["role"] != controlplane.RoleAdmin {
		t.Errorf("revoke audit before %v after %v", before, after)
	}
	if s := fmt.Sprint(items[0]); strings.Contains(s, b.adminKey[:10]) {
		t.Errorf("the audit event shows the key: %s", s)
	}
	if got, _, _ := b.auditPage(t, b.otherKey, "resource_type=api_key"); len(got) != 0 {
		t.Errorf("globex sees acme's key events: %v", got)
	}
}

// Creating a key writes its audit row in the same transaction; a fixed key
// registered again for the same tenant and role is the same key (no new
// row), for another tenant it is refused.
func TestAuditAPIKeyCreated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	key := controlplane.NewAPIKey()
	id, err := controlplane.MintAPIKey(ctx, b.pool, "acme", "deploy bot", controlplane.RoleViewer, key)
	if err != nil {
		t.Fatal(err)
	}
	items, _, _ := b.auditPage(t, b.viewKey, "resource_id="+id)
	if len(items) != 1 || items[0]["action"] != "api_key.create" || items[0]["actor"] != "cli" || items[0]["before"] != nil {
		t.Fatalf("audit events of the new key = %v", items)
	}
	after, _ := items[0]["after"].(map[string]any)
	if after["name"] != "deploy bot" || after["role"] != controlplane.RoleViewer || after["id"] != id {
		t.Errorf("create audit after = %v", after)
	}
	sum := sha256.Sum256([]byte(key))
	if s := fmt.Sprint(items[0]); strings.Contains(s, key[:10]) || strings.Contains(s, hex.EncodeToString(sum[:])) {
		t.Errorf("the audit event shows the key: %s", s)
	}
	if again, err := controlplane.MintAPIKey(ctx, b.pool, "acme", "deploy bot", controlplane.RoleViewer, key); err != nil || again != id {
		t.Errorf("the same key again = %q, %v; want %q", again, err, id)
	}
	if items, _, _ := b.auditPage(t, b.viewKey, "resource_id="+id); len(items) != 1 {
		t.Errorf("registering the same key again wrote audit rows: %v", items)
	}
	if _, err := controlplane.MintAPIKey(ctx, b.pool, "globex", "thief", controlplane.RoleAdmin, key); !errors.Is(err, controlplane.ErrKeyTaken) {
		t.Errorf("the key for another tenant = %v, want ErrKeyTaken", err)
	}
}
