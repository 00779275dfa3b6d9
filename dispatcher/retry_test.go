package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// withMaxAttempts rewrites a delivery record's max_attempts.
func withMaxAttempts(t *testing.T, rec *kgo.Record, n int) *kgo.Record {
	t.Helper()
	var d schemas.DeliveryRecord
	if err := json.Unmarshal(rec.Value, &d); err != nil {
		t.Fatal(err)
	}
	d.MaxAttempts = n
	rec.Value, _ = json.Marshal(d)
	return rec
}

// results waits until alertID has a result with a final outcome and
// returns all its results in attempt order.
func (h *harness) finalResults(alertID string) []schemas.ResultRecord {
	h.t.Helper()
	h.waitFor(h.topics.DeliveryResults, "final result of "+alertID, func(r *kgo.Record) bool {
		return bytes.Contains(r.Value, []byte(`"alert_id":"`+alertID+`"`)) && !bytes.Contains(r.Value, []byte(`"outcome":"retry"`))
	})
	var out []schemas.ResultRecord
	for _, r := range h.resultsOf(alertID) {
		var res schemas.ResultRecord
		if err := json.Unmarshal(r.Value, &res); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, res)
	}
	return out
}

// A receiver that answers 500 three times, then 200: four attempts, each
// reported, the retries on the tiers in order, one delivered, nothing in the
// DLQ, and every attempt carries the same webhook-id.
func TestRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	h := setup(t)
	var n atomic.Int32
	recv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) <= 3 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"})
	rec, del := h.delivery(ep.id)
	h.produce(withMaxAttempts(t, rec, 8))
	h.start(local)

	res := h.finalResults(del.AlertID)
	if len(res) != 4 {
		t.Fatalf("%d results, want 4: %+v", len(res), res)
	}
	for i, r := range res {
		want := schemas.OutcomeRetry
		if i == 3 {
			want = schemas.OutcomeDelivered
		}
		if r.Attempt != i+1 || r.Outcome != want {
			t.Errorf("result %d = attempt %d %s, want attempt %d %s", i, r.Attempt, r.Outcome, i+1, want)
		}
	}
	reqs := recv.requests()
	if len(reqs) != 4 {
		t.Fatalf("receiver got %d requests, want 4", len(reqs))
	}
	for _, r := range reqs {
		if r.header.Get("webhook-id") != del.AlertID {
			t.Errorf("webhook-id %q, want the alert id on every attempt", r.header.Get("webhook-id"))
		}
	}
	for _, dl := range h.readAll(h.topics.DeliveriesDLQ) {
		if bytes.Contains(dl.Value, []byte(del.AlertID)) {
			t.Error("a delivered alert is on the DLQ")
		}
	}
	// One retry scheduled on each tier, in order; nothing dead-lettered.
	for _, tier := range []string{"200ms", "400ms", "800ms"} {
		if n := testenv.Metric(h.t, h.reg, "exo_dispatcher_retries_total", "tier", tier); n != 1 {
			t.Errorf("exo_dispatcher_retries_total{tier=%q} = %v, want 1", tier, n)
		}
	}
	if n := testenv.Metric(h.t, h.reg, "exo_dispatcher_dead_letters_total"); n != 0 {
		t.Errorf("exo_dispatcher_dead_letters_total = %v, want 0", n)
	}
}

// 429 with Retry-After: 2 → the next attempt comes no sooner than 2 s later,
// although the first tier is 200 ms.
func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	h := setup(t)
	var n atomic.Int32
	var first, second atomic.Int64
	recv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) == 1 {
			first.Store(time.Now().UnixNano())
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		second.CompareAndSwap(0, time.Now().UnixNano())
		w.WriteHeader(http.StatusNoContent)
	})
	ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"})
	rec, del := h.delivery(ep.id)
	h.produce(withMaxAttempts(t, rec, 8))
	h.start(local)

	res := h.finalResults(del.AlertID)
	if len(res) != 2 || res[0].StatusCode != http.StatusTooManyRequests || res[1].Outcome != schemas.OutcomeDelivered {
		t.Fatalf("results %+v, want a 429 then delivered", res)
	}
	if gap := time.Duration(second.Load() - first.Load()); gap < 2*time.Second {
		t.Errorf("second attempt came %v after a Retry-After: 2 answer", gap)
	}
}

// A receiver that always fails: max_attempts attempts, then the DLQ with
// the last error and the number of attempts.
func TestMaxAttemptsThenDeadLetter(t *testing.T) {
	t.Parallel()
	h := setup(t)
	recv := newReceiver(t, status(http.StatusBadGateway, "upstream down"))
	ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"})
	rec, del := h.delivery(ep.id)
	rec = withMaxAttempts(t, rec, 3)
	h.produce(rec)
	h.start(local)

	res := h.finalResults(del.AlertID)
	if len(res) != 3 || res[2].Outcome != schemas.OutcomeDead || res[0].Outcome != schemas.OutcomeRetry {
		t.Fatalf("results %+v, want retry, retry, dead", res)
	}
	dl := h.dlq(rec.Value)
	checkDeadLetter(t, dl, rec, "http_502")
	if got := header(dl, "exo-attempts"); got != "3" {
		t.Errorf("exo-attempts = %q, want 3", got)
	}
	if n := len(recv.requests()); n != 3 {
		t.Errorf("receiver got %d requests, want 3", n)
	}
	if n := testenv.Metric(h.t, h.reg, "exo_dispatcher_dead_letters_total", "reason", "exhausted"); n != 1 {
		t.Errorf("exo_dispatcher_dead_letters_total{reason=\"exhausted\"} = %v, want 1", n)
	}
	if n := testenv.Metric(h.t, h.reg, "exo_dispatcher_retries_total", "tier", "800ms"); n != 0 {
		t.Errorf("exo_dispatcher_retries_total{tier=\"800ms\"} = %v after 3 attempts, want 0 (the last one is dead-lettered)", n)
	}
}

