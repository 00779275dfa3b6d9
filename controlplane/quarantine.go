package controlplane

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// quarantinedHeader is a header as quarantined_records.headers stores it
// (the recorder writes them; the store reads them back).
type quarantinedHeader = store.QuarantinedHeader

// ReplayQuarantined produces quarantined record id again, raw (key, value,
// headers), to its topic with cl, and marks it replayed: its consumer reads
// it as a new record. Fix what made it invalid or made Postgres refuse it
// first, or it is quarantined again.
func ReplayQuarantined(ctx context.Context, db *store.Store, cl *kgo.Client, id int64) error {
	return db.ReplayQuarantined(ctx, id, func(q *store.QuarantinedRecord) error {
		rec := &kgo.Record{Topic: q.Topic, Key: q.Key, Value: q.Value}
		for _, h := range q.Headers {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		return cl.ProduceSync(ctx, rec).FirstErr()
	})
}
