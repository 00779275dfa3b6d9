package processor_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// A firing of a count rule that Kafka refuses for good (larger than the
// deliveries topic accepts) holds the batch back until the operator lifts
// the limit, but it must never be blamed on a workflow event that happens
// to be read after its aggregate input in the same batch: that event (of
// another tenant, with nothing to do with the rule) would be set aside on
// the invalid topic and its alerts lost.
func TestRefusedAggregateFiringSetsNoEventAside(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const maxBytes = 1024
	e.limitMessageBytes(e.topics.Deliveries, maxBytes)
	const tn, other = "tf", "tg"
	e.putEndpoint(tn, "ep", true)
	groupBy := []string{"labels.a", "labels.b", "labels.c", "labels.d"}
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "big-group", Kind: schemas.RuleKindCount, EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep",
		IsActive: true, WindowMS: 60_000, Threshold: 1, GroupBy: groupBy, MaxGroups: 10, Severity: "critical"})
	p := e.startProcessor("refused-firing", nil)

	// The firing carries the group's four labels twice (group and labels):
	// random, so that compression keeps it above the limit.
	labels := map[string]string{}
	for _, k := range []string{"a", "b", "c", "d"} {
		var v strings.Builder
		for v.Len() < 256 {
			fmt.Fprintf(&v, "%016x", rand.Uint64())
		}
		labels[k] = v.String()[:256]
	}
	e.produce(e.record(workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl", Labels: labels})))

	// Meanwhile another tenant's events keep coming, on every partition.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ctx.Err() == nil && n < 5000; n += 10 {
			recs := make([]*kgo.Record, 0, 10)
			for range 10 {
				recs = append(recs, e.record(workload.Event(workload.Spec{Tenant: other, Type: schemas.TypeRunFailed, WorkflowName: "etl"})))
			}
			e.produce(recs...)
		}
	})
	eventually(t, 120*time.Second, "the refused firing to abort several transactions",
		func() bool {
			return testenv.Metric(t, p.reg, "exo_processor_transactions_total", "result", "aborted") >= 8
		},
		func() string {
			return fmt.Sprint(testenv.Metric(t, p.reg, "exo_processor_transactions_total", "result", "aborted"), " aborted")
		})
	cancel()
	wg.Wait()

	// The operator lifts the limit: everything goes through.
	actx, acancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer acancel()
	if _, err := e.adm.AlterTopicConfigs(actx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr("1048576")}}, e.topics.Deliveries); err != nil {
		t.Fatal(err)
	}
	deliveries := e.collect(e.topics.Deliveries)
	deliveries.waitFor(120*time.Second, "the firing", func() bool { return len(deliveries.recs) > 0 }, func() string { return "none" })
	e.waitCaughtUp(60 * time.Second)
	invalid := e.collect(e.topics.EventsInvalid)
	invalid.drain()
	if len(invalid.recs) != 0 {
		t.Errorf("%d workflow events set aside on the invalid topic for a firing Kafka refused; want none", len(invalid.recs))
	}
	deliveries.drain()
	if len(deliveries.recs) != 1 {
		t.Errorf("%d deliveries, want the one firing", len(deliveries.recs))
	}
}
