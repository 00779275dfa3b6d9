package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// historyDB is a migrated database with tenants acme and globex, each with
// an endpoint (whk_<tenant>) and a rule on it (rul_<tenant>), and a store
// whose tenant transactions run as the application role, as the API's do.
type historyDB struct {
	pool *pgxpool.Pool
	st   *store.Store
	t0   time.Time
}

func newHistoryDB(t *testing.T) *historyDB {
	t.Helper()
	pool := testenv.Pool(t)
	h := &historyDB{pool: pool, st: store.New(pool, "exo_app"), t0: time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)}
	for _, tenant := range []string{"acme", "globex"} {
		h.exec(t, `INSERT INTO tenants (id, name) VALUES ($1, $1)`, tenant)
		h.endpoint(t, tenant, "whk_"+tenant)
		h.exec(t, `INSERT INTO alert_rules (id, tenant_id, name, event_type, webhook_endpoint_id, created_by)
			VALUES ($1, $2, 'r', 'workflow.run.failed', $3, 'test')`, "rul_"+tenant, tenant, "whk_"+tenant)
	}
	return h
}

func (h *historyDB) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := h.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (h *historyDB) endpoint(t *testing.T, tenant, id string) {
	t.Helper()
	h.exec(t, `INSERT INTO webhook_endpoints (id, tenant_id, name, target_url, secret, secret_hint, created_by)
		VALUES ($1, $2, 'e', 'https://example.com/hook', '{"key_id":"k1","ciphertext":"x"}', '…x', 'test')`, id, tenant)
}

// at is the fixture's time plus d minutes.
func (h *historyDB) at(min int) time.Time { return h.t0.Add(time.Duration(min) * time.Minute) }

// alertRecord is a stored delivery record of alert id.
func alertRecord(tenant, id, endpoint string, created time.Time) string {
	return fmt.Sprintf(`{"alert_id":%q,"tenant_id":%q,"endpoint_id":%q,"event_type":"workflow.run.failed","created_at":%q,
		"payload":{"data":{"workflow":{"id":"wf_%s","name":"nightly"},"run":{"id":"run_%s"}}}}`,
		id, tenant, endpoint, created.Format(time.RFC3339Nano), id, id)
}

// alert stores alert id of tenant's rule and endpoint, raised at minute min.
func (h *historyDB) alert(t *testing.T, tenant, id string, min int) {
	t.Helper()
	h.exec(t, `INSERT INTO alerts (alert_id, tenant_id, rule_id, endpoint_id, event_type, record, created_at)
		VALUES ($1, $2, $3, $4, 'workflow.run.failed', $5, $6)`,
		id, tenant, "rul_"+tenant, "whk_"+tenant, alertRecord(tenant, id, "whk_"+tenant, h.at(min)), h.at(min))
}

func (h *historyDB) attempt(t *testing.T, tenant, alertID string, n int, outcome string, min int) {
	t.Helper()
	h.exec(t, `INSERT INTO delivery_attempts (alert_id, attempt, delivery_id, tenant_id, rule_id, endpoint_id, outcome, status_code, attempted_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 500, $8)`,
		alertID, n, fmt.Sprintf("dlv_%s_%d", alertID, n), tenant, "rul_"+tenant, "whk_"+tenant, outcome, h.at(min))
}

// inTenant runs fn in a transaction of tenant.
func (h *historyDB) inTenant(t *testing.T, tenant string, fn func(*store.Tx) error) {
	t.Helper()
	if _, err := h.st.InTenant(context.Background(), tenant, false, fn); err != nil {
		t.Fatal(err)
	}
}

func alertIDs(ds []*store.DeliveryRow) []string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.AlertID)
	}
	return ids
}

