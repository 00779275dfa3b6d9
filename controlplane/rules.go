package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/internal/condition"
	"github.com/exospherehost/exo-alerts/internal/model"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

type ruleOut struct {
	ETag string `header:"ETag" doc:"The version of the rule; send it as If-Match to update or delete only this version"`
	Body *AlertRule
}

// AlertRuleList is a page of a tenant's alert rules (GET /v1/alert-rules).
type AlertRuleList struct {
	Items      []*AlertRule `json:"items" doc:"Alert rules, oldest first"`
	NextCursor string       `json:"next_cursor" doc:"Pass as ?cursor= (with the same filters) to get the next page; empty on the last page"`
}

type ruleListOut struct {
	Link string `header:"Link" doc:"The next page's URL as <url>; rel=\"next\", when there is one"`
	Body AlertRuleList
}

func (s *Server) registerRules(api huma.API) {
	huma.Register(api, huma.Operation{
		OperationID: "create-alert-rule", Method: http.MethodPost, Path: "/v1/alert-rules", Tags: []string{"Alert rules"},
		Summary:     "Create an alert rule",
		Description: "Creates a rule that turns matching workflow events into alerts delivered to one of your webhook endpoints (`endpoint_id`). Per-event rules send an alert per matching event; count and rate rules (`kind`) fire once when their window crosses the threshold and resolve later. The rule is in force in the processor when the answer comes. `GET /v1/event-types` lists the alert types, the fields a condition can use and a worked example of each kind.",
		Security:    []map[string][]string{bearer}, DefaultStatus: http.StatusCreated,
		MaxBodyBytes: 64 << 10,
		Errors:       []int{400, 401, 403, 422},
	}, s.createRule)
	huma.Register(api, huma.Operation{
		OperationID: "list-alert-rules", Method: http.MethodGet, Path: "/v1/alert-rules", Tags: []string{"Alert rules"},
		Summary:     "List alert rules",
		Description: "Your alert rules, oldest first, a page at a time: follow `next_cursor` (or the `Link` header) with the same filters until it is empty.",
		Security:    []map[string][]string{bearer}, Errors: []int{400, 401},
	}, s.listRules)
	huma.Register(api, huma.Operation{
		OperationID: "get-alert-rule", Method: http.MethodGet, Path: "/v1/alert-rules/{id}", Tags: []string{"Alert rules"},
		Summary:     "Get an alert rule",
		Description: "One rule with its last evaluation error; the `ETag` header is its version, for `If-Match` on an update or delete.",
		Security:    []map[string][]string{bearer}, Errors: []int{401, 404},
	}, s.getRule)
	huma.Register(api, huma.Operation{
		OperationID: "update-alert-rule", Method: http.MethodPatch, Path: "/v1/alert-rules/{id}", Tags: []string{"Alert rules"},
		Summary:     "Update an alert rule (JSON merge patch)",
		Description: "A JSON merge patch (RFC 7396) of the create document: members present replace, null resets to the default. The result is validated like a create. In force in the processor within a second. Send the ETag as `If-Match` to avoid overwriting a concurrent change (412).",
		Security:    []map[string][]string{bearer}, MaxBodyBytes: 64 << 10, Errors: []int{400, 401, 403, 404, 412, 422},
	}, s.patchRule)
	setPatchSchema(api, "/v1/alert-rules/{id}", AlertRulePatch{})
	huma.Register(api, huma.Operation{
		OperationID: "delete-alert-rule", Method: http.MethodDelete, Path: "/v1/alert-rules/{id}", Tags: []string{"Alert rules"},
		Summary:     "Delete an alert rule",
		Description: "Soft delete: the rule disappears from the API and stops matching within a second; its history and audit trail stay.",
		Security:    []map[string][]string{bearer}, Errors: []int{401, 403, 404, 412},
	}, s.deleteRule)
}

