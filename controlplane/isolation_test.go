package controlplane_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/exospherehost/exo-alerts/controlplane"
)

// tenantWorld is two tenants, acme (A) and globex (B), each with an
// endpoint, a rule, an alert with an attempt, and a dead letter.
type tenantWorld struct {
	*relayEnv
	cp   *runningCP
	keyB string
	a, b tenantIDs
}

type tenantIDs struct {
	tenant, endpoint, rule, alert, dead string
	// countRule is a count rule with one group (groupKey) stored as the
	// recorder stores the aggregate-groups topic.
	countRule, groupKey string
	notice              string
}

func (ids tenantIDs) all() []string {
	return []string{ids.endpoint, ids.rule, ids.alert, ids.dead, ids.countRule, ids.groupKey, ids.notice}
}

func newTenantWorld(t *testing.T) *tenantWorld {
	t.Helper()
	w := &tenantWorld{relayEnv: newRelayEnv(t), keyB: controlplane.NewAPIKey()}
	if _, err := controlplane.CreateAPIKey(context.Background(), w.pool, "globex", "test", controlplane.RoleAdmin, w.keyB); err != nil {
		t.Fatal(err)
	}
	// Populate through the API of a server without relay, then start the
	// control plane and wait for its start-up republish: the outbox holds
	// nothing in flight when the tests take their "before" picture.
	s, err := controlplane.New(w.config(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	w.a = w.populate(t, srv.URL, "acme", w.key)
	w.b = w.populate(t, srv.URL, "globex", w.keyB)
	srv.Close()
	w.cp = startCP(t, w.config(t))
	eventually(t, time.Minute, "start-up republish sent", func() (bool, string) {
		n := countRows(t, w.pool, `SELECT count(*) FROM outbox`)
		return n == 12 && unsent(t, w.pool) == 0, fmt.Sprintf("%d outbox rows, %d unsent", n, unsent(t, w.pool))
	})
	return w
}

// populate creates a tenant's endpoint and rule through the API, and the
// history the recorder would write (an alert, its attempt, a dead letter).
func (w *tenantWorld) populate(t *testing.T, base, tenant, key string) tenantIDs {
	t.Helper()
	ids := tenantIDs{tenant: tenant}
	wh := create(t, base, "/v1/webhooks", key, `{"name":"ops","target_url":"https://hooks.example.com/`+tenant+`","headers":{"X-Team":"data"}}`)
	ids.endpoint = wh["id"].(string)
	r := create(t, base, "/v1/alert-rules", key, `{"name":"ETL failures","event_type":"workflow.run.failed","webhook_endpoint_id":"`+ids.endpoint+`"}`)
	ids.rule = r["id"].(string)
	c := create(t, base, "/v1/alert-rules", key, `{"name":"ETL keeps failing","kind":"count","event_type":"workflow.run.failed","window":"15m","threshold":3,"group_by":["workflow.name"],"webhook_endpoint_id":"`+ids.endpoint+`"}`)
	ids.countRule, ids.groupKey = c["id"].(string), "grp_"+randomHex(16)
	ids.alert = "alrt_" + randomHex(16)
	ids.dead = "alrt_" + randomHex(16)
	ctx := context.Background()
	for _, alert := range []string{ids.alert, ids.dead} {
		rec := deliveryRecord(t, alert, tenant, ids.rule, ids.endpoint)
		if _, err := w.pool.Exec(ctx, `INSERT INTO alerts (alert_id, tenant_id, rule_id, endpoint_id, event_type, record, created_at)
			VALUES ($1, $2, $3, $4, 'workflow.run.failed', $5, now() - interval '1 hour')`, alert, tenant, ids.rule, ids.endpoint, rec); err != nil {
			t.Fatal(err)
		}
		if _, err := w.pool.Exec(ctx, `INSERT INTO delivery_attempts (alert_id, attempt, delivery_id, tenant_id, rule_id, endpoint_id,
			outcome, status_code, latency_ms, error_class, error, response_excerpt, attempted_at)
			VALUES ($1, 1, $1 || '_1', $2, $3, $4, 'retry', 500, 12, 'http_5xx', 'HTTP 500', 'oops', now() - interval '50 minutes')`,
			alert, tenant, ids.rule, ids.endpoint); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.pool.Exec(ctx, `INSERT INTO aggregate_groups (tenant_id, rule_id, group_key, group_values, state, firing_since, incident_id, value, kafka_partition, kafka_offset)
		VALUES ($1, $2, $3, '{"workflow.name": "nightly-etl"}', 'firing', now() - interval '5 minutes', 'inc_' || $4, '{"matched": 3}', 0, 1)`,
		tenant, ids.countRule, ids.groupKey, randomHex(16)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.pool.Exec(ctx, `INSERT INTO aggregate_rule_stats (tenant_id, rule_id, groups, kafka_partition, kafka_offset) VALUES ($1, $2, 1, 0, 2)`,
		tenant, ids.countRule); err != nil {
		t.Fatal(err)
	}
	if _, err := w.pool.Exec(ctx, `INSERT INTO dead_letters (alert_id, tenant_id, rule_id, endpoint_id, attempts, last_error, record, dead_at)
		VALUES ($1, $2, $3, $4, 8, 'HTTP 500', $5, now() - interval '30 minutes')`,
		ids.dead, tenant, ids.rule, ids.endpoint, deliveryRecord(t, ids.dead, tenant, ids.rule, ids.endpoint)); err != nil {
		t.Fatal(err)
	}
	ids.notice = "ntc_" + randomHex(16)
	if _, err := w.pool.Exec(ctx, `INSERT INTO notices (id, tenant_id, kind, dedup_key, endpoint_id, title)
		VALUES ($1, $2, 'dead_letters', $1, $3, 'alerts dead-lettered')`, ids.notice, tenant, ids.endpoint); err != nil {
		t.Fatal(err)
	}
	return ids
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// deliveryRecord is the example delivery record of the schemas, for the given ids.
func deliveryRecord(t *testing.T, alert, tenant, rule, endpoint string) []byte {
	t.Helper()
	raw, err := os.ReadFile("../schemas/examples/delivery.json")
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	rec["alert_id"], rec["tenant_id"], rec["rule_id"], rec["endpoint_id"] = alert, tenant, rule, endpoint
	data := rec["payload"].(map[string]any)["data"].(map[string]any)
	data["alert_id"], data["tenant_id"] = alert, tenant
	data["rule"].(map[string]any)["id"] = rule
	out, _ := json.Marshal(rec)
	return out
}

// stateOf is everything stored about tenant A's resources, as text.
func (w *tenantWorld) stateOf(t *testing.T, ids tenantIDs) string {
	t.Helper()
	var parts []string
	alerts := []string{ids.alert, ids.dead}
	for _, q := range []struct {
		sql string
		arg any
	}{
		{`SELECT row_to_json(x)::text FROM webhook_endpoints x WHERE id = $1`, ids.endpoint},
		{`SELECT row_to_json(x)::text FROM alert_rules x WHERE id = $1`, ids.rule},
		{`SELECT row_to_json(x)::text FROM alert_rules x WHERE id = $1`, ids.countRule},
		{`SELECT coalesce(string_agg(row_to_json(x)::text, ','), '') FROM aggregate_groups x WHERE tenant_id = $1`, ids.tenant},
		{`SELECT coalesce(string_agg(row_to_json(x)::text, ','), '') FROM aggregate_rule_stats x WHERE tenant_id = $1`, ids.tenant},
		{`SELECT coalesce(string_agg(row_to_json(x)::text, ',' ORDER BY alert_id), '') FROM alerts x WHERE alert_id = ANY($1)`, alerts},
		{`SELECT coalesce(string_agg(row_to_json(x)::text, ',' ORDER BY alert_id, delivery_id), '') FROM delivery_attempts x WHERE alert_id = ANY($1)`, alerts},
		{`SELECT row_to_json(x)::text FROM dead_letters x WHERE alert_id = $1`, ids.dead},
		{`SELECT row_to_json(x)::text FROM notices x WHERE id = $1`, ids.notice},
		{`SELECT count(*)::text FROM audit_events WHERE tenant_id = $1`, ids.tenant},
		{`SELECT count(*)::text FROM outbox WHERE key LIKE $1 || '/%'`, ids.tenant},
	} {
		var s string
		if err := w.pool.QueryRow(context.Background(), q.sql, q.arg).Scan(&s); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "\n")
}

// openAPIOp is one operation of the served OpenAPI document.
type openAPIOp struct {
	method, path string
	op           map[string]any
	params       []map[string]any
}

func (o openAPIOp) id() string {
	id, _ := o.op["operationId"].(string)
	return id
}

func (o openAPIOp) String() string { return o.method + " " + o.path + " (" + o.id() + ")" }

// servedOperations reads GET /openapi.json: every operation the server
// serves, so operations added later are swept too.
func servedOperations(t *testing.T, base string) (map[string]any, []openAPIOp) {
	t.Helper()
	status, _, raw := call(t, base, http.MethodGet, "/openapi.json", "", "")
	if status != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d", status)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []openAPIOp
	for path, item := range doc["paths"].(map[string]any) {
		item := item.(map[string]any)
		var common []map[string]any
		for _, p := range asList(item["parameters"]) {
			common = append(common, p.(map[string]any))
		}
		for method, op := range item {
			m := strings.ToUpper(method)
			if !slices.Contains([]string{"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"}, m) {
				continue
			}
			o := openAPIOp{method: m, path: path, op: op.(map[string]any), params: slices.Clone(common)}
			for _, p := range asList(o.op["parameters"]) {
				o.params = append(o.params, p.(map[string]any))
			}
			ops = append(ops, o)
		}
	}
	slices.SortFunc(ops, func(a, b openAPIOp) int { return strings.Compare(a.path+" "+a.method, b.path+" "+b.method) })
	return doc, ops
}

// operatorOnly reports whether an operation takes operator keys only (the
// operator security scheme, not bearer).
func operatorOnly(o openAPIOp) bool {
	only := false
	for _, req := range asList(o.op["security"]) {
		m, _ := req.(map[string]any)
		if _, ok := m["bearer"]; ok {
			return false
		}
		if _, ok := m["operator"]; ok {
			only = true
		}
	}
	return only
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// resolve follows a local $ref.
func resolve(doc map[string]any, schema map[string]any) map[string]any {
	for schema != nil {
		ref, ok := schema["$ref"].(string)
		if !ok {
			return schema
		}
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		schema, _ = cur.(map[string]any)
	}
	return schema
}

// sample builds a value that satisfies schema: its example or default, or
// else its required members, recursively.
func sample(doc map[string]any, schema map[string]any) (any, error) {
	schema = resolve(doc, schema)
	if schema == nil {
		return map[string]any{}, nil
	}
	if v, ok := schema["example"]; ok {
		return v, nil
	}
	if l := asList(schema["examples"]); len(l) > 0 {
		return l[0], nil
	}
	if v, ok := schema["default"]; ok {
		return v, nil
	}
	if l := asList(schema["enum"]); len(l) > 0 {
		return l[0], nil
	}
	typ, _ := schema["type"].(string)
	for _, ty := range asList(schema["type"]) {
		if ty != "null" {
			typ, _ = ty.(string)
			break
		}
	}
	switch typ {
	case "object", "":
		out := map[string]any{}
		props, _ := schema["properties"].(map[string]any)
		for _, name := range asList(schema["required"]) {
			ps, _ := props[name.(string)].(map[string]any)
			v, err := sample(doc, ps)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out[name.(string)] = v
		}
		return out, nil
	case "string":
		switch schema["format"] {
		case "date-time":
			return time.Now().UTC().Format(time.RFC3339), nil
		case "uri":
			return "https://example.com/", nil
		}
		n := 1
		if f, ok := schema["minLength"].(float64); ok && f > 1 {
			n = int(f)
		}
		return strings.Repeat("x", n), nil
	case "integer", "number":
		if f, ok := schema["minimum"].(float64); ok {
			return f, nil
		}
		return 1, nil
	case "boolean":
		return false, nil
	case "array":
		return []any{}, nil
	}
	return nil, fmt.Errorf("cannot build a sample of schema type %q", typ)
}

// requestBody returns the content type and a valid body of an operation,
// or "" when it takes none.
func requestBody(doc map[string]any, o openAPIOp) (string, string, error) {
	rb, ok := o.op["requestBody"].(map[string]any)
	if !ok {
		return "", "", nil
	}
	content, _ := rb["content"].(map[string]any)
	if _, ok := content["application/merge-patch+json"]; ok {
		// A merge patch that would change something if it were applied.
		return "application/merge-patch+json", `{"name":"set by another tenant","is_active":false}`, nil
	}
	media, ok := content["application/json"].(map[string]any)
	if !ok {
		return "", "", fmt.Errorf("request body of content types %v", content)
	}
	schema, _ := media["schema"].(map[string]any)
	v, err := sample(doc, schema)
	if err != nil {
		return "", "", err
	}
	raw, _ := json.Marshal(v)
	return "application/json", string(raw), nil
}

// requiredQuery builds the required query parameters of an operation.
func requiredQuery(doc map[string]any, o openAPIOp) (string, error) {
	q := url.Values{}
	for _, p := range o.params {
		if p["in"] != "query" || p["required"] != true {
			continue
		}
		schema, _ := p["schema"].(map[string]any)
		v, err := sample(doc, schema)
		if err != nil {
			return "", fmt.Errorf("query %v: %w", p["name"], err)
		}
		q.Set(p["name"].(string), fmt.Sprint(v))
	}
	if len(q) == 0 {
		return "", nil
	}
	return "?" + q.Encode(), nil
}

// Tenant B's admin key, aimed at every operation the server serves with
// tenant A's resources, finds nothing of A's and changes nothing of A's.
func TestTenantIsolationSweep(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	before := w.stateOf(t, w.a)
	doc, ops := servedOperations(t, w.cp.url)

	// Which of A's resources a path parameter names, by the path up to it.
	// An operation whose parameter is not here fails the test: add it.
	resources := map[string]string{
		"/v1/webhooks/{id}":           w.a.endpoint,
		"/v1/alert-rules/{id}":        w.a.rule,
		"/v1/deliveries/{alert_id}":   w.a.alert,
		"/v1/dead-letters/{alert_id}": w.a.dead,
		"/v1/notices/{id}":            w.a.notice,
	}
	// Operations whose path names a resource of its own kind: the
	// groups of A's count rule (its per-event rule has none).
	byPath := map[string]string{
		"/v1/alert-rules/{id}/groups": w.a.countRule,
	}
	// Operations without a path parameter that write: what B does with them
	// to reach A. An operation not here (and not a GET) fails the test.
	writes := map[string]func(t *testing.T, o openAPIOp, ctype, body string){
		// B creates in its own tenant; there is nothing of A's to name.
		"create-webhook": nil,
		// B's rule cannot point at A's endpoint.
		"create-alert-rule": func(t *testing.T, o openAPIOp, _, _ string) {
			body := `{"name":"x","event_type":"workflow.run.failed","webhook_endpoint_id":"` + w.a.endpoint + `"}`
			if status, _, raw := call(t, w.cp.url, o.method, o.path, w.keyB, body); status != http.StatusUnprocessableEntity {
				t.Errorf("%s naming A's endpoint: %d %s, want 422", o, status, raw)
			}
		},
		// B's notices cannot go to A's endpoint.
		"put-notice-settings": func(t *testing.T, o openAPIOp, _, _ string) {
			body := `{"webhook_endpoint_id":"` + w.a.endpoint + `"}`
			if status, _, raw := call(t, w.cp.url, o.method, o.path, w.keyB, body); status != http.StatusUnprocessableEntity {
				t.Errorf("%s naming A's endpoint: %d %s, want 422", o, status, raw)
			}
		},
		// B sends an event naming A's tenant: refused, nothing produced.
		"ingest-events": func(t *testing.T, o openAPIOp, _, _ string) {
			_, body := event(t, w.a.tenant, "run_b_into_a")
			status, _, raw := call(t, w.cp.url, o.method, o.path, w.keyB, body, "Content-Type", "application/cloudevents+json")
			if status != http.StatusUnprocessableEntity || !strings.Contains(string(raw), "wrong_tenant") {
				t.Errorf("%s with an event of A's tenant: %d %s, want 422 wrong_tenant", o, status, raw)
			}
		},
		// B replays every dead letter of all time: only its own.
		"replay-dead-letters": func(t *testing.T, o openAPIOp, ctype, body string) {
			var b map[string]any
			_ = json.Unmarshal([]byte(body), &b)
			b["since"], b["until"] = "2000-01-01T00:00:00Z", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
			raw, _ := json.Marshal(b)
			status, _, ans := call(t, w.cp.url, o.method, o.path, w.keyB, string(raw), "Content-Type", ctype)
			if status/100 != 2 || strings.Contains(string(ans), w.a.dead) || !strings.Contains(string(ans), w.b.dead) {
				t.Errorf("%s by B over all time: %d %s; want 2xx replaying B's dead letter only", o, status, ans)
			}
		},
	}

	aIDs := w.a.all()
	listsShowingA := 0
	for _, o := range ops {
		t.Run(o.method+" "+o.path, func(t *testing.T) {
			if len(asList(o.op["security"])) == 0 {
				t.Fatalf("%s declares no security: every API operation needs a key", o)
			}
			if operatorOnly(o) {
				// The operator API (the rollout): no tenant's key may use it,
				// whatever it names (rollout_test.go tests it with an
				// operator's key).
				path := strings.NewReplacer("{tenant_id}", "acme").Replace(o.path)
				status, _, raw := call(t, w.cp.url, o.method, path, w.keyB, `{"state":"ga"}`, "Content-Type", "application/json")
				if status != http.StatusForbidden {
					t.Errorf("B %s %s: %d %s; want 403 (operator keys only)", o.method, path, status, raw)
				}
				return
			}
			ctype, body, err := requestBody(doc, o)
			if err != nil {
				t.Fatalf("%s: the sweep cannot build a body: %v", o, err)
			}
			query, err := requiredQuery(doc, o)
			if err != nil {
				t.Fatalf("%s: the sweep cannot build the query: %v", o, err)
			}
			path, hasParam := o.path, false
			for _, p := range o.params {
				if p["in"] != "path" {
					continue
				}
				hasParam = true
				name := "{" + p["name"].(string) + "}"
				prefix := o.path[:strings.Index(o.path, name)+len(name)]
				id, ok := resources[prefix]
				if pid, found := byPath[o.path]; found {
					id, ok = pid, true
				}
				if !ok {
					t.Fatalf("%s: the sweep does not know which resource %s names; add it to resources", o, prefix)
				}
				path = strings.Replace(path, name, url.PathEscape(id), 1)
			}
			switch {
			case hasParam:
				hdr := []string{}
				if ctype != "" {
					hdr = append(hdr, "Content-Type", ctype)
				}
				status, h, raw := call(t, w.cp.url, o.method, path+query, w.keyB, body, hdr...)
				if status != http.StatusNotFound || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
					t.Errorf("B %s %s: %d %s %s; want 404 problem+json", o.method, path, status, h.Get("Content-Type"), raw)
				}
				// A reads the same resource: B's 404 is about the tenant, not the id.
				if o.method == http.MethodGet {
					if status, _, raw := call(t, w.cp.url, o.method, path+query, w.key, ""); status != http.StatusOK {
						t.Errorf("A %s %s: %d %s; want 200", o.method, path, status, raw)
					}
				}
			case o.method == http.MethodGet:
				status, _, raw := call(t, w.cp.url, o.method, path+query, w.keyB, "")
				if status != http.StatusOK {
					t.Fatalf("B %s: %d %s", o, status, raw)
				}
				for _, id := range aIDs {
					if strings.Contains(string(raw), id) {
						t.Errorf("B's %s shows A's %s: %s", o, id, raw)
					}
				}
				// The same list shows A its own (so the check above can fail).
				if _, _, rawA := call(t, w.cp.url, o.method, path+query, w.key, ""); slices.ContainsFunc(aIDs, func(id string) bool {
					return strings.Contains(string(rawA), id)
				}) {
					listsShowingA++
				}
			default:
				fn, ok := writes[o.id()]
				if !ok {
					t.Fatalf("%s: the sweep does not know how B could reach A's data with it; add it to writes", o)
				}
				if fn != nil {
					fn(t, o, ctype, body)
				}
			}
		})
	}
	// list-webhooks, list-alert-rules, list-audit-events, list-dead-letters at least.
	if listsShowingA < 4 {
		t.Errorf("only %d lists show A's resources to A; the list checks prove little", listsShowingA)
	}
	if after := w.stateOf(t, w.a); after != before {
		t.Errorf("tenant A's data changed:\nbefore %s\nafter  %s", before, after)
	}
	var n int
	if err := w.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE tenant_id <> 'acme' AND resource_id = ANY($1)`, aIDs).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d audit rows in another tenant's name about A's resources", n)
	}
	t.Logf("swept %d operations", len(ops))
}

// tenantTables are the tables holding tenants' rows and their tenant column.
var tenantTables = map[string]string{
	"tenants": "id", "webhook_endpoints": "tenant_id", "alert_rules": "tenant_id", "audit_events": "tenant_id",
	"alerts": "tenant_id", "delivery_attempts": "tenant_id", "dead_letters": "tenant_id",
	"aggregate_groups": "tenant_id", "aggregate_rule_stats": "tenant_id",
}

// asApp runs fn in a transaction as the application role, with tenant set
// (none if empty), and rolls it back.
func asApp(t *testing.T, w *tenantWorld, tenant string, fn func(tx pgx.Tx) error) error {
	t.Helper()
	ctx := context.Background()
	tx, err := w.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT set_config('role', 'exo_app', true)`); err != nil {
		t.Fatal(err)
	}
	if tenant != "" {
		if _, err := tx.Exec(ctx, `SELECT set_config('exo.tenant_id', $1, true)`, tenant); err != nil {
			t.Fatal(err)
		}
	}
	return fn(tx)
}

// A direct query through the application role with tenant B set sees none
// of A's rows and cannot write them; with no tenant set it sees nothing.
func TestRowLevelSecurityHidesOtherTenants(t *testing.T) {
	t.Parallel()
	w := newTenantWorld(t)
	ctx := context.Background()

	// Every table with a tenant column is covered, so new ones are too.
	rows, err := w.pool.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND column_name = 'tenant_id'`)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]string{"tenants": "id"}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		tables[table] = col
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for table := range tenantTables {
		if _, ok := tables[table]; !ok {
			t.Fatalf("table %s has no tenant column any more", table)
		}
	}

	for table, col := range tables {
		t.Run(table, func(t *testing.T) {
			var total, own int
			if err := w.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE `+col+` = 'globex') FROM `+table).Scan(&total, &own); err != nil {
				t.Fatal(err)
			}
			err := asApp(t, w, "globex", func(tx pgx.Tx) error {
				var seen, others int
				if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE `+col+` <> 'globex') FROM `+table).Scan(&seen, &others); err != nil {
					return err
				}
				if others != 0 || seen != own {
					t.Errorf("%s as exo_app with tenant globex: sees %d rows, %d of other tenants; globex has %d of %d", table, seen, others, own, total)
				}
				return nil
			})
			var pe *pgconn.PgError
			switch {
			case errors.As(err, &pe) && pe.Code == "42501":
				// The application role may not read the table at all (api_keys).
				if _, hot := tenantTables[table]; hot {
					t.Errorf("exo_app cannot read %s, which the API needs: %v", table, err)
				}
			case err != nil:
				t.Fatal(err)
			case tenantTables[table] != "" && (own == 0 || own == total):
				t.Fatalf("%s: fixture has %d of %d rows for globex; need both tenants' rows", table, own, total)
			}
			// With no tenant set the role sees nothing.
			err = asApp(t, w, "", func(tx pgx.Tx) error {
				var seen int
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&seen); err != nil {
					return err
				}
				if seen != 0 {
					t.Errorf("%s as exo_app without a tenant: sees %d rows", table, seen)
				}
				return nil
			})
			if err != nil && (!errors.As(err, &pe) || pe.Code != "42501") {
				t.Fatal(err)
			}
		})
	}

	before := w.stateOf(t, w.a)
	writes := []struct {
		name, sql string
		args      []any
	}{
		{"update A's endpoint", `UPDATE webhook_endpoints SET name = 'pwned', is_active = false WHERE id = $1`, []any{w.a.endpoint}},
		{"delete A's endpoint softly", `UPDATE webhook_endpoints SET deleted_at = now() WHERE tenant_id = 'acme'`, nil},
		{"update A's rule", `UPDATE alert_rules SET webhook_endpoint_id = $1 WHERE id = $2`, []any{w.b.endpoint, w.a.rule}},
		{"mark A's dead letter replayed", `UPDATE dead_letters SET replayed_at = now() WHERE alert_id = $1`, []any{w.a.dead}},
		{"insert an endpoint for A", `INSERT INTO webhook_endpoints (id, tenant_id, name, target_url, secret, secret_hint, created_by)
			VALUES ('whk_rls_probe', 'acme', 'x', 'https://e.com', '{}', 'x', 'x')`, nil},
		{"insert a rule for A", `INSERT INTO alert_rules (id, tenant_id, name, event_type, webhook_endpoint_id, created_by)
			VALUES ('rul_rls_probe', 'acme', 'x', 'workflow.run.failed', $1, 'x')`, []any{w.a.endpoint}},
		{"insert an audit row for A", `INSERT INTO audit_events (tenant_id, actor, action, resource_type, resource_id)
			VALUES ('acme', 'x', 'webhook.delete', 'webhook', $1)`, []any{w.a.endpoint}},
		{"move B's endpoint to A", `UPDATE webhook_endpoints SET tenant_id = 'acme' WHERE id = $1`, []any{w.b.endpoint}},
		{"delete A's rows", `DELETE FROM alert_rules WHERE tenant_id = 'acme'`, nil},
		{"delete A's audit rows", `DELETE FROM audit_events WHERE tenant_id = 'acme'`, nil},
		{"delete A's history", `DELETE FROM delivery_attempts WHERE tenant_id = 'acme'`, nil},
	}
	for _, c := range writes {
		t.Run(c.name, func(t *testing.T) {
			err := asApp(t, w, "globex", func(tx pgx.Tx) error {
				tag, err := tx.Exec(ctx, c.sql, c.args...)
				if err == nil && tag.RowsAffected() != 0 {
					t.Errorf("%s as exo_app with tenant globex: %d rows affected", c.name, tag.RowsAffected())
				}
				if err == nil {
					// Committed, the statement must still have done nothing.
					return tx.Commit(ctx)
				}
				return err
			})
			var pe *pgconn.PgError
			if err != nil && !errors.As(err, &pe) {
				t.Fatalf("%s: %v", c.name, err)
			}
			t.Logf("%s: %v", c.name, err)
		})
	}
	if after := w.stateOf(t, w.a); after != before {
		t.Errorf("tenant A's data changed:\nbefore %s\nafter  %s", before, after)
	}
}
