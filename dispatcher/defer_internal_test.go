package dispatcher

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/schemas"
)

// A backlog deferral keeps the attempt number, writes no result and is due
// when the lane should be through the records ahead of it, however many
// deferrals came before (a healthy endpoint never loses an alert to our own
// back-pressure, even at its last attempt).
func TestBacklogDeferralKeepsTheAttempt(t *testing.T) {
	t.Parallel()
	cfg := Config{Topics: kafka.NewTopics("t."), Tiers: []time.Duration{time.Second, 10 * time.Second, time.Minute}, EndpointRate: 10}
	d := &Dispatcher{cfg: cfg, log: slog.New(slog.DiscardHandler), lanes: newLanes(&cfg),
		deferred:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"class"}),
		retries:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"tier"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"reason"}),
	}
	del := &schemas.DeliveryRecord{AlertID: "alrt_0123456789abcdef0123456789abcdef", TenantID: "acme", RuleID: "rul_1", EndpointID: "whk_1", MaxAttempts: 3}
	rec := func(attempt, deferrals int) *kgo.Record {
		return &kgo.Record{Topic: cfg.Topics.Deliveries + ".retry.1s", Key: []byte("acme/whk_1"), Value: []byte("{}"),
			Headers: []kgo.RecordHeader{{Key: schemas.HeaderAttempt, Value: []byte(strconv.Itoa(attempt))}, {Key: schemas.HeaderDeferrals, Value: []byte(strconv.Itoa(deferrals))}}}
	}
	l := d.lanes.get("acme/whk_1", 0)

	before := time.Now()
	out := d.deferBacklog(rec(3, 7), del, 3, l, 199) // 200 records at 10/s: 20 s
	if len(out) != 1 || out[0].Topic != TierTopic(cfg.Topics, time.Minute) {
		t.Fatalf("deferral produced %d records (first to %s), want one retry record on the 1m tier (the first covering 20 s)", len(out), out[0].Topic)
	}
	r := out[0]
	if a, n := kafka.Header(r, schemas.HeaderAttempt), kafka.Header(r, schemas.HeaderDeferrals); a != "3" || n != "8" {
		t.Errorf("exo-attempt %s, exo-deferrals %s; want 3 (unchanged) and 8", a, n)
	}
	if due := notBefore(r).Sub(before); due < 19*time.Second || due > 21*time.Second {
		t.Errorf("due in %v, want 20 s (200 records at 10/s)", due)
	}

	// At the last attempt, after many deferrals: still no result, no dead
	// letter, the attempt kept.
	for _, n := range []int{WarnDeferrals - 1, 10 * WarnDeferrals} {
		out = d.deferBacklog(rec(3, n), del, 3, l, 0)
		if len(out) != 1 || out[0].Topic == cfg.Topics.DeliveryResults || out[0].Topic == cfg.Topics.DeliveriesDLQ {
			t.Fatalf("deferral %d at the last attempt produced %d records (first to %s), want one retry record", n+1, len(out), out[0].Topic)
		}
		if a := kafka.Header(out[0], schemas.HeaderAttempt); a != "3" {
			t.Errorf("deferral %d: exo-attempt %s, want 3", n+1, a)
		}
	}
}
