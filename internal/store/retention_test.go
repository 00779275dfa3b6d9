package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// Retention deletes alerts, attempts and dead letters older than the
// cutoff, in batches until none is left, and keeps everything newer.
func TestPruneHistory(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	s := New(pool, "")
	ctx := context.Background()
	old := retentionBatch + 3 // more than one batch
	for _, q := range []string{
		`INSERT INTO alerts (alert_id, tenant_id, rule_id, endpoint_id, event_type, record, created_at)
			SELECT 'alrt_old_' || i, 'acme', 'rul_1', 'whk_1', 'workflow.run.failed', '{}', now() - interval '40 days' FROM generate_series(1, $1) i`,
		`INSERT INTO delivery_attempts (alert_id, attempt, delivery_id, tenant_id, rule_id, endpoint_id, outcome, attempted_at)
			SELECT 'alrt_old_' || i, 1, 'dlv_old_' || i, 'acme', 'rul_1', 'whk_1', 'dead', now() - interval '40 days' FROM generate_series(1, $1) i`,
		`INSERT INTO dead_letters (alert_id, tenant_id, rule_id, endpoint_id, attempts, last_error, record, dead_at)
			SELECT 'alrt_old_' || i, 'acme', 'rul_1', 'whk_1', 1, 'http_status', '{}', now() - interval '40 days' FROM generate_series(1, $1) i`,
	} {
		if _, err := pool.Exec(ctx, q, old); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`INSERT INTO alerts (alert_id, tenant_id, rule_id, endpoint_id, event_type, record, created_at)
			VALUES ('alrt_new', 'acme', 'rul_1', 'whk_1', 'workflow.run.failed', '{}', now() - interval '29 days')`,
		`INSERT INTO delivery_attempts (alert_id, attempt, delivery_id, tenant_id, rule_id, endpoint_id, outcome, attempted_at)
			VALUES ('alrt_new', 1, 'dlv_new', 'acme', 'rul_1', 'whk_1', 'dead', now() - interval '29 days')`,
		`INSERT INTO dead_letters (alert_id, tenant_id, rule_id, endpoint_id, attempts, last_error, record, dead_at)
			VALUES ('alrt_new', 'acme', 'rul_1', 'whk_1', 1, 'http_status', '{}', now() - interval '29 days')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneHistory(ctx, time.Now().Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"alerts", "delivery_attempts", "dead_letters"} {
		if n[table] != int64(old) {
			t.Errorf("%s: deleted %d rows, want %d", table, n[table], old)
		}
		var left []string
		rows, err := pool.Query(ctx, `SELECT alert_id FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			_ = rows.Scan(&id)
			left = append(left, id)
		}
		rows.Close()
		if len(left) != 1 || left[0] != "alrt_new" {
			t.Errorf("%s keeps %d rows (%.3v), want only alrt_new", table, len(left), left)
		}
	}
	// Nothing older is left: a second run deletes nothing.
	if n, err := s.PruneHistory(ctx, time.Now().Add(-30*24*time.Hour)); err != nil || n["alerts"]+n["delivery_attempts"]+n["dead_letters"] != 0 {
		t.Errorf("second prune: %v %v", n, err)
	}
}

// Published outbox rows older than a day go; recent and unpublished ones
// (whatever their age) stay.
func TestPruneOutbox(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	s := New(pool, "")
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (topic, key, value, created_at, sent_at)
		SELECT 't', 'old-sent-' || i, 'v', now() - interval '3 days', now() - interval '3 days' FROM generate_series(1, $1) i`, retentionBatch+2); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (topic, key, value, created_at, sent_at) VALUES
		('t', 'old-unsent', 'v', now() - interval '3 days', NULL),
		('t', 'new-sent', 'v', now() - interval '1 hour', now() - interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneOutbox(ctx, time.Now().Add(-24*time.Hour))
	if err != nil || n != retentionBatch+2 {
		t.Fatalf("PruneOutbox = %d, %v; want %d", n, err, retentionBatch+2)
	}
	rows, err := pool.Query(ctx, `SELECT key FROM outbox ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(keys) != 2 || keys[0] != "new-sent" || keys[1] != "old-unsent" {
		t.Errorf("outbox after pruning = %v, %v; want new-sent and old-unsent", keys, err)
	}
}
