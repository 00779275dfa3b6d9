package engine

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// part is the partition the scenarios use.
const part = int32(2)

// event feeds ev to partition part and returns the checked alerts.
func (b *bundle) event(tb testing.TB, ev *schemas.WorkflowEvent) []alert {
	tb.Helper()
	return check(tb, b.eng.Event(part, ev))
}

// tick sets the wall clock to at and ticks partition part.
func (b *bundle) tick(tb testing.TB, at time.Time, caughtUp bool) []alert {
	tb.Helper()
	b.clock.now = at
	return check(tb, b.eng.Tick(part, caughtUp))
}

// none fails if any alert was delivered.
func none(tb testing.TB, step string, alerts []alert) {
	tb.Helper()
	if len(alerts) != 0 {
		tb.Fatalf("%s: %d unexpected alerts: %v", step, len(alerts), ruleIDs(alerts))
	}
}

func slowRule(id string, threshold time.Duration, cond string) schemas.RuleRecord {
	return schemas.RuleRecord{ID: id, EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: threshold.Milliseconds(), Condition: cond}
}

// wantDuration checks that alerts is exactly one duration alert of rule for
// run (started at t0 by its started event), with the given threshold and
// elapsed time.
func wantDuration(tb testing.TB, step string, alerts []alert, rule, run string, threshold, elapsed time.Duration) {
	tb.Helper()
	if len(alerts) != 1 {
		tb.Fatalf("%s: %d alerts %v, want one duration alert of %s for %s", step, len(alerts), ruleIDs(alerts), rule, run)
	}
	a, p := alerts[0], alerts[0].P
	deadline := t0.Add(threshold)
	switch {
	case a.RuleID != rule || a.AlertID != DurationAlertID("acme", rule, run) || a.EventType != schemas.TypeRunDurationExceeded || !a.CreatedAt.Equal(deadline):
		tb.Fatalf("%s: delivery %+v, want rule %s run %s", step, a.DeliveryRecord, rule, run)
	case p.Data.ThresholdMS == nil || *p.Data.ThresholdMS != threshold.Milliseconds():
		tb.Fatalf("%s: threshold_ms %v, want %d", step, p.Data.ThresholdMS, threshold.Milliseconds())
	case p.Data.Run.DurationMS == nil || *p.Data.Run.DurationMS != elapsed.Milliseconds():
		tb.Fatalf("%s: duration_ms %v, want %d", step, p.Data.Run.DurationMS, elapsed.Milliseconds())
	case p.Data.Run.ID != run || p.Data.Run.Status != "running" || p.Data.Run.StartedAt == nil || !p.Data.Run.StartedAt.Equal(t0) || p.Data.Run.FinishedAt != nil:
		tb.Fatalf("%s: run %+v", step, p.Data.Run)
	case !p.Timestamp.Equal(deadline) || p.Data.Event.ID != "ev_start_"+run || p.Data.Event.Type != schemas.TypeRunDurationExceeded || !p.Data.Event.OccurredAt.Equal(deadline):
		tb.Fatalf("%s: timestamp %v event %+v, want the deadline %v and the start event", step, p.Timestamp, p.Data.Event, deadline)
	case p.Data.Workflow != (schemas.Workflow{ID: "wf_1", Name: "nightly-etl"}) || p.Data.Error != nil:
		tb.Fatalf("%s: workflow %+v error %+v", step, p.Data.Workflow, p.Data.Error)
	}
}

