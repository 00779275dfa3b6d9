package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// The health-notice API (docs/design/aggregate-alerts.md §6): the notices
// the recorder writes when something goes wrong for the tenant (a rule
// disabled on 404/410, an endpoint whose breaker stays open, alerts
// dead-lettered, alerts suppressed by the quota), their acknowledgement,
// and the endpoint they are delivered to. Everything runs in the caller's
// tenant transaction: another tenant's notice is not found.

// Notice is a health notice.
type Notice struct {
	ID             string         `json:"id" doc:"The notice's id: the same for every report of one occurrence" example:"ntc_3fc9b689459d738f8c88a3a48aa9e335"`
	Kind           string         `json:"kind" enum:"rule_disabled,endpoint_unhealthy,dead_letters,quota_exceeded" doc:"rule_disabled: a rule was disabled because its endpoint answered 404/410; endpoint_unhealthy: an endpoint's circuit breaker has stayed open while its alerts failed; dead_letters: alerts to an endpoint ran out of attempts (one notice per endpoint and UTC hour); quota_exceeded: alerts were suppressed by the delivery quota (one per UTC hour)"`
	Title          string         `json:"title" doc:"What happened, in one sentence"`
	RuleID         *string        `json:"rule_id" doc:"The rule concerned (rule_disabled); null otherwise"`
	EndpointID     *string        `json:"endpoint_id" doc:"The webhook endpoint concerned; null for quota_exceeded"`
	Count          int64          `json:"count" doc:"How many occurrences it stands for (dead letters or suppressed alerts of the hour; 1 otherwise)"`
	Detail         map[string]any `json:"detail" doc:"Facts of the occurrence (status code, since, hour, …)"`
	CreatedAt      time.Time      `json:"created_at" doc:"When it was noticed"`
	UpdatedAt      time.Time      `json:"updated_at" doc:"When its count or state last changed"`
	ResolvedAt     *time.Time     `json:"resolved_at" doc:"When it ended (the rule re-enabled, the endpoint healthy again); null while open. dead_letters and quota_exceeded never resolve"`
	AcknowledgedAt *time.Time     `json:"acknowledged_at" doc:"When someone acknowledged it; null until then"`
	AcknowledgedBy *string        `json:"acknowledged_by" doc:"The API key that acknowledged it"`
	DeliveryID     *string        `json:"delivery_alert_id" doc:"The alert id of its tenant.notice delivery to the notice endpoint (GET /v1/deliveries/{alert_id}); null when none was sent"`
}

func noticeOf(n *store.Notice) *Notice {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return &Notice{ID: n.ID, Kind: n.Kind, Title: n.Title, RuleID: opt(n.RuleID), EndpointID: opt(n.EndpointID), Count: n.Count,
		Detail: n.Detail, CreatedAt: n.CreatedAt, UpdatedAt: n.UpdatedAt, ResolvedAt: n.ResolvedAt, AcknowledgedAt: n.AcknowledgedAt,
		AcknowledgedBy: opt(n.AcknowledgedBy), DeliveryID: opt(n.DeliveryAlertID)}
}

