package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// doH is bundle.do with extra request headers, sending a merge patch.
func (b *bundle) doH(t *testing.T, method, path, key, body string, hdr map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	return b.request(t, method, path, key, body, "application/merge-patch+json", hdr)
}

// request calls the API and decodes the JSON answer.
func (b *bundle) request(t *testing.T, method, path, key, body, contentType string, hdr map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, b.srv.URL+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, resp.Header, out
}

type auditRow struct {
	Actor, Action, ResourceType, ResourceID string
	Before, After                           map[string]any
}

// audits returns the audit rows of a resource, oldest first.
func (b *bundle) audits(t *testing.T, resourceID string) []auditRow {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT actor, action, resource_type, resource_id, before, after
		FROM audit_events WHERE resource_id = $1 ORDER BY id`, resourceID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var a auditRow
		var before, after []byte
		if err := rows.Scan(&a.Actor, &a.Action, &a.ResourceType, &a.ResourceID, &before, &after); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(before, &a.Before)
		_ = json.Unmarshal(after, &a.After)
		out = append(out, a)
	}
	return out
}

// lastSnapshot returns the newest outbox value for key on a topic ending in
// suffix; nil for a tombstone.
func (b *bundle) lastSnapshot(t *testing.T, suffix, key string) ([]byte, bool) {
	t.Helper()
	var value []byte
	err := b.pool.QueryRow(context.Background(), `SELECT value FROM outbox WHERE topic LIKE '%' || $1 AND key = $2 ORDER BY id DESC LIMIT 1`,
		suffix, key).Scan(&value)
	if err != nil {
		return nil, false
	}
	return value, true
}

func (b *bundle) webhook(t *testing.T, key, body string) map[string]any {
	t.Helper()
	status, _, wh := b.do(t, "POST", "/v1/webhooks", key, body)
	if status != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", status, wh)
	}
	return wh
}

func (b *bundle) rule(t *testing.T, key, body string) map[string]any {
	t.Helper()
	status, _, r := b.do(t, "POST", "/v1/alert-rules", key, body)
	if status != http.StatusCreated {
		t.Fatalf("create rule: %d %v", status, r)
	}
	return r
}

// A merge patch changes what it names and nothing else, re-seals changed
// header values, bumps the version and ETag, and leaves one audit row (with
// masked header values) and one new snapshot.
func TestPatchWebhook(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a","headers":{"X-Team":"data","X-Old":"gone-soon"}}`)
	id := wh["id"].(string)
	_, h, _ := b.do(t, "GET", "/v1/webhooks/"+id, b.viewKey, "")
	if h.Get("ETag") != `"1"` {
		t.Fatalf("ETag of a new endpoint = %q, want \"1\"", h.Get("ETag"))
	}
	status, h, got := b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey,
		`{"name":"ops-renamed","headers":{"X-Old":null,"X-New":"s3cr3t-header-value"}}`, map[string]string{"If-Match": `"1"`})
	if status != 200 {
		t.Fatalf("patch: %d %v", status, got)
	}
	if got["name"] != "ops-renamed" || got["target_url"] != "https://hooks.example.com/a" || got["version"] != float64(2) || h.Get("ETag") != `"2"` {
		t.Fatalf("patched endpoint: %v (ETag %s)", got, h.Get("ETag"))
	}
	headers := got["headers"].(map[string]any)
	if len(headers) != 2 || headers["X-Team"] != "********" || headers["X-New"] != "********" {
		t.Errorf("headers after patch = %v, want X-Team and X-New, masked", headers)
	}
	snap, ok := b.lastSnapshot(t, "webhook-endpoints", "acme/"+id)
	if !ok {
		t.Fatal("no outbox snapshot")
	}
	var rec schemas.EndpointRecord
	if err := json.Unmarshal(snap, &rec); err != nil || schemas.Validate(schemas.KindEndpoint, snap) != nil {
		t.Fatalf("snapshot %s: %v", snap, err)
	}
	if rec.Version != 2 || rec.Name != "ops-renamed" {
		t.Errorf("snapshot version %d name %q", rec.Version, rec.Name)
	}
	v, err := b.ring.Open(rec.Headers["X-New"], "acme/"+id+"/X-New")
	if err != nil || v != "s3cr3t-header-value" {
		t.Errorf("X-New opens to %q, %v", v, err)
	}
	if strings.Contains(string(snap), "s3cr3t-header-value") {
		t.Error("snapshot holds a header value in clear")
	}
	audits := b.audits(t, id)
	if len(audits) != 2 || audits[1].Action != "webhook.update" || !strings.HasPrefix(audits[1].Actor, "key:") ||
		audits[1].Before["name"] != "ops" || audits[1].After["name"] != "ops-renamed" {
		t.Fatalf("audit rows = %+v", audits)
	}
	raw, _ := json.Marshal(audits)
	if strings.Contains(string(raw), "s3cr3t-header-value") || strings.Contains(string(raw), "gone-soon") {
		t.Error("audit row holds a header value in clear")
	}

	// A patch that changes nothing writes nothing.
	status, h, got = b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey, `{"name":"ops-renamed"}`, nil)
	if status != 200 || got["version"] != float64(2) || h.Get("ETag") != `"2"` || len(b.audits(t, id)) != 2 {
		t.Errorf("no-op patch: %d version %v, %d audit rows", status, got["version"], len(b.audits(t, id)))
	}
	// Deactivate and reactivate.
	status, _, got = b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey, `{"is_active":false}`, nil)
	if status != 200 || got["is_active"] != false {
		t.Fatalf("deactivate: %d %v", status, got)
	}
	snap, _ = b.lastSnapshot(t, "webhook-endpoints", "acme/"+id)
	if err := json.Unmarshal(snap, &rec); err != nil || rec.IsActive {
		t.Errorf("snapshot after deactivation: is_active %v", rec.IsActive)
	}
	// The viewer cannot patch; another tenant gets 404 and changes nothing.
	if status, _, _ := b.doH(t, "PATCH", "/v1/webhooks/"+id, b.viewKey, `{"name":"x"}`, nil); status != 403 {
		t.Errorf("viewer patch = %d, want 403", status)
	}
	if status, _, _ := b.doH(t, "PATCH", "/v1/webhooks/"+id, b.otherKey, `{"name":"x"}`, nil); status != 404 {
		t.Errorf("other tenant's patch = %d, want 404", status)
	}
	_, _, got = b.do(t, "GET", "/v1/webhooks/"+id, b.adminKey, "")
	if got["name"] != "ops-renamed" {
		t.Errorf("name after refused patches = %v", got["name"])
	}
}

