package controlplane

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The delivery quota (docs/design/aggregate-alerts.md §5): the processor
// caps each tenant's alerts per minute of event time at its override
// (tenants.delivery_quota_per_minute), else EXO_TENANT_DELIVERY_QUOTA, and
// all tenants' at EXO_GLOBAL_DELIVERY_QUOTA. Operators set overrides here
// or with `exo-alerts quota`: each change writes the row, an audit row and
// an outbox record for the compacted tenant-limits topic the processor
// tails, in one transaction, as the rollout does. A tenant sees its cap
// and what it suppressed with GET /v1/quota.

// Audit of the quota.
const (
	actionQuotaSet   = "quota.set"
	actionQuotaClear = "quota.clear"
	auditTenantQuota = "tenant_quota"
)

// Limit sources of GET /v1/quota.
const (
	limitOperator = "operator"
	limitDefault  = "default"
	limitNone     = "none"
)

// quotaAudit is what the audit trail keeps of an override: null for none.
type quotaAudit struct {
	DeliveryQuotaPerMinute *int64 `json:"delivery_quota_per_minute"`
}

// QuotaDefaults are the caps in force without an override.
type QuotaDefaults struct {
	TenantPerMinute int64 `json:"tenant_per_minute" doc:"EXO_TENANT_DELIVERY_QUOTA as this control plane reads it: alerts per tenant per minute of event time; 0: no cap"`
	GlobalPerMinute int64 `json:"global_per_minute" doc:"EXO_GLOBAL_DELIVERY_QUOTA as this control plane reads it: alerts over all tenants per minute; 0: no cap"`
}

// TenantQuota is a tenant's override as the operator API shows it.
type TenantQuota struct {
	TenantID               string `json:"tenant_id" example:"acme"`
	DeliveryQuotaPerMinute *int64 `json:"delivery_quota_per_minute" doc:"The tenant's cap per minute of event time (0: unlimited); null: none, the default applies"`
	EffectivePerMinute     int64  `json:"effective_per_minute" doc:"The cap in force for the tenant: the override, else the default; 0: no cap"`
}

// QuotaSet is the body of PUT /v1/quotas/tenants/{tenant_id}.
type QuotaSet struct {
	DeliveryQuotaPerMinute int64 `json:"delivery_quota_per_minute" minimum:"0" example:"600" doc:"Alerts per minute of event time the tenant may have delivered; 0: unlimited (even when a default is set)"`
}

// QuotaMinute is one minute's suppressions in GET /v1/quota.
type QuotaMinute struct {
	Minute     time.Time `json:"minute" doc:"The minute of event time (UTC, whole minute)"`
	Suppressed int64     `json:"suppressed" doc:"Alerts suppressed in that minute"`
}

// Quota is a tenant's delivery quota and what it suppressed.
type Quota struct {
	LimitPerMinute       int64         `json:"limit_per_minute" example:"600" doc:"Your alerts delivered per minute of event time at most; 0: no cap"`
	LimitSource          string        `json:"limit_source" enum:"operator,default,none" doc:"operator: set for you by the operator; default: the deployment's default; none: no cap"`
	GlobalLimitPerMinute int64         `json:"global_limit_per_minute" example:"10000" doc:"The cap over all tenants per minute, checked after yours; 0: none"`
	SuppressedLastHour   int64         `json:"suppressed_last_hour" doc:"Your alerts the quota suppressed (no delivery) in the minutes of the last hour"`
	SuppressedLast24h    int64         `json:"suppressed_last_24h" doc:"The same over the last 24 hours"`
	Minutes              []QuotaMinute `json:"minutes" doc:"The minutes of the last hour with any suppression, newest first"`
}

