package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// An outbox row the relay quarantined is listed (topic, key, size, reason,
// never its value); replaying it hands it back to the relay, which is woken
// at once (the fallback poll here is ten minutes) and publishes it to its
// topic. A row that is not quarantined, or was superseded by a later row of
// its key, is not replayed.
func TestQuarantinedOutboxRowReplayed(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	ctx := context.Background()
	// Quarantined by hand (as the relay does for a refused row) before the
	// relay starts; the value is valid now, as after the operator's fix.
	var id, stale int64
	if err := e.pool.QueryRow(ctx, `INSERT INTO outbox (topic, key, value, quarantined_at, quarantine_reason)
		VALUES ($1, 'acme/run_1', '{"state":"fixed"}', now(), 'MESSAGE_TOO_LARGE (test)') RETURNING id`, e.topics.RunState).Scan(&id); err != nil {
		t.Fatal(err)
	}
	// A quarantined row with a later, unquarantined row of the same key.
	if err := e.pool.QueryRow(ctx, `INSERT INTO outbox (topic, key, value, quarantined_at, quarantine_reason)
		VALUES ($1, 'acme/run_2', '{"state":"old"}', now(), 'test') RETURNING id`, e.topics.RunState).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO outbox (topic, key, value) VALUES ($1, 'acme/run_2', '{"state":"new"}')`, e.topics.RunState); err != nil {
		t.Fatal(err)
	}
	cp := startCP(t, e.config(t)) // OutboxPoll: 10 minutes
	eventually(t, time.Minute, "the relay drained the unquarantined rows", func() (bool, string) {
		n := countRows(t, e.pool, `SELECT count(*) FROM outbox WHERE sent_at IS NULL AND quarantined_at IS NULL`)
		return n == 0, fmt.Sprintf("%d unsent rows", n)
	})
	for _, r := range readTopic(t, e.brokers, e.topics.RunState) {
		if string(r.Key) == "acme/run_1" {
			t.Fatalf("the quarantined row was published before its replay: %s", r.Value)
		}
	}

	list, err := store.New(e.pool, "").ListQuarantinedOutbox(ctx, 50)
	if err != nil {
		t.Fatal(err)
	}
	var got *store.QuarantinedOutboxRow
	for i := range list {
		if list[i].ID == id {
			got = &list[i]
		}
	}
	if len(list) != 2 || got == nil || got.Topic != e.topics.RunState || got.Key != "acme/run_1" ||
		got.Size != len(`{"state":"fixed"}`) || got.Reason != "MESSAGE_TOO_LARGE (test)" || got.QuarantinedAt.IsZero() {
		t.Fatalf("quarantined outbox rows %+v; want row %d of %s key acme/run_1 and row %d", list, id, e.topics.RunState, stale)
	}

	if err := store.New(e.pool, "").ReplayQuarantinedOutbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the replayed row published long before the poll", func() (bool, string) {
		for _, r := range readTopic(t, e.brokers, e.topics.RunState) {
			if string(r.Key) == "acme/run_1" && string(r.Value) == `{"state":"fixed"}` {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d rows of run_1 sent", countRows(t, e.pool, `SELECT count(*) FROM outbox WHERE id = $1 AND sent_at IS NOT NULL`, id))
	})
	eventually(t, 10*time.Second, "the replayed row marked sent", func() (bool, string) {
		n := countRows(t, e.pool, `SELECT count(*) FROM outbox WHERE id = $1 AND sent_at IS NOT NULL AND quarantined_at IS NULL`, id)
		return n == 1, "not sent"
	})
	if f := testenv.Metric(t, cp.reg, "exo_controlplane_outbox_publish_failures_total"); f != 0 {
		t.Errorf("%v failed publishes: the row may have ridden a retry, not the notification", f)
	}

	// Not quarantined any more (sent), or never there: an error.
	for _, bad := range []int64{id, id + 1000} {
		if err := store.New(e.pool, "").ReplayQuarantinedOutbox(ctx, bad); !errors.Is(err, store.ErrNotQuarantined) {
			t.Errorf("replay of outbox row %d: %v, want ErrNotQuarantined", bad, err)
		}
	}
	// Superseded: the older value would land after the newer one.
	if err := store.New(e.pool, "").ReplayQuarantinedOutbox(ctx, stale); !errors.Is(err, store.ErrSuperseded) {
		t.Errorf("replay of superseded outbox row %d: %v, want ErrSuperseded", stale, err)
	}
	if n := countRows(t, e.pool, `SELECT count(*) FROM outbox WHERE id = $1 AND quarantined_at IS NOT NULL AND sent_at IS NULL`, stale); n != 1 {
		t.Error("the superseded row's quarantine was cleared")
	}
}
