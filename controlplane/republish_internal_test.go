package controlplane

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// BenchmarkRepublish measures the relay's start-up republish: a snapshot of
// each of 10,000 live rules (100 tenants × 100, one endpoint each) queued in
// the outbox in one transaction. ns/op is one republish; the outbox is
// emptied between ops (not timed).
//
//	go test -run '^$' -bench BenchmarkRepublish -benchtime 5x -count 3 ./controlplane/
func BenchmarkRepublish(b *testing.B) {
	s, pool := offlineServer(b)
	ctx := context.Background()
	const tenants, rulesPerTenant = 100, 100
	secret, _ := json.Marshal(s.cfg.Keyring.Seal("whsec_YmVuY2gtc2VjcmV0LWJ5dGVzLTMyLWxvbmch", "bench"))
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO tenants (id, name) SELECT 'tenant_' || t, 'tenant ' || t FROM generate_series(1, $1::int) t`, []any{tenants}},
		{`INSERT INTO webhook_endpoints (id, tenant_id, name, target_url, secret, secret_hint, created_by)
			SELECT 'whk_bench' || t, 'tenant_' || t, 'bench', 'https://example.com/hook', $2, '…Jlcw', 'bench' FROM generate_series(1, $1::int) t`,
			[]any{tenants, secret}},
		{`INSERT INTO alert_rules (id, tenant_id, name, event_type, condition, webhook_endpoint_id, created_by)
			SELECT 'rul_bench' || t || '_' || r, 'tenant_' || t, 'rule ' || r, 'workflow.run.failed', 'labels.env == "prod"', 'whk_bench' || t, 'bench'
			FROM generate_series(1, $1::int) t, generate_series(1, $2::int) r`, []any{tenants, rulesPerTenant}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			b.Fatal(err)
		}
	}
	r := &relay{db: store.New(pool, ""), topics: kafka.NewTopics("t."), log: s.log}
	b.ResetTimer()
	for range b.N {
		if err := r.republish(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		var n int
		if err := pool.QueryRow(ctx, `WITH d AS (DELETE FROM outbox RETURNING 1) SELECT count(*) FROM d`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		if want := tenants * (rulesPerTenant + 1); n != want {
			b.Fatalf("republish queued %d rows, want %d", n, want)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*tenants*(rulesPerTenant+1))/b.Elapsed().Seconds(), "rows/s")
}

// offlineServer is a server over a fresh database that is never run: for
// calling its maintenance functions directly.
func offlineServer(t testing.TB) (*Server, *pgxpool.Pool) {
	t.Helper()
	pool := testenv.Pool(t)
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Pool: pool, Brokers: []string{"127.0.0.1:1"}, Keyring: ring, Log: testenv.Log(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s, pool
}
