package recorder

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// Replay produces quarantined record id again, raw (key, value, headers),
// to its topic with cl, and marks it replayed: its consumer reads it as a
// new record. Fix what made it invalid or made Postgres refuse it first, or
// it is quarantined again. `exo-alerts quarantine replay <id>` calls it.
func Replay(ctx context.Context, db *store.Store, cl *kgo.Client, id int64) error {
	return db.ReplayQuarantined(ctx, id, func(q *store.QuarantinedRecord) error {
		rec := &kgo.Record{Topic: q.Topic, Key: q.Key, Value: q.Value}
		for _, h := range q.Headers {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		return cl.ProduceSync(ctx, rec).FirstErr()
	})
}
