package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Aggregates of the delivery history for the dashboard's overview: counts
// of attempts by outcome and latency percentiles over time, and each
// endpoint's health. They read delivery_attempts (one row per attempt,
// written by the recorder), whose outcome says what became of the alert
// after the attempt: delivered, retry (another attempt is scheduled),
// dead (dead-lettered), endpoint_gone (404/410: the rule was disabled).
// Every statement runs in a tenant transaction (row-level security).

// Series kinds of a StatsRow.
const (
	// SeriesAll is the row of every attempt (not grouped).
	SeriesAll = 0
	// SeriesGroup is the row of one rule or endpoint (Key).
	SeriesGroup = 1
	// SeriesOther is the row of the rules or endpoints past the cap.
	SeriesOther = 2
)

// StatsQuery selects the attempts of [From, To) in buckets of Bucket
// (From and To multiples of it), optionally grouped by GroupBy ("rule",
// "endpoint" or "": none) with at most MaxSeries groups of their own (by
// volume; the rest are SeriesOther).
type StatsQuery struct {
	From, To  time.Time
	Bucket    time.Duration
	GroupBy   string
	MaxSeries int
}

// Counts counts attempts by outcome, with the latency percentiles (ms) of
// the delivered ones (nil when none).
type Counts struct {
	Delivered, Retrying, Dead, Gone int64
	P50, P95, P99                   *int64
}

// percentiles computes p50, p95 and p99 of the latencies of delivered
// attempts as one array: an ordered-set aggregate sorts its group once
// for all the fractions it is given, where three aggregates sort it three
// times. percentile_disc: observed values, not interpolated ones. NULL
// when the group has no delivered attempt.
const percentiles = `percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) FILTER (WHERE outcome = 'delivered')`

// setPercentiles sets c's percentiles from the array of percentiles (nil:
// none).
func (c *Counts) setPercentiles(pct []int64) {
	if len(pct) == 3 {
		c.P50, c.P95, c.P99 = &pct[0], &pct[1], &pct[2]
	}
}

// StatsRow is the counts of one series in one bucket (Bucket nil: over the
// whole window).
type StatsRow struct {
	Series int
	Key    string // the rule or endpoint id (SeriesGroup only)
	Bucket *time.Time
	Counts
}

// DeliveryStats returns the counts of q: for SeriesAll and for each group
// (when grouped), one row per bucket of [From, To) — empty ones too, with
// zeros — and one over the whole window, ordered by series, key, and
// bucket (the window's row first).
func (t *Tx) DeliveryStats(ctx context.Context, q StatsQuery) ([]StatsRow, error) {
	group := `''`
	switch q.GroupBy {
	case "rule":
		group = `rule_id`
	case "endpoint":
		group = `endpoint_id`
	case "":
	default:
		return nil, fmt.Errorf("store: delivery stats: unknown grouping %q", q.GroupBy)
	}
	// w: the window's attempts, each with its bucket and group. a: each
	// with its series (the groups with the most attempts get their own,
	// the rest share SeriesOther; every attempt is SeriesAll's when not
	// grouped). agg: counts and percentiles per grouping set (s NULL:
	// every attempt; b -infinity, before every bucket: the whole window, so
	// that the join below is on plain keys); its window rows name the
	// series. The answer crosses every series with every bucket of
	// generate_series and the window, so an empty bucket is a row of
	// zeros.
	a, cols, sets := `SELECT outcome, latency_ms, b FROM w`, `0 AS s, '' AS k`, `(b), ()`
	args := []any{t.tenant, q.From, q.To, q.Bucket}
	if q.GroupBy != "" {
		args = append(args, q.MaxSeries)
		a = `SELECT CASE WHEN top.g IS NULL THEN 2 ELSE 1 END AS s, coalesce(top.g, '') AS k, w.outcome, w.latency_ms, w.b
			FROM w LEFT JOIN (SELECT g FROM w GROUP BY g ORDER BY count(*) DESC, g LIMIT $5) top ON top.g = w.g`
		cols, sets = `coalesce(s, 0) AS s, coalesce(k, '') AS k`, `(s, k, b), (s, k), (b), ()`
	}
	// The window's attempts are sorted for the grouping sets and the
	// percentiles: in memory, not on disk, up to a busy tenant's week
	// (300k attempts sort in about 25MB). For this transaction only; a sort
	// node may take this much, so it is not raised further.
	if _, err := t.tx.Exec(ctx, `SELECT set_config('work_mem', '32MB', true)`); err != nil {
		return nil, fmt.Errorf("store: delivery stats: %w", err)
	}
	rows, err := t.tx.Query(ctx, `WITH w AS (
			SELECT `+group+` AS g, outcome, latency_ms, date_bin($4::interval, attempted_at, $2::timestamptz) AS b
			FROM delivery_attempts WHERE tenant_id = $1 AND attempted_at >= $2 AND attempted_at < $3
		), a AS (`+a+`
		), agg AS (
			SELECT `+cols+`, coalesce(b, '-infinity') AS b,
				count(*) FILTER (WHERE outcome = 'delivered') AS delivered,
				count(*) FILTER (WHERE outcome = 'retry') AS retrying,
				count(*) FILTER (WHERE outcome = 'dead') AS dead,
				count(*) FILTER (WHERE outcome = 'endpoint_gone') AS gone,
				`+percentiles+` AS pct
			FROM a GROUP BY GROUPING SETS (`+sets+`)
		), buckets AS (
			SELECT b FROM generate_series($2::timestamptz, $3::timestamptz - $4::interval, $4::interval) b
			UNION ALL SELECT '-infinity'
		)
		SELECT series.s, series.k, nullif(buckets.b, '-infinity'), coalesce(agg.delivered, 0), coalesce(agg.retrying, 0), coalesce(agg.dead, 0),
			coalesce(agg.gone, 0), agg.pct
		FROM (SELECT s, k FROM agg WHERE b = '-infinity') series CROSS JOIN buckets
		LEFT JOIN agg ON agg.s = series.s AND agg.k = series.k AND agg.b = buckets.b
		ORDER BY series.s, series.k, buckets.b`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: delivery stats: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StatsRow, error) {
		var r StatsRow
		var pct []int64
		err := row.Scan(&r.Series, &r.Key, &r.Bucket, &r.Delivered, &r.Retrying, &r.Dead, &r.Gone, &pct)
		r.setPercentiles(pct)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: delivery stats: %w", err)
	}
	return out, nil
}

