package processor_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/schemas"
)

// inputKey names one aggregate input: its rule and its event.
type inputKey struct{ rule, event string }

// aggregateInputs decodes the inputs (not the markers) read so far, failing
// on a record that is not a valid aggregate input or not on its partition.
func (c *collector) aggregateInputs() (inputs []schemas.AggregateInput, markers int) {
	c.t.Helper()
	for _, r := range c.recs {
		if err := schemas.Validate(schemas.KindAggregateInput, r.Value); err != nil {
			c.t.Fatalf("record at %d/%d of %s is not an aggregate input: %v\n%s", r.Partition, r.Offset, c.topic, err, r.Value)
		}
		var in schemas.AggregateInput
		if err := json.Unmarshal(r.Value, &in); err != nil {
			c.t.Fatal(err)
		}
		if in.Kind == schemas.AggregateInputKindWatermark {
			markers++
			continue
		}
		if want := schemas.TenantKey(in.TenantID, in.RuleID); string(r.Key) != want {
			c.t.Fatalf("input at %d/%d keyed %q, want %q", r.Partition, r.Offset, r.Key, want)
		}
		// murmur2(key) % partitions, what Kafka's default partitioner picks.
		if want := int32(kgo.StickyKeyPartitioner(nil).ForTopic(c.topic).Partition(r, partitions)); r.Partition != want {
			c.t.Fatalf("input keyed %q on partition %d, want %d", r.Key, r.Partition, want)
		}
		inputs = append(inputs, in)
	}
	return inputs, markers
}

// inputCounts counts inputs by rule and event.
func inputCounts(inputs []schemas.AggregateInput) map[inputKey]int {
	m := map[inputKey]int{}
	for _, in := range inputs {
		m[inputKey{in.RuleID, in.Event.ID}]++
	}
	return m
}

func describeInputs(got map[inputKey]int, want map[inputKey]bool) string {
	var extra, dup, miss []string
	for k, n := range got {
		switch {
		case !want[k]:
			extra = append(extra, fmt.Sprint(k))
		case n > 1:
			dup = append(dup, fmt.Sprintf("%v×%d", k, n))
		}
	}
	for k := range want {
		if got[k] == 0 {
			miss = append(miss, fmt.Sprint(k))
		}
	}
	sort.Strings(extra)
	sort.Strings(dup)
	sort.Strings(miss)
	return fmt.Sprintf("%d unexpected %v, %d duplicated %v, %d missing %v", len(extra), head(extra), len(dup), head(dup), len(miss), head(miss))
}

// Stage 1 makes exactly one aggregate input per (event, aggregate rule whose
// condition holds), in the transaction of the event: none for a duplicate
// event or a condition that does not hold, none committed from a
// transaction that aborted (here: an event whose per-event alert Kafka
// refuses aborts its batch, which is processed again), and aggregate rules
// deliver nothing per event.
func TestAggregateInputsExactlyOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const maxBytes = 6 << 10
	e.limitMessageBytes(e.topics.Deliveries, maxBytes)
	const tn = "ta"
	e.putEndpoint(tn, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "per-event-large", EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true,
		Condition: `labels.size == "large"`})
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "count-prod", Kind: schemas.RuleKindCount, EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep", IsActive: true,
		Condition: `labels.env == "prod"`, WindowMS: 15 * 60_000, Threshold: 3, GroupBy: []string{"workflow.name"}, MaxGroups: 100})
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "rate", Kind: schemas.RuleKindRate, EventType: schemas.TypeRunFinished, WebhookEndpointID: "ep", IsActive: true,
		WindowMS: 3600_000, SuccessRatioBelowBP: 9500, MinRuns: 10, MaxGroups: 1})
	p := e.startProcessor("agg-inputs", nil)

	want := map[inputKey]bool{}
	ev := func(typ, env string, labels map[string]string) schemas.WorkflowEvent {
		if labels == nil {
			labels = map[string]string{}
		}
		labels["env"] = env
		ev := workload.Event(workload.Spec{Tenant: tn, Type: typ, WorkflowName: "etl", Labels: labels})
		if typ == schemas.TypeRunFailed && env == "prod" && labels["size"] != "large" {
			want[inputKey{"count-prod", ev.ID}] = true
		}
		if typ != schemas.TypeRunStarted && labels["size"] != "large" {
			want[inputKey{"rate", ev.ID}] = true
		}
		return ev
	}
	first := ev(schemas.TypeRunFailed, "prod", nil)
	labels := largeLabels(maxBytes)
	labels["size"] = "large"
	large := ev(schemas.TypeRunFailed, "prod", labels)
	evs := []schemas.WorkflowEvent{
		first,
		ev(schemas.TypeRunSucceeded, "prod", nil),
		ev(schemas.TypeRunStarted, "prod", nil),
		ev(schemas.TypeRunFailed, "dev", nil), // the rate rule's, not the count rule's
		first,                                 // a duplicate
		large,                                 // its alert is refused: the batch aborts
		ev(schemas.TypeRunFailed, "prod", nil),
	}
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		recs[i] = e.onPartition(ev, 1)
	}
	e.produceOn(recs...)

	inputs := e.collect(e.topics.AggregateInput)
	inputs.waitFor(60*time.Second, "an input for every (event, rule)", func() bool {
		ins, _ := inputs.aggregateInputs()
		return len(inputCounts(ins)) >= len(want)
	}, func() string {
		ins, _ := inputs.aggregateInputs()
		return describeInputs(inputCounts(ins), want)
	})
	e.waitCaughtUp(30 * time.Second)
	inputs.drain()
	ins, markers := inputs.aggregateInputs()
	got := inputCounts(ins)
	for k, n := range got {
		if !want[k] || n != 1 {
			t.Fatalf("inputs are not exactly one per (event, aggregate rule): %s", describeInputs(got, want))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("inputs: %s", describeInputs(got, want))
	}
	for _, in := range ins {
		if in.RuleID == "count-prod" && (len(in.Group) != 1 || in.Group[0] != "etl" || in.Outcome != schemas.AggregateOutcomeMatched) {
			t.Fatalf("count input %+v: want group [etl], outcome matched", in)
		}
	}
	// The large event's inputs were written by the aborted attempts only.
	uncommitted := e.collectWith(e.topics.AggregateInput, kgo.ReadUncommitted())
	uncommitted.drain()
	all, _ := uncommitted.aggregateInputs()
	if n := inputCounts(all)[inputKey{"rate", large.ID}]; n == 0 {
		t.Fatalf("no input of the large event in aborted transactions: the test did not exercise an abort")
	}
	if testenv.Metric(t, p.reg, "exo_processor_transactions_total", "result", "aborted") == 0 {
		t.Fatalf("no transaction aborted")
	}
	deliveries := e.collect(e.topics.Deliveries)
	deliveries.drain()
	if len(deliveries.recs) != 0 {
		t.Fatalf("%d deliveries, want none: aggregate rules do not alert per event, the large alert was refused", len(deliveries.recs))
	}
	t.Logf("%d inputs, each once; %d markers; %d input records in all, aborted included", len(ins), markers, len(uncommitted.recs))
}
