package aggregate

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Config configures the engine.
type Config struct {
	// Sources is the number of events partitions (P): the effective
	// watermark is the minimum over all of them, and a source that never
	// reported a marker counts as the zero time, so nothing time-driven
	// happens until every source reported.
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
// firing or repeat about to be delivered, never for a resolve. A nil
// Admitter admits all.
type Admitter interface {
	Admit(partition int32, tenantID string, at time.Time) bool
}

// Output is what one call produced, to be written in the batch's
// transaction: deliveries to `deliveries`, changelog records to
// processor.aggregate-state (States) and status records to
// aggregate-groups (Status); the last two come from Flush only.
type Output struct {
	Deliveries []schemas.DeliveryRecord
	States     []StateChange
	Status     []StateChange
}

// Stats are counters the processor exports as metrics; safe to read from
// any goroutine. Inside a batch (Begin … Commit) they move at Commit only,
// so an aborted batch counts nothing.
//
//	exo_processor_aggregate_inputs_total{outcome="counted"|"late"|"dropped"|"stale_spec"}:
//	    InputsCounted, InputsLate, InputsDropped, InputsStaleSpec
//	exo_processor_aggregate_transitions_total{to="firing"|"resolving"|"resolved"|"repeat"}:
//	    ToFiring, ToResolving, ToResolved, ToRepeat
//
// Gauges are read from the goroutine that drives the engine:
// Engine.Groups for exo_processor_aggregate_groups{state}, Engine.Watermark
// for exo_processor_aggregate_watermark_lag_seconds{partition} (wall clock
// minus it; zero while a source never reported).
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

// counters are the Stats of a batch not committed yet.
type counters struct {
	counted, late, dropped, stale           uint64
	firing, resolving, resolved, repeatOnes uint64
}

func (s *Stats) add(c counters) {
	s.InputsCounted.Add(c.counted)
	s.InputsLate.Add(c.late)
	s.InputsDropped.Add(c.dropped)
	s.InputsStaleSpec.Add(c.stale)
	s.ToFiring.Add(c.firing)
	s.ToResolving.Add(c.resolving)
	s.ToResolved.Add(c.resolved)
	s.ToRepeat.Add(c.repeatOnes)
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
	specs map[string]ruleSpec // tenant/rule → the last rule record seen and its spec
	paths map[string][]string // spec → its group_by paths (fixed by the spec)
	batch *batch              // nil outside Begin … Commit/Abort
}

// ruleSpec caches SpecOf of a rule version, and keeps the last record of a
// rule seen, to name its groups and describe its resolves once it is gone.
type ruleSpec struct {
	rec  schemas.RuleRecord
	spec string
}

// New returns an engine. It has no clock: time comes from inputs and markers.
func New(cfg Config, rules Rules, eps Endpoints, q Admitter) *Engine {
	return &Engine{cfg: cfg, rules: rules, eps: eps, quota: q, Stats: &Stats{},
		parts: map[int32]*partition{}, specs: map[string]ruleSpec{}, paths: map[string][]string{}}
}

// partition is the state of one aggregate-input partition.
type partition struct {
	id      int32
	sources map[int32]time.Time // newest marker per events partition
	e       time.Time           // effective watermark
	groups  map[string]*entry   // tenant/rule/grp_…
	rules   map[string]*ruleStat
	heap    dueHeap
	byState [3]int

	synced       bool
	rulesVersion uint64

	// What the next Flush writes.
	dirty       map[string]struct{} // group keys (changelog)
	dirtyRules  map[string]struct{} // rule keys (changelog and summary)
	dirtyStatus map[string]struct{} // group keys (aggregate-groups)
	wmDirty     bool
}

// entry is one group with what the engine keeps beside its window and
// lifecycle.
type entry struct {
	key    string // tenant/rule/grp_…
	g      Group
	spec   string
	values []string
	last   *schemas.AggregateEvent
	notify *schemas.AggregateNotify
	due    int64
}

func (en *entry) nextDue() int64 { return en.g.nextDue() }

func (en *entry) ruleKey() string { return schemas.TenantKey(en.g.Tenant, en.g.Rule) }

// ruleStat is a rule's counts on one partition.
type ruleStat struct {
	tenant, rule, spec string
	groups             int
	dropped, late      int64
	// holdMS and repeatMS are the rule's when its groups last took them
	// (-1: unknown), so sync visits the groups only when they moved.
	holdMS, repeatMS int64
}

func newPartition(id int32) *partition {
	return &partition{id: id, sources: map[int32]time.Time{}, groups: map[string]*entry{}, rules: map[string]*ruleStat{},
		dirty: map[string]struct{}{}, dirtyRules: map[string]struct{}{}, dirtyStatus: map[string]struct{}{}}
}

// Revoke forgets partition p.
func (e *Engine) Revoke(p int32) { delete(e.parts, p) }

// Assigned says whether partition p is held.
func (e *Engine) Assigned(p int32) bool { _, ok := e.parts[p]; return ok }

// Watermark returns partition p's effective watermark E: the minimum of the
// newest markers of every source less Config.Delay; zero until every source
// reported (and for a partition not held).
func (e *Engine) Watermark(p int32) time.Time {
	if pt := e.parts[p]; pt != nil {
		return pt.e
	}
	return time.Time{}
}

// Groups returns the number of groups held over all partitions by state
// (schemas.AggregateStateInactive, …Firing, …Resolving).
func (e *Engine) Groups() map[string]int {
	var n [3]int
	for _, pt := range e.parts {
		for i := range n {
			n[i] += pt.byState[i]
		}
	}
	return map[string]int{schemas.AggregateStateInactive: n[Inactive], schemas.AggregateStateFiring: n[Firing],
		schemas.AggregateStateResolving: n[Resolving]}
}

// effective computes E from the sources.
func (e *Engine) effective(pt *partition) time.Time {
	if e.cfg.Sources <= 0 {
		return time.Time{}
	}
	var low time.Time
	for s := range int32(min(e.cfg.Sources, math.MaxInt32)) {
		t, ok := pt.sources[s]
		if !ok {
			return time.Time{}
		}
		if s == 0 || t.Before(low) {
			low = t
		}
	}
	return low.Add(-e.cfg.Delay).UTC()
}

// rule returns the current aggregate rule of key and its spec; ok=false when
// it is gone (deleted, inactive, no longer an aggregate kind).
func (e *Engine) rule(tenant, id string) (ruleSpec, bool) {
	r, ok := e.rules.Rule(tenant, id)
	if !ok || !r.IsActive || !r.IsAggregate() {
		return ruleSpec{}, false
	}
	key := schemas.TenantKey(tenant, id)
	rs, seen := e.specs[key]
	if !seen || rs.rec.Version != r.Version || rs.rec.UpdatedAt != r.UpdatedAt {
		rs = ruleSpec{rec: r, spec: SpecOf(r)}
		e.specs[key] = rs
		e.paths[rs.spec] = r.GroupBy
	}
	return rs, true
}

// specFor maps a rule record onto what a group needs of it.
func specFor(r *schemas.RuleRecord) Spec {
	sp := Spec{Kind: Count, WindowMS: r.WindowMS, Threshold: r.Threshold, HoldMS: r.HoldMS, RepeatIntervalMS: r.RepeatIntervalMS}
	if r.RuleKind() == schemas.RuleKindRate {
		sp.Kind, sp.Threshold, sp.RatioBelowBP, sp.MinRuns = Rate, 0, r.SuccessRatioBelowBP, r.MinRuns
	}
	return sp
}

func outcomeOf(kind Kind, s string) (Outcome, bool) {
	switch {
	case kind == Count && s == schemas.AggregateOutcomeMatched:
		return Matched, true
	case kind == Rate && s == schemas.AggregateOutcomeSucceeded:
		return Succeeded, true
	case kind == Rate && s == schemas.AggregateOutcomeFailed:
		return Failed, true
	}
	return 0, false
}

// Input applies one record of processor.aggregate-input on partition p: an
// input of a rule (counted, late, dropped or stale_spec; a count rule may
// fire) or a watermark marker (the effective watermark may move: rate rules
// fire, groups resolve, repeat, idle groups are dropped). Rule changes are
// applied first, as Tick does. A partition not held is ignored.
func (e *Engine) Input(p int32, in *schemas.AggregateInput) Output {
	pt := e.parts[p]
	if pt == nil || in == nil {
		return Output{}
	}
	e.touchPart(pt)
	var out Output
	e.sync(pt, &out)
	switch in.Kind {
	case schemas.AggregateInputKindWatermark:
		e.marker(pt, in, &out)
	case schemas.AggregateInputKindInput:
		e.input(pt, in, &out)
	}
	return out
}

// Tick applies rule changes on partition p when Rules.Version moved since
// the partition last looked: the groups of a removed rule (deleted,
// deactivated, no longer aggregate) or of a rule whose spec changed resolve
// at once (rule_removed / rule_changed) and are dropped; a new hold or
// repeat interval applies to the groups from then on.
func (e *Engine) Tick(p int32) Output {
	pt := e.parts[p]
	if pt == nil {
		return Output{}
	}
	e.touchPart(pt)
	var out Output
	e.sync(pt, &out)
	return out
}

func (e *Engine) marker(pt *partition, in *schemas.AggregateInput, out *Output) {
	if in.SourcePartition == nil || *in.SourcePartition < 0 || int(*in.SourcePartition) >= e.cfg.Sources || in.Watermark.IsZero() {
		return
	}
	src := *in.SourcePartition
	if old, ok := pt.sources[src]; ok && !in.Watermark.After(old) {
		return // a restarted owner may report a lower one: max wins
	}
	pt.sources[src] = in.Watermark.UTC()
	pt.wmDirty = true
	ne := e.effective(pt)
	if !ne.After(pt.e) {
		return
	}
	old := pt.e
	pt.e = ne
	ems := ne.UnixMilli()
	for {
		en, ok := pt.popDue(ems)
		if !ok {
			break
		}
		en = e.touch(pt, en.key)
		before := en.g.state
		pt.dirty[en.key] = struct{}{} // evaluated moves
		e.apply(pt, en, before, en.g.Advance(ne), nil, out)
		e.settle(pt, en)
	}
	// Firing and resolving groups report their value once per minute of
	// event time.
	if !old.IsZero() && ne.Truncate(time.Minute).After(old.Truncate(time.Minute)) {
		for k, en := range pt.groups {
			if en.g.state != Inactive {
				pt.dirtyStatus[k] = struct{}{}
			}
		}
	}
}

// settle reschedules a group after a change, or drops it when idle.
func (e *Engine) settle(pt *partition, en *entry) {
	if !pt.e.IsZero() && en.g.Idle(pt.e) {
		e.drop(pt, en)
		return
	}
	pt.schedule(en)
}

func (e *Engine) drop(pt *partition, en *entry) {
	e.touch(pt, en.key)
	delete(pt.groups, en.key)
	pt.byState[en.g.state]--
	if rs := e.touchRule(pt, en.ruleKey()); rs != nil {
		rs.groups--
		pt.dirtyRules[en.ruleKey()] = struct{}{}
	}
	pt.dirty[en.key] = struct{}{}
	pt.dirtyStatus[en.key] = struct{}{}
}

func (e *Engine) input(pt *partition, in *schemas.AggregateInput, out *Output) {
	rs, ok := e.rule(in.TenantID, in.RuleID)
	if !ok || rs.spec != in.Spec {
		e.count(func(c *counters) { c.stale++ })
		return
	}
	r := &rs.rec
	sp := specFor(r)
	o, ok := outcomeOf(sp.Kind, in.Outcome)
	if !ok {
		e.count(func(c *counters) { c.stale++ })
		return
	}
	rk := schemas.TenantKey(in.TenantID, in.RuleID)
	st := e.touchRule(pt, rk)
	if st != nil && st.spec != rs.spec {
		e.endRule(pt, rk, ReasonRuleChanged, out)
		st = e.touchRule(pt, rk)
		st.spec, st.holdMS, st.repeatMS = rs.spec, -1, -1
		pt.dirtyRules[rk] = struct{}{}
	}
	if st == nil {
		st = &ruleStat{tenant: in.TenantID, rule: in.RuleID, spec: rs.spec, holdMS: sp.HoldMS, repeatMS: sp.RepeatIntervalMS}
		pt.rules[rk] = st
		pt.dirtyRules[rk] = struct{}{}
	}
	gk := GroupKey(in.TenantID, in.RuleID, in.Group)
	key := rk + "/" + gk
	en := e.touch(pt, key)
	if en == nil {
		w := newWindow(sp.WindowMS)
		if !pt.e.IsZero() && w.index(in.At.UnixMilli()) <= w.index(pt.e.UnixMilli())-Buckets {
			st.late++
			pt.dirtyRules[rk] = struct{}{}
			e.count(func(c *counters) { c.late++ })
			return
		}
		if (r.MaxGroups > 0 && st.groups >= r.MaxGroups) ||
			(e.cfg.MaxGroupsPerPartition > 0 && len(pt.groups) >= e.cfg.MaxGroupsPerPartition) {
			st.dropped++
			pt.dirtyRules[rk] = struct{}{}
			e.count(func(c *counters) { c.dropped++ })
			return
		}
		en = &entry{key: key, g: *NewGroup(in.TenantID, in.RuleID, gk, sp), spec: rs.spec, values: slices.Clone(in.Group), due: noDue}
		pt.groups[key] = en
		pt.byState[Inactive]++
		st.groups++
		pt.dirtyRules[rk] = struct{}{}
		pt.dirtyStatus[key] = struct{}{}
	}
	en.g.Spec.HoldMS, en.g.Spec.RepeatIntervalMS = sp.HoldMS, sp.RepeatIntervalMS
	before := en.g.state
	counted, trs := en.g.Add(Input{At: in.At, Outcome: o}, pt.e)
	pt.dirty[key] = struct{}{}
	if counted {
		e.count(func(c *counters) { c.counted++ })
		if in.Event != nil && (sp.Kind == Count || o == Failed || en.last == nil || en.last.Type != schemas.TypeRunFailed) {
			// Count rules name their newest input; rate rules their newest
			// failure (what a firing at a boundary names), else the newest.
			ev := *in.Event
			ev.At = in.At.UTC()
			en.last = &ev
		}
	} else {
		st.late++
		pt.dirtyRules[rk] = struct{}{}
		e.count(func(c *counters) { c.late++ })
	}
	var crossing *schemas.AggregateEvent
	if in.Event != nil {
		ev := *in.Event
		ev.At = in.At.UTC()
		crossing = &ev
	}
	e.apply(pt, en, before, trs, crossing, out)
	e.settle(pt, en)
}

// sync applies rule changes once Rules.Version moved: the groups of rules
// gone or of another spec resolve and are dropped, in key order; a new hold
// or repeat interval reaches every group of its rule.
func (e *Engine) sync(pt *partition, out *Output) {
	v := e.rules.Version()
	if pt.synced && v == pt.rulesVersion {
		return
	}
	e.touchPart(pt)
	pt.synced, pt.rulesVersion = true, v
	keys := make([]string, 0, len(pt.rules))
	for k := range pt.rules {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	ends := map[string]string{}  // rule key → resolve reason
	specs := map[string]string{} // rule key → its new spec (rule_changed)
	timing := map[string]Spec{}  // rule key → its new hold and repeat
	for _, rk := range keys {
		st := pt.rules[rk]
		rs, ok := e.rule(st.tenant, st.rule)
		switch {
		case !ok:
			ends[rk] = ReasonRuleRemoved
		case rs.spec != st.spec:
			ends[rk], specs[rk] = ReasonRuleChanged, rs.spec
		default:
			if sp := specFor(&rs.rec); sp.HoldMS != st.holdMS || sp.RepeatIntervalMS != st.repeatMS {
				timing[rk] = sp
				st = e.touchRule(pt, rk)
				st.holdMS, st.repeatMS = sp.HoldMS, sp.RepeatIntervalMS
			}
		}
	}
	if len(ends) == 0 && len(timing) == 0 {
		return
	}
	var ended, moved []string
	for k, en := range pt.groups {
		rk := en.ruleKey()
		if _, ok := ends[rk]; ok {
			ended = append(ended, k)
		} else if sp, ok := timing[rk]; ok && (sp.HoldMS != en.g.Spec.HoldMS || sp.RepeatIntervalMS != en.g.Spec.RepeatIntervalMS) {
			moved = append(moved, k)
		}
	}
	slices.Sort(ended)
	slices.Sort(moved)
	for _, k := range ended {
		e.end(pt, k, ends[pt.groups[k].ruleKey()], out)
	}
	for _, rk := range keys {
		switch ends[rk] {
		case ReasonRuleRemoved:
			e.touchRule(pt, rk)
			delete(pt.rules, rk)
			pt.dirtyRules[rk] = struct{}{}
		case ReasonRuleChanged:
			st := e.touchRule(pt, rk)
			st.spec, st.holdMS, st.repeatMS = specs[rk], -1, -1
			pt.dirtyRules[rk] = struct{}{}
		}
	}
	for _, k := range moved {
		sp := timing[pt.groups[k].ruleKey()]
		en := e.touch(pt, k)
		en.g.Spec.HoldMS, en.g.Spec.RepeatIntervalMS = sp.HoldMS, sp.RepeatIntervalMS
		pt.schedule(en)
	}
}

// endRule resolves every firing or resolving group of rule key rk at once
// (reason) and drops all its groups.
func (e *Engine) endRule(pt *partition, rk, reason string, out *Output) {
	prefix := rk + "/"
	var keys []string
	for k := range pt.groups {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		e.end(pt, k, reason, out)
	}
}

// end resolves the group of key at once if it is firing or resolving, at E
// (its firing time while no E is known), and drops it.
func (e *Engine) end(pt *partition, key, reason string, out *Output) {
	en := e.touch(pt, key)
	at := pt.e
	if at.IsZero() {
		at = en.g.firingSince
	}
	before := en.g.state
	e.apply(pt, en, before, en.g.End(at, reason), nil, out)
	e.drop(pt, en)
}

// apply turns a group's transitions into deliveries, counts and status.
func (e *Engine) apply(pt *partition, en *entry, before State, trs []Transition, crossing *schemas.AggregateEvent, out *Output) {
	if len(trs) == 0 {
		return
	}
	pt.dirty[en.key] = struct{}{}
	pt.dirtyStatus[en.key] = struct{}{}
	for _, tr := range trs {
		switch tr.Step {
		case Fired:
			e.count(func(c *counters) { c.firing++ })
			e.fired(pt, en, tr, crossing, out)
		case Repeated:
			e.count(func(c *counters) { c.repeatOnes++ })
			e.repeated(pt, en, tr, out)
		case Held:
			e.count(func(c *counters) { c.resolving++ })
		case Refired:
			e.count(func(c *counters) { c.firing++ })
		case Resolved:
			e.count(func(c *counters) { c.resolved++ })
			e.resolved(en, tr, out)
			en.notify = nil
		}
	}
	pt.byState[before]--
	pt.byState[en.g.state]++
}

// fired makes the firing delivery of an episode, to the rule's current
// endpoint, unless the endpoint is inactive or the quota suppresses it: the
// group fires anyway, and notify.suppressed says its resolve is not sent.
func (e *Engine) fired(pt *partition, en *entry, tr Transition, crossing *schemas.AggregateEvent, out *Output) {
	rs, ok := e.rule(en.g.Tenant, en.g.Rule)
	if !ok {
		return
	}
	r := &rs.rec
	en.notify = notifyOf(r)
	ev := crossing
	if en.g.Spec.Kind == Rate || ev == nil {
		ev = en.last
	}
	if !e.admit(pt, r, tr.At) {
		en.notify.Suppressed = true
		return
	}
	out.Deliveries = append(out.Deliveries, e.delivery(en, en.notify, schemas.TypeAlertFiring, tr.AlertID, tr, ev))
}

// repeated makes a repeat delivery; the first admitted repeat of a
// suppressed firing is delivered as the firing.
func (e *Engine) repeated(pt *partition, en *entry, tr Transition, out *Output) {
	rs, ok := e.rule(en.g.Tenant, en.g.Rule)
	if !ok || en.notify == nil {
		return
	}
	r := &rs.rec
	if !e.admit(pt, r, tr.At) {
		return
	}
	id := tr.AlertID
	n := notifyOf(r)
	if en.notify.Suppressed {
		// The episode's firing never went out: this delivery is it, and its
		// endpoint gets the resolve.
		en.notify = n
		id, tr.Repeat = FiringAlertID(tr.IncidentID), 0
	}
	out.Deliveries = append(out.Deliveries, e.delivery(en, n, schemas.TypeAlertFiring, id, tr, en.last))
}

// resolved makes the resolve delivery, to the endpoint that got the firing.
func (e *Engine) resolved(en *entry, tr Transition, out *Output) {
	n := en.notify
	if n == nil || n.Suppressed || !e.eps.Active(en.g.Tenant, n.EndpointID) {
		return
	}
	out.Deliveries = append(out.Deliveries, e.delivery(en, n, schemas.TypeAlertResolved, tr.AlertID, tr, en.last))
}

// admit says whether a firing or repeat may be delivered: the rule's
// endpoint is active and the quota admits it.
func (e *Engine) admit(pt *partition, r *schemas.RuleRecord, at time.Time) bool {
	if !e.eps.Active(r.TenantID, r.WebhookEndpointID) {
		return false
	}
	return e.quota == nil || e.quota.Admit(pt.id, r.TenantID, at)
}

func notifyOf(r *schemas.RuleRecord) *schemas.AggregateNotify {
	return &schemas.AggregateNotify{EndpointID: r.WebhookEndpointID, RuleName: r.Name, RuleVersion: r.Version,
		Severity: r.Severity, MaxAttempts: maxAttempts(r)}
}

func maxAttempts(r *schemas.RuleRecord) int {
	if r.MaxAttempts > 0 {
		return r.MaxAttempts
	}
	return schemas.DefaultMaxAttempts
}

// Flush ends partition p's batch: one changelog record per group, rule and
// watermarks changed since the last Flush (a tombstone for a dropped group
// or a removed rule), and the aggregate-groups records due (a group on
// every state change and, firing or resolving, once per minute of event
// time; a rule's summary when its counts changed).
func (e *Engine) Flush(p int32) Output {
	pt := e.parts[p]
	if pt == nil {
		return Output{}
	}
	e.touchPart(pt)
	var out Output
	for _, k := range sortedKeys(pt.dirty) {
		if en := pt.groups[k]; en != nil {
			out.States = append(out.States, StateChange{Key: k, Value: encodeGroup(en)})
		} else {
			out.States = append(out.States, StateChange{Key: k})
		}
	}
	for _, k := range sortedKeys(pt.dirtyRules) {
		st := pt.rules[k]
		if st == nil {
			out.States = append(out.States, StateChange{Key: k})
			out.Status = append(out.Status, StateChange{Key: k})
			continue
		}
		out.States = append(out.States, StateChange{Key: k, Value: encodeRule(st)})
		out.Status = append(out.Status, StateChange{Key: k, Value: statusRule(st)})
	}
	if pt.wmDirty {
		out.States = append(out.States, StateChange{Key: schemas.WatermarksKey, Value: encodeWatermarks(pt.sources)})
	}
	for _, k := range sortedKeys(pt.dirtyStatus) {
		if en := pt.groups[k]; en != nil {
			out.Status = append(out.Status, StateChange{Key: k, Value: e.statusGroup(pt, en)})
		} else {
			out.Status = append(out.Status, StateChange{Key: k})
		}
	}
	pt.dirty, pt.dirtyRules, pt.dirtyStatus, pt.wmDirty = map[string]struct{}{}, map[string]struct{}{}, map[string]struct{}{}, false
	return out
}

func sortedKeys(m map[string]struct{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sourceKey is a source partition as the watermarks record writes it.
func sourceKey(s int32) string { return strconv.FormatInt(int64(s), 10) }
