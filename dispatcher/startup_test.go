package dispatcher_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// TestDispatcherStartsDuringKafkaOutage starts the dispatcher while Kafka
// is unreachable (as Kubernetes restarting it during an outage would): Run
// does not return and the dispatcher does not say it is ready while Kafka
// is away; once Kafka is back it becomes ready by itself and delivers.
//
// The dispatcher's Kafka client is given a 1 s retry timeout, so every
// request it sends at start gives up within the 5 s cut: the cut stands for
// an outage of any length, longer than the client's own retries (30 s in
// production).
func TestDispatcherStartsDuringKafkaOutage(t *testing.T) {
	t.Parallel()
	const cut = 5 * time.Second
	h := setup(t)
	recv := newReceiver(t, status(http.StatusNoContent, ""))
	ep := h.addEndpoint(endpoint{url: recv.srv.URL + "/hook"})
	gate := testenv.NewKafkaGate(t)
	gate.Cut()
	t.Cleanup(func() { gate.Restore(t) }) // a failed test stops the dispatcher with Kafka back

	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h.reg = prometheus.NewRegistry()
	cfg := dispatcher.Config{
		Brokers: h.brokers, Topics: h.topics, Keyring: h.ring, Allowlist: local, Registerer: h.reg,
		AttemptTimeout: 2 * time.Second, Log: slog.New(slog.NewTextHandler(h.logs, nil)), Ready: ready,
		Tiers:     []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond},
		KafkaOpts: []kgo.Opt{gate.Opt(), kgo.RetryTimeout(time.Second)},
	}
	go func() { done <- dispatcher.Run(ctx, cfg) }()
	exited := false
	t.Cleanup(func() {
		cancel()
		if exited {
			return
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dispatcher.Run returned %v after its context ended; want nil", err)
			}
		case <-time.After(deadline):
			t.Errorf("dispatcher.Run did not return within %v of its context ending", deadline)
		}
	})

	// Kafka away: the dispatcher waits, neither exiting nor ready.
	for end := time.Now().Add(deadline); gate.Refused() == 0; {
		if time.Now().After(end) {
			t.Fatal("the dispatcher dialed no broker through the gate")
		}
		select {
		case err := <-done:
			exited = true
			t.Fatalf("dispatcher.Run returned while Kafka was unreachable at its start: %v", err)
		case <-time.After(50 * time.Millisecond): // polling the gate
		}
	}
	select {
	case err := <-done:
		exited = true
		t.Fatalf("dispatcher.Run returned while Kafka was unreachable at its start: %v", err)
	case <-ready:
		t.Fatal("the dispatcher said it was ready while Kafka was unreachable")
	case <-time.After(cut): // holding the outage, not synchronisation
	}
	if !strings.Contains(h.logs.String(), "kafka unreachable at start; waiting") {
		t.Error("the dispatcher did not log that it waits for Kafka")
	}
	gate.Restore(t)

	select {
	case <-ready:
	case err := <-done:
		exited = true
		t.Fatalf("dispatcher.Run returned after Kafka came back: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the dispatcher was not ready within 2 minutes of Kafka coming back")
	}
	rec, del := h.delivery(ep.id)
	h.produce(rec)
	for end := time.Now().Add(time.Minute); len(recv.requests()) == 0; {
		if time.Now().After(end) {
			t.Fatalf("the receiver got no POST for alert %s within a minute of the dispatcher being ready", del.AlertID)
		}
		select {
		case err := <-done:
			exited = true
			t.Fatalf("dispatcher.Run returned: %v", err)
		case <-time.After(50 * time.Millisecond): // polling the receiver
		}
	}
	if got := recv.requests(); got[0].method != http.MethodPost {
		t.Errorf("the receiver got %s, want POST", got[0].method)
	}
	if n := strings.Count(h.logs.String(), "kafka reachable again; start-up resumed"); n != 1 {
		t.Errorf("the end of the wait for Kafka logged %d times, want once", n)
	}
}
