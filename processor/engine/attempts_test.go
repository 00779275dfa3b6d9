package engine

import (
	"slices"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

func withAttempt(n int) evOpt { return func(e *schemas.WorkflowEvent) { e.Data.Run.Attempt = n } }

// attemptsSetup is an engine with a rule on failures and a duration rule of
// one minute, for tenant acme.
func attemptsSetup(t *testing.T) *bundle {
	b := setup(t)
	b.rules.put(t, schemas.RuleRecord{ID: "on_fail", EventType: schemas.TypeRunFailed})
	b.rules.put(t, schemas.RuleRecord{ID: "slow", EventType: schemas.TypeRunDurationExceeded, DurationThresholdMS: 60_000})
	return b
}

// feed passes events to the engine, ticking the clock to each event's time
// first, and returns the ids of the alerts and the last run state.
func feed(t *testing.T, b *bundle, evs ...*schemas.WorkflowEvent) (ids []string, last *schemas.RunState) {
	t.Helper()
	for _, ev := range evs {
		var outs []Output
		if ev.Time.After(b.clock.now) {
			b.clock.now = ev.Time
			outs = append(outs, b.eng.Tick(0, true))
		}
		outs = append(outs, b.eng.Event(0, ev))
		for _, out := range outs {
			for _, a := range check(t, out) {
				ids = append(ids, a.AlertID)
			}
			if st, ok := lastState(out, "acme/run_1"); ok {
				last = st.Value
			}
		}
	}
	return ids, last
}

// A run retried under the same run id that fails again alerts again, with
// another alert id; exact redeliveries of either failure do not.
func TestRetriedRunFailingTwiceAlertsTwice(t *testing.T) {
	t.Parallel()
	b := attemptsSetup(t)
	fail1 := failed(t, "run_1", t0)
	fail2 := newEvent(t, schemas.TypeRunFailed, "ev_fail_run_1_a2", "run_1", t0.Add(30*time.Second), withAttempt(2))
	ids, last := feed(t, b,
		fail1,
		newEvent(t, schemas.TypeRunStarted, "ev_start_run_1_a2", "run_1", t0.Add(time.Second), withAttempt(2)),
		fail2,
	)
	want := []string{AlertID("acme", "on_fail", fail1.ID), AlertID("acme", "on_fail", fail2.ID)}
	if !slices.Equal(ids, want) || want[0] == want[1] {
		t.Fatalf("alerts %v, want %v (two distinct ids)", ids, want)
	}
	if last == nil || last.Attempt != 2 || !slices.Equal(last.Seen, []string{schemas.TypeRunStarted, schemas.TypeRunFailed}) {
		t.Fatalf("run state %+v, want attempt 2 with started and failed seen", last)
	}
	if n := b.eng.Stats.Duplicates.Load(); n != 0 {
		t.Fatalf("Duplicates = %d, want 0", n)
	}
}

// An exact redelivery — the same event again, or the same run, type and
// attempt under a new event id — alerts once, also when it comes after the
// run was retried.
func TestExactRedeliveryAlertsOnce(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		events func(t *testing.T) []*schemas.WorkflowEvent
		alerts int
		dups   uint64
	}{
		{"same event id", func(t *testing.T) []*schemas.WorkflowEvent {
			return []*schemas.WorkflowEvent{failed(t, "run_1", t0, withAttempt(3)), failed(t, "run_1", t0, withAttempt(3))}
		}, 1, 1},
		{"same run, type and attempt, new id", func(t *testing.T) []*schemas.WorkflowEvent {
			return []*schemas.WorkflowEvent{failed(t, "run_1", t0, withAttempt(2)),
				newEvent(t, schemas.TypeRunFailed, "ev_other", "run_1", t0.Add(time.Second), withAttempt(2))}
		}, 1, 1},
		{"first attempt's failure redelivered after the retry failed", func(t *testing.T) []*schemas.WorkflowEvent {
			return []*schemas.WorkflowEvent{failed(t, "run_1", t0),
				newEvent(t, schemas.TypeRunFailed, "ev_fail_a2", "run_1", t0.Add(time.Minute), withAttempt(2)),
				failed(t, "run_1", t0)}
		}, 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := attemptsSetup(t)
			ids, _ := feed(t, b, c.events(t)...)
			if len(ids) != c.alerts {
				t.Fatalf("alerts %v, want %d", ids, c.alerts)
			}
			if n := b.eng.Stats.Duplicates.Load(); n != c.dups {
				t.Fatalf("Duplicates = %d, want %d", n, c.dups)
			}
		})
	}
}

// A second attempt that runs too long gets its own duration alert, with an
// id other than the first attempt's; the first attempt's id is the one
// receivers always saw.
func TestRetriedRunGetsNewDurationTimer(t *testing.T) {
	t.Parallel()
	b := attemptsSetup(t)
	ids, _ := feed(t, b,
		started(t, "run_1", t0),
		failed(t, "run_1", t0.Add(2*time.Minute)), // the first attempt ran too long, then failed
		newEvent(t, schemas.TypeRunStarted, "ev_start_a2", "run_1", t0.Add(3*time.Minute), withAttempt(2)),
		newEvent(t, schemas.TypeRunSucceeded, "ev_ok_other", "run_other", t0.Add(5*time.Minute)), // time passes
	)
	first := DurationAlertID("acme", "slow", "run_1")
	second := DurationAttemptAlertID("acme", "slow", "run_1", 2)
	want := []string{first, AlertID("acme", "on_fail", "ev_fail_run_1"), second}
	if !slices.Equal(ids, want) || first == second || DurationAttemptAlertID("acme", "slow", "run_1", 1) != first {
		t.Fatalf("alerts %v, want %v (the attempts' duration alerts distinct)", ids, want)
	}
}

// Run states restored after a restart keep deduplicating exactly: a
// redelivery of the current attempt is dropped and a later attempt alerts,
// also from a state written before attempts were told apart (its seen list
// then covered every attempt).
func TestAttemptsAcrossRestore(t *testing.T) {
	t.Parallel()
	b := attemptsSetup(t)
	fail2 := newEvent(t, schemas.TypeRunFailed, "ev_fail_a2", "run_1", t0.Add(time.Minute), withAttempt(2))
	_, last := feed(t, b, failed(t, "run_1", t0), fail2)
	if last == nil {
		t.Fatal("no run state written")
	}
	legacy := schemas.RunState{TenantID: "acme", RunID: "run_1", Workflow: schemas.Workflow{ID: "wf_1", Name: "nightly-etl"},
		Attempt: 1, Seen: []string{schemas.TypeRunStarted, schemas.TypeRunFailed}, LastEventAt: t0}
	for _, c := range []struct {
		name   string
		state  schemas.RunState
		events []*schemas.WorkflowEvent
		alerts int
	}{
		{"redelivery after restore", *last, []*schemas.WorkflowEvent{fail2}, 0},
		{"next attempt after restore", *last, []*schemas.WorkflowEvent{
			newEvent(t, schemas.TypeRunFailed, "ev_fail_a3", "run_1", t0.Add(2*time.Minute), withAttempt(3))}, 1},
		{"legacy state, redelivery", legacy, []*schemas.WorkflowEvent{failed(t, "run_1", t0)}, 0},
		{"legacy state, retry", legacy, []*schemas.WorkflowEvent{fail2}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			nb := attemptsSetup(t)
			nb.eng.Assign(0, []schemas.RunState{c.state})
			ids, _ := feed(t, nb, c.events...)
			if len(ids) != c.alerts {
				t.Fatalf("alerts %v, want %d", ids, c.alerts)
			}
		})
	}
}
