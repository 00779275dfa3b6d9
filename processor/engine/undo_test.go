package engine

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// batch is the events of one transaction followed by a caught-up tick at
// t0+11m: it creates runs, fires duration alerts (run_1's from before the
// batch, and run_2's), consumes and exceeds a rate limit, and tombstones
// run_0 (finished before the batch).
func batch(tb testing.TB, b *bundle) Output {
	tb.Helper()
	var out Output
	for _, ev := range []*schemas.WorkflowEvent{
		started(tb, "run_2", t0.Add(1*time.Minute)),
		failed(tb, "run_3", t0.Add(2*time.Minute)),
		failed(tb, "run_4", t0.Add(2*time.Minute+10*time.Second)),
		started(tb, "run_5", t0.Add(5*time.Minute)),
		started(tb, "run_6", t0.Add(10*time.Minute)),
	} {
		out.append(b.eng.Event(part, ev))
	}
	b.clock.now = t0.Add(11 * time.Minute)
	out.append(b.eng.Tick(part, true))
	return out
}

// setupBatch returns an engine whose committed state holds run_0 (failed
// at t0) and run_1 (started at t0).
func setupBatch(tb testing.TB) *bundle {
	tb.Helper()
	b := setup(tb)
	b.rules.put(tb, schemas.RuleRecord{ID: "on_fail", EventType: schemas.TypeRunFailed, RateLimitPerMinute: 1})
	b.rules.put(tb, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 300_000})
	b.eng.Begin()
	b.eng.Event(part, failed(tb, "run_0", t0))
	b.eng.Event(part, started(tb, "run_1", t0))
	b.eng.Commit()
	return b
}

func alertIDs(out Output) []string {
	var ids []string
	for _, d := range out.Deliveries {
		ids = append(ids, d.AlertID)
	}
	return ids
}

func TestAbortRollsBack(t *testing.T) {
	t.Parallel()
	b := setupBatch(t)
	b.eng.Begin()
	first := batch(t, b)
	check(t, first)
	wantIDs := []string{
		AlertID("acme", "on_fail", "ev_fail_run_3"),
		DurationAlertID("acme", "slow", "run_1"),
		DurationAlertID("acme", "slow", "run_2"),
		DurationAlertID("acme", "slow", "run_5"),
	}
	if got := alertIDs(first); !slices.Equal(got, wantIDs) {
		t.Fatalf("first attempt alerts %v, want %v", got, wantIDs)
	}
	if tomb, ok := lastState(first, "acme/run_0"); !ok || tomb.Value != nil {
		t.Fatal("the batch did not tombstone run_0")
	}
	b.eng.Abort()

	if runs, wm := b.eng.Runs(part), b.eng.Watermark(part); runs != 2 || !wm.Equal(t0) {
		t.Fatalf("after Abort: %d runs, watermark %v; want 2 and t0", runs, wm)
	}
	b.eng.Begin()
	second := batch(t, b)
	b.eng.Commit()
	if !reflect.DeepEqual(first.Deliveries, second.Deliveries) {
		t.Fatalf("retry after Abort alerts %v, first attempt %v", alertIDs(second), alertIDs(first))
	}
	j1, _ := json.Marshal(first.States)
	j2, _ := json.Marshal(second.States)
	if string(j1) != string(j2) {
		t.Fatalf("retry after Abort wrote states\n%s\nfirst attempt\n%s", j2, j1)
	}
}

func TestCommitKeeps(t *testing.T) {
	t.Parallel()
	b := setupBatch(t)
	b.eng.Begin()
	if n := len(batch(t, b).Deliveries); n != 4 {
		t.Fatalf("first attempt: %d alerts, want 4", n)
	}
	b.eng.Commit()
	b.eng.Abort() // after Commit: nothing to undo

	dups := b.eng.Stats.Duplicates.Load()
	b.eng.Begin()
	again := batch(t, b)
	b.eng.Commit()
	if len(again.Deliveries) != 0 {
		t.Fatalf("events processed again after Commit alerted %v", alertIDs(again))
	}
	if n := b.eng.Stats.Duplicates.Load() - dups; n != 5 {
		t.Fatalf("%d duplicates counted, want the batch's 5 events", n)
	}
}

