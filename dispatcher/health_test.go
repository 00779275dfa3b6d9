package dispatcher_test

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// healthOf returns the endpoint-health records of endpoint the topic holds
// now, validated.
func (h *harness) healthOf(endpoint string) []schemas.EndpointHealthRecord {
	h.t.Helper()
	var out []schemas.EndpointHealthRecord
	for _, r := range h.readAll(h.topics.EndpointHealth) {
		if err := schemas.Validate(schemas.KindEndpointHealth, r.Value); err != nil {
			h.t.Errorf("endpoint health record invalid: %v\n%s", err, r.Value)
		}
		var rec schemas.EndpointHealthRecord
		_ = json.Unmarshal(r.Value, &rec)
		if string(r.Key) != tenant+"/"+rec.EndpointID {
			h.t.Errorf("endpoint health record keyed %q: %s", r.Key, r.Value)
		}
		if rec.EndpointID == endpoint {
			out = append(out, rec)
		}
	}
	return out
}

// asRule makes a delivery record one of rule (a notice or test delivery).
func asRule(t *testing.T, rec *kgo.Record, rule string) *kgo.Record {
	t.Helper()
	var d schemas.DeliveryRecord
	if err := json.Unmarshal(rec.Value, &d); err != nil {
		t.Fatal(err)
	}
	d.RuleID = rule
	rec.Value, _ = json.Marshal(d)
	return rec
}

// An endpoint whose breaker stays open while its alerts fail is reported
// unhealthy once, however long it stays open and however many attempts
// and probes fail meanwhile; healthy once when its breaker closes. An
// endpoint where only notice deliveries fail is never reported.
func TestBreakerNoticeOnceWhileOpen(t *testing.T) {
	t.Parallel()
	h := setup(t)
	var up atomic.Bool
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if up.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	ep := h.addEndpoint(endpoint{url: rcv.srv.URL + "/hook"})
	noticeRcv := newReceiver(t, status(http.StatusInternalServerError, "down"))
	noticeEP := h.addEndpoint(endpoint{url: noticeRcv.srv.URL + "/notices"})
	var failing, notices []*kgo.Record
	for range 3 {
		r, _ := h.delivery(ep.id)
		failing = append(failing, withMaxAttempts(t, r, 8))
		n, _ := h.delivery(noticeEP.id)
		notices = append(notices, asRule(t, withMaxAttempts(t, n, 8), schemas.NoticeRuleID))
	}
	h.produce(append(failing, notices...)...)
	h.startWith(local, func(c *dispatcher.Config) {
		c.BreakerThreshold, c.BreakerCooldown, c.UnhealthyAfter = 2, 200*time.Millisecond, 500*time.Millisecond
	})
	unhealthy := h.waitFor(h.topics.EndpointHealth, "unhealthy report", func(r *kgo.Record) bool {
		return string(r.Key) == tenant+"/"+ep.id
	})
	// The alerts go on failing through every tier until they are dead:
	// the breaker stays open long after the report.
	for _, r := range append(failing, notices...) {
		h.dlq(r.Value)
	}
	got := h.healthOf(ep.id)
	if len(got) != 1 || got[0].State != schemas.EndpointUnhealthy || got[0].ConsecutiveFailures < 2 ||
		got[0].LastErrorClass == "" || got[0].Instance == "" || got[0].At.Sub(got[0].Since) < 500*time.Millisecond {
		t.Fatalf("while the breaker stayed open: %+v; want one unhealthy report, 500ms or more after it opened", got)
	}
	if n := len(h.healthOf(noticeEP.id)); n != 0 {
		t.Errorf("an endpoint failing only notice deliveries was reported %d times", n)
	}
	// The endpoint recovers: the next alert's probe closes the breaker.
	up.Store(true)
	r, d := h.delivery(ep.id)
	h.produce(withMaxAttempts(t, r, 8))
	h.finalResults(d.AlertID)
	healthy := h.waitFor(h.topics.EndpointHealth, "healthy report", func(r *kgo.Record) bool {
		var rec schemas.EndpointHealthRecord
		_ = json.Unmarshal(r.Value, &rec)
		return rec.EndpointID == ep.id && rec.State == schemas.EndpointHealthy
	})
	got = h.healthOf(ep.id)
	if len(got) != 2 || !got[1].Since.Equal(got[0].Since) {
		t.Errorf("after recovery: %+v; want the unhealthy report and one healthy report of the same stretch", got)
	}
	if unhealthy.Partition != healthy.Partition {
		t.Errorf("unhealthy and healthy reports on partitions %d and %d: the key must keep them in order", unhealthy.Partition, healthy.Partition)
	}
	for state, want := range map[string]float64{schemas.EndpointUnhealthy: 1, schemas.EndpointHealthy: 1} {
		if n := testenv.Metric(t, h.reg, "exo_dispatcher_unhealthy_notices_total", "state", state); n != want {
			t.Errorf("exo_dispatcher_unhealthy_notices_total{state=%s} = %v, want %v", state, n, want)
		}
	}
}

// A dispatcher that starts while an endpoint is down (a restart, a deploy,
// another tier's instance) does not know that an earlier instance reported
// it unhealthy: its own stretch of failures may end before UnhealthyAfter.
// The breaker closing must still be reported healthy, or the tenant's open
// endpoint_unhealthy notice ("keeps failing") is never resolved: the
// recorder resolves an open notice on any healthy report of a later time.
func TestBreakerClosedBeforeReportStillReportsHealthy(t *testing.T) {
	t.Parallel()
	h := setup(t)
	var up atomic.Bool
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if up.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	ep := h.addEndpoint(endpoint{url: rcv.srv.URL + "/hook"})
	var failing []*kgo.Record
	for range 3 {
		r, _ := h.delivery(ep.id)
		failing = append(failing, withMaxAttempts(t, r, 2))
	}
	h.produce(failing...)
	h.startWith(local, func(c *dispatcher.Config) {
		c.BreakerThreshold, c.BreakerCooldown, c.UnhealthyAfter = 2, 200*time.Millisecond, time.Hour
	})
	for _, r := range failing {
		h.dlq(r.Value)
	}
	up.Store(true)
	r, d := h.delivery(ep.id)
	h.produce(withMaxAttempts(t, r, 8))
	h.finalResults(d.AlertID)
	h.waitFor(h.topics.EndpointHealth, "healthy report", func(r *kgo.Record) bool {
		var rec schemas.EndpointHealthRecord
		_ = json.Unmarshal(r.Value, &rec)
		return rec.EndpointID == ep.id && rec.State == schemas.EndpointHealthy
	})
	got := h.healthOf(ep.id)
	if len(got) != 1 || got[0].State != schemas.EndpointHealthy || got[0].Since.IsZero() || got[0].At.Before(got[0].Since) {
		t.Errorf("health reports %+v; want one healthy report of the stretch (no unhealthy one: it never lasted UnhealthyAfter)", got)
	}
}