// buildRule validates a rule document and fills r's fields from it. Every
// problem is reported at once, each at its member's location.
func buildRule(b *AlertRuleCreate, r *store.RuleRow) error {
	var details []error
	kind := b.Kind
	if kind == "" {
		kind = schemas.RuleKindPerEvent
	}
	eventType := b.EventType
	switch {
	case eventType == "" && kind == schemas.RuleKindRate:
		eventType = schemas.TypeRunFinished
	case eventType == "":
		details = append(details, &huma.ErrorDetail{Location: "body.event_type", Message: "required (only rate rules may leave it out: they watch workflow.run.finished)"})
	}
	threshold, d := parseDuration("body.duration_threshold", b.DurationThreshold, time.Second, 168*time.Hour)
	switch {
	case d != nil:
		details = append(details, d)
	case eventType == schemas.TypeRunDurationExceeded && b.DurationThreshold == "":
		details = append(details, &huma.ErrorDetail{Location: "body.duration_threshold", Message: "required for workflow.run.duration_exceeded rules"})
	case eventType != schemas.TypeRunDurationExceeded && b.DurationThreshold != "":
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
	agg, aggDetails := buildAggregate(kind, eventType, b)
	details = append(details, aggDetails...)
	endpoint, _ := ruleEndpoint(b)
	switch {
	case b.EndpointID != "" && b.WebhookEndpointID != "" && b.EndpointID != b.WebhookEndpointID:
		details = append(details, &huma.ErrorDetail{Location: "body.webhook_endpoint_id", Message: "differs from endpoint_id; it is its former name: send endpoint_id only", Value: b.WebhookEndpointID})
	case endpoint == "":
		details = append(details, &huma.ErrorDetail{Location: "body.endpoint_id", Message: "required: the webhook endpoint the rule delivers to"})
	}
	if len(details) > 0 {
		return huma.Error422UnprocessableEntity("validation failed", details...)
	}
	r.Name, r.Description, r.EventType, r.Condition = b.Name, b.Description, eventType, b.Condition
	r.WebhookEndpointID, r.IsActive = endpoint, b.IsActive == nil || *b.IsActive
	r.MaxAttempts, r.Severity, r.IncludeErrorMessage = b.MaxAttempts, b.Severity, b.IncludeErrorMessage
	if r.MaxAttempts == 0 {
		r.MaxAttempts = schemas.DefaultMaxAttempts
	}
	if r.Severity == "" {
		r.Severity = "error"
	}
	r.DurationThresholdMS, r.CooldownMS, r.RateLimitPerMinute = nil, nil, nil
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
	agg.apply(r)
	return nil
}

// ruleEndpoint is the endpoint a rule document names and the location of
// the member that named it: endpoint_id, or webhook_endpoint_id (its
// deprecated former name, still accepted) when only that one was sent.
func ruleEndpoint(b *AlertRuleCreate) (id, location string) {
	if b.EndpointID == "" && b.WebhookEndpointID != "" {
		return b.WebhookEndpointID, "body.webhook_endpoint_id"
	}
	return b.EndpointID, "body.endpoint_id"
}

var errNoEndpoint = errors.New("controlplane: rule names no endpoint of the tenant")

// noEndpointProblem is the 422 of a rule naming an endpoint its tenant does
// not have, at location (ruleEndpoint's).
func noEndpointProblem(location, id string) error {
	return huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{
		Location: location, Message: "no such webhook endpoint", Value: id,
	})
}

func (s *Server) createRule(ctx context.Context, in *struct{ Body AlertRuleCreate }) (*ruleOut, error) {
	p := principalFrom(ctx)
	r := &store.RuleRow{ID: newID("rul"), TenantID: p.TenantID, CreatedBy: p.actor()}
	if err := buildRule(&in.Body, r); err != nil {
		return nil, err
	}
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		if _, err := tx.GetEndpointForShare(ctx, r.WebhookEndpointID); errors.Is(err, ErrNotFound) {
			return errNoEndpoint
		} else if err != nil {
			return err
		}
		if err := s.checkAggregateCaps(ctx, tx, nil, r); err != nil {
			return err
		}
		if err := tx.InsertRule(ctx, r); err != nil {
			return err
		}
		return s.recordRule(ctx, tx, p, "alert_rule.create", nil, r)
	})
	if errors.Is(err, errNoEndpoint) {
		_, loc := ruleEndpoint(&in.Body)
		return nil, noEndpointProblem(loc, r.WebhookEndpointID)
	}
	if err != nil {
		return nil, s.apiError("create rule", err)
	}
	return &ruleOut{ETag: etag(r.Version), Body: model.RuleOf(r)}, nil
}

