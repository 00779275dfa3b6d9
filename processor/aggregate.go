// Stage 2 glue: the partitions of processor.aggregate-input consumed in the
// same transaction session as the events, restored from the
// processor.aggregate-state changelog on assignment, fed to the aggregate
// engine (processor/aggregate), whose outputs of a batch (changelog,
// group status, firing and resolved deliveries) are produced in the
// batch's transaction.

package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/processor/aggregate"
	"github.com/exospherehost/exo-alerts/schemas"
)

// aggregateRules is the served rule table as stage 2 reads it: a tenant
// the rollout does not serve has no rules, so its firing groups resolve
// (rule_removed) and it gets no repeats, as it gets no alerts.
type aggregateRules struct{ servedRules }

// Rule implements aggregate.Rules.
func (a aggregateRules) Rule(tenant, id string) (schemas.RuleRecord, bool) {
	r := a.Get(tenant, id)
	if r == nil {
		return schemas.RuleRecord{}, false
	}
	return r.RuleRecord, true
}

// assignAggregate restores partition part of processor.aggregate-input
// from its changelog.
func (p *Processor) assignAggregate(ctx context.Context, part int32) error {
	start := time.Now()
	recs, err := restore(ctx, p, tp{p.cfg.Topics.AggregateState, part}, func(r *kgo.Record) (aggregate.StateChange, error) {
		return aggregate.StateChange{Key: string(r.Key), Value: r.Value}, nil
	})
	if err != nil {
		return err
	}
	p.agg.Assign(part, recs)
	p.inputs[part] = start
	p.log.Info("aggregate-input partition assigned; groups restored", "partition", part, "records", len(recs), "took_ms", time.Since(start).Milliseconds())
	return nil
}

// rebalanceAggregate assigns or revokes a partition of
// processor.aggregate-input.
func (p *Processor) rebalanceAggregate(ctx context.Context, assign bool, at tp) error {
	if !assign {
		p.agg.Revoke(at.part)
		delete(p.inputs, at.part)
		return nil
	}
	if p.agg.Assigned(at.part) {
		return nil
	}
	return p.assignAggregate(ctx, at.part)
}

// aggregateInput feeds one record of processor.aggregate-input to stage 2.
// A record that is not a valid input or marker (only the processor writes
// the topic: a bug, or a record made by hand) can never succeed: it is
// counted (exo_processor_aggregate_inputs_total{outcome="invalid"}),
// logged with its coordinates and set aside on the invalid topic with its
// reason, in the batch's transaction, like an invalid event.
func (p *Processor) aggregateInput(r *kgo.Record) []*kgo.Record {
	var in schemas.AggregateInput
	err := json.Unmarshal(r.Value, &in)
	if err == nil {
		err = checkAggregateInput(&in)
	}
	if err != nil {
		// The schema says what else is wrong; the cheap checks above keep
		// the hot path free of it.
		if verr := schemas.Validate(schemas.KindAggregateInput, r.Value); verr != nil {
			err = fmt.Errorf("%w (%w)", err, verr)
		}
		reason := invalid("aggregate input: %v", err)
		p.count(outcomeAggregateInvalid)
		p.log.Error("invalid aggregate input sent to the invalid topic", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", reason)
		return []*kgo.Record{p.invalidRecord(r, reason)}
	}
	return p.aggregateRecords(r.Partition, p.agg.Input(r.Partition, &in))
}

// outcomeAggregateInvalid counts the records of processor.aggregate-input
// set aside (exo_processor_aggregate_inputs_total{outcome="invalid"}).
const outcomeAggregateInvalid = "aggregate_invalid"

// checkAggregateInput is the cheap check of a decoded input: the members
// stage 2 needs, present and known. The engine would ignore (or count as
// stale_spec) what fails it, silently.
func checkAggregateInput(in *schemas.AggregateInput) error {
	switch in.Kind {
	case schemas.AggregateInputKindInput:
		switch {
		case in.TenantID == "" || in.RuleID == "":
			return errors.New("an input without tenant_id or rule_id")
		case in.At.IsZero():
			return errors.New("an input without at")
		}
		switch in.Outcome {
		case schemas.AggregateOutcomeMatched, schemas.AggregateOutcomeSucceeded, schemas.AggregateOutcomeFailed:
			return nil
		}
		return fmt.Errorf("unknown outcome %q", in.Outcome)
	case schemas.AggregateInputKindWatermark:
		if in.SourcePartition == nil || *in.SourcePartition < 0 || in.Watermark.IsZero() {
			return errors.New("a watermark marker without source_partition or watermark")
		}
		return nil
	}
	return fmt.Errorf("unknown kind %q", in.Kind)
}

// inputParts are the assigned partitions of processor.aggregate-input, in
// order.
func (p *Processor) inputParts() []int32 {
	parts := make([]int32, 0, len(p.inputs))
	for part := range p.inputs {
		if p.agg.Assigned(part) {
			parts = append(parts, part)
		}
	}
	slices.Sort(parts)
	return parts
}

// aggregateEnd ends stage 2's batch: rule changes first (Tick), then the
// coalesced changelog and status of every assigned partition (Flush).
func (p *Processor) aggregateEnd() []*kgo.Record {
	var out []*kgo.Record
	for _, part := range p.inputParts() {
		out = append(out, p.aggregateRecords(part, p.agg.Tick(part))...)
		out = append(out, p.aggregateRecords(part, p.agg.Flush(part))...)
	}
	return out
}

// aggregateRecords turns stage-2 output of partition part into records:
// deliveries, changelog records on the partition of their inputs, group
// status by key.
func (p *Processor) aggregateRecords(part int32, out aggregate.Output) []*kgo.Record {
	recs := make([]*kgo.Record, 0, len(out.Deliveries)+len(out.States)+len(out.Status))
	for i := range out.Deliveries {
		recs = append(recs, p.deliveryRecord(&out.Deliveries[i]))
	}
	for _, s := range out.States {
		recs = append(recs, &kgo.Record{Topic: p.cfg.Topics.AggregateState, Key: []byte(s.Key), Value: s.Value, Partition: part})
	}
	for _, s := range out.Status {
		recs = append(recs, &kgo.Record{Topic: p.cfg.Topics.AggregateGroups, Key: []byte(s.Key), Value: s.Value})
	}
	return recs
}

// aggregateGauges records, for scrapes, stage 2's groups by state and the
// effective watermark of each assigned input partition.
func (p *Processor) aggregateGauges() {
	wms := map[int32]aggregateWatermark{}
	for _, part := range p.inputParts() {
		wms[part] = aggregateWatermark{e: p.agg.Watermark(part), since: p.inputs[part]}
	}
	p.m.agg.set(p.agg.Groups(), wms)
}
