package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
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

// A backlog produced while the processor was down holds, in one window, a
// rate rule's failures on partition 0 and its successes on partition 1
// (produced first): the success ratio of the window is high, so the rule
// must not fire, whichever partition's inputs stage 2 reads first — it
// decides only at boundaries every events partition has passed. A second
// workflow whose window really is mostly failures fires, once: the rule
// works, and the backlog was read.
func TestAggregateReplayBacklogNoFalseFiring(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const tn = "tr"
	e.putEndpoint(tn, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "rate", Kind: schemas.RuleKindRate, EventType: schemas.TypeRunFinished, WebhookEndpointID: "ep",
		IsActive: true, WindowMS: 60_000, SuccessRatioBelowBP: 5000, MinRuns: 10, GroupBy: []string{"workflow.name"}, MaxGroups: 10})
	base := time.Now().Add(-20 * time.Second).UTC().Truncate(time.Second)
	backlog := func(part int32, typ, wf string, n int) []*kgo.Record {
		var recs []*kgo.Record
		for i := range n {
			ev := workload.Event(workload.Spec{Tenant: tn, Type: typ, WorkflowName: wf, Time: base.Add(time.Duration(i) * 50 * time.Millisecond)})
			recs = append(recs, e.onPartition(ev, part))
		}
		return recs
	}
	// Partition 1 first: 30 successes of "healthy", 2 of "failing".
	e.produceOn(append(backlog(1, schemas.TypeRunSucceeded, "healthy", 30), backlog(1, schemas.TypeRunSucceeded, "failing", 2)...)...)
	// Then partition 0: 10 failures of each.
	e.produceOn(append(backlog(0, schemas.TypeRunFailed, "healthy", 10), backlog(0, schemas.TypeRunFailed, "failing", 10)...)...)

	clock := &offsetClock{}
	p := e.startProcessor("backlog", func(c *processor.Config) { c.Clock, c.AggregateDelay = clock, processor.NoAggregateDelay })
	deliveries := e.collect(e.topics.Deliveries)
	inputs := e.collect(e.topics.AggregateInput)
	e.waitCaughtUp(30 * time.Second)
	e.waitInputsRead(inputs, 30*time.Second)
	// Every boundary of the window is passed under the rules' clock.
	clock.advance(2 * time.Minute)
	deliveries.waitFor(60*time.Second, "the failing workflow's firing and resolve", func() bool {
		return len(ofType(deliveries.episodes(), schemas.TypeAlertResolved)) > 0
	}, func() string { return describeEpisodes(deliveries.episodes()) })
	e.waitInputsRead(inputs, 30*time.Second)
	deliveries.drain()
	eps := deliveries.episodes()
	if len(eps) != 2 {
		t.Fatalf("%s; want the failing workflow's firing and resolve only", describeEpisodes(eps))
	}
	for _, ep := range eps {
		if g := ep.P.Data.Aggregate.Group["workflow.name"]; g != "failing" {
			t.Fatalf("%s; the healthy workflow (ratio 0.75) must not fire", describeEpisodes(eps))
		}
	}
	fired := ofType(eps, schemas.TypeAlertFiring)
	if len(fired) != 1 {
		t.Fatalf("%s; want one firing", describeEpisodes(eps))
	}
	if v := fired[0].P.Data.Aggregate.Value; v.Failed == nil || *v.Failed != 10 || v.Succeeded == nil || *v.Succeeded != 2 {
		t.Fatalf("firing value %+v, want 10 failed and 2 succeeded: decided on the whole window", v)
	}
	if n := testenv.Metric(t, p.reg, "exo_processor_aggregate_inputs_total", "outcome", "counted"); n != 52 {
		t.Fatalf("inputs counted %v, want 52", n)
	}
}

// stepStream is the rebalance test's stream: groups whose failures are
// spread over the phases of the test, in one window of event time.
type stepStream struct {
	e      *kenv
	tenant string
	fire   map[groupRef]bool
	phases [][]*kgo.Record
}

