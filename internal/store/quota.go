package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The delivery quota's statements (docs/design/aggregate-alerts.md §5):
// the operator's per-tenant override (tenants.delivery_quota_per_minute,
// NULL for the default, 0 unlimited), changed in system transactions like
// the rollout; and the suppressions the processor reports on quota-usage,
// stored by the recorder once per record (its Kafka coordinates) and read
// by the tenant's GET /v1/quota under row-level security.

// TenantQuota is a tenant's override: PerMinute nil when it has none (the
// default applies).
type TenantQuota struct {
	TenantID  string
	PerMinute *int64
	UpdatedAt time.Time // when it was read or changed (the record's updated_at)
}

// LockTenantQuota creates tenant if it does not exist yet (named after its
// id), locks its row for the rest of the transaction and returns its
// override.
func (t *Tx) LockTenantQuota(ctx context.Context, tenant string) (*TenantQuota, error) {
	if _, err := t.tx.Exec(ctx, `INSERT INTO tenants (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING`, tenant); err != nil {
		return nil, fmt.Errorf("store: ensure tenant %q: %w", tenant, err)
	}
	return t.TenantQuotaForUpdate(ctx, tenant)
}

// TenantQuotaForUpdate locks tenant's row and returns its override
// (ErrNotFound when there is no such tenant).
func (t *Tx) TenantQuotaForUpdate(ctx context.Context, tenant string) (*TenantQuota, error) {
	q, err := scanTenantQuota(t.tx.QueryRow(ctx, `SELECT id, delivery_quota_per_minute, now() FROM tenants WHERE id = $1 FOR UPDATE`, tenant))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store: lock tenant quota: %w", err)
	}
	return q, err
}

// SetTenantQuota stores tenant's override (nil clears it) and returns it
// (ErrNotFound when there is no such tenant).
func (t *Tx) SetTenantQuota(ctx context.Context, tenant string, perMinute *int64) (*TenantQuota, error) {
	q, err := scanTenantQuota(t.tx.QueryRow(ctx, `UPDATE tenants SET delivery_quota_per_minute = $2
		WHERE id = $1 RETURNING id, delivery_quota_per_minute, now()`, tenant, perMinute))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store: set tenant quota: %w", err)
	}
	return q, err
}

func scanTenantQuota(row pgx.Row) (*TenantQuota, error) {
	var q TenantQuota
	err := row.Scan(&q.TenantID, &q.PerMinute, &q.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &q, nil
}

// ListTenantQuotas lists the tenants with an override after the tenant id
// after ("" from the start), at most limit, by id.
func (s *Store) ListTenantQuotas(ctx context.Context, after string, limit int) ([]TenantQuota, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, delivery_quota_per_minute, now() FROM tenants
		WHERE id > $1 AND delivery_quota_per_minute IS NOT NULL ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list tenant quotas: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TenantQuota, error) {
		q, err := scanTenantQuota(row)
		if err != nil {
			return TenantQuota{}, err
		}
		return *q, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list tenant quotas: %w", err)
	}
	return out, nil
}

