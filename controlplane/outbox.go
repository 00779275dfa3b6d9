package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
)

// relay publishes outbox rows to Kafka in id order and marks them sent. It
// is woken by NOTIFY exo_outbox (sent by a trigger on insert) and polls as a
// fallback. A Kafka outage leaves rows unsent; nothing is lost.
type relay struct {
	pool   *pgxpool.Pool
	kafka  *kgo.Client
	topics kafka.Topics
	poll   time.Duration
	log    *slog.Logger
}

const relayBatch = 500

func (r *relay) run(ctx context.Context) error {
	if err := r.republish(ctx); err != nil && ctx.Err() == nil {
		r.log.Error("republish live rules and endpoints", "err", err)
	}
	for ctx.Err() == nil {
		if err := r.listen(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("outbox listener failed; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(r.poll):
			}
		}
	}
	return nil
}

func (r *relay) listen(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("outbox: acquire listener: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN exo_outbox"); err != nil {
		return fmt.Errorf("outbox: listen: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "UNLISTEN exo_outbox") }()
	for {
		if _, err := r.drain(ctx); err != nil {
			r.log.Warn("outbox publish failed; rows stay queued", "err", err)
		}
		wctx, cancel := context.WithTimeout(ctx, r.poll)
		_, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("outbox: wait for notification: %w", err)
		}
	}
}

// drain publishes batches until the outbox is empty, returning how many rows it sent.
func (r *relay) drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := r.publishBatch(ctx)
		total += n
		if err != nil || n < relayBatch {
			return total, err
		}
	}
}

func (r *relay) publishBatch(ctx context.Context) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, topic, key, value FROM outbox WHERE sent_at IS NULL
			ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, relayBatch)
		if err != nil {
			return fmt.Errorf("outbox: claim: %w", err)
		}
		var ids []int64
		var recs []*kgo.Record
		for rows.Next() {
			var id int64
			rec := &kgo.Record{}
			var key string
			if err := rows.Scan(&id, &rec.Topic, &key, &rec.Value); err != nil {
				rows.Close()
				return fmt.Errorf("outbox: scan: %w", err)
			}
			rec.Key = []byte(key)
			ids = append(ids, id)
			recs = append(recs, rec)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("outbox: claim: %w", err)
		}
		if len(recs) == 0 {
			return nil
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := r.kafka.ProduceSync(pctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("outbox: publish %d records: %w", len(recs), err)
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET sent_at = now() WHERE id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("outbox: mark sent: %w", err)
		}
		n = len(recs)
		return nil
	})
	return n, err
}

// republish queues a snapshot of every live rule and endpoint, so the
// compacted topics converge on Postgres even if they were lost or trimmed.
func (r *relay) republish(ctx context.Context) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		var outs [][3]any
		rows, err := tx.Query(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE deleted_at IS NULL`)
		if err != nil {
			return fmt.Errorf("outbox: republish endpoints: %w", err)
		}
		for rows.Next() {
			e, err := scanEndpoint(rows)
			if err != nil {
				rows.Close()
				return err
			}
			v, _ := json.Marshal(e.snapshot())
			outs = append(outs, [3]any{r.topics.Endpoints, e.TenantID + "/" + e.ID, v})
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("outbox: republish endpoints: %w", err)
		}
		rows, err = tx.Query(ctx, `SELECT `+ruleCols+` FROM alert_rules WHERE deleted_at IS NULL`)
		if err != nil {
			return fmt.Errorf("outbox: republish rules: %w", err)
		}
		for rows.Next() {
			ru, err := scanRule(rows)
			if err != nil {
				rows.Close()
				return err
			}
			v, _ := json.Marshal(ru.snapshot())
			outs = append(outs, [3]any{r.topics.Rules, ru.TenantID + "/" + ru.ID, v})
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("outbox: republish rules: %w", err)
		}
		for _, o := range outs {
			if err := insertOutbox(ctx, tx, o[0].(string), o[1].(string), o[2].([]byte)); err != nil {
				return err
			}
		}
		if len(outs) > 0 {
			r.log.Info("republishing live rules and endpoints", "records", len(outs))
		}
		return nil
	})
}
