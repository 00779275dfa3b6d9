package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The rollout flag: with a tenant list only those tenants are served (beta),
// with an empty one nobody (off); the others get a 403 that says why.
func TestRolloutByTenant(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, tenant := range []string{"acme", "globex"} {
		keys[tenant] = controlplane.NewAPIKey()
		if _, err := controlplane.CreateAPIKey(context.Background(), pool, tenant, "test", controlplane.RoleAdmin, keys[tenant]); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name    string
		tenants []string
		want    map[string]int
	}{
		{"GA", nil, map[string]int{"acme": 200, "globex": 200}},
		{"beta", []string{"acme"}, map[string]int{"acme": 200, "globex": 403}},
		{"off", []string{}, map[string]int{"acme": 403, "globex": 403}},
	} {
		s, err := controlplane.New(controlplane.Config{Pool: pool, Brokers: []string{"127.0.0.1:1"}, Topics: kafka.NewTopics("t."),
			Keyring: ring, Log: testenv.Log(t), Tenants: c.tenants})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(s.Handler())
		b := &bundle{pool: pool, srv: srv, ring: ring}
		for tenant, want := range c.want {
			status, _, problem := b.do(t, "GET", "/v1/webhooks", keys[tenant], "")
			if status != want {
				t.Errorf("%s: %s lists webhooks: %d %v, want %d", c.name, tenant, status, problem, want)
			}
			if status := b.webhookStatus(t, keys[tenant]); (want == 200) != (status == 201) {
				t.Errorf("%s: %s creates a webhook: %d", c.name, tenant, status)
			}
		}
		srv.Close()
	}
}

func (b *bundle) webhookStatus(t *testing.T, key string) int {
	t.Helper()
	status, _, _ := b.do(t, "POST", "/v1/webhooks", key, `{"name":"ops","target_url":"https://hooks.example.com/a"}`)
	return status
}

// operatorKey mints an operator key (no tenant) in the bundle's database.
func (b *bundle) operatorKey(t *testing.T) string {
	t.Helper()
	key := controlplane.NewAPIKey()
	if _, err := controlplane.MintAPIKey(context.Background(), b.pool, "", "ops", controlplane.RoleOperator, key); err != nil {
		t.Fatal(err)
	}
	return key
}

// The operator API takes operator keys only: a tenant's admin key cannot
// switch its tenant on (or anything else), and an operator key reaches
// nothing of a tenant's. An operator key has no tenant; a tenant's key
// needs one.
func TestRolloutAPIIsOperatorOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.operatorKey(t)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/rollout", ""},
		{"PUT", "/v1/rollout/default", `{"state":"ga"}`},
		{"PUT", "/v1/rollout/tenants/acme", `{"state":"ga"}`},
		{"DELETE", "/v1/rollout/tenants/acme", ""},
		{"GET", "/v1/rollout/audit-events", ""},
	} {
		for _, key := range []string{b.adminKey, b.viewKey} {
			if status, _, problem := b.do(t, c.method, c.path, key, c.body); status != http.StatusForbidden {
				t.Errorf("a tenant's key: %s %s: %d %v, want 403", c.method, c.path, status, problem)
			}
		}
	}
	if n := b.count(t, "audit_events"); n != 1 { // the operator key's creation
		t.Errorf("%d audit rows after the refused changes, want 1", n)
	}
	if status, _, problem := b.do(t, "GET", "/v1/webhooks", op, ""); status != http.StatusForbidden {
		t.Errorf("an operator key lists a tenant's webhooks: %d %v", status, problem)
	}
	if status, _, me := b.do(t, "GET", "/v1/me", op, ""); status != http.StatusOK || me["role"] != "operator" || me["tenant_id"] != "" || me["can_write"] != false {
		t.Errorf("GET /v1/me with an operator key: %d %v", status, me)
	}
	if status, _, got := b.do(t, "GET", "/v1/rollout", op, ""); status != http.StatusOK {
		t.Errorf("GET /v1/rollout with an operator key: %d %v", status, got)
	}
	ctx := context.Background()
	if _, err := controlplane.MintAPIKey(ctx, b.pool, "acme", "x", controlplane.RoleOperator, controlplane.NewAPIKey()); err == nil {
		t.Error("an operator key of tenant acme was minted")
	}
	if _, err := controlplane.MintAPIKey(ctx, b.pool, "", "x", controlplane.RoleAdmin, controlplane.NewAPIKey()); err == nil {
		t.Error("an admin key without a tenant was minted")
	}
}

