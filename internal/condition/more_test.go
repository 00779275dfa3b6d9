package condition

import (
	"errors"
	"strings"
	"testing"

	"github.com/exospherehost/exo-alerts/schemas"
)

// bareEvent is a started event with no duration, error or labels.
func bareEvent() *schemas.WorkflowEvent {
	return &schemas.WorkflowEvent{
		ID: "ev2", Type: schemas.TypeRunStarted, Source: "engine", TenantID: "acme",
		Data: schemas.WorkflowEventData{
			Workflow: schemas.Workflow{ID: "wf_9", Name: "nightly-etl"},
			Run:      schemas.Run{ID: "run_2", Attempt: 1, Status: "running"},
		},
	}
}

// An event without the optional parts is seen as zero values, so a condition
// written for failed runs is simply false on it rather than an error.
func TestMatchAbsentFields(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src  string
		want bool
	}{
		{`error.code == ""`, true},
		{`error.code == "NODE_ERRORED"`, false},
		{`run.duration_ms == 0`, true},
		{`labels.env == ""`, true},
		{`len(labels) == 0`, true},
		{`event.type == "workflow.run.started" && event.source == "engine"`, true},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) {
			t.Parallel()
			p, err := Compile(c.src)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := p.Match(NewEnv(bareEvent()))
			if err != nil || got != c.want {
				t.Fatalf("Match = %v, %v; want %v, nil", got, err, c.want)
			}
		})
	}
}

// A condition that compiles but fails on a particular event reports an error
// (callers count it and treat it as no match) instead of matching.
func TestMatchRuntimeError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		src  string
		env  func(*Env)
	}{
		{"label not a number", `int(labels.n) > 1`, func(e *Env) { e.Labels["n"] = "x" }},
		{"integer division by zero", `run.attempt % run.attempt == 0`, func(e *Env) { e.Run.Attempt = 0 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := Compile(c.src)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			env := NewEnv(bareEvent())
			c.env(&env)
			got, err := p.Match(env)
			if err == nil || got {
				t.Fatalf("Match = %v, %v; want false and an error", got, err)
			}
			if !strings.HasPrefix(err.Error(), "condition: evaluate:") {
				t.Fatalf("error %q does not name the evaluation", err)
			}
		})
	}
}

// The empty condition, whitespace, and a nil program all match everything.
func TestMatchEverything(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "   \n\t"} {
		p, err := Compile(src)
		if err != nil {
			t.Fatalf("Compile(%q): %v", src, err)
		}
		if ok, err := p.Match(NewEnv(bareEvent())); !ok || err != nil {
			t.Fatalf("Compile(%q).Match = %v, %v; want true, nil", src, ok, err)
		}
	}
	var nilProg *Program
	if ok, err := nilProg.Match(NewEnv(bareEvent())); !ok || err != nil {
		t.Fatalf("nil Program Match = %v, %v; want true, nil", ok, err)
	}
}

// The control plane shows compile errors to users: with a position when the
// compiler knows it, without one otherwise.
func TestErrorMessage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		src  string
		want []string // substrings of Error()
	}{
		{"unknown field has a position", `workflow.nam == "x"`, []string{"condition: line 1, column ", "nam"}},
		{"too long has none", strings.Repeat("a", MaxSourceLen+1), []string{"condition: longer than 2048 characters"}},
		{"too many nodes", strings.Repeat("1+", MaxNodes+10) + "1 > 0", []string{"condition: "}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Compile(c.src)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Compile err = %v, want *Error", err)
			}
			for _, w := range c.want {
				if !strings.Contains(ce.Error(), w) {
					t.Fatalf("Error() = %q, want it to contain %q", ce.Error(), w)
				}
			}
		})
	}
	if got := (&Error{Message: "boom"}).Error(); got != "condition: boom" {
		t.Fatalf("Error() without position = %q", got)
	}
	if got := (&Error{Line: 2, Column: 7, Message: "boom"}).Error(); got != "condition: line 2, column 7: boom" {
		t.Fatalf("Error() with position = %q", got)
	}
}