// group adds a workflow with failures[i] failures in phase i (at event time
// at[i] and a few ms after) and successes successes in phase 0.
func (s *stepStream) group(wf string, at []time.Time, successes int, failures ...int) {
	total := 0
	for i, n := range failures {
		for j := range n {
			ev := workload.Event(workload.Spec{Tenant: s.tenant, Type: schemas.TypeRunFailed, WorkflowName: wf, Time: at[i].Add(time.Duration(j) * time.Millisecond)})
			s.phases[i] = append(s.phases[i], s.e.record(ev))
		}
		total += n
	}
	for j := range successes {
		ev := workload.Event(workload.Spec{Tenant: s.tenant, Type: schemas.TypeRunSucceeded, WorkflowName: wf, Time: at[0].Add(time.Duration(j) * time.Millisecond)})
		s.phases[0] = append(s.phases[0], s.e.record(ev))
	}
	if total >= 3 {
		s.fire[groupRef{s.tenant, "count3", wf}] = true
	}
	if runs := total + successes; runs >= 4 && successes*2 < runs {
		s.fire[groupRef{s.tenant, "rate", wf}] = true
	}
}

// TestAggregateRebalanceTwoProcessors runs two in-process processors in one
// group: B joins while groups are mid-window, A leaves later. Each group's
// failures are spread over the three phases (A alone, A and B, B alone), so
// its inputs are counted by whichever instance owns its rule's partition,
// restored from the changelog across both rebalances: every group meant to
// fire fires once and resolves once, under one incident; none other does.
func TestAggregateRebalanceTwoProcessors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tenants := []string{"ra", "rb", "rc"}
	e.putAggregateRules(tenants)
	// Event times ahead of the wall clock: only the events move time.
	t0 := time.Now().Add(time.Minute).UTC().Truncate(time.Second)
	at := []time.Time{t0, t0.Add(10 * time.Second), t0.Add(20 * time.Second)}
	s := &stepStream{e: e, fire: map[groupRef]bool{}, phases: make([][]*kgo.Record, 3)}
	for _, tn := range tenants {
		s.tenant = tn
		for g := range 12 {
			wf := fmt.Sprintf("wf%02d", g)
			switch g % 4 {
			case 0:
				s.group(wf, at, 0, 1, 1, 1) // the third failure after B joined... and A left
			case 1:
				s.group(wf, at, 0, 1, 0, 1) // two: nothing
			case 2:
				s.group(wf, at, 1, 2, 2, 1) // count and rate
			case 3:
				s.group(wf, at, 3, 0, 2, 0) // two failures of five runs: nothing
			}
		}
	}
	// tick moves every partition's watermark to at.
	tick := func(at time.Time) {
		var recs []*kgo.Record
		for p := range int32(partitions) {
			recs = append(recs, e.onPartition(workload.Event(workload.Spec{Tenant: "tick", Type: schemas.TypeRunStarted, WorkflowName: "tick", Time: at}), p))
		}
		e.produceOn(recs...)
	}
	members := func() (state string, owners int) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gs, err := e.adm.DescribeGroups(ctx, e.group())
		if err != nil {
			return err.Error(), 0
		}
		g := gs[e.group()]
		var b strings.Builder
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); ok {
				owned := 0
				for _, tp := range a.Topics {
					owned += len(tp.Partitions)
				}
				if owned > 0 {
					owners++
				}
				fmt.Fprintf(&b, " %s:%+v", m.ClientID, a.Topics)
			}
		}
		return g.State + b.String(), owners
	}
	waitOwners := func(n int) {
		t.Helper()
		var state string
		eventually(t, 60*time.Second, fmt.Sprintf("%d group members owning partitions", n), func() bool {
			var owners int
			state, owners = members()
			return owners == n && strings.HasPrefix(state, "Stable")
		}, func() string { return "group: " + state })
	}
	deliveries := e.collect(e.topics.Deliveries)
	inputs := e.collect(e.topics.AggregateInput)

	a := e.startProcessor("a", func(c *processor.Config) { c.AggregateDelay = processor.NoAggregateDelay })
	waitOwners(1)
	e.produce(s.phases[0]...)
	tick(at[0].Add(5 * time.Second))
	e.waitCaughtUp(30 * time.Second)
	e.waitInputsRead(inputs, 30*time.Second)

	b := e.startProcessor("b", func(c *processor.Config) { c.AggregateDelay = processor.NoAggregateDelay })
	waitOwners(2)
	e.produce(s.phases[1]...)
	tick(at[1].Add(5 * time.Second))
	e.waitCaughtUp(30 * time.Second)
	e.waitInputsRead(inputs, 30*time.Second)

	a.stop(t)
	waitOwners(1)
	e.produce(s.phases[2]...)
	tick(at[2].Add(5 * time.Second))
	e.waitCaughtUp(30 * time.Second)
	e.waitInputsRead(inputs, 30*time.Second)

	// Event time passes every window: every group that fired resolves.
	tick(t0.Add(2 * time.Minute))
	deliveries.waitFor(90*time.Second, "one firing and one resolve per expected group", func() bool {
		return checkEpisodes(deliveries.episodes(), s.fire, true) == ""
	}, func() string { return checkEpisodes(deliveries.episodes(), s.fire, true) })
	e.waitCaughtUp(30 * time.Second)
	e.waitInputsRead(inputs, 30*time.Second)
	deliveries.drain()
	if problems := checkEpisodes(deliveries.episodes(), s.fire, true); problems != "" {
		t.Fatal(problems)
	}
	if n := len(deliveries.recs); n != 2*len(s.fire) {
		t.Fatalf("%d delivery records, want %d", n, 2*len(s.fire))
	}
	t.Logf("%d groups fired and resolved once each across a join and a leave (transitions to firing: A %.0f, B %.0f)", len(s.fire),
		testenv.Metric(t, a.reg, "exo_processor_aggregate_transitions_total", "to", "firing"),
		testenv.Metric(t, b.reg, "exo_processor_aggregate_transitions_total", "to", "firing"))
}