// recordRule writes the audit row and the outbox snapshot of a change to r
// (before is nil for a create).
func (s *Server) recordRule(ctx context.Context, tx *store.Tx, p *principal, action string, before *AlertRule, r *store.RuleRow) error {
	var b any
	if before != nil {
		b = before
	}
	if err := tx.InsertAudit(ctx, r.TenantID, p.actor(), action, "alert_rule", r.ID, b, model.RuleOf(r), requestID(ctx)); err != nil {
		return err
	}
	if before != nil && !before.IsActive && r.IsActive {
		// Enabled again: its rule_disabled notice is resolved (notices.go).
		if err := tx.ResolveRuleDisabled(ctx, r.ID); err != nil {
			return err
		}
	}
	snap, _ := json.Marshal(r.Record())
	return tx.InsertOutbox(ctx, s.cfg.Topics.Rules, schemas.TenantKey(r.TenantID, r.ID), snap)
}

type listRulesIn struct {
	Cursor            string `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit             int    `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"The most rules on a page"`
	IsActive          string `query:"is_active" enum:"true,false" doc:"Only active (true) or inactive (false) rules"`
	EventType         string `query:"event_type" enum:"workflow.run.failed,workflow.run.succeeded,workflow.run.started,workflow.run.duration_exceeded,workflow.run.finished" doc:"Only rules watching this alert type"`
	EndpointID        string `query:"endpoint_id" maxLength:"64" doc:"Only rules delivering to this webhook endpoint"`
	WebhookEndpointID string `query:"webhook_endpoint_id" maxLength:"64" deprecated:"true" doc:"Deprecated: the former name of endpoint_id, still accepted"`
	Kind              string `query:"kind" enum:"per_event,count,rate" doc:"Only rules of this kind"`
}

func (s *Server) listRules(ctx context.Context, in *listRulesIn) (*ruleListOut, error) {
	p := principalFrom(ctx)
	cur, err := queryCursor(in.Cursor, store.ParseCursor)
	if err != nil {
		return nil, err
	}
	endpoint := in.EndpointID
	if endpoint == "" {
		endpoint = in.WebhookEndpointID
	} else if in.WebhookEndpointID != "" && in.WebhookEndpointID != endpoint {
		return nil, huma.Error400BadRequest("webhook_endpoint_id differs from endpoint_id",
			&huma.ErrorDetail{Location: "query.webhook_endpoint_id", Message: "the former name of endpoint_id; send endpoint_id only", Value: in.WebhookEndpointID})
	}
	q := url.Values{"limit": {fmt.Sprint(in.Limit)}}
	f := store.RuleFilter{EventType: in.EventType, WebhookEndpointID: endpoint, Kind: in.Kind}
	if in.IsActive != "" {
		f.IsActive = new(in.IsActive == "true")
		q.Set("is_active", in.IsActive)
	}
	if in.EventType != "" {
		q.Set("event_type", in.EventType)
	}
	if endpoint != "" {
		q.Set("endpoint_id", endpoint)
	}
	if in.Kind != "" {
		q.Set("kind", in.Kind)
	}
	var rows []*store.RuleRow
	var items []*AlertRule
	var next string
	err = s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		rows, next, err = tx.ListRules(ctx, cur, in.Limit, f)
		if err != nil {
			return err
		}
		items = make([]*AlertRule, 0, len(rows))
		for _, r := range rows {
			items = append(items, model.RuleOf(r))
		}
		return withLastErrors(ctx, tx, items)
	})
	if err != nil {
		return nil, s.internalError("list rules", err)
	}
	out := &ruleListOut{}
	out.Body.Items = items
	out.Body.NextCursor = next
	if next != "" {
		q.Set("cursor", next)
		out.Link = `</v1/alert-rules?` + q.Encode() + `>; rel="next"`
	}
	return out, nil
}

var errRuleNotFound = huma.Error404NotFound("alert rule not found")

func (s *Server) getRule(ctx context.Context, in *idIn) (*ruleOut, error) {
	p := principalFrom(ctx)
	var r *store.RuleRow
	var a *AlertRule
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) (err error) {
		r, err = tx.GetRule(ctx, in.ID)
		if err != nil {
			return err
		}
		a = model.RuleOf(r)
		return withLastErrors(ctx, tx, []*AlertRule{a})
	})
	if errors.Is(err, ErrNotFound) {
		return nil, errRuleNotFound
	}
	if err != nil {
		return nil, s.internalError("get rule", err)
	}
	return &ruleOut{ETag: etag(r.Version), Body: a}, nil
}

// withLastErrors fills in the last errors of rules (kept by the recorder,
// written by store.KeepRuleError).
func withLastErrors(ctx context.Context, tx *store.Tx, rules []*AlertRule) error {
	if len(rules) == 0 {
		return nil
	}
	ids := make([]string, 0, len(rules))
	for _, r := range rules {
		ids = append(ids, r.ID)
	}
	errs, err := tx.RuleErrors(ctx, ids)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if e, ok := errs[r.ID]; ok {
			r.LastError = &RuleLastError{Message: e.Message, At: e.At, EventID: e.EventID, RuleVersion: e.RuleVersion, Count: e.Count}
		}
	}
	return nil
}

// document is the rule as a create document, the base of a merge patch.
func ruleDocument(r *store.RuleRow) map[string]any {
	a := model.RuleOf(r)
	active := r.IsActive
	return toDoc(AlertRuleCreate{
		Name: r.Name, Description: r.Description, EventType: r.EventType, Condition: r.Condition,
		EndpointID: r.WebhookEndpointID, IsActive: &active, MaxAttempts: r.MaxAttempts, Severity: r.Severity,
		IncludeErrorMessage: r.IncludeErrorMessage, DurationThreshold: a.DurationThreshold, Cooldown: a.Cooldown,
		RateLimitPerMinute: deref(r.RateLimitPerMinute), AggregateMembers: aggregateDocument(r, a),
	})
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (s *Server) patchRule(ctx context.Context, in *patchIn) (*ruleOut, error) {
	p := principalFrom(ctx)
	patch, err := parsePatch(in.RawBody)
	if err != nil {
		return nil, err
	}
	var r, stored *store.RuleRow
	var before, answer *AlertRule
	var wasActive bool
	endpointLoc := "body.endpoint_id"
	err = s.patchOutsideLock(ctx, p.TenantID, in.IfMatch, patchSteps{
		read: func(ctx context.Context, tx *store.Tx) (_ int64, err error) {
			if r, err = tx.GetRule(ctx, in.ID); err != nil {
				return 0, err
			}
			cp := *r
			stored = &cp
			// The answer to a patch that changes nothing, as GET shows it.
			answer = model.RuleOf(r)
			return r.Version, withLastErrors(ctx, tx, []*AlertRule{answer})
		},
		apply: func() (bool, error) {
			before, wasActive = model.RuleOf(r), r.IsActive
			doc, err := mergePatch(ruleDocument(r), patch)
			if err != nil {
				return false, huma.Error400BadRequest(err.Error())
			}
			// A patch naming the endpoint by its former name moves the rule
			// as endpoint_id would: the stored endpoint_id gives way.
			if _, old := patch["webhook_endpoint_id"]; old {
				if _, current := patch["endpoint_id"]; !current {
					delete(doc, "endpoint_id")
				}
			}
			var b AlertRuleCreate
			if err := s.validateDoc(doc, &b); err != nil {
				return false, err
			}
			if err := buildRule(&b, r); err != nil {
				return false, err
			}
			_, endpointLoc = ruleEndpoint(&b)
			if r.IsActive && !wasActive {
				r.DisabledReason = nil
			}
			return !sameRule(before, model.RuleOf(r)), nil
		},
		lock: func(ctx context.Context, tx *store.Tx) (int64, error) {
			// A rule that is (or becomes) active must deliver somewhere:
			// its endpoint must exist, share-locked so that its deletion
			// (which deactivates its rules) waits for this write or
			// deactivates the rule after it. An inactive rule may keep
			// pointing at a deleted endpoint. The endpoint is locked
			// before the rule, in the order its deletion locks them.
			if r.WebhookEndpointID != before.WebhookEndpointID || (r.IsActive && !wasActive) {
				if _, err := tx.GetEndpointForShare(ctx, r.WebhookEndpointID); errors.Is(err, ErrNotFound) {
					return 0, errNoEndpoint
				} else if err != nil {
					return 0, err
				}
			}
			cur, err := tx.GetRuleForUpdate(ctx, in.ID)
			if err != nil {
				return 0, err
			}
			return cur.Version, nil
		},
		write: func(ctx context.Context, tx *store.Tx) error {
			if err := s.checkAggregateCaps(ctx, tx, stored, r); err != nil {
				return err
			}
			if err := tx.UpdateRule(ctx, r); err != nil {
				return err
			}
			if err := s.recordRule(ctx, tx, p, "alert_rule.update", before, r); err != nil {
				return err
			}
			// Answer as GET would: a new condition has no last error yet,
			// any other change keeps the rule's.
			answer = model.RuleOf(r)
			return withLastErrors(ctx, tx, []*AlertRule{answer})
		},
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, errRuleNotFound
	case errors.Is(err, errNoEndpoint):
		return nil, noEndpointProblem(endpointLoc, r.WebhookEndpointID)
	case err != nil:
		return nil, s.apiError("update rule", err)
	}
	return &ruleOut{ETag: etag(answer.Version), Body: answer}, nil
}

// sameRule reports whether two views differ in nothing a user set.
func sameRule(a, b *AlertRule) bool {
	x, y := *a, *b
	x.UpdatedAt, x.Version, y.Version = y.UpdatedAt, 0, 0
	return reflect.DeepEqual(x, y)
}

// AlertRuleDeleted is the answer to DELETE /v1/alert-rules/{id}.
type AlertRuleDeleted struct {
	ID      string `json:"id" doc:"The deleted rule"`
	Deleted bool   `json:"deleted" doc:"Always true"`
}

type deleteRuleOut struct {
	Body AlertRuleDeleted
}

func (s *Server) deleteRule(ctx context.Context, in *deleteIn) (*deleteRuleOut, error) {
	p := principalFrom(ctx)
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		r, err := tx.GetRuleForUpdate(ctx, in.ID)
		if err != nil {
			return err
		}
		if err := checkIfMatch(in.IfMatch, r.Version); err != nil {
			return err
		}
		if err := tx.DeleteRule(ctx, r.ID); err != nil {
			return err
		}
		if err := tx.InsertAudit(ctx, r.TenantID, p.actor(), "alert_rule.delete", "alert_rule", r.ID, model.RuleOf(r), nil, requestID(ctx)); err != nil {
			return err
		}
		return tx.InsertOutbox(ctx, s.cfg.Topics.Rules, schemas.TenantKey(r.TenantID, r.ID), nil)
	})
	if errors.Is(err, ErrNotFound) {
		return nil, errRuleNotFound
	}
	if err != nil {
		return nil, s.apiError("delete rule", err)
	}
	out := &deleteRuleOut{}
	out.Body.ID, out.Body.Deleted = in.ID, true
	return out, nil
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
