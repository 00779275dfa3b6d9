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
// when the lane should be through the records ahead of it; the
// MaxDeferrals-th since an attempt counts as one, so nothing bounces for
// ever.
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
			Headers: []kgo.RecordHeader{{Key: HeaderAttempt, Value: []byte(strconv.Itoa(attempt))}, {Key: HeaderDeferrals, Value: []byte(strconv.Itoa(deferrals))}}}
	}
	l := d.lanes.get("acme/whk_1", 0)

	before := time.Now()
	out := d.deferBacklog(rec(3, MaxDeferrals-2), del, 3, l, 199) // 200 records at 10/s: 20 s
	if len(out) != 1 || out[0].Topic != TierTopic(cfg.Topics, time.Minute) {
		t.Fatalf("deferral produced %d records (first to %s), want one retry record on the 1m tier (the first covering 20 s)", len(out), out[0].Topic)
	}
	r := out[0]
	if a, n := kafka.Header(r, HeaderAttempt), kafka.Header(r, HeaderDeferrals); a != "3" || n != strconv.Itoa(MaxDeferrals-1) {
		t.Errorf("exo-attempt %s, exo-deferrals %s; want 3 (unchanged) and %d", a, n, MaxDeferrals-1)
	}
	if due := notBefore(r).Sub(before); due < 19*time.Second || due > 21*time.Second {
		t.Errorf("due in %v, want 20 s (200 records at 10/s)", due)
	}

	// The last free deferral used: this one is an attempt, with a result,
	// and the count starts again.
	out = d.deferBacklog(rec(2, MaxDeferrals-1), del, 2, l, 0)
	if len(out) != 2 || out[0].Topic != cfg.Topics.DeliveryResults {
		t.Fatalf("the %dth deferral produced %d records, want a result and a retry", MaxDeferrals, len(out))
	}
	res, err := schemas.DecodeResult(out[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempt != 2 || res.Outcome != schemas.OutcomeRetry || res.ErrorClass != deferBacklog {
		t.Errorf("result %+v, want attempt 2, retry, endpoint_backlog", res)
	}
	if a, n := kafka.Header(out[1], HeaderAttempt), kafka.Header(out[1], HeaderDeferrals); a != "3" || n != "0" {
		t.Errorf("retry record: exo-attempt %s, exo-deferrals %s; want 3 and 0", a, n)
	}
	// ... and at the last attempt it is dead-lettered.
	out = d.deferBacklog(rec(3, MaxDeferrals-1), del, 3, l, 0)
	if len(out) != 2 || out[1].Topic != cfg.Topics.DeliveriesDLQ {
		t.Fatalf("a capped deferral at the last attempt produced %d records, want a result and a dead letter", len(out))
	}
}