// A delivery being attempted is in flight until its outcome is on Kafka.
func TestDeliveriesInFlight(t *testing.T) {
	t.Parallel()
	h := setup(t)
	arrived, released := make(chan struct{}), make(chan struct{})
	arrive, release := sync.OnceFunc(func() { close(arrived) }), sync.OnceFunc(func() { close(released) })
	recv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
		arrive()
		<-released
		w.WriteHeader(http.StatusNoContent)
	})
	t.Cleanup(release) // registered after the receiver's: runs before it closes
	ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"})
	rec, del := h.delivery(ep.id)
	h.produce(rec)
	h.start(local)

	select {
	case <-arrived:
	case <-time.After(deadline):
		t.Fatal("the receiver got no request")
	}
	if n := testenv.Metric(h.t, h.reg, "exo_dispatcher_deliveries_in_flight"); n != 1 {
		t.Errorf("exo_dispatcher_deliveries_in_flight = %v while the attempt is open, want 1", n)
	}
	release()
	if res := h.finalResults(del.AlertID); len(res) != 1 || res[0].Outcome != schemas.OutcomeDelivered {
		t.Fatalf("results %+v, want one delivered", res)
	}
	// The worker lets go of the record right after Kafka took its outcome.
	end := time.Now().Add(deadline)
	for n := testenv.Metric(h.t, h.reg, "exo_dispatcher_deliveries_in_flight"); n != 0; n = testenv.Metric(h.t, h.reg, "exo_dispatcher_deliveries_in_flight") {
		if time.Now().After(end) {
			t.Fatalf("exo_dispatcher_deliveries_in_flight = %v after the delivery finished, want 0", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A receiver that never answers: each attempt times out, the retries go
// through the tiers, and after max_attempts the alert is dead-lettered with
// the timeout as its last error.
func TestNeverAnswersTimesOutThenDeadLetter(t *testing.T) {
	t.Parallel()
	h := setup(t)
	hang := make(chan struct{})
	recv := newReceiver(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(hang) })
	ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"})
	rec, del := h.delivery(ep.id)
	rec = withMaxAttempts(t, rec, 3)
	h.produce(rec)
	h.start(local)

	res := h.finalResults(del.AlertID)
	if len(res) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(res), res)
	}
	for i, r := range res {
		if r.ErrorClass != "timeout" || r.Attempt != i+1 {
			t.Errorf("result %d: attempt %d class %q, want attempt %d timeout", i, r.Attempt, r.ErrorClass, i+1)
		}
	}
	if res[2].Outcome != schemas.OutcomeDead {
		t.Errorf("last outcome %s, want dead", res[2].Outcome)
	}
	checkDeadLetter(t, h.dlq(rec.Value), rec, "timeout")
}

// Retry tiers left over from an earlier EXO_RETRY_TIERS are named at start:
// nothing consumes them, and the operator must know.
func TestUnconfiguredTierIsNamed(t *testing.T) {
	t.Parallel()
	h := setup(t)
	old := dispatcher.TierTopic(h.topics, 90*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	adm := kadm.NewClient(h.prod)
	if err := kafka.EnsureTopics(ctx, adm, []kafka.Spec{{Name: old, Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	// An operator's leftover tier is long known to the broker; a topic
	// created a moment ago may not be listed yet.
	for {
		if td, err := adm.ListTopics(ctx, old); err == nil && len(td[old].Partitions) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s never listed", old)
		}
		time.Sleep(50 * time.Millisecond) // polling the broker's metadata
	}
	h.start(local)
	if logs := h.logs.String(); !strings.Contains(logs, "retry tier topic is not configured") || !strings.Contains(logs, old) {
		t.Fatalf("no warning naming %s in the logs:\n%s", old, logs)
	}
}

// The configured retry tier topics are made at start, all at once
// (createTierTopics), with the partitions and cleanup policy of the others:
// a start on a new cluster or prefix finds none of them.
func TestTierTopicsCreatedAtStart(t *testing.T) {
	t.Parallel()
	h := setup(t)
	tiers := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	h.startWith(local, func(c *dispatcher.Config) { c.Tiers = tiers })
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	adm := kadm.NewClient(h.prod)
	names := make([]string, len(tiers))
	for i, tier := range tiers {
		names[i] = dispatcher.TierTopic(h.topics, tier)
	}
	listed, err := adm.ListTopics(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if got := len(listed[name].Partitions); got != 3 {
			t.Errorf("%s: %d partitions, want 3 (Config.Partitions' default)", name, got)
		}
		rc, err := configs.On(name, nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		policy := ""
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" {
				policy = c.MaybeValue()
			}
		}
		if policy != "delete" {
			t.Errorf("%s: cleanup.policy %q, want delete", name, policy)
		}
	}
}
