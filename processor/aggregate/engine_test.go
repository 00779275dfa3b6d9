package aggregate

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

const (
	matched   = schemas.AggregateOutcomeMatched
	succeeded = schemas.AggregateOutcomeSucceeded
	failed    = schemas.AggregateOutcomeFailed
)

// act is one step of a scenario: an input, a marker, a rule change.
type act func(r *rig) Output

func input(id string, at time.Duration, outcome string, group ...string) act {
	return func(r *rig) Output { return r.e.Input(0, r.in(id, at, outcome, group...)) }
}

// inputs is n inputs at at, at+1s, …
func inputs(id string, at time.Duration, n int, outcome string, group ...string) []act {
	var s []act
	for k := range n {
		s = append(s, input(id, at+time.Duration(k)*time.Second, outcome, group...))
	}
	return s
}

// finished is ok successes and bad failures of rule id from at, 1 s apart,
// failures first.
func finished(id string, at time.Duration, ok, bad int) []act {
	return append(inputs(id, at, bad, failed), inputs(id, at+time.Duration(bad)*time.Second, ok, succeeded)...)
}

func mark(src int32, at time.Duration) act {
	return func(r *rig) Output { return r.e.Input(0, marker(src, at)) }
}

func setRule(rule schemas.RuleRecord) act {
	return func(r *rig) Output { r.rules.set(rule); return r.e.Tick(0) }
}

func removeRule(id string) act {
	return func(r *rig) Output { r.rules.remove("acme", id); return r.e.Tick(0) }
}

func inactive(endpoint string) act {
	return func(r *rig) Output { r.eps[endpoint] = true; return Output{} }
}

func refuse(at time.Duration) act {
	return func(r *rig) Output { r.q.refuse[t0.Add(at).UnixMilli()] = true; return Output{} }
}

func steps(parts ...any) []act {
	var s []act
	for _, p := range parts {
		switch p := p.(type) {
		case act:
			s = append(s, p)
		case []act:
			s = append(s, p...)
		}
	}
	return s
}

// play runs the steps, each in its own batch ending with Flush, and
// describes every delivery ("firing@1m2s(3)", see describe) with its
// endpoint when it is not wh_1.
func (r *rig) play(acts []act) (got []string, status []StateChange) {
	r.t.Helper()
	for _, a := range acts {
		r.e.Begin()
		out := a(r)
		fl := r.e.Flush(0)
		r.e.Commit()
		validateRecords(r.t, fl)
		status = append(status, fl.Status...)
		for _, d := range out.Deliveries {
			s := describe(r.t, d)
			if d.EndpointID != "wh_1" {
				s += "→" + d.EndpointID
			}
			got = append(got, s)
		}
	}
	return got, status
}

func validateRecords(t *testing.T, o Output) {
	t.Helper()
	for _, s := range o.States {
		if s.Value != nil {
			if err := schemas.Validate(schemas.KindAggregateState, s.Value); err != nil {
				t.Fatalf("state %s: %v\n%s", s.Key, err, s.Value)
			}
		}
	}
	for _, s := range o.Status {
		if s.Value != nil {
			if err := schemas.Validate(schemas.KindAggregateGroup, s.Value); err != nil {
				t.Fatalf("status %s: %v\n%s", s.Key, err, s.Value)
			}
		}
	}
}

