package controlplane_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/exospherehost/exo-alerts/controlplane"
)

// GET /v1/me tells a client which tenant and role its key has, so the
// dashboard can show a viewer read-only before a write is refused; a
// missing or revoked key gets 401 and learns nothing.
func TestMe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []struct {
		name, key, tenant, role string
		canWrite                bool
	}{
		{"admin", b.adminKey, "acme", "admin", true},
		{"viewer", b.viewKey, "acme", "viewer", false},
		{"other tenant", b.otherKey, "globex", "admin", true},
	} {
		status, _, body := b.do(t, http.MethodGet, "/v1/me", c.key, "")
		if status != http.StatusOK {
			t.Fatalf("%s: GET /v1/me = %d %v", c.name, status, body)
		}
		if body["tenant_id"] != c.tenant || body["role"] != c.role || body["can_write"] != c.canWrite ||
			body["key_name"] != "test" || body["key_id"] == "" {
			t.Errorf("%s: GET /v1/me = %v", c.name, body)
		}
		for k, v := range body {
			if s, ok := v.(string); ok && s == c.key {
				t.Errorf("%s: the answer shows the key itself in %s", c.name, k)
			}
		}
	}
	if status, _, _ := b.do(t, http.MethodGet, "/v1/me", "", ""); status != http.StatusUnauthorized {
		t.Errorf("no key: GET /v1/me = %d, want 401", status)
	}
	_, _, me := b.do(t, http.MethodGet, "/v1/me", b.viewKey, "")
	if err := controlplane.RevokeAPIKey(context.Background(), b.pool, me["key_id"].(string)); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := b.do(t, http.MethodGet, "/v1/me", b.viewKey, ""); status != http.StatusUnauthorized {
		t.Errorf("revoked key: GET /v1/me = %d, want 401", status)
	}
}
