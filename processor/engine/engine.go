package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/exospherehost/exo-alerts/internal/condition"
	"github.com/exospherehost/exo-alerts/schemas"
)

// Clock tells the wall-clock time.
type Clock interface{ Now() time.Time }

// Rule is an active rule with its compiled condition.
type Rule struct {
	schemas.RuleRecord
	Cond *condition.Program
	// Spec is, for an aggregate (count or rate) rule, the spec its inputs
	// carry (aggregate.SpecOf of the rule, computed once per rule change):
	// stage 2 ignores inputs of another spec.
	Spec string
	// payload holds the members of the rule's payloads that depend on the
	// rule alone, encoded once, when the engine first needs them
	// (payloadJSON). Owned by the engine: whoever makes a Rule leaves it
	// zero. A rule whose record changes is replaced by a new Rule, never
	// changed in place, so they stay true for the Rule's life.
	payload atomic.Pointer[rulePayload]
	// Endpoint is the state of the rule's endpoint, when whoever makes the
	// Rule keeps one current (the processor's rule index does); nil: the
	// engine asks Endpoints.
	Endpoint *EndpointState
}

// EndpointState says whether an endpoint can receive: one per endpoint,
// shared by the rules that deliver to it (Rule.Endpoint) and kept current
// by whoever indexes them. The engine reads a word where Endpoints.Active
// built the endpoint's key and looked it up in a table for every event
// (8 % of BenchmarkEngineMix).
type EndpointState struct{ active atomic.Bool }

// Active says whether the endpoint can receive.
func (s *EndpointState) Active() bool { return s.active.Load() }

// SetActive records whether the endpoint can receive.
func (s *EndpointState) SetActive(active bool) { s.active.Store(active) }

// endpointActive says whether rule r's endpoint (of tenant) can receive.
func (e *Engine) endpointActive(tenant string, r *Rule) bool {
	if r.Endpoint != nil {
		return r.Endpoint.Active()
	}
	return e.eps.Active(tenant, r.WebhookEndpointID)
}

// rulePayload is the encoded part of a rule's payloads that is the same in
// all of them.
type rulePayload struct {
	// tenantRule is the members "tenant_id" and "rule"
	// (schemas.AppendTenantRuleJSON), for the payloads of the rule's tenant.
	tenantRule []byte
}

// payloadJSON returns r's rulePayload, encoding it the first time. Two
// engines sharing r may both encode it; they store the same bytes, and
// either is kept.
func (r *Rule) payloadJSON() *rulePayload {
	if rp := r.payload.Load(); rp != nil {
		return rp
	}
	rp := &rulePayload{tenantRule: schemas.AppendTenantRuleJSON(nil, r.TenantID, schemas.RuleRef{ID: r.ID, Name: r.Name})}
	r.payload.Store(rp)
	return rp
}

// Rules are the active rules, indexed by tenant and alert type.
type Rules interface {
	// Candidates returns the active rules of tenant watching alertType, in
	// rule id order (the order the engine evaluates them in, and fires a
	// run's duration rules due together in: the same on every replay). The
	// slice may be shared with other callers: the engine only reads it.
	Candidates(tenant, alertType string) []*Rule
	// Get returns the active rule id of tenant, or nil.
	Get(tenant, id string) *Rule
	// Version changes whenever any rule changes.
	Version() uint64
}

// Endpoints says whether an endpoint can receive.
type Endpoints interface {
	Active(tenant, id string) bool
}

// Config configures the engine.
type Config struct {
	Clock Clock
	// Grace is how long a finished run's state is kept (in event time) to
	// catch duplicates and late starts before it is tombstoned.
	Grace time.Duration
	// MaxRunAge tombstones runs that never finished, measured from their start.
	MaxRunAge time.Duration
	// MaxClockSkew bounds how far ahead of the wall clock an event's times
	// (time, started_at, finished_at) are taken to be: one event stamped by a
	// wrong clock far in the future must not fire every deadline of its
	// partition — now, or after a restore — nor hold a rule's cooldown or its
	// run state for years. 0: no cap.
	MaxClockSkew time.Duration
	// Quota, if set, is the delivery quota (processor/quota): asked after a
	// rule's rate limit and cooldown admitted an alert; a refused alert
	// produces no delivery.
	Quota Admitter
	// ReuseOutput makes an Output the engine's own memory, valid until its
	// next Event or Tick: its slices, the run states and the alert ids and
	// payloads of its deliveries are written over by that call. For a
	// caller that encodes each Output before the next call, as the
	// processor does: it then costs no allocation. False: each Output is
	// the caller's, in memory of its own (out.go).
	ReuseOutput bool
}

