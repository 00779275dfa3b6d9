package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Health notices (docs/design/aggregate-alerts.md §6): the recorder writes
// them in system transactions, each under a deterministic id (NoticeID), so
// an occurrence read twice makes one notice; the API lists and
// acknowledges them, and keeps the tenant's notice settings, in tenant
// transactions.

// Notice kinds.
const (
	NoticeRuleDisabled      = "rule_disabled"
	NoticeEndpointUnhealthy = "endpoint_unhealthy"
	NoticeDeadLetters       = "dead_letters"
	NoticeQuotaExceeded     = "quota_exceeded"
)

// NoticeKinds lists every kind, in the order the docs and the API show them.
var NoticeKinds = []string{NoticeRuleDisabled, NoticeEndpointUnhealthy, NoticeDeadLetters, NoticeQuotaExceeded}

// NoticeID is the id of tenant's notice of an occurrence named by
// dedupKey: ntc_ and the first 16 bytes (hex) of SHA-256(tenant, dedupKey).
func NoticeID(tenant, dedupKey string) string {
	return "ntc_" + hash16(tenant, dedupKey)
}

// NoticeAlertID is the alert id (webhook-id) of the tenant.notice delivery
// of notice id: computed as the processor computes an alert's, with the
// rule id "notice" and the notice id as the event.
func NoticeAlertID(tenant, noticeID string) string {
	return "alrt_" + hash16(tenant, "notice", noticeID)
}

func hash16(parts ...string) string {
	h := sha256.New()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Notice is a notices row.
type Notice struct {
	ID, TenantID, Kind, DedupKey string
	RuleID, EndpointID           string // "" when none
	Title                        string
	Detail                       map[string]any
	Count                        int64
	CreatedAt, UpdatedAt         time.Time
	ResolvedAt, AcknowledgedAt   *time.Time
	AcknowledgedBy               string
	DeliveryAlertID              string
}

const noticeCols = `id, tenant_id, kind, dedup_key, coalesce(rule_id, ''), coalesce(endpoint_id, ''), title, detail, count,
	created_at, updated_at, resolved_at, acknowledged_at, coalesce(acknowledged_by, ''), coalesce(delivery_alert_id, '')`

func scanNotice(row pgx.Row) (*Notice, error) {
	var n Notice
	err := row.Scan(&n.ID, &n.TenantID, &n.Kind, &n.DedupKey, &n.RuleID, &n.EndpointID, &n.Title, &n.Detail, &n.Count,
		&n.CreatedAt, &n.UpdatedAt, &n.ResolvedAt, &n.AcknowledgedAt, &n.AcknowledgedBy, &n.DeliveryAlertID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan notice: %w", err)
	}
	if n.Detail == nil {
		n.Detail = map[string]any{}
	}
	return &n, nil
}

// InsertNotice stores n under NoticeID(n.TenantID, n.DedupKey) (its ID is
// set) and reports whether it is new: a notice stored before is left as it
// is. An endpoint_unhealthy notice is not stored either while the endpoint
// has one open, or when one stored before covers the same stretch of
// time (n.Detail["since"] to at: a replayed record of another dispatcher).
// A tenant without a tenants row gets none (nothing to show it to; the
// record that reports it is still written). System transactions only (the
// recorder).
func (t *Tx) InsertNotice(ctx context.Context, n *Notice, at time.Time) (bool, error) {
	n.ID = NoticeID(n.TenantID, n.DedupKey)
	detail, err := json.Marshal(n.Detail)
	if err != nil {
		return false, fmt.Errorf("store: insert notice: %w", err)
	}
	if n.Count == 0 {
		n.Count = 1
	}
	// An endpoint's unhealthy stretches overlap when one began before the
	// other ended (healthy_at, set when it is resolved; open: not yet).
	covered := `false`
	args := []any{n.ID, n.TenantID, n.Kind, Text(n.DedupKey), orNullText(n.RuleID), orNullText(n.EndpointID), Text(n.Title),
		JSON(detail), n.Count}
	if n.Kind == NoticeEndpointUnhealthy {
		covered = `EXISTS (SELECT 1 FROM notices o WHERE o.tenant_id = $2 AND o.endpoint_id = $6 AND o.kind = $3
			AND (o.detail->>'since')::timestamptz <= $10
			AND (o.detail->>'healthy_at' IS NULL OR (o.detail->>'healthy_at')::timestamptz >= ($8::jsonb->>'since')::timestamptz))`
		args = append(args, at)
	}
	var created time.Time
	err = t.tx.QueryRow(ctx, `INSERT INTO notices (id, tenant_id, kind, dedup_key, rule_id, endpoint_id, title, detail, count)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9 WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $2) AND NOT `+covered+`
		ON CONFLICT DO NOTHING
		RETURNING created_at`, args...).Scan(&created)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: insert notice: %w", err)
	}
	n.CreatedAt, n.UpdatedAt = created, created
	return true, nil
}