type quotaListIn struct {
	Cursor string `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit  int    `query:"limit" minimum:"1" maximum:"1000" default:"200" doc:"The most items on a page"`
}

// TenantQuotaList is the operator's view of the delivery quotas: the defaults and a page of the tenants with an override (GET /v1/quotas).
type TenantQuotaList struct {
	Defaults   QuotaDefaults  `json:"defaults"`
	Tenants    []*TenantQuota `json:"tenants" doc:"The tenants with an override, by id"`
	NextCursor string         `json:"next_cursor" doc:"Pass as ?cursor= for the next page; empty on the last page"`
}

type quotaListOut struct {
	Link string `header:"Link" doc:"The next page's URL as <url>; rel=\"next\", when there is one"`
	Body TenantQuotaList
}

type quotaSetIn struct {
	TenantID string `path:"tenant_id" pattern:"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$" doc:"The tenant's id"`
	Body     QuotaSet
}

type quotaPath struct {
	TenantID string `path:"tenant_id" pattern:"^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$" doc:"The tenant's id"`
}

type tenantQuotaOut struct {
	Body TenantQuota
}

type quotaOut struct {
	Body Quota
}

func (s *Server) registerQuota(api huma.API) {
	sec := []map[string][]string{operator}
	const who = " Operator API keys only (`exo-alerts apikey create --role operator`); a tenant's key gets 403."
	huma.Register(api, huma.Operation{
		OperationID: "list-quotas", Method: http.MethodGet, Path: "/v1/quotas", Tags: []string{"Quotas"},
		Summary:     "Show the delivery quotas",
		Description: "The default caps (this control plane's EXO_TENANT_DELIVERY_QUOTA and EXO_GLOBAL_DELIVERY_QUOTA) and every tenant's override." + who,
		Security:    sec, Errors: []int{400, 401, 403},
	}, s.listQuotas)
	huma.Register(api, huma.Operation{
		OperationID: "set-tenant-quota", Method: http.MethodPut, Path: "/v1/quotas/tenants/{tenant_id}", Tags: []string{"Quotas"},
		Summary:     "Set a tenant's delivery quota",
		Description: "The tenant's cap of alerts per minute of event time (0: unlimited), in place of the default; the tenant is created if it is not known yet. In force in the processor within a second; audited (quota.set) in the tenant's trail." + who,
		Security:    sec, MaxBodyBytes: 4 << 10, Errors: []int{400, 401, 403, 422},
	}, s.setTenantQuota)
	huma.Register(api, huma.Operation{
		OperationID: "clear-tenant-quota", Method: http.MethodDelete, Path: "/v1/quotas/tenants/{tenant_id}", Tags: []string{"Quotas"},
		Summary:     "Clear a tenant's delivery quota",
		Description: "Removes the tenant's override: the default applies. Audited (quota.clear)." + who,
		Security:    sec, Errors: []int{401, 403, 404, 422},
	}, s.clearTenantQuota)
	huma.Register(api, huma.Operation{
		OperationID: "get-quota", Method: http.MethodGet, Path: "/v1/quota", Tags: []string{"Quotas"},
		Summary:     "Show your delivery quota",
		Description: "Your cap of alerts per minute of event time, where it comes from, and how many of your alerts it suppressed (no delivery was made) lately. Resolves, notices and test deliveries are never suppressed.",
		Security:    []map[string][]string{bearer}, Errors: []int{401, 403},
	}, s.getQuota)
}

// quotaChanges makes the operators' changes: for the API (actor the key)
// and the exo-alerts command (actor cli) alike.
type quotaChanges struct {
	db     *store.Store
	topics kafka.Topics
}

// record is the outbox row of an override on tenant-limits: a tombstone
// when the tenant has none.
func (c quotaChanges) record(q *store.TenantQuota) store.OutboxRow {
	row := store.OutboxRow{Topic: c.topics.TenantLimits, Key: q.TenantID}
	if q.PerMinute != nil {
		row.Value, _ = json.Marshal(schemas.TenantLimitsRecord{TenantID: q.TenantID, DeliveryQuotaPerMinute: *q.PerMinute, UpdatedAt: q.UpdatedAt.UTC()})
	}
	return row
}

// set stores tenant's override (nil clears it; the tenant is created when
// one is set and it is not known yet). changed is false, and nothing is
// written, when the tenant has that override already. Clearing the
// override of a tenant that does not exist is ErrNotFound.
func (c quotaChanges) set(ctx context.Context, tenant string, perMinute *int64, actor, requestID string) (q *store.TenantQuota, changed bool, xid string, err error) {
	xid, err = c.db.SystemXID(ctx, func(tx *store.Tx) error {
		var before *store.TenantQuota
		var err error
		if perMinute == nil {
			before, err = tx.TenantQuotaForUpdate(ctx, tenant)
		} else {
			before, err = tx.LockTenantQuota(ctx, tenant)
		}
		if err != nil {
			return err
		}
		if equalQuota(before.PerMinute, perMinute) {
			q, changed = before, false
			return nil
		}
		if q, err = tx.SetTenantQuota(ctx, tenant, perMinute); err != nil {
			return err
		}
		changed = true
		action := actionQuotaSet
		if perMinute == nil {
			action = actionQuotaClear
		}
		if err := tx.InsertAudit(ctx, tenant, actor, action, auditTenantQuota, tenant,
			quotaAudit{before.PerMinute}, quotaAudit{q.PerMinute}, requestID); err != nil {
			return err
		}
		return tx.InsertOutboxRows(ctx, []store.OutboxRow{c.record(q)})
	})
	return q, changed, xid, err
}

func equalQuota(a, b *int64) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// republishRows are the outbox rows of every override, for the relay's
// start-up republish.
func (c quotaChanges) republishRows(ctx context.Context, tx *store.Tx) ([]store.OutboxRow, error) {
	qs, err := tx.RepublishTenantQuotas(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]store.OutboxRow, 0, len(qs))
	for i := range qs {
		rows = append(rows, c.record(&qs[i]))
	}
	return rows, nil
}

func (s *Server) quotaChanges() quotaChanges { return quotaChanges{db: s.db, topics: s.cfg.Topics} }

func (s *Server) quotaView(q *store.TenantQuota) *TenantQuota {
	v := &TenantQuota{TenantID: q.TenantID, DeliveryQuotaPerMinute: q.PerMinute, EffectivePerMinute: s.cfg.TenantQuota}
	if q.PerMinute != nil {
		v.EffectivePerMinute = *q.PerMinute
	}
	return v
}

func quotaCursor(after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("q" + after))
}

func parseQuotaCursor(s string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	after, ok := strings.CutPrefix(string(raw), "q")
	if err != nil || !ok || after == "" {
		return "", errors.New("malformed cursor")
	}
	return after, nil
}

func (s *Server) listQuotas(ctx context.Context, in *quotaListIn) (*quotaListOut, error) {
	after := ""
	if in.Cursor != "" {
		var err error
		if after, err = queryCursor(in.Cursor, parseQuotaCursor); err != nil {
			return nil, err
		}
	}
	rows, err := s.db.ListTenantQuotas(ctx, after, in.Limit+1)
	if err != nil {
		return nil, s.internalError("list quotas", err)
	}
	out := &quotaListOut{}
	out.Body.Defaults = QuotaDefaults{TenantPerMinute: s.cfg.TenantQuota, GlobalPerMinute: s.cfg.GlobalQuota}
	out.Body.Tenants = []*TenantQuota{}
	for i := range rows {
		if i == in.Limit {
			out.Body.NextCursor = quotaCursor(rows[i-1].TenantID)
			out.Link = fmt.Sprintf(`</v1/quotas?cursor=%s&limit=%d>; rel="next"`, out.Body.NextCursor, in.Limit)
			break
		}
		out.Body.Tenants = append(out.Body.Tenants, s.quotaView(&rows[i]))
	}
	return out, nil
}

func (s *Server) setTenantQuota(ctx context.Context, in *quotaSetIn) (*tenantQuotaOut, error) {
	if in.Body.DeliveryQuotaPerMinute < 0 {
		return nil, huma.Error422UnprocessableEntity("bad quota", &huma.ErrorDetail{Location: "body.delivery_quota_per_minute", Message: "must be >= 0", Value: in.Body.DeliveryQuotaPerMinute})
	}
	n := in.Body.DeliveryQuotaPerMinute
	return s.changeQuota(ctx, in.TenantID, &n)
}

func (s *Server) clearTenantQuota(ctx context.Context, in *quotaPath) (*tenantQuotaOut, error) {
	return s.changeQuota(ctx, in.TenantID, nil)
}

func (s *Server) changeQuota(ctx context.Context, tenant string, perMinute *int64) (*tenantQuotaOut, error) {
	p := principalFrom(ctx)
	q, changed, xid, err := s.quotaChanges().set(ctx, tenant, perMinute, p.actor(), requestID(ctx))
	if errors.Is(err, store.ErrNotFound) {
		return nil, huma.Error404NotFound("no tenant " + tenant)
	}
	if err != nil {
		return nil, s.internalError("set tenant quota", err)
	}
	s.published(ctx, xid)
	if changed {
		s.log.Info("tenant delivery quota changed", "tenant_id", tenant, "per_minute", perMinute, "actor", p.actor())
	}
	return &tenantQuotaOut{Body: *s.quotaView(q)}, nil
}

func (s *Server) getQuota(ctx context.Context, _ *struct{}) (*quotaOut, error) {
	p := principalFrom(ctx)
	var u *store.QuotaUsage
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		var err error
		u, err = tx.QuotaUsage(ctx, time.Now())
		return err
	})
	if err != nil {
		return nil, s.internalError("get quota", err)
	}
	out := &quotaOut{Body: Quota{
		GlobalLimitPerMinute: s.cfg.GlobalQuota,
		SuppressedLastHour:   u.LastHour, SuppressedLast24h: u.Last24h, Minutes: []QuotaMinute{},
	}}
	switch {
	case u.Override != nil:
		out.Body.LimitPerMinute, out.Body.LimitSource = *u.Override, limitOperator
	case s.cfg.TenantQuota > 0:
		out.Body.LimitPerMinute, out.Body.LimitSource = s.cfg.TenantQuota, limitDefault
	default:
		out.Body.LimitSource = limitNone
	}
	for _, m := range u.Minutes {
		out.Body.Minutes = append(out.Body.Minutes, QuotaMinute{Minute: m.Minute.UTC(), Suppressed: m.Suppressed})
	}
	return out, nil
}

// The exo-alerts command's changes (actor cli).

// SetTenantQuota stores tenant's delivery quota override (nil clears it),
// creating the tenant when one is set and it is not known. Clearing the
// override of an unknown tenant is ErrNotFound. It returns whether it
// changed anything and its transaction's id, for WaitPublished.
func SetTenantQuota(ctx context.Context, pool *pgxpool.Pool, topics kafka.Topics, tenant string, perMinute *int64) (changed bool, xid string, err error) {
	if !tenantIDRE.MatchString(tenant) {
		return false, "", fmt.Errorf("controlplane: tenant id %q: want letters, digits, '.', '_' or '-' (at most 63, starting with a letter or digit)", tenant)
	}
	if perMinute != nil && *perMinute < 0 {
		return false, "", fmt.Errorf("controlplane: delivery quota %d: must be >= 0 (0: unlimited)", *perMinute)
	}
	_, changed, xid, err = quotaChanges{db: store.New(pool, ""), topics: topics}.set(ctx, tenant, perMinute, actorCLI, "")
	if errors.Is(err, store.ErrNotFound) {
		return false, "", fmt.Errorf("controlplane: no tenant %q: %w", tenant, ErrNotFound)
	}
	return changed, xid, err
}

// ListTenantQuotas returns every tenant's override (tenant id and cap per
// minute; 0 is unlimited), by id.
func ListTenantQuotas(ctx context.Context, pool *pgxpool.Pool) ([]store.TenantQuota, error) {
	db := store.New(pool, "")
	var all []store.TenantQuota
	for after := ""; ; {
		page, err := db.ListTenantQuotas(ctx, after, 1000)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < 1000 {
			return all, nil
		}
		after = page[len(page)-1].TenantID
	}
}