// A backlog whose events partitions each span half an hour of event time is
// replayed a poll at a time, each holding long stretches of single
// partitions, so a group's inputs from one partition reach stage 2 many
// minutes of event time after those of another: none is lost as late, for
// none is older than the window under stage 2's clock (the slowest
// partition's watermark).
func TestAggregateBacklogReplayNothingLate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const tn = "tal"
	e.putEndpoint(tn, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "starts", Kind: schemas.RuleKindCount, EventType: schemas.TypeRunStarted, WebhookEndpointID: "ep",
		IsActive: true, WindowMS: 15 * 60_000, Threshold: 100_000})
	const perPartition = 1500
	base := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	for part := range int32(partitions) {
		var recs []*kgo.Record
		for i := range perPartition {
			ev := workload.Event(workload.Spec{Tenant: tn, Type: schemas.TypeRunStarted, WorkflowName: "etl",
				Time: base.Add(time.Duration(i) * 1200 * time.Millisecond)})
			recs = append(recs, e.onPartition(ev, part))
			if len(recs) == 50 {
				e.produceOn(recs...)
				recs = recs[:0]
			}
		}
	}
	p := e.startProcessor("backlog-skew", nil)
	inputs := e.collect(e.topics.AggregateInput)
	e.waitCaughtUp(60 * time.Second)
	e.waitInputsRead(inputs, 60*time.Second)
	counted := testenv.Metric(t, p.reg, "exo_processor_aggregate_inputs_total", "outcome", "counted")
	late := testenv.Metric(t, p.reg, "exo_processor_aggregate_inputs_total", "outcome", "late")
	if counted != partitions*perPartition || late != 0 {
		t.Fatalf("inputs counted %v, late %v; want %d counted, none late", counted, late, partitions*perPartition)
	}
}