func TestDurationWindows(t *testing.T) {
	t.Parallel()
	const fiveMin = 5 * time.Minute
	cases := []struct {
		name  string
		rules []schemas.RuleRecord
		run   func(t *testing.T, b *bundle)
		fired uint64 // Stats.DurationFired at the end
	}{
		{
			name:  "lagging partition fires when another run's event reaches the deadline, once",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0, withLabels("env", "prod"))))
				none(t, "lagging tick, clock far ahead", b.tick(t, t0.Add(time.Hour), false))
				none(t, "event just before the deadline", b.event(t, started(t, "run_2", t0.Add(fiveMin-time.Millisecond))))
				out := b.eng.Event(part, started(t, "run_3", t0.Add(fiveMin)))
				alerts := check(t, out)
				wantDuration(t, "event at the deadline", alerts, "slow", "run_1", fiveMin, fiveMin)
				if got := alerts[0].P.Data.Labels; got["env"] != "prod" {
					t.Fatalf("labels %v, want those of the start event", got)
				}
				if st, _ := lastState(out, "acme/run_1"); st.Value == nil || !slices.Equal(st.Value.Fired, []string{"slow"}) {
					t.Fatalf("run_1 state %+v, want fired [slow]", st.Value)
				}
				none(t, "second lagging tick", b.tick(t, t0.Add(2*time.Hour), false))
				none(t, "later event", b.event(t, succeeded(t, "run_3", t0.Add(6*time.Minute))))
			},
			fired: 1,
		},
		{
			name:  "caught-up partition fires on the wall clock",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0)))
				none(t, "another tenant's run", b.event(t, started(t, "run_9", t0, withTenant("globex"))))
				none(t, "tick before the deadline", b.tick(t, t0.Add(fiveMin-time.Millisecond), true))
				wantDuration(t, "tick at the deadline", b.tick(t, t0.Add(fiveMin), true), "slow", "run_1", fiveMin, fiveMin)
				none(t, "tick after", b.tick(t, t0.Add(6*time.Minute), true))
				if wm := b.eng.Watermark(part); !wm.Equal(t0.Add(6 * time.Minute)) {
					t.Fatalf("watermark %v, want the wall clock", wm)
				}
			},
			fired: 1,
		},
		{
			name:  "lagging partition does not use the wall clock",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0)))
				none(t, "lagging tick two days later", b.tick(t, t0.Add(48*time.Hour), false))
				if wm := b.eng.Watermark(part); !wm.Equal(t0) || b.eng.Runs(part) != 1 {
					t.Fatalf("watermark %v runs %d, want t0 and 1", wm, b.eng.Runs(part))
				}
				// Once caught up, the wall clock counts; the payload has the
				// elapsed time at the watermark, not the threshold.
				wantDuration(t, "caught-up tick", b.tick(t, t0.Add(10*time.Minute), true), "slow", "run_1", fiveMin, 10*time.Minute)
			},
			fired: 1,
		},
		{
			name:  "terminal event before the deadline: never fires",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0)))
				none(t, "succeeded", b.event(t, succeeded(t, "run_1", t0.Add(4*time.Minute), withStartedAt(t0))))
				none(t, "event at the deadline", b.event(t, started(t, "run_2", t0.Add(fiveMin))))
				none(t, "caught-up tick later", b.tick(t, t0.Add(fiveMin+4*time.Minute), true))
			},
		},
		{
			name:  "terminal event before its start (out of order): never fires, run finished",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "failed", b.event(t, failed(t, "run_1", t0.Add(4*time.Minute))))
				out := b.eng.Event(part, started(t, "run_1", t0))
				none(t, "late start", check(t, out))
				st, _ := lastState(out, "acme/run_1")
				if st.Value == nil || st.Value.FinishedAt == nil || !st.Value.FinishedAt.Equal(t0.Add(4*time.Minute)) ||
					st.Value.StartEventID != "ev_start_run_1" || !slices.Equal(st.Value.Seen, []string{schemas.TypeRunFailed, schemas.TypeRunStarted}) {
					t.Fatalf("state %+v, want finished at t0+4m with both events seen", st.Value)
				}
				none(t, "caught-up tick after the deadline", b.tick(t, t0.Add(10*time.Minute), true))
				if b.eng.Runs(part) != 1 {
					t.Fatal("the finished run was dropped before its grace period")
				}
			},
		},
		{
			name:  "terminal with started_at before its start event: never fires",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "failed", b.event(t, failed(t, "run_1", t0.Add(4*time.Minute), withStartedAt(t0))))
				none(t, "late start", b.event(t, started(t, "run_1", t0)))
				none(t, "caught-up tick after the deadline", b.tick(t, t0.Add(10*time.Minute), true))
			},
		},
		{
			name: "rule created while runs are in flight applies to them",
			run: func(t *testing.T, b *bundle) {
				none(t, "start 1", b.event(t, started(t, "run_1", t0)))
				none(t, "start 2", b.event(t, started(t, "run_2", t0.Add(time.Minute))))
				none(t, "tick without rules", b.tick(t, t0.Add(2*time.Minute), true))
				b.rules.put(t, slowRule("slow", fiveMin, ""))
				wantDuration(t, "run_1's deadline", b.tick(t, t0.Add(fiveMin), true), "slow", "run_1", fiveMin, fiveMin)
				alerts := b.tick(t, t0.Add(6*time.Minute), true)
				if len(alerts) != 1 || alerts[0].AlertID != DurationAlertID("acme", "slow", "run_2") {
					t.Fatalf("run_2's deadline: %v, want run_2's alert", ruleIDs(alerts))
				}
			},
			fired: 2,
		},
		{
			name:  "threshold raised: fires at the new deadline only",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0)))
				none(t, "tick", b.tick(t, t0.Add(time.Minute), true))
				b.rules.put(t, slowRule("slow", 10*time.Minute, ""))
				none(t, "old deadline", b.tick(t, t0.Add(fiveMin), true))
				none(t, "just before the new deadline", b.tick(t, t0.Add(10*time.Minute-time.Millisecond), true))
				wantDuration(t, "new deadline", b.tick(t, t0.Add(10*time.Minute), true), "slow", "run_1", 10*time.Minute, 10*time.Minute)
				none(t, "later", b.tick(t, t0.Add(20*time.Minute), true))
			},
			fired: 1,
		},
		{
			name:  "threshold lowered: fires at the new deadline only",
			rules: []schemas.RuleRecord{slowRule("slow", 10*time.Minute, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0)))
				none(t, "tick", b.tick(t, t0.Add(time.Minute), true))
				b.rules.put(t, slowRule("slow", fiveMin, ""))
				wantDuration(t, "new deadline", b.tick(t, t0.Add(fiveMin), true), "slow", "run_1", fiveMin, fiveMin)
				none(t, "old deadline", b.tick(t, t0.Add(10*time.Minute), true))
			},
			fired: 1,
		},
		{
			name:  "deleted rule does not fire",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0)))
				none(t, "tick", b.tick(t, t0.Add(time.Minute), true))
				b.rules.remove("acme", "slow")
				none(t, "past the deadline", b.tick(t, t0.Add(10*time.Minute), true))
			},
		},
		{
			name:  "condition sees the elapsed duration and the start event's labels",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, `labels.env == "prod" && run.duration_ms == 420000 && run.status == "running" && workflow.name == "nightly-etl"`)},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0, withLabels("env", "prod"))))
				wantDuration(t, "first tick past the deadline", b.tick(t, t0.Add(7*time.Minute), true), "slow", "run_1", fiveMin, 7*time.Minute)
			},
			fired: 1,
		},
		{
			name: "condition false: no alert, decided once",
			rules: []schemas.RuleRecord{
				slowRule("over", fiveMin, `run.duration_ms > 300000`),
				slowRule("staging", fiveMin, `labels.env == "staging"`),
			},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0, withLabels("env", "prod"))))
				out := b.eng.Tick(part, true) // clock at t0: nothing due
				none(t, "tick at start", check(t, out))
				b.clock.now = t0.Add(fiveMin)
				out = b.eng.Tick(part, true)
				none(t, "deadline, elapsed exactly the threshold", check(t, out))
				if st, _ := lastState(out, "acme/run_1"); st.Value == nil || len(st.Value.Fired) != 2 {
					t.Fatalf("state %+v, want both rules decided", st.Value)
				}
				none(t, "later", b.tick(t, t0.Add(time.Hour), true))
			},
		},
		{
			name:  "condition failing at run time is counted",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, `int(labels.shard) > 1`)},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0, withLabels("shard", "eu"))))
				none(t, "deadline", b.tick(t, t0.Add(fiveMin), true))
				if n := b.eng.Stats.ConditionErrors.Load(); n != 1 {
					t.Fatalf("ConditionErrors = %d, want 1", n)
				}
			},
		},
		{
			name:  "inactive endpoint gets no duration alert",
			rules: []schemas.RuleRecord{{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 300_000, WebhookEndpointID: "ep_off"}},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0)))
				none(t, "deadline", b.tick(t, t0.Add(fiveMin), true))
			},
		},
		{
			name:  "two rules fire at their own deadlines",
			rules: []schemas.RuleRecord{slowRule("slow5", fiveMin, ""), slowRule("slow10", 10*time.Minute, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "start", b.event(t, started(t, "run_1", t0)))
				wantDuration(t, "5m", b.tick(t, t0.Add(fiveMin), true), "slow5", "run_1", fiveMin, fiveMin)
				wantDuration(t, "10m", b.tick(t, t0.Add(10*time.Minute), true), "slow10", "run_1", 10*time.Minute, 10*time.Minute)
			},
			fired: 2,
		},
		{
			name:  "started_at of the event, not its time, starts the window",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "start reported late", b.event(t, started(t, "run_1", t0.Add(time.Minute), withStartedAt(t0))))
				wantDuration(t, "deadline from started_at", b.tick(t, t0.Add(fiveMin), true), "slow", "run_1", fiveMin, fiveMin)
			},
			fired: 1,
		},
		{
			name:  "late start whose deadline already passed fires at once",
			rules: []schemas.RuleRecord{slowRule("slow", fiveMin, "")},
			run: func(t *testing.T, b *bundle) {
				none(t, "other run moves the watermark", b.event(t, started(t, "run_2", t0.Add(8*time.Minute))))
				wantDuration(t, "late start", b.event(t, started(t, "run_1", t0)), "slow", "run_1", fiveMin, 8*time.Minute)
			},
			fired: 1,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			for _, r := range c.rules {
				b.rules.put(t, r)
			}
			c.run(t, b)
			if got := b.eng.Stats.DurationFired.Load(); got != c.fired {
				t.Fatalf("DurationFired = %d, want %d", got, c.fired)
			}
		})
	}
}

