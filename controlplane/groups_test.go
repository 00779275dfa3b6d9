package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// groupKey is a group key as the processor makes them (grp_ + 32 hex).
func groupKey(c byte) string { return "grp_" + strings.Repeat(string(c), 32) }

// reportGroups stores aggregate-groups records (validated against their
// schema) through the store call the recorder makes, as if it had read
// them from Kafka at offsets from 1.
func reportGroups(t *testing.T, db *store.Store, recs ...schemas.AggregateGroupStatus) {
	t.Helper()
	var sts []store.GroupStatus
	for i, r := range recs {
		raw, _ := json.Marshal(r)
		if err := schemas.Validate(schemas.KindAggregateGroup, raw); err != nil {
			t.Fatalf("status record %s: %v", raw, err)
		}
		st := store.GroupStatus{Partition: 0, Offset: int64(i + 1), Group: r.Group, Summary: r.Rule}
		sts = append(sts, st)
	}
	if err := db.System(context.Background(), func(tx *store.Tx) error { return tx.ApplyGroupStatuses(context.Background(), sts) }); err != nil {
		t.Fatal(err)
	}
}

// groupInfo is a group's status record.
func groupInfo(tenant, rule string, key byte, state string, since time.Time, value schemas.AggregateValue, group map[string]string) schemas.AggregateGroupStatus {
	g := &schemas.AggregateGroupInfo{TenantID: tenant, RuleID: rule, RuleVersion: 1, GroupKey: groupKey(key), Group: group, State: state, Value: value}
	if state != schemas.AggregateStateInactive {
		g.FiringSince, g.IncidentID = &since, "inc_"+strings.Repeat(string(key), 32)
	}
	if state == schemas.AggregateStateResolving {
		r := since.Add(10 * time.Minute)
		g.ResolvingSince = &r
	}
	return schemas.AggregateGroupStatus{Group: g}
}

func n64(n int64) *int64 { return &n }

