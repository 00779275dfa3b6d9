package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The outbox relay's statements: it claims unsent outbox rows in id order,
// marks them sent or quarantined, counts the backlog, listens for the
// outbox trigger's NOTIFY, and queues snapshots of the live rules and
// endpoints at start-up. The relay works across tenants, in system
// transactions (Store.System) or on the pool.

// OutboxChannel is the channel the outbox trigger (and a quarantined row's
// replay) notifies.
const OutboxChannel = "exo_outbox"

// relayLock is the advisory lock key that serialises relays ("exo_outb").
const relayLock = int64(0x65786f5f6f757462)

// OutboxRow is an unsent outbox row.
type OutboxRow struct {
	ID         int64
	Topic, Key string
	// Value is nil for a tombstone.
	Value []byte
}

// LockOutboxRelay takes the relays' advisory lock for the rest of the
// transaction: one relay at a time. With SKIP LOCKED alone, a second relay
// would claim the next batch and could publish a key's later row before the
// first relay publishes (or, failing, retries) its earlier one.
func (t *Tx) LockOutboxRelay(ctx context.Context) error {
	if _, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, relayLock); err != nil {
		return fmt.Errorf("store: lock outbox relay: %w", err)
	}
	return nil
}

// ClaimOutbox locks and returns the oldest limit unsent, unquarantined
// outbox rows, in id order.
func (t *Tx) ClaimOutbox(ctx context.Context, limit int) ([]OutboxRow, error) {
	rows, err := t.tx.Query(ctx, `SELECT id, topic, key, value FROM outbox WHERE sent_at IS NULL AND quarantined_at IS NULL
		ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: claim outbox rows: %w", err)
	}
	defer rows.Close()
	var out []OutboxRow
	for rows.Next() {
		var r OutboxRow
		if err := rows.Scan(&r.ID, &r.Topic, &r.Key, &r.Value); err != nil {
			return nil, fmt.Errorf("store: scan outbox row: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: claim outbox rows: %w", err)
	}
	return out, nil
}

// MarkOutboxSent marks outbox rows ids sent.
func (t *Tx) MarkOutboxSent(ctx context.Context, ids []int64) error {
	if _, err := t.tx.Exec(ctx, `UPDATE outbox SET sent_at = now() WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("store: mark outbox rows sent: %w", err)
	}
	return nil
}

// QuarantineOutbox sets outbox row id aside with the reason (made text
// Postgres accepts): the relay passes over it until an operator replays it.
func (t *Tx) QuarantineOutbox(ctx context.Context, id int64, reason string) error {
	if _, err := t.tx.Exec(ctx, `UPDATE outbox SET quarantined_at = now(), quarantine_reason = $2 WHERE id = $1`,
		id, Text(reason)); err != nil {
		return fmt.Errorf("store: quarantine outbox row %d: %w", id, err)
	}
	return nil
}

// CountUnsentOutbox counts the outbox rows waiting for the relay (an
// index-only count: outbox_unsent_idx holds the unsent rows only).
func (s *Store) CountUnsentOutbox(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL AND quarantined_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count unsent outbox rows: %w", err)
	}
	return n, nil
}

// OutboxListener is a connection listening on OutboxChannel.
type OutboxListener struct {
	conn *pgxpool.Conn
}

// ListenOutbox takes a connection of the pool and listens on OutboxChannel
// with it until Close.
func (s *Store) ListenOutbox(ctx context.Context) (*OutboxListener, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: acquire outbox listener: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+OutboxChannel); err != nil {
		conn.Release()
		return nil, fmt.Errorf("store: listen: %w", err)
	}
	return &OutboxListener{conn: conn}, nil
}

// Wait returns at the next notification or when ctx ends (with its error).
func (l *OutboxListener) Wait(ctx context.Context) error {
	_, err := l.conn.Conn().WaitForNotification(ctx)
	return err
}

// Close stops listening (even when ctx has ended) and returns the
// connection to the pool.
func (l *OutboxListener) Close(ctx context.Context) {
	_, _ = l.conn.Exec(context.WithoutCancel(ctx), "UNLISTEN "+OutboxChannel)
	l.conn.Release()
}

// RepublishEndpoints returns every live (not deleted) endpoint of every
// tenant, read FOR SHARE: a change being written concurrently commits
// either before (and is read here) or after the transaction.
func (t *Tx) RepublishEndpoints(ctx context.Context) ([]*EndpointRow, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+EndpointCols+` FROM webhook_endpoints WHERE deleted_at IS NULL ORDER BY id FOR SHARE`)
	if err != nil {
		return nil, fmt.Errorf("store: live endpoints: %w", err)
	}
	defer rows.Close()
	var out []*EndpointRow
	for rows.Next() {
		e, err := ScanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: live endpoints: %w", err)
	}
	return out, nil
}

// RepublishRules returns every live (not deleted) rule of every tenant,
// read FOR SHARE like RepublishEndpoints.
func (t *Tx) RepublishRules(ctx context.Context) ([]*RuleRow, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+RuleCols+` FROM alert_rules WHERE deleted_at IS NULL ORDER BY id FOR SHARE`)
	if err != nil {
		return nil, fmt.Errorf("store: live rules: %w", err)
	}
	defer rows.Close()
	var out []*RuleRow
	for rows.Next() {
		r, err := ScanRule(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: live rules: %w", err)
	}
	return out, nil
}

// InsertOutboxRows queues rows (their ID ignored) in their order, in one
// statement: a tenant with many rules must not hold the relay's start-up
// behind one round trip per row.
func (t *Tx) InsertOutboxRows(ctx context.Context, rows []OutboxRow) error {
	if len(rows) == 0 {
		return nil
	}
	topics, keys, values := make([]string, len(rows)), make([]string, len(rows)), make([][]byte, len(rows))
	for i, r := range rows {
		topics[i], keys[i], values[i] = r.Topic, r.Key, r.Value
	}
	if _, err := t.tx.Exec(ctx, `INSERT INTO outbox (topic, key, value)
		SELECT t, k, v FROM unnest($1::text[], $2::text[], $3::bytea[]) WITH ORDINALITY AS u(t, k, v, n) ORDER BY n`,
		topics, keys, values); err != nil {
		return fmt.Errorf("store: insert outbox rows: %w", err)
	}
	return nil
}