// Names returns the names of the tenant's rules ("rule") or endpoints
// ("endpoint") among ids, deleted ones included, by id; ids the tenant
// never had are absent.
func (t *Tx) Names(ctx context.Context, of string, ids []string) (map[string]string, error) {
	table := "alert_rules"
	if of == "endpoint" {
		table = "webhook_endpoints"
	}
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := t.tx.Query(ctx, `SELECT id, name FROM `+table+` WHERE tenant_id = $1 AND id = ANY($2)`, t.tenant, ids)
	if err != nil {
		return nil, fmt.Errorf("store: names of %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("store: names of %s: %w", table, err)
		}
		out[id] = name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: names of %s: %w", table, err)
	}
	return out, nil
}

// EndpointHealthRow is an endpoint with what its recent attempts say of
// its health.
type EndpointHealthRow struct {
	ID, Name, Kind string
	IsActive       bool
	DisabledReason *string
	CreatedAt      time.Time
	// Counts are the endpoint's attempts of the window.
	Counts
	// LastError is the endpoint's latest failed attempt, nil if none.
	LastError *AttemptRow
	// LastErrorAlertID is the alert of LastError.
	LastErrorAlertID string
	// LastDeliveredAt is when an attempt to it last succeeded.
	LastDeliveredAt *time.Time
	// BreakerOpen reports an open endpoint_unhealthy notice: a dispatcher
	// reported its breaker open and not closed since. BreakerSince is when
	// it opened (open) or when it last closed (closed; nil when it was
	// never reported open). ConsecutiveFailures is the report's count.
	BreakerOpen         bool
	BreakerSince        *time.Time
	ConsecutiveFailures *int64
}

// EndpointHealthQuery selects a page of the tenant's endpoints (not
// deleted), in the order of the endpoint list (created_at, id), with the
// counts of their attempts in [From, To).
type EndpointHealthQuery struct {
	From, To time.Time
	After    *Cursor
	Limit    int
}

