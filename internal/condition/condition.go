package condition

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Limits of a condition.
const (
	MaxSourceLen = 2048
	MaxNodes     = 500
)

// Env is what a condition sees of an event. The doc and example tags are
// the catalogue Fields returns (GET /v1/event-types shows it), so the
// documented fields are exactly the compiled ones.
type Env struct {
	Event    EventEnv          `expr:"event"`
	Workflow WorkflowEnv       `expr:"workflow"`
	Run      RunEnv            `expr:"run"`
	Error    ErrorEnv          `expr:"error"`
	Labels   map[string]string `expr:"labels" doc:"A label of the run, by name (labels.env, labels.team, ...); a label the run does not have is \"\"." example:"labels.env == \"prod\""`

	// meter counts the evaluation's budget; Match sets it.
	meter *meter
}

// EventEnv is the event envelope.
type EventEnv struct {
	ID     string `expr:"id" doc:"Id of the event (for workflow.run.duration_exceeded: of the run's started event)." example:"event.id != \"\""`
	Type   string `expr:"type" doc:"Type of the event, e.g. workflow.run.failed." example:"event.type == \"workflow.run.failed\""`
	Source string `expr:"source" doc:"CloudEvents source of the event (the engine that produced it); \"\" for workflow.run.duration_exceeded." example:"event.source == \"exosphere/state-manager\""`
}

// WorkflowEnv is the workflow of the run.
type WorkflowEnv struct {
	ID   string `expr:"id" doc:"Id of the workflow." example:"workflow.id == \"wf_9\""`
	Name string `expr:"name" doc:"Name of the workflow." example:"workflow.name startsWith \"nightly-\""`
}

// RunEnv is the run.
type RunEnv struct {
	ID         string `expr:"id" doc:"Id of the run." example:"run.id == \"run_123\""`
	Attempt    int    `expr:"attempt" doc:"Attempt number of the run, from 1." example:"run.attempt >= 2"`
	Status     string `expr:"status" doc:"Status of the run as the engine reports it (running for workflow.run.duration_exceeded)." example:"run.status == \"failed\""`
	DurationMS int64  `expr:"duration_ms" doc:"How long the run ran, in milliseconds (for workflow.run.duration_exceeded: how long it had run when the threshold passed); 0 when unknown." example:"run.duration_ms > 600000"`
}

// ErrorEnv is the error of a failed run ("" when none).
type ErrorEnv struct {
	Code    string `expr:"code" doc:"Error code of a failed run; \"\" otherwise." example:"error.code in [\"NODE_ERRORED\", \"TIMEOUT\"]"`
	Message string `expr:"message" doc:"Error message of a failed run; \"\" otherwise." example:"error.message contains \"timeout\""`
	Node    string `expr:"node" doc:"The node of the workflow that failed; \"\" otherwise." example:"error.node == \"load\""`
}

// Field describes one field a condition can use.
type Field struct {
	// Path is how a condition names the field, e.g. run.duration_ms. Labels
	// are a map: their Path is labels.<name>.
	Path string
	// Type is string or integer.
	Type        string
	Description string
	// Example is a condition that uses the field.
	Example string
}

// Fields describes the fields of Env, in declaration order. It is derived
// from Env itself, so it lists exactly what Compile accepts.
func Fields() []Field {
	var out []Field
	describe(reflect.TypeFor[Env](), "", &out)
	return out
}

func describe(t reflect.Type, prefix string, out *[]Field) {
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		path := prefix + f.Tag.Get("expr")
		switch f.Type.Kind() {
		case reflect.Struct:
			describe(f.Type, path+".", out)
			continue
		case reflect.Map:
			path += ".<name>"
		}
		*out = append(*out, Field{Path: path, Type: typeName(f.Type), Description: f.Tag.Get("doc"), Example: f.Tag.Get("example")})
	}
}

// typeName is the type of a field as users see it; a map shows the type of
// its values.
func typeName(t reflect.Type) string {
	if t.Kind() == reflect.Map {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.String:
		return "string"
	default:
		return t.Kind().String()
	}
}

// NewEnv builds the environment of an event. Its Labels is a map the
// caller may change (a fresh one when the event has none).
func NewEnv(ev *schemas.WorkflowEvent) Env {
	env := newEnv(ev)
	if ev.Data.Labels == nil {
		env.Labels = map[string]string{}
	}
	return env
}

// newEnv is the environment of ev; when ev has no labels, its Labels is
// noLabels.
func newEnv(ev *schemas.WorkflowEvent) Env {
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
		env.Labels = noLabels
	}
	return env
}

// noLabels is the labels of an evaluator's environment whose run has none:
// one shared empty map, so resetting an evaluator allocates nothing.
// Nothing writes to it: a condition cannot assign, and Evaluator.Env is
// read-only to its callers.
var noLabels = map[string]string{}

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
	// native, when its eval is set, decides as prog does, in Go
	// (native.go). Held in the Program, not behind a pointer: rules'
	// programs are many and scattered, and Match reads one per rule.
	native native
}