func TestAbortEdgeCases(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, b *bundle)
	}{
		{
			name: "Abort without Begin changes nothing",
			run: func(t *testing.T, b *bundle) {
				b.eng.Event(part, started(t, "run_1", t0))
				b.eng.Abort()
				if b.eng.Runs(part) != 1 || !b.eng.Watermark(part).Equal(t0) {
					t.Fatal("Abort without Begin undid work")
				}
			},
		},
		{
			name: "partition created in the batch is emptied",
			run: func(t *testing.T, b *bundle) {
				b.eng.Begin()
				b.eng.Event(7, started(t, "run_1", t0))
				b.eng.Abort()
				if b.eng.Runs(7) != 0 || !b.eng.Watermark(7).IsZero() {
					t.Fatalf("runs %d watermark %v after Abort", b.eng.Runs(7), b.eng.Watermark(7))
				}
			},
		},
		{
			name: "partition revoked in the batch stays revoked",
			run: func(t *testing.T, b *bundle) {
				b.eng.Begin()
				b.eng.Event(7, started(t, "run_1", t0))
				b.eng.Revoke(7)
				b.eng.Abort()
				if b.eng.Assigned(7) {
					t.Fatal("Abort brought back a revoked partition")
				}
			},
		},
		{
			name: "rate-limit budget first used in the batch is given back",
			run: func(t *testing.T, b *bundle) {
				b.rules.put(t, schemas.RuleRecord{ID: "on_fail", EventType: schemas.TypeRunFailed, RateLimitPerMinute: 1})
				b.eng.Begin()
				if n := len(b.event(t, failed(t, "run_1", t0))); n != 1 {
					t.Fatalf("%d alerts in the batch, want 1", n)
				}
				b.eng.Abort()
				if n := len(b.event(t, failed(t, "run_1", t0))); n != 1 {
					t.Fatalf("%d alerts on retry, want 1", n)
				}
				none(t, "over the limit", b.event(t, failed(t, "run_2", t0.Add(time.Second))))
			},
		},
		{
			name: "tick-only batch: watermark rolled back",
			run: func(t *testing.T, b *bundle) {
				b.eng.Event(part, started(t, "run_1", t0))
				b.eng.Begin()
				b.tick(t, t0.Add(time.Minute), true)
				b.eng.Abort()
				if wm := b.eng.Watermark(part); !wm.Equal(t0) {
					t.Fatalf("watermark %v after Abort, want t0", wm)
				}
			},
		},
		{
			name: "rule changed after Abort: restored runs use the new threshold",
			run: func(t *testing.T, b *bundle) {
				b.rules.put(t, slowRule("slow", 5*time.Minute, ""))
				b.eng.Event(part, started(t, "run_1", t0))
				b.eng.Begin()
				wantDuration(t, "in the batch", b.tick(t, t0.Add(5*time.Minute), true), "slow", "run_1", 5*time.Minute, 5*time.Minute)
				b.eng.Abort()
				b.rules.put(t, slowRule("slow", 8*time.Minute, ""))
				none(t, "old deadline", b.tick(t, t0.Add(5*time.Minute), true))
				wantDuration(t, "new deadline", b.tick(t, t0.Add(8*time.Minute), true), "slow", "run_1", 8*time.Minute, 8*time.Minute)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, setup(t))
		})
	}
}

// restored returns the run state of acme/run started at t0, as the
// changelog holds it.
func restored(tb testing.TB, run string, last time.Time, mod func(*schemas.RunState)) schemas.RunState {
	tb.Helper()
	start := t0
	st := schemas.RunState{
		TenantID: "acme", RunID: run, Workflow: schemas.Workflow{ID: "wf_1", Name: "nightly-etl"}, Attempt: 1,
		Labels: map[string]string{"env": "prod"}, StartEventID: "ev_start_" + run, StartedAt: &start,
		Seen: []string{schemas.TypeRunStarted}, LastEventAt: last,
	}
	if mod != nil {
		mod(&st)
	}
	check(tb, Output{States: []StateChange{{Key: "acme/" + run, Value: &st}}})
	return st
}