func TestEngineLifecycle(t *testing.T) {
	t.Parallel()
	count := countRule("rul_c", 15*time.Minute, 3) // 15 s buckets
	hold := count
	hold.HoldMS = (5 * time.Minute).Milliseconds()
	repeat := count
	repeat.RepeatIntervalMS = (4 * time.Minute).Milliseconds()
	grouped := count
	grouped.GroupBy, grouped.MaxGroups = []string{"workflow.name"}, 2
	rate := rateRule("rul_r", time.Hour, 9_500, 10) // 1 m buckets
	moved := count
	moved.WebhookEndpointID = "wh_2"
	stricter := count
	stricter.Threshold = 5

	for _, tc := range []struct {
		name  string
		cfg   Config
		rules []schemas.RuleRecord
		acts  []act
		want  []string
	}{
		{
			name:  "count fires at the 3rd, not again at the 4th",
			rules: []schemas.RuleRecord{count},
			acts:  steps(mark(0, 0), inputs("rul_c", time.Minute, 4, matched)),
			want:  []string{"firing@1m2s(3)"},
		},
		{
			name:  "count resolves when the window passes (hold 0)",
			rules: []schemas.RuleRecord{count},
			// Inputs in bucket 4 ([60s,75s)) count up to the boundary 16m
			// and leave at 16m15s.
			acts: steps(mark(0, 0), inputs("rul_c", time.Minute, 3, matched), mark(0, 16*time.Minute+14*time.Second), mark(0, 16*time.Minute+15*time.Second)),
			want: []string{"firing@1m2s(3)", "resolved@16m15s(0)"},
		},
		{
			name:  "count resolves 5m after the window passed (hold 5m)",
			rules: []schemas.RuleRecord{hold},
			acts: steps(mark(0, 0), inputs("rul_c", time.Minute, 3, matched), mark(0, 20*time.Minute),
				mark(0, 21*time.Minute+14*time.Second), mark(0, 21*time.Minute+15*time.Second)),
			want: []string{"firing@1m2s(3)", "resolved@21m15s(0)"},
		},
		{
			name:  "back to firing during the hold: no delivery, one resolve later",
			rules: []schemas.RuleRecord{hold},
			acts: steps(mark(0, 0), inputs("rul_c", time.Minute, 3, matched), mark(0, 17*time.Minute),
				inputs("rul_c", 17*time.Minute, 3, matched), mark(0, time.Hour)),
			want: []string{"firing@1m2s(3)", "resolved@37m15s(0)"},
		},
		{
			name:  "a new crossing after a resolve is a new episode",
			rules: []schemas.RuleRecord{count},
			acts:  steps(mark(0, 0), inputs("rul_c", time.Minute, 3, matched), mark(0, 20*time.Minute), inputs("rul_c", 30*time.Minute, 3, matched)),
			want:  []string{"firing@1m2s(3)", "resolved@16m15s(0)", "firing@30m2s(3)"},
		},
		{
			name:  "repeat_interval repeats while firing",
			rules: []schemas.RuleRecord{repeat},
			acts:  steps(mark(0, 0), inputs("rul_c", time.Minute, 3, matched), inputs("rul_c", 10*time.Minute, 3, matched), mark(0, time.Hour)),
			want:  []string{"firing@1m2s(3)", "repeat1@5m15s(3)", "repeat2@9m15s(3)", "repeat3@13m15s(6)", "repeat4@17m15s(3)", "repeat5@21m15s(3)", "resolved@25m15s(0)"},
		},
		{
			name:  "rate: quiet at 1 failure of 1",
			rules: []schemas.RuleRecord{rate},
			acts:  steps(mark(0, 0), finished("rul_r", time.Minute, 0, 1), mark(0, 2*time.Hour)),
			want:  nil,
		},
		{
			name:  "rate: fires at 3 failures of 12 with min 10, at the boundary",
			rules: []schemas.RuleRecord{rate},
			acts:  steps(mark(0, 0), finished("rul_r", time.Minute, 9, 3), mark(0, time.Minute+59*time.Second), mark(0, 2*time.Minute)),
			want:  []string{"firing@2m0s(3/12)"},
		},
		{
			name:  "rate: resolves when the ratio recovers",
			rules: []schemas.RuleRecord{rate},
			acts: steps(mark(0, 0), finished("rul_r", time.Minute, 9, 3), mark(0, 2*time.Minute), finished("rul_r", 3*time.Minute, 40, 0),
				mark(0, 4*time.Minute), finished("rul_r", 4*time.Minute+10*time.Second, 40, 0), mark(0, 10*time.Minute)),
			want: []string{"firing@2m0s(3/12)", "resolved@5m0s(3/92)"},
		},
		{
			name:  "two groups of a rule are independent",
			rules: []schemas.RuleRecord{grouped},
			acts: steps(mark(0, 0), inputs("rul_c", time.Minute, 2, matched, "a"), inputs("rul_c", time.Minute, 3, matched, "b"),
				input("rul_c", 3*time.Minute, matched, "a"), mark(0, 16*time.Minute+15*time.Second), mark(0, time.Hour)),
			want: []string{"firing@1m2s(3)", "firing@3m0s(3)", "resolved@16m15s(0)", "resolved@16m15s(1)"},
		},
		{
			name:  "max_groups: a third group is not created",
			rules: []schemas.RuleRecord{grouped},
			acts: steps(mark(0, 0), input("rul_c", time.Minute, matched, "a"), input("rul_c", time.Minute, matched, "b"),
				inputs("rul_c", time.Minute, 3, matched, "c")),
			want: nil,
		},
		{
			name:  "MaxGroupsPerPartition: a group beyond it is not created",
			cfg:   Config{MaxGroupsPerPartition: 1},
			rules: []schemas.RuleRecord{grouped},
			acts:  steps(mark(0, 0), input("rul_c", time.Minute, matched, "a"), inputs("rul_c", time.Minute, 3, matched, "b")),
			want:  nil,
		},
		{
			name:  "late input: older than the window at E is not counted",
			rules: []schemas.RuleRecord{count},
			acts: steps(mark(0, 20*time.Minute), input("rul_c", 5*time.Minute, matched), input("rul_c", 6*time.Minute, matched),
				input("rul_c", 19*time.Minute, matched), input("rul_c", 5*time.Minute+14*time.Second, matched), input("rul_c", 7*time.Minute, matched)),
			want: []string{"firing@7m0s(3)"},
		},
		{
			name:  "markers: a silent source holds every resolve",
			cfg:   Config{Sources: 2},
			rules: []schemas.RuleRecord{count},
			acts:  steps(mark(0, 0), inputs("rul_c", time.Minute, 3, matched), mark(0, 2*time.Hour), mark(0, 3*time.Hour)),
			want:  []string{"firing@1m2s(3)"},
		},
		{
			name:  "markers: before every source reported, count fires on arrival and nothing else happens",
			cfg:   Config{Sources: 2},
			rules: []schemas.RuleRecord{count},
			acts:  steps(inputs("rul_c", time.Minute, 3, matched), mark(0, time.Hour), mark(1, 30*time.Second), mark(1, time.Hour)),
			want:  []string{"firing@1m2s(3)", "resolved@16m15s(0)"},
		},
		{
			name:  "markers: the minimum over sources, less the delay, decides",
			cfg:   Config{Sources: 2, Delay: 5 * time.Second},
			rules: []schemas.RuleRecord{count},
			acts: steps(mark(0, 0), mark(1, 0), inputs("rul_c", time.Minute, 3, matched), mark(0, 2*time.Hour),
				mark(1, 16*time.Minute+19*time.Second), mark(1, 5*time.Minute), mark(1, 16*time.Minute+20*time.Second)),
			want: []string{"firing@1m2s(3)", "resolved@16m15s(0)"},
		},
		{
			name:  "rule removed: the firing group resolves at once",
			rules: []schemas.RuleRecord{count},
			acts:  steps(mark(0, 0), inputs("rul_c", time.Minute, 3, matched), mark(0, 5*time.Minute), removeRule("rul_c"), mark(0, time.Hour)),
			want:  []string{"firing@1m2s(3)", "resolved@5m0s(3):rule_removed"},
		},
		{
			name:  "rule changed: resolves at once; old-spec inputs are ignored",
			rules: []schemas.RuleRecord{count},
			acts: steps(mark(0, 0), inputs("rul_c", time.Minute, 3, matched), mark(0, 5*time.Minute), setRule(stricter),
				inputs("rul_c", 6*time.Minute, 5, matched), mark(0, time.Hour)),
			want: []string{"firing@1m2s(3)", "resolved@5m0s(3):rule_changed", "firing@6m4s(5)", "resolved@21m15s(0)"},
		},
		{
			name:  "the resolve goes to the endpoint of the firing",
			rules: []schemas.RuleRecord{repeat},
			acts:  steps(mark(0, 0), inputs("rul_c", time.Minute, 3, matched), setRule(func() schemas.RuleRecord { r := moved; r.RepeatIntervalMS = repeat.RepeatIntervalMS; return r }()), mark(0, time.Hour)),
			want:  []string{"firing@1m2s(3)", "repeat1@5m15s(3)→wh_2", "repeat2@9m15s(3)→wh_2", "repeat3@13m15s(3)→wh_2", "resolved@16m15s(0)"},
		},
		{
			name:  "an inactive endpoint gets nothing, the state moves",
			rules: []schemas.RuleRecord{count},
			acts:  steps(inactive("wh_1"), mark(0, 0), inputs("rul_c", time.Minute, 3, matched), mark(0, time.Hour), inputs("rul_c", 2*time.Hour, 3, matched)),
			want:  nil,
		},
		{
			name:  "a firing suppressed by the quota: no resolve; the next admitted repeat is the firing",
			rules: []schemas.RuleRecord{repeat},
			acts:  steps(refuse(time.Minute+2*time.Second), refuse(5*time.Minute+15*time.Second), mark(0, 0), inputs("rul_c", time.Minute, 3, matched), mark(0, 10*time.Minute)),
			want:  []string{"firing@9m15s(3)"},
		},
		{
			name:  "a suppressed firing that never repeats sends no resolve",
			rules: []schemas.RuleRecord{count},
			acts:  steps(refuse(time.Minute+2*time.Second), mark(0, 0), inputs("rul_c", time.Minute, 3, matched), mark(0, time.Hour)),
			want:  nil,
		},
		{
			name:  "a backlog replayed by partitions far apart in event time loses nothing",
			cfg:   Config{Sources: 2},
			rules: []schemas.RuleRecord{count},
			// Partition 1 replays 30 minutes ahead of partition 0: its input
			// moves the head; partition 0's three inputs, behind it, count
			// and fire in their own window.
			acts: steps(mark(0, 0), mark(1, 0), input("rul_c", 30*time.Minute, matched), inputs("rul_c", time.Minute, 3, matched),
				mark(0, time.Hour), mark(1, time.Hour)),
			want: []string{"firing@1m2s(3)", "resolved@16m15s(0)"},
		},
		{
			name:  "an input far ahead of E does not resolve early",
			rules: []schemas.RuleRecord{count},
			// The input at 40m moves the head by 156 buckets, evicting the
			// 1m inputs; the boundaries that counted them are skipped, not
			// decided on an empty window: the resolve comes at 16m15s, when
			// they leave the window, not at the next boundary under E (3m).
			acts: steps(mark(0, 2*time.Minute), inputs("rul_c", time.Minute, 3, matched), input("rul_c", 40*time.Minute, matched),
				mark(0, 3*time.Minute), mark(0, 16*time.Minute), mark(0, time.Hour)),
			want: []string{"firing@1m2s(3)", "resolved@16m15s(0)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, tc.cfg, tc.rules...)
			got, _ := r.play(tc.acts)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("deliveries\n got %s\nwant %s", strings.Join(got, " "), strings.Join(tc.want, " "))
			}
		})
	}
}
