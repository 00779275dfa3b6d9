package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// What the operator commands list and replay of the quarantines: the
// records a consumer set aside (quarantined_records) and the outbox rows
// the relay set aside (outbox.quarantined_at). They run across tenants.

// QuarantinedRecord is a record a consumer set aside because it can never
// be written: it could not be decoded, failed its schema, or Postgres
// refused it with a data error (table quarantined_records).
type QuarantinedRecord struct {
	ID            int64
	Consumer      string
	Topic         string
	Partition     int32
	Offset        int64
	Key, Value    []byte
	Headers       []QuarantinedHeader
	Error         string
	QuarantinedAt time.Time
	ReplayedAt    *time.Time
}

// QuarantinedHeader is a header as quarantined_records.headers stores it
// (the value base64, as encoding/json writes bytes).
type QuarantinedHeader struct {
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
		return nil, fmt.Errorf("store: scan quarantined record: %w", err)
	}
	if err := json.Unmarshal(headers, &q.Headers); err != nil {
		return nil, fmt.Errorf("store: headers of quarantined record %d: %w", q.ID, err)
	}
	return &q, nil
}

// ListQuarantined returns the latest quarantined records, newest first.
func (s *Store) ListQuarantined(ctx context.Context, limit int) ([]QuarantinedRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+quarantinedCols+` FROM quarantined_records ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list quarantined records: %w", err)
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
		return nil, fmt.Errorf("store: list quarantined records: %w", err)
	}
	return out, nil
}

// ReplayQuarantined hands quarantined record id to produce, which writes it
// again to its topic, and marks it replayed once produce returned nil. It
// returns ErrNotFound if there is no such record.
func (s *Store) ReplayQuarantined(ctx context.Context, id int64, produce func(*QuarantinedRecord) error) error {
	q, err := scanQuarantined(s.pool.QueryRow(ctx, `SELECT `+quarantinedCols+` FROM quarantined_records WHERE id = $1`, id))
	if err != nil {
		return fmt.Errorf("store: replay quarantined record %d: %w", id, err)
	}
	if err := produce(q); err != nil {
		return fmt.Errorf("store: replay quarantined record %d: produce: %w", id, err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE quarantined_records SET replayed_at = now() WHERE id = $1`, id); err != nil {
		return fmt.Errorf("store: replay quarantined record %d: mark replayed: %w", id, err)
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
func (s *Store) ListQuarantinedOutbox(ctx context.Context, limit int) ([]QuarantinedOutboxRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, topic, key, coalesce(octet_length(value), -1), coalesce(quarantine_reason, ''), quarantined_at
		FROM outbox WHERE quarantined_at IS NOT NULL AND sent_at IS NULL ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list quarantined outbox rows: %w", err)
	}
	defer rows.Close()
	var out []QuarantinedOutboxRow
	for rows.Next() {
		var q QuarantinedOutboxRow
		if err := rows.Scan(&q.ID, &q.Topic, &q.Key, &q.Size, &q.Reason, &q.QuarantinedAt); err != nil {
			return nil, fmt.Errorf("store: list quarantined outbox rows: %w", err)
		}
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list quarantined outbox rows: %w", err)
	}
	return out, nil
}

// ReplayQuarantinedOutbox clears quarantined outbox row id's quarantine so
// the relay publishes it again (fix what made Kafka or the schema refuse it
// first, or it is quarantined again). One statement touches only a row still
// quarantined and unsent, and not superseded by a later row of its topic and
// key (ErrSuperseded); the NOTIFY in the same transaction wakes the relays
// at commit (the outbox trigger fires on insert only).
func (s *Store) ReplayQuarantinedOutbox(ctx context.Context, id int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
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
		_, err = tx.Exec(ctx, "NOTIFY "+OutboxChannel)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: replay quarantined outbox row %d: %w", id, err)
	}
	return nil
}
