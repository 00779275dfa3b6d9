package condition

import (
	"errors"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/schemas"
)

func event() *schemas.WorkflowEvent {
	d := int64(84211)
	return &schemas.WorkflowEvent{
		ID: "ev1", Type: schemas.TypeRunFailed, Source: "engine", TenantID: "acme",
		Data: schemas.WorkflowEventData{
			Workflow: schemas.Workflow{ID: "wf_9", Name: "nightly-etl"},
			Run:      schemas.Run{ID: "run_1", Attempt: 2, Status: "failed", DurationMS: &d},
			Error:    &schemas.ErrorInfo{Code: "NODE_ERRORED", Node: "load"},
			Labels:   map[string]string{"env": "prod"},
		},
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src  string
		want bool
	}{
		{"", true},
		{`workflow.name == "nightly-etl"`, true},
		{`workflow.name startsWith "daily"`, false},
		{`labels.env == "prod" && run.attempt >= 2`, true},
		{`run.duration_ms > 60000`, true},
		{`error.code in ["NODE_ERRORED", "TIMEOUT"]`, true},
		{`labels.team == "data"`, false}, // a missing label is "", not an error
		{`event.type == "workflow.run.succeeded"`, false},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) {
			t.Parallel()
			p, err := Compile(c.src)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := p.Match(NewEnv(event()))
			if err != nil || got != c.want {
				t.Fatalf("Match = %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestCompileRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src     string
		wantCol int
	}{
		{`workflow.name ==`, 0},
		{`workflow.nam == "x"`, 10},                   // unknown field
		{`run.attempt + 1`, 0},                        // not a bool
		{`now() > 0`, 1},                              // non-deterministic builtin
		{strings.Repeat("true && ", 400) + "true", 0}, // too long
	}
	for _, c := range cases {
		t.Run(c.src[:min(len(c.src), 30)], func(t *testing.T) {
			t.Parallel()
			_, err := Compile(c.src)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Compile(%q) err = %v, want *Error", c.src, err)
			}
			if c.wantCol > 0 && (ce.Line != 1 || ce.Column == 0) {
				t.Fatalf("error %v has no position", ce)
			}
		})
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{`workflow.name == "x"`, `labels.env in ["a"]`, `run.duration_ms > 5 || error.code matches "^E"`, `(`, `"`} {
		f.Add(s)
	}
	env := NewEnv(event())
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Compile(src)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error of unexpected type %T: %v", err, err)
			}
			return
		}
		_, _ = p.Match(env) // must not panic
	})
}

// Conditions whose evaluation cost is not bounded by their length, or that a
// replay could decide differently, are refused with the position of the
// culprit; the bounded forms of the same ideas compile and match.
func TestCompileRefusesUnboundedCost(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		src, msg string
		col      int
	}{
		{`none(1..999999, {labels.env matches "p+q"})`, "at most", 7}, // at the ..
		{`1 in 1..run.attempt`, "integer constants", 7},
		{`all(split(error.message, " "), {any(split(error.message, " "), {# == "x"})})`, "inside another predicate", 0},
		{`len(repeat(error.message, 1000)) > 5`, "repeat()", 0},
		{`keys(labels)[0] == "env"`, "no fixed order", 1},
		{"true &&\n  len(values(labels)) > 0", "no fixed order", 0},
	} {
		_, err := Compile(c.src)
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(ce.Message, c.msg) {
			t.Errorf("Compile(%q) = %v, want an error saying %q", c.src, err, c.msg)
			continue
		}
		if ce.Line == 0 || (c.col > 0 && ce.Column != c.col) {
			t.Errorf("Compile(%q): error at line %d column %d, want column %d", c.src, ce.Line, ce.Column, c.col)
		}
	}
	for _, src := range []string{
		`run.attempt in 1..3`,
		`any(split(error.message, " "), {# == "timeout"})`,
		`"env" in labels && labels.env == "prod"`,
		`-5..5 == -5..5`,
	} {
		p, err := Compile(src)
		if err != nil {
			t.Errorf("Compile(%q): %v", src, err)
			continue
		}
		if _, err := p.Match(NewEnv(event())); err != nil {
			t.Errorf("Match(%q): %v", src, err)
		}
	}
}
