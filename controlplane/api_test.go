package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

type bundle struct {
	pool     *pgxpool.Pool
	srv      *httptest.Server
	ring     *keyring.Ring
	adminKey string
	viewKey  string
	otherKey string
	reg      *prometheus.Registry
}

// setup serves the API over a fresh database. The outbox relay is not run:
// these tests look at what the API writes.
func setup(t *testing.T) *bundle {
	t.Helper()
	return setupWith(t, nil)
}

// setupWith is setup with a config changed by mod (nil: none).
func setupWith(t *testing.T, mod func(*controlplane.Config)) *bundle {
	t.Helper()
	pool := testenv.Pool(t)
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := controlplane.Config{
		Pool: pool, Brokers: []string{"127.0.0.1:1"}, Topics: kafka.NewTopics("t."), Keyring: ring, Log: testenv.Log(t), Registry: reg,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := controlplane.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	b := &bundle{pool: pool, srv: srv, ring: ring, reg: reg}
	ctx := context.Background()
	for _, k := range []struct {
		dst          *string
		tenant, role string
	}{{&b.adminKey, "acme", controlplane.RoleAdmin}, {&b.viewKey, "acme", controlplane.RoleViewer}, {&b.otherKey, "globex", controlplane.RoleAdmin}} {
		*k.dst = controlplane.NewAPIKey()
		if _, err := controlplane.CreateAPIKey(ctx, pool, k.tenant, "test", k.role, *k.dst); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func (b *bundle) do(t *testing.T, method, path, key, body string) (int, http.Header, map[string]any) {
	t.Helper()
	return b.request(t, method, path, key, body, "application/json", nil)
}

func (b *bundle) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateWebhookAndRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	status, _, wh := b.do(t, "POST", "/v1/webhooks", b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/x?token=abc","headers":{"X-Team":"data"}}`)
	if status != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", status, wh)
	}
	secret, _ := wh["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || wh["is_active"] != true {
		t.Fatalf("create webhook answer: %v", wh)
	}
	id := wh["id"].(string)
	status, _, rule := b.do(t, "POST", "/v1/alert-rules", b.adminKey,
		`{"name":"ETL failures","event_type":"workflow.run.failed","condition":"labels.env == \"prod\"","webhook_endpoint_id":"`+id+`"}`)
	if status != http.StatusCreated || rule["max_attempts"] != float64(8) {
		t.Fatalf("create rule: %d %v", status, rule)
	}
	// The secret is shown once: a GET shows only its hint.
	status, _, got := b.do(t, "GET", "/v1/webhooks/"+id, b.viewKey, "")
	if status != 200 || got["secret"] != nil || !strings.HasSuffix(secret, strings.TrimPrefix(got["secret_hint"].(string), "…")) {
		t.Fatalf("get webhook: %d %v", status, got)
	}
	// One audit row and one outbox row per change, written with it; the
	// outbox snapshots validate against their schemas and keep the secret
	// and header values encrypted.
	if n := b.count(t, "audit_events"); n != 2 {
		t.Errorf("audit rows = %d, want 2", n)
	}
	rows, err := b.pool.Query(context.Background(), `SELECT topic, value FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var kinds []schemas.Kind
	for rows.Next() {
		var topic string
		var value []byte
		if err := rows.Scan(&topic, &value); err != nil {
			t.Fatal(err)
		}
		k := schemas.KindRule
		if strings.HasSuffix(topic, "webhook-endpoints") {
			k = schemas.KindEndpoint
		}
		kinds = append(kinds, k)
		if err := schemas.Validate(k, value); err != nil {
			t.Errorf("outbox %s snapshot invalid: %v", k, err)
		}
		if bytes.Contains(value, []byte(secret)) || bytes.Contains(value, []byte(`"data"`)) {
			t.Errorf("outbox snapshot holds a secret or header value in clear: %s", value)
		}
	}
	if len(kinds) != 2 || kinds[0] != schemas.KindEndpoint || kinds[1] != schemas.KindRule {
		t.Errorf("outbox rows = %v, want endpoint then rule", kinds)
	}
	var stored []byte
	if err := b.pool.QueryRow(context.Background(), `SELECT secret::text FROM webhook_endpoints WHERE id = $1`, id).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte(secret)) {
		t.Error("secret stored in clear")
	}
	// Lists are scoped to the tenant.
	_, _, list := b.do(t, "GET", "/v1/webhooks", b.otherKey, "")
	if items := list["items"].([]any); len(items) != 0 {
		t.Errorf("tenant globex sees %d of acme's webhooks", len(items))
	}
	if status, _, _ := b.do(t, "GET", "/v1/webhooks/"+id, b.otherKey, ""); status != 404 {
		t.Errorf("globex GET acme's webhook = %d, want 404", status)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, _, wh := b.do(t, "POST", "/v1/webhooks", b.adminKey, `{"name":"ok","target_url":"https://example.com/h"}`)
	whID := wh["id"].(string)
	_, _, other := b.do(t, "POST", "/v1/webhooks", b.otherKey, `{"name":"theirs","target_url":"https://example.com/h"}`)
	otherID := other["id"].(string)
	endpointsBefore, rulesBefore := b.count(t, "webhook_endpoints"), b.count(t, "alert_rules")

	cases := []struct {
		name, method, path, key, body string
		status                        int
		location                      string // a field the problem must name
	}{
		{"no key", "POST", "/v1/webhooks", "", `{"name":"a","target_url":"https://e.com"}`, 401, ""},
		{"wrong key", "POST", "/v1/webhooks", "exo_not_a_real_key_000000000", `{"name":"a","target_url":"https://e.com"}`, 401, ""},
		{"viewer writes", "POST", "/v1/webhooks", b.viewKey, `{"name":"a","target_url":"https://e.com"}`, 403, ""},
		{"malformed json", "POST", "/v1/webhooks", b.adminKey, `{"name":"a",`, 400, ""},
		{"missing field", "POST", "/v1/webhooks", b.adminKey, `{"name":"a"}`, 422, "target_url"},
		{"unknown field", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com","colour":"red"}`, 422, "colour"},
		{"wrong type", "POST", "/v1/webhooks", b.adminKey, `{"name":7,"target_url":"https://e.com"}`, 422, "name"},
		{"ftp url", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"ftp://e.com/x"}`, 422, "body.target_url"},
		{"javascript url", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"javascript:alert(1)"}`, 422, "body.target_url"},
		{"credentials in url", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://u:p@e.com/"}`, 422, "body.target_url"},
		{"loopback url", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"http://127.0.0.1:8080/"}`, 422, "body.target_url"},
		{"metadata url", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"http://169.254.169.254/latest"}`, 422, "body.target_url"},
		{"localhost url", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"http://localhost/"}`, 422, "body.target_url"},
		{"reserved header", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com","headers":{"webhook-signature":"x"}}`, 422, "body.headers.webhook-signature"},
		{"pagerduty without routing key", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","kind":"pagerduty","target_url":"https://events.pagerduty.com/v2/enqueue"}`, 422, "body.secret"},
		{"unknown kind", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","kind":"fax","target_url":"https://e.com"}`, 422, "kind"},
		{"bad secret", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com","secret":"hunter2"}`, 422, "secret"},
		{"unknown event type", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.exploded","webhook_endpoint_id":"` + whID + `"}`, 422, "event_type"},
		{"bad condition", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.failed","condition":"workflow.nam == 1","webhook_endpoint_id":"` + whID + `"}`, 422, "body.condition"},
		{"non-bool condition", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.failed","condition":"run.attempt + 1","webhook_endpoint_id":"` + whID + `"}`, 422, "body.condition"},
		{"unknown endpoint", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.failed","webhook_endpoint_id":"whk_nope"}`, 422, "body.webhook_endpoint_id"},
		{"other tenant's endpoint", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.failed","webhook_endpoint_id":"` + otherID + `"}`, 422, "body.webhook_endpoint_id"},
		{"duration rule without threshold", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.duration_exceeded","webhook_endpoint_id":"` + whID + `"}`, 422, "body.duration_threshold"},
		{"threshold on a failure rule", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.failed","duration_threshold":"5m","webhook_endpoint_id":"` + whID + `"}`, 422, "body.duration_threshold"},
		{"threshold not a duration", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.duration_exceeded","duration_threshold":"soon","webhook_endpoint_id":"` + whID + `"}`, 422, "body.duration_threshold"},
		{"threshold too short", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.duration_exceeded","duration_threshold":"10ms","webhook_endpoint_id":"` + whID + `"}`, 422, "body.duration_threshold"},
		{"cooldown too long", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.failed","cooldown":"9999h","webhook_endpoint_id":"` + whID + `"}`, 422, "body.cooldown"},
		{"rate limit zero", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.failed","rate_limit_per_minute":0,"webhook_endpoint_id":"` + whID + `"}`, 422, "rate_limit_per_minute"},
		{"max attempts too high", "POST", "/v1/alert-rules", b.adminKey, `{"name":"r","event_type":"workflow.run.failed","max_attempts":1000,"webhook_endpoint_id":"` + whID + `"}`, 422, "max_attempts"},
		{"huge body", "POST", "/v1/webhooks", b.adminKey, `{"name":"` + strings.Repeat("a", 70<<10) + `","target_url":"https://e.com"}`, 413, ""},
		{"bad cursor", "GET", "/v1/webhooks?cursor=bm90LWEtY3Vyc29y", b.adminKey, "", 400, "query.cursor"},
		{"NUL in a header value", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","headers":{"X-Team":"a\u0000b"}}`, 422, "body.headers.X-Team"},
		{"0x01 in a header value", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","headers":{"X-Team":"a\u0001b"}}`, 422, "body.headers.X-Team"},
		{"DEL in a header value", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","headers":{"X-Team":"a\u007fb"}}`, 422, "body.headers.X-Team"},
		{"line break in a header value", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","headers":{"X-Team":"a\r\nX-Evil: 1"}}`, 422, "body.headers.X-Team"},
		{"leading space in a header value", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","headers":{"X-Team":" a"}}`, 422, "body.headers.X-Team"},
		{"trailing tab in a header value", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","headers":{"X-Team":"a\t"}}`, 422, "body.headers.X-Team"},
		{"header value too long", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","headers":{"X-Team":"` + strings.Repeat("a", 4097) + `"}}`, 422, "body.headers.X-Team"},
		{"reserved header prefix X-Exosphere-", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","headers":{"x-exosphere-attempt":"1"}}`, 422, "body.headers.x-exosphere-attempt"},
		{"reserved header prefix webhook-", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","headers":{"Webhook-Version":"2"}}`, 422, "body.headers.Webhook-Version"},
		{"port 0", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com:0/"}`, 422, "body.target_url"},
		{"port 65536", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com:65536/"}`, 422, "body.target_url"},
		{"port 99999999999", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com:99999999999/"}`, 422, "body.target_url"},
		{"patch a header value with a control character", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"headers":{"X-Team":"a\u0001"}}`, 422, "body.headers.X-Team"},
		{"patch a reserved header prefix", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"headers":{"X-Exosphere-Tenant":"globex"}}`, 422, "body.headers.X-Exosphere-Tenant"},
		{"patch to port 0", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"target_url":"https://e.com:0/"}`, 422, "body.target_url"},
		{"patch to port 70000", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"target_url":"https://e.com:70000/"}`, 422, "body.target_url"},
		{"rate limit zero per second", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","rate_limit_per_second":0}`, 422, "rate_limit_per_second"},
		{"rate limit too high per second", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","rate_limit_per_second":10001}`, 422, "rate_limit_per_second"},
		{"rate limit negative per second", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","rate_limit_per_second":-5}`, 422, "rate_limit_per_second"},
		{"rate limit fractional per second", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","rate_limit_per_second":1.5}`, 422, "rate_limit_per_second"},
		{"rate limit a string", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","rate_limit_per_second":"fast"}`, 422, "rate_limit_per_second"},
		{"patch rate limit to zero", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"rate_limit_per_second":0}`, 422, "rate_limit_per_second"},
		{"patch rate limit too high", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"rate_limit_per_second":20000}`, 422, "rate_limit_per_second"},
		{"header given twice", "POST", "/v1/webhooks", b.adminKey, `{"name":"a","target_url":"https://e.com/","headers":{"X-Team":"a","x-team":"b"}}`, 422, "body.headers"},
		{"patch not an object", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `["name"]`, 400, ""},
		{"patch malformed json", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"name":`, 400, ""},
		{"patch unknown field", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"colour":"red"}`, 422, "colour"},
		{"patch the secret", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"secret":"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`, 422, "body.secret"},
		{"patch the kind", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"kind":"slack"}`, 422, "body.kind"},
		{"patch to a metadata url", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"target_url":"http://[::ffff:169.254.169.254]/"}`, 422, "body.target_url"},
		{"patch a reserved header", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"headers":{"Host":"evil.example"}}`, 422, "body.headers.Host"},
		{"patch headers not an object", "PATCH", "/v1/webhooks/" + whID, b.adminKey, `{"headers":"X-A: b"}`, 422, "body.headers"},
		{"patch other tenant's endpoint", "PATCH", "/v1/webhooks/" + otherID, b.adminKey, `{"name":"mine"}`, 404, ""},
		{"delete other tenant's endpoint", "DELETE", "/v1/webhooks/" + otherID, b.adminKey, "", 404, ""},
		{"rotate with a bad grace period", "POST", "/v1/webhooks/" + whID + "/rotate-secret", b.adminKey, `{"grace_period":"forever"}`, 422, "body.grace_period"},
		{"rotate with a bad secret", "POST", "/v1/webhooks/" + whID + "/rotate-secret", b.adminKey, `{"secret":"hunter2"}`, 422, "body.secret"},
		{"NUL in a name", "POST", "/v1/webhooks", b.adminKey, `{"name":"a\u0000b","target_url":"https://e.com/"}`, 400, ""},
		{"NUL in an id", "GET", "/v1/webhooks/a%00b", b.adminKey, "", 400, ""},
		{"NUL in a filter", "GET", "/v1/alert-rules?webhook_endpoint_id=a%00b", b.adminKey, "", 400, ""},
		{"NUL in an audit filter", "GET", "/v1/audit-events?actor=a%00b", b.adminKey, "", 400, ""},
		{"unknown filter value", "GET", "/v1/alert-rules?event_type=workflow.run.exploded", b.adminKey, "", 422, "event_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, h, problem := b.do(t, c.method, c.path, c.key, c.body)
			if status != c.status {
				t.Fatalf("status = %d, want %d; %v", status, c.status, problem)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("content type %q, want application/problem+json", ct)
			}
			if c.location != "" {
				raw, _ := json.Marshal(problem["errors"])
				if !strings.Contains(string(raw), c.location) {
					t.Errorf("problem does not name %q: %v", c.location, problem)
				}
			}
		})
	}
	// Wrong ETags are refused with 412 (problem+json) and change nothing.
	for _, c := range []struct{ method, body, etag string }{
		{"PATCH", `{"name":"late"}`, `"0"`}, {"PATCH", `{"name":"late"}`, `"v1"`}, {"DELETE", "", `"2"`}, {"PATCH", `{"name":"late"}`, `W/"99"`},
	} {
		status, h, problem := b.doH(t, c.method, "/v1/webhooks/"+whID, b.adminKey, c.body, map[string]string{"If-Match": c.etag})
		if status != 412 || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s with If-Match %s: %d %v, want 412", c.method, c.etag, status, problem)
		}
	}
	var version int64
	if err := b.pool.QueryRow(context.Background(), `SELECT version FROM webhook_endpoints WHERE id = $1`, whID).Scan(&version); err != nil || version != 1 {
		t.Errorf("bad requests changed the endpoint: version %d, %v", version, err)
	}
	if n := b.count(t, "audit_events"); n != 2 {
		t.Errorf("bad requests wrote %d audit rows", n-2)
	}
	if n := b.count(t, "webhook_endpoints"); n != endpointsBefore {
		t.Errorf("bad requests wrote %d endpoints", n-endpointsBefore)
	}
	if n := b.count(t, "alert_rules"); n != rulesBefore {
		t.Errorf("bad requests wrote %d rules", n-rulesBefore)
	}
}

// unusedPool is a pool on a fresh database for tests that need a valid
// config but never query.
func unusedPool(t *testing.T) *pgxpool.Pool { return testenv.Pool(t) }

// A duration rule with noise control round-trips through the API and its
// snapshot carries what the processor needs.
func TestCreateDurationRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, _, wh := b.do(t, "POST", "/v1/webhooks", b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/x"}`)
	status, _, rule := b.do(t, "POST", "/v1/alert-rules", b.adminKey, `{"name":"slow ETL","event_type":"workflow.run.duration_exceeded",
		"duration_threshold":"15m","rate_limit_per_minute":5,"cooldown":"10m","severity":"warning","webhook_endpoint_id":"`+wh["id"].(string)+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, rule)
	}
	if rule["duration_threshold"] != "15m0s" || rule["duration_threshold_ms"] != float64(900000) ||
		rule["rate_limit_per_minute"] != float64(5) || rule["cooldown_ms"] != float64(600000) || rule["severity"] != "warning" {
		t.Fatalf("answer: %v", rule)
	}
	var snap []byte
	if err := b.pool.QueryRow(context.Background(), `SELECT value FROM outbox WHERE topic LIKE '%alert-rules' ORDER BY id DESC LIMIT 1`).Scan(&snap); err != nil {
		t.Fatal(err)
	}
	var rec schemas.RuleRecord
	if err := json.Unmarshal(snap, &rec); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Validate(schemas.KindRule, snap); err != nil || rec.DurationThresholdMS != 900000 || rec.RateLimitPerMinute != 5 ||
		rec.CooldownMS != 600000 || rec.Severity != "warning" {
		t.Fatalf("snapshot %s: %v", snap, err)
	}
}

// Every API request is counted under its operation id (never its path,
// which holds resource ids) and status class, refusals by the
// authentication included, and its latency observed.
func TestRequestMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if status, _, wh := b.do(t, "POST", "/v1/webhooks", b.adminKey, `{"name":"ops","target_url":"https://hooks.example.com/x"}`); status != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", status, wh)
	}
	for _, key := range []string{b.viewKey, ""} { // unknown id: 404; no key: 401
		if status, _, _ := b.do(t, "GET", "/v1/webhooks/whk_0123456789ab", key, ""); status/100 != 4 {
			t.Fatalf("GET of an unknown webhook: %d, want a 4xx", status)
		}
	}
	requests := map[[2]string]float64{}
	latencies := map[string]uint64{}
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			switch mf.GetName() {
			case "exo_controlplane_http_requests_total":
				// Every operation and class exists from the start at 0
				// (dashboard panels): count the ones requests moved.
				if v := m.GetCounter().GetValue(); v > 0 {
					requests[[2]string{labels["operation"], labels["code"]}] += v
				}
			case "exo_controlplane_http_request_seconds":
				latencies[labels["operation"]] += m.GetHistogram().GetSampleCount()
			}
		}
	}
	want := map[[2]string]float64{{"create-webhook", "2xx"}: 1, {"get-webhook", "4xx"}: 2}
	if !maps.Equal(requests, want) {
		t.Errorf("exo_controlplane_http_requests_total by (operation, code) = %v, want %v", requests, want)
	}
	if wantLat := map[string]uint64{"create-webhook": 1, "get-webhook": 2}; !maps.Equal(latencies, wantLat) {
		t.Errorf("exo_controlplane_http_request_seconds observations by operation = %v, want %v", latencies, wantLat)
	}
}

// What RFC 9110 allows is still accepted: spaces and tabs inside a header
// value, non-ASCII text, an empty value, and the extreme ports.
func TestValidHeaderValuesAndPorts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, body := range []string{
		`{"name":"a","target_url":"https://e.com:1/","headers":{"X-Team":"data\tplatform team","X-Note":"café ☕","X-Empty":""}}`,
		`{"name":"a","target_url":"https://e.com:65535/x"}`,
		`{"name":"a","target_url":"https://e.com:/x"}`,
	} {
		if status, _, got := b.do(t, "POST", "/v1/webhooks", b.adminKey, body); status != http.StatusCreated {
			t.Errorf("%s: %d %v, want 201", body, status, got)
		}
	}
}
