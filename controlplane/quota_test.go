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
	"github.com/exospherehost/exo-alerts/internal/store"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The operator routes refuse tenants' keys, and a tenant's GET /v1/quota
// refuses operator keys.
func TestQuotaAPIIsOperatorOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.operatorKey(t)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/quotas", ""},
		{"PUT", "/v1/quotas/tenants/acme", `{"delivery_quota_per_minute":1}`},
		{"DELETE", "/v1/quotas/tenants/acme", ""},
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
	if status, _, problem := b.do(t, "GET", "/v1/quota", op, ""); status != http.StatusForbidden {
		t.Errorf("an operator key reads a tenant's quota: %d %v", status, problem)
	}
	for _, key := range []string{b.adminKey, b.viewKey} {
		if status, _, got := b.do(t, "GET", "/v1/quota", key, ""); status != http.StatusOK || got["limit_source"] != "none" {
			t.Errorf("GET /v1/quota with a tenant's key: %d %v", status, got)
		}
	}
}

// Changes are audited (quota.set, quota.clear), queued for tenant-limits
// (a clear is a tombstone), a change to the same value writes nothing, and
// bad input is 422.
func TestQuotaChangesThroughTheAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	op := b.operatorKey(t)
	put := func(tenant, body string) map[string]any {
		t.Helper()
		s, _, out := b.do(t, "PUT", "/v1/quotas/tenants/"+tenant, op, body)
		if s != http.StatusOK {
			t.Fatalf("PUT %s %s: %d %v", tenant, body, s, out)
		}
		return out
	}
	if got := put("acme", `{"delivery_quota_per_minute":600}`); got["delivery_quota_per_minute"] != 600.0 || got["effective_per_minute"] != 600.0 {
		t.Fatalf("set acme: %v", got)
	}
	audit := b.count(t, "audit_events")
	put("acme", `{"delivery_quota_per_minute":600}`)
	if n := b.count(t, "audit_events"); n != audit {
		t.Errorf("setting the same quota wrote %d audit rows", n-audit)
	}
	put("initech", `{"delivery_quota_per_minute":0}`) // unknown: created; 0 is unlimited
	if s, _, got := b.do(t, "DELETE", "/v1/quotas/tenants/acme", op, ""); s != 200 || got["delivery_quota_per_minute"] != nil {
		t.Fatalf("clear acme: %d %v", s, got)
	}
	if s, _, got := b.do(t, "DELETE", "/v1/quotas/tenants/nobody", op, ""); s != 404 {
		t.Errorf("clear an unknown tenant: %d %v, want 404", s, got)
	}
	for _, c := range []struct{ path, body, where string }{
		{"/v1/quotas/tenants/acme", `{"delivery_quota_per_minute":-1}`, "body.delivery_quota_per_minute"},
		{"/v1/quotas/tenants/acme", `{}`, "delivery_quota_per_minute"},
		{"/v1/quotas/tenants/-acme", `{"delivery_quota_per_minute":1}`, "path.tenant_id"},
	} {
		s, _, problem := b.do(t, "PUT", c.path, op, c.body)
		if s != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(problem["errors"]), c.where) {
			t.Errorf("PUT %s %s: %d %v, want 422 naming %s", c.path, c.body, s, problem, c.where)
		}
	}

	// acme's trail holds its two changes, by the operator's key.
	s, _, own := b.do(t, "GET", "/v1/audit-events?resource_type=tenant_quota", b.adminKey, "")
	if s != 200 {
		t.Fatalf("acme's trail: %d %v", s, own)
	}
	var trail []string
	for _, it := range own["items"].([]any) {
		e := it.(map[string]any)
		trail = append(trail, fmt.Sprint(e["action"], " ", e["before"], "→", e["after"]))
		if !strings.Contains(e["actor"].(string), "(ops)") {
			t.Errorf("actor %v, want the operator's key", e["actor"])
		}
	}
	if want := []string{
		"quota.clear map[delivery_quota_per_minute:600]→map[delivery_quota_per_minute:<nil>]",
		"quota.set map[delivery_quota_per_minute:<nil>]→map[delivery_quota_per_minute:600]",
	}; !slices.Equal(trail, want) {
		t.Errorf("acme's quota trail %q, want %q", trail, want)
	}

	// Queued for tenant-limits in order, valid records; a clear is a tombstone.
	rows, err := b.pool.Query(context.Background(), `SELECT key, value FROM outbox WHERE topic = 't.tenant-limits' ORDER BY id`)
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
		if err := schemas.Validate(schemas.KindTenantLimits, value); err != nil {
			t.Errorf("outbox value %s: %v", value, err)
		}
		var rec schemas.TenantLimitsRecord
		_ = json.Unmarshal(value, &rec)
		queued = append(queued, fmt.Sprint(key, "=", rec.DeliveryQuotaPerMinute))
	}
	if want := []string{"acme=600", "initech=0", "acme=tombstone"}; !slices.Equal(queued, want) {
		t.Errorf("queued %v, want %v", queued, want)
	}

	s, _, list := b.do(t, "GET", "/v1/quotas", op, "")
	if s != 200 || fmt.Sprint(list["tenants"]) != "[map[delivery_quota_per_minute:0 effective_per_minute:0 tenant_id:initech]]" {
		t.Errorf("list: %d %v", s, list)
	}
}