// Admitter is the delivery quota: whether tenantID may have one more alert
// at event time at from partition.
type Admitter interface {
	Admit(partition int32, tenantID string, at time.Time) bool
}

// Stats are counters the processor exports as metrics. Safe to read from
// any goroutine.
type Stats struct {
	Duplicates         atomic.Uint64 // events suppressed as duplicates
	ConditionErrors    atomic.Uint64 // rule errors of both reasons: conditions that could not be evaluated (rule skipped)
	RuleErrorsBudget   atomic.Uint64 // conditions stopped by their evaluation budget
	RuleErrorsRuntime  atomic.Uint64 // conditions that failed on the event
	SuppressedRate     atomic.Uint64 // alerts suppressed by a rule's rate limit
	SuppressedCooldown atomic.Uint64 // alerts suppressed by a rule's cooldown
	DurationFired      atomic.Uint64 // duration alerts emitted
	AggregateInputs    atomic.Uint64 // aggregate inputs made (stage 1)
	Deliveries         atomic.Uint64 // delivery records emitted
	Tombstones         atomic.Uint64 // run states removed
}

// StateChange is a changelog record: Value nil is a tombstone.
type StateChange struct {
	Key   string
	Value *schemas.RunState
}

// Output is what one call produced, to be written in the batch's transaction.
type Output struct {
	Deliveries []schemas.DeliveryRecord
	States     []StateChange
	// Duplicate: the event was one the run had already seen, and was ignored.
	Duplicate bool
	// Matched is how many of Deliveries are alerts of rules watching the event
	// itself (the rest are duration alerts its time made due).
	Matched int
	// RuleErrors report rules skipped because their condition could not be
	// evaluated: at most one record per rule per RuleErrorInterval, counting
	// the failures since the rule's previous record.
	RuleErrors []schemas.RuleErrorRecord
	// Inputs are the aggregate inputs (kind input) of aggregate rules
	// whose condition holds: one per (event, rule) for an event that is not
	// a duplicate, and one per (run, duration count rule) whose deadline
	// passed. Stage 1 produces them to processor.aggregate-input, keyed
	// tenant/rule, in the batch's transaction.
	Inputs []schemas.AggregateInput
}

func (o *Output) append(other Output) {
	o.Deliveries = append(o.Deliveries, other.Deliveries...)
	o.States = append(o.States, other.States...)
	o.RuleErrors = append(o.RuleErrors, other.RuleErrors...)
	o.Inputs = append(o.Inputs, other.Inputs...)
}

// Engine holds the state of the partitions assigned to this processor.
type Engine struct {
	cfg   Config
	rules Rules
	eps   Endpoints
	Stats *Stats

	parts map[int32]*partition
	noise map[noiseKey]*noise // rate/cooldown state by rule
	// ruleErrs: rule key -> failures not reported yet and the last report.
	ruleErrs map[string]*ruleErrors
	undo     *undo
	// spareUndo is the last batch's undo, kept for the next Begin.
	spareUndo *undo
	// eval evaluates conditions, reusing its VM and environment (the
	// engine runs on one goroutine).
	eval *condition.Evaluator
	// keyBuf builds run keys for lookups.
	keyBuf []byte
	// The current call's output is built in scratch slices the engine
	// keeps (see out.go): its state changes, the run states they write
	// (in boxes), and its deliveries; finish copies them into allocations
	// of their exact size.
	scratch scratch
	// durTenant's duration rules are durRules, within one call (a fired
	// run's rules are read again for its next deadline); durKnown says
	// whether durTenant is set. Cleared when a call begins and ends.
	durTenant string
	durRules  []*Rule
	durKnown  bool
	// A delivery's payload is built in payload (pointing to payloadErr,
	// durationMS, thresholdMS and alertID), then encoded in arena.
	payload                 schemas.WebhookPayload
	payloadErr              schemas.PayloadError
	durationMS, thresholdMS int64
	// payloadParts are members of payload encoded in advance: its labels
	// (runContext.payloadLabels), when not nil, and its tenant and rule
	// (Rule.payloadJSON).
	payloadParts schemas.PayloadParts
	alertID      [idLen]byte
	// arena holds the alert ids and payloads of the current call's
	// deliveries (scratch.deliveries says whose), in the free part of
	// chunk (see out.go) unless they outgrew it (arenaCap: its capacity
	// when the call took it).
	arena    []byte
	arenaCap int
	chunk    []byte
	// reused holds the slices of the last Output under Config.ReuseOutput.
	reused Output
}

