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
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The delivery-history API: what the recorder keeps (alerts, attempts,
// dead letters), redelivery and dead-letter replay, and test deliveries.
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
	EventType    string            `json:"event_type" doc:"Alert type, e.g. workflow.run.failed (webhook.test for a test delivery)"`
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

// DeadLetter is an alert that ran out of attempts.
type DeadLetter struct {
	AlertID    string     `json:"alert_id" doc:"The alert's id (webhook-id)" example:"alrt_ca978112ca1bbdcafac231b39a23dc4d"`
	RuleID     string     `json:"rule_id" doc:"Rule that fired (\"test\" for a test delivery)"`
	EndpointID string     `json:"endpoint_id" doc:"Endpoint the alert was for"`
	EventType  string     `json:"event_type" doc:"Alert type"`
	WorkflowID string     `json:"workflow_id" doc:"Workflow of the run the alert is about"`
	RunID      string     `json:"run_id" doc:"Run the alert is about"`
	Attempts   int        `json:"attempts" doc:"Attempts made before it was dead-lettered"`
	LastError  string     `json:"last_error" doc:"Class and text of the last failure"`
	CreatedAt  time.Time  `json:"created_at" doc:"When the alert was raised"`
	DeadAt     time.Time  `json:"dead_at" doc:"When it was dead-lettered"`
	ReplayedAt *time.Time `json:"replayed_at" doc:"When it was last replayed; null if never. If a replayed alert fails again, it comes back with replayed_at null."`
}

type deliveryListOut struct {
	Link string `header:"Link" doc:"rel=next link when there are more items"`
	Body struct {
		Items      []*Delivery `json:"items" doc:"Alerts, newest first"`
		NextCursor string      `json:"next_cursor" doc:"Pass as ?cursor= to get the next page; empty on the last page"`
	}
}

type deliveryListIn struct {
	ID      string `path:"id" maxLength:"64"`
	Outcome string `query:"outcome" enum:"pending,delivered,retry,endpoint_gone,dead" doc:"Only alerts whose latest attempt had this outcome (pending: no attempt yet)"`
	Cursor  string `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit   int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
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

type deadLetterListIn struct {
	EndpointID string    `query:"endpoint_id" maxLength:"64" doc:"Only dead letters of this endpoint"`
	RuleID     string    `query:"rule_id" maxLength:"64" doc:"Only dead letters of this rule"`
	Since      time.Time `query:"since" doc:"Only dead letters that died at or after this time (RFC 3339)"`
	Until      time.Time `query:"until" doc:"Only dead letters that died before this time (RFC 3339)"`
	Replayed   string    `query:"replayed" enum:"true,false" doc:"true: only replayed ones; false: only ones not replayed"`
	Cursor     string    `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit      int       `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

type deadLetterListOut struct {
	Link string `header:"Link" doc:"rel=next link when there are more items"`
	Body struct {
		Items      []*DeadLetter `json:"items" doc:"Dead letters, latest death first"`
		NextCursor string        `json:"next_cursor" doc:"Pass as ?cursor= to get the next page; empty on the last page"`
	}
}

// ReplayedDeadLetter answers the replay of one dead letter.
type ReplayedDeadLetter struct {
	AlertID    string    `json:"alert_id" doc:"Id of the replayed alert (the same webhook-id as before)"`
	ReplayedAt time.Time `json:"replayed_at" doc:"When it was replayed"`
}

// maxReplay caps the dead letters one bulk replay sends.
const maxReplay = 10_000

// DeadLetterReplay is the body of POST /v1/dead-letters/replay.
type DeadLetterReplay struct {
	Since      time.Time `json:"since" doc:"Replay dead letters that died at or after this time (RFC 3339)"`
	Until      time.Time `json:"until" doc:"... and before this time"`
	EndpointID string    `json:"endpoint_id,omitempty" maxLength:"64" doc:"Only those of this endpoint"`
	RuleID     string    `json:"rule_id,omitempty" maxLength:"64" doc:"Only those of this rule"`
	Limit      int       `json:"limit,omitempty" minimum:"1" maximum:"10000" default:"10000" doc:"Replay at most this many (oldest first); call again to replay the rest"`
}

// DeadLetterReplayResult answers a bulk replay.
type DeadLetterReplayResult struct {
	Replayed int      `json:"replayed" doc:"How many dead letters were sent to delivery again"`
	AlertIDs []string `json:"alert_ids" doc:"Their alert ids, oldest death first"`
	Skipped  int      `json:"skipped" doc:"Matching dead letters not replayed because their endpoint is deleted or disabled"`
	More     bool     `json:"more" doc:"More matching dead letters remain (over the limit): call again"`
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
		Summary: "Get an alert with its payload and every delivery attempt", Security: sec, Errors: []int{401, 404},
	}, s.getDelivery)
	huma.Register(api, huma.Operation{
		OperationID: "redeliver", Method: http.MethodPost, Path: "/v1/deliveries/{alert_id}/redeliver", Tags: []string{"Delivery history"},
		Summary:     "Deliver an alert again",
		Description: "Queues the stored alert for delivery again, with the same alert id (webhook-id), so receivers can deduplicate. Attempts count from 1 again.",
		Security:    sec, DefaultStatus: http.StatusAccepted, Errors: []int{401, 403, 404, 409},
	}, s.redeliver)
	huma.Register(api, huma.Operation{
		OperationID: "list-dead-letters", Method: http.MethodGet, Path: "/v1/dead-letters", Tags: []string{"Dead letters"},
		Summary: "List dead letters", Description: "Alerts that ran out of attempts, latest death first.",
		Security: sec, Errors: []int{400, 401, 422},
	}, s.listDeadLetters)
	huma.Register(api, huma.Operation{
		OperationID: "replay-dead-letter", Method: http.MethodPost, Path: "/v1/dead-letters/{alert_id}/replay", Tags: []string{"Dead letters"},
		Summary:     "Replay one dead letter",
		Description: "Queues the dead-lettered alert for delivery again (same alert id) and marks it replayed.",
		Security:    sec, DefaultStatus: http.StatusAccepted, Errors: []int{401, 403, 404, 409},
	}, s.replayDeadLetter)
	huma.Register(api, huma.Operation{
		OperationID: "replay-dead-letters", Method: http.MethodPost, Path: "/v1/dead-letters/replay", Tags: []string{"Dead letters"},
		Summary:     "Replay the dead letters of a time range",
		Description: fmt.Sprintf("Queues every not yet replayed dead letter that died in [since, until) (optionally of one endpoint or rule) for delivery again, oldest first, at most %d per call; the answer says whether more remain. Dead letters of deleted or disabled endpoints are skipped.", maxReplay),
		Security:    sec, DefaultStatus: http.StatusAccepted, MaxBodyBytes: 4 << 10, Errors: []int{400, 401, 403, 422},
	}, s.replayDeadLetters)
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
func (s *Server) queue(ctx context.Context, tx pgx.Tx, recs ...*kgo.Record) error {
	for _, r := range recs {
		if err := insertOutbox(ctx, tx, r.Topic, string(r.Key), r.Value); err != nil {
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

// endpointState reports whether the tenant's endpoint exists (deleted
// ones included), is deleted, and is active.
func endpointState(ctx context.Context, tx pgx.Tx, tenant, id string) (exists, deleted, active bool, err error) {
	err = tx.QueryRow(ctx, `SELECT deleted_at IS NOT NULL, is_active FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2`,
		tenant, id).Scan(&deleted, &active)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, false, nil
	}
	if err != nil {
		return false, false, false, fmt.Errorf("controlplane: endpoint state: %w", err)
	}
	return true, deleted, active, nil
}

// deliverable answers why an alert for endpoint id cannot be delivered now,
// or nil.
func deliverable(ctx context.Context, tx pgx.Tx, tenant, id string) error {
	exists, deleted, active, err := endpointState(ctx, tx, tenant, id)
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

// passStatus returns err itself when it is an answer for the client, and a
// logged 500 otherwise.
func (s *Server) passStatus(op string, err error) error {
	var se huma.StatusError
	if errors.As(err, &se) {
		return se
	}
	return s.internalError(op, err)
}

// deliveryCols selects a Delivery (without attempts) from alerts a joined
// with its latest attempt (last) and its dead letter (d).
const deliveryCols = `a.alert_id, a.rule_id, a.endpoint_id, a.event_type,
	coalesce(a.record #>> '{payload,data,workflow,id}', ''), coalesce(a.record #>> '{payload,data,workflow,name}', ''),
	coalesce(a.record #>> '{payload,data,run,id}', ''), a.created_at,
	coalesce(last.outcome, 'pending'), d.alert_id IS NOT NULL, d.replayed_at`

const deliveryFrom = ` FROM alerts a
	LEFT JOIN LATERAL (SELECT x.outcome FROM delivery_attempts x WHERE x.tenant_id = a.tenant_id AND x.alert_id = a.alert_id
		ORDER BY x.attempted_at DESC, x.attempt DESC LIMIT 1) last ON true
	LEFT JOIN dead_letters d ON d.tenant_id = a.tenant_id AND d.alert_id = a.alert_id`

func scanDelivery(row pgx.Row, extra ...any) (*Delivery, error) {
	var d Delivery
	err := row.Scan(append([]any{&d.AlertID, &d.RuleID, &d.EndpointID, &d.EventType, &d.WorkflowID, &d.WorkflowName, &d.RunID,
		&d.CreatedAt, &d.Status, &d.DeadLettered, &d.ReplayedAt}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("controlplane: scan delivery: %w", err)
	}
	d.Attempts = []DeliveryAttempt{}
	return &d, nil
}

// loadAttempts fills in the attempts of ds.
func loadAttempts(ctx context.Context, tx pgx.Tx, tenant string, ds []*Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	byID := make(map[string]*Delivery, len(ds))
	ids := make([]string, 0, len(ds))
	for _, d := range ds {
		byID[d.AlertID] = d
		ids = append(ids, d.AlertID)
	}
	rows, err := tx.Query(ctx, `SELECT alert_id, delivery_id, attempt, outcome, status_code, latency_ms, error_class, error,
			response_excerpt, attempted_at
		FROM delivery_attempts WHERE tenant_id = $1 AND alert_id = ANY($2)
		ORDER BY alert_id, attempted_at, attempt`, tenant, ids)
	if err != nil {
		return fmt.Errorf("controlplane: load attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a DeliveryAttempt
		if err := rows.Scan(&id, &a.DeliveryID, &a.Attempt, &a.Outcome, &a.StatusCode, &a.LatencyMS, &a.ErrorClass, &a.Error,
			&a.ResponseExcerpt, &a.AttemptedAt); err != nil {
			return fmt.Errorf("controlplane: scan attempt: %w", err)
		}
		if d := byID[id]; d != nil {
			d.Attempts = append(d.Attempts, a)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("controlplane: load attempts: %w", err)
	}
	return nil
}

func (s *Server) listDeliveries(ctx context.Context, in *deliveryListIn, of string) (*deliveryListOut, error) {
	p := principalFrom(ctx)
	cur, err := parseCursor(in.Cursor)
	if err != nil {
		return nil, huma.Error400BadRequest("bad cursor", &huma.ErrorDetail{Location: "query.cursor", Message: err.Error()})
	}
	table, col, path, missing := "alert_rules", "rule_id", "/v1/alert-rules/", "alert rule not found"
	if of == "endpoint" {
		table, col, path, missing = "webhook_endpoints", "endpoint_id", "/v1/webhooks/", "webhook endpoint not found"
	}
	var items []*Delivery
	err = s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		// Deleted rules and endpoints keep their history.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE tenant_id = $1 AND id = $2)`,
			p.TenantID, in.ID).Scan(&exists); err != nil {
			return fmt.Errorf("controlplane: look up %s: %w", table, err)
		}
		if !exists {
			return huma.Error404NotFound(missing)
		}
		args := []any{p.TenantID, in.ID, in.Limit + 1, in.Outcome}
		where := ""
		if cur != nil {
			args = append(args, cur.CreatedAt, cur.ID)
			where = ` AND (a.created_at, a.alert_id) < ($5, $6)`
		}
		rows, err := tx.Query(ctx, `SELECT `+deliveryCols+deliveryFrom+`
			WHERE a.tenant_id = $1 AND a.`+col+` = $2 AND ($4 = '' OR coalesce(last.outcome, 'pending') = $4)`+where+`
			ORDER BY a.created_at DESC, a.alert_id DESC LIMIT $3`, args...)
		if err != nil {
			return fmt.Errorf("controlplane: list deliveries: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDelivery(rows)
			if err != nil {
				return err
			}
			items = append(items, d)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("controlplane: list deliveries: %w", err)
		}
		rows.Close()
		return loadAttempts(ctx, tx, p.TenantID, items)
	})
	if err != nil {
		return nil, s.passStatus("list deliveries", err)
	}
	out := &deliveryListOut{}
	if len(items) > in.Limit {
		items = items[:in.Limit]
		last := items[len(items)-1]
		out.Body.NextCursor = cursor{CreatedAt: last.CreatedAt, ID: last.AlertID}.String()
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
	err := s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		var payload []byte
		var err error
		d, err = scanDelivery(tx.QueryRow(ctx, `SELECT `+deliveryCols+`, a.record->'payload'`+deliveryFrom+`
			WHERE a.tenant_id = $1 AND a.alert_id = $2`, p.TenantID, in.AlertID), &payload)
		if errors.Is(err, ErrNotFound) {
			return errAlertMissing()
		}
		if err != nil {
			return err
		}
		d.Payload = payload
		return loadAttempts(ctx, tx, p.TenantID, []*Delivery{d})
	})
	if err != nil {
		return nil, s.passStatus("get delivery", err)
	}
	return &deliveryOut{Body: d}, nil
}

