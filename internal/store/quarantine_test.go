package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// Quarantined records are listed newest first with their headers; a replay
// hands the record to produce and marks it replayed only if produce
// succeeded; an unknown id is not found.
func TestReplayQuarantined(t *testing.T) {
	t.Parallel()
	h := newHistoryDB(t)
	ctx := context.Background()
	var first, second int64
	if err := h.pool.QueryRow(ctx, `INSERT INTO quarantined_records (consumer, topic, "partition", "offset", key, value, headers, error)
		VALUES ('recorder', 't.deliveries', 1, 7, 'acme/whk_1', '{"bad":true}', '[{"key":"trace","value":"AAEC"}]', 'schema: bad') RETURNING id`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	if err := h.pool.QueryRow(ctx, `INSERT INTO quarantined_records (consumer, topic, "partition", "offset", key, value, error)
		VALUES ('recorder', 't.delivery-results', 0, 3, NULL, 'x', 'decode') RETURNING id`).Scan(&second); err != nil {
		t.Fatal(err)
	}
	list, err := h.st.ListQuarantined(ctx, 10)
	if err != nil || len(list) != 2 || list[0].ID != second || list[1].ID != first {
		t.Fatalf("ListQuarantined = %+v, %v; want %d then %d", list, err, second, first)
	}
	q := list[1]
	if q.Consumer != "recorder" || q.Topic != "t.deliveries" || q.Partition != 1 || q.Offset != 7 || string(q.Key) != "acme/whk_1" ||
		string(q.Value) != `{"bad":true}` || len(q.Headers) != 1 || q.Headers[0].Key != "trace" || string(q.Headers[0].Value) != "\x00\x01\x02" ||
		q.Error != "schema: bad" || q.QuarantinedAt.IsZero() || q.ReplayedAt != nil {
		t.Errorf("quarantined record %+v", q)
	}
	if list, err := h.st.ListQuarantined(ctx, 1); err != nil || len(list) != 1 {
		t.Errorf("limit 1: %d records, %v", len(list), err)
	}

	refused := errors.New("kafka away")
	err = h.st.ReplayQuarantined(ctx, first, func(*store.QuarantinedRecord) error { return refused })
	if !errors.Is(err, refused) {
		t.Errorf("replay whose produce failed: %v, want its error", err)
	}
	var produced *store.QuarantinedRecord
	if err := h.st.ReplayQuarantined(ctx, first, func(q *store.QuarantinedRecord) error { produced = q; return nil }); err != nil {
		t.Fatal(err)
	}
	if produced == nil || produced.ID != first || string(produced.Value) != `{"bad":true}` || len(produced.Headers) != 1 {
		t.Errorf("produced %+v, want record %d", produced, first)
	}
	list, err = h.st.ListQuarantined(ctx, 10)
	if err != nil || list[1].ReplayedAt == nil || list[0].ReplayedAt != nil {
		t.Errorf("after one successful replay: %+v, %v; want only record %d marked replayed", list, err, first)
	}
	if err := h.st.ReplayQuarantined(ctx, first+1000, func(*store.QuarantinedRecord) error {
		t.Error("produce called for a missing record")
		return nil
	}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("replay of a missing record: %v, want ErrNotFound", err)
	}
}

// Quarantined outbox rows are listed (a tombstone's size -1, sent rows
// left out); a replay releases a quarantined row, and refuses a row that is
// not quarantined or was superseded by a later row of its key.
func TestReplayQuarantinedOutbox(t *testing.T) {
	t.Parallel()
	h := newHistoryDB(t)
	ctx := context.Background()
	ids := h.insertOutbox(t,
		store.OutboxRow{Topic: "t.rules", Key: "acme/rul_1", Value: nil},
		store.OutboxRow{Topic: "t.rules", Key: "acme/rul_2", Value: []byte(`{"old":1}`)},
		store.OutboxRow{Topic: "t.rules", Key: "acme/rul_2", Value: []byte(`{"new":1}`)},
		store.OutboxRow{Topic: "t.rules", Key: "acme/rul_3", Value: []byte(`{}`)},
	)
	tomb, stale, plain, sent := ids[0], ids[1], ids[2], ids[3]
	h.exec(t, `UPDATE outbox SET quarantined_at = now(), quarantine_reason = 'test' WHERE id = ANY($1)`, []int64{tomb, stale, sent})
	h.exec(t, `UPDATE outbox SET sent_at = now() WHERE id = $1`, sent)
	list, err := h.st.ListQuarantinedOutbox(ctx, 10)
	if err != nil || len(list) != 2 || list[0].ID != stale || list[1].ID != tomb || list[1].Size != -1 || list[1].Reason != "test" {
		t.Fatalf("ListQuarantinedOutbox = %+v, %v; want %d then the tombstone %d", list, err, stale, tomb)
	}
	if err := h.st.ReplayQuarantinedOutbox(ctx, stale); !errors.Is(err, store.ErrSuperseded) {
		t.Errorf("replay of a superseded row: %v, want ErrSuperseded", err)
	}
	for _, id := range []int64{plain, sent, sent + 1000} {
		if err := h.st.ReplayQuarantinedOutbox(ctx, id); !errors.Is(err, store.ErrNotQuarantined) {
			t.Errorf("replay of outbox row %d: %v, want ErrNotQuarantined", id, err)
		}
	}
	if err := h.st.ReplayQuarantinedOutbox(ctx, tomb); err != nil {
		t.Fatal(err)
	}
	if list, err := h.st.ListQuarantinedOutbox(ctx, 10); err != nil || len(list) != 1 || list[0].ID != stale {
		t.Errorf("after the replay: %+v, %v; want only %d", list, err, stale)
	}
}