// Two updates that read the same version: one wins, the other is told the
// resource changed (412) and changes nothing.
func TestConcurrentPatchesWithSameETag(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	rule := b.rule(t, b.adminKey, `{"name":"r","event_type":"workflow.run.failed","webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	for _, path := range []string{"/v1/webhooks/" + wh["id"].(string), "/v1/alert-rules/" + rule["id"].(string)} {
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		names := []string{"first", "second"}
		for i := range 2 {
			wg.Go(func() {
				statuses[i], _, _ = b.doH(t, "PATCH", path, b.adminKey, `{"name":"`+names[i]+`"}`, map[string]string{"If-Match": `"1"`})
			})
		}
		wg.Wait()
		won := -1
		switch {
		case statuses[0] == 200 && statuses[1] == 412:
			won = 0
		case statuses[0] == 412 && statuses[1] == 200:
			won = 1
		default:
			t.Fatalf("%s: statuses %v, want one 200 and one 412", path, statuses)
		}
		_, h, got := b.do(t, "GET", path, b.adminKey, "")
		if got["name"] != names[won] || got["version"] != float64(2) || h.Get("ETag") != `"2"` {
			t.Errorf("%s after the race: %v, want the winner's name at version 2", path, got)
		}
		// The loser learns the current ETag and succeeds with it.
		// If-Match compares strongly: a weak tag never matches.
		if status, _, _ := b.doH(t, "PATCH", path, b.adminKey, `{"name":"third"}`, map[string]string{"If-Match": `W/"2"`}); status != 412 {
			t.Errorf("weak If-Match: %d, want 412", status)
		}
		status, _, problem := b.doH(t, "PATCH", path, b.adminKey, `{"name":"third"}`, map[string]string{"If-Match": `"1"`})
		if status != 412 || !strings.Contains(problem["detail"].(string), `"2"`) {
			t.Errorf("stale If-Match: %d %v", status, problem)
		}
		if status, _, _ := b.doH(t, "PATCH", path, b.adminKey, `{"name":"third"}`, map[string]string{"If-Match": `"2"`}); status != 200 {
			t.Errorf("current If-Match: %d", status)
		}
	}
}

// A rule patch is validated as a create would be, null resets a member, and
// changing the type to a duration rule needs a threshold.
func TestPatchRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	wh2 := b.webhook(t, b.adminKey, `{"name":"ops2","target_url":"https://hooks.example.com/b"}`)
	other := b.webhook(t, b.otherKey, `{"name":"theirs","target_url":"https://hooks.example.com/c"}`)
	r := b.rule(t, b.adminKey, `{"name":"r","event_type":"workflow.run.failed","condition":"labels.env == \"prod\"","cooldown":"10m","rate_limit_per_minute":3,"webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	path := "/v1/alert-rules/" + r["id"].(string)

	status, _, got := b.doH(t, "PATCH", path, b.adminKey, `{"condition":"run.attempt > 2","cooldown":null,"severity":"critical"}`, nil)
	if status != 200 {
		t.Fatalf("patch: %d %v", status, got)
	}
	if got["condition"] != "run.attempt > 2" || got["cooldown_ms"] != nil || got["severity"] != "critical" ||
		got["rate_limit_per_minute"] != float64(3) || got["name"] != "r" {
		t.Errorf("patched rule: %v", got)
	}
	snap, _ := b.lastSnapshot(t, "alert-rules", "acme/"+r["id"].(string))
	var rec schemas.RuleRecord
	if err := json.Unmarshal(snap, &rec); err != nil || rec.Condition != "run.attempt > 2" || rec.CooldownMS != 0 || rec.Severity != "critical" || rec.Version != 2 {
		t.Errorf("snapshot after patch: %s", snap)
	}

	bad := []struct {
		name, body, location string
	}{
		{"bad condition", `{"condition":"workflow.nam == 1"}`, "body.condition"},
		{"duration type without threshold", `{"event_type":"workflow.run.duration_exceeded"}`, "body.duration_threshold"},
		{"threshold on a failure rule", `{"duration_threshold":"5m"}`, "body.duration_threshold"},
		{"unknown field", `{"colour":"red"}`, "colour"},
		{"wrong type", `{"max_attempts":"many"}`, "max_attempts"},
		{"required member removed", `{"name":null}`, "name"},
		{"other tenant's endpoint", `{"webhook_endpoint_id":"` + other["id"].(string) + `"}`, "body.webhook_endpoint_id"},
	}
	for _, c := range bad {
		status, h, problem := b.doH(t, "PATCH", path, b.adminKey, c.body, nil)
		raw, _ := json.Marshal(problem["errors"])
		if status != 422 || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") || !strings.Contains(string(raw), c.location) {
			t.Errorf("%s: %d %v, want 422 naming %s", c.name, status, problem, c.location)
		}
	}
	status, _, got = b.doH(t, "PATCH", path, b.adminKey, `{"event_type":"workflow.run.duration_exceeded","duration_threshold":"30m","webhook_endpoint_id":"`+wh2["id"].(string)+`"}`, nil)
	if status != 200 || got["duration_threshold_ms"] != float64(1800000) || got["webhook_endpoint_id"] != wh2["id"] || got["version"] != float64(3) {
		t.Fatalf("to a duration rule: %d %v", status, got)
	}
	if n := len(b.audits(t, r["id"].(string))); n != 3 {
		t.Errorf("audit rows = %d, want 3 (create and two updates; refused patches none)", n)
	}
}

// Deleting an endpoint hides it, tombstones its snapshot, deactivates its
// rules (saying which), and keeps the rows for history and audit.
func TestDeleteWebhookDeactivatesItsRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	id := wh["id"].(string)
	r1 := b.rule(t, b.adminKey, `{"name":"r1","event_type":"workflow.run.failed","webhook_endpoint_id":"`+id+`"}`)
	r2 := b.rule(t, b.adminKey, `{"name":"r2","event_type":"workflow.run.succeeded","webhook_endpoint_id":"`+id+`"}`)
	if status, _, _ := b.doH(t, "DELETE", "/v1/webhooks/"+id, b.adminKey, "", map[string]string{"If-Match": `"7"`}); status != 412 {
		t.Errorf("delete with a stale ETag = %d, want 412", status)
	}
	if status, _, _ := b.doH(t, "DELETE", "/v1/webhooks/"+id, b.otherKey, "", nil); status != 404 {
		t.Errorf("other tenant's delete = %d, want 404", status)
	}
	status, _, got := b.doH(t, "DELETE", "/v1/webhooks/"+id, b.adminKey, "", nil)
	if status != 200 || got["deleted"] != true {
		t.Fatalf("delete: %d %v", status, got)
	}
	deactivated, _ := got["deactivated_rules"].([]any)
	if len(deactivated) != 2 {
		t.Errorf("deactivated_rules = %v, want both rules", got["deactivated_rules"])
	}
	if status, _, _ := b.do(t, "GET", "/v1/webhooks/"+id, b.adminKey, ""); status != 404 {
		t.Errorf("GET after delete = %d, want 404", status)
	}
	if status, _, _ := b.doH(t, "DELETE", "/v1/webhooks/"+id, b.adminKey, "", nil); status != 404 {
		t.Errorf("second delete = %d, want 404", status)
	}
	_, _, list := b.do(t, "GET", "/v1/webhooks", b.adminKey, "")
	if items := list["items"].([]any); len(items) != 0 {
		t.Errorf("list after delete shows %d endpoints", len(items))
	}
	if snap, ok := b.lastSnapshot(t, "webhook-endpoints", "acme/"+id); !ok || snap != nil {
		t.Errorf("last endpoint outbox row = %q, want a tombstone", snap)
	}
	for _, r := range []map[string]any{r1, r2} {
		_, _, got := b.do(t, "GET", "/v1/alert-rules/"+r["id"].(string), b.adminKey, "")
		if got["is_active"] != false || !strings.Contains(got["disabled_reason"].(string), id) {
			t.Errorf("rule after its endpoint's delete: %v", got)
		}
		snap, _ := b.lastSnapshot(t, "alert-rules", "acme/"+r["id"].(string))
		var rec schemas.RuleRecord
		if err := json.Unmarshal(snap, &rec); err != nil || rec.IsActive {
			t.Errorf("rule snapshot after its endpoint's delete: %s", snap)
		}
		if a := b.audits(t, r["id"].(string)); len(a) != 2 || a[1].Action != "alert_rule.disable" {
			t.Errorf("rule audit rows: %+v", a)
		}
	}
	if a := b.audits(t, id); len(a) != 2 || a[1].Action != "webhook.delete" || a[1].Before["name"] != "ops" || a[1].After != nil {
		t.Errorf("endpoint audit rows: %+v", a)
	}
	var deletedAt *time.Time
	if err := b.pool.QueryRow(context.Background(), `SELECT deleted_at FROM webhook_endpoints WHERE id = $1`, id).Scan(&deletedAt); err != nil || deletedAt == nil {
		t.Errorf("the row is kept with deleted_at set: %v %v", deletedAt, err)
	}
	// A rule cannot be pointed at, or reactivated on, the deleted endpoint.
	if status, _, problem := b.doH(t, "PATCH", "/v1/alert-rules/"+r1["id"].(string), b.adminKey, `{"is_active":true}`, nil); status != 422 {
		t.Errorf("reactivating a rule of a deleted endpoint = %d %v, want 422", status, problem)
	}
	other := b.webhook(t, b.adminKey, `{"name":"new home","target_url":"https://hooks.example.com/new"}`)
	if status, _, got := b.doH(t, "PATCH", "/v1/alert-rules/"+r1["id"].(string), b.adminKey, `{"is_active":true,"webhook_endpoint_id":"`+other["id"].(string)+`"}`, nil); status != 200 || got["is_active"] != true || got["disabled_reason"] != nil {
		t.Errorf("moving the rule to a live endpoint and reactivating it: %d %v", status, got)
	}
	if status, _, _ := b.do(t, "POST", "/v1/alert-rules", b.adminKey, `{"name":"r3","event_type":"workflow.run.failed","webhook_endpoint_id":"`+id+`"}`); status != 422 {
		t.Errorf("rule on a deleted endpoint = %d, want 422", status)
	}
}

func TestDeleteRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	r := b.rule(t, b.adminKey, `{"name":"r1","event_type":"workflow.run.failed","webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	id := r["id"].(string)
	if status, _, _ := b.doH(t, "DELETE", "/v1/alert-rules/"+id, b.viewKey, "", nil); status != 403 {
		t.Errorf("viewer delete = %d, want 403", status)
	}
	if status, _, got := b.doH(t, "DELETE", "/v1/alert-rules/"+id, b.adminKey, "", map[string]string{"If-Match": `"1"`}); status != 200 || got["deleted"] != true {
		t.Fatalf("delete: %d %v", status, got)
	}
	if status, _, _ := b.do(t, "GET", "/v1/alert-rules/"+id, b.adminKey, ""); status != 404 {
		t.Errorf("GET after delete = %d", status)
	}
	if snap, ok := b.lastSnapshot(t, "alert-rules", "acme/"+id); !ok || snap != nil {
		t.Errorf("last rule outbox row = %q, want a tombstone", snap)
	}
	if a := b.audits(t, id); len(a) != 2 || a[1].Action != "alert_rule.delete" {
		t.Errorf("audit rows: %+v", a)
	}
}

// Rotation shows the new secret once, keeps the old one signing for the
// grace period (in the snapshot, sealed), and pagerduty needs a new key.
func TestRotateSecret(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	id, oldSecret := wh["id"].(string), wh["secret"].(string)
	status, _, got := b.do(t, "POST", "/v1/webhooks/"+id+"/rotate-secret", b.adminKey, `{"grace_period":"2h"}`)
	if status != 200 {
		t.Fatalf("rotate: %d %v", status, got)
	}
	newSecret, _ := got["secret"].(string)
	if !strings.HasPrefix(newSecret, "whsec_") || newSecret == oldSecret || got["version"] != float64(2) {
		t.Fatalf("rotate answer: %v", got)
	}
	_, _, after := b.do(t, "GET", "/v1/webhooks/"+id, b.adminKey, "")
	if after["secret"] != nil || !strings.HasSuffix(newSecret, strings.TrimPrefix(after["secret_hint"].(string), "…")) {
		t.Errorf("GET after rotation: %v", after)
	}
	snap, _ := b.lastSnapshot(t, "webhook-endpoints", "acme/"+id)
	var rec schemas.EndpointRecord
	if err := json.Unmarshal(snap, &rec); err != nil || schemas.Validate(schemas.KindEndpoint, snap) != nil {
		t.Fatalf("snapshot: %s %v", snap, err)
	}
	cur, err1 := b.ring.Open(rec.Secret, "acme/"+id)
	if err1 != nil || cur != newSecret || rec.PreviousSecret == nil || rec.PreviousSecretExpiresAt == nil {
		t.Fatalf("snapshot after rotation: current opens %v, previous %v", err1, rec.PreviousSecret)
	}
	prev, err := b.ring.Open(*rec.PreviousSecret, "acme/"+id)
	if err != nil || prev != oldSecret {
		t.Errorf("previous secret opens to the old one: %v", err)
	}
	if d := time.Until(*rec.PreviousSecretExpiresAt); d < 110*time.Minute || d > 2*time.Hour {
		t.Errorf("previous secret expires in %v, want about 2h", d)
	}
	if strings.Contains(string(snap), newSecret) || strings.Contains(string(snap), oldSecret) {
		t.Error("snapshot holds a secret in clear")
	}
	a := b.audits(t, id)
	raw, _ := json.Marshal(a)
	if len(a) != 2 || a[1].Action != "webhook.rotate_secret" || strings.Contains(string(raw), newSecret) || strings.Contains(string(raw), oldSecret) {
		t.Errorf("audit rows: %s", raw)
	}
	// Without a body: a generated secret and the default grace period of 24h.
	status, _, got = b.do(t, "POST", "/v1/webhooks/"+id+"/rotate-secret", b.adminKey, "")
	snap, _ = b.lastSnapshot(t, "webhook-endpoints", "acme/"+id)
	rec = schemas.EndpointRecord{}
	if err := json.Unmarshal(snap, &rec); status != 200 || err != nil || rec.PreviousSecretExpiresAt == nil || time.Until(*rec.PreviousSecretExpiresAt) < 23*time.Hour {
		t.Errorf("rotation without a body: %d %v, previous secret until %v", status, got, rec.PreviousSecretExpiresAt)
	}
	// No grace: the old secret stops signing at once.
	status, _, _ = b.do(t, "POST", "/v1/webhooks/"+id+"/rotate-secret", b.adminKey, `{"grace_period":"0s"}`)
	snap, _ = b.lastSnapshot(t, "webhook-endpoints", "acme/"+id)
	rec = schemas.EndpointRecord{}
	if err := json.Unmarshal(snap, &rec); status != 200 || err != nil || rec.PreviousSecret != nil {
		t.Errorf("rotation without grace: %d, previous secret %v", status, rec.PreviousSecret)
	}
	for _, c := range []struct{ key, body string }{{b.viewKey, `{}`}, {b.otherKey, `{}`}} {
		if status, _, _ := b.do(t, "POST", "/v1/webhooks/"+id+"/rotate-secret", c.key, c.body); status != 403 && status != 404 {
			t.Errorf("rotation by a viewer or another tenant = %d", status)
		}
	}
	pd := b.webhook(t, b.adminKey, `{"name":"pd","kind":"pagerduty","target_url":"https://events.pagerduty.com/v2/enqueue","secret":"R0UTINGKEY0000000000000000000001"}`)
	if status, _, _ := b.do(t, "POST", "/v1/webhooks/"+pd["id"].(string)+"/rotate-secret", b.adminKey, `{}`); status != 422 {
		t.Errorf("pagerduty rotation without a routing key = %d, want 422", status)
	}
	status, _, got = b.do(t, "POST", "/v1/webhooks/"+pd["id"].(string)+"/rotate-secret", b.adminKey, `{"secret":"R0UTINGKEY0000000000000000000002"}`)
	if status != 200 || got["secret"] != "R0UTINGKEY0000000000000000000002" {
		t.Errorf("pagerduty rotation: %d %v", status, got)
	}
}

// Lists filter by activity, type and endpoint, and the next link keeps the
// filters.
func TestListFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.webhook(t, b.adminKey, `{"name":"a","target_url":"https://hooks.example.com/a"}`)
	c := b.webhook(t, b.adminKey, `{"name":"c","target_url":"https://hooks.example.com/c","is_active":false}`)
	for i := range 5 {
		typ := "workflow.run.failed"
		if i%2 == 1 {
			typ = "workflow.run.succeeded"
		}
		b.rule(t, b.adminKey, `{"name":"r","event_type":"`+typ+`","webhook_endpoint_id":"`+a["id"].(string)+`"}`)
	}
	b.rule(t, b.adminKey, `{"name":"r","event_type":"workflow.run.failed","is_active":false,"webhook_endpoint_id":"`+c["id"].(string)+`"}`)

	count := func(path string) int {
		t.Helper()
		n := 0
		for path != "" {
			status, h, got := b.do(t, "GET", path, b.viewKey, "")
			if status != 200 {
				t.Fatalf("GET %s: %d %v", path, status, got)
			}
			items, ok := got["items"].([]any)
			if !ok {
				t.Fatalf("GET %s: no items: %v", path, got)
			}
			n += len(items)
			path = ""
			for _, link := range h.Values("Link") {
				if strings.Contains(link, `rel="next"`) {
					path = strings.TrimPrefix(strings.Split(link, ">")[0], "<")
				}
			}
		}
		return n
	}
	for path, want := range map[string]int{
		"/v1/webhooks?is_active=true":                                           1,
		"/v1/webhooks?is_active=false":                                          1,
		"/v1/alert-rules?limit=1&event_type=workflow.run.failed":                4,
		"/v1/alert-rules?limit=1&event_type=workflow.run.failed&is_active=true": 3,
		"/v1/alert-rules?limit=2&webhook_endpoint_id=" + a["id"].(string):       5,
		"/v1/alert-rules?webhook_endpoint_id=" + c["id"].(string):               1,
	} {
		if got := count(path); got != want {
			t.Errorf("GET %s: %d items, want %d", path, got, want)
		}
	}
}

// Every answer carries a request id (the caller's X-Request-Id when sane,
// else a fresh one), and the audit row of the change records it.
func TestRequestIDReachesTheAuditTrail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	id := wh["id"].(string)
	for _, c := range []struct{ sent, want string }{
		{"deploy-42.step:7", "deploy-42.step:7"},
		{"bad id with spaces\u00e9", ""}, // replaced by a fresh one
	} {
		status, h, got := b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey, `{"name":"`+c.sent[:3]+`x"}`, map[string]string{"X-Request-Id": c.sent})
		if status != 200 {
			t.Fatalf("patch: %d %v", status, got)
		}
		rid := h.Get("X-Request-Id")
		if (c.want != "" && rid != c.want) || (c.want == "" && !strings.HasPrefix(rid, "req_")) {
			t.Errorf("X-Request-Id answered %q for %q", rid, c.sent)
		}
		var recorded string
		if err := b.pool.QueryRow(context.Background(), `SELECT request_id FROM audit_events WHERE resource_id = $1 ORDER BY id DESC LIMIT 1`, id).Scan(&recorded); err != nil || recorded != rid {
			t.Errorf("audit row request_id = %q, %v; want %q", recorded, err, rid)
		}
	}
}

// A credential in a target URL (a Slack incoming-webhook token, query
// values) is shown masked and kept sealed; an update that does not touch
// the URL keeps it, one that does reseals the new one.
func TestTargetURLCredentialMasked(t *testing.T) {
	t.Parallel()
	b := setup(t)
	raw := "https://hooks.slack.com/services/T0AAAA/B0BBBB/abcdefghijklmnopqrstWXYZ"
	wh := b.webhook(t, b.adminKey, `{"name":"slack","kind":"slack","target_url":"`+raw+`"}`)
	id := wh["id"].(string)
	if wh["target_url"] != "https://hooks.slack.com/services/T0AAAA/B0BBBB/****WXYZ" {
		t.Errorf("create shows target_url %v", wh["target_url"])
	}
	opens := func(want string) {
		t.Helper()
		snap, _ := b.lastSnapshot(t, "webhook-endpoints", "acme/"+id)
		var rec schemas.EndpointRecord
		if err := json.Unmarshal(snap, &rec); err != nil || schemas.Validate(schemas.KindEndpoint, snap) != nil || rec.TargetURLSealed == nil {
			t.Fatalf("snapshot %s: %v", snap, err)
		}
		got, err := b.ring.Open(*rec.TargetURLSealed, "acme/"+id+"/target_url")
		if err != nil || got != want {
			t.Errorf("sealed target opens to %q, %v; want %q", got, err, want)
		}
		if strings.Contains(string(snap), "abcdefghijklmnop") || strings.Contains(string(snap), "s3cr3t") {
			t.Errorf("snapshot shows the credential: %s", snap)
		}
	}
	opens(raw)
	if status, _, got := b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey, `{"name":"slack ops"}`, nil); status != 200 || got["target_url"] != wh["target_url"] {
		t.Fatalf("rename: %d %v", status, got)
	}
	opens(raw)
	next := "https://hooks.slack.com/services/T0AAAA/B0CCCC/zyxwvutsrqponmlkjihg1234"
	if status, _, got := b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey, `{"target_url":"`+next+`"}`, nil); status != 200 || got["target_url"] != "https://hooks.slack.com/services/T0AAAA/B0CCCC/****1234" {
		t.Fatalf("new URL: %d %v", status, got)
	}
	opens(next)
	q := b.webhook(t, b.adminKey, `{"name":"q","target_url":"https://hooks.example.com/in?token=s3cr3t&team=data"}`)
	if q["target_url"] != "https://hooks.example.com/in?team=****&token=****" {
		t.Errorf("query values not masked: %v", q["target_url"])
	}
	// A new token behind the same mask is a change all the same.
	qid := q["id"].(string)
	if status, _, got := b.doH(t, "PATCH", "/v1/webhooks/"+qid, b.adminKey, `{"target_url":"https://hooks.example.com/in?token=n3wt0ken&team=data"}`, nil); status != 200 || got["version"] != float64(2) {
		t.Fatalf("new query token: %d %v", status, got)
	}
	snap, _ := b.lastSnapshot(t, "webhook-endpoints", "acme/"+qid)
	var qrec schemas.EndpointRecord
	if err := json.Unmarshal(snap, &qrec); err != nil || qrec.TargetURLSealed == nil {
		t.Fatalf("snapshot %s: %v", snap, err)
	}
	if got, err := b.ring.Open(*qrec.TargetURLSealed, "acme/"+qid+"/target_url"); err != nil || got != "https://hooks.example.com/in?token=n3wt0ken&team=data" {
		t.Errorf("sealed URL after the new token: %q, %v", got, err)
	}
	// Known chat hosts carry their token in the path whatever the kind.
	discord := b.webhook(t, b.adminKey, `{"name":"d","target_url":"https://discord.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"}`)
	if shown := discord["target_url"].(string); strings.Contains(shown, "AbCdEfGhIjKlMnOp") || strings.Contains(shown, "123456789012345678") || !strings.HasPrefix(shown, "https://discord.com/api/webhooks/") {
		t.Errorf("a Discord webhook URL shown as %s", shown)
	}
	slackAsWebhook := b.webhook(t, b.adminKey, `{"name":"s","target_url":"https://hooks.slack.com/services/T0AAAA/B0BBBB/abcdefghijklmnopqrstWXYZ"}`)
	if slackAsWebhook["target_url"] != "https://hooks.slack.com/services/T0AAAA/B0BBBB/****WXYZ" {
		t.Errorf("a Slack URL of kind webhook shown as %v", slackAsWebhook["target_url"])
	}
	plain := b.webhook(t, b.adminKey, `{"name":"plain","target_url":"https://hooks.example.com/in"}`)
	snap, _ = b.lastSnapshot(t, "webhook-endpoints", "acme/"+plain["id"].(string))
	if plain["target_url"] != "https://hooks.example.com/in" || strings.Contains(string(snap), "target_url_sealed") {
		t.Errorf("a URL without a credential: shown %v, snapshot %s", plain["target_url"], snap)
	}
}

// A refused request never echoes a credential back in its problem: not a
// secret that is too long, not a header value of the wrong type, not a
// token in a URL that is too long or not allowed.
func TestProblemsDoNotEchoSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ok","target_url":"https://hooks.example.com/a"}`)
	const token = "T0PS3CRETTOKENVALUE"
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/webhooks", `{"name":"x","target_url":"https://e.com/","secret":"whsec_` + token + strings.Repeat("A", 200) + `"}`},
		{"POST", "/v1/webhooks", `{"name":"x","target_url":"https://hooks.slack.com/services/T/B/` + token + strings.Repeat("x", 2100) + `","kind":"slack"}`},
		{"POST", "/v1/webhooks", `{"name":"x","target_url":"http://127.0.0.1/services/T/B/` + token + `"}`},
		{"POST", "/v1/webhooks", `{"name":"x","target_url":"https://e.com/","headers":{"Authorization":["Bearer ` + token + `"]}}`},
		{"POST", "/v1/webhooks", `{"name":"x","target_url":"https://e.com/","headers":{"Authorization":"Bearer ` + token + "\\n" + `"}}`},
		{"POST", "/v1/webhooks/" + wh["id"].(string) + "/rotate-secret", `{"secret":"` + token + `"}`},
		{"PATCH", "/v1/webhooks/" + wh["id"].(string), `{"headers":{"X-Key":7},"colour":"` + token + `"}`},
		{"PATCH", "/v1/webhooks/" + wh["id"].(string), `{"target_url":"ftp://e.com/` + token + `"}`},
	} {
		status, _, problem := b.doH(t, c.method, c.path, b.adminKey, c.body, nil)
		raw, _ := json.Marshal(problem)
		if status < 400 || status >= 500 {
			t.Errorf("%s %s: %d, want a 4xx", c.method, c.path, status)
		}
		if strings.Contains(string(raw), token) {
			t.Errorf("%s %s answered %d with the token in the problem: %s", c.method, c.path, status, raw)
		}
	}
}

