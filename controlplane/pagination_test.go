package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// listPageOut is one page of a list: its items' ids, next_cursor and its Link
// rel="next".
type listPageOut struct {
	ids  []string
	next string
	link string
}

// listPage fetches path (a list with ?limit=) with key; the answer must be
// 200 with items (never null) and next_cursor.
func (b *bundle) listPage(t *testing.T, key, path string) listPageOut {
	t.Helper()
	status, h, got := b.do(t, "GET", path, key, "")
	items, ok := got["items"].([]any)
	next, hasNext := got["next_cursor"].(string)
	if status != 200 || !ok || !hasNext {
		t.Fatalf("GET %s: %d %v", path, status, got)
	}
	var link string
	for _, l := range h.Values("Link") { // huma adds a rel="describedBy" one
		if strings.Contains(l, `rel="next"`) {
			link = l
		}
	}
	return listPageOut{ids: ids(items), next: next, link: link}
}

// walk follows next_cursor from path until the last page and returns every
// id in order, checking on the way that a page with a next cursor is full
// and has a Link rel="next" carrying that cursor, and that the last page
// has neither.
func (b *bundle) walk(t *testing.T, key, path string, limit int) []string {
	t.Helper()
	var all []string
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	cursor := ""
	for range 100 {
		q := fmt.Sprintf("%s%slimit=%d", path, sep, limit)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		p := b.listPage(t, key, q)
		all = append(all, p.ids...)
		if p.next == "" {
			if p.link != "" {
				t.Errorf("GET %s: last page has a Link rel=next: %q", q, p.link)
			}
			return all
		}
		if len(p.ids) != limit || !strings.Contains(p.link, `rel="next"`) || !strings.Contains(p.link, url.QueryEscape(p.next)) {
			t.Fatalf("GET %s: a page with next_cursor %q has %d items and Link %q", q, p.next, len(p.ids), p.link)
		}
		cursor = p.next
	}
	t.Fatalf("GET %s: more than 100 pages", path)
	return nil
}