// A record of processor.aggregate-input that can never succeed (not JSON;
// JSON of an unknown kind), produced between a count rule's good inputs on
// their partition, is set aside on the invalid topic with its reason and
// coordinates, and counted; stage 2 keeps going: the rule (3 failures)
// still fires exactly once, at the third failure.
func TestAggregateInvalidInputSetAside(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const tn = "tp"
	e.putEndpoint(tn, "ep", true)
	e.putRule(schemas.RuleRecord{TenantID: tn, ID: "three-failures", Kind: schemas.RuleKindCount, EventType: schemas.TypeRunFailed, WebhookEndpointID: "ep",
		IsActive: true, WindowMS: 15 * 60_000, Threshold: 3, GroupBy: []string{"workflow.name"}, MaxGroups: 10})
	p := e.startProcessor("poison", func(c *processor.Config) { c.AggregateDelay = processor.NoAggregateDelay })
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
	// On the partition of the rule's inputs, between them.
	key := []byte(schemas.TenantKey(tn, "three-failures"))
	part := int32(kgo.StickyKeyPartitioner(nil).ForTopic(e.topics.AggregateInput).Partition(&kgo.Record{Key: key}, partitions))
	bad := map[string]*kgo.Record{
		"garbage": {Topic: e.topics.AggregateInput, Partition: part, Key: key, Value: []byte("\x00\x01 not json {")},
		"wrong-kind": {Topic: e.topics.AggregateInput, Partition: part, Key: key,
			Value: []byte(`{"kind":"alert","tenant_id":"tp","rule_id":"three-failures","outcome":"matched","at":"2026-01-01T00:00:00Z"}`)},
	}
	fail()
	e.produceOn(bad["garbage"])
	fail()
	e.produceOn(bad["wrong-kind"])
	fail()
	deliveries.waitFor(30*time.Second, "the firing", func() bool { return len(deliveries.episodes()) > 0 }, func() string { return describeEpisodes(deliveries.episodes()) })
	fail() // the processor still runs, and a fourth failure does not fire again
	deliveries.drain()
	eps := deliveries.episodes()
	if len(eps) != 1 || eps[0].EventType != schemas.TypeAlertFiring || eps[0].P.Data.Event.ID != ids[2] {
		t.Fatalf("%s; want one firing, at the third failure (%s)", describeEpisodes(eps), ids[2])
	}

	invalid := e.collect(e.topics.EventsInvalid)
	invalid.waitFor(30*time.Second, "both bad inputs on the invalid topic", func() bool { return len(invalid.recs) >= len(bad) },
		func() string { return fmt.Sprintf("%d records", len(invalid.recs)) })
	invalid.drain()
	if len(invalid.recs) != len(bad) {
		t.Fatalf("%d records on the invalid topic, want %d", len(invalid.recs), len(bad))
	}
	for _, r := range invalid.recs {
		var name string
		for n, b := range bad {
			if string(b.Value) == string(r.Value) {
				name = n
			}
		}
		orig := bad[name]
		reason := kafka.Header(r, schemas.HeaderInvalidReason)
		if orig == nil || reason == "" ||
			kafka.Header(r, schemas.HeaderOrigTopic) != e.topics.AggregateInput ||
			kafka.Header(r, schemas.HeaderOrigPartition) != strconv.Itoa(int(orig.Partition)) ||
			kafka.Header(r, schemas.HeaderOrigOffset) != strconv.FormatInt(orig.Offset, 10) {
			t.Errorf("invalid record %q (%s): reason %q, origin %s/%s/%s", r.Value, name, reason,
				kafka.Header(r, schemas.HeaderOrigTopic), kafka.Header(r, schemas.HeaderOrigPartition), kafka.Header(r, schemas.HeaderOrigOffset))
			continue
		}
		t.Logf("%s → invalid: %s", name, reason)
	}
	for _, c := range []struct {
		outcome string
		want    float64
	}{{"invalid", 2}, {"counted", 4}} {
		if got := testenv.Metric(t, p.reg, "exo_processor_aggregate_inputs_total", "outcome", c.outcome); got != c.want {
			t.Errorf("exo_processor_aggregate_inputs_total{outcome=%q} = %v, want %v", c.outcome, got, c.want)
		}
	}
}
