package controlplane_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The dashboard (Settings → Alerts) driven in a real headless Chromium
// against a running control plane on a fresh database and fresh topics.

// mintKey creates an API key of tenant acme with role.
func (l *histEnv) mintKey(t *testing.T, role string) string {
	t.Helper()
	key := controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(context.Background(), l.pool, "acme", "dashboard test", role, key); err != nil {
		t.Fatal(err)
	}
	return key
}

func (l *histEnv) mustDo(t *testing.T, method, path, body string, want int) map[string]any {
	t.Helper()
	status, out := l.do(t, method, path, l.adminKey, body)
	if status != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, status, out, want)
	}
	return out
}

// The page is served with a policy that allows its one inline script by
// hash and nothing else, and its script never builds markup from strings.
func TestDashboardPageAndPolicy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resp, err := http.Get(b.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	_, rest, _ := strings.Cut(string(page), "<script>")
	script, _, ok := strings.Cut(rest, "</script>")
	if !ok || strings.Count(string(page), "<script") != 1 {
		t.Fatal("the page should hold exactly one inline script")
	}
	sum := sha256.Sum256([]byte(script))
	csp := resp.Header.Get("Content-Security-Policy")
	if want := "script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "';"; !strings.Contains(csp, want) {
		t.Errorf("CSP %q does not allow the script by its hash (%s)", csp, want)
	}
	for _, want := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage"} {
		if strings.Contains(script, sink) {
			t.Errorf("the dashboard script uses %s: build elements with textContent instead (and keep the key in sessionStorage)", sink)
		}
	}
	for _, ext := range []string{`src="http`, `href="http`, "@import", "url("} {
		if strings.Contains(string(page), ext) {
			t.Errorf("the page loads something from elsewhere (%s): it must be self-contained", ext)
		}
	}
}

