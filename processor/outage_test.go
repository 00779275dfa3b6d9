package processor_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// burstEvents is the backlog the processor is working through at the cut.
const burstEvents = 20000

// TestProcessorRidesOutKafkaOutage cuts the processor off Kafka for longer
// than its session and transaction timeouts while events keep arriving (so
// a transaction is in flight when the cut comes): the processor keeps
// running, and once Kafka is back every alert is delivered exactly once.
func TestProcessorRidesOutKafkaOutage(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const tn = "to"
	e.putEndpoint(tn, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "fail-all", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
	gate := testenv.NewKafkaGate(t)
	logged := newMessageCounter(testenv.Log(t).Handler())
	p := e.startProcessor("outage", func(c *processor.Config) {
		c.KafkaOpts = []kgo.Opt{gate.Opt()}
		c.Log = slog.New(logged).With("instance", "outage")
	})
	t.Cleanup(func() { gate.Restore(t) }) // a failed test stops the processor with Kafka back
	alive := func() {
		t.Helper()
		select {
		case err := <-p.done:
			p.exited, p.err = true, err
			t.Fatalf("the processor's Run returned during or after the outage: %v", err)
		default:
		}
	}

	// A steady stream of failed runs from a producer that is not cut off,
	// before, during and after the outage.
	var (
		mu   sync.Mutex
		want = map[string]bool{}
	)
	stop := make(chan struct{})
	streamed := make(chan struct{})
	go func() {
		defer close(streamed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond): // pacing the stream, not synchronisation
			}
			ev := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := workload.Produce(ctx, e.cl, e.record(ev))
			cancel()
			if err != nil {
				t.Errorf("the test's producer: %v", err)
				return
			}
			mu.Lock()
			want[engine.AlertID(tn, "fail-all", ev.ID)] = true
			mu.Unlock()
		}
	}()
	var once sync.Once
	end := func() { once.Do(func() { close(stop); <-streamed }) }
	t.Cleanup(end)
	snapshot := func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[string]bool, len(want))
		for id := range want {
			out[id] = true
		}
		return out
	}

	deliveries := e.collect(e.topics.Deliveries)
	deliveries.waitFor(60*time.Second, "100 alerts before the outage", func() bool { return len(deliveries.counts()) >= 100 },
		func() string { return fmt.Sprintf("%d alerts", len(deliveries.counts())) })

	// A backlog of another tenant's events (no rule: run states only), so
	// the processor is in the middle of its transactions, with records
	// fetched and not processed yet, when Kafka goes away: the cut lands
	// in a transaction, not in an idle poll.
	var burst []*kgo.Record
	for range burstEvents {
		burst = append(burst, e.record(workload.Event(workload.Spec{Tenant: "tq", Type: schemas.TypeRunFailed, WorkflowName: "etl"})))
	}
	e.produce(burst...)
	unmatched := func() float64 { return testenv.Metric(t, p.reg, "exo_processor_events_total", "outcome", "unmatched") }
	eventually(t, time.Minute, "the processor into the backlog", func() bool { return unmatched() > 0 },
		func() string { return "no unmatched event committed" })
	gate.Cut()
	if n := unmatched(); n >= burstEvents {
		t.Fatalf("precondition: the processor finished the %d-event backlog before the cut", burstEvents)
	}
	// Longer than the session timeout (10 s) and the transaction's end
	// timeout (15 s): the group forgets the member, and the transaction in
	// flight can neither commit nor abort.
	<-time.After(30 * time.Second)
	alive()
	if gate.Refused() == 0 {
		t.Fatal("no dial was refused during the outage: the processor did not go through the gate")
	}
	gate.Restore(t)

	// Past the restore, some more events; then the stream stops.
	after := len(snapshot())
	for deadline := time.Now().Add(time.Minute); len(snapshot()) < after+50; {
		if time.Now().After(deadline) {
			t.Fatal("the test's producer stalled")
		}
		deliveries.poll(100 * time.Millisecond)
	}
	end()
	all := snapshot()
	deliveries.waitFor(3*time.Minute, "every alert after the outage", func() bool {
		alive()
		return deliveries.has(all)()
	}, deliveries.missing(all))
	e.waitCaughtUp(time.Minute)
	deliveries.drain()
	alive()
	assertExactlyOnce(t, deliveries.counts(), all)
	if n := testenv.Metric(t, p.reg, "exo_processor_kafka_session_restarts_total"); n < 1 {
		t.Errorf("exo_processor_kafka_session_restarts_total = %v: the outage did not end a transaction session", n)
	}
	// The outage is logged once, and its end once, however many sessions
	// failed meanwhile.
	failing, answers := logged.count("Kafka failing"), logged.count("Kafka answers again")
	if failing != 1 || answers != 1 {
		t.Errorf("the processor logged the outage %d times and its end %d times, want once each", failing, answers)
	}
	if n := testenv.Metric(t, p.reg, "exo_processor_kafka_unavailable"); n != 0 {
		t.Errorf("exo_processor_kafka_unavailable = %v after the outage, want 0", n)
	}
	t.Logf("%d alerts exactly once across a 30 s outage; %d dials refused", len(all), gate.Refused())
}

// messageCounter is a slog handler that counts the messages logged through
// it, or through any handler derived from it, and passes them on.
type messageCounter struct {
	slog.Handler
	seen *messages
}

type messages struct {
	mu sync.Mutex
	n  map[string]int
}

func newMessageCounter(h slog.Handler) *messageCounter {
	return &messageCounter{Handler: h, seen: &messages{n: map[string]int{}}}
}

func (h *messageCounter) Handle(ctx context.Context, r slog.Record) error {
	h.seen.mu.Lock()
	h.seen.n[r.Message]++
	h.seen.mu.Unlock()
	return h.Handler.Handle(ctx, r)
}

func (h *messageCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return &messageCounter{Handler: h.Handler.WithAttrs(as), seen: h.seen}
}

func (h *messageCounter) WithGroup(name string) slog.Handler {
	return &messageCounter{Handler: h.Handler.WithGroup(name), seen: h.seen}
}

// count is how many messages starting with prefix were logged.
func (h *messageCounter) count(prefix string) int {
	h.seen.mu.Lock()
	defer h.seen.mu.Unlock()
	n := 0
	for m, k := range h.seen.n {
		if strings.HasPrefix(m, prefix) {
			n += k
		}
	}
	return n
}
