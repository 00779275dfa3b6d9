package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

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
}

// Rules are the active rules, indexed by tenant and alert type.
type Rules interface {
	// Candidates returns the active rules of tenant watching alertType. The
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
	noise map[string]*noise // rule key -> rate/cooldown state
	// ruleErrs: rule key -> failures not reported yet and the last report.
	ruleErrs map[string]*ruleErrors
	undo     *undo
	// eval evaluates conditions, reusing its VM and environment (the
	// engine runs on one goroutine).
	eval *condition.Evaluator
}

// New returns an engine.
func New(cfg Config, rules Rules, eps Endpoints) *Engine {
	if cfg.Grace == 0 {
		cfg.Grace = 10 * time.Minute
	}
	if cfg.MaxRunAge == 0 {
		cfg.MaxRunAge = 7 * 24 * time.Hour
	}
	return &Engine{cfg: cfg, rules: rules, eps: eps, Stats: &Stats{}, parts: map[int32]*partition{}, noise: map[string]*noise{}, ruleErrs: map[string]*ruleErrors{},
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
		pt.runs[runKey(st.TenantID, st.RunID)] = &st
		if st.LastEventAt.After(pt.watermark) {
			pt.watermark = st.LastEventAt
		}
	}
	for k, st := range pt.runs {
		e.pushExpiry(pt, k, st)
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

// hashID is "alrt_" and the hex of the first 16 bytes of the SHA-256 of
// tenant, rule and id, then "duration" when duration, then the decimal
// attempt when attempt > 1, separated by zero bytes. Receivers deduplicate
// on these ids, so they never change (TestAlertIDsArePinned). The input is
// built in a stack buffer (ids of usual lengths fit) and the only
// allocation is the returned string.
func hashID(tenant, rule, id string, duration bool, attempt int) string {
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
	const prefix = "alrt_"
	var out [len(prefix) + 32]byte
	copy(out[:], prefix)
	hex.Encode(out[len(prefix):], sum[:16])
	return string(out[:])
}

// isDuplicate says whether ev is an event the run has already seen: an
// exact redelivery (its type in the run's current attempt; a redelivery
// carries the same attempt), or an event of an attempt older than the
// run's current one (superseded by the retry). An event of a later
// attempt is never a duplicate: a run retried under the same run id that
// fails again alerts again.
func isDuplicate(st *schemas.RunState, ev *schemas.WorkflowEvent) bool {
	cur := max(st.Attempt, 1)
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
	return slices.Contains(st.Seen, ev.Type)
}

func isTerminal(t string) bool {
	return t == schemas.TypeRunSucceeded || t == schemas.TypeRunFailed
}

// Event processes one decoded event of partition p.
func (e *Engine) Event(p int32, ev *schemas.WorkflowEvent) Output {
	ev = e.saneTimes(ev)
	pt := e.parts[p]
	if pt == nil {
		pt = newPartition()
		e.parts[p] = pt
	}
	var out Output
	key := runKey(ev.TenantID, ev.Data.Run.ID)
	st := pt.runs[key]
	if st != nil && isDuplicate(st, ev) {
		e.count(&e.Stats.Duplicates)
		out.Duplicate = true
		return out
	}
	// Time moves first: deadlines at or before this event's time fire before
	// the event is applied, so a run that finishes after its deadline still
	// alerts, whether or not its partition lags.
	if wm := e.notTooFarAhead(ev.Time); wm.After(pt.watermark) {
		e.saveWatermark(p, pt)
		pt.watermark = wm
		out.append(e.fire(p, pt))
		st = pt.runs[key] // fire may have replaced it
	}
	e.saveRun(p, pt, key)
	e.saveWatermark(p, pt)
	if st == nil {
		st = &schemas.RunState{TenantID: ev.TenantID, RunID: ev.Data.Run.ID}
		pt.runs[key] = st
	} else {
		cp := cloneState(st)
		st = &cp
		pt.runs[key] = st
	}
	if att := ev.Data.Run.Attempt; att > max(st.Attempt, 1) {
		// The run was retried under the same run id: a new attempt starts
		// with nothing seen, no duration rule fired and no finish, so its
		// failure alerts again and its start arms new timers.
		if st.StartedAt != nil && st.FinishedAt == nil {
			pt.staleTimer(len(e.rules.Candidates(ev.TenantID, schemas.TypeRunDurationExceeded)))
		}
		st.Seen, st.Fired, st.FinishedAt, st.StartedAt, st.StartEventID = nil, nil, nil, nil, ""
	}
	st.Seen = append(st.Seen, ev.Type)
	if ev.Data.Workflow.ID != "" || ev.Data.Workflow.Name != "" {
		st.Workflow = ev.Data.Workflow
	}
	if ev.Data.Run.Attempt > 0 {
		st.Attempt = ev.Data.Run.Attempt
	}
	if len(ev.Data.Labels) > 0 {
		st.Labels = ev.Data.Labels
	}
	if ev.Time.After(st.LastEventAt) {
		st.LastEventAt = ev.Time
	}
	switch {
	case ev.Type == schemas.TypeRunStarted:
		started := ev.Time
		if ev.Data.Run.StartedAt != nil {
			started = *ev.Data.Run.StartedAt
		}
		st.StartEventID = ev.ID
		if st.FinishedAt == nil { // a start after its terminal event (out of order) arms no timer
			st.StartedAt = &started
			e.armRun(pt, key, st)
		}
	case isTerminal(ev.Type):
		fin := ev.Time
		if ev.Data.Run.FinishedAt != nil {
			fin = *ev.Data.Run.FinishedAt
		}
		if st.StartedAt != nil && st.FinishedAt == nil {
			pt.staleTimer(len(e.rules.Candidates(ev.TenantID, schemas.TypeRunDurationExceeded)))
		}
		st.FinishedAt = &fin
		if st.StartedAt == nil && ev.Data.Run.StartedAt != nil {
			s := *ev.Data.Run.StartedAt
			st.StartedAt = &s
		}
	}
	e.pushExpiry(pt, key, st)
	out.States = append(out.States, StateChange{Key: key, Value: st})

	// Rules watching this event type.
	e.eval.ResetEvent(ev)
	for _, r := range e.rules.Candidates(ev.TenantID, ev.Type) {
		if r.IsAggregate() {
			// Counted whatever its endpoint: a group's state moves even when
			// its endpoint cannot receive (stage 2 decides what to deliver).
			if in, ok := e.eventInput(&out, r, ev); ok {
				out.Inputs = append(out.Inputs, in)
			}
			continue
		}
		if !e.eps.Active(ev.TenantID, r.WebhookEndpointID) {
			continue
		}
		ok, err := e.eval.Match(r.Cond)
		if err != nil {
			e.ruleError(&out, r, ev.ID, err)
			continue
		}
		if !ok || !e.admit(r, ev.Time) || !e.quota(p, r.TenantID, ev.Time) {
			continue
		}
		out.Deliveries = append(out.Deliveries, eventDelivery(ev, r))
		out.Matched++
		e.count(&e.Stats.Deliveries)
	}
	// A start replayed late may already be past its deadline.
	out.append(e.fire(p, pt))
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
	out := e.fire(p, pt)
	e.flushRuleErrors(&out)
	return out
}

// expiry is when st may be tombstoned, in event time.
func (e *Engine) expiry(st *schemas.RunState) time.Time {
	if st.FinishedAt != nil {
		last := *st.FinishedAt
		if st.LastEventAt.After(last) {
			last = st.LastEventAt
		}
		return last.Add(e.cfg.Grace)
	}
	if st.StartedAt != nil {
		return st.StartedAt.Add(e.cfg.MaxRunAge)
	}
	return st.LastEventAt.Add(e.cfg.MaxRunAge)
}

// pushExpiry records st's current expiry, dropping stale entries when they
// pile up.
func (e *Engine) pushExpiry(pt *partition, key string, st *schemas.RunState) {
	pt.pushExpiry(key, e.expiry(st))
	pt.compactExpiries(e.expiry)
}

// armRun pushes the deadlines of every duration rule of the run's tenant.
func (e *Engine) armRun(pt *partition, key string, st *schemas.RunState) {
	if st.StartedAt == nil || st.FinishedAt != nil {
		return
	}
	for _, r := range e.rules.Candidates(st.TenantID, schemas.TypeRunDurationExceeded) {
		if r.DurationThresholdMS <= 0 || slices.Contains(st.Fired, r.ID) {
			continue
		}
		pt.pushTimer(timer{at: st.StartedAt.Add(time.Duration(r.DurationThresholdMS) * time.Millisecond), key: key, rule: r.ID})
	}
}

// rearm rebuilds the timers of pt when the rules changed since it last looked.
func (e *Engine) rearm(pt *partition) {
	v := e.rules.Version()
	if pt.rulesVersion == v {
		return
	}
	pt.rulesVersion = v
	pt.timers = pt.timers[:0]
	pt.staleTimers = 0
	for key, st := range pt.runs {
		e.armRun(pt, key, st)
	}
}

// fire emits what is due at the watermark.
func (e *Engine) fire(p int32, pt *partition) Output {
	var out Output
	e.rearm(pt)
	for {
		t, ok := pt.popTimer(pt.watermark)
		if !ok {
			break
		}
		st := pt.runs[t.key]
		if st == nil || st.StartedAt == nil || st.FinishedAt != nil || slices.Contains(st.Fired, t.rule) {
			continue
		}
		r := e.rules.Get(st.TenantID, t.rule)
		if r == nil || r.EventType != schemas.TypeRunDurationExceeded ||
			!st.StartedAt.Add(time.Duration(r.DurationThresholdMS)*time.Millisecond).Equal(t.at) {
			continue // rule gone or changed: its current deadline is armed separately
		}
		e.saveRun(p, pt, t.key)
		cp := cloneState(st)
		cp.Fired = append(cp.Fired, r.ID)
		pt.runs[t.key] = &cp
		out.States = append(out.States, StateChange{Key: t.key, Value: &cp})
		aggregate := r.IsAggregate()
		if !aggregate && !e.eps.Active(cp.TenantID, r.WebhookEndpointID) {
			continue
		}
		elapsed := pt.watermark.Sub(*cp.StartedAt)
		e.eval.Reset(durationEnv(&cp, elapsed))
		match, err := e.eval.Match(r.Cond)
		if err != nil {
			e.ruleError(&out, r, cp.StartEventID, err)
			continue
		}
		if aggregate {
			// A duration count rule counts the run at its deadline.
			if match && r.RuleKind() == schemas.RuleKindCount {
				out.Inputs = append(out.Inputs, durationInput(&cp, r, e.eval.Env(), t.at))
				e.count(&e.Stats.AggregateInputs)
			}
			continue
		}
		if !match || !e.admit(r, t.at) || !e.quota(p, r.TenantID, t.at) {
			continue
		}
		out.Deliveries = append(out.Deliveries, durationDelivery(&cp, r, t.at, elapsed))
		e.count(&e.Stats.DurationFired)
		e.count(&e.Stats.Deliveries)
	}
	for {
		key, ok := pt.popExpiry(pt.watermark)
		if !ok {
			break
		}
		st := pt.runs[key]
		if st == nil || e.expiry(st).After(pt.watermark) {
			continue // re-armed with a later expiry
		}
		e.saveRun(p, pt, key)
		delete(pt.runs, key)
		out.States = append(out.States, StateChange{Key: key})
		e.count(&e.Stats.Tombstones)
	}
	return out
}

func cloneState(st *schemas.RunState) schemas.RunState {
	cp := *st
	cp.Seen = slices.Clone(st.Seen)
	cp.Fired = slices.Clone(st.Fired)
	return cp
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

func eventDelivery(ev *schemas.WorkflowEvent, r *Rule) schemas.DeliveryRecord {
	alertID := AlertID(ev.TenantID, r.ID, ev.ID)
	p := schemas.WebhookPayload{
		Type: ev.Type, Timestamp: ev.Time.UTC(),
		Data: schemas.PayloadData{
			AlertID: alertID, TenantID: ev.TenantID,
			Rule:     schemas.RuleRef{ID: r.ID, Name: r.Name},
			Event:    schemas.EventRef{ID: ev.ID, Type: ev.Type, OccurredAt: ev.Time.UTC()},
			Workflow: ev.Data.Workflow,
			Run: schemas.PayloadRun{ID: ev.Data.Run.ID, Status: ev.Data.Run.Status, StartedAt: ev.Data.Run.StartedAt,
				FinishedAt: ev.Data.Run.FinishedAt, DurationMS: ev.Data.Run.DurationMS},
			Labels: ev.Data.Labels,
		},
	}
	if e := ev.Data.Error; e != nil {
		p.Data.Error = &schemas.PayloadError{Code: e.Code}
		if r.IncludeErrorMessage {
			p.Data.Error.Message = e.Message
		}
	}
	return delivery(p, r, ev.Time)
}

func durationDelivery(st *schemas.RunState, r *Rule, deadline time.Time, elapsed time.Duration) schemas.DeliveryRecord {
	threshold := r.DurationThresholdMS
	ms := elapsed.Milliseconds()
	p := schemas.WebhookPayload{
		Type: schemas.TypeRunDurationExceeded, Timestamp: deadline.UTC(),
		Data: schemas.PayloadData{
			AlertID: DurationAttemptAlertID(st.TenantID, r.ID, st.RunID, st.Attempt), TenantID: st.TenantID,
			Rule:        schemas.RuleRef{ID: r.ID, Name: r.Name},
			Event:       schemas.EventRef{ID: st.StartEventID, Type: schemas.TypeRunDurationExceeded, OccurredAt: deadline.UTC()},
			Workflow:    st.Workflow,
			Run:         schemas.PayloadRun{ID: st.RunID, Status: "running", StartedAt: st.StartedAt, DurationMS: &ms},
			ThresholdMS: &threshold,
			Labels:      st.Labels,
		},
	}
	if p.Data.Event.ID == "" {
		p.Data.Event.ID = st.RunID
	}
	return delivery(p, r, deadline)
}

func delivery(p schemas.WebhookPayload, r *Rule, at time.Time) schemas.DeliveryRecord {
	if p.Data.Labels == nil {
		p.Data.Labels = map[string]string{}
	}
	body, _ := json.Marshal(p) // plain structs: cannot fail
	return schemas.DeliveryRecord{
		AlertID: p.Data.AlertID, TenantID: p.Data.TenantID, RuleID: r.ID, EndpointID: r.WebhookEndpointID,
		EventType: p.Type, MaxAttempts: maxAttempts(r), RuleVersion: r.Version, Severity: r.Severity, CreatedAt: at.UTC(), Payload: body,
	}
}

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
	r := &ev.Data.Run
	same := func(t *time.Time) bool { return t == nil || e.sane(*t).Equal(*t) }
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
