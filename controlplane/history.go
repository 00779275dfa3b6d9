package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The delivery-history API: what the recorder keeps (alerts, attempts),
// redelivery and test deliveries; the dead letters' listing and replay are
// in deadletters.go.
// Every query runs in the caller's tenant transaction (row-level security);
// another tenant's alert, rule or endpoint is a 404.

// DeliveryAttempt is one attempt to deliver an alert.
type DeliveryAttempt struct {
	DeliveryID      string    `json:"delivery_id" doc:"Id of the attempt, sent as the X-Exosphere-Delivery header"`
	Attempt         int       `json:"attempt" doc:"Number of the attempt, from 1 (a redelivery or replay counts from 1 again)"`
	Outcome         string    `json:"outcome" enum:"delivered,retry,endpoint_gone,dead" doc:"delivered: 2xx; retry: failed, another attempt is scheduled; endpoint_gone: 404/410, the rule was disabled; dead: failed and out of attempts, dead-lettered"`
	StatusCode      *int      `json:"status_code" doc:"HTTP status of the answer; null when no answer came (timeout, connection error, refused address)"`
	LatencyMS       int64     `json:"latency_ms" doc:"How long the attempt took, in milliseconds"`
	ErrorClass      *string   `json:"error_class" doc:"Machine-readable class of a failed attempt: http_<status code> (e.g. http_500), timeout, connection, dns, ssrf_refused, endpoint_inactive, secret, render, bad_url; null on success"`
	Error           *string   `json:"error" doc:"Short description of the failure, URLs redacted; null on success"`
	ResponseExcerpt *string   `json:"response_excerpt" doc:"Start of the answer body (at most 4 KiB); null when empty"`
	AttemptedAt     time.Time `json:"attempted_at" doc:"When the attempt was made"`
}

// Delivery is one alert sent to an endpoint, with its attempts.
type Delivery struct {
	AlertID      string            `json:"alert_id" doc:"The alert's id: the webhook-id header, the same on every retry, redelivery and replay (deduplicate on it)" example:"alrt_ca978112ca1bbdcafac231b39a23dc4d"`
	RuleID       string            `json:"rule_id" doc:"Rule that fired (\"test\" for a test delivery)"`
	EndpointID   string            `json:"endpoint_id" doc:"Endpoint the alert is delivered to"`
	EventType    string            `json:"event_type" enum:"workflow.run.failed,workflow.run.succeeded,workflow.run.started,workflow.run.duration_exceeded,workflow.alert.firing,workflow.alert.resolved,tenant.notice,webhook.test" doc:"Alert type, e.g. workflow.run.failed (webhook.test for a test delivery)"`
	WorkflowID   string            `json:"workflow_id" doc:"Workflow of the run the alert is about"`
	WorkflowName string            `json:"workflow_name" doc:"Name of that workflow"`
	RunID        string            `json:"run_id" doc:"Run the alert is about"`
	CreatedAt    time.Time         `json:"created_at" doc:"When the alert was raised"`
	Status       string            `json:"status" enum:"pending,delivered,retry,endpoint_gone,dead" doc:"Outcome of the latest attempt; pending when no attempt is recorded yet"`
	DeadLettered bool              `json:"dead_lettered" doc:"Whether the alert ran out of attempts and sits in the dead letters"`
	ReplayedAt   *time.Time        `json:"replayed_at" doc:"When its dead letter was last replayed; null if never"`
	Attempts     []DeliveryAttempt `json:"attempts" doc:"Every recorded attempt, oldest first"`
	Payload      json.RawMessage   `json:"payload,omitempty" doc:"The webhook payload v1 of the alert (only when one alert is fetched)"`
}

// DeliveryList is a page of the delivery history of a rule or an endpoint.
type DeliveryList struct {
	Items      []*Delivery `json:"items" doc:"Alerts, newest first"`
	NextCursor string      `json:"next_cursor" doc:"Pass as ?cursor= to get the next page; empty on the last page"`
}

type deliveryListOut struct {
	Link string `header:"Link" doc:"The next page's URL as <url>; rel=\"next\", when there is one"`
	Body DeliveryList
}

