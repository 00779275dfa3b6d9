package condition

import (
	"errors"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// doubling is a condition that uses no event data and doubles a string
// levels times with let bindings: 64 bytes << levels.
func doubling(levels int) string {
	var b strings.Builder
	b.WriteString(`let s0 = "` + strings.Repeat("x", 64) + `"; `)
	for i := 1; i <= levels; i++ {
		b.WriteString("let s" + strconv.Itoa(i) + " = s" + strconv.Itoa(i-1) + " + s" + strconv.Itoa(i-1) + "; ")
	}
	b.WriteString("len(s" + strconv.Itoa(levels) + ") > 0")
	return b.String()
}

// replaceBomb is issue #8's condition: 190 characters, no event data, and
// ~0.8 GiB per evaluation (one level more: the process dies out of memory).
const replaceBomb = `let a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; let b = replace(a, "", a); let c = replace(b, "", b); let d = replace(c, "", c); let e = replace(d, "", d); len(e) > 0`

// bombs are conditions whose evaluation cost is not bounded by their
// length; every one must be refused at compile time or stopped by the
// budget while evaluating.
var bombs = []string{
	replaceBomb,
	`len(repeat(error.message, 100000)) > 0`,
	`len(join(map(1..10000, {error.message}), "")) > 0`,
	`reduce(1..10000, #acc + "xxxxxxxxxxxxxxxx", "") != ""`,
	doubling(24),
	`len(map(1..10000, {upper(error.message)})) > 0`,
	`any(split(error.message, ""), {# == "a" || # == "b" || # == "c" || # == "d" || # == "e"})`,
	`count(1..10000, {# > 0 && # < 5 && # != 3 && # != 7 && # != 9 && # != 11 && # != 13 && # != 15 && # != 17 && # != 19 && # != 21 && # != 23 && # != 25}) > 0`,
	`len(string(map(1..10000, {error.message}))) > 0`,
	`len(toJSON(map(1..10000, {error.message}))) > 0`,
	`filter(1..10000, {# > 0}) == filter(1..10000, {# > 0}) && filter(1..10000, {# > 0}) == filter(1..10000, {# > 0}) && filter(1..10000, {# > 0}) == filter(1..10000, {# > 0}) && filter(1..10000, {# > 0}) == filter(1..10000, {# > 0})`,
	`any([1, 2, 3, 4, 5, 6, 7, 8], {# in 1..10000 && # in 1..9999 && # in 1..9998})`,
}

// bigEvent is a failed run with the longest error message an event may
// carry, so that what a condition does with event data costs the most.
func bigEvent() *schemas.WorkflowEvent {
	ev := event()
	ev.Data.Error.Message = strings.Repeat("abcdefgh ", 65536/9)
	return ev
}

// Issue #8's bomb and its variants are refused at compile time, with the
// position of the refused part.
func TestCompileRefusesBombs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ src, at, msg string }{
		{replaceBomb, "replace(", "replace() is not allowed"},
		{`len(repeat(error.message, 100000)) > 0`, "repeat(", "repeat() is not allowed"},
		{`len(join(map(1..10000, {error.message}), "")) > 0`, "join(", "join() is not allowed"},
		{`reduce(1..10000, #acc + "x", "") != ""`, "reduce(", "reduce() is not allowed"},
		{`len(string(labels)) > 0`, "string(", "string() is not allowed"},
		{`len(toJSON(labels)) > 0`, "toJSON(", "toJSON() is not allowed"},
		{`len($env) > 0`, "$env", "$env is not allowed"},
		{`error.message matches error.code`, "matches", "must be a string constant"},
		{`error.message == "` + strings.Repeat("y", MaxConstString+1) + `"`, `"y`, "at most 1024 bytes"},
		{`{"a": 1}.a == 1`, `{"a"`, "map literal"},
		{"true;\nfalse", "true", "sequence"},
		{`count(1..10000, {# > 0 && # < 5 && # != 3 && # != 7 && # != 9 && # != 11 && # != 13 && # != 15 && # != 17 && # != 19 && # != 21}) > 0`, "count(", "more than the budget"},
		{`run.attempt ** 2 > 4`, "**", "operator ** is not allowed"},
		{`labels.env.foo() == 1`, "foo", "method calls are not allowed"},
	} {
		_, err := Compile(c.src)
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(ce.Message, c.msg) {
			t.Errorf("Compile(%.60q) = %v, want an error saying %q", c.src, err, c.msg)
			continue
		}
		wantLine, wantCol := position(c.src, len([]rune(c.src[:strings.Index(c.src, c.at)])))
		if ce.Line != wantLine || ce.Column != wantCol {
			t.Errorf("Compile(%.60q): error at %d:%d, want %d:%d (%q)", c.src, ce.Line, ce.Column, wantLine, wantCol, c.at)
		}
	}
}