// New returns an engine.
func New(cfg Config, rules Rules, eps Endpoints) *Engine {
	if cfg.Grace == 0 {
		cfg.Grace = 10 * time.Minute
	}
	if cfg.MaxRunAge == 0 {
		cfg.MaxRunAge = 7 * 24 * time.Hour
	}
	return &Engine{cfg: cfg, rules: rules, eps: eps, Stats: &Stats{}, parts: map[int32]*partition{}, noise: map[noiseKey]*noise{}, ruleErrs: map[string]*ruleErrors{},
		eval: condition.NewEvaluator()}
}

// Assign adds partition p with its restored run states.
func (e *Engine) Assign(p int32, states []schemas.RunState) {
	pt := newPartition()
	for i := range states {
		st := states[i]
		// States written before times were capped may carry any time.
		st.LastEventAt = e.sane(st.LastEventAt)
		st.StartedAt = e.sanePtr(st.StartedAt)
		st.FinishedAt = e.sanePtr(st.FinishedAt)
		r := pt.restoredRun(&st)
		pt.runs[r.key()] = r
		if st.LastEventAt.After(pt.watermark) {
			pt.watermark = st.LastEventAt
		}
	}
	for _, r := range pt.runs {
		e.pushExpiry(pt, r)
	}
	e.parts[p] = pt
}

// Revoke drops partition p.
func (e *Engine) Revoke(p int32) { delete(e.parts, p) }

// Assigned reports whether p is assigned.
func (e *Engine) Assigned(p int32) bool { _, ok := e.parts[p]; return ok }

// Runs returns the number of run states held for p.
func (e *Engine) Runs(p int32) int {
	if pt := e.parts[p]; pt != nil {
		return len(pt.runs)
	}
	return 0
}

// Watermark returns the event-time watermark of p.
func (e *Engine) Watermark(p int32) time.Time {
	if pt := e.parts[p]; pt != nil {
		return pt.watermark
	}
	return time.Time{}
}

func runKey(tenant, run string) string { return schemas.TenantKey(tenant, run) }

// AlertID is the id of rule's alert for an event.
func AlertID(tenant, ruleID, eventID string) string {
	return hashID(tenant, ruleID, eventID, false, 0)
}

// DurationAlertID is the id of a duration rule's alert for a run (its
// first attempt).
func DurationAlertID(tenant, ruleID, runID string) string {
	return hashID(tenant, ruleID, runID, true, 0)
}

// DurationAttemptAlertID is the id of a duration rule's alert for attempt
// of a run: DurationAlertID for the first attempt (0 or 1), so receivers
// that deduplicate by alert id see the ids they always saw; another id for
// each later attempt of a run retried under the same run id.
func DurationAttemptAlertID(tenant, ruleID, runID string, attempt int) string {
	if attempt <= 1 {
		return DurationAlertID(tenant, ruleID, runID)
	}
	return hashID(tenant, ruleID, runID, true, attempt)
}

// idLen is the length of an alert id.
const idLen = len(idPrefix) + 32

const idPrefix = "alrt_"

// hashID is "alrt_" and the hex of the first 16 bytes of the SHA-256 of
// tenant, rule and id, then "duration" when duration, then the decimal
// attempt when attempt > 1, separated by zero bytes. Receivers deduplicate
// on these ids, so they never change (TestAlertIDsArePinned).
func hashID(tenant, rule, id string, duration bool, attempt int) string {
	var out [idLen]byte
	hashIDTo(&out, tenant, rule, id, duration, attempt)
	return string(out[:])
}

// hashIDTo writes hashID's id in out. The input is built in a stack buffer
// (ids of usual lengths fit): it allocates nothing.
func hashIDTo(out *[idLen]byte, tenant, rule, id string, duration bool, attempt int) {
	var buf [256]byte
	b := append(buf[:0], tenant...)
	b = append(b, 0)
	b = append(b, rule...)
	b = append(b, 0)
	b = append(b, id...)
	if duration {
		b = append(b, 0)
		b = append(b, "duration"...)
	}
	if attempt > 1 {
		b = append(b, 0)
		b = strconv.AppendInt(b, int64(attempt), 10)
	}
	sum := sha256.Sum256(b)
	copy(out[:], idPrefix)
	hex.Encode(out[len(idPrefix):], sum[:16])
}

