package condition

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/schemas"
)

// reviewBomb is the review's condition: 60 characters that pass every
// compile-time limit and, before the scan budget, ran RE2 over a 64 KiB
// error message 10,000 times (126 s for one evaluation).
const reviewBomb = `count(1..10000, {error.message matches "(a|b)*c[0-9]z"}) > 0`

// heavyPattern compiles to 603 RE2 instructions: matching it costs ~6.7 µs
// per byte, so even one match over a long message is expensive.
var heavyPattern = strings.Repeat("(a|b)*", 150) + "c"

// scanBombs are conditions whose steps, bytes built and list elements stay
// small but that read long strings many times; each must be stopped by the
// scan budget.
var scanBombs = []struct{ name, src string }{
	{"review: matches in a loop", reviewBomb},
	{"matches with a heavy pattern", `error.message matches "` + heavyPattern + `"`},
	{"case-folded classes", `count(1..1000, {labels.long matches "(?i)[a-z]{1,100}[0-9]{1,100}z"}) > 0`},
	{"contains in a loop", `count(1..10000, {error.message contains "zzz"}) > 0`},
	{"contains of event data", `count(1..10000, {labels.long contains labels.other}) > 0`},
	{"indexOf in a loop", `count(1..10000, {indexOf(error.message, "zz") >= 0}) > 0`},
	{"lastIndexOf of event data", `count(1..10000, {lastIndexOf(labels.long, labels.other) >= 0}) > 0`},
	{"startsWith itself", `count(1..10000, {error.message startsWith labels.long}) > 0`},
	{"hasSuffix of a label", `count(1..10000, {hasSuffix(error.message, labels.long)}) > 0`},
	{"comparing long strings", `count(1..10000, {error.message == labels.long}) > 0`},
	{"ordering long strings", `count(1..10000, {error.message < labels.long}) > 0`},
	{"in a split list", `let parts = split(error.message, ""); count(1..10000, {"z" in parts}) > 0`},
	{"in a list of long strings", `count(1..1000, {labels.other in [error.message, labels.long]}) > 0`},
	{"trim in a loop", `count(1..10000, {trim(labels.spaces) != ""}) > 0`},
	{"trim with a non-ASCII cutset", `count(1..1000, {trim(error.message, "` + strings.Repeat("é", 300) + `") != ""}) > 0`},
}

// longEvent is bigEvent with long labels (labels are event data of any
// length the engine sends).
func longEvent() *schemas.WorkflowEvent {
	ev := bigEvent()
	ev.Data.Labels = map[string]string{
		"long":   strings.Repeat("ab", 32768),
		"other":  strings.Repeat("ab", 16384) + "c",
		"spaces": strings.Repeat(" ", 65536),
	}
	return ev
}

// Every scan bomb compiles (it is within every compile-time limit) and is
// stopped while evaluating with a budget error naming the scan budget and
// the condition's position, not a result. How long it ran is only logged
// (BenchmarkScan measures it).
func TestScanBudgetStopsScans(t *testing.T) {
	t.Parallel()
	env := NewEnv(longEvent())
	for _, c := range scanBombs {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := Compile(c.src)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			start := time.Now()
			got, err := p.Match(env)
			t.Logf("%s: stopped after %v", c.name, time.Since(start))
			var ee *EvalError
			if !errors.As(err, &ee) || ee.Reason != ReasonBudget || !errors.Is(err, ErrBudget) {
				t.Fatalf("Match = %v, %v; want a budget error", got, err)
			}
			if s := ee.Summary(); !strings.Contains(s, "scan units") || ee.Line != 1 || ee.Column < 1 {
				t.Fatalf("Summary() = %q at %d:%d: want the scan budget and a position", s, ee.Line, ee.Column)
			}
		})
	}
}

// The same operations on ordinary events, and over split lists of a short
// field, stay far within the scan budget and decide as before.
func TestScanBudgetAllowsRealConditions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		src  string
		want bool
	}{
		{`error.message matches "(a|b)*c[0-9]z"`, false},
		{`any(split(workflow.name, "-"), {# matches "^e[a-z]+$"})`, true},
		{`error.message contains "abc" && indexOf(error.message, "h a") == 7`, true},
		{`error.message startsWith "abcd" && error.message endsWith "h "`, true},
		{`count(split(error.message, " "), {# == "abcdefgh"}) > 7000`, true},
		{`trim(workflow.name, "n") == "ightly-etl" && trim(" x ") == "x"`, true},
		{`labels.env in ["prod"] && "env" in labels && error.code not in ["X"]`, true},
		{`lower(error.message) == error.message && error.code != error.node`, true},
		{`error.message matches "(?i)^ABCD"`, true},
	} {
		p, err := Compile(c.src)
		if err != nil {
			t.Errorf("Compile(%q): %v", c.src, err)
			continue
		}
		if got, err := p.Match(NewEnv(bigEvent())); err != nil || got != c.want {
			t.Errorf("Match(%q) = %v, %v; want %v", c.src, got, err, c.want)
		}
	}
}

// A trim cutset from event data would cost bytes × cutset: refused.
func TestCompileRefusesTrimCutsetFromEvent(t *testing.T) {
	t.Parallel()
	src := `trim(error.message, labels.cut) == ""`
	_, err := Compile(src)
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "string constant") || ce.Column != 1 {
		t.Fatalf("Compile(%q) = %v, want a refusal at 1:1", src, err)
	}
}

// BenchmarkScan is the time one evaluation takes when it reads the most:
// the scan bombs (stopped by the budget), and the worst that stays within
// it — a 603-instruction pattern over as many bytes as the budget allows.
func BenchmarkScan(b *testing.B) {
	worst := NewEnv(bigEvent())
	worst.Error.Message = strings.Repeat("ab", MaxScan/603/2-1)
	cases := append([]struct{ name, src string }{
		{"worst within budget", `error.message matches "` + heavyPattern + `"`},
	}, scanBombs...)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p, err := Compile(c.src)
			if err != nil {
				b.Fatal(err)
			}
			env := NewEnv(longEvent())
			if c.name == "worst within budget" {
				env = worst
			}
			for b.Loop() {
				_, err := p.Match(env)
				if c.name == "worst within budget" && err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
