package aggregate

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func runs(at time.Duration, ok, failed int) []step {
	var s []step
	for k := range ok + failed {
		o := Succeeded
		if k < failed {
			o = Failed
		}
		s = append(s, in(at+time.Duration(k)*time.Second, o))
	}
	return s
}

func TestRateLifecycle(t *testing.T) {
	t.Parallel()
	// 1h window (1m buckets), success ratio below 0.95, at least 10 runs.
	rate := Spec{Kind: Rate, WindowMS: 3_600_000, RatioBelowBP: 9_500, MinRuns: 10}
	for _, tc := range []struct {
		name  string
		steps []step
		want  []string
	}{
		{
			name:  "quiet at 1 failure of 1",
			steps: cat(wm(0), runs(time.Minute, 0, 1), wm(2*time.Hour)),
			want:  nil,
		},
		{
			name: "fires at 3 failures of 12 at the boundary, not on arrival",
			// 9 successes and 3 failures in bucket 1 ([1m,2m)).
			steps: cat(wm(0), runs(time.Minute, 9, 3), wm(time.Minute+59*time.Second), wm(2*time.Minute)),
			want:  []string{"firing@2m0s"},
		},
		{
			name: "resolves when the ratio recovers",
			// 3/12 fail in bucket 1; 40 successes in bucket 3: 49/52 = 0.942,
			// still firing; 40 more in bucket 4: 89/92 = 0.967, false.
			steps: cat(wm(0), runs(time.Minute, 9, 3), wm(2*time.Minute), runs(3*time.Minute, 40, 0), wm(4*time.Minute),
				runs(4*time.Minute+10*time.Second, 40, 0), wm(10*time.Minute)),
			want: []string{"firing@2m0s", "resolving@5m0s", "resolved@5m0s"},
		},
		{
			name:  "resolves when its runs leave the window (too few runs)",
			steps: cat(wm(0), runs(time.Minute, 9, 3), wm(3*time.Hour)),
			want:  []string{"firing@2m0s", "resolving@1h2m0s", "resolved@1h2m0s"},
		},
		{
			name:  "open buckets are not decided: a lagging watermark holds the firing",
			steps: cat(wm(0), runs(time.Minute, 0, 12), wm(time.Minute), wm(time.Minute+30*time.Second)),
			want:  nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := run(t, rate, tc.steps); !slices.Equal(got, tc.want) {
				t.Fatalf("transitions\n got %s\nwant %s", strings.Join(got, " "), strings.Join(tc.want, " "))
			}
		})
	}
}

func TestGroupEndIdleAndPayload(t *testing.T) {
	t.Parallel()
	sp := Spec{Kind: Count, WindowMS: 60_000, Threshold: 2}
	g := NewGroup("acme", "rul_1", "grp_a", sp)
	e := t0
	if g.Advance(e) != nil || g.End(e, ReasonRuleRemoved) != nil || !g.Idle(e) {
		t.Fatal("a new group is not inactive and idle")
	}
	_, _ = g.Add(Input{At: t0, Outcome: Matched}, e)
	if g.Idle(e) {
		t.Fatal("a group with inputs in its window is idle")
	}
	_, trs := g.Add(Input{At: t0.Add(time.Second), Outcome: Matched}, e)
	if len(trs) != 1 || trs[0].Step != Fired || trs[0].Value.N != 2 ||
		trs[0].IncidentID != IncidentID("acme", "rul_1", "grp_a", t0.Add(time.Second)) ||
		trs[0].AlertID != FiringAlertID(trs[0].IncidentID) || g.State() != Firing || g.IncidentID() != trs[0].IncidentID {
		t.Fatalf("firing = %+v", trs)
	}
	if g.Idle(e.Add(time.Hour)) {
		t.Fatal("a firing group is idle")
	}
	end := g.End(e.Add(time.Minute), ReasonRuleChanged)
	if len(end) != 1 || end[0].Step != Resolved || end[0].Reason != ReasonRuleChanged ||
		end[0].AlertID != ResolvedAlertID(trs[0].IncidentID) || g.State() != Inactive || g.IncidentID() != "" {
		t.Fatalf("end = %+v", end)
	}
	if g.Idle(e) || !g.Idle(e.Add(2*time.Minute)) || g.Sums() != (Sums{N: 2}) {
		t.Fatalf("idle before/after the window: %v %v", g.Idle(e), g.Idle(e.Add(2*time.Minute)))
	}
	for s, want := range map[State]string{Inactive: "inactive", Firing: "firing", Resolving: "resolving"} {
		if s.String() != want {
			t.Fatalf("%d.String() = %s", s, s)
		}
	}
	if Refired.String() != "refiring" || (&Spec{}).holds(Sums{N: 9}) {
		t.Fatal("names or an unknown kind")
	}
}
