package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The dead-letter API: listing the alerts that ran out of attempts and
// replaying one or a time range of them. Like the rest of the history API
// it runs in the caller's tenant transaction.

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

const deadLetterCols = `d.alert_id, d.rule_id, d.endpoint_id, coalesce(d.record->>'event_type', ''),
	coalesce(d.record #>> '{payload,data,workflow,id}', ''), coalesce(d.record #>> '{payload,data,run,id}', ''),
	d.attempts, d.last_error, coalesce((d.record->>'created_at')::timestamptz, d.dead_at), d.dead_at, d.replayed_at`

func (s *Server) listDeadLetters(ctx context.Context, in *deadLetterListIn) (*deadLetterListOut, error) {
	p := principalFrom(ctx)
	cur, err := store.ParseCursor(in.Cursor)
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
	err = s.tenantTx(ctx, p.TenantID, func(stx *store.Tx) error {
		tx := stx.Conn() // until this handler's SQL moves to the store
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
	err := s.tenantTx(ctx, p.TenantID, func(stx *store.Tx) error {
		tx := stx.Conn() // until this handler's SQL moves to the store
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
		if err := store.Of(tx).InsertAudit(ctx, p.TenantID, p.actor(), "dead_letter.replay", "dead_letter", in.AlertID, before, after, requestID(ctx)); err != nil {
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
	err := s.tenantTx(ctx, p.TenantID, func(stx *store.Tx) error {
		tx := stx.Conn() // until this handler's SQL moves to the store
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
		return store.Of(tx).InsertAudit(ctx, p.TenantID, p.actor(), "dead_letter.replay_range", "dead_letter", "*", nil, map[string]any{
			"since": b.Since, "until": b.Until, "endpoint_id": b.EndpointID, "rule_id": b.RuleID,
			"replayed": len(sent), "alert_ids": sent,
		}, requestID(ctx))
	})
	if err != nil {
		return nil, s.apiError("replay dead letters", err)
	}
	return out, nil
}
