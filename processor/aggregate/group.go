package aggregate

import (
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Kind is the kind of an aggregate rule.
type Kind uint8

const (
	// Count fires when at least Threshold inputs are in the window.
	Count Kind = iota + 1
	// Rate fires when at least MinRuns runs finished in the window and
	// their success ratio is below RatioBelowBP / 10,000.
	Rate
)

// Spec is what a group needs of its rule. Times are in ms, as the rule
// record stores them; the wiring maps schemas.RuleRecord onto it.
type Spec struct {
	Kind             Kind
	WindowMS         int64
	Threshold        int   // count
	RatioBelowBP     int   // rate: success ratio below, × 10,000
	MinRuns          int   // rate
	HoldMS           int64 // false for this long before a resolve
	RepeatIntervalMS int64 // 0: no repeat
}

// holds is the rule's condition over a window's content, in integers: no
// float in a decision.
func (sp *Spec) holds(x Sums) bool {
	switch sp.Kind {
	case Count:
		return x.N >= uint64(max(sp.Threshold, 1))
	case Rate:
		runs := x.S + x.F
		return runs >= uint64(max(sp.MinRuns, 1)) && x.S*10_000 < uint64(max(sp.RatioBelowBP, 0))*runs
	}
	return false
}

// State is where a group is in its lifecycle (design §3.1).
type State uint8

const (
	Inactive State = iota
	Firing
	Resolving
)

func (s State) String() string {
	return [...]string{"inactive", "firing", "resolving"}[s]
}

// Input is one aggregate input: an event's time and what it adds.
type Input struct {
	At      time.Time
	Outcome Outcome
}

// Step is the kind of a transition.
type Step uint8

const (
	// Fired starts an episode: a firing delivery.
	Fired Step = iota + 1
	// Repeated is a repeat delivery of a firing episode.
	Repeated
	// Held moves a firing group to resolving: no delivery.
	Held
	// Refired moves a resolving group back to firing: no delivery.
	Refired
	// Resolved ends an episode: a resolved delivery.
	Resolved
)

func (s Step) String() string {
	return [...]string{"", "firing", "repeat", "resolving", "refiring", "resolved"}[s]
}

// Resolve reasons (the payload's resolve_reason).
const (
	ReasonRecovered   = schemas.ResolveReasonConditionFalse
	ReasonRuleRemoved = schemas.ResolveReasonRuleRemoved
	ReasonRuleChanged = schemas.ResolveReasonRuleChanged
)

// Transition is one change of a group's state. AlertID is set for the steps
// that are deliveries (Fired, Repeated, Resolved).
type Transition struct {
	Step        Step
	At          time.Time // the crossing input's time or the boundary's end
	IncidentID  string
	AlertID     string
	FiringSince time.Time
	Repeat      int
	Value       Sums   // the window the decision saw
	Reason      string // Resolved only
}

// Group is the window and lifecycle of one group of one rule.
type Group struct {
	Tenant, Rule, Key string
	Spec              Spec

	win       window
	seen      bool  // an input arrived: evaluated is meaningful
	evaluated int64 // the last closed bucket evaluated

	state          State
	firingSince    time.Time
	incident       string
	notifiedAtMS   int64 // last firing or repeat (event time)
	falseSinceMS   int64
	repeats        int
	lastResolvedMS int64
}

// NewGroup returns an inactive, empty group.
func NewGroup(tenant, rule, key string, spec Spec) *Group {
	return &Group{Tenant: tenant, Rule: rule, Key: key, Spec: spec, win: newWindow(spec.WindowMS)}
}

// State returns the group's lifecycle state.
func (g *Group) State() State { return g.state }

// IncidentID returns the current episode's id, "" when inactive.
func (g *Group) IncidentID() string { return g.incident }

// Sums returns the window's content at its head.
func (g *Group) Sums() Sums { return g.win.sums }

// Add counts one input under the effective watermark e. Boundaries closed
// under e are evaluated first. An input older than the window at e, or than
// the ring, is late: not counted (counted=false). A count rule fires on the
// arrival of the input that crosses its threshold, in the window ending at
// max(head, bucket of e).
func (g *Group) Add(in Input, e time.Time) (counted bool, out []Transition) {
	out = g.Advance(e)
	ei := g.win.index(e.UnixMilli())
	if !g.seen {
		g.seen, g.evaluated = true, ei-1
	}
	i := g.win.index(in.At.UnixMilli())
	if i <= ei-Buckets {
		return false, out
	}
	ok, lost, lostOK := g.win.add(i, in.Outcome, g.keep())
	if lostOK {
		// A bucket boundaries still to evaluate would count did not fit:
		// those boundaries are not decided.
		g.skipTo(lost)
	}
	if !ok {
		return false, out
	}
	if g.Spec.Kind != Count || g.state == Firing {
		return true, out
	}
	c, x, ok := g.crossing(i, ei)
	if !ok {
		return true, out
	}
	switch g.state {
	case Inactive:
		tr := g.fire(in.At)
		tr.Value = x
		out = append(out, tr)
		// The episode starts with the window at c: boundaries before it
		// (the input may be ahead of e) must not count as the condition
		// going false.
		g.evaluated = max(g.evaluated, c-1)
		g.win.prune(g.keep())
	case Resolving:
		g.state, g.falseSinceMS = Firing, 0
		tr := g.transition(Refired, in.At)
		tr.Value = x
		out = append(out, tr)
	}
	return true, out
}

// crossing looks for the first window not decided yet (ending at or after
// bucket ei of E) that holds bucket i and the rule's threshold: counts only
// grow, so such a window holds for good and the input that made it cross
// fires now. It is the window at max(head, ei) for an input at the head;
// an input behind the head (partitions replaying at different paces) is
// checked in the windows that hold it.
func (g *Group) crossing(i, ei int64) (int64, Sums, bool) {
	w := &g.win
	c0 := max(i, ei)
	c1 := max(c0, min(i+Buckets-1, w.head))
	var x Sums
	if c0 == w.head {
		x = w.sums
	} else {
		x = w.sumsAt(c0)
	}
	for c := c0; ; c++ {
		if c > c0 {
			x.add(w.at(c))
			x.sub(w.at(c - Buckets))
		}
		if g.Spec.holds(x) {
			return c, x, true
		}
		if c >= c1 {
			return 0, Sums{}, false
		}
	}
}

// skipTo marks the boundaries whose window holds bucket lost, which the
// ring no longer has, as evaluated: they are not decided on a partial
// window (no early resolve, no rate decision on part of the runs). A
// lagging watermark thus holds decisions back instead of faking them.
func (g *Group) skipTo(lost int64) {
	g.evaluated = max(g.evaluated, lost+Buckets-1)
	g.win.prune(g.keep())
}

// keep is the oldest bucket a boundary still to evaluate counts (one that
// leaves the window at the next boundary included).
func (g *Group) keep() int64 { return g.evaluated - Buckets + 1 }

// Advance evaluates every closed boundary under e not evaluated yet where
// the window changes or a hold or repeat deadline falls: rate rules fire,
// both kinds move to resolving, resolve after the hold, and repeat.
func (g *Group) Advance(e time.Time) []Transition {
	if !g.seen {
		return nil
	}
	last := g.win.index(e.UnixMilli()) - 1
	if g.state == Inactive && g.Spec.Kind == Count {
		// Nothing happens to an inactive count group at a boundary: it
		// fires on arrival only.
		g.evaluated = max(g.evaluated, last)
		g.win.prune(g.keep())
		return nil
	}
	var out []Transition
	for c := g.evaluated + 1; c <= last; {
		out = g.evaluate(c, out)
		next, ok := g.win.nextChange(c)
		if dl, dok := g.deadline(c); dok && (!ok || dl < next) {
			next, ok = dl, true
		}
		if !ok {
			break
		}
		c = next
	}
	if last > g.evaluated {
		g.evaluated = last
	}
	g.win.prune(g.keep())
	return out
}

// nextDue is when (unix ms, the end of a boundary) the effective watermark
// must have reached for Advance to possibly change the group: the first
// boundary after the last evaluated one at which it acts, or a change
// point of the window or a deadline before it (never later). noDue: never.
// An inactive count group is due when its window empties (to be dropped).
func (g *Group) nextDue() int64 {
	if !g.seen {
		return noDue
	}
	c1 := g.evaluated + 1
	if g.state == Inactive && g.Spec.Kind == Count {
		if !g.win.started {
			return noDue
		}
		return g.win.end(max(g.win.head+Buckets-1, c1))
	}
	if g.acts(c1) {
		return g.win.end(c1)
	}
	next, ok := g.win.nextChange(g.evaluated)
	if dl, dok := g.deadline(g.evaluated); dok && (!ok || dl < next) {
		next, ok = dl, true
	}
	if !ok {
		return noDue
	}
	return g.win.end(next)
}

// acts says whether evaluating boundary c would change the group.
func (g *Group) acts(c int64) bool {
	holds := g.Spec.holds(g.win.sumsAt(c))
	endMS := g.win.end(c)
	switch g.state {
	case Inactive:
		return g.Spec.Kind == Rate && holds
	case Firing:
		return !holds || (g.Spec.RepeatIntervalMS > 0 && endMS >= g.notifiedAtMS+g.Spec.RepeatIntervalMS)
	default:
		return holds || endMS >= g.falseSinceMS+g.Spec.HoldMS
	}
}

// deadline is the first boundary after c at which a hold or repeat
// deadline has passed.
func (g *Group) deadline(c int64) (int64, bool) {
	var at int64
	switch {
	case g.state == Resolving:
		at = g.falseSinceMS + g.Spec.HoldMS
	case g.state == Firing && g.Spec.RepeatIntervalMS > 0:
		at = g.notifiedAtMS + g.Spec.RepeatIntervalMS
	default:
		return 0, false
	}
	// The first bucket whose end is at or after at: ceil(at / b) − 1.
	return max(-g.win.index(-at)-1, c+1), true
}

func (g *Group) evaluate(c int64, out []Transition) []Transition {
	endMS := g.win.end(c)
	at := time.UnixMilli(endMS).UTC()
	x := g.win.sumsAt(c)
	holds := g.Spec.holds(x)
	switch g.state {
	case Inactive:
		if g.Spec.Kind == Rate && holds {
			tr := g.fire(at)
			tr.Value = x
			out = append(out, tr)
		}
		return out
	case Firing:
		if holds {
			if g.Spec.RepeatIntervalMS > 0 && endMS >= g.notifiedAtMS+g.Spec.RepeatIntervalMS {
				g.repeats++
				g.notifiedAtMS = endMS
				tr := g.transition(Repeated, at)
				tr.AlertID, tr.Value = RepeatAlertID(g.incident, g.repeats), x
				out = append(out, tr)
			}
			return out
		}
		g.state, g.falseSinceMS = Resolving, endMS
		tr := g.transition(Held, at)
		tr.Value = x
		out = append(out, tr)
	}
	// Resolving.
	if holds {
		g.state, g.falseSinceMS = Firing, 0
		tr := g.transition(Refired, at)
		tr.Value = x
		return append(out, tr)
	}
	if endMS >= g.falseSinceMS+g.Spec.HoldMS {
		tr := g.resolve(at, ReasonRecovered)
		tr.Value = x
		out = append(out, tr)
	}
	return out
}

func (g *Group) fire(at time.Time) Transition {
	g.state = Firing
	g.firingSince = at
	g.incident = IncidentID(g.Tenant, g.Rule, g.Key, at)
	g.notifiedAtMS = at.UnixMilli()
	g.repeats = 0
	tr := g.transition(Fired, at)
	tr.AlertID = FiringAlertID(g.incident)
	return tr
}

func (g *Group) resolve(at time.Time, reason string) Transition {
	tr := g.transition(Resolved, at)
	tr.AlertID, tr.Reason = ResolvedAlertID(g.incident), reason
	g.state = Inactive
	g.incident, g.firingSince, g.falseSinceMS, g.notifiedAtMS, g.repeats = "", time.Time{}, 0, 0, 0
	g.lastResolvedMS = at.UnixMilli()
	return tr
}

func (g *Group) transition(s Step, at time.Time) Transition {
	return Transition{Step: s, At: at, IncidentID: g.incident, FiringSince: g.firingSince, Repeat: g.repeats}
}

// End resolves a firing or resolving group at once, because its rule was
// removed or its spec changed (reason), at the effective watermark e.
func (g *Group) End(e time.Time, reason string) []Transition {
	if g.state == Inactive {
		return nil
	}
	x := g.win.sumsAt(max(g.win.head, g.win.index(e.UnixMilli())))
	tr := g.resolve(e.UTC(), reason)
	tr.Value = x
	return []Transition{tr}
}

// Idle says whether the group can be dropped under e: inactive, and no
// bucket it holds can count for a boundary still to be evaluated (at or
// after e's bucket, after the last evaluated one) — including the buckets
// of inputs ahead of e that the window at the head no longer shows.
func (g *Group) Idle(e time.Time) bool {
	if g.state != Inactive {
		return false
	}
	if !g.win.started {
		return true
	}
	next := g.win.index(e.UnixMilli())
	if g.seen {
		next = max(next, g.evaluated+1)
	}
	for _, t := range g.win.tail {
		if t.i >= next-Buckets+1 {
			return false
		}
	}
	for i := max(next-Buckets+1, g.win.head-ringSize+1); i <= g.win.head; i++ {
		if !g.win.ring[slot(i)].empty() {
			return false
		}
	}
	return true
}
