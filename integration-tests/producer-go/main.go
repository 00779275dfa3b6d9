// Command producer-go is an example workflow engine written in Go: it
// reports one run of a workflow that starts and fails, with the public
// producer package (franz-go, key tenant/run, idempotent, acks=all).
//
//	go run ./integration-tests/producer-go -brokers 127.0.0.1:9092 -tenant acme -run run_123
//
// With a rule on workflow.run.failed for the tenant, the run's failure is
// delivered once; running the command again with the same flags resends
// the same events (same ids), and nothing more is delivered. -attempt 2
// reports the run's retry, which alerts again. docs/producers.md is the
// contract.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/exospherehost/exo-alerts/producer"
	"github.com/exospherehost/exo-alerts/schemas"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "producer-go:", err)
		os.Exit(1)
	}
}

// run parses args, sends the run's started and failed events and prints
// what it sent.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("producer-go", flag.ContinueOnError)
	brokers := fs.String("brokers", os.Getenv("KAFKA_BROKERS"), "comma-separated Kafka brokers (default $KAFKA_BROKERS)")
	topic := fs.String("topic", producer.DefaultTopic, "events topic (with the deployment's EXO_TOPIC_PREFIX)")
	tenant := fs.String("tenant", "acme", "tenant (namespace) of the run")
	workflow := fs.String("workflow", "nightly-etl", "workflow name")
	runID := fs.String("run", "", "run id (default: a new one)")
	attempt := fs.Int("attempt", 1, "attempt of the run (a retried run keeps its id and counts up)")
	binary := fs.Bool("binary", false, "CloudEvents binary content mode (default structured)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *brokers == "" {
		return fmt.Errorf("no brokers: give -brokers or KAFKA_BROKERS")
	}
	if *runID == "" {
		*runID = fmt.Sprintf("run_%d", time.Now().UnixNano())
	}
	mode := producer.Structured
	if *binary {
		mode = producer.Binary
	}
	p, err := producer.New(producer.Options{Brokers: strings.Split(*brokers, ","), Topic: *topic, Mode: mode})
	if err != nil {
		return err
	}
	defer p.Close()

	finished := time.Now().UTC().Truncate(time.Millisecond)
	r := producer.Run{
		Tenant: *tenant, WorkflowID: "wf_" + *workflow, WorkflowName: *workflow, ID: *runID, Attempt: *attempt,
		StartedAt: finished.Add(-84 * time.Second), Labels: map[string]string{"env": "prod"}, Source: "example/producer-go",
	}
	events := []schemas.WorkflowEvent{
		producer.Started(r, r.StartedAt),
		producer.Failed(r, finished, schemas.ErrorInfo{Code: "NODE_ERRORED", Message: "load: connection reset by peer", Node: "load"}),
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Send(sctx, events...); err != nil {
		return err
	}
	for _, ev := range events {
		fmt.Fprintf(out, "sent %s %s (%s mode, key %s/%s)\n", ev.Type, ev.ID, mode, ev.TenantID, ev.Data.Run.ID)
	}
	return nil
}
