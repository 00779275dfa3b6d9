package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The delivery quota through the real components: an operator caps acme
// at 3 alerts per minute through the operator API; a burst of acme's
// failures in one minute of event time is capped (each events partition
// admits ceil(3/P) = 1), and GET /v1/quota counts exactly the rest, as the
// processor reported them on quota-usage and the recorder stored them.
// globex, on the default (no cap), gets every alert of its own burst and
// sees nothing suppressed.
func TestTenantQuotaSuppressesOnlyThatTenant(t *testing.T) {
	t.Parallel()
	s := start(t)
	ctx := context.Background()
	opKey := controlplane.NewAPIKey()
	if _, err := controlplane.MintAPIKey(ctx, s.pool, "", "e2e ops", controlplane.RoleOperator, opKey); err != nil {
		t.Fatal(err)
	}
	receivers, endpoints := map[string]*eventReceiver{}, map[string]string{}
	for _, tenant := range []string{"acme", "globex"} {
		receivers[tenant] = newEventReceiver(t)
		wh := s.post(t, tenant, "/v1/webhooks", map[string]any{"name": "ops", "target_url": receivers[tenant].srv.URL + "/hook"})
		endpoints[tenant] = wh["id"].(string)
		s.post(t, tenant, "/v1/alert-rules", map[string]any{"name": "failures", "event_type": schemas.TypeRunFailed, "webhook_endpoint_id": wh["id"]})
	}
	s.waitGauge(t, "exo_processor_rules_active", 2)
	// The API answers once the override is on tenant-limits; the processor
	// catches up with it before each batch.
	if got := s.operator(t, opKey, "PUT", "/v1/quotas/tenants/acme", `{"delivery_quota_per_minute":3}`, 200); got["effective_per_minute"] != 3.0 {
		t.Fatalf("set acme's quota: %v", got)
	}

	// Both bursts in one minute of event time (in the past: no wall clock
	// is involved).
	const burst = 30
	minute := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Minute)
	cl, err := kgo.NewClient(kafka.ClientOpts(s.brokers, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ids := map[string][]string{}
	var recs []*kgo.Record
	for i := range burst {
		for _, tenant := range []string{"acme", "globex"} {
			ev := workload.Event(workload.Spec{Tenant: tenant, Type: schemas.TypeRunFailed, WorkflowName: "etl", Time: minute.Add(time.Duration(i) * time.Second)})
			rec, err := workload.Record(s.topics.Events, ev)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
			ids[tenant] = append(ids[tenant], ev.ID)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res := cl.ProduceSync(pctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	acmeParts := map[int32]bool{}
	for _, r := range res {
		if string(r.Record.Key[:5]) == "acme/" {
			acmeParts[r.Record.Partition] = true
		}
	}
	s.processed(t)

	// acme: one delivery per partition its runs hashed to, no more.
	delivered := s.deliveredEvents(t, endpoints["acme"])
	if len(delivered) != len(acmeParts) {
		t.Fatalf("acme has %d deliveries, want one per events partition its burst landed on (%d)", len(delivered), len(acmeParts))
	}
	waitAlerts(t, receivers["acme"], "acme's admitted alerts", keys(delivered))
	suppressed := burst - len(delivered)
	// globex: every alert.
	waitAlerts(t, receivers["globex"], "globex next to a capped acme", ids["globex"])

	// GET /v1/quota counts exactly the rest, once the recorder stored it.
	var q map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, q = s.do(t, "acme", "GET", "/v1/quota", "")
		if q["suppressed_last_24h"] == float64(suppressed) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantMinutes := fmt.Sprintf("[map[minute:%s suppressed:%d]]", minute.Format(time.RFC3339), suppressed)
	if q["limit_per_minute"] != 3.0 || q["limit_source"] != "operator" || q["suppressed_last_hour"] != float64(suppressed) ||
		q["suppressed_last_24h"] != float64(suppressed) || fmt.Sprint(q["minutes"]) != wantMinutes {
		t.Errorf("acme's GET /v1/quota: %v\nwant limit 3 (operator), %d suppressed in the last hour and 24h, minutes %s", q, suppressed, wantMinutes)
	}
	if _, g := s.do(t, "globex", "GET", "/v1/quota", ""); g["suppressed_last_24h"] != 0.0 || g["limit_source"] != "none" {
		t.Errorf("globex's GET /v1/quota: %v, want nothing suppressed and no cap", g)
	}
	if n := testenv.Metric(t, s.reg, "exo_processor_quota_suppressed_total", "scope", "tenant"); n != float64(suppressed) {
		t.Errorf("exo_processor_quota_suppressed_total{scope=tenant} = %v, want %d", n, suppressed)
	}
	if got := receivers["acme"].received(ids["acme"]); len(got) != len(delivered) {
		t.Errorf("acme's receiver got %d alerts, want the %d admitted", len(got), len(delivered))
	}
	s.alive(t)
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
