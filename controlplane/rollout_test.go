package controlplane_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// The rollout flag: with a tenant list only those tenants are served (beta),
// with an empty one nobody (off); the others get a 403 that says why.
func TestRolloutByTenant(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, tenant := range []string{"acme", "globex"} {
		keys[tenant] = controlplane.NewAPIKey()
		if _, err := controlplane.CreateAPIKey(context.Background(), pool, tenant, "test", controlplane.RoleAdmin, keys[tenant]); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name    string
		tenants []string
		want    map[string]int
	}{
		{"GA", nil, map[string]int{"acme": 200, "globex": 200}},
		{"beta", []string{"acme"}, map[string]int{"acme": 200, "globex": 403}},
		{"off", []string{}, map[string]int{"acme": 403, "globex": 403}},
	} {
		s, err := controlplane.New(controlplane.Config{Pool: pool, Brokers: []string{"127.0.0.1:1"}, Topics: kafka.NewTopics("t."),
			Keyring: ring, Log: testenv.Log(t), Tenants: c.tenants})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(s.Handler())
		b := &bundle{pool: pool, srv: srv, ring: ring}
		for tenant, want := range c.want {
			status, _, problem := b.do(t, "GET", "/v1/webhooks", keys[tenant], "")
			if status != want {
				t.Errorf("%s: %s lists webhooks: %d %v, want %d", c.name, tenant, status, problem, want)
			}
			if status := b.webhookStatus(t, keys[tenant]); (want == 200) != (status == 201) {
				t.Errorf("%s: %s creates a webhook: %d", c.name, tenant, status)
			}
		}
		srv.Close()
	}
}

func (b *bundle) webhookStatus(t *testing.T, key string) int {
	t.Helper()
	status, _, _ := b.do(t, "POST", "/v1/webhooks", key, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	return status
}
