package condition

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
)

// The evaluation budget of one condition on one event. It is counted, not
// timed, so a replay decides the same: steps are predicate iterations times
// the size of their body plus one per charged operation; bytes are what the
// operations that build strings (string +, upper, lower) or split produce;
// list elements are what ranges, list literals, map and filter hold (expr's
// own memory budget, vm.MemoryBudget, which does not count strings). A
// condition that would go over any of them is stopped there and the
// evaluation fails with a *EvalError of ReasonBudget.
const (
	MaxSteps        = 200_000
	MaxBytes        = 1 << 20
	MaxListElements = 65_536
)

// vmMemoryExceeded is the message of expr's VM when MaxListElements runs
// out (vm.memGrow panics with this string, not an error value).
const vmMemoryExceeded = "memory budget exceeded"

// Reasons of an evaluation error.
const (
	// ReasonBudget: the condition went over MaxSteps or MaxBytes.
	ReasonBudget = "budget"
	// ReasonRuntime: the condition failed on the event (a label that is not
	// a number given to int(), a division by zero, ...).
	ReasonRuntime = "runtime"
)

// ErrBudget is wrapped by the error of an evaluation that went over its budget.
var ErrBudget = errors.New("condition exceeded its evaluation budget")

// EvalError is a condition that failed while evaluating.
type EvalError struct {
	// Reason is ReasonBudget or ReasonRuntime.
	Reason string
	// Line and Column locate the failing part of the condition (1-based; 0
	// when unknown).
	Line, Column int
	Err          error
}

func (e *EvalError) Error() string { return "condition: evaluate: " + e.Err.Error() }

func (e *EvalError) Unwrap() error { return e.Err }

// Summary describes the failure without quoting event data (a run-time
// error's message may contain a value of the event), for the rule's
// last_error that tenants and operators read.
func (e *EvalError) Summary() string {
	what := "condition failed at run time"
	if e.Reason == ReasonBudget {
		var be *budgetError
		if errors.As(e.Err, &be) {
			what = be.Error()
		} else {
			what = ErrBudget.Error()
		}
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d, column %d)", what, e.Line, e.Column)
	}
	return what
}

// budgetError says which part of the budget ran out.
type budgetError struct{ what string }

func (e *budgetError) Error() string { return ErrBudget.Error() + " (" + e.what + ")" }

func (e *budgetError) Unwrap() error { return ErrBudget }

// meter counts what one evaluation has spent. Each Match makes its own, so
// one Program can be evaluated by several goroutines.
type meter struct {
	steps, bytes int
}

func (m *meter) charge(steps, bytes int) error {
	m.steps += steps
	m.bytes += bytes
	switch {
	case m.steps > MaxSteps:
		return &budgetError{what: fmt.Sprintf("more than %d steps", MaxSteps)}
	case m.bytes > MaxBytes:
		return &budgetError{what: fmt.Sprintf("more than %d bytes", MaxBytes)}
	}
	return nil
}

// Names of the charging functions the budget patch inserts. They are not
// callable from a condition: the allow-list refuses every function call
// that is not a builtin, and $env.
const (
	fnChargeString = "exoChargeString"
	fnChargeAny    = "exoChargeAny"
	fnChargeList   = "exoChargeList"
	fnChargeLoop   = "exoChargeLoop"
)

// sliceHeader is what one element of a list costs, in bytes.
const sliceHeader = 16

func meterOf(p any) *meter {
	if env, ok := p.(Env); ok && env.meter != nil {
		return env.meter
	}
	return &meter{} // not reached: Match always sets one
}

// budgetOptions are the charging functions and the patch that calls them.
func budgetOptions() []expr.Option {
	return []expr.Option{
		// exoChargeString($env, s): s was just built; charge its bytes.
		expr.Function(fnChargeString, func(p ...any) (any, error) {
			s, _ := p[1].(string)
			return s, meterOf(p[0]).charge(1, len(s))
		}, new(func(Env, string) string)),
		// exoChargeAny($env, v): v was built by a + of operands of unknown
		// type (inside a predicate over a list literal).
		expr.Function(fnChargeAny, func(p ...any) (any, error) {
			n := 0
			if s, ok := p[1].(string); ok {
				n = len(s)
			}
			return p[1], meterOf(p[0]).charge(1, n)
		}, new(func(Env, any) any)),
		// exoChargeList($env, parts): split built parts.
		expr.Function(fnChargeList, func(p ...any) (any, error) {
			parts, _ := p[1].([]string)
			return parts, meterOf(p[0]).charge(1, sliceHeader*len(parts))
		}, new(func(Env, []string) []string)),
		// exoChargeLoop($env, list, steps): a predicate is about to iterate
		// over list, each iteration costing steps; charged before the loop,
		// so a loop over its budget does not start.
		expr.Function(fnChargeLoop, func(p ...any) (any, error) {
			steps, _ := p[2].(int)
			n := 0
			if v := reflect.ValueOf(p[1]); v.Kind() == reflect.Slice || v.Kind() == reflect.Array || v.Kind() == reflect.Map {
				n = v.Len()
			}
			return p[1], meterOf(p[0]).charge(1+n*steps, 0)
		},
			new(func(Env, []string, int) []string),
			new(func(Env, []int, int) []int),
			new(func(Env, []float64, int) []float64),
			new(func(Env, []any, int) []any),
			new(func(Env, map[string]string, int) map[string]string),
			new(func(Env, any, int) any),
		),
		expr.Patch(budgetPatch{}),
	}
}

// budgetPatch wraps, in the type-checked tree, every operation that builds
// a string or a list in a charging function, and every predicate's list in
// the loop charge.
type budgetPatch struct{}

var (
	stringType = reflect.TypeFor[string]()
	envIdent   = func() ast.Node { return &ast.IdentifierNode{Value: "$env"} }
)

func (budgetPatch) Visit(np *ast.Node) {
	switch x := (*np).(type) {
	case *ast.BinaryNode:
		if x.Operator != "+" {
			return
		}
		switch t := x.Type(); {
		case t == stringType:
			wrap(np, fnChargeString)
		case t.Kind() == reflect.Interface:
			wrap(np, fnChargeAny)
		}
	case *ast.BuiltinNode:
		switch {
		case x.Name == "upper" || x.Name == "lower":
			wrap(np, fnChargeString)
		case x.Name == "split":
			wrap(np, fnChargeList)
		case predicates[x.Name] && len(x.Arguments) >= 2:
			list := x.Arguments[0]
			call := &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: fnChargeLoop},
				Arguments: []ast.Node{envIdent(), list, &ast.IntegerNode{Value: iterationSteps(x.Arguments[1])}},
			}
			call.SetType(list.Type())
			call.SetLocation(list.Location())
			x.Arguments[0] = call
		}
	}
}

// wrap replaces *np by fn($env, *np), keeping its type and location.
func wrap(np *ast.Node, fn string) {
	n := *np
	call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: fn}, Arguments: []ast.Node{envIdent(), n}}
	call.SetType(n.Type())
	call.SetLocation(n.Location())
	ast.Patch(np, call)
}
