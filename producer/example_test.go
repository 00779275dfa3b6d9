package producer_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/producer"
	"github.com/exospherehost/exo-alerts/schemas"
)

// An engine reports a run that failed on its second attempt. (The example
// runs against an in-process broker; an engine gives its own brokers.)
func Example() {
	cluster, err := kfake.NewCluster(kfake.SeedTopics(1, producer.DefaultTopic))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	p, err := producer.New(producer.Options{Brokers: cluster.ListenAddrs()})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	started := time.Date(2026, 11, 28, 9, 58, 35, 0, time.UTC)
	run := producer.Run{
		Tenant: "acme", WorkflowID: "wf_9", WorkflowName: "nightly-etl", ID: "run_123", Attempt: 2,
		StartedAt: started, Labels: map[string]string{"env": "prod"},
	}
	ctx := context.Background()
	err = p.Send(ctx,
		producer.Started(run, started),
		producer.Failed(run, started.Add(84*time.Second), schemas.ErrorInfo{Code: "NODE_ERRORED", Message: "load: connection reset", Node: "load"}),
	)
	if err != nil {
		log.Fatal(err)
	}

	// What the processor reads.
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(producer.DefaultTopic))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	for n := 0; n < 2; {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			ev, err := schemas.DecodeWorkflowEvent(r.Value)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println(string(r.Key), ev.ID, ev.Type, ev.Data.Run.Attempt)
			n++
		})
	}
	// Output:
	// acme/run_123 run_123/2/started workflow.run.started 2
	// acme/run_123 run_123/2/failed workflow.run.failed 2
}
