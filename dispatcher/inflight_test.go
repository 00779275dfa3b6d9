package dispatcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The dispatcher produces the results of its attempts without waiting for
// Kafka to acknowledge them, and commits a delivery only once its result is
// acknowledged. A dispatcher stopped while results are in flight — closed
// while Kafka is unreachable, or stopped by a result that Kafka refuses —
// loses no delivery: its successor attempts again every delivery whose
// result was not acknowledged, and every alert ends with a delivered
// result. Nothing is counted twice beyond the documented at-least-once: an
// alert is POSTed at most twice (once more after the one stop), and every
// result record stands for a POST the receiver got.
func TestResultsInFlightAtStopAreNotLost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// stop makes the first dispatcher stop while results of attempts it
		// made are in flight; it returns what Run must return, and what
		// undoes the fault once it has stopped.
		stop func(t *testing.T, h *harness, gate *testenv.KafkaGate, cancel context.CancelFunc, posts func() int) (want func(error) bool, undo func())
	}{
		{"closed_while_kafka_unreachable", func(t *testing.T, _ *harness, gate *testenv.KafkaGate, cancel context.CancelFunc, posts func() int) (func(error) bool, func()) {
			gate.Cut()
			// Attempts go on without Kafka; their results cannot be acknowledged.
			after := posts() + 30
			waitPosts(t, "30 POSTs after Kafka was cut", posts, after)
			cancel()
			return func(err error) bool { return err == nil }, func() { gate.Restore(t) }
		}},
		{"result_refused", func(t *testing.T, h *harness, _ *testenv.KafkaGate, _ context.CancelFunc, _ func() int) (func(error) bool, func()) {
			// A result is ~600 bytes: the results topic now refuses every one.
			setResultsMaxBytes(t, h, ptrTo("200"))
			return func(err error) bool { return errors.Is(err, kerr.MessageTooLarge) }, func() { setResultsMaxBytes(t, h, nil) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const nEndpoints, nAlerts = 3, 900
			h := setup(t)
			t.Cleanup(func() { deleteTopics(t, h) })
			var (
				mu    sync.Mutex
				posts = map[string]int{} // alert id → POSTs received
				total int
			)
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				var p schemas.WebhookPayload
				_ = json.Unmarshal(body, &p)
				mu.Lock()
				posts[p.Data.AlertID]++
				total++
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(recv.Close)
			received := func() int {
				mu.Lock()
				defer mu.Unlock()
				return total
			}
			// 50 attempts a second per endpoint after a burst of 50: the
			// backlog takes ~6 s, so the stop finds attempts going on.
			var recs []*kgo.Record
			alerts := map[string]bool{}
			for range nEndpoints {
				ep := h.addEndpoint(endpoint{url: recv.URL + "/hook", rate: 50})
				for range nAlerts / nEndpoints {
					rec, del := h.delivery(ep.id)
					recs = append(recs, rec)
					alerts[del.AlertID] = true
				}
			}
			h.produce(recs...)

			gate := testenv.NewKafkaGate(t)
			t.Cleanup(func() { gate.Restore(t) })
			ready := make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- dispatcher.Run(ctx, dispatcher.Config{
					Brokers: h.brokers, Topics: h.topics, Keyring: h.ring, Allowlist: local, Registerer: prometheus.NewRegistry(),
					AttemptTimeout: 2 * time.Second, Log: slog.New(slog.NewTextHandler(h.logs, nil)), Ready: ready,
					Tiers:     []time.Duration{200 * time.Millisecond, 400 * time.Millisecond},
					KafkaOpts: []kgo.Opt{gate.Opt(), kgo.RetryTimeout(time.Second)},
				})
			}()
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("dispatcher.Run returned before it was ready: %v", err)
			case <-time.After(deadline):
				t.Fatalf("dispatcher not ready within %v", deadline)
			}
			// Past the endpoints' first burst (a second's worth of tokens),
			// so that some results have been acknowledged and committed.
			waitPosts(t, "250 POSTs", received, 250)
			want, undo := tc.stop(t, h, gate, cancel, received)
			select {
			case err := <-done:
				if !want(err) {
					t.Fatalf("the first dispatcher's Run returned %v", err)
				}
			case <-time.After(deadline):
				t.Fatalf("the first dispatcher did not stop within %v", deadline)
			}
			cancel()
			stoppedAt := received()
			if stoppedAt == nAlerts {
				t.Fatalf("the first dispatcher delivered the whole backlog before it stopped: nothing was in flight")
			}
			undo()

			// The successor takes the backlog from the committed offsets.
			h.start(local)
			deliveredResults := func() (map[string]int, map[string]int) {
				all, ok := map[string]int{}, map[string]int{}
				for _, r := range h.readAll(h.topics.DeliveryResults) {
					var res schemas.ResultRecord
					if err := json.Unmarshal(r.Value, &res); err != nil {
						t.Fatalf("result record: %v", err)
					}
					all[res.AlertID]++
					if res.Outcome == schemas.OutcomeDelivered {
						ok[res.AlertID]++
					}
				}
				return all, ok
			}
			var all, ok map[string]int
			for end := time.Now().Add(deadline); ; {
				all, ok = deliveredResults()
				if len(ok) == len(alerts) {
					break
				}
				if time.Now().After(end) {
					t.Fatalf("%d of %d alerts have a delivered result after %v (%d POSTs)", len(ok), len(alerts), deadline, received())
				}
				time.Sleep(50 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			repeated := 0
			for id := range alerts {
				switch n := posts[id]; {
				case n == 0:
					t.Errorf("alert %s has a delivered result but was never POSTed", id)
				case n > 2:
					t.Errorf("alert %s was POSTed %d times; one stop repeats an alert at most once", id, n)
				case n == 2:
					repeated++
				}
				if all[id] > posts[id] {
					t.Errorf("alert %s has %d results for %d POSTs: a result counted twice", id, all[id], posts[id])
				}
			}
			for id := range all {
				if !alerts[id] {
					t.Errorf("a result for an alert never queued: %s", id)
				}
			}
			if dl := h.readAll(h.topics.DeliveriesDLQ); len(dl) > 0 {
				t.Errorf("%d deliveries dead-lettered, want none", len(dl))
			}
			// Results were in flight when the first dispatcher stopped: their
			// deliveries were not committed, and were attempted again.
			if repeated == 0 {
				t.Errorf("no alert was attempted again after the stop (%d of %d POSTed by the first dispatcher): the stop had no result in flight, or a delivery was committed before its result", stoppedAt, nAlerts)
			}
			t.Logf("first dispatcher: %d POSTs; alerts POSTed twice: %d", stoppedAt, repeated)
		})
	}
}

// waitPosts waits until received reports at least n POSTs.
func waitPosts(t *testing.T, what string, received func() int, n int) {
	t.Helper()
	for end := time.Now().Add(deadline); received() < n; {
		if time.Now().After(end) {
			t.Fatalf("%s: %d POSTs within %v", what, received(), deadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// setResultsMaxBytes sets (nil: resets) max.message.bytes of the results topic.
func setResultsMaxBytes(t *testing.T, h *harness, v *string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	op := kadm.SetConfig
	if v == nil {
		op = kadm.DeleteConfig
	}
	resp, err := kadm.NewClient(h.prod).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: op, Name: "max.message.bytes", Value: v}}, h.topics.DeliveryResults)
	if err == nil {
		for _, r := range resp {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		t.Fatalf("alter max.message.bytes of %s: %v", h.topics.DeliveryResults, err)
	}
}

func ptrTo(s string) *string { return &s }