// An admin creates, edits, deactivates and deletes endpoints and rules;
// the secret is shown once; a rotation shows the new one; problems name
// their field; a concurrent change is a 412 with a reload.
func TestDashboardManagesEndpointsAndRules(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	d := openDashboard(t, l.url, l.adminKey)

	// Create an endpoint: the secret is shown once, with a copy button.
	d.setValue("#wf-name", "ops")
	d.setValue("#wf-target", "https://hooks.example.com/x")
	d.setValue("#wf-headers", "X-Team: data")
	d.setValue("#wf-rate", "120")
	d.click("#webhook-submit")
	d.waitText("#webhook-note", "Created endpoint")
	if !d.visible("#secret-once") {
		t.Fatal("the new secret is not shown")
	}
	secret := d.text("#secret-value")
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret shown: %q", secret)
	}
	list := l.mustDo(t, "GET", "/v1/webhooks", "", 200)
	items := histItems(t, list)
	if len(items) != 1 {
		t.Fatalf("endpoints after create: %v", items)
	}
	endpoint := items[0]["id"].(string)
	hint := strings.TrimPrefix(items[0]["secret_hint"].(string), "…")
	if !strings.HasSuffix(secret, hint) || items[0]["headers"].(map[string]any)["X-Team"] == "data" {
		t.Errorf("shown secret %q does not end in the stored hint %q, or the header value is not masked: %v", secret, hint, items[0])
	}
	d.waitText(rowSel("webhooks", endpoint), "hooks.example.com")
	d.waitText(rowSel("webhooks", endpoint), "X-Team")
	d.waitText(rowSel("webhooks", endpoint), "at most 120/s")
	if items[0]["rate_limit_per_second"] != float64(120) {
		t.Errorf("rate limit set in the form: %v, want 120", items[0]["rate_limit_per_second"])
	}
	d.click("#copy-secret")
	d.waitFor(`document.getElementById("copy-status").textContent !== ""`, "copy feedback")
	d.click("#dismiss-secret")
	if d.visible("#secret-once") || d.text("#secret-value") != "" {
		t.Error("the secret stays on the page after it was dismissed")
	}

	// The duration threshold is offered only for duration_exceeded.
	d.choose("#rf-event", "workflow.run.duration_exceeded")
	if !d.visible("#rf-threshold") {
		t.Error("no threshold field for workflow.run.duration_exceeded")
	}
	d.waitText("#condition-help", "workflow.name")
	d.choose("#rf-event", "workflow.run.failed")
	if d.visible("#rf-threshold") {
		t.Error("threshold field shown for workflow.run.failed")
	}

	// A rule with a broken condition: the problem names the field and the
	// position; fixed, it is created.
	d.setValue("#rf-name", "ETL failures")
	d.choose("#rf-endpoint", endpoint)
	d.setValue("#rf-condition", `labels.env == `)
	d.click("#rule-submit")
	d.waitText("#rule-problem", "body.condition")
	d.waitText("#rule-problem", "column")
	d.waitText(`.field-error[data-field="condition"]`, "line 1")
	if got := eval[string](d, `document.getElementById("rf-condition").getAttribute("aria-invalid") || ""`); got != "true" {
		t.Errorf("condition field not marked invalid: %q", got)
	}
	if n := l.count(t, `SELECT count(*) FROM alert_rules`); n != 0 {
		t.Fatalf("a rule was stored despite the problem (%d)", n)
	}
	d.setValue("#rf-condition", `labels.env == "prod"`)
	d.click("#rule-submit")
	d.waitText("#rule-note", "Created rule")
	if got := d.text("#rule-problem"); got != "" || eval[int](d, `document.querySelectorAll(".field-error").length`) != 0 {
		t.Errorf("problem left on the page after the fix: %q", got)
	}
	rules := histItems(t, l.mustDo(t, "GET", "/v1/alert-rules", "", 200))
	if len(rules) != 1 || rules[0]["condition"] != `labels.env == "prod"` || rules[0]["webhook_endpoint_id"] != endpoint {
		t.Fatalf("rules after create: %v", rules)
	}
	rule := rules[0]["id"].(string)
	d.waitText(rowSel("rules", rule), `labels.env == "prod"`)

	// Edit: the new values are there after a reload (the key stays in the
	// tab's sessionStorage).
	d.click(rowSel("rules", rule) + " button.edit")
	d.waitText("#rule-form-title", "Edit rule")
	d.setValue("#rf-name", "ETL failures (prod)")
	d.setValue("#rf-rate", "5")
	d.click("#rule-submit")
	d.waitText("#rule-note", "Saved rule")
	d.do(chromedp.Reload())
	d.waitText(rowSel("rules", rule)+" .name", "ETL failures (prod)")
	d.waitText(rowSel("rules", rule), "5/min")
	if got := l.mustDo(t, "GET", "/v1/alert-rules/"+rule, "", 200); got["rate_limit_per_minute"] != float64(5) || got["condition"] != `labels.env == "prod"` {
		t.Errorf("rule after edit: %v", got)
	}

	// Someone else changes the rule while it is open: the save is a 412
	// with a reload, and the reloaded form saves.
	d.click(rowSel("rules", rule) + " button.edit")
	d.waitText("#rule-form-title", "version 2")
	l.mustDo(t, "PATCH", "/v1/alert-rules/"+rule, `{"description":"changed elsewhere"}`, 200)
	d.setValue("#rf-severity", "critical")
	d.click("#rule-submit")
	d.waitText("#rule-problem", "Changed by someone else — reload")
	if got := l.mustDo(t, "GET", "/v1/alert-rules/"+rule, "", 200); got["severity"] != "error" {
		t.Fatalf("a stale edit was applied: %v", got)
	}
	d.click("#rule-problem button.reload")
	d.waitText("#rule-form-title", "version 3")
	if got := eval[string](d, `document.getElementById("rf-description").value`); got != "changed elsewhere" {
		t.Errorf("reloaded form shows description %q", got)
	}
	d.setValue("#rf-severity", "critical")
	d.click("#rule-submit")
	d.waitText("#rule-note", "Saved rule")
	if got := l.mustDo(t, "GET", "/v1/alert-rules/"+rule, "", 200); got["severity"] != "critical" || got["description"] != "changed elsewhere" {
		t.Errorf("rule after the reloaded edit: %v", got)
	}

	// Deactivate and activate again.
	d.click(rowSel("rules", rule) + " button.toggle")
	d.waitText("#rule-note", "is now inactive")
	d.waitText(rowSel("rules", rule)+" button.toggle", "Activate")
	if got := l.mustDo(t, "GET", "/v1/alert-rules/"+rule, "", 200); got["is_active"] != false {
		t.Errorf("rule not deactivated: %v", got)
	}
	d.click(rowSel("rules", rule) + " button.toggle")
	d.waitText("#rule-note", "is now active")

	// Rotate the secret: the new one is shown once, with the grace period.
	d.click(rowSel("webhooks", endpoint) + " button.rotate")
	d.setValue("#rotate-grace", "1h")
	d.click("#rotate-submit")
	d.waitText("#secret-grace", "1h")
	rotated := d.text("#secret-value")
	if !strings.HasPrefix(rotated, "whsec_") || rotated == secret {
		t.Fatalf("rotated secret shown: %q (was %q)", rotated, secret)
	}
	d.waitText(rowSel("webhooks", endpoint)+" .secret-hint", rotated[len(rotated)-4:])
	d.click("#dismiss-secret")

	// Delete the endpoint: the page says which rules it deactivated.
	d.click(rowSel("webhooks", endpoint) + " button.delete")
	d.waitText("#webhook-panel", "ETL failures (prod)")
	d.click("#webhook-panel button.confirm-delete")
	d.waitText("#webhook-note", "Deactivated rules: ETL failures (prod)")
	d.waitGone(rowSel("webhooks", endpoint))
	d.waitText(rowSel("rules", rule)+" .disabled-reason", endpoint)

	// Delete the rule.
	d.click(rowSel("rules", rule) + " button.delete")
	d.click("#rule-panel button.confirm-delete")
	d.waitText("#rule-note", "Deleted rule")
	d.waitGone(rowSel("rules", rule))
	if status, _ := l.do(t, "GET", "/v1/alert-rules/"+rule, l.adminKey, ""); status != 404 {
		t.Errorf("deleted rule: GET %d, want 404", status)
	}

	// The audit trail shows the changes, newest first.
	d.waitText("#audit tr:first-child .action", "alert_rule.delete")
	d.waitText("#audit", "webhook.rotate_secret")
	if got := eval[string](d, `document.querySelector("#audit tr:last-child .action").textContent`); got != "webhook.create" {
		t.Errorf("oldest audit row shown last: %q, want webhook.create", got)
	}
}