// GET /v1/webhooks and GET /v1/alert-rules page through a tenant's items:
// every item exactly once, oldest first (ties in created_at broken by id),
// whatever the page size; a bad cursor is a 400 naming query.cursor, and a
// tenant's cursor opens nothing of another tenant.
func TestWebhookAndRuleListsPaginate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 7
	mine := map[string][]string{}
	theirs := map[string][]string{}
	for i := range n {
		wh := b.webhook(t, b.adminKey, fmt.Sprintf(`{"name":"ops %d","target_url":"https://hooks.example.com/%d"}`, i, i))
		mine["webhooks"] = append(mine["webhooks"], wh["id"].(string))
		r := b.rule(t, b.adminKey, `{"name":"r","event_type":"workflow.run.failed","endpoint_id":"`+wh["id"].(string)+`"}`)
		mine["alert-rules"] = append(mine["alert-rules"], r["id"].(string))
	}
	for range 3 {
		wh := b.webhook(t, b.otherKey, `{"name":"theirs","target_url":"https://hooks.example.com/g"}`)
		theirs["webhooks"] = append(theirs["webhooks"], wh["id"].(string))
		r := b.rule(t, b.otherKey, `{"name":"theirs","event_type":"workflow.run.failed","endpoint_id":"`+wh["id"].(string)+`"}`)
		theirs["alert-rules"] = append(theirs["alert-rules"], r["id"].(string))
	}
	// Rows made in the same instant are ordered by id: give four of each
	// list one created_at (in an order their ids do not follow).
	ctx := context.Background()
	for table, list := range map[string]string{"webhook_endpoints": "webhooks", "alert_rules": "alert-rules"} {
		tied := mine[list][1:5]
		if _, err := b.pool.Exec(ctx, `UPDATE `+table+` SET created_at = (SELECT created_at FROM `+table+` WHERE id = $1) WHERE id = ANY($2)`, tied[0], tied); err != nil {
			t.Fatal(err)
		}
		first := slices.Clone(tied)
		slices.Sort(first)
		mine[list] = slices.Concat(mine[list][:1], first, mine[list][5:])
	}

	for _, list := range []string{"webhooks", "alert-rules"} {
		t.Run(list, func(t *testing.T) {
			path := "/v1/" + list
			for _, limit := range []int{1, 2, 3, n, 200} {
				if got := b.walk(t, b.viewKey, path, limit); !slices.Equal(got, mine[list]) {
					t.Errorf("limit %d: pages hold %v, want each of %v once, in order", limit, got, mine[list])
				}
			}
			if got := b.listPage(t, b.viewKey, path); !slices.Equal(got.ids, mine[list]) || got.next != "" {
				t.Errorf("default limit (50): %v next %q, want all %d on one page", got.ids, got.next, n)
			}

			// A tenant's cursor shows the other tenant only its own items.
			first := b.listPage(t, b.viewKey, path+"?limit=2")
			if got := b.walk(t, b.otherKey, path, 2); !slices.Equal(got, theirs[list]) {
				t.Errorf("globex's pages: %v, want %v", got, theirs[list])
			}
			other := b.listPage(t, b.otherKey, path+"?limit=200&cursor="+url.QueryEscape(first.next))
			for _, id := range other.ids {
				if slices.Contains(mine[list], id) {
					t.Errorf("globex with acme's cursor sees acme's %s", id)
				}
			}

			for _, c := range []struct{ name, query, location string }{
				{"cursor not base64", "cursor=%21%21", "query.cursor"},
				{"cursor of another shape", "cursor=bm90LWEtY3Vyc29y", "query.cursor"},
				{"limit 0", "limit=0", "query.limit"},
				{"limit above 200", "limit=201", "query.limit"},
			} {
				status, _, got := b.do(t, "GET", path+"?"+c.query, b.viewKey, "")
				raw, _ := json.Marshal(got["errors"])
				if status/100 != 4 || !strings.Contains(string(raw), `"location":"`+c.location+`"`) {
					t.Errorf("%s: %d %v, want a 4xx problem at %s", c.name, status, got, c.location)
				}
				if c.location == "query.cursor" && status != 400 {
					t.Errorf("%s: %d, want 400", c.name, status)
				}
			}
		})
	}
}