// What real conditions use still compiles and decides as before.
func TestCompileAllowsRealConditions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		src  string
		want bool
	}{
		{`workflow.name startsWith "nightly-" && labels.env in ["prod", "staging"]`, true},
		{`not (error.code in ["TIMEOUT"]) and run.attempt >= 2`, true},
		{`error.code not in ["TIMEOUT"]`, true},
		{`lower(workflow.name) contains "etl" || upper(error.node) == "LOAD"`, true},
		{`trim(" " + workflow.name + " ") endsWith "-etl"`, true},
		{`error.code matches "^NODE_"`, true},
		{`len(labels) == 1 && labels["env"] == "prod"`, true},
		{`any(split(workflow.name, "-"), {# == "etl"})`, true},
		{`count(1..3, {# <= run.attempt}) == 2`, true},
		{`let d = run.duration_ms / 1000; d > 60 && d < 3600`, true},
		{`run.duration_ms > 0 ? labels.env == "prod" : false`, true},
		{`(labels.owner ?? "nobody") == ""`, true},
		{`indexOf(workflow.name, "-") == 7 && hasPrefix(workflow.name, "night")`, true},
		{`workflow.name[0:7] == "nightly"`, true},
		{`int("2") + float("0.5") > abs(-1) && max(run.attempt, 1) == 2`, true},
	} {
		p, err := Compile(c.src)
		if err != nil {
			t.Errorf("Compile(%q): %v", c.src, err)
			continue
		}
		if got, err := p.Match(NewEnv(event())); err != nil || got != c.want {
			t.Errorf("Match(%q) = %v, %v; want %v", c.src, got, err, c.want)
		}
	}
}

// A condition that compiles but goes over its budget on an event is stopped
// while evaluating, with a budget error naming what ran out; the memory it
// allocated stays near the budget.
func TestBudgetStopsEvaluation(t *testing.T) { // not parallel: it measures the heap
	for _, c := range []struct {
		name, src, what string
	}{
		{"doubling a string", doubling(24), "bytes"},
		{"upper in a loop", `len(map(1..10000, {upper(error.message)})) > 0`, "scan units"}, // read before it is built
		{"steps over a split", `any(split(error.message, " "), {# == "a" || # == "b" || # == "c" || # == "d" || # == "e" || # == "f" || # == "g" || # == "h" || # == "i" || # == "j" || # == "k" || # == "l"})`, "steps"},
		{"steps over ranges", `len(filter(1..10000, {# > 0})) + len(filter(1..10000, {# > 1})) + len(filter(1..10000, {# > 2})) + len(filter(1..10000, {# > 3})) > 0`, "steps"},
		{"list elements", `len(map(1..10000, {#})) + len(map(1..10000, {#})) + len(map(1..10000, {#})) + len(map(1..10000, {#})) > 0`, "list elements"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Compile(c.src)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			alloc, _, err := cost(p, NewEnv(bigEvent()))
			var ee *EvalError
			if !errors.As(err, &ee) || ee.Reason != ReasonBudget {
				t.Fatalf("Match err = %v, want a budget error", err)
			}
			if !strings.Contains(ee.Summary(), c.what) || !strings.HasPrefix(err.Error(), "condition: evaluate:") {
				t.Fatalf("error %q / summary %q does not say what ran out (%s)", err, ee.Summary(), c.what)
			}
			if alloc > allocBound {
				t.Fatalf("evaluation allocated %d bytes, more than %d", alloc, allocBound)
			}
		})
	}
}

