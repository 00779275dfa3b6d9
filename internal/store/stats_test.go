package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// attempts stores, through the recorder's statement, one attempt per
// (outcome, latency, time) of tenant's rule and endpoint, each of its own
// alert.
func (h *historyDB) attempts(t *testing.T, tenant, rule, endpoint string, as ...schemas.ResultRecord) {
	t.Helper()
	for i := range as {
		d, _ := testenv.Delivery(t, tenant, rule, endpoint, as[i].AttemptedAt)
		latency, outcome, at := as[i].LatencyMS, as[i].Outcome, as[i].AttemptedAt
		as[i] = testenv.Attempt(d, 1, outcome, 503, at)
		as[i].LatencyMS = latency
	}
	if err := h.st.System(context.Background(), func(tx *store.Tx) error {
		_, err := tx.InsertAttempts(context.Background(), as)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func res(outcome string, latency int64, at time.Time) schemas.ResultRecord {
	return schemas.ResultRecord{Outcome: outcome, LatencyMS: latency, AttemptedAt: at}
}

func i64(v int64) *int64 { return &v }

func showCounts(c store.Counts) string {
	p := func(v *int64) string {
		if v == nil {
			return "null"
		}
		return fmt.Sprint(*v)
	}
	return fmt.Sprintf("%d/%d/%d/%d p %s/%s/%s", c.Delivered, c.Retrying, c.Dead, c.Gone, p(c.P50), p(c.P95), p(c.P99))
}

func sameCounts(a, b store.Counts) bool { return showCounts(a) == showCounts(b) }

// DeliveryStats puts an attempt in the bucket that holds it (a bucket
// holds its start, not its end; the window likewise), gives every bucket a
// row (zeros and null percentiles when empty), computes observed
// percentiles, caps the groups, and counts the tenant's attempts only.
func TestDeliveryStatsBuckets(t *testing.T) {
	t.Parallel()
	h := newHistoryDB(t)
	ctx := context.Background()
	from := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	to := from.Add(time.Hour)
	minute := func(m int) time.Time { return from.Add(time.Duration(m) * time.Minute) }
	h.endpoint(t, "acme", "whk_b")
	h.exec(t, `INSERT INTO alert_rules (id, tenant_id, name, event_type, webhook_endpoint_id, created_by)
		VALUES ('rul_b', 'acme', 'second', 'workflow.run.failed', 'whk_b', 'test'), ('rul_c', 'acme', 'third', 'workflow.run.failed', 'whk_b', 'test')`)
	// Bucket 0 [10:00, 10:15): delivered 100 at its very start, 1..4 ms
	// just after, a retry, a gone. Bucket 1 [10:15, 10:30): a delivered at
	// its start (one nanosecond less is bucket 0's). Bucket 3: a dead at
	// 10:59:59.999999. Outside: 09:59:59.999999 and 11:00 (the window's
	// end is not in it).
	h.attempts(t, "acme", "rul_acme", "whk_acme",
		res(schemas.OutcomeDelivered, 100, minute(0)), res(schemas.OutcomeDelivered, 1, minute(1)), res(schemas.OutcomeDelivered, 2, minute(2)),
		res(schemas.OutcomeDelivered, 3, minute(3)), res(schemas.OutcomeDelivered, 4, minute(4)),
		res(schemas.OutcomeRetry, 900, minute(5)), res(schemas.OutcomeEndpointGone, 7, minute(14)),
		res(schemas.OutcomeDelivered, 50, minute(15)), res(schemas.OutcomeDelivered, 60, minute(15).Add(-time.Microsecond)),
		res(schemas.OutcomeDead, 8, to.Add(-time.Microsecond)),
		res(schemas.OutcomeDelivered, 5, from.Add(-time.Microsecond)), res(schemas.OutcomeDelivered, 5, to))
	h.attempts(t, "acme", "rul_b", "whk_b", res(schemas.OutcomeRetry, 1, minute(20)), res(schemas.OutcomeRetry, 1, minute(21)))
	h.attempts(t, "acme", "rul_c", "whk_b", res(schemas.OutcomeDelivered, 33, minute(20)))
	h.attempts(t, "globex", "rul_globex", "whk_globex", res(schemas.OutcomeDelivered, 1, minute(1)))

	var rows []store.StatsRow
	if _, err := h.st.InTenant(ctx, "acme", false, func(tx *store.Tx) error {
		var err error
		rows, err = tx.DeliveryStats(ctx, store.StatsQuery{From: from, To: to, Bucket: 15 * time.Minute, GroupBy: "rule", MaxSeries: 2})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	type key struct {
		series int
		k      string
		bucket string
	}
	got := map[key]store.Counts{}
	var order []key
	for _, r := range rows {
		b := "window"
		if r.Bucket != nil {
			b = r.Bucket.UTC().Format("15:04")
		}
		k := key{r.Series, r.Key, b}
		got[k] = r.Counts
		order = append(order, k)
	}
	// Four series (all; rul_acme and rul_b, the two with the most
	// attempts; rul_c as "other"), each with its window and four buckets.
	if len(rows) != 4*5 {
		t.Fatalf("%d rows: %v", len(rows), order)
	}
	want := map[key]store.Counts{
		// Delivered latencies of bucket 0: 100, 1, 2, 3, 4, 60 → sorted
		// 1 2 3 4 60 100: p50 the third (3), p95 and p99 the sixth (100).
		{store.SeriesAll, "", "10:00"}:            {Delivered: 6, Retrying: 1, Gone: 1, P50: i64(3), P95: i64(100), P99: i64(100)},
		{store.SeriesAll, "", "10:15"}:            {Delivered: 2, Retrying: 2, P50: i64(33), P95: i64(50), P99: i64(50)},
		{store.SeriesAll, "", "10:30"}:            {},
		{store.SeriesAll, "", "10:45"}:            {Dead: 1},
		{store.SeriesAll, "", "window"}:           {Delivered: 8, Retrying: 3, Dead: 1, Gone: 1, P50: i64(4), P95: i64(100), P99: i64(100)},
		{store.SeriesGroup, "rul_acme", "10:00"}:  {Delivered: 6, Retrying: 1, Gone: 1, P50: i64(3), P95: i64(100), P99: i64(100)},
		{store.SeriesGroup, "rul_acme", "10:15"}:  {Delivered: 1, P50: i64(50), P95: i64(50), P99: i64(50)},
		{store.SeriesGroup, "rul_acme", "10:30"}:  {},
		{store.SeriesGroup, "rul_acme", "10:45"}:  {Dead: 1},
		{store.SeriesGroup, "rul_acme", "window"}: {Delivered: 7, Retrying: 1, Dead: 1, Gone: 1, P50: i64(4), P95: i64(100), P99: i64(100)},
		{store.SeriesGroup, "rul_b", "10:15"}:     {Retrying: 2},
		{store.SeriesGroup, "rul_b", "window"}:    {Retrying: 2},
		{store.SeriesOther, "", "10:15"}:          {Delivered: 1, P50: i64(33), P95: i64(33), P99: i64(33)},
		{store.SeriesOther, "", "window"}:         {Delivered: 1, P50: i64(33), P95: i64(33), P99: i64(33)},
	}
	for _, s := range []key{{store.SeriesGroup, "rul_b", ""}, {store.SeriesOther, "", ""}} {
		for _, b := range []string{"10:00", "10:30", "10:45"} {
			want[key{s.series, s.k, b}] = store.Counts{}
		}
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !sameCounts(g, w) {
			t.Errorf("%+v: %s (present %v), want %s", k, showCounts(g), ok, showCounts(w))
		}
	}
	// Ordered by series, key, then the window before its buckets in time.
	wantOrder := []key{}
	for _, s := range []key{{store.SeriesAll, "", ""}, {store.SeriesGroup, "rul_acme", ""}, {store.SeriesGroup, "rul_b", ""}, {store.SeriesOther, "", ""}} {
		for _, b := range []string{"window", "10:00", "10:15", "10:30", "10:45"} {
			wantOrder = append(wantOrder, key{s.series, s.k, b})
		}
	}
	if fmt.Sprint(order) != fmt.Sprint(wantOrder) {
		t.Errorf("order:\n%v\nwant\n%v", order, wantOrder)
	}

	// Not grouped: the same counts for all, no other series; globex sees
	// its one attempt.
	for tenant, want := range map[string]store.Counts{
		"acme":   {Delivered: 8, Retrying: 3, Dead: 1, Gone: 1, P50: i64(4), P95: i64(100), P99: i64(100)},
		"globex": {Delivered: 1, P50: i64(1), P95: i64(1), P99: i64(1)},
	} {
		if _, err := h.st.InTenant(ctx, tenant, false, func(tx *store.Tx) error {
			var err error
			rows, err = tx.DeliveryStats(ctx, store.StatsQuery{From: from, To: to, Bucket: 15 * time.Minute, MaxSeries: 2})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 5 || rows[0].Bucket != nil || !sameCounts(rows[0].Counts, want) {
			t.Errorf("%s not grouped: %d rows, window %s; want %s", tenant, len(rows), showCounts(rows[0].Counts), showCounts(want))
		}
		for _, r := range rows {
			if r.Series != store.SeriesAll {
				t.Errorf("%s not grouped: a row of series %d", tenant, r.Series)
			}
		}
	}
}