// Names, descriptions and conditions full of markup are shown as text:
// no element is made from them and no script runs.
func TestDashboardShowsHostileDataAsText(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	hostile := `<img src=x onerror="window.__pwned=1">`
	wh := l.mustDo(t, "POST", "/v1/webhooks", fmt.Sprintf(`{"name":%s,"target_url":"https://hooks.example.com/x"}`, jsString(hostile)), 201)
	endpoint := wh["id"].(string)
	ruleName := `"><script>window.__pwned=2</script><img src=x onerror=window.__pwned=3>`
	rule := l.mustDo(t, "POST", "/v1/alert-rules", fmt.Sprintf(`{"name":%s,"description":%s,"event_type":"workflow.run.failed","condition":%s,"webhook_endpoint_id":%q}`,
		jsString(ruleName), jsString(hostile), jsString(`labels.env == "<img src=x onerror=window.__pwned=4>"`), endpoint), 201)["id"].(string)

	d := openDashboard(t, l.url, l.adminKey)
	d.waitText(rowSel("rules", rule), "window.__pwned=4")
	d.waitText("#audit", "__pwned")
	if got := d.text(rowSel("webhooks", endpoint) + " .name"); got != hostile {
		t.Errorf("endpoint name shown as %q, want the text %q", got, hostile)
	}
	if got := d.text(rowSel("rules", rule) + " .name"); got != ruleName {
		t.Errorf("rule name shown as %q, want the text %q", got, ruleName)
	}
	// A problem that echoes hostile input is text too.
	d.setValue("#wf-name", "x")
	d.setValue("#wf-target", "https://hooks.example.com/y")
	d.setValue("#wf-headers", `<img src=x onerror=window.__pwned=5>: v`)
	d.click("#webhook-submit")
	d.waitText("#webhook-problem", "body.headers.<img src=x onerror=window.__pwned=5>")
	d.setValue("#rf-name", "r")
	d.setValue("#rf-condition", `<img src=x onerror=window.__pwned=6>`)
	d.click("#rule-submit")
	d.waitText("#rule-problem", "body.condition")

	if n := eval[int](d, `document.querySelectorAll("body img, main script, [onerror]").length`); n != 0 {
		t.Errorf("%d elements made from API data", n)
	}
	if got := eval[string](d, `String(window.__pwned)`); got != "undefined" {
		t.Errorf("a script from API data ran: window.__pwned = %s", got)
	}
}

