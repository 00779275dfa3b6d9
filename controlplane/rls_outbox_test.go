package controlplane_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Postgres itself refuses, to the application role, an outbox row under
// another tenant's key and a rule of one tenant on another's endpoint.
func TestDatabaseRefusesCrossTenantOutboxAndRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acme := b.webhook(t, b.adminKey, `{"name":"a","target_url":"https://hooks.example.com/a"}`)["id"].(string)
	globex := b.webhook(t, b.otherKey, `{"name":"g","target_url":"https://hooks.example.com/g"}`)["id"].(string)
	asGlobex := func(sql string, args ...any) error {
		return pgx.BeginFunc(context.Background(), b.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(context.Background(), `SELECT set_config('role', 'exo_app', true), set_config('exo.tenant_id', 'globex', true)`); err != nil {
				t.Fatal(err)
			}
			_, err := tx.Exec(context.Background(), sql, args...)
			return err
		})
	}
	if err := asGlobex(`INSERT INTO outbox (topic, key, value) VALUES ('t.webhook-endpoints', $1, NULL)`, "acme/"+acme); err == nil {
		t.Error("exo_app as globex queued a tombstone under acme's key")
	}
	if err := asGlobex(`INSERT INTO outbox (topic, key, value) VALUES ('t.webhook-endpoints', $1, NULL)`, "globex/"+globex); err != nil {
		t.Errorf("exo_app as globex cannot queue under its own key: %v", err)
	}
	if err := asGlobex(`INSERT INTO alert_rules (id, tenant_id, name, event_type, webhook_endpoint_id, created_by)
		VALUES ('rul_x', 'globex', 'r', 'workflow.run.failed', $1, 'test')`, acme); err == nil {
		t.Error("a globex rule on acme's endpoint was stored")
	}
	if err := asGlobex(`INSERT INTO alert_rules (id, tenant_id, name, event_type, webhook_endpoint_id, created_by)
		VALUES ('rul_y', 'globex', 'r', 'workflow.run.failed', $1, 'test')`, globex); err != nil {
		t.Errorf("a globex rule on its own endpoint: %v", err)
	}
}
