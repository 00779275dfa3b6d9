package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// producer writes failed-run events at a steady rate, each a new run of one
// of the tenants, and tells the checker about every one the broker
// acknowledged.
type producer struct {
	cl      *kgo.Client
	topic   string
	tenants []string
	check   *Checker
	seq     atomic.Int64
	failed  atomic.Int64 // produces that ended in an error (not expected)
}

func newProducer(brokers []string, topic string, tenants []string, check *Checker) (*producer, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ProducerLinger(5*time.Millisecond),
		// Buffer through a broker outage rather than fail: every record is
		// either acknowledged (and then expected) or counted as failed.
		kgo.RecordDeliveryTimeout(0),
		kgo.MaxBufferedRecords(1_000_000),
	)
	if err != nil {
		return nil, fmt.Errorf("drill: producer: %w", err)
	}
	return &producer{cl: cl, topic: topic, tenants: tenants, check: check}, nil
}

// run produces rate events per second for scenario until ctx ends.
func (p *producer) run(ctx context.Context, scenario string, rate int) {
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.one(scenario)
	}
}

// one produces a single failed-run event of scenario.
func (p *producer) one(scenario string) string {
	n := p.seq.Add(1)
	tenant := p.tenants[int(n)%len(p.tenants)]
	run := fmt.Sprintf("run_%s_%07d", scenario, n)
	at := time.Now()
	ev := workload.Event(workload.Spec{
		Tenant: tenant, Type: schemas.TypeRunFailed, WorkflowName: "drill", RunID: run,
		Duration: time.Second, ErrorCode: "NODE_ERRORED", Labels: map[string]string{labelScenario: scenario},
	})
	rec, err := workload.Record(p.topic, ev)
	if err != nil {
		p.failed.Add(1)
		return run
	}
	// context.Background: a record handed to the client stays its business
	// until acknowledged or failed, whatever happens to the scenario.
	p.cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			p.failed.Add(1)
			return
		}
		p.check.Expect(scenario, run, at)
	})
	return run
}

// flush waits until every produced record is acknowledged or failed.
func (p *producer) flush(ctx context.Context) error { return p.cl.Flush(ctx) }

func (p *producer) close() { p.cl.Close() }

// readDeliveries reads the deliveries topic read_committed from the start
// and tells the checker about every record, until ctx ends.
func readDeliveries(ctx context.Context, brokers []string, topic string, check *Checker) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return fmt.Errorf("drill: deliveries reader: %w", err)
	}
	go func() {
		defer cl.Close()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				var d schemas.DeliveryRecord
				if json.Unmarshal(r.Value, &d) != nil {
					return
				}
				var p schemas.WebhookPayload
				if json.Unmarshal(d.Payload, &p) != nil {
					return
				}
				check.Delivery(d.AlertID, p.Data.Run.ID)
			})
		}
	}()
	return nil
}
