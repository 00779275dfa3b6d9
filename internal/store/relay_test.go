package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// insertOutbox queues rows by hand and returns their ids.
func (h *historyDB) insertOutbox(t *testing.T, rows ...store.OutboxRow) []int64 {
	t.Helper()
	var ids []int64
	for _, r := range rows {
		var id int64
		if err := h.pool.QueryRow(context.Background(), `INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3) RETURNING id`,
			r.Topic, r.Key, r.Value).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func outboxIDs(rows []store.OutboxRow) []int64 {
	var ids []int64
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	return ids
}

// The relay claims unsent rows in id order up to its batch, tombstones
// included; a row marked sent or quarantined (with a reason Postgres could
// not hold as is) is not claimed again, and the backlog count follows.
func TestClaimOutbox(t *testing.T) {
	t.Parallel()
	h := newHistoryDB(t)
	ctx := context.Background()
	ids := h.insertOutbox(t,
		store.OutboxRow{Topic: "t.rules", Key: "acme/rul_1", Value: []byte(`{"v":1}`)},
		store.OutboxRow{Topic: "t.rules", Key: "acme/rul_1", Value: nil},
		store.OutboxRow{Topic: "t.rules", Key: "acme/rul_2", Value: []byte(`{"v":2}`)},
		store.OutboxRow{Topic: "t.rules", Key: "acme/rul_3", Value: []byte(`{"v":3}`)},
	)
	if n, err := h.st.CountUnsentOutbox(ctx); err != nil || n != 4 {
		t.Fatalf("unsent: %d, %v; want 4", n, err)
	}
	err := h.st.System(ctx, func(tx *store.Tx) error {
		if err := tx.LockOutboxRelay(ctx); err != nil {
			return err
		}
		rows, err := tx.ClaimOutbox(ctx, 3)
		if err != nil {
			return err
		}
		if !slices.Equal(outboxIDs(rows), ids[:3]) || rows[0].Key != "acme/rul_1" || string(rows[0].Value) != `{"v":1}` || rows[1].Value != nil {
			t.Fatalf("claimed %+v; want the first 3 rows in id order, the tombstone's value nil", rows)
		}
		if err := tx.MarkOutboxSent(ctx, []int64{ids[0], ids[1]}); err != nil {
			return err
		}
		return tx.QuarantineOutbox(ctx, ids[2], "MESSAGE_TOO_LARGE\x00")
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := h.st.CountUnsentOutbox(ctx); err != nil || n != 1 {
		t.Errorf("unsent after the batch: %d, %v; want 1", n, err)
	}
	err = h.st.System(ctx, func(tx *store.Tx) error {
		rows, err := tx.ClaimOutbox(ctx, 10)
		if err != nil || !slices.Equal(outboxIDs(rows), ids[3:]) {
			t.Errorf("claimed %v, %v; want only row %d", outboxIDs(rows), err, ids[3])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	list, err := h.st.ListQuarantinedOutbox(ctx, 10)
	if err != nil || len(list) != 1 || list[0].ID != ids[2] || list[0].Reason != "MESSAGE_TOO_LARGE\uFFFD" || list[0].Size != len(`{"v":2}`) {
		t.Errorf("quarantined: %+v, %v; want row %d with its reason, NUL replaced", list, err, ids[2])
	}
}

// Relays take turns: while one holds the relay lock, another waits for it.
func TestLockOutboxRelay(t *testing.T) {
	t.Parallel()
	h := newHistoryDB(t)
	ctx := context.Background()
	held, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- h.st.System(ctx, func(tx *store.Tx) error {
			if err := tx.LockOutboxRelay(ctx); err != nil {
				return err
			}
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := h.st.System(wctx, func(tx *store.Tx) error { return tx.LockOutboxRelay(wctx) })
	cancel()
	if err == nil {
		t.Error("a second relay took the lock while the first held it")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := h.st.System(ctx, func(tx *store.Tx) error { return tx.LockOutboxRelay(ctx) }); err != nil {
		t.Errorf("lock after the first relay committed: %v", err)
	}
}

// A listener wakes at an insert into the outbox and at the replay of a
// quarantined row; without either it waits until its context ends.
func TestListenOutbox(t *testing.T) {
	t.Parallel()
	h := newHistoryDB(t)
	ctx := context.Background()
	l, err := h.st.ListenOutbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	wait := func(what string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := l.Wait(wctx); err != nil {
			t.Fatalf("no notification at %s: %v", what, err)
		}
	}
	id := h.insertOutbox(t, store.OutboxRow{Topic: "t.rules", Key: "acme/rul_1", Value: []byte(`{}`)})[0]
	wait("an insert")
	h.exec(t, `UPDATE outbox SET quarantined_at = now(), quarantine_reason = 'test' WHERE id = $1`, id)
	if err := h.st.ReplayQuarantinedOutbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	wait("a replay")
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := l.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with nothing queued: %v, want the context's deadline", err)
	}
}

// The start-up republish reads every tenant's live endpoints and rules (not
// the deleted ones) and queues its rows in their order.
func TestRepublishRows(t *testing.T) {
	t.Parallel()
	h := newHistoryDB(t)
	ctx := context.Background()
	h.endpoint(t, "acme", "whk_gone")
	h.exec(t, `UPDATE webhook_endpoints SET deleted_at = now() WHERE id = 'whk_gone'`)
	h.exec(t, `INSERT INTO alert_rules (id, tenant_id, name, event_type, webhook_endpoint_id, created_by, deleted_at)
		VALUES ('rul_gone', 'acme', 'r', 'workflow.run.failed', 'whk_acme', 'test', now())`)
	err := h.st.System(ctx, func(tx *store.Tx) error {
		endpoints, err := tx.RepublishEndpoints(ctx)
		if err != nil {
			return err
		}
		rules, err := tx.RepublishRules(ctx)
		if err != nil {
			return err
		}
		var got []string
		var rows []store.OutboxRow
		for _, e := range endpoints {
			got = append(got, e.TenantID+"/"+e.ID)
			rows = append(rows, store.OutboxRow{Topic: "t.endpoints", Key: e.TenantID + "/" + e.ID, Value: []byte(`{}`)})
		}
		for _, r := range rules {
			got = append(got, r.TenantID+"/"+r.ID)
			rows = append(rows, store.OutboxRow{Topic: "t.rules", Key: r.TenantID + "/" + r.ID})
		}
		if want := []string{"acme/whk_acme", "globex/whk_globex", "acme/rul_acme", "globex/rul_globex"}; !slices.Equal(got, want) {
			t.Errorf("live rows %v, want %v", got, want)
		}
		return tx.InsertOutboxRows(ctx, rows)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = h.st.System(ctx, func(tx *store.Tx) error {
		rows, err := tx.ClaimOutbox(ctx, 10)
		var keys []string
		for _, r := range rows {
			keys = append(keys, r.Topic+" "+r.Key)
		}
		if want := []string{"t.endpoints acme/whk_acme", "t.endpoints globex/whk_globex", "t.rules acme/rul_acme", "t.rules globex/rul_globex"}; err != nil || !slices.Equal(keys, want) {
			t.Errorf("queued %v, %v; want %v", keys, err, want)
		}
		if len(rows) == 4 && rows[3].Value != nil {
			t.Errorf("a nil value was queued as %q, want a tombstone", rows[3].Value)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