// A rule names its endpoint as endpoint_id; webhook_endpoint_id, the
// former name, is still accepted on input (create, patch, list filter) and
// still answered, with the same value, for clients written before.
func TestRuleEndpointIDAndItsFormerName(t *testing.T) {
	t.Parallel()
	b := setup(t)
	epA := b.webhook(t, b.adminKey, `{"name":"a","target_url":"https://hooks.example.com/a"}`)["id"].(string)
	epC := b.webhook(t, b.adminKey, `{"name":"c","target_url":"https://hooks.example.com/c"}`)["id"].(string)

	byNew := b.rule(t, b.adminKey, `{"name":"new","event_type":"workflow.run.failed","endpoint_id":"`+epA+`"}`)
	byOld := b.rule(t, b.adminKey, `{"name":"old","event_type":"workflow.run.failed","webhook_endpoint_id":"`+epA+`"}`)
	for _, r := range []map[string]any{byNew, byOld} {
		if r["endpoint_id"] != epA || r["webhook_endpoint_id"] != epA {
			t.Errorf("rule %s: endpoint_id %v, webhook_endpoint_id %v, want both %s", r["name"], r["endpoint_id"], r["webhook_endpoint_id"], epA)
		}
	}

	for _, c := range []struct{ name, body, location string }{
		{"neither", `{"name":"x","event_type":"workflow.run.failed"}`, "body.endpoint_id"},
		{"both, differing", `{"name":"x","event_type":"workflow.run.failed","endpoint_id":"` + epA + `","webhook_endpoint_id":"` + epC + `"}`, "body.webhook_endpoint_id"},
		{"unknown endpoint", `{"name":"x","event_type":"workflow.run.failed","endpoint_id":"whk_nope"}`, "body.endpoint_id"},
		{"unknown endpoint, former name", `{"name":"x","event_type":"workflow.run.failed","webhook_endpoint_id":"whk_nope"}`, "body.webhook_endpoint_id"},
	} {
		status, _, got := b.do(t, "POST", "/v1/alert-rules", b.adminKey, c.body)
		raw, _ := json.Marshal(got["errors"])
		if status != 422 || !strings.Contains(string(raw), `"location":"`+c.location+`"`) {
			t.Errorf("create with %s: %d %v, want 422 at %s", c.name, status, got, c.location)
		}
	}
	if status, _, _ := b.do(t, "POST", "/v1/alert-rules", b.adminKey, `{"name":"same","event_type":"workflow.run.failed","endpoint_id":"`+epA+`","webhook_endpoint_id":"`+epA+`"}`); status != 201 {
		t.Errorf("create with both names, equal: %d, want 201", status)
	}

	// A patch moves the rule under either name.
	for _, m := range []struct{ id, patch string }{
		{byNew["id"].(string), `{"endpoint_id":"` + epC + `"}`},
		{byOld["id"].(string), `{"webhook_endpoint_id":"` + epC + `"}`},
	} {
		status, _, got := b.request(t, "PATCH", "/v1/alert-rules/"+m.id, b.adminKey, m.patch, "application/merge-patch+json", nil)
		if status != 200 || got["endpoint_id"] != epC || got["webhook_endpoint_id"] != epC {
			t.Errorf("patch %s: %d %v, want the rule moved to %s", m.patch, status, got, epC)
		}
	}

	// The list filters under either name; a Link keeps the filter.
	for _, q := range []string{"endpoint_id=", "webhook_endpoint_id="} {
		p := b.listPage(t, b.viewKey, "/v1/alert-rules?limit=1&"+q+epC)
		if len(p.ids) != 1 || p.next == "" || !strings.Contains(p.link, "endpoint_id="+epC) {
			t.Errorf("GET ?%s%s&limit=1: %+v, want one of two rules and a Link keeping the filter", q, epC, p)
		}
	}
	if status, _, _ := b.do(t, "GET", "/v1/alert-rules?endpoint_id="+epA+"&webhook_endpoint_id="+epC, b.viewKey, ""); status != 400 {
		t.Errorf("list filtering on two different endpoints: %d, want 400", status)
	}
}

// The notice settings name their endpoint endpoint_id too, and take and
// answer webhook_endpoint_id, the former name, as well.
func TestNoticeSettingsEndpointID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	epA := b.webhookID(t, b.adminKey)
	epC := b.webhookID(t, b.adminKey)
	for _, c := range []struct{ body, want string }{
		{`{"endpoint_id":"` + epA + `"}`, epA},
		{`{"webhook_endpoint_id":"` + epC + `"}`, epC},
		{`{"endpoint_id":"` + epA + `","webhook_endpoint_id":"` + epA + `"}`, epA},
	} {
		status, _, got := b.do(t, "PUT", "/v1/notice-settings", b.adminKey, c.body)
		if status != 200 || got["endpoint_id"] != c.want || got["webhook_endpoint_id"] != c.want {
			t.Errorf("PUT %s: %d %v, want endpoint_id and webhook_endpoint_id %s", c.body, status, got, c.want)
		}
	}
	for _, c := range []struct{ body, location string }{
		{`{"endpoint_id":"` + epA + `","webhook_endpoint_id":"` + epC + `"}`, "body.webhook_endpoint_id"},
		{`{"endpoint_id":"whk_nope"}`, "body.endpoint_id"},
		{`{"webhook_endpoint_id":"whk_nope"}`, "body.webhook_endpoint_id"},
	} {
		status, _, got := b.do(t, "PUT", "/v1/notice-settings", b.adminKey, c.body)
		raw, _ := json.Marshal(got["errors"])
		if status != 422 || !strings.Contains(string(raw), `"location":"`+c.location+`"`) {
			t.Errorf("PUT %s: %d %v, want 422 at %s", c.body, status, got, c.location)
		}
	}
	if _, _, got := b.do(t, "GET", "/v1/notice-settings", b.viewKey, ""); got["endpoint_id"] != epA {
		t.Errorf("GET /v1/notice-settings after refused PUTs: %v, want endpoint_id %s", got, epA)
	}
}