// ResolveUnhealthy resolves tenant's open endpoint_unhealthy notice of
// endpoint if its stretch began before healthyAt (a healthy report read
// again long after does not resolve a later stretch), noting healthyAt in
// its detail. It reports whether it resolved one. System transactions.
func (t *Tx) ResolveUnhealthy(ctx context.Context, tenant, endpoint string, healthyAt time.Time) (bool, error) {
	tag, err := t.tx.Exec(ctx, `UPDATE notices SET resolved_at = now(), updated_at = now(),
			detail = detail || jsonb_build_object('healthy_at', $3::timestamptz)
		WHERE tenant_id = $1 AND endpoint_id = $2 AND kind = 'endpoint_unhealthy' AND resolved_at IS NULL
			AND (detail->>'since')::timestamptz <= $3`, tenant, endpoint, healthyAt)
	if err != nil {
		return false, fmt.Errorf("store: resolve unhealthy notice: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// DeadLetterHour is the dead letters of one endpoint of a tenant in one UTC
// hour.
type DeadLetterHour struct {
	TenantID, EndpointID string
	Hour                 time.Time // truncated to the hour, UTC
}

// CountDeadLetters counts the dead letters of h that are worth a notice:
// not test or notice deliveries, not set aside because the tenant was
// switched off (tenant_disabled).
func (t *Tx) CountDeadLetters(ctx context.Context, h DeadLetterHour) (int64, error) {
	var n int64
	err := t.tx.QueryRow(ctx, `SELECT count(*) FROM dead_letters
		WHERE tenant_id = $1 AND endpoint_id = $2 AND dead_at >= $3 AND dead_at < $3 + interval '1 hour'
			AND rule_id NOT IN ('test', 'notice') AND last_error NOT LIKE 'tenant_disabled%'`,
		h.TenantID, h.EndpointID, h.Hour).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count dead letters: %w", err)
	}
	return n, nil
}

// SetNoticeCount sets the count of notice id (recomputed by the caller from
// the rows it counts: idempotent).
func (t *Tx) SetNoticeCount(ctx context.Context, id string, count int64) error {
	if _, err := t.tx.Exec(ctx, `UPDATE notices SET count = $2, updated_at = now() WHERE id = $1 AND count <> $2`, id, count); err != nil {
		return fmt.Errorf("store: set notice count: %w", err)
	}
	return nil
}

// CountQuotaSuppressed sums tenant's suppressed alerts in the UTC hour
// that begins at hour (quota_suppressions, written by the recorder from
// the quota-usage topic).
func (t *Tx) CountQuotaSuppressed(ctx context.Context, tenant string, hour time.Time) (int64, error) {
	var n int64
	err := t.tx.QueryRow(ctx, `SELECT coalesce(sum(suppressed), 0)::bigint FROM quota_suppressions
		WHERE tenant_id = $1 AND minute >= $2 AND minute < $2 + interval '1 hour'`, tenant, hour).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count quota suppressions: %w", err)
	}
	return n, nil
}

// ResolveRuleDisabled resolves the tenant's open rule_disabled notices of
// rule (the rule was enabled again). Tenant transactions.
func (t *Tx) ResolveRuleDisabled(ctx context.Context, rule string) error {
	if _, err := t.tx.Exec(ctx, `UPDATE notices SET resolved_at = now()
		WHERE tenant_id = $1 AND rule_id = $2 AND kind = 'rule_disabled' AND resolved_at IS NULL`, t.tenant, rule); err != nil {
		return fmt.Errorf("store: resolve rule notices: %w", err)
	}
	return nil
}

// NoticeQuery selects a page of a tenant's notices, newest first.
type NoticeQuery struct {
	Kind string // "": any
	// State: "open" (not resolved), "resolved", or "" (any).
	State string
	// Acknowledged: only acknowledged (true) or not (false) ones; nil: any.
	Acknowledged *bool
	After        *Cursor // only notices older than this position
	Limit        int
}

// ListNotices returns a page of the tenant's notices, newest first.
func (t *Tx) ListNotices(ctx context.Context, q NoticeQuery) ([]*Notice, error) {
	c := conds{args: []any{t.tenant, q.Limit}}
	if q.Kind != "" {
		c.add("kind = $%d", q.Kind)
	}
	switch q.State {
	case "open":
		c.addRaw("resolved_at IS NULL")
	case "resolved":
		c.addRaw("resolved_at IS NOT NULL")
	}
	if q.Acknowledged != nil {
		c.add("(acknowledged_at IS NOT NULL) = $%d", *q.Acknowledged)
	}
	c.before("created_at, id", q.After)
	rows, err := t.tx.Query(ctx, `SELECT `+noticeCols+` FROM notices WHERE tenant_id = $1`+c.where+`
		ORDER BY created_at DESC, id DESC LIMIT $2`, c.args...)
	if err != nil {
		return nil, fmt.Errorf("store: list notices: %w", err)
	}
	defer rows.Close()
	var out []*Notice
	for rows.Next() {
		n, err := scanNotice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list notices: %w", err)
	}
	return out, nil
}

// GetNotice returns the tenant's notice id, or ErrNotFound.
func (t *Tx) GetNotice(ctx context.Context, id string) (*Notice, error) {
	return scanNotice(t.tx.QueryRow(ctx, `SELECT `+noticeCols+` FROM notices WHERE tenant_id = $1 AND id = $2`, t.tenant, id))
}

// AcknowledgeNotice marks the tenant's notice id acknowledged by actor
// (once: acknowledging it again changes nothing) and returns it before and
// after, or ErrNotFound.
func (t *Tx) AcknowledgeNotice(ctx context.Context, id, actor string) (before, after *Notice, err error) {
	before, err = scanNotice(t.tx.QueryRow(ctx, `SELECT `+noticeCols+` FROM notices WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
		t.tenant, id))
	if err != nil {
		return nil, nil, err
	}
	if before.AcknowledgedAt != nil {
		return before, before, nil
	}
	after, err = scanNotice(t.tx.QueryRow(ctx, `UPDATE notices SET acknowledged_at = now(), acknowledged_by = $3
		WHERE tenant_id = $1 AND id = $2 RETURNING `+noticeCols, t.tenant, id, Text(actor)))
	if err != nil {
		return nil, nil, err
	}
	return before, after, nil
}

// NoticeSettings is a tenant's tenant_settings row as far as notices go.
type NoticeSettings struct {
	// EndpointID is the endpoint notices are delivered to ("": none).
	EndpointID string
	// Kinds are the kinds delivered there.
	Kinds     []string
	UpdatedAt time.Time
	Version   int64
}

// GetNoticeSettings returns the tenant's notice settings; a tenant that
// never set them has no endpoint and every kind, at version 0.
func (t *Tx) GetNoticeSettings(ctx context.Context) (*NoticeSettings, error) {
	s, err := t.noticeSettings(ctx, t.tenant)
	if errors.Is(err, ErrNotFound) {
		return &NoticeSettings{Kinds: slices.Clone(NoticeKinds)}, nil
	}
	return s, err
}

func (t *Tx) noticeSettings(ctx context.Context, tenant string) (*NoticeSettings, error) {
	var s NoticeSettings
	err := t.tx.QueryRow(ctx, `SELECT coalesce(notice_endpoint_id, ''), notice_kinds, updated_at, version
		FROM tenant_settings WHERE tenant_id = $1`, tenant).Scan(&s.EndpointID, &s.Kinds, &s.UpdatedAt, &s.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: notice settings: %w", err)
	}
	if s.Kinds == nil {
		s.Kinds = []string{}
	}
	return &s, nil
}

// PutNoticeSettings stores the tenant's notice settings (a new version)
// and returns them.
func (t *Tx) PutNoticeSettings(ctx context.Context, endpointID string, kinds []string) (*NoticeSettings, error) {
	var s NoticeSettings
	err := t.tx.QueryRow(ctx, `INSERT INTO tenant_settings (tenant_id, notice_endpoint_id, notice_kinds) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id) DO UPDATE SET notice_endpoint_id = excluded.notice_endpoint_id, notice_kinds = excluded.notice_kinds,
			updated_at = now(), version = tenant_settings.version + 1
		RETURNING coalesce(notice_endpoint_id, ''), notice_kinds, updated_at, version`,
		t.tenant, orNullText(endpointID), kinds).Scan(&s.EndpointID, &s.Kinds, &s.UpdatedAt, &s.Version)
	if err != nil {
		return nil, fmt.Errorf("store: put notice settings: %w", err)
	}
	return &s, nil
}

// NoticeEndpoint returns the endpoint tenant's notices of kind are
// delivered to: named by its settings, of that kind, and active (not
// deleted, not disabled); "" when there is none. System transactions.
func (t *Tx) NoticeEndpoint(ctx context.Context, tenant, kind string) (string, error) {
	var id string
	err := t.tx.QueryRow(ctx, `SELECT s.notice_endpoint_id FROM tenant_settings s
		JOIN webhook_endpoints e ON e.tenant_id = s.tenant_id AND e.id = s.notice_endpoint_id
		WHERE s.tenant_id = $1 AND $2 = ANY (s.notice_kinds) AND e.is_active AND e.deleted_at IS NULL`, tenant, kind).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: notice endpoint: %w", err)
	}
	return id, nil
}

// QueueNoticeDelivery puts the delivery record value of notice id in the
// outbox for topic under key, and notes its alert id on the notice, in the
// caller's transaction: the delivery is published iff the notice is
// stored. System transactions (the recorder).
func (t *Tx) QueueNoticeDelivery(ctx context.Context, id, alertID, topic string, key, value []byte) error {
	if err := t.InsertOutbox(ctx, topic, string(key), value); err != nil {
		return err
	}
	if _, err := t.tx.Exec(ctx, `UPDATE notices SET delivery_alert_id = $2 WHERE id = $1`, id, alertID); err != nil {
		return fmt.Errorf("store: note notice delivery: %w", err)
	}
	return nil
}
