package condition

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Limits of a condition.
const (
	MaxSourceLen = 2048
	MaxNodes     = 500
)

// Env is what a condition sees of an event.
type Env struct {
	Event    EventEnv          `expr:"event"`
	Workflow WorkflowEnv       `expr:"workflow"`
	Run      RunEnv            `expr:"run"`
	Error    ErrorEnv          `expr:"error"`
	Labels   map[string]string `expr:"labels"`
}

// EventEnv is the event envelope.
type EventEnv struct {
	ID     string `expr:"id"`
	Type   string `expr:"type"`
	Source string `expr:"source"`
}

// WorkflowEnv is the workflow of the run.
type WorkflowEnv struct {
	ID   string `expr:"id"`
	Name string `expr:"name"`
}

// RunEnv is the run.
type RunEnv struct {
	ID         string `expr:"id"`
	Attempt    int    `expr:"attempt"`
	Status     string `expr:"status"`
	DurationMS int64  `expr:"duration_ms"`
}

// ErrorEnv is the error of a failed run ("" when none).
type ErrorEnv struct {
	Code    string `expr:"code"`
	Message string `expr:"message"`
	Node    string `expr:"node"`
}

// NewEnv builds the environment of an event.
func NewEnv(ev *schemas.WorkflowEvent) Env {
	env := Env{
		Event:    EventEnv{ID: ev.ID, Type: ev.Type, Source: ev.Source},
		Workflow: WorkflowEnv{ID: ev.Data.Workflow.ID, Name: ev.Data.Workflow.Name},
		Run:      RunEnv{ID: ev.Data.Run.ID, Attempt: ev.Data.Run.Attempt, Status: ev.Data.Run.Status},
		Labels:   ev.Data.Labels,
	}
	if ev.Data.Run.DurationMS != nil {
		env.Run.DurationMS = *ev.Data.Run.DurationMS
	}
	if ev.Data.Error != nil {
		env.Error = ErrorEnv{Code: ev.Data.Error.Code, Message: ev.Data.Error.Message, Node: ev.Data.Error.Node}
	}
	if env.Labels == nil {
		env.Labels = map[string]string{}
	}
	return env
}

// Error is a condition that does not compile, with its position (1-based
// line and column, 0 when unknown).
type Error struct {
	Line    int
	Column  int
	Message string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("condition: line %d, column %d: %s", e.Line, e.Column, e.Message)
	}
	return "condition: " + e.Message
}

// nondeterministic builtins a replay could decide differently on.
var nondeterministic = []string{"now", "date", "duration", "timezone"}

// Program is a compiled condition; the zero value (empty source) matches everything.
type Program struct {
	prog *vm.Program
}

// Compile compiles src. The empty condition always matches.
func Compile(src string) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return &Program{}, nil
	}
	if len(src) > MaxSourceLen {
		return nil, &Error{Message: fmt.Sprintf("longer than %d characters", MaxSourceLen)}
	}
	opts := []expr.Option{expr.Env(Env{}), expr.AsBool(), expr.MaxNodes(MaxNodes)}
	for _, b := range nondeterministic {
		opts = append(opts, expr.DisableBuiltin(b))
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &Error{Line: fe.Line, Column: fe.Column + 1, Message: fe.Message}
		}
		return nil, &Error{Message: err.Error()}
	}
	return &Program{prog: prog}, nil
}

// Match evaluates the condition. A run-time failure (for example a value of
// an unexpected shape) is returned as an error; callers treat it as no match.
func (p *Program) Match(env Env) (bool, error) {
	if p == nil || p.prog == nil {
		return true, nil
	}
	out, err := expr.Run(p.prog, env)
	if err != nil {
		return false, fmt.Errorf("condition: evaluate: %w", err)
	}
	b, _ := out.(bool)
	return b, nil
}
