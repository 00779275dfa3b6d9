package aggregate

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// step is one input (o != 0) or one move of the effective watermark.
type step struct {
	at time.Duration // after t0: the input's time, or the watermark
	o  Outcome
}

func in(at time.Duration, o Outcome) step { return step{at: at, o: o} }
func wm(at time.Duration) step            { return step{at: at} }

// fails is n failed inputs at at, at+1s, …
func fails(at time.Duration, n int, o Outcome) []step {
	var s []step
	for k := range n {
		s = append(s, in(at+time.Duration(k)*time.Second, o))
	}
	return s
}

func cat(parts ...any) []step {
	var s []step
	for _, p := range parts {
		switch p := p.(type) {
		case step:
			s = append(s, p)
		case []step:
			s = append(s, p...)
		}
	}
	return s
}

// run feeds the steps to a group and describes its transitions as
// "step@offset(value)", plus "late" for each input not counted.
func run(t *testing.T, sp Spec, steps []step) []string {
	t.Helper()
	g := NewGroup("acme", "rul_1", GroupKey("acme", "rul_1", nil), sp)
	var got []string
	e := t0.Add(-time.Hour)
	note := func(trs []Transition) {
		for _, tr := range trs {
			got = append(got, fmt.Sprintf("%s@%s", tr.Step, tr.At.Sub(t0)))
			if tr.IncidentID == "" {
				t.Fatalf("transition without incident: %+v", tr)
			}
		}
	}
	for _, s := range steps {
		if s.o == 0 {
			e = t0.Add(s.at)
			note(g.Advance(e))
			continue
		}
		counted, trs := g.Add(Input{At: t0.Add(s.at), Outcome: s.o}, e)
		note(trs)
		if !counted {
			got = append(got, "late")
		}
	}
	return got
}

func TestCountLifecycle(t *testing.T) {
	t.Parallel()
	count := Spec{Kind: Count, WindowMS: 15 * 60_000, Threshold: 3} // 15 s buckets
	hold := count
	hold.HoldMS = 5 * 60_000
	repeat := count
	repeat.RepeatIntervalMS = 4 * 60_000
	for _, tc := range []struct {
		name  string
		spec  Spec
		steps []step
		want  []string
	}{
		{
			name:  "fires at the 3rd, not at the 4th",
			spec:  count,
			steps: cat(wm(0), fails(time.Minute, 4, Matched)),
			want:  []string{"firing@1m2s"},
		},
		{
			name:  "2 of 3 never fires",
			spec:  count,
			steps: cat(wm(0), fails(time.Minute, 2, Matched), wm(time.Hour)),
			want:  nil,
		},
		{
			name: "hold 0 resolves when the window passes",
			spec: count,
			// Inputs in bucket 4 ([60s,75s)): the window at bucket c is
			// c-59…c, so they count up to the boundary 16m (end of bucket
			// 63) and leave at 16m15s.
			steps: cat(wm(0), fails(time.Minute, 3, Matched), wm(16*time.Minute+14*time.Second), wm(16*time.Minute+15*time.Second)),
			want:  []string{"firing@1m2s", "resolving@16m15s", "resolved@16m15s"},
		},
		{
			name:  "hold 5m resolves 5m after the condition went false",
			spec:  hold,
			steps: cat(wm(0), fails(time.Minute, 3, Matched), wm(20*time.Minute), wm(21*time.Minute+14*time.Second), wm(21*time.Minute+15*time.Second)),
			want:  []string{"firing@1m2s", "resolving@16m15s", "resolved@21m15s"},
		},
		{
			name:  "back to firing during the hold, no delivery, then resolves later",
			spec:  hold,
			steps: cat(wm(0), fails(time.Minute, 3, Matched), wm(17*time.Minute), fails(17*time.Minute, 3, Matched), wm(time.Hour)),
			want:  []string{"firing@1m2s", "resolving@16m15s", "refiring@17m2s", "resolving@32m15s", "resolved@37m15s"},
		},
		{
			name:  "a new crossing after a resolve is a new episode",
			spec:  count,
			steps: cat(wm(0), fails(time.Minute, 3, Matched), wm(20*time.Minute), fails(30*time.Minute, 3, Matched)),
			want:  []string{"firing@1m2s", "resolving@16m15s", "resolved@16m15s", "firing@30m2s"},
		},
		{
			name:  "repeat_interval repeats while firing, not once resolving",
			spec:  repeat,
			steps: cat(wm(0), fails(time.Minute, 3, Matched), fails(10*time.Minute, 3, Matched), wm(time.Hour)),
			// Firing at 1m2s; boundaries at ≥ 5m2s (5m15s), ≥ 9m15s (9m15s),
			// ≥ 13m15s (13m15s), ≥ 17m15s (17m15s), ≥ 21m15s (21m15s); false
			// at 25m15s (the 10m inputs leave).
			want: []string{"firing@1m2s", "repeat@5m15s", "repeat@9m15s", "repeat@13m15s", "repeat@17m15s", "repeat@21m15s", "resolving@25m15s", "resolved@25m15s"},
		},
		{
			name: "late input: inside the window counted, older dropped",
			spec: count,
			steps: cat(wm(20*time.Minute),
				in(5*time.Minute, Matched),                // bucket 20, window at E starts at 5m15s: late
				in(6*time.Minute, Matched),                // inside
				in(19*time.Minute, Matched),               // inside
				in(5*time.Minute+14*time.Second, Matched), // late
				in(7*time.Minute, Matched)),               // the third counted: fires
			want: []string{"late", "late", "firing@7m0s"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := run(t, tc.spec, tc.steps); !slices.Equal(got, tc.want) {
				t.Fatalf("transitions\n got %s\nwant %s", strings.Join(got, " "), strings.Join(tc.want, " "))
			}
		})
	}
}