// isDuplicate says whether ev is an event the run has already seen: an
// exact redelivery (its type in the run's current attempt; a redelivery
// carries the same attempt), or an event of an attempt older than the
// run's current one (superseded by the retry). An event of a later
// attempt is never a duplicate: a run retried under the same run id that
// fails again alerts again.
func isDuplicate(r *run, ev *schemas.WorkflowEvent) bool {
	cur := max(r.attemptN(), 1)
	att := ev.Data.Run.Attempt
	if att <= 0 {
		att = cur // no attempt: the current one
	}
	switch {
	case att < cur:
		return true
	case att > cur:
		return false
	}
	return r.hasSeen(ev.Type)
}

func isTerminal(t string) bool {
	return t == schemas.TypeRunSucceeded || t == schemas.TypeRunFailed
}

// Event processes one decoded event of partition p.
func (e *Engine) Event(p int32, ev *schemas.WorkflowEvent) Output {
	e.begin()
	ev = e.saneTimes(ev)
	pt := e.parts[p]
	if pt == nil {
		pt = newPartition()
		e.parts[p] = pt
	}
	var out Output
	e.keyBuf = keyOf(e.keyBuf, ev.TenantID, ev.Data.Run.ID)
	r := pt.runs[string(e.keyBuf)]
	if r != nil && isDuplicate(r, ev) {
		e.count(&e.Stats.Duplicates)
		out.Duplicate = true
		return out
	}
	cands := e.rules.Candidates(ev.TenantID, ev.Type)
	// Time moves first: deadlines at or before this event's time fire before
	// the event is applied, so a run that finishes after its deadline still
	// alerts, whether or not its partition lags.
	if wm := ev.Time; wm.After(pt.watermark) { // sane: not too far ahead
		e.saveWatermark(p, pt)
		pt.watermark = wm
		gone := pt.tombstones
		e.fire(p, pt, &out)
		if r != nil && pt.tombstones != gone {
			r = pt.runs[string(e.keyBuf)] // fire tombstoned runs, maybe r
		}
	}
	e.saveWatermark(p, pt)
	if r == nil {
		startID := ""
		if ev.Type == schemas.TypeRunStarted {
			startID = ev.ID // set below: built with the key in one string
		}
		r = newRunOf(&e.keyBuf, ev.TenantID, startID)
		e.saveRun(p, pt, r.key(), nil)
		pt.runs[r.key()] = r
	} else {
		e.saveRun(p, pt, r.key(), r)
	}
	if att := ev.Data.Run.Attempt; att > max(r.attemptN(), 1) {
		// The run was retried under the same run id: a new attempt starts
		// with nothing seen, no duration rule fired and no finish, so its
		// failure alerts again and its start arms new timers.
		if r.running() {
			pt.staleTimer()
		}
		r.resetAttempt()
	}
	r.addSeen(ev.Type)
	// labelsKey is labels in canonical form, when known (the decoder's
	// LabelsKey, or the run's context's): the context is then found and
	// compared without reading the map.
	wf, labels, labelsKey := schemas.Workflow{}, map[string]string(nil), ""
	if r.ctx != nil {
		wf, labels, labelsKey = r.ctx.wf, r.ctx.labels, r.ctx.labelsKey()
	}
	if ev.Data.Workflow.ID != "" || ev.Data.Workflow.Name != "" {
		wf = ev.Data.Workflow
	}
	if len(ev.Data.Labels) > 0 {
		labels, labelsKey = ev.Data.Labels, ev.Data.LabelsKey()
	}
	if !sameContext(r.ctx, wf, labels, labelsKey) {
		// The run's context holds exactly its workflow and labels: its
		// state records and payloads (payloadLabels) read them there.
		r.ctx = pt.context(wf, labels, labelsKey)
	}
	if ev.Data.Run.Attempt > 0 {
		r.setAttempt(ev.Data.Run.Attempt)
	}
	if ev.Time.After(r.lastEvent()) {
		r.setTime(tLast, &ev.Time)
	}
	switch {
	case ev.Type == schemas.TypeRunStarted:
		started := ev.Time
		if ev.Data.Run.StartedAt != nil {
			started = *ev.Data.Run.StartedAt
		}
		if r.startEventID() != ev.ID {
			r.setStartEventID(ev.ID)
		}
		if r.finishedAt == noTime { // a start after its terminal event (out of order) arms no timer
			if r.startedAt != noTime {
				pt.staleTimer() // a second start moves the deadlines
			}
			r.setTime(tStarted, &started)
			e.armRun(pt, r)
		}
	case isTerminal(ev.Type):
		fin := ev.Time
		if ev.Data.Run.FinishedAt != nil {
			fin = *ev.Data.Run.FinishedAt
		}
		if r.running() {
			pt.staleTimer()
		}
		r.setTime(tFinished, &fin)
		if r.startedAt == noTime && ev.Data.Run.StartedAt != nil {
			r.setTime(tStarted, ev.Data.Run.StartedAt)
		}
	}
	e.pushExpiry(pt, r)
	e.addState(r)

	// Rules watching this event type.
	e.eval.ResetEvent(ev)
	for _, rule := range cands {
		if rule.IsAggregate() {
			// Counted whatever its endpoint: a group's state moves even when
			// its endpoint cannot receive (stage 2 decides what to deliver).
			if in, ok := e.eventInput(&out, rule, ev); ok {
				out.Inputs = append(out.Inputs, in)
			}
			continue
		}
		if !e.endpointActive(ev.TenantID, rule) {
			continue
		}
		ok, err := e.eval.Match(rule.Cond)
		if err != nil {
			e.ruleError(&out, rule, ev.ID, err)
			continue
		}
		if !ok || !e.admit(rule, ev.Time) || !e.quota(p, rule.TenantID, ev.Time) {
			continue
		}
		// The run's context holds the event's labels when it has any.
		var labels []byte
		if len(ev.Data.Labels) > 0 {
			labels = r.ctx.payloadLabels()
		}
		e.eventDelivery(ev, rule, labels)
		out.Matched++
		e.count(&e.Stats.Deliveries)
	}
	// A start replayed late may already be past its deadline.
	e.fire(p, pt, &out)
	e.finish(&out)
	return out
}

