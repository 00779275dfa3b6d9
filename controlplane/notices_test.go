package controlplane_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// putNotice stores a notice as the recorder would, and returns its id.
func (b *bundle) putNotice(t *testing.T, n store.Notice) string {
	t.Helper()
	err := store.New(b.pool, "").System(context.Background(), func(tx *store.Tx) error {
		fresh, err := tx.InsertNotice(context.Background(), &n, time.Now())
		if err == nil && !fresh {
			err = fmt.Errorf("notice %s not new", n.DedupKey)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n.ID
}

func (b *bundle) webhookID(t *testing.T, key string) string {
	t.Helper()
	return b.webhook(t, key, `{"name":"ops","target_url":"https://hooks.example.com/x"}`)["id"].(string)
}

func ids(items any) []string {
	var out []string
	list, _ := items.([]any)
	for _, it := range list {
		out = append(out, it.(map[string]any)["id"].(string))
	}
	return out
}

// A tenant lists its notices newest first, filtered and paged; an admin
// acknowledges one (once, audited); re-enabling a disabled rule resolves
// its notice; another tenant neither sees nor acknowledges them.
func TestNoticesAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ep := b.webhookID(t, b.adminKey)
	status, _, rule := b.do(t, "POST", "/v1/alert-rules", b.adminKey,
		`{"name":"ETL failures","event_type":"workflow.run.failed","webhook_endpoint_id":"`+ep+`","is_active":false}`)
	if status != http.StatusCreated {
		t.Fatalf("create rule: %d %v", status, rule)
	}
	ruleID := rule["id"].(string)
	disabled := b.putNotice(t, store.Notice{TenantID: "acme", Kind: store.NoticeRuleDisabled, DedupKey: "rule_disabled/" + ruleID + "/2",
		RuleID: ruleID, EndpointID: ep, Title: "rule disabled", Detail: map[string]any{"status_code": 410}})
	dead := b.putNotice(t, store.Notice{TenantID: "acme", Kind: store.NoticeDeadLetters, DedupKey: "dead_letters/" + ep + "/h",
		EndpointID: ep, Title: "dead letters", Count: 3})
	other := b.putNotice(t, store.Notice{TenantID: "globex", Kind: store.NoticeDeadLetters, DedupKey: "dead_letters/x/h",
		EndpointID: "whk_x", Title: "globex's"})

	status, _, list := b.do(t, "GET", "/v1/notices", b.viewKey, "")
	if got := ids(list["items"]); status != 200 || fmt.Sprint(got) != fmt.Sprint([]string{dead, disabled}) {
		t.Fatalf("list: %d %v, want [%s %s] (newest first, own only)", status, list, dead, disabled)
	}
	item := list["items"].([]any)[0].(map[string]any)
	if item["kind"] != "dead_letters" || item["count"] != float64(3) || item["rule_id"] != nil || item["endpoint_id"] != ep ||
		item["acknowledged_at"] != nil || item["resolved_at"] != nil {
		t.Errorf("dead_letters notice: %v", item)
	}
	status, _, page := b.do(t, "GET", "/v1/notices?limit=1", b.viewKey, "")
	cursor, _ := page["next_cursor"].(string)
	if status != 200 || fmt.Sprint(ids(page["items"])) != fmt.Sprint([]string{dead}) || cursor == "" {
		t.Fatalf("first page: %d %v", status, page)
	}
	if _, _, page = b.do(t, "GET", "/v1/notices?limit=1&cursor="+cursor, b.viewKey, ""); fmt.Sprint(ids(page["items"])) != fmt.Sprint([]string{disabled}) {
		t.Errorf("second page: %v", page)
	}
	if _, _, l := b.do(t, "GET", "/v1/notices?kind=rule_disabled", b.viewKey, ""); fmt.Sprint(ids(l["items"])) != fmt.Sprint([]string{disabled}) {
		t.Errorf("kind filter: %v", l)
	}

	// Acknowledge: admins only, once, audited.
	if status, _, _ := b.do(t, "POST", "/v1/notices/"+dead+"/acknowledge", b.viewKey, ""); status != http.StatusForbidden {
		t.Errorf("viewer acknowledged: %d", status)
	}
	status, _, acked := b.do(t, "POST", "/v1/notices/"+dead+"/acknowledge", b.adminKey, "")
	if status != 200 || acked["acknowledged_at"] == nil || acked["acknowledged_by"] == nil {
		t.Fatalf("acknowledge: %d %v", status, acked)
	}
	if status, _, again := b.do(t, "POST", "/v1/notices/"+dead+"/acknowledge", b.adminKey, ""); status != 200 || again["acknowledged_at"] != acked["acknowledged_at"] {
		t.Errorf("acknowledged again: %d %v", status, again)
	}
	if a := b.audits(t, dead); len(a) != 1 || a[0].Action != "notice.acknowledge" || a[0].After["acknowledged_at"] == nil {
		t.Errorf("audit of the acknowledgement: %+v", a)
	}
	if _, _, l := b.do(t, "GET", "/v1/notices?acknowledged=false", b.viewKey, ""); fmt.Sprint(ids(l["items"])) != fmt.Sprint([]string{disabled}) {
		t.Errorf("unacknowledged: %v", l)
	}

	// Another tenant: not found, not listed, not acknowledged.
	if status, _, _ := b.do(t, "POST", "/v1/notices/"+disabled+"/acknowledge", b.otherKey, ""); status != http.StatusNotFound {
		t.Errorf("globex acknowledged acme's notice: %d", status)
	}
	if _, _, l := b.do(t, "GET", "/v1/notices", b.otherKey, ""); fmt.Sprint(ids(l["items"])) != fmt.Sprint([]string{other}) {
		t.Errorf("globex's list: %v", l)
	}
	if status, _, _ := b.do(t, "POST", "/v1/notices/"+other+"/acknowledge", b.adminKey, ""); status != http.StatusNotFound {
		t.Errorf("acme acknowledged globex's notice: %d", status)
	}
	var ackedOther *time.Time
	if err := b.pool.QueryRow(context.Background(), `SELECT acknowledged_at FROM notices WHERE id = $1`, other).Scan(&ackedOther); err != nil || ackedOther != nil {
		t.Errorf("globex's notice acknowledged by acme: %v %v", ackedOther, err)
	}

	// Re-enabling the rule resolves its notice.
	if status, _, r := b.do(t, "PATCH", "/v1/alert-rules/"+ruleID, b.adminKey, `{"is_active":true}`); status != 200 {
		t.Fatalf("re-enable: %d %v", status, r)
	}
	if _, _, l := b.do(t, "GET", "/v1/notices?state=resolved", b.viewKey, ""); fmt.Sprint(ids(l["items"])) != fmt.Sprint([]string{disabled}) {
		t.Errorf("resolved after re-enable: %v", l)
	}
	if _, _, l := b.do(t, "GET", "/v1/notices?state=open", b.viewKey, ""); fmt.Sprint(ids(l["items"])) != fmt.Sprint([]string{dead}) {
		t.Errorf("open after re-enable: %v", l)
	}
}

// The notice endpoint must be the tenant's own active endpoint; a change
// is audited and versioned.
func TestNoticeSettings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ep := b.webhookID(t, b.adminKey)
	foreign := b.webhookID(t, b.otherKey)
	status, _, got := b.do(t, "GET", "/v1/notice-settings", b.viewKey, "")
	if status != 200 || got["webhook_endpoint_id"] != nil || len(got["kinds"].([]any)) != 4 || got["version"] != float64(0) {
		t.Fatalf("default settings: %d %v", status, got)
	}
	for _, body := range []string{
		`{"webhook_endpoint_id":"` + foreign + `"}`,
		`{"webhook_endpoint_id":"whk_nope"}`,
		`{"webhook_endpoint_id":"` + ep + `","kinds":["rule_disabled","bogus"]}`,
	} {
		if status, _, p := b.do(t, "PUT", "/v1/notice-settings", b.adminKey, body); status != http.StatusUnprocessableEntity {
			t.Errorf("PUT %s: %d %v, want 422", body, status, p)
		}
	}
	if status, _, _ := b.do(t, "PUT", "/v1/notice-settings", b.viewKey, `{"webhook_endpoint_id":"`+ep+`"}`); status != http.StatusForbidden {
		t.Errorf("viewer changed the settings: %d", status)
	}
	status, _, got = b.do(t, "PUT", "/v1/notice-settings", b.adminKey, `{"webhook_endpoint_id":"`+ep+`","kinds":["rule_disabled"]}`)
	if status != 200 || got["webhook_endpoint_id"] != ep || fmt.Sprint(got["kinds"]) != "[rule_disabled]" || got["version"] != float64(1) {
		t.Fatalf("put: %d %v", status, got)
	}
	if a := b.audits(t, "acme"); len(a) != 1 || a[0].Action != "notice_settings.update" || a[0].After["webhook_endpoint_id"] != ep {
		t.Errorf("audit: %+v", a)
	}
	if _, _, g := b.do(t, "GET", "/v1/notice-settings", b.otherKey, ""); g["webhook_endpoint_id"] != nil {
		t.Errorf("globex sees acme's settings: %v", g)
	}
	// A disabled endpoint is refused; null turns delivery off.
	if status, _, p := b.do(t, "PATCH", "/v1/webhooks/"+ep, b.adminKey, `{"is_active":false}`); status != 200 {
		t.Fatalf("disable endpoint: %d %v", status, p)
	}
	if status, _, _ := b.do(t, "PUT", "/v1/notice-settings", b.adminKey, `{"webhook_endpoint_id":"`+ep+`"}`); status != http.StatusUnprocessableEntity {
		t.Errorf("disabled endpoint accepted: %d", status)
	}
	status, _, got = b.do(t, "PUT", "/v1/notice-settings", b.adminKey, `{"webhook_endpoint_id":null}`)
	if status != 200 || got["webhook_endpoint_id"] != nil || got["version"] != float64(2) || len(got["kinds"].([]any)) != 4 {
		t.Errorf("put null: %d %v", status, got)
	}
}