// GET /v1/quota shows the tenant's cap, where it comes from, and sums its
// own suppressions only (row-level security), by minute of the last hour.
func TestGetQuotaCountsTheTenantsSuppressions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s, err := controlplane.New(controlplane.Config{Pool: b.pool, Brokers: []string{"127.0.0.1:1"}, Topics: kafka.NewTopics("t."),
		Keyring: b.ring, Log: nil, TenantQuota: 100, GlobalQuota: 5000})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	b = &bundle{pool: b.pool, srv: srv, ring: b.ring, adminKey: b.adminKey, otherKey: b.otherKey}
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Minute)
	rows := []store.QuotaSuppression{
		{Partition: 0, Offset: 1, TenantID: "acme", Minute: now.Add(-2 * time.Minute), Scope: "tenant", Suppressed: 5, Limit: 100},
		{Partition: 1, Offset: 1, TenantID: "acme", Minute: now.Add(-2 * time.Minute), Scope: "tenant", Suppressed: 7, Limit: 100},
		{Partition: 0, Offset: 2, TenantID: "acme", Minute: now.Add(-10 * time.Minute), Scope: "global", Suppressed: 1, Limit: 5000},
		{Partition: 0, Offset: 3, TenantID: "acme", Minute: now.Add(-3 * time.Hour), Scope: "tenant", Suppressed: 30, Limit: 100},
		{Partition: 0, Offset: 4, TenantID: "acme", Minute: now.Add(-30 * time.Hour), Scope: "tenant", Suppressed: 1000, Limit: 100},
		{Partition: 2, Offset: 9, TenantID: "globex", Minute: now.Add(-2 * time.Minute), Scope: "tenant", Suppressed: 400, Limit: 100},
	}
	if err := store.New(b.pool, "").System(ctx, func(tx *store.Tx) error {
		_, err := tx.InsertQuotaSuppressions(ctx, rows)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	status, _, got := b.do(t, "GET", "/v1/quota", b.adminKey, "")
	if status != 200 {
		t.Fatalf("GET /v1/quota: %d %v", status, got)
	}
	minutes := fmt.Sprint(got["minutes"])
	want := fmt.Sprintf("[map[minute:%s suppressed:12] map[minute:%s suppressed:1]]",
		now.Add(-2*time.Minute).Format(time.RFC3339), now.Add(-10*time.Minute).Format(time.RFC3339))
	if got["limit_per_minute"] != 100.0 || got["limit_source"] != "default" || got["global_limit_per_minute"] != 5000.0 ||
		got["suppressed_last_hour"] != 13.0 || got["suppressed_last_24h"] != 43.0 || minutes != want {
		t.Errorf("acme's quota %v\nwant limit 100 (default), global 5000, 13 last hour, 43 last 24h, minutes %s", got, want)
	}
	op := b.operatorKey(t)
	if s, _, out := b.do(t, "PUT", "/v1/quotas/tenants/globex", op, `{"delivery_quota_per_minute":0}`); s != 200 {
		t.Fatalf("set globex: %d %v", s, out)
	}
	if _, _, g := b.do(t, "GET", "/v1/quota", b.otherKey, ""); g["limit_per_minute"] != 0.0 || g["limit_source"] != "operator" || g["suppressed_last_hour"] != 400.0 {
		t.Errorf("globex's quota %v, want 0 by the operator and its own 400", g)
	}
}