// A viewer key reads everything; the dashboard shows it read-only from the
// start (GET /v1/me), and a write that gets through anyway is refused with
// the 403 shown; the audit trail pages.
func TestDashboardViewerCannotWrite(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	for i := range 30 {
		l.mustDo(t, "POST", "/v1/webhooks", fmt.Sprintf(`{"name":"hook %02d","target_url":"https://hooks.example.com/%d"}`, i, i), 201)
	}
	d := openDashboard(t, l.url, l.mintKey(t, controlplane.RoleViewer))
	d.waitText("#key-status", "30 endpoints")
	d.waitText("#key-status", "viewer key")
	// Read-only before any write was tried.
	d.waitText("#readonly-banner", "read-only (role viewer)")
	if n := eval[int](d, `document.querySelectorAll("button.write:not(:disabled)").length`); n != 0 {
		t.Errorf("%d write buttons enabled for a viewer before any write", n)
	}

	// The audit trail: newest first, 25 a page, then "load more".
	d.waitFor(`document.querySelectorAll("#audit tr").length === 25`, "a first audit page of 25")
	if !d.visible("#audit-more") {
		t.Fatal("no load more with 30 audit rows")
	}
	first := eval[string](d, `document.querySelector("#audit tr:first-child").textContent`)
	if !strings.Contains(first, "hook 29") {
		t.Errorf("newest audit row is not the last change: %q", first)
	}
	d.click("#audit-more")
	d.waitFor(`document.querySelectorAll("#audit tr").length === 30`, "30 audit rows after load more")
	if d.visible("#audit-more") {
		t.Error("load more still offered on the last page")
	}
	if ids := eval[[]int](d, `[...document.querySelectorAll("#audit tr")].map(r => Number(r.dataset.id))`); len(ids) != 30 || ids[0] <= ids[29] {
		t.Errorf("audit ids not newest first: %v", ids)
	}

	// A stale page (the key was an admin's when it loaded) still cannot write.
	d.setValue("#wf-name", "mine")
	d.setValue("#wf-target", "https://hooks.example.com/mine")
	eval[bool](d, `(document.querySelector("#webhook-submit").disabled = false, true)`)
	d.click("#webhook-submit")
	d.waitText("#webhook-problem", "403")
	d.waitText("#webhook-problem", "read-only")
	d.waitText("#readonly-banner", "read-only")
	if n := eval[int](d, `document.querySelectorAll("button.write:not(:disabled)").length`); n != 0 {
		t.Errorf("%d write buttons still enabled for a viewer", n)
	}
	if n := eval[int](d, `document.querySelectorAll("#webhooks button.history:not(:disabled)").length`); n != 30 {
		t.Errorf("%d enabled history buttons for a viewer, want 30 (reading stays allowed)", n)
	}
	if n := l.count(t, `SELECT count(*) FROM webhook_endpoints`); n != 30 {
		t.Errorf("a viewer's create stored something: %d endpoints", n)
	}

	// A wrong key is said so, not swallowed.
	d.setValue("#key", "exo_not_a_real_key_000000000")
	d.click("#use-key")
	d.waitText("#key-problem", "401 Unauthorized: invalid or revoked API key")
}

