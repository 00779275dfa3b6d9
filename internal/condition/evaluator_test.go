package condition

import (
	"errors"
	"testing"

	"github.com/exospherehost/exo-alerts/schemas"
)

// evaluatorCases are conditions of every kind the evaluator must decide as
// Program.Match does: plain, charged (split, +, predicates), failing at
// run time, and over each budget.
func evaluatorCases() []string {
	srcs := []string{"", `workflow.name == "nightly-etl"`, `labels.env == "prod" && run.attempt >= 2`,
		`error.code in ["NODE_ERRORED", "TIMEOUT"]`, `labels.team == "data"`, `run.duration_ms > 60000`,
		`workflow.name + "-" + labels.env == "nightly-etl-prod"`, `any(split(workflow.name, "-"), {# == "etl"})`,
		`int(labels.n) > 1`, `run.attempt % run.attempt == 0`, `len(labels) == 0`, `labels.env in ["prod", "dev"]`}
	srcs = append(srcs, bombs...)
	for _, c := range scanBombs {
		srcs = append(srcs, c.src)
	}
	return srcs
}

// One evaluator, reused across conditions and events (after budget and
// run-time failures too), decides every condition as Program.Match does,
// with the same error.
func TestEvaluatorMatchesProgramMatch(t *testing.T) {
	t.Parallel()
	events := map[string]*schemas.WorkflowEvent{"event": event(), "bare": bareEvent(), "long": longEvent()}
	ev := NewEvaluator()
	for _, src := range evaluatorCases() {
		p, err := Compile(src)
		if err != nil {
			continue // a bomb refused at compile time
		}
		for name, e := range events {
			for _, reuse := range []bool{false, true} {
				want, wantErr := p.Match(NewEnv(e))
				if !reuse {
					ev.ResetEvent(e) // else: the previous condition's environment, already boxed
				}
				got, err := ev.Match(p)
				if got != want || (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
					t.Fatalf("%q on %s (reused env %v): evaluator %v, %v; Program.Match %v, %v", src, name, reuse, got, err, want, wantErr)
				}
				var ee, wantEE *EvalError
				if errors.As(err, &ee) != errors.As(wantErr, &wantEE) || (ee != nil && (ee.Reason != wantEE.Reason || ee.Summary() != wantEE.Summary())) {
					t.Fatalf("%q on %s: evaluator error %#v, Program.Match %#v", src, name, ee, wantEE)
				}
			}
		}
	}
}

// Reset takes an environment as given; nil labels read as none.
func TestEvaluatorReset(t *testing.T) {
	t.Parallel()
	p, err := Compile(`labels.env == "" && run.status == "running" && len(labels) == 0`)
	if err != nil {
		t.Fatal(err)
	}
	ev := NewEvaluator()
	ev.Reset(Env{Run: RunEnv{Status: "running"}})
	if ok, err := ev.Match(p); !ok || err != nil {
		t.Fatalf("Match = %v, %v; want true", ok, err)
	}
	ev.Reset(Env{Run: RunEnv{Status: "running"}, Labels: map[string]string{"env": "prod"}})
	if ok, err := ev.Match(p); ok || err != nil {
		t.Fatalf("Match = %v, %v; want false", ok, err)
	}
	if ev.Env().Labels["env"] != "prod" {
		t.Fatalf("Env() has labels %v", ev.Env().Labels)
	}
}

// The allocations of one evaluation, of the event's first Match or a
// later one: none for fields of the event, one for a label
// read (expr copies a map value out through reflection), one for the
// argument buffer of the first charging function call.
func TestEvaluatorAllocs(t *testing.T) {
	cases := []struct {
		src  string
		max  float64
		note string
	}{
		{`workflow.name == "nightly-etl" && run.attempt >= 2 && run.duration_ms > 1000`, 0, "fields"},
		{`workflow.name startsWith "nightly"`, 0, "startsWith a constant"},
		{`labels.env == "prod" && run.attempt >= 1`, 1, "a label"},
		{`error.code in ["TIMEOUT", "OOM"]`, 1, "a charged read"},
	}
	for _, c := range cases {
		p, err := Compile(c.src)
		if err != nil {
			t.Fatal(err)
		}
		ev := NewEvaluator()
		ev.ResetEvent(event())
		if _, err := ev.Match(p); err != nil { // boxes the environment
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = ev.Match(p) }); n > c.max {
			t.Errorf("%s (%s): %v allocations per Match, want at most %v", c.src, c.note, n, c.max)
		}
		// A new event: its environment is written into the evaluator's
		// box, which allocates nothing.
		e := event()
		if n := testing.AllocsPerRun(100, func() { ev.ResetEvent(e); _, _ = ev.Match(p) }); n > c.max {
			t.Errorf("%s (%s): %v allocations per event, want at most %v", c.src, c.note, n, c.max)
		}
	}
}
