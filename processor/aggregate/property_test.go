package aggregate

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// The random streams of the property tests: three rules (a grouped count
// rule with hold and repeat, a rate rule with hold, a count rule without
// group_by), two sources with a delay, inputs late, on time and far ahead,
// rule changes, removals, an endpoint going inactive and quota refusals.

type world struct {
	rules *fakeRules
	eps   fakeEndpoints
}

func (w world) clone() world {
	r := &fakeRules{rules: maps.Clone(w.rules.rules), version: w.rules.version}
	return world{rules: r, eps: maps.Clone(w.eps)}
}

// oddQuota refuses the firings and repeats whose time in ms is divisible by 5.
type oddQuota struct{}

func (oddQuota) Admit(p int32, tenant string, at time.Time) bool { return at.Unix()%5 != 0 }

func propertyRules() []schemas.RuleRecord {
	c := countRule("rul_a", 2*time.Minute, 3)
	c.GroupBy, c.MaxGroups, c.HoldMS, c.RepeatIntervalMS = []string{"labels.team"}, 3, 30_000, 60_000
	r := rateRule("rul_b", 2*time.Minute, 8_000, 3)
	r.GroupBy, r.HoldMS = []string{"workflow.name"}, 10_000
	n := countRule("rul_c", time.Minute, 2)
	return []schemas.RuleRecord{c, r, n}
}

func newWorld() world {
	return world{rules: newRules(propertyRules()...), eps: fakeEndpoints{}}
}

func newPropertyEngine(w world) *Engine {
	e := New(Config{Sources: 2, Delay: time.Second, MaxGroupsPerPartition: 8}, w.rules, w.eps, oddQuota{})
	return e
}

// op is one step of a random stream, applied to an engine and its world.
type op struct {
	kind    int // 0 input, 1 marker, 2 rule change, 3 endpoint toggle
	rule    string
	group   string
	outcome string
	at      time.Time
	src     int32
	seq     int
	stale   bool
}

func randomOps(r *rand.Rand, clock *time.Time, seq *int, n int) []op {
	var ops []op
	for range n {
		*seq++
		switch x := r.IntN(40); {
		case x < 8:
			*clock = clock.Add(time.Duration(r.IntN(40)) * time.Second)
			ops = append(ops, op{kind: 1, src: int32(r.IntN(2)), at: clock.Add(-time.Duration(r.IntN(20)) * time.Second)})
		case x == 8:
			ops = append(ops, op{kind: 2, rule: []string{"rul_a", "rul_b", "rul_c"}[r.IntN(3)], seq: r.IntN(4)})
		case x == 9:
			ops = append(ops, op{kind: 3, seq: r.IntN(2)})
		default:
			rule := []string{"rul_a", "rul_a", "rul_b", "rul_b", "rul_c"}[r.IntN(5)]
			o := matched
			if rule == "rul_b" {
				o = []string{succeeded, failed, failed}[r.IntN(3)]
			}
			ahead := time.Duration(r.IntN(240)-150) * time.Second
			if r.IntN(30) == 0 {
				ahead = time.Duration(r.IntN(30)) * time.Minute
			}
			ops = append(ops, op{kind: 0, rule: rule, group: fmt.Sprint("g", r.IntN(4)), outcome: o, at: clock.Add(ahead),
				seq: *seq, stale: r.IntN(50) == 0})
		}
	}
	return ops
}

// applyOp feeds one op and returns what the engine produced, as JSON.
func applyOp(e *Engine, w world, o op) Output {
	switch o.kind {
	case 1:
		src := o.src
		return e.Input(0, &schemas.AggregateInput{Kind: schemas.AggregateInputKindWatermark, SourcePartition: &src, Watermark: o.at})
	case 2:
		base := propertyRules()
		idx := map[string]int{"rul_a": 0, "rul_b": 1, "rul_c": 2}[o.rule]
		rec := base[idx]
		switch o.seq {
		case 0: // a change of spec
			if cur, ok := w.rules.rules[schemas.TenantKey("acme", o.rule)]; ok && cur.WindowMS == rec.WindowMS {
				rec.WindowMS *= 2
			}
			w.rules.set(rec)
		case 1: // removed
			w.rules.remove("acme", o.rule)
		case 2: // back as it was
			w.rules.set(rec)
		case 3: // a change that keeps the state: endpoint, hold, repeat
			if cur, ok := w.rules.rules[schemas.TenantKey("acme", o.rule)]; ok {
				cur.WebhookEndpointID, cur.HoldMS, cur.RepeatIntervalMS = "wh_2", cur.HoldMS+15_000, 0
				w.rules.set(cur)
			}
		}
		return e.Tick(0)
	case 3:
		w.eps["wh_1"] = o.seq == 0
		return Output{}
	}
	rule := w.rules.rules[schemas.TenantKey("acme", o.rule)]
	spec := SpecOf(rule)
	if o.stale {
		spec = "0123456789abcdef"
	}
	typ := schemas.TypeRunFailed
	if o.outcome == succeeded {
		typ = schemas.TypeRunSucceeded
	}
	return e.Input(0, &schemas.AggregateInput{Kind: schemas.AggregateInputKindInput, TenantID: "acme", RuleID: o.rule, Spec: spec,
		Group: []string{o.group}, Outcome: o.outcome, At: o.at,
		Event: &schemas.AggregateEvent{ID: fmt.Sprint("ev", o.seq), Type: typ, RunID: fmt.Sprint("run_", o.seq),
			Workflow: schemas.Workflow{ID: "wf_1", Name: o.group}}})
}

