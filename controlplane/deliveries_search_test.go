package controlplane_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// runAlert stores an alert of tenant about run of workflow, raised at at,
// with its attempts.
func runAlert(t *testing.T, b *bundle, tenant, rule, endpoint, workflow, run string, at time.Time, tries ...try) string {
	t.Helper()
	d, _ := testenv.Delivery(t, tenant, rule, endpoint, at)
	var p schemas.WebhookPayload
	if err := json.Unmarshal(d.Payload, &p); err != nil {
		t.Fatal(err)
	}
	p.Data.Workflow.Name, p.Data.Run.ID = workflow, run
	d.Payload, _ = json.Marshal(p)
	raw, _ := json.Marshal(d)
	if err := schemas.Validate(schemas.KindDelivery, raw); err != nil {
		t.Fatal(err)
	}
	return storeAlert(t, b, d, raw, tries...).AlertID
}

// alertIDs are the alert ids of a page, in its order.
func alertIDs(p controlplane.DeliveryPage) []string {
	out := []string{}
	for _, d := range p.Items {
		out = append(out, d.AlertID)
	}
	return out
}

// The global deliveries search lists every alert of the tenant newest
// first; each filter narrows it to exactly the alerts it names; pages
// follow one another without duplicates or gaps, the Link header keeping
// the filters; bad parameters are refused with their location; another
// tenant finds nothing of it.
func TestSearchDeliveries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e1, e2 := createEndpoint(t, b, "one"), createEndpoint(t, b, "two")
	r1, r2 := createRule(t, b, "first", e1), createRule(t, b, "second", e2)
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	ok := func(at time.Time) try { return try{schemas.OutcomeDelivered, 10, at.Add(time.Second)} }
	a1 := runAlert(t, b, "acme", r1, e1, "nightly-etl", "run_A", t0, ok(t0))
	a2 := runAlert(t, b, "acme", r1, e1, "billing", "run_B", t0.Add(time.Minute), try{schemas.OutcomeRetry, 10, t0.Add(61 * time.Second)})
	a3 := runAlert(t, b, "acme", r2, e2, "billing", "run_C", t0.Add(2*time.Minute),
		try{schemas.OutcomeRetry, 10, t0.Add(121 * time.Second)}, try{schemas.OutcomeDead, 10, t0.Add(122 * time.Second)})
	a4 := runAlert(t, b, "acme", r2, e2, "nightly-etl", "run_D", t0.Add(3*time.Minute))
	a5 := runAlert(t, b, "acme", schemas.TestRuleID, e1, "Test delivery", "test_1", t0.Add(4*time.Minute), ok(t0.Add(4*time.Minute)))
	// globex has an alert of the same run id and workflow name.
	theirs := runAlert(t, b, "globex", "rul_theirs", "whk_theirs", "billing", "run_B", t0, ok(t0))

	since := url.QueryEscape(t0.Add(time.Minute).Format(time.RFC3339Nano))
	until := url.QueryEscape(t0.Add(2 * time.Minute).Format(time.RFC3339Nano))
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{a5, a4, a3, a2, a1}},
		{"alert_id=" + a3, []string{a3}},
		{"run_id=run_B", []string{a2}},
		{"workflow=billing", []string{a3, a2}},
		{"workflow=nightly-etl", []string{a4, a1}},
		{"status=delivered", []string{a5, a1}},
		{"status=retry", []string{a2}},
		{"status=dead", []string{a3}},
		{"status=pending", []string{a4}},
		{"status=endpoint_gone", []string{}},
		{"endpoint_id=" + e2, []string{a4, a3}},
		{"rule_id=" + r1, []string{a2, a1}},
		{"rule_id=test", []string{a5}},
		{"since=" + since, []string{a5, a4, a3, a2}},
		{"until=" + until, []string{a2, a1}},
		{"since=" + since + "&until=" + until, []string{a2}},
		{"workflow=billing&endpoint_id=" + e1, []string{a2}},
		{"run_id=run_A&status=delivered&rule_id=" + r1, []string{a1}},
		{"run_id=run_nope", []string{}},
	} {
		var page controlplane.DeliveryPage
		status, _, raw := getJSON(t, b, "/v1/deliveries?"+c.query, b.viewKey, &page)
		if status != 200 {
			t.Errorf("?%s: %d %s", c.query, status, raw)
			continue
		}
		if got := alertIDs(page); !slices.Equal(got, c.want) || page.NextCursor != "" {
			t.Errorf("?%s: %v (next %q); want %v", c.query, got, page.NextCursor, c.want)
		}
	}

	// One alert in full: status, attempts, workflow and run.
	var one controlplane.DeliveryPage
	getJSON(t, b, "/v1/deliveries?alert_id="+a3, b.viewKey, &one)
	if d := one.Items[0]; d.Status != "dead" || !d.DeadLettered || d.WorkflowName != "billing" || d.RunID != "run_C" ||
		len(d.Attempts) != 2 || d.Attempts[1].Outcome != "dead" || d.RuleID != r2 || d.EndpointID != e2 || d.Payload != nil {
		t.Errorf("a3: %+v", d)
	}
	// The existing single-alert route is unchanged.
	if status, _, d := b.do(t, "GET", "/v1/deliveries/"+a3, b.viewKey, ""); status != 200 || d["alert_id"] != a3 || d["payload"] == nil {
		t.Errorf("GET /v1/deliveries/{alert_id}: %d %v", status, d)
	}

	// Pages of two, following next_cursor, then following the Link header
	// (which keeps the filter). An alert raised while the pages are read
	// shifts nothing: it is newer than the first page.
	var seen []string
	path := "/v1/deliveries?limit=2"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		var page controlplane.DeliveryPage
		status, hdr, raw := getJSON(t, b, path, b.viewKey, &page)
		if status != 200 {
			t.Fatalf("%s: %d %s", path, status, raw)
		}
		if pages == 0 {
			runAlert(t, b, "acme", r1, e1, "nightly-etl", "run_E", time.Now().UTC(), ok(time.Now().UTC()))
		}
		seen = append(seen, alertIDs(page)...)
		path = ""
		if page.NextCursor != "" {
			path = "/v1/deliveries?limit=2&cursor=" + url.QueryEscape(page.NextCursor)
			if len(page.Items) != 2 || !strings.Contains(hdr.Get("Link"), `rel="next"`) {
				t.Errorf("a page with more: %d items, Link %q", len(page.Items), hdr.Get("Link"))
			}
		}
	}
	if !slices.Equal(seen, []string{a5, a4, a3, a2, a1}) {
		t.Errorf("pages of two, an alert raised meanwhile: %v", seen)
	}
	seen = nil
	path = "/v1/deliveries?limit=1&workflow=billing"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		var page controlplane.DeliveryPage
		status, hdr, raw := getJSON(t, b, path, b.viewKey, &page)
		if status != 200 {
			t.Fatalf("%s: %d %s", path, status, raw)
		}
		seen = append(seen, alertIDs(page)...)
		path = ""
		if link := hdr.Get("Link"); link != "" {
			path = strings.TrimPrefix(strings.Split(link, ">")[0], "<")
		}
	}
	if !slices.Equal(seen, []string{a3, a2}) {
		t.Errorf("pages of one through Link, workflow=billing: %v", seen)
	}

	for _, c := range []struct{ query, location string }{
		{"status=lost", "query.status"},
		{"limit=0", "query.limit"},
		{"limit=201", "query.limit"},
		{"since=yesterday", "query.since"},
		{"until=2026-13-01T00:00:00Z", "query.until"},
		{"since=" + until + "&until=" + since, "query.until"},
		{"since=" + since + "&until=" + since, "query.until"},
		{"cursor=!!!", "query.cursor"},
		{"cursor=bm90LWEtY3Vyc29y", "query.cursor"},
		{"alert_id=" + strings.Repeat("a", 65), "query.alert_id"},
		{"run_id=" + strings.Repeat("r", 257), "query.run_id"},
		{"workflow=" + strings.Repeat("w", 257), "query.workflow"},
		{"endpoint_id=" + strings.Repeat("e", 65), "query.endpoint_id"},
		{"rule_id=" + strings.Repeat("r", 65), "query.rule_id"},
	} {
		status, _, raw := getJSON(t, b, "/v1/deliveries?"+c.query, b.viewKey, nil)
		if (status != 400 && status != 422) || !strings.Contains(raw, `"location":"`+c.location+`"`) {
			t.Errorf("?%s: %d %s; want 400/422 at %s", c.query, status, raw, c.location)
		}
	}

	// globex finds its own alert of run_B, none of acme's.
	for query, want := range map[string][]string{"run_id=run_B": {theirs}, "": {theirs}, "alert_id=" + a1: {}, "workflow=nightly-etl": {}} {
		var page controlplane.DeliveryPage
		if status, _, raw := getJSON(t, b, "/v1/deliveries?"+query, b.otherKey, &page); status != 200 {
			t.Fatalf("globex ?%s: %d %s", query, status, raw)
		}
		if got := alertIDs(page); !slices.Equal(got, want) {
			t.Errorf("globex ?%s: %v; want %v", query, got, want)
		}
	}
}
