package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// deadLetter stores a dead letter of tenant's rule for endpoint, dead at
// minute min.
func (h *historyDB) deadLetter(t *testing.T, tenant, id, endpoint string, min int) {
	t.Helper()
	h.exec(t, `INSERT INTO dead_letters (alert_id, tenant_id, rule_id, endpoint_id, attempts, last_error, record, dead_at)
		VALUES ($1, $2, $3, $4, 8, 'http_500: boom', $5, $6)`,
		id, tenant, "rul_"+tenant, endpoint, alertRecord(tenant, id, endpoint, h.at(min-1)), h.at(min))
}

func deadIDs(ds []*store.DeadLetterRow) []string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.AlertID)
	}
	return ids
}

// The dead-letter list filters by endpoint, rule, time and replayed state,
// pages by cursor, latest death first, and shows only the tenant's.
func TestListDeadLetters(t *testing.T) {
	t.Parallel()
	h := newHistoryDB(t)
	ctx := context.Background()
	h.endpoint(t, "acme", "whk_b")
	h.deadLetter(t, "acme", "alrt_1", "whk_acme", 1)
	h.deadLetter(t, "acme", "alrt_2", "whk_b", 2)
	h.deadLetter(t, "acme", "alrt_3", "whk_acme", 3)
	h.deadLetter(t, "globex", "alrt_g", "whk_globex", 4)
	h.exec(t, `UPDATE dead_letters SET replayed_at = now() WHERE alert_id = 'alrt_3'`)
	yes, no := true, false
	h.inTenant(t, "acme", func(tx *store.Tx) error {
		for name, c := range map[string]struct {
			f    store.DeadLetterFilter
			want []string
		}{
			"all":          {store.DeadLetterFilter{}, []string{"alrt_3", "alrt_2", "alrt_1"}},
			"endpoint":     {store.DeadLetterFilter{EndpointID: "whk_b"}, []string{"alrt_2"}},
			"rule":         {store.DeadLetterFilter{RuleID: "rul_acme"}, []string{"alrt_3", "alrt_2", "alrt_1"}},
			"other rule":   {store.DeadLetterFilter{RuleID: "rul_globex"}, nil},
			"since":        {store.DeadLetterFilter{Since: h.at(2)}, []string{"alrt_3", "alrt_2"}},
			"until":        {store.DeadLetterFilter{Until: h.at(2)}, []string{"alrt_1"}},
			"replayed":     {store.DeadLetterFilter{Replayed: &yes}, []string{"alrt_3"}},
			"not replayed": {store.DeadLetterFilter{Replayed: &no}, []string{"alrt_2", "alrt_1"}},
			"after":        {store.DeadLetterFilter{After: &store.Cursor{CreatedAt: h.at(3), ID: "alrt_3"}}, []string{"alrt_2", "alrt_1"}},
			"limit":        {store.DeadLetterFilter{Limit: 1, Since: h.at(1), Until: h.at(3), EndpointID: "whk_acme"}, []string{"alrt_1"}},
		} {
			if c.f.Limit == 0 {
				c.f.Limit = 10
			}
			got, err := tx.ListDeadLetters(ctx, c.f)
			if err != nil || !slices.Equal(deadIDs(got), c.want) {
				t.Errorf("%s: %v, %v; want %v", name, deadIDs(got), err, c.want)
			}
		}
		all, err := tx.ListDeadLetters(ctx, store.DeadLetterFilter{EndpointID: "whk_b", Limit: 10})
		if err != nil || len(all) != 1 {
			t.Fatal(all, err)
		}
		if d := all[0]; d.RuleID != "rul_acme" || d.EventType != "workflow.run.failed" || d.WorkflowID != "wf_alrt_2" || d.RunID != "run_alrt_2" ||
			d.Attempts != 8 || d.LastError != "http_500: boom" || !d.CreatedAt.Equal(h.at(1)) || !d.DeadAt.Equal(h.at(2)) || d.ReplayedAt != nil {
			t.Errorf("dead letter alrt_2 = %+v", d)
		}
		return nil
	})
}

