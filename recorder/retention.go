package recorder

import (
	"context"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// sentOutboxRetention is how long published outbox rows are kept (to see
// what was published lately); every start of the control plane republishes
// the live state, so older ones are of no use.
const sentOutboxRetention = 24 * time.Hour

// retain deletes history older than the retention, and published outbox
// rows older than sentOutboxRetention, every RetentionInterval (and once at
// start).
func (r *recorder) retain(ctx context.Context) {
	tick := time.NewTicker(r.cfg.RetentionInterval)
	defer tick.Stop()
	for {
		r.prune(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// prune deletes, once, what the retention no longer keeps at now.
func (r *recorder) prune(ctx context.Context, now time.Time) {
	if r.cfg.HistoryRetention > 0 {
		n, err := r.db.PruneHistory(ctx, now.Add(-r.cfg.HistoryRetention))
		for table, rows := range n {
			r.m.pruned.WithLabelValues(table).Add(float64(rows))
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("history retention", "err", err)
		}
	}
	if _, err := r.db.PruneOutbox(ctx, now.Add(-sentOutboxRetention)); err != nil && ctx.Err() == nil {
		r.log.Warn("outbox retention", "err", err)
	}
	n, err := r.db.PruneQuotaSuppressions(ctx, now.Add(-store.QuotaUsageRetention))
	r.m.pruned.WithLabelValues(quotaTable).Add(float64(n))
	if err != nil && ctx.Err() == nil {
		r.log.Warn("quota suppressions retention", "err", err)
	}
}