// RepublishTenantQuotas returns every tenant with an override, read FOR
// SHARE like RepublishRollout.
func (t *Tx) RepublishTenantQuotas(ctx context.Context) ([]TenantQuota, error) {
	rows, err := t.tx.Query(ctx, `SELECT id, delivery_quota_per_minute, now() FROM tenants
		WHERE delivery_quota_per_minute IS NOT NULL ORDER BY id FOR SHARE`)
	if err != nil {
		return nil, fmt.Errorf("store: tenant quotas: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TenantQuota, error) {
		q, err := scanTenantQuota(row)
		if err != nil {
			return TenantQuota{}, err
		}
		return *q, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: tenant quotas: %w", err)
	}
	return out, nil
}

// QuotaSuppression is one quota-usage record as stored.
type QuotaSuppression struct {
	Partition  int32
	Offset     int64
	TenantID   string
	Minute     time.Time
	Scope      string
	Suppressed int64
	Limit      int64
}

// InsertQuotaSuppressions stores quota-usage records, each once: a record
// read again (same partition and offset) changes nothing. It returns how
// many were new.
func (t *Tx) InsertQuotaSuppressions(ctx context.Context, rows []QuotaSuppression) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	parts := make([]int32, len(rows))
	offs := make([]int64, len(rows))
	tenants := make([]string, len(rows))
	minutes := make([]time.Time, len(rows))
	scopes := make([]string, len(rows))
	counts := make([]int64, len(rows))
	limits := make([]int64, len(rows))
	for i, r := range rows {
		parts[i], offs[i], tenants[i], minutes[i], scopes[i], counts[i], limits[i] = r.Partition, r.Offset, r.TenantID, r.Minute, r.Scope, r.Suppressed, r.Limit
	}
	tag, err := t.tx.Exec(ctx, `INSERT INTO quota_suppressions (kafka_partition, kafka_offset, tenant_id, minute, scope, suppressed, quota_limit)
		SELECT * FROM unnest($1::int[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[], $6::bigint[], $7::bigint[])
		ON CONFLICT (kafka_partition, kafka_offset) DO NOTHING`, parts, offs, tenants, minutes, scopes, counts, limits)
	if err != nil {
		return 0, fmt.Errorf("store: insert quota suppressions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// QuotaMinute is the suppressions of one minute of event time.
type QuotaMinute struct {
	Minute     time.Time
	Suppressed int64
}

// QuotaUsage is what a tenant's quota suppressed lately.
type QuotaUsage struct {
	// Override is the tenant's operator-set cap (nil: the default).
	Override *int64
	// LastHour and Last24h sum the suppressions of the minutes (event
	// time) since now-1h and now-24h.
	LastHour, Last24h int64
	// Minutes are the minutes since now-1h with any, newest first.
	Minutes []QuotaMinute
}

// QuotaUsage returns the tenant transaction's tenant's override and
// suppressions as of now (row-level security keeps it to the tenant).
func (t *Tx) QuotaUsage(ctx context.Context, now time.Time) (*QuotaUsage, error) {
	var u QuotaUsage
	err := t.tx.QueryRow(ctx, `SELECT delivery_quota_per_minute FROM tenants WHERE id = $1`, t.tenant).Scan(&u.Override)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("store: tenant quota: %w", err)
	}
	hour, day := now.Add(-time.Hour), now.Add(-24*time.Hour)
	if err := t.tx.QueryRow(ctx, `SELECT COALESCE(sum(suppressed) FILTER (WHERE minute >= $2), 0)::bigint, COALESCE(sum(suppressed), 0)::bigint
		FROM quota_suppressions WHERE tenant_id = $1 AND minute >= $3`, t.tenant, hour, day).Scan(&u.LastHour, &u.Last24h); err != nil {
		return nil, fmt.Errorf("store: quota suppressions: %w", err)
	}
	rows, err := t.tx.Query(ctx, `SELECT minute, sum(suppressed)::bigint FROM quota_suppressions
		WHERE tenant_id = $1 AND minute >= $2 GROUP BY minute ORDER BY minute DESC`, t.tenant, hour)
	if err != nil {
		return nil, fmt.Errorf("store: quota minutes: %w", err)
	}
	u.Minutes, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (QuotaMinute, error) {
		var m QuotaMinute
		err := row.Scan(&m.Minute, &m.Suppressed)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: quota minutes: %w", err)
	}
	return &u, nil
}

// QuotaUsageRetention is how long quota_suppressions rows are kept.
const QuotaUsageRetention = 30 * 24 * time.Hour

// PruneQuotaSuppressions deletes the rows stored before before, in batches,
// and returns how many.
func (s *Store) PruneQuotaSuppressions(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM quota_suppressions WHERE (kafka_partition, kafka_offset) IN
			(SELECT kafka_partition, kafka_offset FROM quota_suppressions WHERE created_at < $1 LIMIT $2)`, before, retentionBatch)
		if err != nil {
			return total, fmt.Errorf("store: prune quota suppressions: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < retentionBatch {
			return total, nil
		}
	}
}