// Changes through the operator API are in force for the API at once, each
// is audited (actor the operator's key) in the rollout's trail and, for a
// tenant, in the tenant's own, and queued for the tenants topic; a change
// that changes nothing writes nothing; a bad state or tenant id is 422.
func TestRolloutChangesThroughTheAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.operatorKey(t)
	status := func(key string) int {
		t.Helper()
		s, _, _ := b.do(t, "GET", "/v1/webhooks", key, "")
		return s
	}
	put := func(path, state string) map[string]any {
		t.Helper()
		s, _, out := b.do(t, "PUT", path, op, `{"state":"`+state+`"}`)
		if s != http.StatusOK {
			t.Fatalf("PUT %s %s: %d %v", path, state, s, out)
		}
		return out
	}
	if got := put("/v1/rollout/default", "beta"); got["state"] != "beta" || got["source"] != "stored" {
		t.Fatalf("set default: %v", got)
	}
	if status(b.adminKey) != 403 || status(b.otherKey) != 403 {
		t.Error("beta without tenants: a tenant is still served")
	}
	if got := put("/v1/rollout/tenants/acme", "beta"); got["state"] != "beta" || got["served"] != true {
		t.Fatalf("set acme beta: %v", got)
	}
	if status(b.adminKey) != 200 || status(b.otherKey) != 403 {
		t.Error("beta with acme: acme not served or globex served")
	}
	put("/v1/rollout/default", "ga")
	put("/v1/rollout/tenants/acme", "off")
	if status(b.adminKey) != 403 || status(b.otherKey) != 200 {
		t.Error("ga with acme off: acme served or globex not")
	}
	audit := b.count(t, "audit_events")
	put("/v1/rollout/tenants/acme", "off") // nothing changes
	if n := b.count(t, "audit_events"); n != audit {
		t.Errorf("a change to the same state wrote %d audit rows", n-audit)
	}
	if s, _, got := b.do(t, "DELETE", "/v1/rollout/tenants/acme", op, ""); s != 200 || got["state"] != nil || got["served"] != true {
		t.Fatalf("clear acme: %d %v", s, got)
	}
	if status(b.adminKey) != 200 {
		t.Error("acme cleared under ga: not served")
	}
	if s, _, got := b.do(t, "DELETE", "/v1/rollout/tenants/initech", op, ""); s != 404 {
		t.Errorf("clear an unknown tenant: %d %v, want 404", s, got)
	}
	for _, c := range []struct{ path, body, where string }{
		{"/v1/rollout/default", `{"state":"on"}`, "body.state"},
		{"/v1/rollout/tenants/acme", `{"state":"GA"}`, "body.state"},
		{"/v1/rollout/tenants/acme", `{}`, "property state"},
		{"/v1/rollout/tenants/-acme", `{"state":"ga"}`, "path.tenant_id"},
	} {
		s, _, problem := b.do(t, "PUT", c.path, op, c.body)
		if s != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(problem["errors"]), c.where) {
			t.Errorf("PUT %s %s: %d %v, want 422 naming %s", c.path, c.body, s, problem, c.where)
		}
	}
	if n := b.count(t, "audit_events"); n != audit+1 {
		t.Errorf("%d audit rows written by the refused changes and the clear, want 1", n-audit)
	}

	// The rollout's trail: every change, newest first, by the operator's key.
	s, _, trail := b.do(t, "GET", "/v1/rollout/audit-events?limit=3", op, "")
	if s != 200 {
		t.Fatalf("rollout audit: %d %v", s, trail)
	}
	items := trail["items"].([]any)
	var got []string
	for _, it := range items {
		e := it.(map[string]any)
		got = append(got, fmt.Sprint(e["action"], " ", e["resource_id"], " ", e["before"], "→", e["after"]))
		if !strings.HasPrefix(e["actor"].(string), "key:") || !strings.Contains(e["actor"].(string), "(ops)") {
			t.Errorf("actor %v, want the operator's key", e["actor"])
		}
	}
	want := []string{
		"rollout.clear acme map[state:off]→map[state:<nil>]",
		"rollout.set acme map[state:beta]→map[state:off]",
		"rollout.default * map[state:beta]→map[state:ga]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rollout trail %q, want %q", got, want)
	}
	s, _, older := b.do(t, "GET", "/v1/rollout/audit-events?cursor="+trail["next_cursor"].(string), op, "")
	if s != 200 || len(older["items"].([]any)) != 2 {
		t.Errorf("rollout trail, next page: %d %v; want the 2 first changes", s, older)
	}
	// acme sees the changes of its own state in its trail, not the default's.
	s, _, own := b.do(t, "GET", "/v1/audit-events?resource_type=tenant_rollout", b.adminKey, "")
	if s != 200 || len(own["items"].([]any)) != 3 {
		t.Errorf("acme's trail of its rollout: %d %v, want its 3 changes", s, own)
	}
	if s, _, own := b.do(t, "GET", "/v1/audit-events?resource_type=rollout_default", b.adminKey, ""); s != 200 || len(own["items"].([]any)) != 0 {
		t.Errorf("acme sees the default's changes: %d %v", s, own)
	}

	// Each change is queued for the tenants topic, in order; a cleared
	// state is a tombstone.
	rows, err := b.pool.Query(context.Background(), `SELECT key, value FROM outbox WHERE topic = 't.tenants' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var queued []string
	for rows.Next() {
		var key string
		var value []byte
		if err := rows.Scan(&key, &value); err != nil {
			t.Fatal(err)
		}
		if value == nil {
			queued = append(queued, key+"=tombstone")
			continue
		}
		if err := schemas.Validate(schemas.KindTenant, value); err != nil {
			t.Errorf("outbox value %s: %v", value, err)
		}
		var rec schemas.TenantRecord
		_ = json.Unmarshal(value, &rec)
		queued = append(queued, key+"="+rec.State)
	}
	if want := []string{"*=beta", "acme=beta", "*=ga", "acme=off", "acme=tombstone"}; !slices.Equal(queued, want) {
		t.Errorf("queued %v, want %v", queued, want)
	}

	// The listing: the default and every tenant, served or not.
	put("/v1/rollout/default", "beta")
	put("/v1/rollout/tenants/globex", "ga")
	s, _, list := b.do(t, "GET", "/v1/rollout", op, "")
	if s != 200 {
		t.Fatalf("list: %d %v", s, list)
	}
	def := list["default"].(map[string]any)
	tenants := fmt.Sprint(list["tenants"])
	if def["state"] != "beta" || def["source"] != "stored" ||
		!strings.Contains(tenants, "served:false state:<nil> tenant_id:acme") || !strings.Contains(tenants, "served:true state:ga tenant_id:globex") {
		t.Errorf("list: %v", list)
	}
	if s, _, page := b.do(t, "GET", "/v1/rollout?limit=1", op, ""); s != 200 || len(page["tenants"].([]any)) != 1 || page["next_cursor"] == "" {
		t.Errorf("list, a page of one: %d %v", s, page)
	}
}

// EXO_TENANTS seeds an empty rollout at start: the default and state beta
// for each tenant listed, audited as rollout.seed by the system and
// published. Once a default is stored it wins: a control plane started
// later with another EXO_TENANTS changes nothing, and the API follows
// what is stored.
func TestEXOTenantsSeedsAnEmptyRollout(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	globex := controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(context.Background(), e.pool, "globex", "test", controlplane.RoleAdmin, globex); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t)
	cfg.Tenants = []string{"acme", "initech"}
	cp := startCP(t, cfg)
	trail := func() []string {
		t.Helper()
		rows, err := e.pool.Query(context.Background(), `SELECT COALESCE(tenant_id, '-'), actor, action, resource_id, after::text, request_id
			FROM audit_events WHERE resource_type IN ('rollout_default', 'tenant_rollout') ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var tenant, actor, action, id, after, req string
			if err := rows.Scan(&tenant, &actor, &action, &id, &after, &req); err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.Join([]string{tenant, actor, action, id, after, req}, " "))
		}
		return out
	}
	want := []string{
		`- system rollout.seed * {"state": "beta"} EXO_TENANTS`,
		`acme system rollout.seed acme {"state": "beta"} EXO_TENANTS`,
		`initech system rollout.seed initech {"state": "beta"} EXO_TENANTS`,
	}
	for deadline := time.Now().Add(30 * time.Second); !slices.Equal(trail(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rollout trail %q, want %q", trail(), want)
		}
	}
	// Published: the relay sends the seed, then the start-up republish.
	published := func(atLeast int) int {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var all, unsent int
			if err := e.pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM outbox WHERE topic = $1`,
				e.topics.Tenants).Scan(&all, &unsent); err != nil {
				t.Fatal(err)
			}
			if all >= atLeast && unsent == 0 {
				return all
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d rollout records queued, %d not published within 30s; want at least %d, all published", all, unsent, atLeast)
			}
		}
	}
	rows := published(6) // 3 seeded, 3 republished
	if s, _, _ := call(t, cp.url, "GET", "/v1/webhooks", e.key, ""); s != 200 {
		t.Errorf("acme (in the beta): %d", s)
	}
	if s, _, _ := call(t, cp.url, "GET", "/v1/webhooks", globex, ""); s != 403 {
		t.Errorf("globex (not in the beta): %d", s)
	}
	cp.stop()

	cfg = e.config(t)
	cfg.Tenants = []string{"globex"}
	cp = startCP(t, cfg)
	published(rows + 3) // its start-up is done: the stored rollout republished
	if s, _, _ := call(t, cp.url, "GET", "/v1/webhooks", globex, ""); s != 403 {
		t.Errorf("globex, with EXO_TENANTS=globex over a stored rollout: %d, want 403 (stored wins)", s)
	}
	if s, _, _ := call(t, cp.url, "GET", "/v1/webhooks", e.key, ""); s != 200 {
		t.Errorf("acme, with EXO_TENANTS=globex over a stored rollout: %d, want 200 (stored wins)", s)
	}
	if got := trail(); !slices.Equal(got, want) {
		t.Errorf("a second start wrote to the rollout trail: %q", got)
	}
}