// runBatch applies ops and the Flush in one call sequence; the caller
// brackets it with Begin and Commit or Abort.
func runBatch(e *Engine, w world, ops []op) []Output {
	var outs []Output
	for _, o := range ops {
		outs = append(outs, applyOp(e, w, o))
	}
	return append(outs, e.Flush(0))
}

// dump is a partition's whole state, comparable with reflect.DeepEqual.
type dump struct {
	Groups                    map[string]string
	Due                       map[string]int64
	Rules                     map[string]ruleStat
	Sources                   map[int32]time.Time
	E                         time.Time
	ByState                   [3]int
	Synced                    bool
	Version                   uint64
	Dirty, DirtyRules, DirtyS []string
	WMDirty                   bool
}

func dumpOf(e *Engine) dump {
	pt := e.parts[0]
	d := dump{Groups: map[string]string{}, Due: map[string]int64{}, Rules: map[string]ruleStat{}, Sources: maps.Clone(pt.sources),
		E: pt.e, ByState: pt.byState, Synced: pt.synced, Version: pt.rulesVersion, WMDirty: pt.wmDirty,
		Dirty: sortedKeys(pt.dirty), DirtyRules: sortedKeys(pt.dirtyRules), DirtyS: sortedKeys(pt.dirtyStatus)}
	for k, en := range pt.groups {
		d.Groups[k] = string(encodeGroup(en))
		d.Due[k] = en.due
	}
	for k, st := range pt.rules {
		d.Rules[k] = *st
	}
	return d
}

func statsOf(s *Stats) [8]uint64 {
	return [8]uint64{s.InputsCounted.Load(), s.InputsLate.Load(), s.InputsDropped.Load(), s.InputsStaleSpec.Load(),
		s.ToFiring.Load(), s.ToResolving.Load(), s.ToResolved.Load(), s.ToRepeat.Load()}
}

func mustEqualOutputs(t *testing.T, what string, got, want []Output) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d outputs, want %d", what, len(got), len(want))
	}
	for i := range got {
		if reflect.DeepEqual(got[i], want[i]) {
			continue
		}
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want[i])
		n := 0
		for n < len(g) && n < len(w) && g[n] == w[n] {
			n++
		}
		from := max(0, n-300)
		t.Fatalf("%s: output %d differs at byte %d\n got …%s\nwant …%s", what, i, n, g[from:min(len(g), n+400)], w[from:min(len(w), n+400)])
	}
}

// TestAbortReplaysIdentically: over random streams cut into batches, any
// batch aborted and processed again gives the same outputs (deliveries,
// changelog, status), the same state and the same counts as the batch
// committed the first time.
func TestAbortReplaysIdentically(t *testing.T) {
	t.Parallel()
	seen := map[string]int{}
	for seed := range uint64(30) {
		r := rand.New(rand.NewPCG(seed, 11))
		wRef, wGot := newWorld(), newWorld()
		ref, got := newPropertyEngine(wRef), newPropertyEngine(wGot)
		ref.Assign(0, nil)
		got.Assign(0, nil)
		clock, seq := t0, 0
		for b := range 25 {
			ops := randomOps(r, &clock, &seq, 1+r.IntN(30))
			ref.Begin()
			want := runBatch(ref, wRef, ops)
			ref.Commit()
			for _, o := range want {
				for _, d := range o.Deliveries {
					seen[d.EventType]++
				}
			}

			before, world0, stats0 := dumpOf(got), wGot.clone(), statsOf(got.Stats)
			got.Begin()
			first := runBatch(got, wGot, ops)
			got.Abort()
			if d := dumpOf(got); !reflect.DeepEqual(d, before) || statsOf(got.Stats) != stats0 {
				t.Fatalf("seed %d batch %d: abort left\n%+v\nwas\n%+v", seed, b, d, before)
			}
			*wGot.rules, wGot.eps = *world0.rules, world0.eps
			got.eps = wGot.eps
			got.Begin()
			again := runBatch(got, wGot, ops)
			got.Commit()
			mustEqualOutputs(t, fmt.Sprintf("seed %d batch %d first run", seed, b), first, want)
			mustEqualOutputs(t, fmt.Sprintf("seed %d batch %d replay", seed, b), again, want)
			if !reflect.DeepEqual(dumpOf(got), dumpOf(ref)) || statsOf(got.Stats) != statsOf(ref.Stats) {
				t.Fatalf("seed %d batch %d: state differs after the replay", seed, b)
			}
		}
		st := statsOf(ref.Stats)
		for i, name := range []string{"counted", "late", "dropped", "stale_spec", "firing", "resolving", "resolved", "repeat"} {
			seen[name] += int(st[i])
		}
	}
	for _, k := range []string{"counted", "late", "dropped", "stale_spec", "firing", "resolving", "resolved", "repeat",
		schemas.TypeAlertFiring, schemas.TypeAlertResolved} {
		if seen[k] == 0 {
			t.Fatalf("the random streams never produced %s: %v", k, seen)
		}
	}
}