// A rule's and an endpoint's deliveries come newest first, with the latest
// attempt's outcome, the dead letter's state and every attempt oldest
// first; the outcome filter and the cursor select pages; a deleted rule
// keeps its history; another tenant's rule or alert is not found.
func TestListDeliveries(t *testing.T) {
	t.Parallel()
	h := newHistoryDB(t)
	ctx := context.Background()
	h.alert(t, "acme", "alrt_1", 1)
	h.attempt(t, "acme", "alrt_1", 2, "delivered", 3)
	h.attempt(t, "acme", "alrt_1", 1, "retry", 2)
	h.alert(t, "acme", "alrt_2", 4)
	h.attempt(t, "acme", "alrt_2", 1, "dead", 5)
	h.exec(t, `INSERT INTO dead_letters (alert_id, tenant_id, rule_id, endpoint_id, attempts, last_error, record, dead_at)
		VALUES ('alrt_2', 'acme', 'rul_acme', 'whk_acme', 1, 'http_500', '{}', $1)`, h.at(5))
	h.alert(t, "acme", "alrt_3", 6)
	h.alert(t, "globex", "alrt_g", 7)

	h.inTenant(t, "acme", func(tx *store.Tx) error {
		all, err := tx.ListRuleDeliveries(ctx, "rul_acme", store.DeliveryQuery{Limit: 10})
		if err != nil {
			return err
		}
		if got := alertIDs(all); !slices.Equal(got, []string{"alrt_3", "alrt_2", "alrt_1"}) {
			t.Fatalf("rule deliveries %v, want newest first alrt_3, alrt_2, alrt_1", got)
		}
		if d := all[0]; d.Status != "pending" || d.DeadLettered || len(d.Attempts) != 0 || d.Attempts == nil {
			t.Errorf("alrt_3: %+v, want pending with no attempts", d)
		}
		if d := all[1]; d.Status != "dead" || !d.DeadLettered || d.ReplayedAt != nil {
			t.Errorf("alrt_2: %+v, want dead and dead-lettered", d)
		}
		d := all[2]
		if d.Status != "delivered" || len(d.Attempts) != 2 || d.Attempts[0].Attempt != 1 || d.Attempts[1].Outcome != "delivered" ||
			d.WorkflowID != "wf_alrt_1" || d.WorkflowName != "nightly" || d.RunID != "run_alrt_1" || !d.CreatedAt.Equal(h.at(1)) || d.Payload != nil {
			t.Errorf("alrt_1: %+v, want delivered after a retry, attempts oldest first, no payload in a list", d)
		}

		for outcome, want := range map[string][]string{"pending": {"alrt_3"}, "delivered": {"alrt_1"}, "retry": nil} {
			got, err := tx.ListRuleDeliveries(ctx, "rul_acme", store.DeliveryQuery{Outcome: outcome, Limit: 10})
			if err != nil || !slices.Equal(alertIDs(got), want) {
				t.Errorf("outcome %s: %v, %v; want %v", outcome, alertIDs(got), err, want)
			}
		}
		page, err := tx.ListEndpointDeliveries(ctx, "whk_acme", store.DeliveryQuery{Limit: 2})
		if err != nil || !slices.Equal(alertIDs(page), []string{"alrt_3", "alrt_2"}) {
			t.Fatalf("first page of 2: %v, %v", alertIDs(page), err)
		}
		next, err := tx.ListEndpointDeliveries(ctx, "whk_acme", store.DeliveryQuery{
			After: &store.Cursor{CreatedAt: page[1].CreatedAt, ID: page[1].AlertID}, Limit: 2})
		if err != nil || !slices.Equal(alertIDs(next), []string{"alrt_1"}) {
			t.Errorf("page after alrt_2: %v, %v; want alrt_1", alertIDs(next), err)
		}

		for _, id := range []string{"rul_globex", "rul_none"} {
			if _, err := tx.ListRuleDeliveries(ctx, id, store.DeliveryQuery{Limit: 10}); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("deliveries of %s: %v, want ErrNotFound", id, err)
			}
		}
		if _, err := tx.ListEndpointDeliveries(ctx, "whk_globex", store.DeliveryQuery{Limit: 10}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deliveries of globex's endpoint: %v, want ErrNotFound", err)
		}

		one, err := tx.GetDelivery(ctx, "alrt_1")
		if err != nil || len(one.Attempts) != 2 || string(one.Payload) == "" {
			t.Errorf("GetDelivery(alrt_1) = %+v, %v; want its attempts and payload", one, err)
		}
		if _, err := tx.GetDelivery(ctx, "alrt_g"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetDelivery of globex's alert: %v, want ErrNotFound", err)
		}
		rec, endpoint, err := tx.AlertRecord(ctx, "alrt_3")
		if err != nil || endpoint != "whk_acme" || len(rec) == 0 {
			t.Errorf("AlertRecord(alrt_3) = %s, %q, %v", rec, endpoint, err)
		}
		if _, _, err := tx.AlertRecord(ctx, "alrt_g"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("AlertRecord of globex's alert: %v, want ErrNotFound", err)
		}
		return nil
	})

	// Deleted rules keep their history.
	h.exec(t, `UPDATE alert_rules SET deleted_at = now() WHERE id = 'rul_acme'`)
	h.inTenant(t, "acme", func(tx *store.Tx) error {
		got, err := tx.ListRuleDeliveries(ctx, "rul_acme", store.DeliveryQuery{Limit: 10})
		if err != nil || len(got) != 3 {
			t.Errorf("deliveries of the deleted rule: %v, %v; want its 3 alerts", alertIDs(got), err)
		}
		return nil
	})
}

// EndpointStatus tells a missing (or another tenant's) endpoint from a
// deleted, a disabled and an active one.
func TestEndpointStatus(t *testing.T) {
	t.Parallel()
	h := newHistoryDB(t)
	h.endpoint(t, "acme", "whk_off")
	h.endpoint(t, "acme", "whk_gone")
	h.exec(t, `UPDATE webhook_endpoints SET is_active = false WHERE id = 'whk_off'`)
	h.exec(t, `UPDATE webhook_endpoints SET deleted_at = now() WHERE id = 'whk_gone'`)
	type state struct{ exists, deleted, active bool }
	h.inTenant(t, "acme", func(tx *store.Tx) error {
		for id, want := range map[string]state{
			"whk_acme":   {true, false, true},
			"whk_off":    {true, false, false},
			"whk_gone":   {true, true, true},
			"whk_globex": {},
			"whk_none":   {},
		} {
			var got state
			var err error
			got.exists, got.deleted, got.active, err = tx.EndpointStatus(context.Background(), id)
			if err != nil || got != want {
				t.Errorf("EndpointStatus(%s) = %+v, %v; want %+v", id, got, err, want)
			}
		}
		return nil
	})
}
