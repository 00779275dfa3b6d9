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

// Migration 0009: the database refuses a rule whose kind and members
// disagree (the API validates first; this is the last line of defence for
// anything written around it), keeps existing rules per-event, and its
// down refuses while a count or rate rule exists, since the old schema
// would read it as a per-event rule that alerts on every event.
func TestAggregateRuleChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testenv.DatabaseURL(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')`,
		`INSERT INTO webhook_endpoints (id, tenant_id, name, target_url, secret, secret_hint, created_by)
			VALUES ('wh_1', 'acme', 'hook', 'https://example.com/hook', '{"key_id": "k", "ciphertext": "x"}', '…x', 'test')`,
		`INSERT INTO alert_rules (id, tenant_id, name, event_type, webhook_endpoint_id, created_by)
			VALUES ('rul_old', 'acme', 'old', 'workflow.run.failed', 'wh_1', 'test')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var kind string
	if err := pool.QueryRow(ctx, `SELECT kind FROM alert_rules WHERE id = 'rul_old'`).Scan(&kind); err != nil || kind != "per_event" {
		t.Fatalf("a rule written without a kind reads %q, %v; want per_event", kind, err)
	}
	insert := func(id, cols, vals string) error {
		_, err := pool.Exec(ctx, `INSERT INTO alert_rules (id, tenant_id, name, webhook_endpoint_id, created_by, `+cols+`)
			VALUES ('`+id+`', 'acme', 'r', 'wh_1', 'test', `+vals+`)`)
		return err
	}
	for _, c := range []struct{ name, cols, vals string }{
		{"per-event rule with a window", "event_type, window_ms", "'workflow.run.failed', 60000"},
		{"count rule without a threshold", "kind, event_type, window_ms", "'count', 'workflow.run.failed', 60000"},
		{"window not whole minutes", "kind, event_type, window_ms, threshold", "'count', 'workflow.run.failed', 90000, 3"},
		{"window above 24h", "kind, event_type, window_ms, threshold", "'count', 'workflow.run.failed', 90000000, 3"},
		{"rate rule on failed events", "kind, event_type, window_ms, success_ratio_below_bp, min_runs", "'rate', 'workflow.run.failed', 60000, 9500, 10"},
		{"per-event rule on finished runs", "event_type", "'workflow.run.finished'"},
		{"per-event rule with group_by", "event_type, group_by", "'workflow.run.failed', '{workflow.name}'"},
		{"five group_by paths", "kind, event_type, window_ms, threshold, group_by, max_groups", "'count', 'workflow.run.failed', 60000, 3, '{a,b,c,d,e}', 10"},
		{"max_groups above 5000", "kind, event_type, window_ms, threshold, max_groups", "'count', 'workflow.run.failed', 60000, 3, 5001"},
		{"repeat_interval under a minute", "kind, event_type, window_ms, threshold, repeat_interval_ms", "'count', 'workflow.run.failed', 60000, 3, 1000"},
	} {
		if err := insert("rul_bad", c.cols, c.vals); err == nil {
			t.Errorf("%s: accepted", c.name)
			if _, err := pool.Exec(ctx, `DELETE FROM alert_rules WHERE id = 'rul_bad'`); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := insert("rul_count", "kind, event_type, window_ms, threshold, group_by, max_groups, hold_ms, repeat_interval_ms",
		"'count', 'workflow.run.failed', 900000, 3, '{workflow.name}', 100, 0, 14400000"); err != nil {
		t.Fatalf("a valid count rule: %v", err)
	}
	if err := insert("rul_rate", "kind, event_type, window_ms, success_ratio_below_bp, min_runs",
		"'rate', 'workflow.run.finished', 3600000, 9500, 10"); err != nil {
		t.Fatalf("a valid rate rule: %v", err)
	}
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	// Down to 0009 (0012 … 0010 have no rows that stop them), then 0009 refuses.
	for i := len(all) - 1; all[i].Version > 9; i-- {
		if _, err := migrations.Down(ctx, pool); err != nil {
			t.Fatalf("down %04d: %v", all[i].Version, err)
		}
	}
	if _, err := migrations.Down(ctx, pool); err == nil {
		t.Fatal("0009 down succeeded while count and rate rules exist")
	}
	if _, err := pool.Exec(ctx, `DELETE FROM alert_rules WHERE kind <> 'per_event'`); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Down(ctx, pool); err != nil {
		t.Fatalf("0009 down without aggregate rules: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM alert_rules WHERE id = 'rul_old'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the per-event rule after 0009 down: %d, %v", n, err)
	}
}
