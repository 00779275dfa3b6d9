package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/processor/aggregate"
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

// offsetClock is the wall clock moved by an offset the test sets.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// waitInputsRead waits until the processor group has committed every
// record of processor.aggregate-input committed so far (read by inputs, a
// collector of that topic): stage 2 has applied every input and marker
// stage 1 committed before the call. (The end offset is no use: a
// transaction's last offset on a partition is its control record.)
func (e *kenv) waitInputsRead(inputs *collector, timeout time.Duration) {
	e.t.Helper()
	inputs.drain()
	last := map[int32]int64{}
	for _, r := range inputs.recs {
		last[r.Partition] = max(last[r.Partition], r.Offset)
	}
	var state string
	eventually(e.t, timeout, "stage 2 to commit every aggregate input", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		committed, err := e.adm.FetchOffsets(ctx, e.group())
		if err == nil {
			err = committed.Error()
		}
		if err != nil {
			state = err.Error()
			return false
		}
		ok := true
		var b strings.Builder
		for part, off := range last {
			c := int64(0)
			if r, found := committed.Lookup(e.topics.AggregateInput, part); found {
				c = r.At
			}
			fmt.Fprintf(&b, " p%d committed=%d last record=%d", part, c, off)
			ok = ok && c > off
		}
		state = b.String()
		return ok
	}, func() string { return "offsets:" + state })
}

// episode is what the deliveries of aggregate rules say, decoded.
type episode struct {
	schemas.DeliveryRecord
	P schemas.WebhookPayload
}

// episodes decodes the aggregate deliveries read so far, checking each
// against the payload schema.
func (c *collector) episodes() []episode {
	c.t.Helper()
	var out []episode
	for _, d := range c.deliveries() {
		if d.EventType != schemas.TypeAlertFiring && d.EventType != schemas.TypeAlertResolved {
			continue
		}
		if err := schemas.Validate(schemas.KindWebhookPayload, d.Payload); err != nil {
			c.t.Fatalf("payload of %s is not valid: %v\n%s", d.AlertID, err, d.Payload)
		}
		ep := episode{DeliveryRecord: d}
		if err := json.Unmarshal(d.Payload, &ep.P); err != nil {
			c.t.Fatal(err)
		}
		if ep.P.Data.Aggregate == nil || ep.P.Data.AlertID != d.AlertID {
			c.t.Fatalf("delivery %s: payload %s", d.AlertID, d.Payload)
		}
		out = append(out, ep)
	}
	return out
}

func describeEpisodes(eps []episode) string {
	var b strings.Builder
	for _, ep := range eps {
		a := ep.P.Data.Aggregate
		fmt.Fprintf(&b, " [%s %s %s group=%v matched=%v]", ep.EventType, ep.RuleID, a.IncidentID, a.Group, a.Value.Matched)
	}
	return fmt.Sprintf("%d aggregate deliveries:%s", len(eps), b.String())
}

func ofType(eps []episode, typ string) []episode {
	var out []episode
	for _, ep := range eps {
		if ep.EventType == typ {
			out = append(out, ep)
		}
	}
	return out
}

// A count rule (3 failures in 1m) fires once, at the third failure and not
// again at the fourth, with the crossing event in its payload; once the
// window has passed under the rules' clock (the wall clock moved: the
// partitions are caught up) it resolves once, under the same incident id.
func TestAggregateCountFiresOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const tn = "tc"
	e.putEndpoint(tn, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "three-failures", Kind: schemas.RuleKindCount, EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep",
		IsActive: true, WindowMS: 60_000, Threshold: 3, GroupBy: []string{"workflow.name"}, MaxGroups: 10, Severity: "critical"})
	clock := &offsetClock{}
	p := e.startProcessor("count", func(c *processor.Config) { c.Clock, c.AggregateDelay = clock, processor.NoAggregateDelay })
	deliveries := e.collect(e.topics.Deliveries)
	inputs := e.collect(e.topics.AggregateInput)

	var ids []string
	fail := func() {
		ev := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunFailed, WorkflowName: "etl", ErrorCode: "NODE_ERRORED"})
		ids = append(ids, ev.ID)
		e.produce(e.record(ev))
		e.waitCaughtUp(30 * time.Second)
		e.waitInputsRead(inputs, 30*time.Second)
	}
	fail()
	fail()
	deliveries.drain()
	if eps := deliveries.episodes(); len(eps) != 0 {
		t.Fatalf("after two failures: %s, want none", describeEpisodes(eps))
	}
	fail()
	deliveries.waitFor(30*time.Second, "the firing", func() bool { return len(deliveries.episodes()) > 0 }, func() string { return describeEpisodes(deliveries.episodes()) })
	fail()
	deliveries.drain()
	eps := deliveries.episodes()
	if len(eps) != 1 || eps[0].EventType != schemas.TypeAlertFiring {
		t.Fatalf("after four failures: %s, want one firing", describeEpisodes(eps))
	}
	fired := eps[0]
	a := fired.P.Data.Aggregate
	if a.State != schemas.AggregateStateFiring || a.Group["workflow.name"] != "etl" || a.Value.Matched == nil || *a.Value.Matched != 3 ||
		fired.P.Data.Event.ID != ids[2] || fired.AlertID != aggregate.FiringAlertID(a.IncidentID) || fired.Severity != "critical" || fired.EndpointID != "ep" {
		t.Fatalf("firing %+v aggregate %+v event %+v: want matched 3, group etl, the third failure", fired.DeliveryRecord, a, fired.P.Data.Event)
	}

	clock.advance(3 * time.Minute) // the window passes under the rules' clock
	deliveries.waitFor(60*time.Second, "the resolve", func() bool { return len(ofType(deliveries.episodes(), schemas.TypeAlertResolved)) > 0 },
		func() string { return describeEpisodes(deliveries.episodes()) })
	e.waitInputsRead(inputs, 30*time.Second)
	deliveries.drain()
	eps = deliveries.episodes()
	if len(eps) != 2 {
		t.Fatalf("%s, want one firing and one resolve", describeEpisodes(eps))
	}
	res := ofType(eps, schemas.TypeAlertResolved)[0]
	if ra := res.P.Data.Aggregate; ra.IncidentID != a.IncidentID || res.AlertID != aggregate.ResolvedAlertID(a.IncidentID) || ra.ResolvedAt == nil || res.EndpointID != "ep" {
		t.Fatalf("resolve %+v aggregate %+v: want incident %s", res.DeliveryRecord, ra, a.IncidentID)
	}
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"exo_processor_aggregate_inputs_total", "outcome", "counted", 4},
		{"exo_processor_aggregate_inputs_total", "outcome", "late", 0},
		{"exo_processor_aggregate_transitions_total", "to", "firing", 1},
		{"exo_processor_aggregate_transitions_total", "to", "resolved", 1},
	} {
		if got := testenv.Metric(t, p.reg, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}
}