// Delivery history per rule with every attempt, the dead letters with
// replay of one and of a time range, redelivery, and a test delivery
// followed to its result.
func TestDashboardDeliveriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	requireBrowser(t)
	l := startHistEnv(t, nil)
	endpoint, rule, _ := l.createRule(t, "https://hooks.example.com/x")
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	ok, okRaw := testenv.Delivery(t, "acme", rule, endpoint, t0)
	dead, deadRaw := testenv.Delivery(t, "acme", rule, endpoint, t0.Add(time.Second))
	// The history the recorder keeps of two alerts, one delivered on its
	// second attempt, one dead-lettered.
	l.record(t, func(ctx context.Context, tx *store.Tx) error {
		if err := tx.InsertAlerts(ctx, []store.Alert{{Record: ok, Raw: okRaw}, {Record: dead, Raw: deadRaw}}); err != nil {
			return err
		}
		if _, err := tx.InsertAttempts(ctx, []schemas.ResultRecord{
			testenv.Attempt(ok, 1, schemas.OutcomeRetry, 503, t0.Add(2*time.Second)),
			testenv.Attempt(ok, 2, schemas.OutcomeDelivered, 200, t0.Add(7*time.Second)),
			testenv.Attempt(dead, 1, schemas.OutcomeDead, 500, t0.Add(3*time.Second)),
		}); err != nil {
			return err
		}
		return tx.UpsertDeadLetters(ctx, []store.DeadLetter{{Record: dead, Raw: deadRaw, Attempts: 1,
			LastError: "http_status: HTTP 500", DeadAt: t0.Add(4 * time.Second)}})
	})
	if a, at, dl := l.count(t, `SELECT count(*) FROM alerts`), l.count(t, `SELECT count(*) FROM delivery_attempts`), l.count(t, `SELECT count(*) FROM dead_letters`); a != 2 || at != 3 || dl != 1 {
		t.Fatalf("history recorded: alerts=%d attempts=%d dead_letters=%d", a, at, dl)
	}

	d := openDashboard(t, l.url, l.adminKey)

	// The rule's history: each alert with its status and attempts.
	d.click(rowSel("rules", rule) + " button.history")
	d.waitText("#history-title", "ETL failures")
	d.waitText(rowSel("history", ok.AlertID), "delivered")
	d.waitText(rowSel("history", ok.AlertID), "#1 · retry · HTTP 503 · 12 ms · http_status")
	d.waitText(rowSel("history", ok.AlertID), "#2 · delivered · HTTP 200")
	d.waitText(rowSel("history", dead.AlertID), "dead letter")
	d.waitText(rowSel("history", dead.AlertID), "#1 · dead · HTTP 500")
	d.choose("#history-outcome", "dead")
	d.waitGone(rowSel("history", ok.AlertID))
	d.waitText(rowSel("history", dead.AlertID), "dead")
	d.choose("#history-outcome", "")
	d.click(rowSel("history", ok.AlertID) + " button.redeliver")
	d.waitText("#history-note", "Redelivery of "+ok.AlertID+" queued")

	// Replay one dead letter: it leaves the list of those not replayed.
	d.waitText(rowSel("deadletters", dead.AlertID), "http_status: HTTP 500")
	d.click(rowSel("deadletters", dead.AlertID) + " button.replay")
	d.waitText("#dl-note", "Replayed "+dead.AlertID)
	d.waitGone(rowSel("deadletters", dead.AlertID))
	if got := histItems(t, l.mustDo(t, "GET", "/v1/dead-letters?replayed=true", "", 200)); len(got) != 1 || got[0]["alert_id"] != dead.AlertID {
		t.Errorf("replayed dead letters: %v", got)
	}

	// Replay a time range.
	dead2, dead2Raw := testenv.Delivery(t, "acme", rule, endpoint, time.Now().UTC())
	l.record(t, func(ctx context.Context, tx *store.Tx) error {
		if err := tx.InsertAlerts(ctx, []store.Alert{{Record: dead2, Raw: dead2Raw}}); err != nil {
			return err
		}
		return tx.UpsertDeadLetters(ctx, []store.DeadLetter{{Record: dead2, Raw: dead2Raw, Attempts: 8,
			LastError: "timeout: no answer", DeadAt: time.Now().UTC()}})
	})
	if n := l.count(t, `SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL`); n != 1 {
		t.Fatalf("second dead letter: %d not replayed", n)
	}
	d.click("#dl-refresh")
	d.waitText(rowSel("deadletters", dead2.AlertID), "timeout: no answer")
	d.setValue("#rp-since", "2000-01-01T00:00")
	d.setValue("#rp-until", "2099-01-01T00:00")
	d.choose("#rp-endpoint", endpoint)
	d.click("#replay-submit")
	d.waitText("#dl-note", "Replayed 1 dead letter")
	d.waitText("#dl-note", dead2.AlertID)
	d.waitGone(rowSel("deadletters", dead2.AlertID))
	if n := l.count(t, `SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL`); n != 0 {
		t.Errorf("%d dead letters left unreplayed", n)
	}
	d.choose("#dl-replayed", "true")
	d.waitText(rowSel("deadletters", dead2.AlertID), "timeout: no answer")
	// A range that ends before it starts: the problem names the field.
	d.setValue("#rp-until", "1999-01-01T00:00")
	d.click("#replay-submit")
	d.waitText("#dl-problem", "body.until")

	// A test delivery: its alert id at once, then its status as recorded.
	d.click(rowSel("webhooks", endpoint) + " button.test")
	d.waitText("#test-alert-id", "alrt_")
	alertID := d.text("#test-alert-id")
	// The recorder stores the delivery record the API queued for Kafka:
	// the test is pending until its attempt is recorded too.
	var raw []byte
	if err := l.pool.QueryRow(context.Background(), `SELECT value FROM outbox WHERE topic = $1 AND convert_from(value, 'UTF8') LIKE '%' || $2 || '%'`,
		l.topics.Deliveries, alertID).Scan(&raw); err != nil {
		t.Fatalf("the test delivery queued for Kafka: %v", err)
	}
	var test schemas.DeliveryRecord
	if err := json.Unmarshal(raw, &test); err != nil || test.AlertID != alertID || test.RuleID != schemas.TestRuleID || test.EndpointID != endpoint {
		t.Fatalf("the test delivery queued for Kafka: %s (%v)", raw, err)
	}
	l.record(t, func(ctx context.Context, tx *store.Tx) error {
		return tx.InsertAlerts(ctx, []store.Alert{{Record: test, Raw: raw}})
	})
	d.waitText("#test-status", "pending")
	l.record(t, func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.InsertAttempts(ctx, []schemas.ResultRecord{testenv.Attempt(test, 1, schemas.OutcomeDelivered, 200, time.Now().UTC())})
		return err
	})
	d.waitText("#test-status", "delivered")
	d.waitText("#test-attempts", "#1 · delivered · HTTP 200")
	d.waitText("#audit", "webhook.test")
}