// Tick advances partition p's watermark to the wall clock when caughtUp,
// then fires due deadlines and tombstones expired runs.
func (e *Engine) Tick(p int32, caughtUp bool) Output {
	pt := e.parts[p]
	if pt == nil {
		return Output{}
	}
	if caughtUp {
		if now := e.cfg.Clock.Now(); now.After(pt.watermark) {
			e.saveWatermark(p, pt)
			pt.watermark = now
		}
	}
	var out Output
	e.begin()
	e.fire(p, pt, &out)
	e.finish(&out)
	e.flushRuleErrors(&out)
	return out
}

// expiry is when r may be tombstoned, in event time (Unix nanoseconds).
func (e *Engine) expiry(r *run) int64 {
	if fin, ok := r.finished(); ok {
		if last := r.lastEvent(); last.After(fin) {
			fin = last
		}
		ns, _ := nanos(fin.Add(e.cfg.Grace))
		return ns
	}
	from, ok := r.started()
	if !ok {
		from = r.lastEvent()
	}
	ns, _ := nanos(from.Add(e.cfg.MaxRunAge))
	return ns
}

// pushExpiry records r's current expiry, dropping stale entries when they
// pile up.
func (e *Engine) pushExpiry(pt *partition, r *run) {
	pt.pushExpiry(r, e.expiry(r))
	pt.compactExpiries(e.expiry)
}

// deadline is when duration rule rule is due for r, started at started.
func deadline(started time.Time, rule *Rule) time.Time {
	return started.Add(time.Duration(rule.DurationThresholdMS) * time.Millisecond)
}

// deadlineNanos is nanos(deadline(started, rule)) of the started run r,
// in integer arithmetic when its start is a plain UTC instant (its
// startedAt then is exactly it): timers are checked and re-armed for every
// duration rule of a run, most of which do not fire.
// TestDeadlineNanosIsDeadline holds the two equal.
func (r *run) deadlineNanos(rule *Rule) int64 {
	if r.ext != nil && r.ext.exact[tStarted] != nil {
		ns, _ := nanos(deadline(*r.ext.exact[tStarted], rule))
		return ns
	}
	return addNanos(r.startedAt, int64(time.Duration(rule.DurationThresholdMS)*time.Millisecond))
}

// addNanos is nanos(time.Unix(0, ns).Add(d)) for ns in nanos' range: the
// sum saturated to [math.MinInt64+1, math.MaxInt64].
func addNanos(ns, d int64) int64 {
	sum := ns + d
	switch {
	case d > 0 && sum < ns:
		return math.MaxInt64
	case d < 0 && sum > ns, sum == math.MinInt64:
		return math.MinInt64 + 1
	}
	return sum
}