func TestTombstones(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, b *bundle) Output // returns the output that must tombstone acme/run_1
	}{
		{
			name: "finished run, once an event passes finished+grace",
			run: func(t *testing.T, b *bundle) Output {
				none(t, "start", b.event(t, started(t, "run_1", t0)))
				none(t, "finish", b.event(t, succeeded(t, "run_1", t0.Add(time.Minute))))
				out := b.eng.Event(part, started(t, "run_2", t0.Add(time.Minute+grace-time.Millisecond)))
				if _, ok := lastState(out, "acme/run_1"); ok || b.eng.Runs(part) != 2 {
					t.Fatalf("run_1 dropped before its grace period ended: %+v", out.States)
				}
				return b.eng.Event(part, started(t, "run_3", t0.Add(time.Minute+grace)))
			},
		},
		{
			name: "finished run, on a caught-up tick",
			run: func(t *testing.T, b *bundle) Output {
				none(t, "finish", b.event(t, succeeded(t, "run_1", t0)))
				b.clock.now = t0.Add(grace - time.Millisecond)
				if out := b.eng.Tick(part, true); len(out.States) != 0 {
					t.Fatalf("tombstoned early: %+v", out.States)
				}
				b.clock.now = t0.Add(grace)
				return b.eng.Tick(part, true)
			},
		},
		{
			name: "grace counts from the terminal event when finished_at is earlier",
			run: func(t *testing.T, b *bundle) Output {
				none(t, "finish reported late", b.event(t, succeeded(t, "run_1", t0.Add(5*time.Minute), withFinishedAt(t0.Add(time.Minute)))))
				b.clock.now = t0.Add(5*time.Minute + grace - time.Millisecond)
				if out := b.eng.Tick(part, true); len(out.States) != 0 {
					t.Fatalf("tombstoned early: %+v", out.States)
				}
				b.clock.now = t0.Add(5*time.Minute + grace)
				return b.eng.Tick(part, true)
			},
		},
		{
			name: "running run older than MaxRunAge",
			run: func(t *testing.T, b *bundle) Output {
				none(t, "start", b.event(t, started(t, "run_1", t0)))
				b.clock.now = t0.Add(maxRunAge - time.Millisecond)
				if out := b.eng.Tick(part, true); len(out.States) != 0 {
					t.Fatalf("tombstoned early: %+v", out.States)
				}
				b.clock.now = t0.Add(maxRunAge)
				return b.eng.Tick(part, true)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.rules.put(t, schemas.RuleRecord{ID: "on_fail", EventType: schemas.TypeRunFailed})
			out := c.run(t, b)
			check(t, out)
			st, ok := lastState(out, "acme/run_1")
			if !ok || st.Value != nil {
				t.Fatalf("state changes %+v, want a tombstone of acme/run_1", out.States)
			}
			if n := b.eng.Stats.Tombstones.Load(); n != 1 {
				t.Fatalf("Tombstones = %d, want 1", n)
			}
			for _, s := range out.States {
				if s.Value == nil && s.Key != "acme/run_1" {
					t.Fatalf("unexpected tombstone of %s", s.Key)
				}
			}
			// Its running-run expiry, if any, is stale now: no second tombstone.
			b.clock.now = t0.Add(2 * maxRunAge)
			if st, ok := lastState(b.eng.Tick(part, true), "acme/run_1"); ok {
				t.Fatalf("second tombstone: %+v", st)
			}
			// Gone from memory: the same terminal event is new again.
			before := b.eng.Stats.Duplicates.Load()
			b.eng.Event(part, failed(t, "run_1", b.eng.Watermark(part)))
			if b.eng.Stats.Duplicates.Load() != before {
				t.Fatal("a tombstoned run still suppresses duplicates")
			}
		})
	}
}

