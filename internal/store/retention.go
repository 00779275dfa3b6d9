package store

import (
	"context"
	"fmt"
	"time"
)

// retentionBatch caps the rows one retention DELETE removes (short
// transactions, short locks).
const retentionBatch = 5000

// PruneHistory deletes alerts, attempts and dead letters older than cutoff,
// in batches of retentionBatch rows, each in its own transaction. An old
// alert redelivered or dead-lettered lately keeps its payload. It returns
// how many rows of each table it deleted (so far, on an error).
func (s *Store) PruneHistory(ctx context.Context, cutoff time.Time) (map[string]int64, error) {
	stmts := []struct{ table, sql string }{
		{"alerts", `DELETE FROM alerts WHERE alert_id IN
			(SELECT a.alert_id FROM alerts a WHERE a.created_at < $1
				AND NOT EXISTS (SELECT 1 FROM delivery_attempts d WHERE d.alert_id = a.alert_id AND d.attempted_at >= $1)
				AND NOT EXISTS (SELECT 1 FROM dead_letters x WHERE x.alert_id = a.alert_id AND x.dead_at >= $1)
			 LIMIT $2)`},
		{"delivery_attempts", `DELETE FROM delivery_attempts WHERE (alert_id, delivery_id) IN
			(SELECT alert_id, delivery_id FROM delivery_attempts WHERE attempted_at < $1 LIMIT $2)`},
		{"dead_letters", `DELETE FROM dead_letters WHERE alert_id IN
			(SELECT alert_id FROM dead_letters WHERE dead_at < $1 LIMIT $2)`},
	}
	out := map[string]int64{}
	for _, st := range stmts {
		for {
			var n int64
			err := s.System(ctx, func(tx *Tx) error {
				tag, err := tx.tx.Exec(ctx, st.sql, cutoff, retentionBatch)
				n = tag.RowsAffected()
				return err
			})
			if err != nil {
				return out, fmt.Errorf("store: prune %s: %w", st.table, err)
			}
			out[st.table] += n
			if n < retentionBatch {
				break
			}
		}
	}
	return out, nil
}

// PruneOutbox deletes outbox rows published before cutoff, in batches, and
// returns how many. Unpublished rows are never deleted, however old.
func (s *Store) PruneOutbox(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE id IN
			(SELECT id FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1 ORDER BY id LIMIT $2)`, cutoff, retentionBatch)
		if err != nil {
			return total, fmt.Errorf("store: prune outbox: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < retentionBatch {
			return total, nil
		}
	}
}
