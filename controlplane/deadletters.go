package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// The dead-letter API: listing the alerts that ran out of attempts and
// replaying one or a time range of them. Like the rest of the history API
// it runs in the caller's tenant transaction.

// DeadLetter is an alert that ran out of attempts.
type DeadLetter struct {
	AlertID    string     `json:"alert_id" doc:"The alert's id (webhook-id)" example:"alrt_ca978112ca1bbdcafac231b39a23dc4d"`
	RuleID     string     `json:"rule_id" doc:"Rule that fired (\"test\" for a test delivery)"`
	EndpointID string     `json:"endpoint_id" doc:"Endpoint the alert was for"`
	EventType  string     `json:"event_type" enum:"workflow.run.failed,workflow.run.succeeded,workflow.run.started,workflow.run.duration_exceeded,workflow.alert.firing,workflow.alert.resolved,tenant.notice,webhook.test" doc:"The type of delivery"`
	WorkflowID string     `json:"workflow_id" doc:"Workflow of the run the alert is about"`
	RunID      string     `json:"run_id" doc:"Run the alert is about"`
	Attempts   int        `json:"attempts" doc:"Attempts made before it was dead-lettered"`
	LastError  string     `json:"last_error" doc:"Class and text of the last failure"`
	CreatedAt  time.Time  `json:"created_at" doc:"When the alert was raised"`
	DeadAt     time.Time  `json:"dead_at" doc:"When it was dead-lettered"`
	ReplayedAt *time.Time `json:"replayed_at" doc:"When it was last replayed; null if never. If a replayed alert fails again, it comes back with replayed_at null."`
}

type deadLetterListIn struct {
	EndpointID string    `query:"endpoint_id" maxLength:"64" doc:"Only dead letters of this endpoint"`
	RuleID     string    `query:"rule_id" maxLength:"64" doc:"Only dead letters of this rule"`
	Since      time.Time `query:"since" doc:"Only dead letters that died at or after this time (RFC 3339)"`
	Until      time.Time `query:"until" doc:"Only dead letters that died before this time (RFC 3339)"`
	Replayed   string    `query:"replayed" enum:"true,false" doc:"true: only replayed ones; false: only ones not replayed"`
	Cursor     string    `query:"cursor" maxLength:"200" doc:"Opaque cursor from next_cursor"`
	Limit      int       `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"The most items on a page"`
}

// DeadLetterList is a page of the tenant's dead letters (GET /v1/dead-letters).
type DeadLetterList struct {
	Items      []*DeadLetter `json:"items" doc:"Dead letters, latest death first"`
	NextCursor string        `json:"next_cursor" doc:"Pass as ?cursor= to get the next page; empty on the last page"`
}

type deadLetterListOut struct {
	Link string `header:"Link" doc:"The next page's URL as <url>; rel=\"next\", when there is one"`
	Body DeadLetterList
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

func (s *Server) registerDeadLetters(api huma.API, sec []map[string][]string) {
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
}

func (s *Server) listDeadLetters(ctx context.Context, in *deadLetterListIn) (*deadLetterListOut, error) {
	p := principalFrom(ctx)
	cur, err := queryCursor(in.Cursor, store.ParseCursor)
	if err != nil {
		return nil, err
	}
	if err := queryTimeRange(in.Since, in.Until); err != nil {
		return nil, err
	}
	f := store.DeadLetterFilter{EndpointID: in.EndpointID, RuleID: in.RuleID, Since: in.Since, Until: in.Until, After: cur, Limit: in.Limit + 1}
	if in.Replayed != "" {
		replayed := in.Replayed == "true"
		f.Replayed = &replayed
	}
	var items []*DeadLetter
	err = s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		rows, err := tx.ListDeadLetters(ctx, f)
		if err != nil {
			return err
		}
		for _, r := range rows {
			items = append(items, &DeadLetter{
				AlertID: r.AlertID, RuleID: r.RuleID, EndpointID: r.EndpointID, EventType: r.EventType, WorkflowID: r.WorkflowID,
				RunID: r.RunID, Attempts: r.Attempts, LastError: r.LastError, CreatedAt: r.CreatedAt, DeadAt: r.DeadAt, ReplayedAt: r.ReplayedAt,
			})
		}
		return nil
	})
	if err != nil {
		return nil, s.apiError("list dead letters", err)
	}
	out := &deadLetterListOut{}
	if len(items) > in.Limit {
		items = items[:in.Limit]
		last := items[len(items)-1]
		out.Body.NextCursor = store.Cursor{CreatedAt: last.DeadAt, ID: last.AlertID}.String()
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
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		stored, endpoint, replayed, err := tx.LockDeadLetter(ctx, in.AlertID)
		if errors.Is(err, store.ErrNotFound) {
			return huma.Error404NotFound("dead letter not found")
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
		if out.Body.ReplayedAt, err = tx.MarkDeadLetterReplayed(ctx, in.AlertID); err != nil {
			return err
		}
		after := map[string]any{"alert_id": in.AlertID, "endpoint_id": endpoint, "replayed_at": out.Body.ReplayedAt}
		var before any
		if replayed != nil {
			before = map[string]any{"replayed_at": replayed}
		}
		if err := tx.InsertAudit(ctx, p.TenantID, p.actor(), "dead_letter.replay", "dead_letter", in.AlertID, before, after, requestID(ctx)); err != nil {
			return err
		}
		return s.queue(ctx, tx, rec)
	})
	if err != nil {
		return nil, s.apiError("replay dead letter", err)
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
	err := s.tenantTx(ctx, p.TenantID, func(tx *store.Tx) error {
		r := store.DeadLetterRange{Since: b.Since, Until: b.Until, EndpointID: b.EndpointID, RuleID: b.RuleID}
		var err error
		if out.Body.Skipped, err = tx.CountUndeliverableDeadLetters(ctx, r); err != nil {
			return err
		}
		dls, err := tx.LockDeliverableDeadLetters(ctx, r, limit+1)
		if err != nil {
			return err
		}
		var ids []string
		var recs []*kgo.Record
		for _, d := range dls {
			rec, err := s.deliveryRecord(d.Record)
			if err != nil {
				return err
			}
			ids = append(ids, d.AlertID)
			recs = append(recs, rec)
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
		if err := tx.MarkDeadLettersReplayed(ctx, sent); err != nil {
			return err
		}
		out.Body.Replayed, out.Body.AlertIDs = len(sent), sent
		return tx.InsertAudit(ctx, p.TenantID, p.actor(), "dead_letter.replay_range", "dead_letter", "*", nil, map[string]any{
			"since": b.Since, "until": b.Until, "endpoint_id": b.EndpointID, "rule_id": b.RuleID,
			"replayed": len(sent), "alert_ids": sent,
		}, requestID(ctx))
	})
	if err != nil {
		return nil, s.apiError("replay dead letters", err)
	}
	return out, nil
}