func TestAssignRestored(t *testing.T) {
	t.Parallel()
	fin := t0.Add(time.Minute)
	cases := []struct {
		name   string
		states func(testing.TB) []schemas.RunState
		run    func(t *testing.T, b *bundle)
	}{
		{
			name: "running run whose rule fired does not fire again",
			states: func(tb testing.TB) []schemas.RunState {
				return []schemas.RunState{restored(tb, "run_1", t0.Add(6*time.Minute), func(s *schemas.RunState) { s.Fired = []string{"slow"} })}
			},
			run: func(t *testing.T, b *bundle) {
				none(t, "tick", b.tick(t, t0.Add(10*time.Minute), true))
				none(t, "event", b.event(t, started(t, "run_2", t0.Add(11*time.Minute))))
			},
		},
		{
			name: "running run without it fires when due",
			states: func(tb testing.TB) []schemas.RunState {
				return []schemas.RunState{restored(tb, "run_1", t0, nil)}
			},
			run: func(t *testing.T, b *bundle) {
				none(t, "lagging tick", b.tick(t, t0.Add(time.Hour), false))
				alerts := b.event(t, started(t, "run_2", t0.Add(5*time.Minute)))
				wantDuration(t, "event at the deadline", alerts, "slow", "run_1", 5*time.Minute, 5*time.Minute)
				if alerts[0].P.Data.Labels["env"] != "prod" {
					t.Fatalf("labels %v, want the restored ones", alerts[0].P.Data.Labels)
				}
			},
		},
		{
			name: "state without a start event id names the run",
			states: func(tb testing.TB) []schemas.RunState {
				return []schemas.RunState{restored(tb, "run_1", t0, func(s *schemas.RunState) { s.StartEventID = "" })}
			},
			run: func(t *testing.T, b *bundle) {
				alerts := b.tick(t, t0.Add(5*time.Minute), true)
				if len(alerts) != 1 || alerts[0].P.Data.Event.ID != "run_1" {
					t.Fatalf("alerts %+v, want one whose event id is the run id", alerts)
				}
			},
		},
		{
			name: "state with neither start nor finish is dropped MaxRunAge after its last event",
			states: func(tb testing.TB) []schemas.RunState {
				return []schemas.RunState{restored(tb, "run_1", t0.Add(time.Hour), func(s *schemas.RunState) { s.StartedAt = nil })}
			},
			run: func(t *testing.T, b *bundle) {
				none(t, "before", b.tick(t, t0.Add(time.Hour+maxRunAge-time.Millisecond), true))
				if b.eng.Runs(part) != 1 {
					t.Fatal("dropped early")
				}
				none(t, "at MaxRunAge", b.tick(t, t0.Add(time.Hour+maxRunAge), true))
				if b.eng.Runs(part) != 0 {
					t.Fatal("not dropped")
				}
			},
		},
		{
			name: "finished run catches a duplicate terminal event",
			states: func(tb testing.TB) []schemas.RunState {
				return []schemas.RunState{restored(tb, "run_1", fin, func(s *schemas.RunState) {
					s.FinishedAt = &fin
					s.Seen = append(s.Seen, schemas.TypeRunFailed)
				})}
			},
			run: func(t *testing.T, b *bundle) {
				none(t, "duplicate", b.event(t, failed(t, "run_1", fin)))
				if b.eng.Stats.Duplicates.Load() != 1 {
					t.Fatal("the duplicate was not counted")
				}
			},
		},
		{
			name: "finished run is tombstoned after its grace period",
			states: func(tb testing.TB) []schemas.RunState {
				return []schemas.RunState{restored(tb, "run_1", fin, func(s *schemas.RunState) {
					s.FinishedAt = &fin
					s.Seen = append(s.Seen, schemas.TypeRunSucceeded)
				})}
			},
			run: func(t *testing.T, b *bundle) {
				b.clock.now = fin.Add(grace)
				out := b.eng.Tick(part, true)
				if st, ok := lastState(out, "acme/run_1"); !ok || st.Value != nil || b.eng.Runs(part) != 0 {
					t.Fatalf("states %+v, want run_1 tombstoned", out.States)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.rules.put(t, slowRule("slow", 5*time.Minute, ""))
			b.rules.put(t, schemas.RuleRecord{ID: "on_fail", EventType: schemas.TypeRunFailed})
			states := c.states(t)
			b.eng.Assign(part, states)
			if !b.eng.Assigned(part) || b.eng.Runs(part) != len(states) || !b.eng.Watermark(part).Equal(states[0].LastEventAt) {
				t.Fatalf("after Assign: assigned %v, runs %d, watermark %v", b.eng.Assigned(part), b.eng.Runs(part), b.eng.Watermark(part))
			}
			c.run(t, b)
		})
	}
}

func TestAssignWatermarkAndRevoke(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.eng.Assign(part, []schemas.RunState{
		restored(t, "run_1", t0.Add(2*time.Minute), nil),
		restored(t, "run_2", t0.Add(7*time.Minute), nil),
		restored(t, "run_3", t0.Add(3*time.Minute), nil),
	})
	b.eng.Assign(part+1, nil)
	if wm := b.eng.Watermark(part); !wm.Equal(t0.Add(7 * time.Minute)) {
		t.Fatalf("watermark %v, want the latest last_event_at", wm)
	}
	if b.eng.Runs(part) != 3 || b.eng.TotalRuns() != 3 || !b.eng.Assigned(part+1) {
		t.Fatalf("runs %d total %d", b.eng.Runs(part), b.eng.TotalRuns())
	}
	b.eng.Revoke(part)
	if b.eng.Assigned(part) || b.eng.Runs(part) != 0 || b.eng.TotalRuns() != 0 || !b.eng.Watermark(part).IsZero() {
		t.Fatalf("after Revoke: assigned %v, runs %d", b.eng.Assigned(part), b.eng.Runs(part))
	}
	if out := b.eng.Tick(part, true); len(out.Deliveries)+len(out.States) != 0 {
		t.Fatalf("Tick of a revoked partition = %+v", out)
	}
	if !b.eng.Assigned(part + 1) {
		t.Fatal("Revoke dropped another partition")
	}
}

// A run made in an aborted batch is gone with it: its expiry, still in
// the partition's queue, never tombstones the run of the same key that
// the next batch makes (here running, so kept until MaxRunAge).
func TestAbortedRunsExpiryIsStale(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.eng.Begin()
	b.eng.Event(part, failed(t, "run_1", t0)) // expires at t0+grace
	b.eng.Abort()
	b.eng.Begin()
	b.eng.Event(part, started(t, "run_1", t0))
	b.eng.Commit()
	b.clock.now = t0.Add(grace + time.Minute)
	out := b.eng.Tick(part, true)
	for _, s := range out.States {
		if s.Key == "acme/run_1" && s.Value == nil {
			t.Fatalf("run_1, running, tombstoned by the expiry of the aborted batch's run")
		}
	}
	if n := b.eng.Runs(part); n != 1 {
		t.Fatalf("%d runs held, want run_1", n)
	}
}
