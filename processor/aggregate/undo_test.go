package aggregate

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

type op struct {
	e   time.Time
	key string
	in  Input
	adv bool
}

// randomBatch is a stream of inputs over a few groups and moves of the
// watermark, some inputs late, some ahead.
func randomBatch(r *rand.Rand, e *time.Time, n int) []op {
	var ops []op
	for range n {
		if r.IntN(4) == 0 {
			*e = e.Add(time.Duration(r.IntN(90)) * time.Second)
			ops = append(ops, op{e: *e, adv: true})
			continue
		}
		at := e.Add(time.Duration(r.IntN(200)-150) * time.Second)
		ops = append(ops, op{e: *e, key: fmt.Sprintf("g%d", r.IntN(5)), in: Input{At: at, Outcome: Outcome(1 + r.IntN(3)), EventID: fmt.Sprint(r.Int())}})
	}
	return ops
}

func apply(s *Set, ops []op) []Transition {
	var out []Transition
	for _, o := range ops {
		if o.adv {
			trs, dropped := s.Advance(o.e)
			out = append(out, trs...)
			for _, d := range dropped {
				out = append(out, Transition{EventID: "dropped " + d})
			}
			continue
		}
		sp := Spec{Kind: Count, WindowMS: 120_000, Threshold: 3, HoldMS: 30_000, RepeatIntervalMS: 60_000}
		if o.key >= "g3" {
			sp = Spec{Kind: Rate, WindowMS: 120_000, RatioBelowBP: 8_000, MinRuns: 3, HoldMS: 10_000}
		}
		out = append(out, s.Input("acme", "rul_"+o.key, o.key, sp, o.in, o.e)...)
	}
	return out
}

type setState struct {
	late, dropped uint64
	groups        map[string]Group
}

func snapshot(s *Set) setState {
	st := setState{late: s.Late(), dropped: s.Dropped(), groups: map[string]Group{}}
	for k, g := range s.groups {
		st.groups[k] = *g
	}
	return st
}

// TestAbortReplaysIdentically: over random streams cut into batches, any
// batch aborted and processed again gives the same outputs and state as
// the same batch committed the first time.
func TestAbortReplaysIdentically(t *testing.T) {
	t.Parallel()
	steps := map[Step]int{}
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 11))
		ref, s := NewSet(4), NewSet(4)
		e := t0
		for b := range 20 {
			ops := randomBatch(r, &e, 1+r.IntN(30))
			ref.Begin()
			want := apply(ref, ops)
			ref.Commit()
			for _, tr := range want {
				steps[tr.Step]++
			}

			before := snapshot(s)
			s.Begin()
			first := apply(s, ops)
			s.Abort()
			if got := snapshot(s); !reflect.DeepEqual(got, before) {
				t.Fatalf("seed %d batch %d: abort left\n%+v\nwas\n%+v", seed, b, got, before)
			}
			s.Begin()
			again := apply(s, ops)
			s.Commit()
			if !reflect.DeepEqual(first, want) || !reflect.DeepEqual(again, want) {
				t.Fatalf("seed %d batch %d: outputs differ after abort\nref %v\nfirst %v\nagain %v", seed, b, want, first, again)
			}
			if !reflect.DeepEqual(snapshot(s), snapshot(ref)) {
				t.Fatalf("seed %d batch %d: state differs after replay", seed, b)
			}
		}
	}
	for _, st := range []Step{Fired, Repeated, Held, Refired, Resolved} {
		if steps[st] == 0 {
			t.Fatalf("the random streams never produced %s: %v", st, steps)
		}
	}
}

func TestSetBoundsAndCounts(t *testing.T) {
	t.Parallel()
	s := NewSet(1)
	sp := Spec{Kind: Count, WindowMS: 60_000, Threshold: 1}
	s.Abort() // outside a batch: nothing
	if trs := s.Input("acme", "r", "a", sp, Input{At: t0, Outcome: Matched}, t0); len(trs) != 1 || trs[0].Step != Fired {
		t.Fatalf("first group: %+v", trs)
	}
	if trs := s.Input("acme", "r", "b", sp, Input{At: t0, Outcome: Matched}, t0); trs != nil || s.Dropped() != 1 || s.Group("b") != nil {
		t.Fatal("a group beyond MaxGroups was created")
	}
	s.Input("acme", "r", "a", sp, Input{At: t0.Add(-time.Hour), Outcome: Matched}, t0)
	if s.Late() != 1 {
		t.Fatalf("late = %d", s.Late())
	}
	trs, dropped := s.Advance(t0.Add(3 * time.Minute))
	if len(trs) != 2 || trs[1].Step != Resolved || len(dropped) != 1 || s.Len() != 0 {
		t.Fatalf("advance: %+v dropped %v", trs, dropped)
	}
}
