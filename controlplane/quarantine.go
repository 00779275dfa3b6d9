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

// QuarantinedOutboxRow is an outbox row the relay set aside because Kafka
// refused it for good or its value failed its topic's schema. Its value is
// never shown (it may hold sealed secrets): only its size.
type QuarantinedOutboxRow struct {
	ID         int64
	Topic, Key string
	// Size is the value's length in bytes; -1 for a tombstone.
	Size          int
	Reason        string
	QuarantinedAt time.Time
}

// ErrNotQuarantined: the outbox row does not exist, is not quarantined, or
// was sent.
var ErrNotQuarantined = errors.New("not a quarantined, unsent outbox row")

// ErrSuperseded: a later row of the same topic and key was queued after the
// quarantined one; publishing the older value after it would put a stale
// snapshot last on a compacted topic.
var ErrSuperseded = errors.New("a later row of the same topic and key was queued after it")

// ListQuarantinedOutbox returns the latest quarantined, unsent outbox rows,
// newest first.
func ListQuarantinedOutbox(ctx context.Context, pool *pgxpool.Pool, limit int) ([]QuarantinedOutboxRow, error) {
	rows, err := pool.Query(ctx, `SELECT id, topic, key, coalesce(octet_length(value), -1), coalesce(quarantine_reason, ''), quarantined_at
		FROM outbox WHERE quarantined_at IS NOT NULL AND sent_at IS NULL ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("quarantine: list outbox: %w", err)
	}
	defer rows.Close()
	var out []QuarantinedOutboxRow
	for rows.Next() {
		var q QuarantinedOutboxRow
		if err := rows.Scan(&q.ID, &q.Topic, &q.Key, &q.Size, &q.Reason, &q.QuarantinedAt); err != nil {
			return nil, fmt.Errorf("quarantine: list outbox: %w", err)
		}
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("quarantine: list outbox: %w", err)
	}
	return out, nil
}

// ReplayQuarantinedOutbox clears quarantined outbox row id's quarantine so
// the relay publishes it again (fix what made Kafka or the schema refuse it
// first, or it is quarantined again). One statement touches only a row still
// quarantined and unsent, and not superseded by a later row of its topic and
// key (ErrSuperseded); the NOTIFY in the same transaction wakes the relays
// at commit (the outbox trigger fires on insert only).
func ReplayQuarantinedOutbox(ctx context.Context, pool *pgxpool.Pool, id int64) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE outbox o SET quarantined_at = NULL, quarantine_reason = NULL
			WHERE o.id = $1 AND o.quarantined_at IS NOT NULL AND o.sent_at IS NULL
			AND NOT EXISTS (SELECT 1 FROM outbox l WHERE l.topic = o.topic AND l.key = o.key AND l.id > o.id AND l.quarantined_at IS NULL)`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var later *int64
			err := tx.QueryRow(ctx, `SELECT min(l.id) FROM outbox o JOIN outbox l ON l.topic = o.topic AND l.key = o.key AND l.id > o.id
				AND l.quarantined_at IS NULL WHERE o.id = $1 AND o.quarantined_at IS NOT NULL AND o.sent_at IS NULL`, id).Scan(&later)
			if err != nil {
				return err
			}
			if later != nil {
				return fmt.Errorf("%w (outbox row %d)", ErrSuperseded, *later)
			}
			return ErrNotQuarantined
		}
		_, err = tx.Exec(ctx, `NOTIFY exo_outbox`)
		return err
	})
	if err != nil {
		return fmt.Errorf("quarantine: replay outbox:%d: %w", id, err)
	}
	return nil
}