// The groups of a count or rate rule and of all the tenant's rules, as the
// recorder stored them: filtered by state, paged in (rule, group) order,
// with the rule's summary; 404 for a per-event rule, another tenant's rule
// or a deleted one.
func TestAlertGroups(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.endpoint(t)
	mk := func(key, body string) string {
		t.Helper()
		status, _, r := b.do(t, "POST", "/v1/alert-rules", key, body)
		if status != http.StatusCreated {
			t.Fatalf("create rule: %d %v", status, r)
		}
		return r["id"].(string)
	}
	count := mk(b.adminKey, `{"name":"etl failing","kind":"count","event_type":"workflow.run.failed","window":"15m","threshold":3,"group_by":["workflow.name"],"webhook_endpoint_id":"`+wh+`"}`)
	rate := mk(b.adminKey, `{"name":"success rate","kind":"rate","window":"1h","success_ratio_below":0.95,"webhook_endpoint_id":"`+wh+`"}`)
	perEvent := mk(b.adminKey, `{"name":"every failure","event_type":"workflow.run.failed","webhook_endpoint_id":"`+wh+`"}`)
	_, _, owh := b.do(t, "POST", "/v1/webhooks", b.otherKey, `{"name":"ops","target_url":"https://hooks.example.com/g"}`)
	other := mk(b.otherKey, `{"name":"globex","kind":"count","event_type":"workflow.run.failed","window":"15m","threshold":3,"webhook_endpoint_id":"`+owh["id"].(string)+`"}`)

	since := time.Date(2026, 11, 28, 10, 2, 0, 0, time.UTC)
	name := func(n string) map[string]string { return map[string]string{"workflow.name": n} }
	reportGroups(t, store.New(b.pool, ""),
		groupInfo("acme", count, 'a', schemas.AggregateStateFiring, since, schemas.AggregateValue{Matched: n64(3)}, name("nightly-etl")),
		groupInfo("acme", count, 'b', schemas.AggregateStateResolving, since, schemas.AggregateValue{Matched: n64(1)}, name("hourly")),
		groupInfo("acme", count, 'c', schemas.AggregateStateInactive, since, schemas.AggregateValue{Matched: n64(0)}, name("weekly")),
		schemas.AggregateGroupStatus{Rule: &schemas.AggregateRuleSummary{TenantID: "acme", RuleID: count, Groups: 3, Dropped: 12, Late: 3}},
		groupInfo("acme", rate, 'd', schemas.AggregateStateFiring, since, schemas.AggregateValue{Succeeded: n64(9), Failed: n64(3), Ratio: new(0.75)}, map[string]string{}),
		groupInfo("globex", other, 'e', schemas.AggregateStateFiring, since, schemas.AggregateValue{Matched: n64(5)}, map[string]string{}),
	)

	status, _, got := b.do(t, "GET", "/v1/alert-rules/"+count+"/groups", b.viewKey, "")
	if status != 200 {
		t.Fatalf("groups of the count rule: %d %v", status, got)
	}
	items := asList(got["items"])
	if len(items) != 3 || jsonOf(got["summary"]) != `{"dropped":12,"groups":3,"late":3,"max_groups":500}` {
		t.Fatalf("groups of the count rule: %v", got)
	}
	first := items[0].(map[string]any)
	if first["group_key"] != groupKey('a') || first["state"] != "firing" || first["firing_since"] != "2026-11-28T10:02:00Z" ||
		first["rule_name"] != "etl failing" || jsonOf(first["group"]) != `{"workflow.name":"nightly-etl"}` ||
		jsonOf(first["value"]) != `{"matched":3}` || first["incident_id"] != "inc_"+strings.Repeat("a", 32) {
		t.Errorf("firing group: %v", first)
	}
	if second := items[1].(map[string]any); second["state"] != "resolving" || second["resolving_since"] != "2026-11-28T10:12:00Z" {
		t.Errorf("resolving group: %v", second)
	}
	status, _, got = b.do(t, "GET", "/v1/alert-rules/"+count+"/groups?state=firing", b.viewKey, "")
	if items := asList(got["items"]); status != 200 || len(items) != 1 || items[0].(map[string]any)["group_key"] != groupKey('a') {
		t.Errorf("firing groups of the count rule: %d %v", status, got)
	}
	// Pages of one, followed by next_cursor, give every group once, in order.
	var keys []string
	for path := "/v1/alert-rules/" + count + "/groups?limit=1"; ; {
		status, h, page := b.do(t, "GET", path, b.viewKey, "")
		if status != 200 {
			t.Fatalf("%s: %d %v", path, status, page)
		}
		for _, it := range asList(page["items"]) {
			keys = append(keys, it.(map[string]any)["group_key"].(string))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		if !strings.Contains(h.Get("Link"), `rel="next"`) {
			t.Errorf("page with a next cursor has no Link: %q", h.Get("Link"))
		}
		path = "/v1/alert-rules/" + count + "/groups?limit=1&cursor=" + next
		if len(keys) > 5 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(keys, []string{groupKey('a'), groupKey('b'), groupKey('c')}) {
		t.Errorf("paged groups %v", keys)
	}
	// The rate rule's one group; its summary without a report counts rows.
	status, _, got = b.do(t, "GET", "/v1/alert-rules/"+rate+"/groups", b.viewKey, "")
	if status != 200 || len(asList(got["items"])) != 1 || jsonOf(got["summary"]) != `{"dropped":0,"groups":1,"late":0,"max_groups":1}` ||
		jsonOf(asList(got["items"])[0].(map[string]any)["value"]) != `{"failed":3,"ratio":0.75,"succeeded":9}` {
		t.Errorf("groups of the rate rule: %d %v", status, got)
	}
	for _, c := range []struct{ what, key, path string }{
		{"a per-event rule", b.viewKey, "/v1/alert-rules/" + perEvent + "/groups"},
		{"another tenant's rule", b.otherKey, "/v1/alert-rules/" + count + "/groups"},
		{"no rule", b.viewKey, "/v1/alert-rules/rul_nope/groups"},
	} {
		if status, _, got := b.do(t, "GET", c.path, c.key, ""); status != 404 {
			t.Errorf("groups of %s: %d %v, want 404", c.what, status, got)
		}
	}
	if status, _, _ := b.do(t, "GET", "/v1/alert-groups?cursor=!!", b.viewKey, ""); status != 400 {
		t.Errorf("bad cursor: %d, want 400", status)
	}

	// What fires now, over all rules; each tenant sees its own.
	firing := func(key, query string) []string {
		t.Helper()
		status, _, got := b.do(t, "GET", "/v1/alert-groups?state=firing"+query, key, "")
		if status != 200 {
			t.Fatalf("alert-groups: %d %v", status, got)
		}
		var out []string
		for _, it := range asList(got["items"]) {
			m := it.(map[string]any)
			out = append(out, fmt.Sprint(m["rule_id"], "/", m["group_key"]))
		}
		slices.Sort(out)
		return out
	}
	want := []string{count + "/" + groupKey('a'), rate + "/" + groupKey('d')}
	slices.Sort(want)
	if got := firing(b.viewKey, ""); !slices.Equal(got, want) {
		t.Errorf("acme fires %v, want %v", got, want)
	}
	if got := firing(b.viewKey, "&rule_id="+rate); !slices.Equal(got, []string{rate + "/" + groupKey('d')}) {
		t.Errorf("acme's rate rule fires %v", got)
	}
	if got := firing(b.otherKey, ""); !slices.Equal(got, []string{other + "/" + groupKey('e')}) {
		t.Errorf("globex fires %v", got)
	}
	// A deleted rule's groups are gone from both lists.
	if status, _, _ := b.do(t, "DELETE", "/v1/alert-rules/"+rate, b.adminKey, ""); status != 200 {
		t.Fatal("delete")
	}
	if got := firing(b.viewKey, ""); !slices.Equal(got, []string{count + "/" + groupKey('a')}) {
		t.Errorf("after deleting the rate rule acme fires %v", got)
	}
	if status, _, _ := b.do(t, "GET", "/v1/alert-rules/"+rate+"/groups", b.viewKey, ""); status != 404 {
		t.Errorf("groups of a deleted rule: %d, want 404", status)
	}
}