// Without Grace and MaxRunAge, New keeps finished runs 10 minutes and
// running ones 7 days.
func TestDefaults(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: t0}
	eng := New(Config{Clock: clock}, newFakeRules(), fakeEndpoints{})
	eng.Event(part, succeeded(t, "done", t0))
	eng.Event(part, started(t, "running", t0))
	steps := []struct {
		at   time.Duration
		runs int
	}{
		{10*time.Minute - time.Millisecond, 2},
		{10 * time.Minute, 1},
		{7*24*time.Hour - time.Millisecond, 1},
		{7 * 24 * time.Hour, 0},
	}
	for _, s := range steps {
		clock.now = t0.Add(s.at)
		eng.Tick(part, true)
		if got := eng.Runs(part); got != s.runs {
			t.Fatalf("at t0+%v: %d runs, want %d", s.at, got, s.runs)
		}
	}
}

// The rule index is written by another goroutine: a rule may change after
// the engine re-armed its timers but before a timer fires. Such a timer must
// not fire with the old threshold.
func TestRuleChangedUnderATimer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(t *testing.T, r *fakeRules)
	}{
		{"threshold changed", func(t *testing.T, r *fakeRules) { r.put(t, slowRule("slow", 10*time.Minute, "")) }},
		{"rule deleted", func(_ *testing.T, r *fakeRules) { r.remove("acme", "slow") }},
		{"rule now watches another type", func(t *testing.T, r *fakeRules) {
			r.put(t, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunFailed, DurationThresholdMS: 300_000})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.rules.put(t, slowRule("slow", 5*time.Minute, ""))
			none(t, "start", b.event(t, started(t, "run_1", t0)))
			v := b.rules.version
			c.change(t, b.rules)
			b.rules.version = v // the engine has not seen the change yet
			none(t, "old deadline", b.tick(t, t0.Add(5*time.Minute), true))
		})
	}
}