// nextDeadline is r's earliest deadline of a duration rule of its tenant
// that has not fired, after after (nanoseconds; math.MinInt64: any).
func (e *Engine) nextDeadline(r *run, after int64) (int64, bool) {
	if r.startedAt == noTime || r.finishedAt != noTime {
		return 0, false
	}
	next, found := int64(0), false
	for _, rule := range e.durationRules(r.tenant()) {
		if rule.DurationThresholdMS <= 0 || r.hasFired(rule.ID) {
			continue
		}
		at := r.deadlineNanos(rule)
		if at > after && (!found || at < next) {
			next, found = at, true
		}
	}
	return next, found
}

// durationRules is Candidates of tenant's duration rules, asked once per
// call for the same tenant in a row.
func (e *Engine) durationRules(tenant string) []*Rule {
	if !e.durKnown || e.durTenant != tenant {
		e.durTenant, e.durRules, e.durKnown = tenant, e.rules.Candidates(tenant, schemas.TypeRunDurationExceeded), true
	}
	return e.durRules
}

// armRun pushes the run's next duration deadline.
func (e *Engine) armRun(pt *partition, r *run) {
	if at, ok := e.nextDeadline(r, math.MinInt64); ok {
		pt.pushTimer(timer{at: at, r: r})
	}
}

// rearm rebuilds the timers of pt when the rules changed since it last looked.
func (e *Engine) rearm(pt *partition) {
	v := e.rules.Version()
	if pt.rulesVersion == v {
		return
	}
	pt.rulesVersion = v
	clear(pt.timers)
	pt.timers = pt.timers[:0]
	pt.staleTimers = 0
	for _, r := range pt.runs {
		if at, ok := e.nextDeadline(r, math.MinInt64); ok {
			pt.timers = append(pt.timers, timer{at: at, r: r})
		}
	}
	heapInit(pt.timers, timerLess)
}

// fire adds to out what is due at the watermark.
func (e *Engine) fire(p int32, pt *partition, out *Output) {
	e.rearm(pt)
	wm, _ := nanos(pt.watermark)
	for {
		t, ok := pt.popTimer(wm)
		if !ok {
			break
		}
		r := t.r
		if !pt.live(r) || !r.running() {
			continue
		}
		// The run's rules due at the timer, in rule id order. (A timer
		// whose rules all fired, or moved, fires nothing: the run's
		// current deadline has its own timer.)
		fired := false
		for _, rule := range e.durationRules(r.tenant()) {
			if rule.DurationThresholdMS <= 0 || r.hasFired(rule.ID) {
				continue
			}
			if r.deadlineNanos(rule) > t.at {
				continue
			}
			started, _ := r.started()
			fired = true
			e.fireRule(p, pt, r, rule, deadline(started, rule), out)
		}
		if fired {
			if at, ok := e.nextDeadline(r, t.at); ok {
				pt.pushTimer(timer{at: at, r: r})
			}
		}
	}
	for {
		r, ok := pt.popExpiry(wm)
		if !ok {
			break
		}
		if !pt.live(r) || e.expiry(r) > wm {
			continue // re-armed with a later expiry
		}
		key := r.key()
		e.saveRun(p, pt, key, r)
		delete(pt.runs, key)
		r.gone()
		pt.tombstones++
		e.scratch.states = append(e.scratch.states, scratchState{key: key, box: -1})
		e.count(&e.Stats.Tombstones)
	}
}

// fireRule fires duration rule rule for r, due at at.
func (e *Engine) fireRule(p int32, pt *partition, r *run, rule *Rule, at time.Time, out *Output) {
	e.saveRun(p, pt, r.key(), r)
	pt.addFired(r, rule.ID)
	// st is the scratch copy of the state record: read below, before the
	// next one is made.
	st := e.addState(r)
	aggregate := rule.IsAggregate()
	if !aggregate && !e.endpointActive(st.TenantID, rule) {
		return
	}
	elapsed := pt.watermark.Sub(*st.StartedAt)
	e.eval.Reset(durationEnv(st, elapsed))
	match, err := e.eval.Match(rule.Cond)
	if err != nil {
		e.ruleError(out, rule, st.StartEventID, err)
		return
	}
	if aggregate {
		// A duration count rule counts the run at its deadline.
		if match && rule.RuleKind() == schemas.RuleKindCount {
			out.Inputs = append(out.Inputs, durationInput(st, rule, e.eval.Env(), at))
			e.count(&e.Stats.AggregateInputs)
		}
		return
	}
	if !match || !e.admit(rule, at) || !e.quota(p, rule.TenantID, at) {
		return
	}
	e.durationDelivery(st, rule, at, elapsed, r.ctx.payloadLabels())
	e.count(&e.Stats.DurationFired)
	e.count(&e.Stats.Deliveries)
}

