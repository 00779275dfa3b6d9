package processor_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// startCut is how long a test holds Kafka away from a component it has just
// started. The component's Kafka client is given a 1 s retry timeout, so
// every request it sends at start gives up within the cut: the cut stands
// for an outage of any length, longer than the client's own retries (30 s
// in production).
const startCut = 5 * time.Second

// TestProcessorStartsDuringKafkaOutage starts the processor while Kafka is
// unreachable (as Kubernetes restarting it during an outage would): Run
// does not return and the processor does not say it is ready while Kafka
// is away; once Kafka is back it becomes ready by itself, and an event
// produces its alert.
func TestProcessorStartsDuringKafkaOutage(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const tn = "ts"
	e.putEndpoint(tn, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "fail-all", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true})
	gate := testenv.NewKafkaGate(t)
	gate.Cut()
	t.Cleanup(func() { gate.Restore(t) }) // a failed test stops the processor with Kafka back
	logged := newMessageCounter(testenv.Log(t).Handler())

	p := &proc{name: "start-cut", reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	ready := make(chan struct{})
	cfg := processor.Config{
		Brokers: e.brokers, Topics: e.topics, Partitions: partitions,
		TransactionalID: e.topics.Prefix + "processor-start-cut",
		Log:             slog.New(logged).With("instance", "start-cut"),
		Registerer:      p.reg,
		Ready:           ready,
		KafkaOpts:       []kgo.Opt{gate.Opt(), kgo.RetryTimeout(time.Second)},
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- processor.Run(ctx, cfg) }()
	t.Cleanup(func() { p.stop(t) })

	// Kafka away: the processor waits, neither exiting nor ready.
	eventually(t, time.Minute, "the processor to find Kafka unreachable", func() bool { return gate.Refused() > 0 },
		func() string { return "no dial refused" })
	select {
	case err := <-p.done:
		p.exited, p.err = true, err
		t.Fatalf("the processor's Run returned while Kafka was unreachable at its start: %v", err)
	case <-ready:
		t.Fatal("the processor said it was ready while Kafka was unreachable")
	case <-time.After(startCut): // holding the outage, not synchronisation
	}
	if n := logged.count("kafka unreachable at start; waiting"); n < 1 {
		t.Error("the processor did not log that it waits for Kafka")
	}
	gate.Restore(t)

	select {
	case <-ready:
	case err := <-p.done:
		p.exited, p.err = true, err
		t.Fatalf("the processor's Run returned after Kafka came back: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the processor was not ready within 2 minutes of Kafka coming back")
	}
	ev := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl"})
	e.produce(e.record(ev))
	want := map[string]bool{engine.AlertID(tn, "fail-all", ev.ID): true}
	deliveries := e.collect(e.topics.Deliveries)
	deliveries.waitFor(time.Minute, "the event's alert", deliveries.has(want), deliveries.missing(want))
	if n := logged.count("kafka reachable again; start-up resumed"); n < 1 {
		t.Error("the processor did not log the end of its wait for Kafka")
	}
	t.Logf("started with Kafka cut for %s (%d dials refused); ready and alerting once it came back", startCut, gate.Refused())
}
