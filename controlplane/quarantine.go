package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
)

// QuarantinedRecord is a record a consumer set aside because it can never
// be written: it could not be decoded, failed its schema, or Postgres
// refused it with a data error (table quarantined_records), as the operator
// commands show it.
type QuarantinedRecord struct {
	ID            int64
	Consumer      string
	Topic         string
	Partition     int32
	Offset        int64
	Key, Value    []byte
	Headers       []kgo.RecordHeader
	Error         string
	QuarantinedAt time.Time
	ReplayedAt    *time.Time
}

// quarantinedHeader is a header as quarantined_records.headers stores it
// (the value base64, as encoding/json writes bytes).
type quarantinedHeader struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

const quarantinedCols = `id, consumer, topic, "partition", "offset", key, value, headers, error, quarantined_at, replayed_at`

func scanQuarantined(row pgx.Row) (*QuarantinedRecord, error) {
	var q QuarantinedRecord
	var headers []byte
	if err := row.Scan(&q.ID, &q.Consumer, &q.Topic, &q.Partition, &q.Offset, &q.Key, &q.Value, &headers,
		&q.Error, &q.QuarantinedAt, &q.ReplayedAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("quarantine: scan: %w", err)
	}
	var hs []quarantinedHeader
	if err := json.Unmarshal(headers, &hs); err != nil {
		return nil, fmt.Errorf("quarantine: headers of %d: %w", q.ID, err)
	}
	for _, h := range hs {
		q.Headers = append(q.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return &q, nil
}

// ListQuarantined returns the latest quarantined records, newest first.
func ListQuarantined(ctx context.Context, pool *pgxpool.Pool, limit int) ([]QuarantinedRecord, error) {
	rows, err := pool.Query(ctx, `SELECT `+quarantinedCols+` FROM quarantined_records ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("quarantine: list: %w", err)
	}
	defer rows.Close()
	var out []QuarantinedRecord
	for rows.Next() {
		q, err := scanQuarantined(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("quarantine: list: %w", err)
	}
	return out, nil
}

// ReplayQuarantined produces quarantined record id again, raw (key, value,
// headers), to its topic, and marks it replayed: its consumer reads it as
// a new record. Fix what made it invalid or made Postgres refuse it first,
// or it is quarantined again.
func ReplayQuarantined(ctx context.Context, pool *pgxpool.Pool, cl *kgo.Client, id int64) error {
	q, err := scanQuarantined(pool.QueryRow(ctx, `SELECT `+quarantinedCols+` FROM quarantined_records WHERE id = $1`, id))
	if err != nil {
		return fmt.Errorf("quarantine: replay %d: %w", id, err)
	}
	rec := &kgo.Record{Topic: q.Topic, Key: q.Key, Value: q.Value, Headers: q.Headers}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("quarantine: replay %d: produce: %w", id, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE quarantined_records SET replayed_at = now() WHERE id = $1`, id); err != nil {
		return fmt.Errorf("quarantine: replay %d: mark replayed: %w", id, err)
	}
	return nil
}