// durationEnv is the environment of a duration rule's condition for the
// run of st, elapsed after its start (nil labels read as none).
func durationEnv(st *schemas.RunState, elapsed time.Duration) condition.Env {
	return condition.Env{
		Event:    condition.EventEnv{ID: st.StartEventID, Type: schemas.TypeRunDurationExceeded},
		Workflow: condition.WorkflowEnv{ID: st.Workflow.ID, Name: st.Workflow.Name},
		Run:      condition.RunEnv{ID: st.RunID, Attempt: st.Attempt, Status: "running", DurationMS: elapsed.Milliseconds()},
		Labels:   st.Labels,
	}
}

func maxAttempts(r *Rule) int {
	if r.MaxAttempts > 0 {
		return r.MaxAttempts
	}
	return schemas.DefaultMaxAttempts
}

// eventDelivery adds rule r's delivery for ev, whose labels are labels
// encoded (nil: encoded with the payload).
func (e *Engine) eventDelivery(ev *schemas.WorkflowEvent, r *Rule, labels []byte) {
	at := ev.Time.UTC()
	p := &e.payload
	*p = schemas.WebhookPayload{
		Type: ev.Type, Timestamp: at,
		Data: schemas.PayloadData{
			TenantID: ev.TenantID,
			Rule:     schemas.RuleRef{ID: r.ID, Name: r.Name},
			Event:    schemas.EventRef{ID: ev.ID, Type: ev.Type, OccurredAt: at},
			Workflow: ev.Data.Workflow,
			Run: schemas.PayloadRun{ID: ev.Data.Run.ID, Status: ev.Data.Run.Status, StartedAt: ev.Data.Run.StartedAt,
				FinishedAt: ev.Data.Run.FinishedAt, DurationMS: ev.Data.Run.DurationMS},
			Labels: ev.Data.Labels,
		},
	}
	if er := ev.Data.Error; er != nil {
		e.payloadErr = schemas.PayloadError{Code: er.Code}
		if r.IncludeErrorMessage {
			e.payloadErr.Message = er.Message
		}
		p.Data.Error = &e.payloadErr
	}
	hashIDTo(&e.alertID, ev.TenantID, r.ID, ev.ID, false, 0)
	e.payloadParts.Labels = labels
	e.delivery(r, at)
}

// durationDelivery adds duration rule r's delivery for the run of st, due
// at deadline, elapsed after its start; labels are st.Labels encoded (nil:
// encoded with the payload).
func (e *Engine) durationDelivery(st *schemas.RunState, r *Rule, deadline time.Time, elapsed time.Duration, labels []byte) {
	e.thresholdMS = r.DurationThresholdMS
	e.durationMS = elapsed.Milliseconds()
	at := deadline.UTC()
	p := &e.payload
	*p = schemas.WebhookPayload{
		Type: schemas.TypeRunDurationExceeded, Timestamp: at,
		Data: schemas.PayloadData{
			TenantID:    st.TenantID,
			Rule:        schemas.RuleRef{ID: r.ID, Name: r.Name},
			Event:       schemas.EventRef{ID: st.StartEventID, Type: schemas.TypeRunDurationExceeded, OccurredAt: at},
			Workflow:    st.Workflow,
			Run:         schemas.PayloadRun{ID: st.RunID, Status: "running", StartedAt: st.StartedAt, DurationMS: &e.durationMS},
			ThresholdMS: &e.thresholdMS,
			Labels:      st.Labels,
		},
	}
	if p.Data.Event.ID == "" {
		p.Data.Event.ID = st.RunID
	}
	attempt := st.Attempt
	if attempt <= 1 {
		attempt = 0 // DurationAttemptAlertID: the first attempt's id
	}
	hashIDTo(&e.alertID, st.TenantID, r.ID, st.RunID, true, attempt)
	e.payloadParts.Labels = labels
	e.delivery(r, at)
}

