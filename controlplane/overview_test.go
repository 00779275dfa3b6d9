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
	return storeAlert(t, b, d, raw, tries...)
}

// storeAlert stores alert d (encoded raw) with its attempts, as seedAlert.
func storeAlert(t *testing.T, b *bundle, d schemas.DeliveryRecord, raw []byte, tries ...try) schemas.DeliveryRecord {
	t.Helper()
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
	now := time.Now().UTC().Truncate(time.Millisecond)
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
	now := time.Now().UTC().Truncate(time.Millisecond)
	// A minute into a bucket: the twelve seconds of attempts stay in it.
	at := now.Add(-2 * time.Hour).Truncate(15 * time.Minute).Add(time.Minute)
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

// unhealthy stores what the recorder stores when a dispatcher reports
// endpoint's breaker open since since, and, when healthyAt is set, closed
// again then.
func unhealthy(t *testing.T, b *bundle, tenant, endpoint string, since time.Time, failures int, healthyAt *time.Time) {
	t.Helper()
	ctx := context.Background()
	err := store.New(b.pool, "").System(ctx, func(tx *store.Tx) error {
		n := &store.Notice{TenantID: tenant, Kind: store.NoticeEndpointUnhealthy, EndpointID: endpoint,
			DedupKey: "endpoint_unhealthy/" + endpoint + "/" + since.Format(time.RFC3339Nano), Title: "unhealthy",
			Detail: map[string]any{"since": since, "consecutive_failures": failures, "instance": "d1"}}
		if _, err := tx.InsertNotice(ctx, n, since.Add(time.Minute)); err != nil {
			return err
		}
		if healthyAt != nil {
			_, err := tx.ResolveUnhealthy(ctx, tenant, endpoint, *healthyAt)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Endpoint health shows, per endpoint in the endpoint list's order, the
// window's attempts and success rate, the latest failure and success,
// whether it is disabled and why, and its breaker as reported; it pages;
// another tenant sees none of it.
func TestEndpointHealth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	flaky, quiet, off, healed := createEndpoint(t, b, "flaky"), createEndpoint(t, b, "quiet"), createEndpoint(t, b, "off"), createEndpoint(t, b, "healed")
	rule := createRule(t, b, "etl", flaky)
	t1 := now.Add(-2 * time.Hour)
	// flaky: three delivered (20, 30, 40 ms) and one alert that failed
	// twice, then died; a failure two days ago is outside the window but
	// not the latest.
	for i, ms := range []int64{20, 30, 40} {
		seedAlert(t, b, "acme", rule, flaky, t1, try{schemas.OutcomeDelivered, ms, t1.Add(time.Duration(i) * time.Second)})
	}
	seedAlert(t, b, "acme", rule, flaky, now.Add(-48*time.Hour), try{schemas.OutcomeRetry, 5, now.Add(-48 * time.Hour)})
	dead := seedAlert(t, b, "acme", rule, flaky, t1, try{schemas.OutcomeRetry, 3000, t1.Add(time.Minute)},
		try{schemas.OutcomeDead, 3000, t1.Add(2 * time.Minute)})
	since := t1.Add(-10 * time.Minute).Truncate(time.Millisecond)
	unhealthy(t, b, "acme", flaky, since, 12, nil)
	// healed: its breaker was reported open, then closed; its only
	// attempts are older than the window.
	old := now.Add(-30 * time.Hour)
	seedAlert(t, b, "acme", rule, healed, old, try{schemas.OutcomeDelivered, 9, old})
	closedAt := now.Add(-26 * time.Hour).Truncate(time.Millisecond)
	unhealthy(t, b, "acme", healed, closedAt.Add(-time.Hour), 4, &closedAt)
	// off: disabled with a reason.
	if _, err := b.pool.Exec(context.Background(), `UPDATE webhook_endpoints SET is_active = false, disabled_reason = 'answered 410' WHERE id = $1`, off); err != nil {
		t.Fatal(err)
	}
	// globex's endpoint and attempts.
	status, _, theirs := b.do(t, "POST", "/v1/webhooks", b.otherKey, `{"name":"theirs","target_url":"https://hooks.example.com/theirs"}`)
	if status != 201 {
		t.Fatalf("globex endpoint: %d", status)
	}
	seedAlert(t, b, "globex", "rul_theirs", theirs["id"].(string), t1, try{schemas.OutcomeDead, 1, t1})

	var page controlplane.EndpointHealthList
	status, hdr, raw := getJSON(t, b, "/v1/stats/endpoints?limit=3", b.viewKey, &page)
	if status != 200 {
		t.Fatalf("endpoint health: %d %s", status, raw)
	}
	if page.Window != "24h" || page.To.Sub(page.From) != 24*time.Hour || len(page.Items) != 3 || page.NextCursor == "" ||
		!strings.Contains(hdr.Get("Link"), `rel="next"`) || !strings.Contains(hdr.Get("Link"), "window=24h") {
		t.Fatalf("first page: window %s, %d items, next %q, Link %q", page.Window, len(page.Items), page.NextCursor, hdr.Get("Link"))
	}
	if page.Items[0].EndpointID != flaky || page.Items[1].EndpointID != quiet || page.Items[2].EndpointID != off {
		t.Errorf("order: %s %s %s; want flaky, quiet, off", page.Items[0].EndpointID, page.Items[1].EndpointID, page.Items[2].EndpointID)
	}
	f := page.Items[0]
	if f.Name != "flaky" || f.Kind != "webhook" || !f.IsActive || f.DisabledReason != nil ||
		(f.Totals != controlplane.DeliveryCounts{Delivered: 3, Retrying: 1, Dead: 1}) || f.Attempts != 5 ||
		f.SuccessRate == nil || *f.SuccessRate != 0.6 || !eqPtr(f.LatencyMS.P50, ptr[int64](30)) || !eqPtr(f.LatencyMS.P99, ptr[int64](40)) {
		t.Errorf("flaky: %+v rate %v p %s", f, f.SuccessRate, showPct(f.LatencyMS))
	}
	if e := f.LastError; e == nil || e.AlertID != dead.AlertID || e.Outcome != "dead" || e.StatusCode == nil || *e.StatusCode != 503 ||
		!e.AttemptedAt.Equal(t1.Add(2*time.Minute)) || e.Error == nil || *e.Error != "HTTP 503" {
		t.Errorf("flaky last error: %+v", e)
	}
	if f.LastDeliveredAt == nil || !f.LastDeliveredAt.Equal(t1.Add(2*time.Second)) {
		t.Errorf("flaky last delivered: %v", f.LastDeliveredAt)
	}
	if f.Breaker.State != "open" || f.Breaker.Since == nil || !f.Breaker.Since.Equal(since) || f.Breaker.ConsecutiveFailures == nil ||
		*f.Breaker.ConsecutiveFailures != 12 {
		t.Errorf("flaky breaker: %+v", f.Breaker)
	}
	q := page.Items[1]
	if q.Attempts != 0 || q.SuccessRate != nil || q.LatencyMS.P50 != nil || q.LastError != nil || q.LastDeliveredAt != nil ||
		q.Breaker.State != "closed" || q.Breaker.Since != nil || q.Breaker.ConsecutiveFailures != nil {
		t.Errorf("quiet: %+v", q)
	}
	if o := page.Items[2]; o.IsActive || o.DisabledReason == nil || *o.DisabledReason != "answered 410" {
		t.Errorf("off: active %v reason %v", o.IsActive, o.DisabledReason)
	}

	var rest controlplane.EndpointHealthList
	if status, _, raw := getJSON(t, b, "/v1/stats/endpoints?limit=3&cursor="+page.NextCursor, b.viewKey, &rest); status != 200 {
		t.Fatalf("second page: %d %s", status, raw)
	}
	if len(rest.Items) != 1 || rest.NextCursor != "" || rest.Items[0].EndpointID != healed {
		t.Fatalf("second page: %+v", rest)
	}
	h := rest.Items[0]
	if h.Attempts != 0 || h.SuccessRate != nil || h.LastDeliveredAt == nil || !h.LastDeliveredAt.Equal(old) ||
		h.Breaker.State != "closed" || h.Breaker.Since == nil || !h.Breaker.Since.Equal(closedAt) {
		t.Errorf("healed: attempts %d, last delivered %v, breaker %+v", h.Attempts, h.LastDeliveredAt, h.Breaker)
	}
	// The week counts healed's attempt of 30 hours ago.
	var week controlplane.EndpointHealthList
	if status, _, raw := getJSON(t, b, "/v1/stats/endpoints?window=7d&cursor="+page.NextCursor+"&limit=3", b.viewKey, &week); status != 200 {
		t.Fatalf("week: %d %s", status, raw)
	}
	if len(week.Items) != 1 || week.Items[0].Attempts != 1 || week.Items[0].SuccessRate == nil || *week.Items[0].SuccessRate != 1 {
		t.Errorf("healed over the week: %+v", week.Items)
	}

	var other controlplane.EndpointHealthList
	if status, _, raw := getJSON(t, b, "/v1/stats/endpoints", b.otherKey, &other); status != 200 {
		t.Fatalf("globex: %d %s", status, raw)
	}
	if len(other.Items) != 1 || other.Items[0].EndpointID != theirs["id"] || other.Items[0].Totals.Dead != 1 {
		t.Errorf("globex sees: %+v", other.Items)
	}
}