// The auth scheme is case-insensitive, and no answer may be cached (a
// create's answer holds the secret).
func TestAuthSchemeAndCaching(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req, _ := http.NewRequestWithContext(context.Background(), "POST", b.srv.URL+"/v1/webhooks",
		strings.NewReader(`{"name":"ops","target_url":"https://hooks.example.com/a"}`))
	req.Header.Set("Authorization", "bearer "+b.adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("create with a lower-case scheme: %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if status, _, _ := b.doH(t, "GET", "/v1/webhooks", "", "", map[string]string{"Authorization": "Basic " + b.adminKey}); status != 401 {
		t.Errorf("another scheme: %d, want 401", status)
	}
}

// A merge patch is checked before it touches the database: a body nested
// deeper than any create document (the #8 report: 54 KB, 9,000 levels,
// 45 s of CPU under the row lock) is refused at once, naming the body, even
// while another transaction holds the endpoint's row lock; and a patch that
// changes nothing answers without waiting for that lock.
func TestDeepPatchRefusedBeforeTheDatabase(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a","headers":{"X-Team":"data"}}`)
	id := wh["id"].(string)

	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT 1 FROM webhook_endpoints WHERE id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}

	deep := `{"name":` + strings.Repeat(`{"a":`, 9000) + `1` + strings.Repeat(`}`, 9000) + `}`
	type answer struct {
		status  int
		problem map[string]any
	}
	cases := []struct {
		name, body string
		status     int
	}{
		{"9000 levels", deep, 400},
		{"3 levels in headers", `{"headers":{"X-Team":{"a":"b"}}}`, 400},
		{"3 levels of arrays", `{"name":[[["a"]]]}`, 400},
		{"no change", `{"name":"ops","headers":{}}`, 200},
	}
	for _, c := range cases {
		done := make(chan answer, 1)
		go func() {
			status, _, problem := b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey, c.body, nil)
			done <- answer{status, problem}
		}()
		select {
		case a := <-done:
			if a.status != c.status {
				t.Errorf("%s: status %d, want %d: %v", c.name, a.status, c.status, a.problem)
			}
			if raw, _ := json.Marshal(a.problem["errors"]); c.status == 400 && !strings.Contains(string(raw), `"location":"body"`) {
				t.Errorf("%s: problem does not name the body: %v", c.name, a.problem)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no answer while another transaction holds the row lock: the patch waits for the lock", c.name)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// The endpoint is unchanged, and a real patch goes through.
	if status, _, got := b.do(t, "GET", "/v1/webhooks/"+id, b.adminKey, ""); status != 200 || got["version"] != float64(1) || got["name"] != "ops" {
		t.Fatalf("after refused patches: %d %v", status, got)
	}
	if status, _, got := b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey, `{"name":"ops2","headers":{"X-More":"x"}}`, map[string]string{"If-Match": `"1"`}); status != 200 || got["version"] != float64(2) {
		t.Fatalf("patch after the lock was released: %d %v", status, got)
	}
	// Rule patches get the same shape check.
	rule := b.rule(t, b.adminKey, `{"name":"r","event_type":"workflow.run.failed","webhook_endpoint_id":"`+id+`"}`)
	if status, _, problem := b.doH(t, "PATCH", "/v1/alert-rules/"+rule["id"].(string), b.adminKey, deep, nil); status != 400 {
		t.Errorf("deep rule patch: %d %v, want 400", status, problem)
	}
}

// Patches without If-Match that race are merged one after the other: each
// member any of them set survives (the write re-merges on a row that
// changed since it was read instead of overwriting it).
func TestConcurrentPatchesWithoutETagAllApply(t *testing.T) {
	t.Parallel()
	b := setup(t)
	wh := b.webhook(t, b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	id := wh["id"].(string)
	const n = 4
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			statuses[i], _, _ = b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey, fmt.Sprintf(`{"headers":{"X-H%d":"v"}}`, i), nil)
		})
	}
	wg.Wait()
	_, _, got := b.do(t, "GET", "/v1/webhooks/"+id, b.adminKey, "")
	headers, _ := got["headers"].(map[string]any)
	for i := range n {
		if statuses[i] != 200 {
			t.Errorf("patch %d: status %d", i, statuses[i])
		}
		if _, ok := headers[fmt.Sprintf("X-H%d", i)]; !ok {
			t.Errorf("header X-H%d of a successful patch is lost: %v", i, headers)
		}
	}
	if got["version"] != float64(1+n) || len(b.audits(t, id)) != 1+n {
		t.Errorf("version %v and %d audit rows, want %d and %d", got["version"], len(b.audits(t, id)), 1+n, 1+n)
	}
}