// Each finished run used to leave its running-run expiry entry (started_at +
// MaxRunAge) in the heap long after its state was dropped: memory grew with
// every run for MaxRunAge. The heap must stay proportional to the runs held.
func TestExpiriesStayBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 5000
	for i := range n {
		at := t0.Add(time.Duration(i) * 2 * time.Second)
		run := "run_" + strconv.Itoa(i)
		b.eng.Event(part, rawEvent(schemas.TypeRunStarted, "s"+run, run, at))
		b.eng.Event(part, rawEvent(schemas.TypeRunSucceeded, "f"+run, run, at.Add(time.Second)))
		pt := b.eng.parts[part]
		// One entry per run, the slack, and the runs the call tombstoned
		// after compacting.
		if limit := 2*len(pt.runs) + compactSlack + 2; len(pt.expiries) > limit {
			t.Fatalf("after %d runs: %d expiry entries for %d runs (limit %d)", i+1, len(pt.expiries), len(pt.runs), limit)
		}
	}
	if runs := b.eng.Runs(part); runs > int(grace/(2*time.Second))+2 {
		t.Fatalf("%d runs held, want only those within the grace period", runs)
	}
	if n := b.eng.Stats.Tombstones.Load(); n < 4000 {
		t.Fatalf("Tombstones = %d, want the runs past their grace period", n)
	}
}