func (s *Server) redeliver(ctx context.Context, in *alertIDIn) (*acceptedOut, error) {
	p := principalFrom(ctx)
	err := s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		var stored []byte
		var endpoint string
		err := tx.QueryRow(ctx, `SELECT record, endpoint_id FROM alerts WHERE tenant_id = $1 AND alert_id = $2`,
			p.TenantID, in.AlertID).Scan(&stored, &endpoint)
		if errors.Is(err, pgx.ErrNoRows) {
			return errAlertMissing()
		}
		if err != nil {
			return fmt.Errorf("controlplane: load alert: %w", err)
		}
		if err := deliverable(ctx, tx, p.TenantID, endpoint); err != nil {
			return err
		}
		rec, err := s.deliveryRecord(stored)
		if err != nil {
			return err
		}
		if err := insertAudit(ctx, tx, p.TenantID, p.actor(), "delivery.redeliver", "delivery", in.AlertID, nil,
			map[string]string{"alert_id": in.AlertID, "endpoint_id": endpoint}, requestID(ctx)); err != nil {
			return err
		}
		return s.queue(ctx, tx, rec)
	})
	if err != nil {
		return nil, s.passStatus("redeliver", err)
	}
	return &acceptedOut{Body: QueuedDelivery{AlertID: in.AlertID}}, nil
}