// Compile compiles src. The empty condition always matches.
func Compile(src string) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return &Program{}, nil
	}
	if len(src) > MaxSourceLen {
		return nil, &Error{Message: fmt.Sprintf("longer than %d characters", MaxSourceLen)}
	}
	tree, perr := parser.Parse(src)
	if perr == nil {
		// (A parse error is reported below, by Compile, with its position.)
		if e := allowed(tree.Node, src); e != nil {
			return nil, e
		}
	}
	opts := []expr.Option{expr.Env(Env{}), expr.AsBool(), expr.MaxNodes(MaxNodes)}
	for _, b := range nondeterministic {
		opts = append(opts, expr.DisableBuiltin(b))
	}
	opts = append(opts, budgetOptions()...)
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &Error{Line: fe.Line, Column: fe.Column + 1, Message: fe.Message}
		}
		return nil, &Error{Message: err.Error()}
	}
	p := &Program{prog: prog}
	if perr == nil {
		p.native = compileNative(tree.Node)
	}
	return p, nil
}

// Match evaluates the condition within its budget (MaxSteps, MaxBytes). A
// failure is returned as a *EvalError: ReasonBudget when the condition went
// over its budget (it is stopped there), ReasonRuntime when it failed on
// this event (for example a value of an unexpected shape). Callers skip the
// rule for the event and report it.
func (p *Program) Match(env Env) (bool, error) {
	return p.match(env, &meter{})
}

// match evaluates the condition charging m.
func (p *Program) match(env Env, m *meter) (bool, error) {
	if p == nil || p.prog == nil {
		return true, nil
	}
	if p.native.eval != nil && p.native.withinScan(&env) {
		return p.native.eval(&env), nil
	}
	env.meter = m
	machine := vm.VM{MemoryBudget: MaxListElements}
	return p.run(&machine, env)
}

// Evaluator evaluates conditions on one event at a time, reusing its VM,
// its budget meter and the event's environment from one Match to the next:
// the VM takes the environment in an interface, and the evaluator boxes an
// Env once, when it is made, then writes each event's environment into
// that box at the event's first Match (boxing each event's would allocate
// ~200 bytes per event). The VM keeps its stack. Each Match has the whole
// budget, as with Program.Match. An Evaluator is not safe for concurrent
// use: the engine, which runs on one goroutine, keeps one.
type Evaluator struct {
	machine vm.VM
	m       meter
	env     Env
	boxed   any  // an Env, allocated by NewEvaluator: see boxedEnv
	synced  bool // boxed holds env with its meter set
}

// NewEvaluator returns an evaluator; Reset gives it its first environment.
func NewEvaluator() *Evaluator {
	e := &Evaluator{machine: vm.VM{MemoryBudget: MaxListElements}, env: Env{Labels: noLabels}}
	// A box of its own: a non-zero Env (its meter is set) is copied to a
	// new heap object, never to shared read-only data.
	e.boxed = Env{meter: &e.m}
	return e
}

// boxedEnv is the Env e.boxed holds, to write in place. Nothing else reads
// the box between two Matches: the VM reads the environment only during
// Run and keeps nothing of it after (it clears its stack when it starts;
// a Match returns a bool and an error whose text is copied), and no one
// else is handed e.boxed.
func (e *Evaluator) boxedEnv() *Env {
	return (*Env)((*[2]unsafe.Pointer)(unsafe.Pointer(&e.boxed))[1]) //nolint:gosec // G103: the data word of an interface holding an Env (NewEvaluator) points to that Env
}

// Reset makes env the environment of the next Match calls; nil labels
// read as none.
func (e *Evaluator) Reset(env Env) {
	if env.Labels == nil {
		env.Labels = noLabels
	}
	e.env = env
	e.synced = false
}

// ResetEvent makes the environment of ev (as NewEnv builds it) the
// environment of the next Match calls.
func (e *Evaluator) ResetEvent(ev *schemas.WorkflowEvent) {
	e.env = newEnv(ev)
	e.synced = false
}

// Env is the current environment. The caller may read it until the next
// Reset, not change it.
func (e *Evaluator) Env() *Env { return &e.env }

// Match is p.Match on the current environment.
func (e *Evaluator) Match(p *Program) (bool, error) {
	if p == nil || p.prog == nil {
		return true, nil
	}
	if p.native.eval != nil && p.native.withinScan(&e.env) {
		return p.native.eval(&e.env), nil
	}
	if !e.synced {
		b := e.boxedEnv()
		*b = e.env
		b.meter = &e.m
		e.synced = true
	}
	e.m = meter{}
	return p.run(&e.machine, e.boxed)
}

// run evaluates the condition on env (an Env with its meter set) with
// machine.
func (p *Program) run(machine *vm.VM, env any) (bool, error) {
	out, err := machine.Run(p.prog, env)
	if err != nil {
		ee := &EvalError{Reason: ReasonRuntime, Err: err}
		var fe *file.Error
		isFile := errors.As(err, &fe)
		switch {
		case errors.Is(err, ErrBudget):
			ee.Reason = ReasonBudget
		case isFile && fe.Message == vmMemoryExceeded:
			ee.Reason = ReasonBudget
			ee.Err = &budgetError{what: fmt.Sprintf("more than %d list elements", MaxListElements)}
		}
		if isFile && fe.Line > 0 {
			ee.Line, ee.Column = fe.Line, fe.Column+1
		}
		return false, ee
	}
	b, _ := out.(bool)
	return b, nil
}
