package condition

import (
	"errors"
	"fmt"
	"reflect"
	"regexp/syntax"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
)

// The evaluation budget of one condition on one event. It is counted, not
// timed, so a replay decides the same: steps are predicate iterations times
// the size of their body plus one per charged operation; bytes are what the
// operations that build strings (string +, upper, lower) or split produce;
// list elements are what ranges, list literals, map and filter hold (expr's
// own memory budget, vm.MemoryBudget, which does not count strings); scan
// units are what the operations that read a string or a list read (see
// scanWeight and budgetPatch). A condition that would go over any of them is
// stopped there and the evaluation fails with a *EvalError of ReasonBudget.
const (
	MaxSteps        = 200_000
	MaxBytes        = 1 << 20
	MaxListElements = 65_536
	// MaxScan is the scan budget: bytes read by contains, startsWith,
	// endsWith, in, ==, <, ..., indexOf, lastIndexOf, split, trim*, lower,
	// upper, int, float (one unit per byte, plus one per operation), and by
	// matches, whose bytes are weighted by the size of the pattern's compiled
	// program (RE2 keeps at most one thread per instruction, so its worst
	// case is bytes × instructions); a list element read costs elementScan.
	// Measured on this project's 2-core machine, the worst unit is RE2 on a
	// pathological pattern, ~11 ns when the machine is idle: the whole
	// budget is ~12 ms (BenchmarkScan "worst within budget"; ~50 ms when the
	// other tenants of the machine load it 4×), within the 50 ms one
	// evaluation may take on the stream every tenant shares.
	MaxScan = 1 << 20
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
	steps, bytes, scan int
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

// chargeScan charges units of the scan budget. It is called before the
// operation reads, so an operation over the budget does not start.
func (m *meter) chargeScan(units int) error {
	m.scan += units
	if m.scan > MaxScan || m.scan < 0 {
		return &budgetError{what: fmt.Sprintf("more than %d scan units", MaxScan)}
	}
	return nil
}

// scanCost is what reading v costs in scan units, weight per byte: a
// string's bytes plus one; a list's elements, elementScan each, plus its
// strings' bytes; a map's entries; one for anything else. A list is
// charged by its length first, so summing its strings is itself paid for.
func (m *meter) scanCost(v any, weight int) error {
	switch x := v.(type) {
	case string:
		return m.chargeScan((len(x) + 1) * weight)
	case []string:
		if err := m.chargeScan(len(x) * elementScan * weight); err != nil {
			return err
		}
		n := 0
		for _, s := range x {
			n += len(s)
		}
		return m.chargeScan((n + 1) * weight)
	case []any:
		if err := m.chargeScan(len(x) * elementScan * weight); err != nil {
			return err
		}
		n := 0
		for _, e := range x {
			if s, ok := e.(string); ok {
				n += len(s)
			}
		}
		return m.chargeScan((n + 1) * weight)
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array || rv.Kind() == reflect.Map {
		return m.chargeScan((rv.Len()*elementScan + 1) * weight)
	}
	return m.chargeScan(weight)
}

// Names of the charging functions the budget patch inserts. They are not
// callable from a condition: the allow-list refuses every function call
// that is not a builtin, and $env.
const (
	fnChargeString = "exoChargeString"
	fnChargeAny    = "exoChargeAny"
	fnChargeList   = "exoChargeList"
	fnChargeLoop   = "exoChargeLoop"
	fnScanString   = "exoScanString"
	fnScanAny      = "exoScanAny"
)

// sliceHeader is what one element of a list costs, in bytes.
const sliceHeader = 16

// elementScan is what reading one element of a list costs in scan units:
// expr compares elements through reflection (runtime.In, runtime.Equal),
// ~100 ns each, against ~11 ns per unit of the worst matches.
const elementScan = 16

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
		// exoScanString($env, s, weight) / exoScanAny($env, v, weight): s
		// (v) is about to be read by the operation around it; charge the
		// scan budget before it does.
		expr.Function(fnScanString, func(p ...any) (any, error) {
			w, _ := p[2].(int)
			return p[1], meterOf(p[0]).scanCost(p[1], w)
		}, new(func(Env, string, int) string)),
		expr.Function(fnScanAny, func(p ...any) (any, error) {
			w, _ := p[2].(int)
			return p[1], meterOf(p[0]).scanCost(p[1], w)
		}, new(func(Env, any, int) any)),
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
		switch x.Operator {
		case "+":
			switch t := x.Type(); {
			case t == stringType:
				wrap(np, fnChargeString)
			case t.Kind() == reflect.Interface:
				wrap(np, fnChargeAny)
			}
		case "matches": // the pattern is a constant (allow.go)
			if re, ok := x.Right.(*ast.StringNode); ok {
				scan(&x.Left, patternWeight(re.Value))
			}
		case "contains":
			scan(&x.Left, 1)
			scan(&x.Right, 1)
		case "startsWith", "endsWith": // reads at most the prefix
			scan(&x.Right, 1)
		case "in": // hashes the needle into a map, or compares it to each element
			scan(&x.Left, 1)
			if t := x.Right.Type(); t == nil || t.Kind() != reflect.Map {
				scan(&x.Right, 1)
			}
		case "==", "!=", "<", ">", "<=", ">=":
			// Against a constant, a comparison reads at most
			// MaxConstString bytes, bounded by the steps.
			if !isConst(x.Left) && !isConst(x.Right) {
				scan(&x.Left, 1)
			}
		}
	case *ast.BuiltinNode:
		scanArgs(x)
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

// scanArgs charges the scan budget with the arguments a builtin reads.
func scanArgs(x *ast.BuiltinNode) {
	args := x.Arguments
	switch x.Name {
	case "indexOf", "lastIndexOf", "split":
		for i := range args {
			if i < 2 {
				scan(&args[i], 1)
			}
		}
	case "hasPrefix", "hasSuffix", "trimPrefix", "trimSuffix": // read at most the prefix
		if len(args) >= 2 {
			scan(&args[1], 1)
		}
	case "trim": // the cutset is a constant (allow.go)
		w := 1
		if len(args) == 2 {
			if c, ok := args[1].(*ast.StringNode); ok {
				w = cutsetWeight(c.Value)
			}
		}
		if len(args) >= 1 {
			scan(&args[0], w)
		}
	case "lower", "upper", "int", "float":
		if len(args) >= 1 {
			scan(&args[0], 1)
		}
	case "max", "min": // over a list they read all of it
		for i := range args {
			scan(&args[i], 1)
		}
	}
}

// scan wraps *np, an operand about to be read, in the scan charge of its
// type, weight units per byte. A constant is not charged: it is at most
// MaxConstString bytes (a list literal of constants: MaxNodes of them), read
// once per step.
func scan(np *ast.Node, weight int) {
	n := *np
	if isConst(n) {
		return
	}
	fn, t := fnScanAny, n.Type()
	switch {
	case t == nil:
	case t == stringType:
		fn = fnScanString
	case t.Kind() == reflect.Interface, t.Kind() == reflect.Slice, t.Kind() == reflect.Array, t.Kind() == reflect.Map:
	default: // numbers, booleans: O(1)
		return
	}
	call := &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: fn},
		Arguments: []ast.Node{envIdent(), n, &ast.IntegerNode{Value: weight}},
	}
	call.SetType(t)
	call.SetLocation(n.Location())
	ast.Patch(np, call)
}

// isConst says whether n is a constant, or a list literal of constants
// (at most MaxNodes of them).
func isConst(n ast.Node) bool {
	switch x := n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode:
		return true
	case *ast.ArrayNode:
		for _, e := range x.Nodes {
			if !isConst(e) {
				return false
			}
		}
		return true
	}
	return false
}

// patternWeight is what matching one byte against pattern costs in scan
// units: the number of instructions of its compiled program (RE2's NFA
// keeps at most one thread per instruction; the backtracker visits each
// (instruction, position) pair once), at least 1.
func patternWeight(pattern string) int {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return 1 // not reached: expr refuses a pattern that does not compile
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 1
	}
	return max(1, len(prog.Inst))
}

// cutsetWeight is what trimming one byte costs with cutset: an ASCII
// cutset is a table lookup; any other is searched rune by rune.
func cutsetWeight(cutset string) int {
	for i := 0; i < len(cutset); i++ {
		if cutset[i] >= utf8.RuneSelf {
			return 1 + utf8.RuneCountInString(cutset)
		}
	}
	return 1
}