// delivery adds the delivery record of the payload in e.payload, whose
// alert id is in e.alertID, for rule r at at (in UTC), to the call's
// scratch deliveries. The id and the encoded payload are appended to
// e.arena; finish gives the record its AlertID and Payload when the call's
// deliveries are all made.
func (e *Engine) delivery(r *Rule, at time.Time) {
	p := &e.payload
	if p.Data.Labels == nil {
		p.Data.Labels = noLabels
	}
	// The scratch id is read only while encoding (p is cleared below).
	p.Data.AlertID = unsafe.String(&e.alertID[0], idLen) //nolint:gosec // G103: read-only view of e.alertID, dropped before it changes
	e.scratch.deliveries = append(e.scratch.deliveries, scratchDelivery{d: schemas.DeliveryRecord{
		TenantID: p.Data.TenantID, RuleID: r.ID, EndpointID: r.WebhookEndpointID,
		EventType: p.Type, MaxAttempts: maxAttempts(r), RuleVersion: r.Version, Severity: r.Severity, CreatedAt: at,
	}})
	sd := &e.scratch.deliveries[len(e.scratch.deliveries)-1]
	if e.arena == nil {
		e.takeArena()
	}
	sd.start = len(e.arena)
	e.arena = append(e.arena, e.alertID[:]...)
	if r.TenantID == p.Data.TenantID { // always: a tenant's rules are its own
		e.payloadParts.TenantRule = r.payloadJSON().tenantRule
	}
	b, err := p.AppendJSONParts(e.arena, &e.payloadParts) // json.Marshal's bytes, without reflection
	*p = schemas.WebhookPayload{}
	e.payloadParts = schemas.PayloadParts{}
	if err != nil {
		// Not reached: the engine's times are sane (json.Marshal would
		// have failed the same way, and the record had no payload).
		e.arena = e.arena[:sd.start]
		sd.d.AlertID = string(e.alertID[:])
		sd.start = -1
		return
	}
	e.arena = b
	sd.end = len(e.arena)
}

// noLabels is the labels of a payload whose run has none ({} in JSON, as
// an empty map writes). Shared; nothing writes to it.
var noLabels = map[string]string{}

// TotalRuns returns the number of run states held over all partitions.
func (e *Engine) TotalRuns() int {
	n := 0
	for _, pt := range e.parts {
		n += len(pt.runs)
	}
	return n
}

// minEventTime is the earliest event time taken as given: JSON (RFC 3339)
// cannot write a year before 1, and no workflow ran before 1970 anyway.
var minEventTime = time.Unix(0, 0).UTC()

// sane is t within [minEventTime, wall clock + MaxClockSkew].
func (e *Engine) sane(t time.Time) time.Time {
	if t.Before(minEventTime) {
		return minEventTime
	}
	return e.notTooFarAhead(t)
}

func (e *Engine) sanePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	s := e.sane(*t)
	return &s
}

// saneTimes returns ev, or a copy of it with its times made sane: every use
// of an event's times (watermark, run state, expiry, cooldown and rate
// windows, the payload) sees the same capped values.
func (e *Engine) saneTimes(ev *schemas.WorkflowEvent) *schemas.WorkflowEvent {
	// The wall clock is read once (it was read per time, and three times
	// per event cost 10 % of BenchmarkEngineMix): sane(t) is t exactly
	// when t is within [minEventTime, limit].
	limited, limit := e.cfg.MaxClockSkew > 0, time.Time{}
	if limited {
		limit = e.cfg.Clock.Now().Add(e.cfg.MaxClockSkew)
	}
	r := &ev.Data.Run
	same := func(t *time.Time) bool { return t == nil || !t.Before(minEventTime) && (!limited || !t.After(limit)) }
	if same(&ev.Time) && same(r.StartedAt) && same(r.FinishedAt) {
		return ev
	}
	cp := *ev
	cp.Time = e.sane(ev.Time)
	cp.Data.Run.StartedAt = e.sanePtr(r.StartedAt)
	cp.Data.Run.FinishedAt = e.sanePtr(r.FinishedAt)
	return &cp
}

// notTooFarAhead caps an event time at the wall clock plus MaxClockSkew.
func (e *Engine) notTooFarAhead(t time.Time) time.Time {
	if e.cfg.MaxClockSkew <= 0 {
		return t
	}
	if limit := e.cfg.Clock.Now().Add(e.cfg.MaxClockSkew); t.After(limit) {
		return limit
	}
	return t
}