const deadLetterCols = `d.alert_id, d.rule_id, d.endpoint_id, coalesce(d.record->>'event_type', ''),
	coalesce(d.record #>> '{payload,data,workflow,id}', ''), coalesce(d.record #>> '{payload,data,run,id}', ''),
	d.attempts, d.last_error, coalesce((d.record->>'created_at')::timestamptz, d.dead_at), d.dead_at, d.replayed_at`

func (s *Server) listDeadLetters(ctx context.Context, in *deadLetterListIn) (*deadLetterListOut, error) {
	p := principalFrom(ctx)
	cur, err := parseCursor(in.Cursor)
	if err != nil {
		return nil, huma.Error400BadRequest("bad cursor", &huma.ErrorDetail{Location: "query.cursor", Message: err.Error()})
	}
	if !in.Since.IsZero() && !in.Until.IsZero() && !in.Since.Before(in.Until) {
		return nil, huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{
			Location: "query.until", Message: "must be after since", Value: in.Until,
		})
	}
	args := []any{p.TenantID, in.Limit + 1}
	where := ""
	add := func(cond string, v any) {
		args = append(args, v)
		where += fmt.Sprintf(cond, len(args))
	}
	if in.EndpointID != "" {
		add(` AND d.endpoint_id = $%d`, in.EndpointID)
	}
	if in.RuleID != "" {
		add(` AND d.rule_id = $%d`, in.RuleID)
	}
	if !in.Since.IsZero() {
		add(` AND d.dead_at >= $%d`, in.Since)
	}
	if !in.Until.IsZero() {
		add(` AND d.dead_at < $%d`, in.Until)
	}
	switch in.Replayed {
	case "true":
		where += ` AND d.replayed_at IS NOT NULL`
	case "false":
		where += ` AND d.replayed_at IS NULL`
	}
	if cur != nil {
		args = append(args, cur.CreatedAt, cur.ID)
		where += fmt.Sprintf(` AND (d.dead_at, d.alert_id) < ($%d, $%d)`, len(args)-1, len(args))
	}
	var items []*DeadLetter
	err = s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+deadLetterCols+` FROM dead_letters d WHERE d.tenant_id = $1`+where+`
			ORDER BY d.dead_at DESC, d.alert_id DESC LIMIT $2`, args...)
		if err != nil {
			return fmt.Errorf("controlplane: list dead letters: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var dl DeadLetter
			if err := rows.Scan(&dl.AlertID, &dl.RuleID, &dl.EndpointID, &dl.EventType, &dl.WorkflowID, &dl.RunID,
				&dl.Attempts, &dl.LastError, &dl.CreatedAt, &dl.DeadAt, &dl.ReplayedAt); err != nil {
				return fmt.Errorf("controlplane: scan dead letter: %w", err)
			}
			items = append(items, &dl)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("controlplane: list dead letters: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, s.passStatus("list dead letters", err)
	}
	out := &deadLetterListOut{}
	if len(items) > in.Limit {
		items = items[:in.Limit]
		last := items[len(items)-1]
		out.Body.NextCursor = cursor{CreatedAt: last.DeadAt, ID: last.AlertID}.String()
		q := url.Values{"cursor": {out.Body.NextCursor}, "limit": {fmt.Sprint(in.Limit)}}
		for k, v := range map[string]string{"endpoint_id": in.EndpointID, "rule_id": in.RuleID, "replayed": in.Replayed} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if !in.Since.IsZero() {
			q.Set("since", in.Since.Format(time.RFC3339Nano))
		}
		if !in.Until.IsZero() {
			q.Set("until", in.Until.Format(time.RFC3339Nano))
		}
		out.Link = fmt.Sprintf(`</v1/dead-letters?%s>; rel="next"`, q.Encode())
	}
	out.Body.Items = items
	if out.Body.Items == nil {
		out.Body.Items = []*DeadLetter{}
	}
	return out, nil
}

func (s *Server) replayDeadLetter(ctx context.Context, in *alertIDIn) (*struct{ Body ReplayedDeadLetter }, error) {
	p := principalFrom(ctx)
	out := &struct{ Body ReplayedDeadLetter }{}
	err := s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		var stored []byte
		var endpoint string
		var replayed *time.Time
		err := tx.QueryRow(ctx, `SELECT record, endpoint_id, replayed_at FROM dead_letters WHERE tenant_id = $1 AND alert_id = $2
			FOR UPDATE`, p.TenantID, in.AlertID).Scan(&stored, &endpoint, &replayed)
		if errors.Is(err, pgx.ErrNoRows) {
			return huma.Error404NotFound("dead letter not found")
		}
		if err != nil {
			return fmt.Errorf("controlplane: load dead letter: %w", err)
		}
		if err := deliverable(ctx, tx, p.TenantID, endpoint); err != nil {
			return err
		}
		rec, err := s.deliveryRecord(stored)
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `UPDATE dead_letters SET replayed_at = now() WHERE tenant_id = $1 AND alert_id = $2
			RETURNING replayed_at`, p.TenantID, in.AlertID).Scan(&out.Body.ReplayedAt); err != nil {
			return fmt.Errorf("controlplane: mark dead letter replayed: %w", err)
		}
		after := map[string]any{"alert_id": in.AlertID, "endpoint_id": endpoint, "replayed_at": out.Body.ReplayedAt}
		var before any
		if replayed != nil {
			before = map[string]any{"replayed_at": replayed}
		}
		if err := insertAudit(ctx, tx, p.TenantID, p.actor(), "dead_letter.replay", "dead_letter", in.AlertID, before, after, requestID(ctx)); err != nil {
			return err
		}
		return s.queue(ctx, tx, rec)
	})
	if err != nil {
		return nil, s.passStatus("replay dead letter", err)
	}
	out.Body.AlertID = in.AlertID
	return out, nil
}