// A run that finishes after its deadline ran too long: its duration alert
// fires (before the terminal event is applied), whether or not anything else
// moved the watermark first.
func TestTerminalAfterDeadlineStillAlerts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.rules.put(t, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 60_000})
	if got := check(t, b.eng.Event(1, started(t, "run_1", t0))); len(got) != 0 {
		t.Fatalf("start alerted: %v", got)
	}
	got := check(t, b.eng.Event(1, failed(t, "run_1", t0.Add(90*time.Second))))
	if len(got) != 1 || got[0].AlertID != DurationAlertID("acme", "slow", "run_1") {
		t.Fatalf("alerts %v, want the duration alert of run_1", got)
	}
}

// One event stamped far in the future moves the watermark no further than
// the wall clock plus MaxClockSkew.
func TestFutureEventIsCapped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.eng.cfg.MaxClockSkew = time.Minute
	b.rules.put(t, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 10 * 60_000})
	check(t, b.eng.Event(1, started(t, "run_1", t0)))
	if got := check(t, b.eng.Event(1, started(t, "run_2", t0.Add(24*time.Hour)))); len(got) != 0 {
		t.Fatalf("a future-stamped event fired %v", got)
	}
	if wm := b.eng.Watermark(1); !wm.Equal(t0.Add(time.Minute)) {
		t.Fatalf("watermark %v, want capped at %v", wm, t0.Add(time.Minute))
	}
}

// An event stamped far in the future (a wrong clock) is taken as stamped at
// the wall clock plus MaxClockSkew everywhere: after a restore the
// partition's watermark is not in the future (it used to be: another
// tenant's runs then all fired at once), its run state expires on time,
// and a cooldown is not held for a day.
func TestFutureEventTimesAreCappedEverywhere(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.eng.cfg.MaxClockSkew = time.Minute
	b.rules.put(t, schemas.RuleRecord{TenantID: "globex", ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 10 * 60_000})
	b.rules.put(t, schemas.RuleRecord{ID: "quiet", EventType: schemas.TypeRunFailed, CooldownMS: 30_000})
	var states []schemas.RunState
	keep := func(out Output) []alert {
		for _, s := range out.States {
			if s.Value != nil {
				states = append(states, *s.Value)
			}
		}
		return check(t, out)
	}
	keep(b.eng.Event(1, started(t, "run_g", t0, withTenant("globex"))))
	future := t0.Add(24 * time.Hour)
	if got := keep(b.eng.Event(1, failed(t, "run_f", future, withStartedAt(future), withFinishedAt(future)))); len(got) != 1 {
		t.Fatalf("the future-stamped failure fired %v, want one alert", got)
	}
	// Another failure a few minutes later on the wall clock is past the
	// cooldown of the capped time, not inside the cooldown of the raw one.
	b.clock.now = t0.Add(5 * time.Minute)
	if got := keep(b.eng.Event(1, failed(t, "run_2", b.clock.now))); len(got) != 1 {
		t.Fatalf("a failure after the cooldown fired %v, want one alert", got)
	}
	b.eng.Revoke(1)
	b.eng.Assign(1, states)
	if wm, limit := b.eng.Watermark(1), b.clock.now.Add(time.Minute); wm.After(limit) {
		t.Fatalf("restored watermark %v, want at most %v", wm, limit)
	}
	if got := check(t, b.eng.Tick(1, false)); len(got) != 0 {
		t.Fatalf("after the restore, %v fired before their deadline", got)
	}
	// The run state of the future-stamped run expires after the grace period
	// of its capped finish, not a day later.
	b.clock.now = t0.Add(time.Minute + grace + time.Second)
	check(t, b.eng.Tick(1, true))
	if _, ok := b.eng.parts[1].runs[runKey("acme", "run_f")]; ok {
		t.Fatal("the future-stamped run's state outlived its grace period")
	}
}