type deliveryListIn struct {
	ID      string `path:"id" maxLength:"64" doc:"The resource's id"`
	Outcome string `query:"outcome" enum:"pending,delivered,retry,endpoint_gone,dead" doc:"Only alerts whose latest attempt had this outcome (pending: no attempt yet)"`
	Cursor  string `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit   int    `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"The most items on a page"`
}

type alertIDIn struct {
	AlertID string `path:"alert_id" maxLength:"64" doc:"Alert id (alrt_...)"`
}

type deliveryOut struct {
	Body *Delivery
}

// QueuedDelivery answers a request that queued a delivery.
type QueuedDelivery struct {
	AlertID string `json:"alert_id" doc:"Id of the queued alert (the webhook-id the receiver gets)" example:"alrt_ca978112ca1bbdcafac231b39a23dc4d"`
}

type acceptedOut struct {
	Body QueuedDelivery
}

func (s *Server) registerHistory(api huma.API) {
	sec := []map[string][]string{bearer}
	huma.Register(api, huma.Operation{
		OperationID: "list-alert-rule-deliveries", Method: http.MethodGet, Path: "/v1/alert-rules/{id}/deliveries", Tags: []string{"Delivery history"},
		Summary:     "List a rule's alerts and their delivery attempts",
		Description: "Newest first. Deleted rules keep their history. Each alert shows every attempt (status, latency, answer excerpt) and whether it was dead-lettered.",
		Security:    sec, Errors: []int{400, 401, 404, 422},
	}, func(ctx context.Context, in *deliveryListIn) (*deliveryListOut, error) {
		return s.listDeliveries(ctx, in, "rule")
	})
	huma.Register(api, huma.Operation{
		OperationID: "list-webhook-deliveries", Method: http.MethodGet, Path: "/v1/webhooks/{id}/deliveries", Tags: []string{"Delivery history"},
		Summary:     "List an endpoint's alerts and their delivery attempts",
		Description: "Newest first, test deliveries included. Deleted endpoints keep their history.",
		Security:    sec, Errors: []int{400, 401, 404, 422},
	}, func(ctx context.Context, in *deliveryListIn) (*deliveryListOut, error) {
		return s.listDeliveries(ctx, in, "endpoint")
	})
	huma.Register(api, huma.Operation{
		OperationID: "get-delivery", Method: http.MethodGet, Path: "/v1/deliveries/{alert_id}", Tags: []string{"Delivery history"},
		Summary:     "Get an alert with its payload and every delivery attempt",
		Description: "One alert by its id (the webhook-id its deliveries carry): the payload sent, its status and every recorded attempt with the answer's status code, latency and an excerpt of its body.",
		Security:    sec, Errors: []int{401, 404},
	}, s.getDelivery)
	huma.Register(api, huma.Operation{
		OperationID: "redeliver", Method: http.MethodPost, Path: "/v1/deliveries/{alert_id}/redeliver", Tags: []string{"Delivery history"},
		Summary:     "Deliver an alert again",
		Description: "Queues the stored alert for delivery again, with the same alert id (webhook-id), so receivers can deduplicate. Attempts count from 1 again.",
		Security:    sec, DefaultStatus: http.StatusAccepted, Errors: []int{401, 403, 404, 409},
	}, s.redeliver)
	s.registerDeadLetters(api, sec)
	huma.Register(api, huma.Operation{
		OperationID: "test-webhook", Method: http.MethodPost, Path: "/v1/webhooks/{id}/test", Tags: []string{"Webhooks"},
		Summary:     "Send a test delivery",
		Description: "Sends a signed webhook.test delivery (payload v1, rule id \"test\") through the dispatcher, like a real alert but with one attempt only. Its outcome shows in the endpoint's deliveries.",
		Security:    sec, DefaultStatus: http.StatusAccepted, Errors: []int{401, 403, 404, 409},
	}, s.testWebhook)
}

// Problems the handlers answer with.

func errAlertMissing() error { return huma.Error404NotFound("alert not found") }

// queue puts delivery records in the outbox, in the transaction that
// records why (audit row, replayed_at): they reach the deliveries topic
// with it or not at all, and no request holds a lock while Kafka answers
// (or does not). The relay publishes them within moments.
func (s *Server) queue(ctx context.Context, tx *store.Tx, recs ...*kgo.Record) error {
	for _, r := range recs {
		if err := tx.InsertOutbox(ctx, r.Topic, string(r.Key), r.Value); err != nil {
			return err
		}
	}
	return nil
}

// deliveryRecord builds the deliveries record of a stored DeliveryRecord.
// It is re-encoded through the Go types so the payload has the layout the
// processor gives it (Postgres jsonb reorders keys); the alert id stays.
func (s *Server) deliveryRecord(stored []byte) (*kgo.Record, error) {
	var d schemas.DeliveryRecord
	if err := json.Unmarshal(stored, &d); err != nil {
		return nil, fmt.Errorf("controlplane: stored delivery record: %w", err)
	}
	var p schemas.WebhookPayload
	if err := json.Unmarshal(d.Payload, &p); err == nil {
		if b, err := json.Marshal(p); err == nil {
			d.Payload = b
		}
	}
	value, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("controlplane: encode delivery record: %w", err)
	}
	return &kgo.Record{Topic: s.cfg.Topics.Deliveries, Key: schemas.RecordKey(d.TenantID, d.EndpointID), Value: value}, nil
}

// deliverable answers why an alert for endpoint id cannot be delivered now,
// or nil.
func deliverable(ctx context.Context, tx *store.Tx, id string) error {
	exists, deleted, active, err := tx.EndpointStatus(ctx, id)
	switch {
	case err != nil:
		return err
	case !exists || deleted:
		return huma.Error409Conflict("the alert's webhook endpoint was deleted; there is nothing to deliver to")
	case !active:
		return huma.Error409Conflict("the alert's webhook endpoint is disabled; enable it first")
	}
	return nil
}

// deliveryOf is the API view of a stored delivery.
func deliveryOf(r *store.DeliveryRow) *Delivery {
	d := &Delivery{
		AlertID: r.AlertID, RuleID: r.RuleID, EndpointID: r.EndpointID, EventType: r.EventType,
		WorkflowID: r.WorkflowID, WorkflowName: r.WorkflowName, RunID: r.RunID, CreatedAt: r.CreatedAt,
		Status: r.Status, DeadLettered: r.DeadLettered, ReplayedAt: r.ReplayedAt, Payload: r.Payload,
		Attempts: make([]DeliveryAttempt, 0, len(r.Attempts)),
	}
	for _, a := range r.Attempts {
		d.Attempts = append(d.Attempts, DeliveryAttempt{
			DeliveryID: a.DeliveryID, Attempt: a.Attempt, Outcome: a.Outcome, StatusCode: a.StatusCode, LatencyMS: a.LatencyMS,
			ErrorClass: a.ErrorClass, Error: a.Error, ResponseExcerpt: a.ResponseExcerpt, AttemptedAt: a.AttemptedAt,
		})
	}
	return d
}

func (s *Server) listDeliveries(ctx context.Context, in *deliveryListIn, of string) (*deliveryListOut, error) {
	p := principalFrom(ctx)
	cur, err := queryCursor(in.Cursor, store.ParseCursor)
	if err != nil {
		return nil, err
	}
	list, path, missing := (*store.Tx).ListRuleDeliveries, "/v1/alert-rules/", "alert rule not found"
	if of == "endpoint" {
		list, path, missing = (*store.Tx).ListEndpointDeliveries, "/v1/webhooks/", "webhook endpoint not found"
	}
	var items []*Delivery
	err = s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		// Deleted rules and endpoints keep their history.
		rows, err := list(tx, ctx, in.ID, store.DeliveryQuery{Outcome: in.Outcome, After: cur, Limit: in.Limit + 1})
		if errors.Is(err, store.ErrNotFound) {
			return huma.Error404NotFound(missing)
		}
		if err != nil {
			return err
		}
		for _, r := range rows {
			items = append(items, deliveryOf(r))
		}
		return nil
	})
	if err != nil {
		return nil, s.apiError("list deliveries", err)
	}
	out := &deliveryListOut{}
	if len(items) > in.Limit {
		items = items[:in.Limit]
		last := items[len(items)-1]
		out.Body.NextCursor = store.Cursor{CreatedAt: last.CreatedAt, ID: last.AlertID}.String()
		q := url.Values{"cursor": {out.Body.NextCursor}, "limit": {fmt.Sprint(in.Limit)}}
		if in.Outcome != "" {
			q.Set("outcome", in.Outcome)
		}
		out.Link = fmt.Sprintf(`<%s%s/deliveries?%s>; rel="next"`, path, url.PathEscape(in.ID), q.Encode())
	}
	out.Body.Items = items
	if out.Body.Items == nil {
		out.Body.Items = []*Delivery{}
	}
	return out, nil
}

func (s *Server) getDelivery(ctx context.Context, in *alertIDIn) (*deliveryOut, error) {
	p := principalFrom(ctx)
	var d *Delivery
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		r, err := tx.GetDelivery(ctx, in.AlertID)
		if errors.Is(err, store.ErrNotFound) {
			return errAlertMissing()
		}
		if err != nil {
			return err
		}
		d = deliveryOf(r)
		return nil
	})
	if err != nil {
		return nil, s.apiError("get delivery", err)
	}
	return &deliveryOut{Body: d}, nil
}

func (s *Server) redeliver(ctx context.Context, in *alertIDIn) (*acceptedOut, error) {
	p := principalFrom(ctx)
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		stored, endpoint, err := tx.AlertRecord(ctx, in.AlertID)
		if errors.Is(err, store.ErrNotFound) {
			return errAlertMissing()
		}
		if err != nil {
			return err
		}
		if err := deliverable(ctx, tx, endpoint); err != nil {
			return err
		}
		rec, err := s.deliveryRecord(stored)
		if err != nil {
			return err
		}
		if err := tx.InsertAudit(ctx, p.TenantID, p.actor(), "delivery.redeliver", "delivery", in.AlertID, nil,
			map[string]string{"alert_id": in.AlertID, "endpoint_id": endpoint}, requestID(ctx)); err != nil {
			return err
		}
		return s.queue(ctx, tx, rec)
	})
	if err != nil {
		return nil, s.apiError("redeliver", err)
	}
	return &acceptedOut{Body: QueuedDelivery{AlertID: in.AlertID}}, nil
}

func (s *Server) testWebhook(ctx context.Context, in *idIn) (*acceptedOut, error) {
	p := principalFrom(ctx)
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	alertID := "alrt_" + hex.EncodeToString(raw)
	now := time.Now().UTC()
	ref := "test_" + hex.EncodeToString(raw[:8])
	payload, _ := json.Marshal(schemas.WebhookPayload{
		Type: schemas.TypeWebhookTest, Timestamp: now,
		Data: schemas.PayloadData{
			AlertID: alertID, TenantID: p.TenantID,
			Rule:     schemas.RuleRef{ID: schemas.TestRuleID, Name: "Test delivery"},
			Event:    schemas.EventRef{ID: ref, Type: schemas.TypeWebhookTest, OccurredAt: now},
			Workflow: schemas.Workflow{ID: "exosphere-test", Name: "Test delivery from Exosphere Alerts"},
			Run:      schemas.PayloadRun{ID: ref, Status: "test"},
			Labels:   map[string]string{},
		},
	})
	value, _ := json.Marshal(schemas.DeliveryRecord{
		AlertID: alertID, TenantID: p.TenantID, RuleID: schemas.TestRuleID, EndpointID: in.ID,
		EventType: schemas.TypeWebhookTest, MaxAttempts: 1, Severity: "info", CreatedAt: now, Payload: payload,
	})
	if err := schemas.Validate(schemas.KindDelivery, value); err != nil {
		return nil, s.internalError("test webhook: record", err)
	}
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		exists, deleted, active, err := tx.EndpointStatus(ctx, in.ID)
		switch {
		case err != nil:
			return err
		case !exists || deleted:
			return huma.Error404NotFound("webhook endpoint not found")
		case !active:
			return huma.Error409Conflict("the webhook endpoint is disabled; enable it to send a test delivery")
		}
		if err := tx.InsertAudit(ctx, p.TenantID, p.actor(), "webhook.test", "webhook", in.ID, nil,
			map[string]string{"alert_id": alertID}, requestID(ctx)); err != nil {
			return err
		}
		return s.queue(ctx, tx, &kgo.Record{Topic: s.cfg.Topics.Deliveries, Key: schemas.RecordKey(p.TenantID, in.ID), Value: value})
	})
	if err != nil {
		return nil, s.apiError("test webhook", err)
	}
	return &acceptedOut{Body: QueuedDelivery{AlertID: alertID}}, nil
}
