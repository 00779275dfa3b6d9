package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// auditPage fetches GET /v1/audit-events?query with key and returns its items and next cursor.
func (b *bundle) auditPage(t *testing.T, key, query string) (items []map[string]any, next, link string) {
	t.Helper()
	status, hdr, body := b.do(t, "GET", "/v1/audit-events?"+query, key, "")
	if status != 200 {
		t.Fatalf("GET /v1/audit-events?%s = %d %v", query, status, body)
	}
	raw, _ := body["items"].([]any)
	for _, it := range raw {
		items = append(items, it.(map[string]any))
	}
	next, _ = body["next_cursor"].(string)
	for _, l := range hdr.Values("Link") {
		if strings.Contains(l, `rel="next"`) {
			link = l
		}
	}
	return items, next, link
}

// auditAll follows the cursor through every page of query (limit 2 a page).
func (b *bundle) auditAll(t *testing.T, key, query string) []map[string]any {
	t.Helper()
	var all []map[string]any
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 50 {
			t.Fatal("audit pagination does not end")
		}
		q := "limit=2&" + query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		items, next, link := b.auditPage(t, key, q)
		if len(items) > 2 {
			t.Fatalf("page of %d items with limit 2", len(items))
		}
		if (next == "") != (link == "") {
			t.Fatalf("next_cursor %q but Link %q", next, link)
		}
		if next != "" && !strings.Contains(link, url.QueryEscape(next)) {
			t.Fatalf("Link %q does not carry the cursor %q", link, next)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

func auditIDs(items []map[string]any) []int64 {
	var ids []int64
	for _, it := range items {
		ids = append(ids, int64(it["id"].(float64)))
	}
	return ids
}

func TestAuditEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var webhooks []string
	for i := range 5 {
		status, _, wh := b.do(t, "POST", "/v1/webhooks", b.adminKey, fmt.Sprintf(`{"name":"wh%d","target_url":"https://e.com/%d","headers":{"X-Token":"tok-%d"}}`, i, i, i))
		if status != 201 {
			t.Fatalf("create webhook: %d %v", status, wh)
		}
		webhooks = append(webhooks, wh["id"].(string))
	}
	status, _, rule := b.do(t, "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.failed","webhook_endpoint_id":"`+webhooks[0]+`"}`)
	if status != 201 {
		t.Fatalf("create rule: %d %v", status, rule)
	}
	ruleID := rule["id"].(string)
	if status, _, _ := b.do(t, "POST", "/v1/webhooks", b.otherKey, `{"name":"theirs","target_url":"https://e.com/g"}`); status != 201 {
		t.Fatalf("globex create webhook: %d", status)
	}

	// Viewer keys read the whole trail, newest first, page by page.
	all := b.auditAll(t, b.viewKey, "")
	if len(all) != 6 {
		t.Fatalf("acme's trail has %d events, want 6: %v", len(all), all)
	}
	ids := auditIDs(all)
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("trail not newest first: ids %v", ids)
		}
	}
	first := all[0]
	if first["action"] != "alert_rule.create" || first["resource_type"] != "alert_rule" || first["resource_id"] != ruleID ||
		first["before"] != nil || first["after"].(map[string]any)["id"] != ruleID || first["request_id"] == "" {
		t.Fatalf("newest event = %v, want the rule's create", first)
	}
	if _, err := time.Parse(time.RFC3339, first["created_at"].(string)); err != nil {
		t.Fatalf("created_at: %v", err)
	}
	actor := first["actor"].(string)
	if !strings.HasPrefix(actor, "key:") {
		t.Fatalf("actor = %q", actor)
	}
	for _, it := range all {
		if s := fmt.Sprint(it); strings.Contains(s, "tok-") {
			t.Fatalf("audit event shows a header value: %v", it)
		}
	}

	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	past := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	cases := []struct {
		name, query string
		want        int
	}{
		{"resource type", "resource_type=webhook", 5},
		{"resource id", "resource_id=" + webhooks[2], 1},
		{"action", "action=alert_rule.create", 1},
		{"action and resource type", "action=webhook.create&resource_type=alert_rule", 0},
		{"actor", "actor=" + url.QueryEscape(actor), 6},
		{"another actor", "actor=cli", 0},
		{"since in the future", "since=" + future, 0},
		{"until in the past", "until=" + past, 0},
		{"since and until around now", "since=" + past + "&until=" + future, 6},
		{"resource id and action", "resource_id=" + webhooks[0] + "&action=webhook.create", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := b.auditAll(t, b.viewKey, c.query)
			if len(got) != c.want {
				t.Fatalf("%s: %d events, want %d: %v", c.query, len(got), c.want, got)
			}
		})
	}

	// Tenant globex sees its own event only, whatever it asks.
	theirs := b.auditAll(t, b.otherKey, "")
	if len(theirs) != 1 || theirs[0]["resource_type"] != "webhook" {
		t.Fatalf("globex's trail = %v, want its one webhook", theirs)
	}
	if got := b.auditAll(t, b.otherKey, "resource_id="+webhooks[0]); len(got) != 0 {
		t.Fatalf("globex sees acme's events: %v", got)
	}
	if slicesOverlap(auditIDs(theirs), ids) {
		t.Fatal("the two tenants' trails share events")
	}
	// A cursor from acme's trail does not open it to globex.
	_, next, _ := b.auditPage(t, b.viewKey, "limit=1")
	if got, _, _ := b.auditPage(t, b.otherKey, "cursor="+url.QueryEscape(next)); slicesOverlap(auditIDs(got), ids) {
		t.Fatalf("globex with acme's cursor sees acme's events: %v", got)
	}

	for _, c := range []struct{ name, query string }{
		{"malformed cursor", "cursor=%21%21"},
		{"cursor of another list", "cursor=" + url.QueryEscape("MjAyNi0wMS0wMVQwMDowMDowMFp8eA")},
		{"until before since", "since=" + future + "&until=" + past},
		{"since not a time", "since=yesterday"},
		{"limit too big", "limit=1000"},
	} {
		if status, _, body := b.do(t, "GET", "/v1/audit-events?"+c.query, b.viewKey, ""); status != 400 && status != 422 {
			t.Errorf("%s: %d %v, want 400 or 422", c.name, status, body)
		}
	}
	if status, _, _ := b.do(t, "GET", "/v1/audit-events", "", ""); status != 401 {
		t.Errorf("without a key: %d, want 401", status)
	}
}

func slicesOverlap(a, b []int64) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// Postgres refuses to change or remove audit rows, as the tables' owner and
// as the application role the API runs as.
func TestAuditEventsAppendOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if status, _, _ := b.do(t, "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/a"}`); status != 201 {
		t.Fatalf("create webhook: %d", status)
	}
	ctx := context.Background()
	var id int64
	var action string
	if err := b.pool.QueryRow(ctx, `SELECT id, action FROM audit_events WHERE tenant_id = 'acme'`).Scan(&id, &action); err != nil {
		t.Fatal(err)
	}
	stmts := []string{
		`UPDATE audit_events SET action = 'tampered' WHERE id = $1`,
		`UPDATE audit_events SET after = NULL WHERE id = $1`,
		`DELETE FROM audit_events WHERE id = $1`,
		`TRUNCATE audit_events`,
	}
	for _, role := range []string{"owner", "exo_app"} {
		for _, stmt := range stmts {
			t.Run(role+" "+stmt, func(t *testing.T) {
				err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
					if role == "exo_app" {
						if _, err := tx.Exec(ctx, `SELECT set_config('exo.tenant_id', 'acme', true), set_config('role', 'exo_app', true)`); err != nil {
							t.Fatal(err)
						}
					}
					args := []any{id}
					if !strings.Contains(stmt, "$1") {
						args = nil
					}
					_, err := tx.Exec(ctx, stmt, args...)
					return err
				})
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "42501" {
					t.Fatalf("%s as %s: err = %v, want insufficient_privilege (42501)", stmt, role, err)
				}
			})
		}
	}
	var n int
	var got string
	if err := b.pool.QueryRow(ctx, `SELECT count(*), max(action) FROM audit_events WHERE id = $1`, id).Scan(&n, &got); err != nil {
		t.Fatal(err)
	}
	if n != 1 || got != action {
		t.Fatalf("audit row after the attempts: count %d action %q, want 1 %q", n, got, action)
	}
}