// A time before 1970 (the schema allows year 0 with an offset, which JSON
// cannot even write in UTC) is taken as 1970: the alert and the run state
// still encode.
func TestAncientEventTimeIsRaised(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.rules.put(t, schemas.RuleRecord{ID: "r1", EventType: schemas.TypeRunFailed})
	ancient := time.Date(0, 1, 1, 0, 0, 0, 0, time.FixedZone("", 23*3600+59*60))
	out := b.eng.Event(0, failed(t, "run_1", ancient, withStartedAt(ancient)))
	alerts := check(t, out)
	if len(alerts) != 1 || !alerts[0].CreatedAt.Equal(minEventTime) {
		t.Fatalf("alerts %+v, want one created at %v", alerts, minEventTime)
	}
	st, ok := lastState(out, "acme/run_1")
	if !ok || st.Value == nil || !st.Value.StartedAt.Equal(minEventTime) {
		t.Fatalf("run state %+v, want started at %v", st.Value, minEventTime)
	}
	if _, err := json.Marshal(st.Value); err != nil {
		t.Fatalf("run state does not encode: %v", err)
	}
}

// Runs that finish before their deadlines do not leave their timers behind
// for hours: the heap is rebuilt once they are half of it. (20,000 finished
// runs with five duration rules used to hold 100,000 timers.)
func TestFinishedRunsDoNotPileUpTimers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 5 {
		b.rules.put(t, schemas.RuleRecord{ID: fmt.Sprintf("slow%d", i), EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: int64(i+1) * 3_600_000})
	}
	const runs = 5_000
	for i := range runs {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		run := fmt.Sprintf("run_%d", i)
		b.eng.Event(0, rawEvent(schemas.TypeRunStarted, run+"_s", run, at))
		b.eng.Event(0, rawEvent(schemas.TypeRunSucceeded, run+"_f", run, at.Add(time.Second)))
		b.eng.Commit()
	}
	if n := len(b.eng.parts[0].timers); n > 2*compactSlack+5*10 {
		t.Fatalf("%d timers held after %d runs finished, want at most %d", n, runs, 2*compactSlack+50)
	}
	// Timers of runs still running survive the rebuilds and fire.
	check(t, b.eng.Event(0, started(t, "still_running", t0.Add(time.Minute))))
	for i := range 1500 {
		at := t0.Add(2*time.Minute + time.Duration(i)*time.Millisecond)
		run := fmt.Sprintf("late_%d", i)
		b.eng.Event(0, rawEvent(schemas.TypeRunStarted, run+"_s", run, at))
		b.eng.Event(0, rawEvent(schemas.TypeRunSucceeded, run+"_f", run, at.Add(time.Second)))
		b.eng.Commit()
	}
	b.clock.now = t0.Add(time.Minute + time.Hour + time.Second)
	got := check(t, b.eng.Tick(0, true))
	if len(got) != 1 || got[0].RuleID != "slow0" {
		t.Fatalf("after an hour: %+v, want slow0's alert for still_running", got)
	}
}