// TestRestoreBehavesIdentically: a partition restored from the changelog
// records it wrote (Assign) decides exactly as the partition that wrote
// them, from any cut between batches.
func TestRestoreBehavesIdentically(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 17))
		w := newWorld()
		e := newPropertyEngine(w)
		e.Assign(0, nil)
		clock, seq := t0, 0
		var batches [][]op
		var outs [][]Output
		var logs [][]StateChange // the changelog after each batch
		var worlds []world
		var log []StateChange
		for range 25 {
			ops := randomOps(r, &clock, &seq, 1+r.IntN(30))
			e.Begin()
			o := runBatch(e, w, ops)
			e.Commit()
			for _, x := range o {
				log = append(log, x.States...)
			}
			batches, outs = append(batches, ops), append(outs, o)
			logs, worlds = append(logs, slices.Clone(log)), append(worlds, w.clone())
		}
		for _, cut := range []int{r.IntN(8), 8 + r.IntN(8), 16 + r.IntN(8)} {
			wb := worlds[cut].clone()
			b := newPropertyEngine(wb)
			b.Assign(0, logs[cut])
			got, want := dumpOf(b), dumpOf(replayTo(batches[:cut+1]))
			for _, d := range []dump{got, want} { // not in the changelog: a cache of the rule's
				for k, st := range d.Rules {
					st.holdMS, st.repeatMS = 0, 0
					d.Rules[k] = st
				}
			}
			if !reflect.DeepEqual(got.Groups, want.Groups) ||
				!reflect.DeepEqual(got.Rules, want.Rules) || got.E != want.E || got.ByState != want.ByState || !reflect.DeepEqual(got.Due, want.Due) {
				t.Fatalf("seed %d cut %d: restored state differs\n%s", seed, cut, diffDump(got, want))
			}
			for k := cut + 1; k < len(batches); k++ {
				b.Begin()
				o := runBatch(b, wb, batches[k])
				b.Commit()
				mustEqualOutputs(t, fmt.Sprintf("seed %d cut %d batch %d", seed, cut, k), o, outs[k])
			}
		}
	}
}

// replayTo runs the batches on a fresh engine (the state the changelog of
// that prefix describes).
func replayTo(batches [][]op) *Engine {
	w := newWorld()
	e := newPropertyEngine(w)
	e.Assign(0, nil)
	for _, ops := range batches {
		e.Begin()
		runBatch(e, w, ops)
		e.Commit()
	}
	return e
}

func diffDump(got, want dump) string {
	s := ""
	for k, g := range got.Groups {
		if want.Groups[k] != g {
			s += fmt.Sprintf("group %s\n got %s\nwant %s\n", k, g, want.Groups[k])
		}
		if want.Due[k] != got.Due[k] {
			s += fmt.Sprintf("due %s got %d want %d\n", k, got.Due[k], want.Due[k])
		}
	}
	for k := range want.Groups {
		if _, ok := got.Groups[k]; !ok {
			s += "missing " + k + "\n"
		}
	}
	if !reflect.DeepEqual(got.Rules, want.Rules) {
		s += fmt.Sprintf("rules got %+v want %+v\n", got.Rules, want.Rules)
	}
	if got.E != want.E || got.ByState != want.ByState {
		s += fmt.Sprintf("E %v %v byState %v %v\n", got.E, want.E, got.ByState, want.ByState)
	}
	return s
}
