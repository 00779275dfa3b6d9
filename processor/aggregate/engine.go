package aggregate

import (
	"sync/atomic"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Config configures the engine.
type Config struct {
	// Sources is the number of events partitions (P): the effective
	// watermark is the minimum over all of them, and a source that never
	// reported a marker counts as the zero time.
	Sources int
	// Delay is subtracted from that minimum (EXO_PROCESSOR_AGGREGATE_DELAY):
	// out-of-order events of a partition within Delay are not late.
	Delay time.Duration
	// MaxGroupsPerPartition bounds the groups of one stage-2 partition
	// (EXO_PROCESSOR_AGGREGATE_MAX_GROUPS); 0: no bound.
	MaxGroupsPerPartition int
}

// StateChange is a record of processor.aggregate-state (Output.States) or of
// aggregate-groups (Output.Status): Key is the record's key, Value its JSON
// (a schemas.AggregateStateRecord or schemas.AggregateGroupStatus), nil a
// tombstone.
type StateChange struct {
	Key   string
	Value []byte
}

// Rules is the processor's rule table as stage 2 needs it.
type Rules interface {
	// Rule returns the rule of tenant with id ruleID; false when it does not
	// exist. An inactive or per_event rule is treated as removed.
	Rule(tenantID, ruleID string) (schemas.RuleRecord, bool)
	// Version changes whenever any rule changes.
	Version() uint64
}

// Endpoints says whether an endpoint can receive.
type Endpoints interface {
	Active(tenantID, endpointID string) bool
}

// Admitter is the delivery quota (processor/quota): it is asked once per
// firing or repeat delivery, never for a resolve. A nil Admitter admits all.
type Admitter interface {
	Admit(partition int32, tenantID string, at time.Time) bool
}

// Output is what one call produced, to be written in the batch's
// transaction: deliveries to `deliveries`, changelog records to
// processor.aggregate-state (States, from Flush only) and status records to
// aggregate-groups (Status, from Flush only).
type Output struct {
	Deliveries []schemas.DeliveryRecord
	States     []StateChange
	Status     []StateChange
}

func (o *Output) append(other Output) {
	o.Deliveries = append(o.Deliveries, other.Deliveries...)
	o.States = append(o.States, other.States...)
	o.Status = append(o.Status, other.Status...)
}

// Stats are counters the processor exports as metrics; safe to read from
// any goroutine. They count committed work only: an aborted batch's counts
// are taken back by Abort.
//
//	exo_processor_aggregate_inputs_total{outcome}:      InputsCounted, InputsLate, InputsDropped, InputsStaleSpec
//	exo_processor_aggregate_transitions_total{to}:      ToFiring, ToResolving, ToResolved, ToRepeat
//
// Engine.Groups gives exo_processor_aggregate_groups{state} and
// Engine.Watermark the effective watermark of a partition (for
// exo_processor_aggregate_watermark_lag_seconds{partition}).
type Stats struct {
	InputsCounted   atomic.Uint64
	InputsLate      atomic.Uint64
	InputsDropped   atomic.Uint64
	InputsStaleSpec atomic.Uint64
	ToFiring        atomic.Uint64
	ToResolving     atomic.Uint64
	ToResolved      atomic.Uint64
	ToRepeat        atomic.Uint64
}

// Engine is stage 2: the groups of the aggregate-input partitions assigned
// to this processor. Not safe for concurrent use (Stats is).
type Engine struct {
	cfg   Config
	rules Rules
	eps   Endpoints
	quota Admitter
	Stats *Stats

	parts map[int32]*partition
}

// New returns an engine. It has no clock: time comes from inputs and markers.
func New(cfg Config, rules Rules, eps Endpoints, q Admitter) *Engine {
	return &Engine{cfg: cfg, rules: rules, eps: eps, quota: q, Stats: &Stats{}, parts: map[int32]*partition{}}
}

// partition is the state of one aggregate-input partition.
type partition struct{}

// Assign restores partition p from its processor.aggregate-state records, in
// log order (a later record of a key replaces an earlier one; a nil Value
// deletes it). The restored partition decides as the one that wrote them.
func (e *Engine) Assign(p int32, recs []StateChange) { e.parts[p] = &partition{} }

// Revoke forgets partition p.
func (e *Engine) Revoke(p int32) { delete(e.parts, p) }

// Assigned says whether partition p is held.
func (e *Engine) Assigned(p int32) bool { _, ok := e.parts[p]; return ok }

// Input applies one record of processor.aggregate-input on partition p: an
// input of a rule (counted, late, dropped or stale_spec; a count rule may
// fire) or a watermark marker (the effective watermark may move: rate rules
// fire, groups resolve, repeat, idle groups are dropped).
func (e *Engine) Input(p int32, in *schemas.AggregateInput) Output { return Output{} }

// Tick applies rule changes on partition p when Rules.Version moved since
// the last call: the groups of a removed (deleted, deactivated, no longer
// aggregate) rule or of a rule whose spec changed resolve at once
// (rule_removed / rule_changed) and are dropped.
func (e *Engine) Tick(p int32) Output { return Output{} }

// Flush ends partition p's batch: one changelog record per group, rule and
// watermarks changed since the last Flush, and the aggregate-groups status
// records due (every state change; firing and resolving groups at most once
// per minute of event time otherwise).
func (e *Engine) Flush(p int32) Output { return Output{} }

// Begin starts a batch over all partitions.
func (e *Engine) Begin() {}

// Commit keeps the batch's changes.
func (e *Engine) Commit() {}

// Abort undoes every change since Begin, on every partition, including the
// Stats and what the next Flush would write.
func (e *Engine) Abort() {}

// Watermark returns partition p's effective watermark E (zero until every
// source reported).
func (e *Engine) Watermark(p int32) time.Time { return time.Time{} }

// Groups returns the number of groups held by state (inactive, firing,
// resolving) over all partitions.
func (e *Engine) Groups() map[string]int { return map[string]int{} }
