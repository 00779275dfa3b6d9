package dispatcher_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// setRollout publishes a tenant's state on the tenants topic ("": none).
func (h *harness) setRollout(key, state string) {
	h.t.Helper()
	var v []byte
	if state != "" {
		v, _ = json.Marshal(schemas.TenantRecord{TenantID: key, State: state, UpdatedAt: time.Now().UTC()})
	}
	h.produce(&kgo.Record{Topic: h.topics.Tenants, Key: []byte(key), Value: v})
}

// A delivery of a tenant the rollout switched off is not sent: it is
// dead-lettered with the reason tenant_disabled (result dead, no status),
// counted, and the receiver gets nothing. The dispatcher follows the
// rollout live: switched on again, the tenant's next delivery is sent;
// switched off, its deliveries are set aside again within moments. No
// restart.
func TestTenantSwitchedOffIsNotSent(t *testing.T) {
	t.Parallel()
	h := setup(t)
	recv := newReceiver(t, status(http.StatusNoContent, ""))
	ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"})
	h.setRollout(tenant, "off")
	rec, del := h.delivery(ep.id)
	h.produce(rec)
	h.start(local)

	res, _ := h.result(del.AlertID)
	if res.Outcome != schemas.OutcomeDead || res.ErrorClass != "tenant_disabled" || res.StatusCode != 0 {
		t.Errorf("result = %+v; want dead, tenant_disabled, no status", res)
	}
	checkDeadLetter(t, h.dlq(rec.Value), rec, "tenant_disabled")
	if n := len(recv.requests()); n != 0 {
		t.Errorf("receiver got %d requests of a tenant switched off", n)
	}
	if n := testenv.Metric(t, h.reg, "exo_dispatcher_dead_letters_total", "reason", "tenant_disabled"); n != 1 {
		t.Errorf("dead letters of reason tenant_disabled: %v, want 1", n)
	}

	// sendUntil produces a fresh delivery until one's result has the
	// outcome want (the table tails the topic: a change is in force within
	// moments, not at once), and returns how long that took.
	sendUntil := func(want string) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			rec, del := h.delivery(ep.id)
			h.produce(rec)
			if res, _ := h.result(del.AlertID); res.Outcome == want {
				return time.Since(start)
			}
			if time.Since(start) > deadline {
				t.Fatalf("no delivery with outcome %s within %v of the change", want, deadline)
			}
		}
	}
	// Switched on (no explicit state: the default, ga, serves it): a tenant
	// that looks off makes the table catch up first, so the first delivery
	// made after the switch is sent.
	h.setRollout(tenant, "")
	rec, del = h.delivery(ep.id)
	h.produce(rec)
	if res, _ := h.result(del.AlertID); res.Outcome != schemas.OutcomeDelivered {
		t.Fatalf("the first delivery after the tenant was switched on: %+v, want delivered", res)
	}
	// Switched off, the table tails the topic: within moments. The
	// deliveries made before it caught up are sent (each has its result
	// when sendUntil returns); from then on, none is.
	h.setRollout(schemas.RolloutDefaultKey, "beta") // acme has no state: not in the beta
	t.Logf("global beta: a delivery was set aside %v later", sendUntil(schemas.OutcomeDead).Round(time.Millisecond))
	sent := len(recv.requests())
	rec, del = h.delivery(ep.id)
	h.produce(rec)
	if res, _ := h.result(del.AlertID); res.ErrorClass != "tenant_disabled" {
		t.Errorf("a delivery after the switch: %+v, want tenant_disabled", res)
	}
	if n := len(recv.requests()); n != sent {
		t.Errorf("the receiver got %d requests after the tenant was switched off", n-sent)
	}
}