func (s *Server) replayDeadLetters(ctx context.Context, in *struct{ Body DeadLetterReplay }) (*struct{ Body DeadLetterReplayResult }, error) {
	p := principalFrom(ctx)
	b := in.Body
	var details []error
	if b.Since.IsZero() {
		details = append(details, &huma.ErrorDetail{Location: "body.since", Message: "required"})
	}
	if b.Until.IsZero() {
		details = append(details, &huma.ErrorDetail{Location: "body.until", Message: "required"})
	} else if !b.Since.IsZero() && !b.Since.Before(b.Until) {
		details = append(details, &huma.ErrorDetail{Location: "body.until", Message: "must be after since", Value: b.Until})
	}
	if len(details) > 0 {
		return nil, huma.Error422UnprocessableEntity("validation failed", details...)
	}
	limit := b.Limit
	if limit <= 0 || limit > maxReplay {
		limit = maxReplay
	}
	out := &struct{ Body DeadLetterReplayResult }{}
	out.Body.AlertIDs = []string{}
	err := s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		const match = ` FROM dead_letters d
			LEFT JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id
			WHERE d.tenant_id = $1 AND d.replayed_at IS NULL AND d.dead_at >= $2 AND d.dead_at < $3
				AND ($4 = '' OR d.endpoint_id = $4) AND ($5 = '' OR d.rule_id = $5)`
		const live = ` AND e.deleted_at IS NULL AND e.is_active`
		args := []any{p.TenantID, b.Since, b.Until, b.EndpointID, b.RuleID}
		if err := tx.QueryRow(ctx, `SELECT count(*)`+match+` AND NOT coalesce(e.deleted_at IS NULL AND e.is_active, false)`,
			args...).Scan(&out.Body.Skipped); err != nil {
			return fmt.Errorf("controlplane: count skipped dead letters: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT d.alert_id, d.record`+match+live+`
			ORDER BY d.dead_at, d.alert_id LIMIT $6 FOR UPDATE OF d SKIP LOCKED`, append(args, limit+1)...)
		if err != nil {
			return fmt.Errorf("controlplane: select dead letters: %w", err)
		}
		var ids []string
		var recs []*kgo.Record
		for rows.Next() {
			var id string
			var stored []byte
			if err := rows.Scan(&id, &stored); err != nil {
				rows.Close()
				return fmt.Errorf("controlplane: scan dead letter: %w", err)
			}
			rec, err := s.deliveryRecord(stored)
			if err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			recs = append(recs, rec)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("controlplane: select dead letters: %w", err)
		}
		if len(recs) > limit {
			ids, recs = ids[:limit], recs[:limit]
			out.Body.More = true
		}
		if len(recs) == 0 {
			return nil
		}
		if err := s.queue(ctx, tx, recs...); err != nil {
			return err
		}
		sent := ids
		if _, err := tx.Exec(ctx, `UPDATE dead_letters SET replayed_at = now() WHERE tenant_id = $1 AND alert_id = ANY($2)`,
			p.TenantID, sent); err != nil {
			return fmt.Errorf("controlplane: mark dead letters replayed: %w", err)
		}
		out.Body.Replayed, out.Body.AlertIDs = len(sent), sent
		return insertAudit(ctx, tx, p.TenantID, p.actor(), "dead_letter.replay_range", "dead_letter", "*", nil, map[string]any{
			"since": b.Since, "until": b.Until, "endpoint_id": b.EndpointID, "rule_id": b.RuleID,
			"replayed": len(sent), "alert_ids": sent,
		}, requestID(ctx))
	})
	if err != nil {
		return nil, s.passStatus("replay dead letters", err)
	}
	return out, nil
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
	err := s.tenantTx(ctx, p.TenantID, func(tx pgx.Tx) error {
		exists, deleted, active, err := endpointState(ctx, tx, p.TenantID, in.ID)
		switch {
		case err != nil:
			return err
		case !exists || deleted:
			return huma.Error404NotFound("webhook endpoint not found")
		case !active:
			return huma.Error409Conflict("the webhook endpoint is disabled; enable it to send a test delivery")
		}
		if err := insertAudit(ctx, tx, p.TenantID, p.actor(), "webhook.test", "webhook", in.ID, nil,
			map[string]string{"alert_id": alertID}, requestID(ctx)); err != nil {
			return err
		}
		return s.queue(ctx, tx, &kgo.Record{Topic: s.cfg.Topics.Deliveries, Key: schemas.RecordKey(p.TenantID, in.ID), Value: value})
	})
	if err != nil {
		return nil, s.passStatus("test webhook", err)
	}
	return &acceptedOut{Body: QueuedDelivery{AlertID: alertID}}, nil
}