// EndpointHealth returns a page of q and the cursor of the next ("" when
// it is the last).
func (t *Tx) EndpointHealth(ctx context.Context, q EndpointHealthQuery) ([]*EndpointHealthRow, string, error) {
	args := []any{t.tenant, q.From, q.To, q.Limit + 1}
	after := ""
	if q.After != nil {
		args = append(args, q.After.CreatedAt, q.After.ID)
		after = ` AND (e.created_at, e.id) > ($5, $6)`
	}
	// Each lateral join reads one endpoint's attempts through an index of
	// (tenant_id, endpoint_id, attempted_at): the window's, the latest
	// failure (a partial index of failures), the latest success.
	rows, err := t.tx.Query(ctx, `SELECT e.id, e.name, e.kind, e.is_active, e.disabled_reason, e.created_at,
			c.delivered, c.retrying, c.dead, c.gone, c.pct,
			f.alert_id, f.delivery_id, f.attempt, f.outcome, f.status_code, f.latency_ms, f.error_class, f.error, f.response_excerpt,
			f.attempted_at, ok.attempted_at,
			o.id IS NOT NULL, coalesce((o.detail->>'since')::timestamptz, (r.detail->>'healthy_at')::timestamptz),
			coalesce(o.detail->'consecutive_failures', r.detail->'consecutive_failures')::bigint
		FROM webhook_endpoints e
		CROSS JOIN LATERAL (
			SELECT count(*) FILTER (WHERE x.outcome = 'delivered') AS delivered,
				count(*) FILTER (WHERE x.outcome = 'retry') AS retrying,
				count(*) FILTER (WHERE x.outcome = 'dead') AS dead,
				count(*) FILTER (WHERE x.outcome = 'endpoint_gone') AS gone,
				`+percentiles+` AS pct
			FROM delivery_attempts x
			WHERE x.tenant_id = e.tenant_id AND x.endpoint_id = e.id AND x.attempted_at >= $2 AND x.attempted_at < $3) c
		LEFT JOIN LATERAL (
			SELECT x.* FROM delivery_attempts x
			WHERE x.tenant_id = e.tenant_id AND x.endpoint_id = e.id AND x.outcome <> 'delivered'
			ORDER BY x.attempted_at DESC LIMIT 1) f ON true
		LEFT JOIN LATERAL (
			SELECT x.attempted_at FROM delivery_attempts x
			WHERE x.tenant_id = e.tenant_id AND x.endpoint_id = e.id AND x.outcome = 'delivered'
			ORDER BY x.attempted_at DESC LIMIT 1) ok ON true
		LEFT JOIN notices o ON o.tenant_id = e.tenant_id AND o.endpoint_id = e.id AND o.kind = 'endpoint_unhealthy'
			AND o.resolved_at IS NULL
		LEFT JOIN LATERAL (
			SELECT n.detail FROM notices n
			WHERE n.tenant_id = e.tenant_id AND n.endpoint_id = e.id AND n.kind = 'endpoint_unhealthy' AND n.resolved_at IS NOT NULL
			ORDER BY n.created_at DESC LIMIT 1) r ON o.id IS NULL
		WHERE e.tenant_id = $1 AND e.deleted_at IS NULL`+after+`
		ORDER BY e.created_at, e.id LIMIT $4`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: endpoint health: %w", err)
	}
	defer rows.Close()
	var out []*EndpointHealthRow
	for rows.Next() {
		var h EndpointHealthRow
		var fAlert, fDelivery, fOutcome *string
		var fAttempt *int
		var fLatency *int64
		var fAt *time.Time
		var a AttemptRow
		var pct []int64
		if err := rows.Scan(&h.ID, &h.Name, &h.Kind, &h.IsActive, &h.DisabledReason, &h.CreatedAt,
			&h.Delivered, &h.Retrying, &h.Dead, &h.Gone, &pct,
			&fAlert, &fDelivery, &fAttempt, &fOutcome, &a.StatusCode, &fLatency, &a.ErrorClass, &a.Error, &a.ResponseExcerpt,
			&fAt, &h.LastDeliveredAt, &h.BreakerOpen, &h.BreakerSince, &h.ConsecutiveFailures); err != nil {
			return nil, "", fmt.Errorf("store: endpoint health: %w", err)
		}
		h.setPercentiles(pct)
		if fAlert != nil && fDelivery != nil && fAttempt != nil && fOutcome != nil && fLatency != nil && fAt != nil {
			a.DeliveryID, a.Attempt, a.Outcome, a.LatencyMS, a.AttemptedAt = *fDelivery, *fAttempt, *fOutcome, *fLatency, *fAt
			h.LastError, h.LastErrorAlertID = &a, *fAlert
		}
		out = append(out, &h)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("store: endpoint health: %w", err)
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		last := out[len(out)-1]
		next = Cursor{CreatedAt: last.CreatedAt, ID: last.ID}.String()
	}
	return out, next, nil
}
