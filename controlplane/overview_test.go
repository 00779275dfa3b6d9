package controlplane_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// getJSON GETs path with key and decodes the answer into v (when 200).
func getJSON(t *testing.T, b *bundle, path, key string, v any) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, b.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, raw)
		}
	}
	return resp.StatusCode, resp.Header, string(raw)
}

// try is one attempt of a seeded alert: its outcome, latency and when it
// was made.
type try struct {
	outcome string
	latency int64
	at      time.Time
}

// seedAlert stores an alert raised at at with its attempts (and, when the
// last one is dead, its dead letter) through the recorder's statements,
// as the recorder would, and returns it.
func seedAlert(t *testing.T, b *bundle, tenant, rule, endpoint string, at time.Time, tries ...try) schemas.DeliveryRecord {
	t.Helper()
	d, raw := testenv.Delivery(t, tenant, rule, endpoint, at)
	err := store.New(b.pool, "").System(context.Background(), func(tx *store.Tx) error {
		if err := tx.InsertAlerts(context.Background(), []store.Alert{{Record: d, Raw: raw}}); err != nil {
			return err
		}
		var rs []schemas.ResultRecord
		for i, tr := range tries {
			status := 200
			if tr.outcome != schemas.OutcomeDelivered {
				status = 503
			}
			r := testenv.Attempt(d, i+1, tr.outcome, status, tr.at)
			r.LatencyMS = tr.latency
			rs = append(rs, r)
		}
		if _, err := tx.InsertAttempts(context.Background(), rs); err != nil {
			return err
		}
		if n := len(tries); n > 0 && tries[n-1].outcome == schemas.OutcomeDead {
			return tx.UpsertDeadLetters(context.Background(), []store.DeadLetter{{Record: d, Raw: raw, Attempts: n,
				LastError: "http_status: HTTP 503", DeadAt: tries[n-1].at}})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// createEndpoint makes an endpoint of b's tenant acme and returns its id.
func createEndpoint(t *testing.T, b *bundle, name string) string {
	t.Helper()
	status, _, wh := b.do(t, "POST", "/v1/webhooks", b.adminKey, `{"name":"`+name+`","target_url":"https://hooks.example.com/`+name+`"}`)
	if status != 201 {
		t.Fatalf("create endpoint: %d %v", status, wh)
	}
	return wh["id"].(string)
}

// createRule makes a rule of b's tenant acme to endpoint and returns its id.
func createRule(t *testing.T, b *bundle, name, endpoint string) string {
	t.Helper()
	status, _, r := b.do(t, "POST", "/v1/alert-rules", b.adminKey,
		`{"name":"`+name+`","event_type":"workflow.run.failed","webhook_endpoint_id":"`+endpoint+`"}`)
	if status != 201 {
		t.Fatalf("create rule: %d %v", status, r)
	}
	return r["id"].(string)
}

func ptr[T any](v T) *T { return &v }

func eqPtr(a, b *int64) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }

func showPct(p controlplane.LatencyPercentiles) string {
	f := func(v *int64) string {
		if v == nil {
			return "null"
		}
		b, _ := json.Marshal(*v)
		return string(b)
	}
	return f(p.P50) + "/" + f(p.P95) + "/" + f(p.P99)
}

// bucketAt is the index of the bucket of s that holds at.
func bucketAt(s controlplane.DeliveryStats, at time.Time) int {
	return int(at.Sub(s.From) / (time.Duration(s.BucketSeconds) * time.Second))
}

// The delivery stats count a window's attempts by outcome in fixed
// buckets (every bucket present, empty ones zero), with latency
// percentiles of the delivered ones over the window and per bucket.
func TestDeliveryStats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	endpoint := createEndpoint(t, b, "ops")
	rule := createRule(t, b, "etl", endpoint)
	now := time.Now().UTC()
	// Two buckets of 15 minutes an hour apart, well inside the day's window
	// whatever the time: t1 holds nine deliveries of latencies 10..90 ms
	// and a retry followed by a dead letter; t2 one retry then a delivery
	// of 500 ms. One attempt 25 hours ago is outside the window.
	t1 := now.Add(-3 * time.Hour).Truncate(15 * time.Minute).Add(time.Minute)
	t2 := t1.Add(time.Hour)
	for i := int64(1); i <= 9; i++ {
		seedAlert(t, b, "acme", rule, endpoint, t1, try{schemas.OutcomeDelivered, 10 * i, t1.Add(time.Duration(i) * time.Second)})
	}
	seedAlert(t, b, "acme", rule, endpoint, t1, try{schemas.OutcomeRetry, 3000, t1.Add(time.Minute)},
		try{schemas.OutcomeDead, 3000, t1.Add(2 * time.Minute)})
	seedAlert(t, b, "acme", rule, endpoint, t2, try{schemas.OutcomeRetry, 100, t2}, try{schemas.OutcomeDelivered, 500, t2.Add(time.Minute)})
	seedAlert(t, b, "acme", rule, endpoint, now.Add(-25*time.Hour), try{schemas.OutcomeDelivered, 7, now.Add(-25 * time.Hour)})
	// Another tenant's attempts count for nobody else.
	seedAlert(t, b, "globex", "rul_theirs", "whk_theirs", t1, try{schemas.OutcomeDelivered, 1, t1})

	var s controlplane.DeliveryStats
	if status, _, raw := getJSON(t, b, "/v1/stats/deliveries", b.viewKey, &s); status != 200 {
		t.Fatalf("stats: %d %s", status, raw)
	}
	if s.Window != "24h" || s.GroupBy != "none" || s.BucketSeconds != 900 || len(s.Buckets) != 96 || s.To.Sub(s.From) != 24*time.Hour {
		t.Fatalf("defaults: window %s group_by %s bucket %d, %d buckets from %s to %s", s.Window, s.GroupBy, s.BucketSeconds, len(s.Buckets), s.From, s.To)
	}
	if s.To.Before(now) || s.To.Sub(now) > 15*time.Minute || s.From.Unix()%900 != 0 {
		t.Errorf("window [%s, %s) does not end with the bucket of now %s on a bucket boundary", s.From, s.To, now)
	}
	if (s.Totals != controlplane.DeliveryCounts{Delivered: 10, Retrying: 2, Dead: 1}) {
		t.Errorf("totals: %+v", s.Totals)
	}
	// Ten delivered latencies 10..90 and 500: the observed p50 is the
	// fifth, p95 and p99 the largest.
	if !eqPtr(s.LatencyMS.P50, ptr[int64](50)) || !eqPtr(s.LatencyMS.P95, ptr[int64](500)) || !eqPtr(s.LatencyMS.P99, ptr[int64](500)) {
		t.Errorf("window percentiles p50/p95/p99 = %s, want 50/500/500", showPct(s.LatencyMS))
	}
	i1, i2 := bucketAt(s, t1), bucketAt(s, t2)
	for i, bk := range s.Buckets {
		if want := s.From.Add(time.Duration(i) * 15 * time.Minute); !bk.Start.Equal(want) {
			t.Fatalf("bucket %d starts %s, want %s", i, bk.Start, want)
		}
		switch i {
		case i1:
			if bk.Delivered != 9 || bk.Retrying != 1 || bk.Dead != 1 || bk.Gone != 0 {
				t.Errorf("bucket of t1: %+v", bk)
			}
			if !eqPtr(bk.LatencyMS.P50, ptr[int64](50)) || !eqPtr(bk.LatencyMS.P95, ptr[int64](90)) || !eqPtr(bk.LatencyMS.P99, ptr[int64](90)) {
				t.Errorf("bucket of t1 percentiles = %s, want 50/90/90", showPct(bk.LatencyMS))
			}
		case i2:
			if bk.Delivered != 1 || bk.Retrying != 1 || bk.Dead != 0 || !eqPtr(bk.LatencyMS.P50, ptr[int64](500)) {
				t.Errorf("bucket of t2: %+v %s", bk, showPct(bk.LatencyMS))
			}
		default:
			if bk.Delivered+bk.Retrying+bk.Dead+bk.Gone != 0 || bk.LatencyMS.P50 != nil {
				t.Errorf("bucket %d (%s) should be empty: %+v", i, bk.Start, bk)
			}
		}
	}
	if len(s.Series) != 0 {
		t.Errorf("series without group_by: %+v", s.Series)
	}

	// The hour: 60 buckets of a minute; nothing of ours in it.
	var h controlplane.DeliveryStats
	if status, _, raw := getJSON(t, b, "/v1/stats/deliveries?window=1h", b.viewKey, &h); status != 200 {
		t.Fatalf("stats 1h: %d %s", status, raw)
	}
	if h.BucketSeconds != 60 || len(h.Buckets) != 60 || (h.Totals != controlplane.DeliveryCounts{}) || h.LatencyMS.P50 != nil {
		t.Errorf("1h: bucket %d, %d buckets, totals %+v, p50 %s", h.BucketSeconds, len(h.Buckets), h.Totals, showPct(h.LatencyMS))
	}
	// The week: 84 buckets of two hours; the attempt of 25 hours ago too.
	var w controlplane.DeliveryStats
	if status, _, raw := getJSON(t, b, "/v1/stats/deliveries?window=7d", b.viewKey, &w); status != 200 {
		t.Fatalf("stats 7d: %d %s", status, raw)
	}
	if w.BucketSeconds != 7200 || len(w.Buckets) != 84 || w.Totals.Delivered != 11 || w.Buckets[bucketAt(w, now.Add(-25*time.Hour))].Delivered != 1 {
		t.Errorf("7d: bucket %d, %d buckets, totals %+v", w.BucketSeconds, len(w.Buckets), w.Totals)
	}

	// The other tenant sees its own attempt only.
	var g controlplane.DeliveryStats
	if status, _, raw := getJSON(t, b, "/v1/stats/deliveries", b.otherKey, &g); status != 200 {
		t.Fatalf("stats of globex: %d %s", status, raw)
	}
	if (g.Totals != controlplane.DeliveryCounts{Delivered: 1}) {
		t.Errorf("globex totals: %+v", g.Totals)
	}
}

// Grouped by rule or endpoint, the stats give each of the ten busiest its
// own series (id and name, every bucket) and the rest one "other" series,
// busiest first; the series add up to the totals.
func TestDeliveryStatsGrouped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now().UTC()
	at := now.Add(-2 * time.Hour)
	e1, e2 := createEndpoint(t, b, "primary"), createEndpoint(t, b, "secondary")
	// Twelve rules: rule i has i+1 delivered attempts (rule 11 the busiest);
	// rules 0 and 1 (1 and 2 attempts) fall past the cap into "other".
	rules := make([]string, 12)
	for i := range rules {
		ep := e1
		if i%2 == 1 {
			ep = e2
		}
		rules[i] = createRule(t, b, "rule-"+string(rune('a'+i)), ep)
		for j := 0; j <= i; j++ {
			seedAlert(t, b, "acme", rules[i], ep, at, try{schemas.OutcomeDelivered, int64(10 + i), at.Add(time.Duration(j) * time.Second)})
		}
	}
	// A test delivery to e1 that failed: a series of its own, named.
	seedAlert(t, b, "acme", schemas.TestRuleID, e1, at, try{schemas.OutcomeDead, 5, at})

	var s controlplane.DeliveryStats
	if status, _, raw := getJSON(t, b, "/v1/stats/deliveries?group_by=rule", b.viewKey, &s); status != 200 {
		t.Fatalf("by rule: %d %s", status, raw)
	}
	if s.GroupBy != "rule" || len(s.Series) != 11 {
		t.Fatalf("by rule: group_by %s, %d series: %+v", s.GroupBy, len(s.Series), s.Series)
	}
	// Busiest first: rules 11 … 2 (12 … 3 attempts), then other (rules 1,
	// 0 and the test delivery: 1+2 delivered, 1 dead). The test delivery
	// has 1 attempt: fewer than rule 2's 3, so it is among the "other".
	for k := 0; k < 10; k++ {
		sr, i := s.Series[k], 11-k
		if sr.Key != rules[i] || sr.RuleID != rules[i] || sr.EndpointID != "" || sr.Other || sr.Name != "rule-"+string(rune('a'+i)) ||
			sr.Totals.Delivered != int64(i+1) || len(sr.Buckets) != 96 || !eqPtr(sr.LatencyMS.P50, ptr(int64(10+i))) {
			t.Errorf("series %d: %s %q rule_id %q other %v totals %+v, %d buckets, p50 %s (want rule %d)", k, sr.Key, sr.Name, sr.RuleID,
				sr.Other, sr.Totals, len(sr.Buckets), showPct(sr.LatencyMS), i)
		}
		if got := sr.Buckets[bucketAt(s, at)].Delivered; got != int64(i+1) {
			t.Errorf("series %d: bucket of the attempts holds %d", k, got)
		}
	}
	other := s.Series[10]
	if other.Key != "other" || !other.Other || other.RuleID != "" || (other.Totals != controlplane.DeliveryCounts{Delivered: 3, Dead: 1}) ||
		len(other.Buckets) != 96 {
		t.Errorf("other: %s rule_id %q other %v totals %+v, %d buckets", other.Key, other.RuleID, other.Other, other.Totals, len(other.Buckets))
	}
	var sum controlplane.DeliveryCounts
	for _, sr := range s.Series {
		sum.Delivered += sr.Totals.Delivered
		sum.Dead += sr.Totals.Dead
	}
	if sum != s.Totals || s.Totals.Delivered != 78 {
		t.Errorf("series add up to %+v, totals %+v", sum, s.Totals)
	}

	// By endpoint: two series, named: e2 (rules 1, 3, …, 11: 2+4+…+12 = 42
	// attempts) before e1 (rules 0, 2, …, 10: 1+3+…+11 = 36, and the test
	// delivery).
	s = controlplane.DeliveryStats{}
	if status, _, raw := getJSON(t, b, "/v1/stats/deliveries?group_by=endpoint&window=24h", b.viewKey, &s); status != 200 {
		t.Fatalf("by endpoint: %d %s", status, raw)
	}
	if len(s.Series) != 2 || s.Series[0].EndpointID != e2 || s.Series[0].Name != "secondary" || s.Series[0].Totals.Delivered != 42 ||
		s.Series[1].EndpointID != e1 || s.Series[1].Name != "primary" ||
		(s.Series[1].Totals != controlplane.DeliveryCounts{Delivered: 36, Dead: 1}) || s.Series[0].RuleID != "" {
		for _, sr := range s.Series {
			t.Errorf("by endpoint: series %s %q rule_id %q endpoint_id %q totals %+v", sr.Key, sr.Name, sr.RuleID, sr.EndpointID, sr.Totals)
		}
	}
}

// Bad parameters of the overview are refused with the parameter's
// location; without a key there is nothing to see.
func TestOverviewBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []struct{ path, location string }{
		{"/v1/stats/deliveries?window=2h", "query.window"},
		{"/v1/stats/deliveries?group_by=workflow", "query.group_by"},
		{"/v1/stats/endpoints?window=1y", "query.window"},
		{"/v1/stats/endpoints?limit=0", "query.limit"},
		{"/v1/stats/endpoints?limit=201", "query.limit"},
		{"/v1/stats/endpoints?cursor=!!!", "query.cursor"},
		{"/v1/stats/endpoints?cursor=bm90LWEtY3Vyc29y", "query.cursor"},
	} {
		status, _, raw := getJSON(t, b, c.path, b.viewKey, nil)
		if (status != 400 && status != 422) || !strings.Contains(raw, `"location":"`+c.location+`"`) {
			t.Errorf("GET %s: %d %s; want 400/422 at %s", c.path, status, raw, c.location)
		}
	}
	if status, _, _ := getJSON(t, b, "/v1/stats/deliveries", "", nil); status != 401 {
		t.Errorf("without a key: %d", status)
	}
}
