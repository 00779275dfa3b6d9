package condition

import (
	"errors"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/schemas"
)

// nativeConds are conditions of the native shape (native.go): each must
// compile to a Go predicate.
var nativeConds = []string{
	`true`, `false`, `!true`, `not false`,
	`labels.env == "prod"`, `labels.env != "prod"`, `labels["env"] == "prod"`, `labels.missing == ""`, `labels.missing != ""`,
	`labels[""] == ""`, `labels.env < "q"`, `labels.env > "prod"`, `labels.env <= "prod"`, `labels.env >= "prof"`,
	`"prod" == labels.env`, `"q" > labels.env`, `"prod" <= labels.env`, `"a" >= labels.env`, `"prod" != labels.env`,
	`labels.env == "prod" && run.attempt >= 1`, `labels.env == "prod" and run.attempt >= 3`,
	`labels.env == "dev" || run.attempt == 2`, `labels.env == "dev" or run.attempt != 2`,
	`!(labels.env == "prod")`, `not (run.attempt > 1)`, `!(labels.env == "prod" || false) && true`,
	`error.code in ["TIMEOUT", "OOM"]`, `error.code in ["NODE_ERRORED"]`, `error.code not in ["TIMEOUT", "OOM"]`,
	`error.code in ["A", "B", "C", "D", "E", "F", "NODE_ERRORED"]`, `error.code in ["A", "B", "C", "D", "E", "F"]`,
	`error.code in ["", "x"]`, `labels.long in ["ab", "x"]`, `labels.env in ["prod", "prod"]`,
	`run.attempt in [1, 2]`, `run.attempt in [3, -1]`, `run.duration_ms in [84211, 0]`, `run.duration_ms not in [84211]`,
	`workflow.name startsWith "nightly"`, `workflow.name startsWith ""`, `workflow.name endsWith "etl"`, `workflow.name endsWith "nightly"`,
	`workflow.name contains "ly-e"`, `workflow.name contains ""`, `workflow.name not contains "x"`, `workflow.name not startsWith "n"`,
	`"nightly-etl-prod" startsWith workflow.name`, `"x-nightly-etl" endsWith workflow.name`, `"a nightly-etl b" contains workflow.name`,
	`"" contains labels.missing`, `error.message contains "abc"`, `labels.long contains "ba"`, `labels.spaces startsWith " "`,
	`run.duration_ms > 1000`, `run.duration_ms > -1`, `run.duration_ms < 84212`, `run.duration_ms <= 84211`, `run.duration_ms >= 84212`,
	`run.duration_ms == 84211`, `run.duration_ms != 0`, `run.attempt == 0`, `-1 < run.attempt`, `1000 < run.duration_ms`, `2 >= run.attempt`,
	`run.attempt >= 1_000`, `run.attempt > -9223372036854775807`,
	`event.id == "ev1"`, `event.type == "workflow.run.failed"`, `event.source == "engine"`, `workflow.id == "wf_9"`,
	`run.id == "run_1"`, `run.status == "failed"`, `error.message == ""`, `error.node == "load"`,
	`labels.env == "prod" && (error.code in ["TIMEOUT", "NODE_ERRORED"] || workflow.name startsWith "nightly") && !(run.attempt > 5)`,
	`labels.long contains "x" && labels.other contains "x"`, // together over the scan budget on longEvent: the VM decides
	`labels.long in ["a"] || labels.other in ["b"] || labels.spaces in ["c"] || error.message in ["d"] || labels.long contains "z" || labels.other contains "z" || labels.spaces contains "z"`,
	`"ü" < labels.env`, `labels.env == "é"`,
}

// boundaryConds are every comparison of a field with constants below, at
// and above its value in event(), both ways round.
func boundaryConds() []string {
	var out []string
	for _, op := range []string{"==", "!=", "<", ">", "<=", ">="} {
		for _, c := range []string{"1", "2", "3"} {
			out = append(out, "run.attempt "+op+" "+c, c+" "+op+" run.attempt")
		}
		for _, c := range []string{"84210", "84211", "84212"} {
			out = append(out, "run.duration_ms "+op+" "+c, c+" "+op+" run.duration_ms")
		}
		for _, c := range []string{`"pro"`, `"prod"`, `"prodd"`, `"proe"`} {
			out = append(out, "labels.env "+op+" "+c, c+" "+op+" labels.env")
		}
	}
	return out
}

// vmConds are conditions outside the native shape: the VM decides them.
var vmConds = []string{
	`labels.env matches "^p"`, `len(labels.env) > 2`, `run.attempt + 1 > 2`, `labels.env == labels.team`,
	`run.attempt in 1..3`, `"env" in labels`, `labels?.env == "prod"`, `run.duration_ms > 1.5`, `run.attempt == 1.0`,
	`(labels.env == "prod") == true`, `lower(labels.env) == "prod"`, `let x = labels.env; x == "prod"`,
	`any(split(workflow.name, "-"), {# == "etl"})`, `labels.env in []`, `run.attempt == nil`, `error.code in [nil]`,
}

