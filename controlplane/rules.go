package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5"

	"github.com/exospherehost/exo-alerts/processor/condition"
	"github.com/exospherehost/exo-alerts/schemas"
)

type ruleOut struct {
	Body *AlertRule
}

type ruleListOut struct {
	Link string `header:"Link" doc:"rel=next link when there are more items"`
	Body struct {
		Items      []*AlertRule `json:"items"`
		NextCursor string       `json:"next_cursor" doc:"Pass as ?cursor= to get the next page; empty on the last page"`
	}
}

func (s *Server) registerRules(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "create-alert-rule", Method: http.MethodPost, Path: "/v1/alert-rules", Tags: []string{"Alert rules"},
		Summary: "Create an alert rule", Security: []map[string][]string{bearer}, DefaultStatus: http.StatusCreated,
		MaxBodyBytes: 64 << 10,
		Errors:       []int{400, 401, 403, 422},
	}, s.createRule)
	huma.Register(api, huma.Operation{
		OperationID: "list-alert-rules", Method: http.MethodGet, Path: "/v1/alert-rules", Tags: []string{"Alert rules"},
		Summary: "List alert rules", Security: []map[string][]string{bearer}, Errors: []int{400, 401},
	}, s.listRules)
	huma.Register(api, huma.Operation{
		OperationID: "get-alert-rule", Method: http.MethodGet, Path: "/v1/alert-rules/{id}", Tags: []string{"Alert rules"},
		Summary: "Get an alert rule", Security: []map[string][]string{bearer}, Errors: []int{401, 404},
	}, s.getRule)
}

func (s *Server) createRule(ctx context.Context, in *struct{ Body AlertRuleCreate }) (*ruleOut, error) {
	p := principalFrom(ctx)
	b := in.Body
	var details []error
	threshold, d := parseDuration("body.duration_threshold", b.DurationThreshold, time.Second, 168*time.Hour)
	switch {
	case d != nil:
		details = append(details, d)
	case b.EventType == schemas.TypeRunDurationExceeded && b.DurationThreshold == "":
		details = append(details, &huma.ErrorDetail{Location: "body.duration_threshold", Message: "required for workflow.run.duration_exceeded rules"})
	case b.EventType != schemas.TypeRunDurationExceeded && b.DurationThreshold != "":
		details = append(details, &huma.ErrorDetail{Location: "body.duration_threshold", Message: "only workflow.run.duration_exceeded rules take a threshold", Value: b.DurationThreshold})
	}
	cooldown, d := parseDuration("body.cooldown", b.Cooldown, time.Second, 720*time.Hour)
	if d != nil {
		details = append(details, d)
	}
	if _, err := condition.Compile(b.Condition); err != nil {
		var ce *condition.Error
		msg := err.Error()
		if errors.As(err, &ce) {
			msg = ce.Error()
		}
		details = append(details, &huma.ErrorDetail{Location: "body.condition", Message: msg, Value: b.Condition})
	}
	if len(details) > 0 {
		return nil, huma.Error422UnprocessableEntity("validation failed", details...)
	}
	r := &ruleRow{
		ID: newID("rul"), TenantID: p.TenantID, Name: b.Name, Description: b.Description, EventType: b.EventType,
		Condition: b.Condition, WebhookEndpointID: b.WebhookEndpointID, IsActive: b.IsActive == nil || *b.IsActive,
		MaxAttempts: b.MaxAttempts, Severity: b.Severity, IncludeErrorMessage: b.IncludeErrorMessage, CreatedBy: p.actor(),
	}
	if r.MaxAttempts == 0 {
		r.MaxAttempts = 8
	}
	if threshold > 0 {
		ms := threshold.Milliseconds()
		r.DurationThresholdMS = &ms
	}
	if cooldown > 0 {
		ms := cooldown.Milliseconds()
		r.CooldownMS = &ms
	}
	if b.RateLimitPerMinute > 0 {
		n := b.RateLimitPerMinute
		r.RateLimitPerMinute = &n
	}
	if r.Severity == "" {
		r.Severity = "error"
	}
	err := s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		if _, err := getEndpoint(ctx, tx, p.TenantID, r.WebhookEndpointID); err != nil {
			return err
		}
		if err := insertRule(ctx, tx, r); err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, r.TenantID, p.actor(), "alert_rule.create", "alert_rule", r.ID, nil, r.api(), requestID(ctx)); err != nil {
			return err
		}
		snap, _ := json.Marshal(r.snapshot())
		return insertOutbox(ctx, tx, s.cfg.Topics.Rules, r.TenantID+"/"+r.ID, snap)
	})
	if errors.Is(err, ErrNotFound) {
		return nil, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{
			Location: "body.webhook_endpoint_id", Message: "no such webhook endpoint", Value: r.WebhookEndpointID,
		})
	}
	if err != nil {
		return nil, s.internalError("create rule", err)
	}
	return &ruleOut{Body: r.api()}, nil
}

func (s *Server) listRules(ctx context.Context, in *listIn) (*ruleListOut, error) {
	p := principalFrom(ctx)
	cur, err := parseCursor(in.Cursor)
	if err != nil {
		return nil, huma.Error400BadRequest("bad cursor", &huma.ErrorDetail{Location: "query.cursor", Message: err.Error()})
	}
	var rows []*ruleRow
	var next string
	err = s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		rows, next, err = listPage(ctx, tx, "alert_rules", ruleCols, p.TenantID, cur, in.Limit, scanRule,
			func(r *ruleRow) cursor { return cursor{CreatedAt: r.CreatedAt, ID: r.ID} })
		return err
	})
	if err != nil {
		return nil, s.internalError("list rules", err)
	}
	out := &ruleListOut{}
	out.Body.Items = make([]*AlertRule, 0, len(rows))
	for _, r := range rows {
		out.Body.Items = append(out.Body.Items, r.api())
	}
	out.Body.NextCursor = next
	if next != "" {
		out.Link = fmt.Sprintf(`</v1/alert-rules?cursor=%s&limit=%d>; rel="next"`, next, in.Limit)
	}
	return out, nil
}

func (s *Server) getRule(ctx context.Context, in *idIn) (*ruleOut, error) {
	p := principalFrom(ctx)
	var r *ruleRow
	err := s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) (err error) {
		r, err = getRule(ctx, tx, p.TenantID, in.ID)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, huma.Error404NotFound("alert rule not found")
	}
	if err != nil {
		return nil, s.internalError("get rule", err)
	}
	return &ruleOut{Body: r.api()}, nil
}

// parseDuration parses an optional Go duration within [lo, hi].
func parseDuration(loc, s string, lo, hi time.Duration) (time.Duration, *huma.ErrorDetail) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &huma.ErrorDetail{Location: loc, Message: "not a duration (e.g. 90s, 15m, 2h)", Value: s}
	}
	if d < lo || d > hi {
		return 0, &huma.ErrorDetail{Location: loc, Message: fmt.Sprintf("must be between %s and %s", lo, hi), Value: s}
	}
	return d, nil
}