// A run-time failure is reported without the event's data.
func TestEvalErrorSummaryHasNoEventData(t *testing.T) {
	t.Parallel()
	p, err := Compile(`int(labels.n) > 1`)
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv(bareEvent())
	env.Labels["n"] = "secret-value"
	_, err = p.Match(env)
	var ee *EvalError
	if !errors.As(err, &ee) || ee.Reason != ReasonRuntime {
		t.Fatalf("Match err = %v, want a runtime error", err)
	}
	if s := ee.Summary(); strings.Contains(s, "secret") || !strings.Contains(s, "line 1, column") {
		t.Fatalf("Summary() = %q: leaks event data or has no position", s)
	}
}

// allocBound is the most one evaluation may allocate: the string budget
// (plus the one operation that crosses it, at most twice the rest), the
// list budget (16-byte elements, and the ints a range holds), and slack for
// the VM itself.
const allocBound = 3*MaxBytes + 2*16*MaxListElements + 4<<20

// cost evaluates p once on env, and returns the bytes it allocated and the
// steps it was charged.
func cost(p *Program, env Env) (alloc uint64, steps int, err error) {
	alloc, m, err := costMeter(p, env)
	return alloc, m.steps, err
}

// costMeter is cost with all the evaluation was charged.
func costMeter(p *Program, env Env) (alloc uint64, m meter, err error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = p.match(env, &m)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, m, err
}

// FuzzConditionCost compiles generated conditions; each one accepted is
// evaluated under a memory cap, and must stay within the budget's memory
// and steps (a generous wall-clock guard only keeps a runaway from hanging
// the test). The seed corpus holds issue #8's bombs and their variants;
// `go test` runs the seeds.
func FuzzConditionCost(f *testing.F) {
	for _, s := range bombs {
		f.Add(s)
	}
	for _, s := range []string{`workflow.name == "x"`, `labels.env in ["a"]`, `run.duration_ms > 5 || error.code matches "^E"`,
		`any(split(error.message, " "), {# == "x"})`, `let a = error.message + error.message; len(a + a) > 0`,
		`map(1..100, {# * 2}) == []`, `count(split(error.message, "a"), {len(#) > 3}) > 2`} {
		f.Add(s)
	}
	for _, c := range scanBombs { // the review's matches loop and its variants
		f.Add(c.src)
	}
	old := debug.SetMemoryLimit(512 << 20)
	f.Cleanup(func() { debug.SetMemoryLimit(old) })
	envs := []Env{NewEnv(event()), NewEnv(bigEvent()), NewEnv(bareEvent()), NewEnv(longEvent())}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Compile(src)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error of unexpected type %T: %v", err, err)
			}
			return
		}
		for _, env := range envs {
			type result struct {
				alloc uint64
				m     meter
				err   error
			}
			done := make(chan result, 1)
			go func() {
				a, m, err := costMeter(p, env)
				done <- result{a, m, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("Compile(%q): one evaluation ran for 30s", src)
			}
			if r.alloc > allocBound {
				t.Fatalf("Compile(%q): one evaluation allocated %d bytes, more than %d (err %v)", src, r.alloc, allocBound, r.err)
			}
			var ee *EvalError
			if r.err != nil && !errors.As(r.err, &ee) {
				t.Fatalf("Compile(%q): error of unexpected type %T: %v", src, r.err, r.err)
			}
			if r.err == nil && r.m.steps > MaxSteps {
				t.Fatalf("Compile(%q): %d steps, more than %d, and no budget error", src, r.m.steps, MaxSteps)
			}
			if r.err == nil && r.m.scan > MaxScan {
				t.Fatalf("Compile(%q): %d scan units, more than %d, and no budget error", src, r.m.scan, MaxScan)
			}
		}
	})
}
