package store

import (
	"context"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// quota_suppressions rows are stored once per Kafka record and pruned after
// the retention, in batches, keeping the newer ones.
func TestQuotaSuppressionsOnceAndPruned(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	s := New(pool, "")
	ctx := context.Background()
	minute := time.Now().UTC().Truncate(time.Minute)
	rows := []QuotaSuppression{
		{Partition: 0, Offset: 7, TenantID: "acme", Minute: minute, Scope: "tenant", Suppressed: 3, Limit: 10},
		{Partition: 1, Offset: 7, TenantID: "acme", Minute: minute, Scope: "global", Suppressed: 4, Limit: 99},
	}
	var fresh []int64
	for range 2 { // the second write is a re-read
		if err := s.System(ctx, func(tx *Tx) error {
			n, err := tx.InsertQuotaSuppressions(ctx, rows)
			fresh = append(fresh, n)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if fresh[0] != 2 || fresh[1] != 0 {
		t.Fatalf("new rows per write %v, want [2 0]", fresh)
	}
	old := retentionBatch + 3 // more than one batch
	if _, err := pool.Exec(ctx, `INSERT INTO quota_suppressions (kafka_partition, kafka_offset, tenant_id, minute, scope, suppressed, quota_limit, created_at)
		SELECT 2, i, 'acme', now() - interval '40 days', 'tenant', 1, 10, now() - interval '31 days' FROM generate_series(1, $1) i`, old); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneQuotaSuppressions(ctx, time.Now().Add(-QuotaUsageRetention))
	if err != nil || n != int64(old) {
		t.Fatalf("pruned %d (%v), want %d", n, err, old)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM quota_suppressions`).Scan(&left); err != nil || left != 2 {
		t.Fatalf("%d rows left (%v), want the 2 recent ones", left, err)
	}
}