// Replaying one dead letter locks it, marks it replayed and sees only the
// tenant's; a range replay counts those of a deleted or disabled endpoint
// as skipped and returns the others, oldest first, up to the limit, until
// they are marked replayed.
func TestReplayDeadLetters(t *testing.T) {
	t.Parallel()
	h := newHistoryDB(t)
	ctx := context.Background()
	h.endpoint(t, "acme", "whk_off")
	h.endpoint(t, "acme", "whk_gone")
	h.exec(t, `UPDATE webhook_endpoints SET is_active = false WHERE id = 'whk_off'`)
	h.exec(t, `UPDATE webhook_endpoints SET deleted_at = now() WHERE id = 'whk_gone'`)
	h.deadLetter(t, "acme", "alrt_1", "whk_acme", 1)
	h.deadLetter(t, "acme", "alrt_2", "whk_acme", 2)
	h.deadLetter(t, "acme", "alrt_3", "whk_acme", 3)
	h.deadLetter(t, "acme", "alrt_off", "whk_off", 2)
	h.deadLetter(t, "acme", "alrt_gone", "whk_gone", 2)
	h.deadLetter(t, "acme", "alrt_none", "whk_none", 2)
	h.deadLetter(t, "acme", "alrt_late", "whk_acme", 30)
	h.deadLetter(t, "globex", "alrt_g", "whk_globex", 2)

	h.inTenant(t, "acme", func(tx *store.Tx) error {
		rec, endpoint, replayed, err := tx.LockDeadLetter(ctx, "alrt_late")
		if err != nil || endpoint != "whk_acme" || replayed != nil || len(rec) == 0 {
			t.Fatalf("LockDeadLetter(alrt_late) = %s, %q, %v, %v", rec, endpoint, replayed, err)
		}
		at, err := tx.MarkDeadLetterReplayed(ctx, "alrt_late")
		if err != nil || time.Since(at) > time.Minute {
			t.Errorf("MarkDeadLetterReplayed = %v, %v; want now", at, err)
		}
		if _, _, replayed, err := tx.LockDeadLetter(ctx, "alrt_late"); err != nil || replayed == nil || !replayed.Equal(at) {
			t.Errorf("replayed_at after the replay: %v, %v; want %v", replayed, err, at)
		}
		if _, _, _, err := tx.LockDeadLetter(ctx, "alrt_g"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LockDeadLetter of globex's: %v, want ErrNotFound", err)
		}

		r := store.DeadLetterRange{Since: h.at(0), Until: h.at(10)}
		skipped, err := tx.CountUndeliverableDeadLetters(ctx, r)
		if err != nil || skipped != 3 {
			t.Errorf("undeliverable: %d, %v; want 3 (disabled, deleted, missing endpoint)", skipped, err)
		}
		got, err := tx.LockDeliverableDeadLetters(ctx, r, 2)
		if err != nil || len(got) != 2 || got[0].AlertID != "alrt_1" || got[1].AlertID != "alrt_2" || len(got[0].Record) == 0 {
			t.Fatalf("deliverable, at most 2: %+v, %v; want alrt_1 and alrt_2 with their records", got, err)
		}
		if err := tx.MarkDeadLettersReplayed(ctx, []string{"alrt_1", "alrt_2"}); err != nil {
			return err
		}
		got, err = tx.LockDeliverableDeadLetters(ctx, r, 10)
		if err != nil || len(got) != 1 || got[0].AlertID != "alrt_3" {
			t.Errorf("deliverable after replaying two: %+v, %v; want alrt_3", got, err)
		}
		r.EndpointID = "whk_off"
		if n, err := tx.CountUndeliverableDeadLetters(ctx, r); err != nil || n != 1 {
			t.Errorf("undeliverable of whk_off: %d, %v; want 1", n, err)
		}
		if got, err := tx.LockDeliverableDeadLetters(ctx, r, 10); err != nil || len(got) != 0 {
			t.Errorf("deliverable of whk_off: %+v, %v; want none", got, err)
		}
		return nil
	})
}
