package processor

import (
	"cmp"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/exospherehost/exo-alerts/internal/condition"
	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/internal/rollout"
	"github.com/exospherehost/exo-alerts/processor/aggregate"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

// ruleIndex indexes active rules by (tenant, alert type), so matching an
// event costs one map lookup and only its own tenant's rules of its type.
// It implements engine.Rules; the rules table's goroutine writes it, the
// consume loop reads.
type ruleIndex struct {
	log *slog.Logger

	version atomic.Uint64
	mu      sync.RWMutex
	byKey   map[string]*engine.Rule // tenant/rule id -> rule
	// index holds, per (tenant, type), the candidates sorted by rule id.
	// A slice is never changed once stored: a change stores a new one, so
	// Candidates hands it out without copying and a reader holding an old
	// one keeps a consistent (if stale) list.
	index map[candidateKey][]*engine.Rule
	// aggregates counts the active aggregate (count, rate) rules: while
	// there is one, stage 1 sends watermark markers to stage 2.
	aggregates int

	// progs shares one compiled program between the rules with the same
	// condition source: 10,000 rules of a handful of sources hold a handful
	// of programs.
	progs *condition.Programs
	// endpoints gives each rule its endpoint's state (Rule.Endpoint); the
	// endpoints table keeps them current.
	endpoints *endpointStates
}

func newRuleIndex(log *slog.Logger) *ruleIndex {
	return &ruleIndex{log: log, byKey: map[string]*engine.Rule{}, index: map[candidateKey][]*engine.Rule{}, progs: &condition.Programs{},
		endpoints: newEndpointStates()}
}

// candidateKey is a key of the candidate index: a struct of the two
// strings, so a lookup builds no string.
type candidateKey struct{ tenant, typ string }

func decodeRule(b []byte) (schemas.RuleRecord, error) {
	var r schemas.RuleRecord
	err := json.Unmarshal(b, &r)
	return r, err
}

// apply is the rules table's change hook.
func (x *ruleIndex) apply(c ktable.Change[schemas.RuleRecord]) {
	var next *engine.Rule
	if c.Value != nil && c.Value.IsActive {
		cond, err := x.progs.Compile(c.Value.Condition)
		if err != nil {
			// The control plane refuses such rules; one that still gets here
			// is skipped loudly rather than matching everything.
			x.log.Error("rule condition does not compile; rule ignored", "rule_id", c.Value.ID, "tenant_id", c.Value.TenantID, "err", err)
		} else {
			next = &engine.Rule{RuleRecord: *c.Value, Cond: cond,
				Endpoint: x.endpoints.state(schemas.TenantKey(c.Value.TenantID, c.Value.WebhookEndpointID))}
			if next.IsAggregate() {
				next.Spec = aggregate.SpecOf(next.RuleRecord)
			} else if next.EventType == schemas.TypeRunFinished {
				// The control plane refuses it: a filter of aggregate rules.
				x.log.Error("per-event rule watching workflow.run.finished; rule ignored", "rule_id", c.Value.ID, "tenant_id", c.Value.TenantID)
				x.progs.Release(c.Value.Condition)
				next = nil
			}
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.version.Add(1)
	if old := x.byKey[c.Key]; old != nil {
		x.progs.Release(old.Condition)
		for _, t := range indexTypes(old.EventType) {
			x.unindex(candidateKey{old.TenantID, t}, old)
		}
		delete(x.byKey, c.Key)
		if old.IsAggregate() {
			x.aggregates--
		}
	}
	if next == nil {
		return
	}
	x.byKey[c.Key] = next
	if next.IsAggregate() {
		x.aggregates++
	}
	for _, t := range indexTypes(next.EventType) {
		x.reindex(candidateKey{next.TenantID, t}, next)
	}
}

// reindex stores a new candidate list for k with r added, in rule id
// order (the order rules are evaluated in, the same on every replay).
// Called with mu held.
func (x *ruleIndex) reindex(k candidateKey, r *engine.Rule) {
	old := x.index[k]
	rs := make([]*engine.Rule, 0, len(old)+1)
	rs = append(rs, old...)
	rs = append(rs, r)
	slices.SortFunc(rs, func(a, b *engine.Rule) int { return cmp.Compare(a.ID, b.ID) })
	x.index[k] = rs
}

// unindex stores a new candidate list for k without r. Called with mu held.
func (x *ruleIndex) unindex(k candidateKey, r *engine.Rule) {
	old := x.index[k]
	rs := make([]*engine.Rule, 0, len(old))
	for _, o := range old {
		if o != r {
			rs = append(rs, o)
		}
	}
	if len(rs) == 0 {
		delete(x.index, k)
		return
	}
	x.index[k] = rs
}

// terminalTypes are the event types workflow.run.finished stands for.
var terminalTypes = []string{schemas.TypeRunSucceeded, schemas.TypeRunFailed}

// indexTypes are the event types a rule watching eventType is indexed
// under: workflow.run.finished, a filter, under both terminal types.
func indexTypes(eventType string) []string {
	if eventType == schemas.TypeRunFinished {
		return terminalTypes
	}
	return []string{eventType}
}

// AggregateCount returns the number of active aggregate (count, rate)
// rules.
func (x *ruleIndex) AggregateCount() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.aggregates
}

// Candidates implements engine.Rules: the shared list, not a copy (callers
// must not change it).
func (x *ruleIndex) Candidates(tenant, alertType string) []*engine.Rule {
	x.mu.RLock()
	rs := x.index[candidateKey{tenant, alertType}]
	x.mu.RUnlock()
	return rs
}

// Get implements engine.Rules.
func (x *ruleIndex) Get(tenant, id string) *engine.Rule {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.byKey[schemas.TenantKey(tenant, id)]
}

// Version implements engine.Rules.
func (x *ruleIndex) Version() uint64 { return x.version.Load() }

// len is the number of active rules.
func (x *ruleIndex) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byKey)
}

// AlertID is the deterministic id of the alert of rule for event: every
// retry and replay carries the same id, so receivers can deduplicate.
func AlertID(tenant, ruleID, eventID string) string { return engine.AlertID(tenant, ruleID, eventID) }

// endpointSet implements engine.Endpoints over the endpoints table.
type endpointSet struct {
	t *ktable.Table[schemas.EndpointRecord]
}

func (s endpointSet) Active(tenant, id string) bool {
	ep, ok := s.t.Get(schemas.TenantKey(tenant, id))
	return ok && ep.IsActive
}

// servedRules are the rules of the tenants the rollout serves: to the
// engine a tenant switched off has no rules, so its events match nothing
// and its duration timers fire nothing. Its version moves with the rules'
// and the rollout's, so the engine re-arms duration timers when a tenant
// is switched back on.
type servedRules struct {
	rules   *ruleIndex
	rollout *rollout.Table
}

// Candidates implements engine.Rules.
func (s servedRules) Candidates(tenant, alertType string) []*engine.Rule {
	if !s.rollout.Served(tenant) {
		return nil
	}
	return s.rules.Candidates(tenant, alertType)
}

// Get implements engine.Rules.
func (s servedRules) Get(tenant, id string) *engine.Rule {
	if !s.rollout.Served(tenant) {
		return nil
	}
	return s.rules.Get(tenant, id)
}

// Version implements engine.Rules: both only grow, so their sum changes
// whenever either does.
func (s servedRules) Version() uint64 { return s.rules.Version() + s.rollout.Version() }