// An endpoint's own delivery rate round-trips through create, get, list
// and patch (null goes back to the operator's default), is in the audit
// trail, and reaches the dispatcher in the endpoint snapshot.
func TestEndpointRateLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	snapshotRate := func(id string) int {
		t.Helper()
		snap, ok := b.lastSnapshot(t, "webhook-endpoints", "acme/"+id)
		if !ok {
			t.Fatal("no endpoint snapshot")
		}
		if err := schemas.Validate(schemas.KindEndpoint, snap); err != nil {
			t.Fatalf("snapshot %s: %v", snap, err)
		}
		var rec schemas.EndpointRecord
		if err := json.Unmarshal(snap, &rec); err != nil {
			t.Fatal(err)
		}
		return rec.RateLimitPerSecond
	}

	plain := b.webhook(t, b.adminKey, `{"name":"default rate","target_url":"https://hooks.example.com/a"}`)
	if v, ok := plain["rate_limit_per_second"]; !ok || v != nil {
		t.Errorf("create without a rate: rate_limit_per_second = %v (present %v), want null", v, ok)
	}
	if r := snapshotRate(plain["id"].(string)); r != 0 {
		t.Errorf("snapshot of an endpoint with the default rate: %d, want 0 (absent)", r)
	}

	wh := b.webhook(t, b.adminKey, `{"name":"fast","target_url":"https://hooks.example.com/b","rate_limit_per_second":400}`)
	id := wh["id"].(string)
	if wh["rate_limit_per_second"] != float64(400) || snapshotRate(id) != 400 {
		t.Fatalf("create with a rate: %v, snapshot %d", wh["rate_limit_per_second"], snapshotRate(id))
	}
	if _, _, got := b.do(t, "GET", "/v1/webhooks/"+id, b.viewKey, ""); got["rate_limit_per_second"] != float64(400) {
		t.Errorf("get: rate_limit_per_second = %v", got["rate_limit_per_second"])
	}
	_, _, list := b.do(t, "GET", "/v1/webhooks", b.viewKey, "")
	for _, it := range list["items"].([]any) {
		item := it.(map[string]any)
		want := any(nil)
		if item["id"] == id {
			want = float64(400)
		}
		if item["rate_limit_per_second"] != want {
			t.Errorf("list: %s rate_limit_per_second = %v, want %v", item["id"], item["rate_limit_per_second"], want)
		}
	}

	status, _, got := b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey, `{"rate_limit_per_second":10000}`, nil)
	if status != 200 || got["rate_limit_per_second"] != float64(10000) || got["version"] != float64(2) || snapshotRate(id) != 10000 {
		t.Fatalf("patch the rate: %d %v, snapshot %d", status, got, snapshotRate(id))
	}
	audits := b.audits(t, id)
	if last := audits[len(audits)-1]; last.Before["rate_limit_per_second"] != float64(400) || last.After["rate_limit_per_second"] != float64(10000) {
		t.Errorf("audit of the rate change: before %v after %v", last.Before["rate_limit_per_second"], last.After["rate_limit_per_second"])
	}
	// A patch of something else keeps the rate.
	if _, _, got := b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey, `{"name":"renamed"}`, nil); got["rate_limit_per_second"] != float64(10000) {
		t.Errorf("rate after a rename: %v", got["rate_limit_per_second"])
	}
	status, _, got = b.doH(t, "PATCH", "/v1/webhooks/"+id, b.adminKey, `{"rate_limit_per_second":null}`, nil)
	if status != 200 || got["rate_limit_per_second"] != nil || snapshotRate(id) != 0 {
		t.Fatalf("reset the rate: %d %v, snapshot %d", status, got, snapshotRate(id))
	}
	var stored *int
	if err := b.pool.QueryRow(context.Background(), `SELECT rate_limit_per_second FROM webhook_endpoints WHERE id = $1`, id).Scan(&stored); err != nil || stored != nil {
		t.Errorf("stored rate after reset: %v, %v", stored, err)
	}
}
