package controlplane

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// AuditEvent is one row of a tenant's audit trail.
type AuditEvent struct {
	ID           int64           `json:"id" doc:"Position in the trail; higher is newer"`
	Actor        string          `json:"actor" doc:"Who made the change: key:<id> (<name>) for an API key, cli for the exo-alerts command, system for the platform's own work" example:"key:key_abc (ops)"`
	Action       string          `json:"action" example:"webhook.create"`
	ResourceType string          `json:"resource_type" example:"webhook"`
	ResourceID   string          `json:"resource_id"`
	Before       json.RawMessage `json:"before" doc:"The resource before the change (null on create); secrets are redacted"`
	After        json.RawMessage `json:"after" doc:"The resource after the change (null on delete); secrets are redacted"`
	RequestID    string          `json:"request_id"`
	CreatedAt    time.Time       `json:"created_at"`
}

type auditListIn struct {
	Cursor       string    `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit        int       `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"The most items on a page"`
	ResourceType string    `query:"resource_type" maxLength:"64" doc:"Only events of this resource type, e.g. webhook, alert_rule, api_key"`
	ResourceID   string    `query:"resource_id" maxLength:"64" doc:"Only events of this resource"`
	Action       string    `query:"action" maxLength:"64" doc:"Only this action, e.g. webhook.create"`
	Actor        string    `query:"actor" maxLength:"200" doc:"Only changes by this actor (exact match)"`
	Since        time.Time `query:"since" doc:"Only events at or after this time (RFC 3339)"`
	Until        time.Time `query:"until" doc:"Only events before this time (RFC 3339)"`
}

// AuditEventList is a page of the tenant's audit trail (GET /v1/audit-events).
type AuditEventList struct {
	Items      []*AuditEvent `json:"items"`
	NextCursor string        `json:"next_cursor" doc:"Pass as ?cursor= (with the same filters) to get the next page; empty on the last page"`
}

type auditListOut struct {
	Link string `header:"Link" doc:"The next page's URL as <url>; rel=\"next\", when there is one"`
	Body AuditEventList
}

func (s *Server) registerAudit(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "list-audit-events", Method: http.MethodGet, Path: "/v1/audit-events", Tags: []string{"Audit"},
		Summary:     "List the audit trail",
		Description: "Every change to the tenant's webhook endpoints, alert rules and API keys, newest first. The trail is append-only.",
		Security:    []map[string][]string{bearer}, Errors: []int{400, 401},
	}, s.listAudit)
}

// auditCursor is an opaque position in the trail: the id of the last event shown.
func auditCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("a" + strconv.FormatInt(id, 10)))
}

func parseAuditCursor(s string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, errors.New("malformed cursor")
	}
	n, ok := strings.CutPrefix(string(raw), "a")
	id, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || id < 1 {
		return 0, errors.New("malformed cursor")
	}
	return id, nil
}

func (s *Server) listAudit(ctx context.Context, in *auditListIn) (*auditListOut, error) {
	p := principalFrom(ctx)
	f := store.AuditFilter{ResourceType: in.ResourceType, ResourceID: in.ResourceID, Action: in.Action, Actor: in.Actor, Since: in.Since, Until: in.Until}
	if in.Cursor != "" {
		id, err := queryCursor(in.Cursor, parseAuditCursor)
		if err != nil {
			return nil, err
		}
		f.BeforeID = id
	}
	if !in.Since.IsZero() && !in.Until.IsZero() && !in.Until.After(in.Since) {
		return nil, huma.Error400BadRequest("empty time range", &huma.ErrorDetail{Location: "query.until", Message: "must be after since"})
	}
	var items []*AuditEvent
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		rows, err := tx.ListAudit(ctx, f, in.Limit+1)
		for _, r := range rows {
			items = append(items, &AuditEvent{
				ID: r.ID, Actor: r.Actor, Action: r.Action, ResourceType: r.ResourceType, ResourceID: r.ResourceID,
				Before: jsonOrNull(r.Before), After: jsonOrNull(r.After), RequestID: r.RequestID, CreatedAt: r.CreatedAt,
			})
		}
		return err
	})
	if err != nil {
		return nil, s.internalError("list audit events", err)
	}
	out := &auditListOut{}
	if len(items) > in.Limit {
		items = items[:in.Limit]
		out.Body.NextCursor = auditCursor(items[len(items)-1].ID)
		q := url.Values{"cursor": {out.Body.NextCursor}, "limit": {strconv.Itoa(in.Limit)}}
		for k, v := range map[string]string{"resource_type": in.ResourceType, "resource_id": in.ResourceID, "action": in.Action, "actor": in.Actor} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if !in.Since.IsZero() {
			q.Set("since", in.Since.UTC().Format(time.RFC3339Nano))
		}
		if !in.Until.IsZero() {
			q.Set("until", in.Until.UTC().Format(time.RFC3339Nano))
		}
		out.Link = `</v1/audit-events?` + q.Encode() + `>; rel="next"`
	}
	out.Body.Items = items
	if out.Body.Items == nil {
		out.Body.Items = []*AuditEvent{}
	}
	return out, nil
}

// jsonOrNull is a jsonb column as JSON, null when SQL NULL.
func jsonOrNull(b []byte) json.RawMessage {
	if b == nil {
		return json.RawMessage("null")
	}
	return b
}
