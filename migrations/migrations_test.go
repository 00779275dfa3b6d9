package migrations_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/migrations"
)

func tables(t *testing.T, pool *pgxpool.Pool) map[string]bool {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[n] = true
	}
	return out
}

var want = []string{"tenants", "api_keys", "webhook_endpoints", "alert_rules", "audit_events", "outbox", "delivery_attempts", "dead_letters", "quarantined_records", "rollout_default",
	"aggregate_groups", "aggregate_rule_stats", "quota_suppressions", "notices", "tenant_settings"}

func TestUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testenv.DatabaseURL(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	n, err := migrations.Up(ctx, pool)
	if err != nil || n != len(all) {
		t.Fatalf("first Up = %d, %v; want %d", n, err, len(all))
	}
	got := tables(t, pool)
	for _, tb := range want {
		if !got[tb] {
			t.Errorf("after up: table %s missing", tb)
		}
	}
	if n, err := migrations.Up(ctx, pool); err != nil || n != 0 {
		t.Fatalf("second Up = %d, %v; want 0 (idempotent)", n, err)
	}
	for range all {
		if _, err := migrations.Down(ctx, pool); err != nil {
			t.Fatalf("Down: %v", err)
		}
	}
	got = tables(t, pool)
	for _, tb := range want {
		if got[tb] {
			t.Errorf("after down: table %s still exists", tb)
		}
	}
	if _, err := migrations.Down(ctx, pool); err == nil {
		t.Error("Down with nothing applied succeeded")
	}
	if n, err := migrations.Up(ctx, pool); err != nil || n != len(all) {
		t.Fatalf("Up after Down = %d, %v", n, err)
	}
	st, err := migrations.List(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.AppliedAt == nil {
			t.Errorf("%04d not applied after up", s.Version)
		}
	}
}

// The core tables carry the product's data model field names, and the
// audit trail refuses updates and deletes.
func TestSchemaContract(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t)
	cols := func(table string) map[string]bool {
		rows, err := pool.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_name = $1`, table)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]bool{}
		for rows.Next() {
			var c string
			_ = rows.Scan(&c)
			out[c] = true
		}
		return out
	}
	for table, fields := range map[string][]string{
		"webhook_endpoints": {"id", "name", "target_url", "secret", "headers", "is_active", "created_by", "created_at"},
		"alert_rules":       {"id", "name", "event_type", "condition", "webhook_endpoint_id", "is_active"},
	} {
		have := cols(table)
		for _, f := range fields {
			if !have[f] {
				t.Errorf("%s has no column %s", table, f)
			}
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO audit_events (tenant_id, actor, action, resource_type, resource_id) VALUES ('acme', 'system', 'x', 'y', 'z')`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE audit_events SET actor = 'mallory'`); err == nil {
		t.Error("UPDATE of audit_events succeeded")
	}
	if _, err := pool.Exec(ctx, `DELETE FROM audit_events`); err == nil {
		t.Error("DELETE of audit_events succeeded")
	}
}