type noticeListIn struct {
	Kind         string `query:"kind" enum:"rule_disabled,endpoint_unhealthy,dead_letters,quota_exceeded" doc:"Only notices of this kind"`
	State        string `query:"state" enum:"open,resolved" doc:"open: not resolved (dead_letters and quota_exceeded stay open); resolved: ended"`
	Acknowledged string `query:"acknowledged" enum:"true,false" doc:"true: only acknowledged ones; false: only those nobody acknowledged yet"`
	Cursor       string `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit        int    `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"The most items on a page"`
}

// NoticeList is a page of the tenant's health notices (GET /v1/notices).
type NoticeList struct {
	Items      []*Notice `json:"items" doc:"Notices, newest first"`
	NextCursor string    `json:"next_cursor" doc:"Pass as ?cursor= to get the next page; empty on the last page"`
}

type noticeListOut struct {
	Link string `header:"Link" doc:"The next page's URL as <url>; rel=\"next\", when there is one"`
	Body NoticeList
}

type noticeIDIn struct {
	ID string `path:"id" maxLength:"80" doc:"Notice id"`
}

type noticeOut struct{ Body *Notice }

// NoticeSettings says where the tenant's notices are delivered.
type NoticeSettings struct {
	EndpointID        *string    `json:"endpoint_id" doc:"The webhook endpoint notices are delivered to as signed tenant.notice deliveries (any kind: webhook, Slack, PagerDuty); null: none, notices show in the API and dashboard only" example:"wh_01JD5N"`
	WebhookEndpointID *string    `json:"webhook_endpoint_id" deprecated:"true" doc:"Deprecated: the same value as endpoint_id, under its former name; read endpoint_id." example:"wh_01JD5N"`
	Kinds             []string   `json:"kinds" doc:"The kinds delivered there" example:"[\"rule_disabled\",\"endpoint_unhealthy\",\"dead_letters\",\"quota_exceeded\"]"`
	UpdatedAt         *time.Time `json:"updated_at" doc:"When they were last changed; null if never"`
	Version           int64      `json:"version" doc:"Incremented on every change; 0 if never set"`
}

// NoticeSettingsPut is the body of PUT /v1/notice-settings.
type NoticeSettingsPut struct {
	EndpointID        *string  `json:"endpoint_id" required:"false" maxLength:"64" doc:"An active webhook endpoint of yours, or null (or absent) for none" example:"wh_01JD5N"`
	WebhookEndpointID *string  `json:"webhook_endpoint_id" required:"false" maxLength:"64" deprecated:"true" doc:"Deprecated: the former name of endpoint_id, still accepted (it must then equal endpoint_id if both are sent)." example:"wh_01JD5N"`
	Kinds             []string `json:"kinds,omitempty" required:"false" nullable:"true" maxItems:"4" uniqueItems:"true" doc:"The kinds to deliver (rule_disabled, endpoint_unhealthy, dead_letters, quota_exceeded); absent or null: all of them" example:"[\"rule_disabled\",\"endpoint_unhealthy\"]"`
}

type noticeSettingsOut struct{ Body *NoticeSettings }

func noticeSettingsOf(s *store.NoticeSettings) *NoticeSettings {
	out := &NoticeSettings{Kinds: s.Kinds, Version: s.Version}
	if s.EndpointID != "" {
		out.EndpointID, out.WebhookEndpointID = &s.EndpointID, &s.EndpointID
	}
	if !s.UpdatedAt.IsZero() {
		out.UpdatedAt = &s.UpdatedAt
	}
	return out
}

func (s *Server) registerNotices(api huma.API) {
	sec := []map[string][]string{bearer}
	huma.Register(api, huma.Operation{
		OperationID: "list-notices", Method: http.MethodGet, Path: "/v1/notices", Tags: []string{"Health notices"},
		Summary:     "List health notices",
		Description: "What went wrong for your alerts, newest first: rules disabled because their endpoint answered 404/410, endpoints whose circuit breaker stays open, alerts dead-lettered (per endpoint and UTC hour), alerts suppressed by the delivery quota (per UTC hour). Each occurrence makes one notice.",
		Security:    sec, Errors: []int{400, 401, 422},
	}, s.listNotices)
	huma.Register(api, huma.Operation{
		OperationID: "acknowledge-notice", Method: http.MethodPost, Path: "/v1/notices/{id}/acknowledge", Tags: []string{"Health notices"},
		Summary:     "Acknowledge a health notice",
		Description: "Marks the notice seen (the dashboard's banner shows unacknowledged ones). Acknowledging it again changes nothing. It does not resolve it.",
		Security:    sec, Errors: []int{401, 403, 404},
	}, s.acknowledgeNotice)
	huma.Register(api, huma.Operation{
		OperationID: "get-notice-settings", Method: http.MethodGet, Path: "/v1/notice-settings", Tags: []string{"Health notices"},
		Summary:     "Show where health notices are delivered",
		Description: "The endpoint that receives the tenant's health notices as signed tenant.notice deliveries, and the kinds sent there; no endpoint means notices show in the API and dashboard only.",
		Security:    sec, Errors: []int{401},
	}, s.getNoticeSettings)
	huma.Register(api, huma.Operation{
		OperationID: "put-notice-settings", Method: http.MethodPut, Path: "/v1/notice-settings", Tags: []string{"Health notices"},
		Summary:     "Choose where health notices are delivered",
		Description: "Each new notice of the chosen kinds is delivered to the endpoint as a signed tenant.notice delivery (payload v1 with data.notice; Slack: \"Notice: …\"; PagerDuty: a warning with the notice id as dedup_key). The endpoint must be yours and active. Failures of these deliveries make no further notice.",
		Security:    sec, MaxBodyBytes: 4 << 10, Errors: []int{400, 401, 403, 422},
	}, s.putNoticeSettings)
}

func (s *Server) listNotices(ctx context.Context, in *noticeListIn) (*noticeListOut, error) {
	p := principalFrom(ctx)
	cur, err := queryCursor(in.Cursor, store.ParseCursor)
	if err != nil {
		return nil, err
	}
	q := store.NoticeQuery{Kind: in.Kind, State: in.State, After: cur, Limit: in.Limit + 1}
	if in.Acknowledged != "" {
		q.Acknowledged = new(in.Acknowledged == "true")
	}
	var items []*Notice
	err = s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		rows, err := tx.ListNotices(ctx, q)
		for _, r := range rows {
			items = append(items, noticeOf(r))
		}
		return err
	})
	if err != nil {
		return nil, s.apiError("list notices", err)
	}
	out := &noticeListOut{}
	if len(items) > in.Limit {
		items = items[:in.Limit]
		last := items[len(items)-1]
		out.Body.NextCursor = store.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}.String()
		v := url.Values{"cursor": {out.Body.NextCursor}, "limit": {fmt.Sprint(in.Limit)}}
		for k, val := range map[string]string{"kind": in.Kind, "state": in.State, "acknowledged": in.Acknowledged} {
			if val != "" {
				v.Set(k, val)
			}
		}
		out.Link = fmt.Sprintf(`</v1/notices?%s>; rel="next"`, v.Encode())
	}
	out.Body.Items = items
	if out.Body.Items == nil {
		out.Body.Items = []*Notice{}
	}
	return out, nil
}

func (s *Server) acknowledgeNotice(ctx context.Context, in *noticeIDIn) (*noticeOut, error) {
	p := principalFrom(ctx)
	var out *Notice
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		before, after, err := tx.AcknowledgeNotice(ctx, in.ID, p.actor())
		if errors.Is(err, store.ErrNotFound) {
			return huma.Error404NotFound("notice not found")
		}
		if err != nil {
			return err
		}
		out = noticeOf(after)
		if before.AcknowledgedAt != nil {
			return nil // acknowledged before: nothing changed, nothing to audit
		}
		return tx.InsertAudit(ctx, p.TenantID, p.actor(), "notice.acknowledge", "notice", in.ID, noticeOf(before), out, requestID(ctx))
	})
	if err != nil {
		return nil, s.apiError("acknowledge notice", err)
	}
	return &noticeOut{Body: out}, nil
}

func (s *Server) getNoticeSettings(ctx context.Context, _ *struct{}) (*noticeSettingsOut, error) {
	p := principalFrom(ctx)
	var out *NoticeSettings
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		st, err := tx.GetNoticeSettings(ctx)
		if err == nil {
			out = noticeSettingsOf(st)
		}
		return err
	})
	if err != nil {
		return nil, s.apiError("get notice settings", err)
	}
	return &noticeSettingsOut{Body: out}, nil
}

func (s *Server) putNoticeSettings(ctx context.Context, in *struct{ Body NoticeSettingsPut }) (*noticeSettingsOut, error) {
	p := principalFrom(ctx)
	b := in.Body
	kinds := b.Kinds
	if kinds == nil {
		kinds = slices.Clone(store.NoticeKinds)
	}
	var details []error
	for i, k := range kinds {
		if !slices.Contains(store.NoticeKinds, k) {
			details = append(details, &huma.ErrorDetail{Location: fmt.Sprintf("body.kinds[%d]", i), Value: k,
				Message: "unknown kind; one of rule_disabled, endpoint_unhealthy, dead_letters, quota_exceeded"})
		}
	}
	if len(details) > 0 {
		return nil, huma.Error422UnprocessableEntity("validation failed", details...)
	}
	endpoint, location := "", "body.endpoint_id"
	switch {
	case b.EndpointID != nil && b.WebhookEndpointID != nil && *b.EndpointID != *b.WebhookEndpointID:
		return nil, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{Location: "body.webhook_endpoint_id",
			Message: "differs from endpoint_id; it is its former name: send endpoint_id only", Value: *b.WebhookEndpointID})
	case b.EndpointID != nil:
		endpoint = *b.EndpointID
	case b.WebhookEndpointID != nil:
		endpoint, location = *b.WebhookEndpointID, "body.webhook_endpoint_id"
	}
	var out *NoticeSettings
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		if endpoint != "" {
			exists, deleted, active, err := tx.EndpointStatus(ctx, endpoint)
			switch {
			case err != nil:
				return err
			case !exists || deleted || !active:
				msg := "no such webhook endpoint"
				if exists && !deleted {
					msg = "the webhook endpoint is disabled; enable it first"
				}
				return huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{
					Location: location, Message: msg, Value: endpoint})
			}
		}
		before, err := tx.GetNoticeSettings(ctx)
		if err != nil {
			return err
		}
		after, err := tx.PutNoticeSettings(ctx, endpoint, kinds)
		if err != nil {
			return err
		}
		out = noticeSettingsOf(after)
		return tx.InsertAudit(ctx, p.TenantID, p.actor(), "notice_settings.update", "notice_settings", p.TenantID,
			noticeSettingsOf(before), out, requestID(ctx))
	})
	if err != nil {
		return nil, s.apiError("put notice settings", err)
	}
	return &noticeSettingsOut{Body: out}, nil
}