// nativeEnvs are the environments the differential tests decide on: full,
// bare (no error, no labels), long fields (over the scan budget together),
// and edge values.
func nativeEnvs() map[string]Env {
	edge := event()
	edge.Data.Run.Attempt = 0
	dur := int64(-5)
	edge.Data.Run.DurationMS = &dur
	edge.Data.Labels = map[string]string{"env": "é", "": "", "team": "ml"}
	edge.Data.Error = &schemas.ErrorInfo{}
	return map[string]Env{"event": NewEnv(event()), "bare": NewEnv(bareEvent()), "long": NewEnv(longEvent()),
		"big": NewEnv(bigEvent()), "edge": NewEnv(edge), "zero": {}}
}

// vmOnly is p without its native predicate: what the VM decides.
func vmOnly(p *Program) *Program { return &Program{prog: p.prog} }

// sameDecision fails t unless both decisions are the same, errors included.
func sameDecision(t *testing.T, what string, got bool, err error, want bool, wantErr error) {
	t.Helper()
	if got != want || (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("%s: native %v, %v; VM %v, %v", what, got, err, want, wantErr)
	}
	var ee, wantEE *EvalError
	if errors.As(err, &ee) != errors.As(wantErr, &wantEE) || (ee != nil && (ee.Reason != wantEE.Reason || ee.Summary() != wantEE.Summary())) {
		t.Fatalf("%s: native error %#v, VM %#v", what, ee, wantEE)
	}
}

// Every condition of the native shape compiles to a Go predicate that
// decides as the VM does on every environment, errors included (the scan
// budget), through Program.Match and through an Evaluator; conditions of
// any other shape are left to the VM.
func TestNativeMatchesVM(t *testing.T) {
	t.Parallel()
	envs := nativeEnvs()
	ev := NewEvaluator()
	decided := map[bool]int{}
	for _, src := range append(nativeConds, boundaryConds()...) {
		p, err := Compile(src)
		if err != nil {
			t.Fatalf("Compile(%q): %v", src, err)
		}
		if p.native.eval == nil {
			t.Errorf("%q: not compiled to Go", src)
			continue
		}
		for name, env := range envs {
			want, wantErr := vmOnly(p).Match(env)
			got, err := p.Match(env)
			sameDecision(t, src+" on "+name, got, err, want, wantErr)
			decided[want]++
			ev.Reset(env)
			got, err = ev.Match(p)
			sameDecision(t, src+" on "+name+" (evaluator)", got, err, want, wantErr)
		}
	}
	if decided[true] == 0 || decided[false] == 0 {
		t.Fatalf("the cases decide only one way: %v", decided)
	}
	for _, src := range vmConds {
		p, err := Compile(src)
		if err != nil {
			t.Fatalf("Compile(%q): %v", src, err)
		}
		if p.native.eval != nil {
			t.Errorf("%q: compiled to Go, outside the native shape", src)
		}
	}
}

// Over the scan budget, a native condition is decided by the VM, which
// stops it with the budget error it always gave.
func TestNativeOverScanBudgetFails(t *testing.T) {
	t.Parallel()
	// 20 reads of a 64 KiB label: 1.3 M scan units, over MaxScan.
	p, err := Compile(strings.Repeat(`labels.long contains "x" || `, 19) + `labels.long in ["y"]`)
	if err != nil || p.native.eval == nil {
		t.Fatalf("Compile: %v (native %v)", err, p.native.eval != nil)
	}
	_, err = p.Match(NewEnv(longEvent()))
	var ee *EvalError
	if !errors.As(err, &ee) || ee.Reason != ReasonBudget {
		t.Fatalf("Match = %v, want a budget error", err)
	}
}

// A native condition allocates nothing, a label read included.
func TestNativeAllocs(t *testing.T) {
	p, err := Compile(`labels.env == "prod" && run.attempt >= 1 && error.code in ["TIMEOUT", "NODE_ERRORED"]`)
	if err != nil || p.native.eval == nil {
		t.Fatalf("Compile: %v (native %v)", err, p.native.eval != nil)
	}
	ev := NewEvaluator()
	ev.ResetEvent(event())
	got := testing.AllocsPerRun(100, func() {
		if ok, err := ev.Match(p); !ok || err != nil {
			t.Fatalf("Match = %v, %v", ok, err)
		}
	})
	if got != 0 {
		t.Fatalf("%v allocations per Match, want 0", got)
	}
}

// Fuzzed conditions and label values: whenever a condition compiles to Go,
// it decides as the VM does. The seed corpus is the table above.
func FuzzNativeMatchesVM(f *testing.F) {
	for _, s := range nativeConds {
		f.Add(s, "prod", "ml", int64(2), int64(84211))
	}
	for _, s := range vmConds {
		f.Add(s, "", "", int64(0), int64(-1))
	}
	f.Fuzz(func(t *testing.T, src, env, team string, attempt, durationMS int64) {
		if len(env)+len(team) > 4096 {
			return
		}
		p, err := Compile(src)
		if err != nil || p.native.eval == nil {
			return
		}
		ev := event()
		ev.Data.Run.Attempt = int(attempt)
		ev.Data.Run.DurationMS = &durationMS
		ev.Data.Labels = map[string]string{"env": env, "team": team}
		ev.Data.Error.Message = strings.Repeat(team, 3)
		for _, e := range []Env{NewEnv(ev), NewEnv(bareEvent()), NewEnv(longEvent())} {
			want, wantErr := vmOnly(p).Match(e)
			got, err := p.Match(e)
			sameDecision(t, src, got, err, want, wantErr)
		}
	})
}
