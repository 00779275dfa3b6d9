package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// The global deliveries view: every alert of the tenant across rules and
// endpoints, searched by alert, run, workflow, status, rule, endpoint and
// time, newest first (GET /v1/deliveries). One alert with its payload is
// GET /v1/deliveries/{alert_id} (history.go).

// DeliveryPage is a page of deliveries.
type DeliveryPage struct {
	Items      []Delivery `json:"items" doc:"Alerts with their attempts, newest first"`
	NextCursor string     `json:"next_cursor" doc:"Pass as ?cursor= (with the same filters) to get the next page; empty on the last page"`
}

type deliverySearchIn struct {
	AlertID    string    `query:"alert_id" maxLength:"64" doc:"Only this alert (its id, alrt_...)"`
	RunID      string    `query:"run_id" maxLength:"256" doc:"Only alerts about this workflow run (exact run id)"`
	Workflow   string    `query:"workflow" maxLength:"256" doc:"Only alerts about runs of the workflow of this name (exact)"`
	Status     string    `query:"status" enum:"pending,delivered,retry,endpoint_gone,dead" doc:"Only alerts whose latest attempt had this outcome: pending (no attempt yet), delivered, retry (failed, another attempt scheduled), endpoint_gone (404/410), dead (dead-lettered)"`
	EndpointID string    `query:"endpoint_id" maxLength:"64" doc:"Only alerts to this endpoint (test deliveries included)"`
	RuleID     string    `query:"rule_id" maxLength:"64" doc:"Only alerts of this rule (\"test\": test deliveries, \"notice\": health notices)"`
	Since      time.Time `query:"since" doc:"Only alerts raised at or after this time (RFC 3339)"`
	Until      time.Time `query:"until" doc:"Only alerts raised before this time (RFC 3339)"`
	Cursor     string    `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit      int       `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"At most this many alerts"`
}

type deliveryPageOut struct {
	Link string `header:"Link" doc:"rel=next link when there are more items"`
	Body DeliveryPage
}

func (s *Server) registerDeliverySearch(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "search-deliveries", Method: http.MethodGet, Path: "/v1/deliveries", Tags: []string{"Delivery history"},
		Summary: "Search every delivery",
		Description: "The tenant's alerts across rules and endpoints, with their attempts, newest first: each filter narrows the search " +
			"(alert id, run id, workflow name, status, endpoint, rule, time range). Page with limit and the opaque cursor (next_cursor, " +
			"or the Link rel=next header). A viewer key may read it.",
		Security: []map[string][]string{bearer}, Errors: []int{400, 401, 422},
	}, s.searchDeliveries)
}

func (s *Server) searchDeliveries(ctx context.Context, in *deliverySearchIn) (*deliveryPageOut, error) {
	p := principalFrom(ctx)
	cur, err := queryCursor(in.Cursor, store.ParseCursor)
	if err != nil {
		return nil, err
	}
	if err := queryTimeRange(in.Since, in.Until); err != nil {
		return nil, err
	}
	q := store.DeliverySearch{AlertID: in.AlertID, RuleID: in.RuleID, EndpointID: in.EndpointID, RunID: in.RunID,
		Workflow: in.Workflow, Status: in.Status, Since: in.Since, Until: in.Until, After: cur, Limit: in.Limit + 1}
	out := &deliveryPageOut{Body: DeliveryPage{Items: []Delivery{}}}
	err = s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		rows, err := tx.SearchDeliveries(ctx, q)
		if err != nil {
			return err
		}
		for _, r := range rows {
			out.Body.Items = append(out.Body.Items, *deliveryOf(r))
		}
		return nil
	})
	if err != nil {
		return nil, s.apiError("search deliveries", err)
	}
	if len(out.Body.Items) > in.Limit {
		out.Body.Items = out.Body.Items[:in.Limit]
		last := out.Body.Items[len(out.Body.Items)-1]
		out.Body.NextCursor = store.Cursor{CreatedAt: last.CreatedAt, ID: last.AlertID}.String()
		v := url.Values{"cursor": {out.Body.NextCursor}, "limit": {fmt.Sprint(in.Limit)}}
		for k, val := range map[string]string{"alert_id": in.AlertID, "run_id": in.RunID, "workflow": in.Workflow, "status": in.Status,
			"endpoint_id": in.EndpointID, "rule_id": in.RuleID} {
			if val != "" {
				v.Set(k, val)
			}
		}
		if !in.Since.IsZero() {
			v.Set("since", in.Since.UTC().Format(time.RFC3339Nano))
		}
		if !in.Until.IsZero() {
			v.Set("until", in.Until.UTC().Format(time.RFC3339Nano))
		}
		out.Link = fmt.Sprintf(`</v1/deliveries?%s>; rel="next"`, v.Encode())
	}
	return out, nil
}
