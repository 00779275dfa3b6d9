package condition

import (
	"fmt"
	"strings"

	"github.com/expr-lang/expr/ast"
)

// Limits of what a condition may write.
const (
	// MaxRange is the largest integer range a condition may write (1..MaxRange).
	MaxRange = 10_000
	// MaxConstString is the longest string constant (in bytes) a condition
	// may write.
	MaxConstString = 1024
)

// allowedBuiltins are the builtins a condition may call; every other one is
// refused. Each is cheap for its input and deterministic; what allocates a
// string or a list on every call (upper, lower, split, string +) is charged
// to the evaluation budget while evaluating (see budget.go). Left out on
// purpose: repeat, replace, join, concat, flatten, string, toJSON, ... (their
// output can be far larger than their input, and join or string of a list
// would allocate before the budget could see it); keys, values, toPairs
// (labels in no fixed order: a replay could decide differently); now, date,
// duration, timezone (wall clock); reduce, groupBy, sortBy (an accumulator
// grows in the loop).
var allowedBuiltins = map[string]bool{
	// predicates (one level deep, over a bounded list)
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true, "count": true, "sum": true,
	"find": true, "findIndex": true, "findLast": true, "findLastIndex": true,
	// strings
	"len": true, "lower": true, "upper": true, "trim": true, "trimPrefix": true, "trimSuffix": true,
	"split": true, "indexOf": true, "lastIndexOf": true, "hasPrefix": true, "hasSuffix": true,
	// numbers and lists
	"int": true, "float": true, "abs": true, "ceil": true, "floor": true, "round": true,
	"max": true, "min": true, "first": true, "last": true,
}

// predicates are the allowed builtins that loop over a list.
var predicates = map[string]bool{
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true, "count": true, "sum": true,
	"find": true, "findIndex": true, "findLast": true, "findLastIndex": true,
}

// allowedOperators are the unary and binary operators a condition may use.
var allowedOperators = map[string]bool{
	"==": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true,
	"&&": true, "and": true, "||": true, "or": true, "!": true, "not": true,
	"in": true, "contains": true, "startsWith": true, "endsWith": true, "matches": true,
	"+": true, "-": true, "*": true, "/": true, "%": true, "..": true, "??": true,
}

// allowed checks the parsed condition against the allow-list of node kinds,
// operators and builtins, and refuses what could make one evaluation cost
// more than the condition's length suggests — every condition runs on the
// processor's one stream for every tenant:
//   - a node kind, operator or builtin not on the lists above;
//   - a string constant longer than MaxConstString; a matches whose pattern
//     is not a constant (a regexp compiled per event, from event data); a
//     trim whose cutset is not a constant (its cost is bytes × cutset);
//   - a range whose bounds are not integer constants, or longer than
//     MaxRange; a predicate over a constant range whose body would take more
//     than MaxSteps steps in all;
//   - a predicate (all, any, filter, map, ...) inside another (quadratic).
//
// What is left is bounded by the evaluation budget, charged while the
// condition runs.
func allowed(root ast.Node, src string) *Error {
	var bad *Error
	fail := func(n ast.Node, format string, args ...any) {
		if bad == nil {
			line, col := position(src, n.Location().From)
			bad = &Error{Line: line, Column: col, Message: fmt.Sprintf(format, args...)}
		}
	}
	ast.Walk(&root, visitorFunc(func(np *ast.Node) {
		switch x := (*np).(type) {
		case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.PointerNode,
			*ast.ConditionalNode, *ast.VariableDeclaratorNode, *ast.ChainNode, *ast.SliceNode, *ast.ArrayNode:
		case *ast.IdentifierNode:
			if strings.HasPrefix(x.Value, "$") {
				fail(x, "%s is not allowed in a condition", x.Value)
			}
		case *ast.StringNode:
			if len(x.Value) > MaxConstString {
				fail(x, "a string constant may be at most %d bytes long", MaxConstString)
			}
		case *ast.MemberNode:
			if x.Method {
				fail(x, "method calls are not allowed in a condition")
			}
		case *ast.UnaryNode:
			if !allowedOperators[x.Operator] {
				fail(x, "operator %s is not allowed in a condition", x.Operator)
			}
		case *ast.BinaryNode:
			if !allowedOperators[x.Operator] {
				fail(x, "operator %s is not allowed in a condition", x.Operator)
			}
			switch x.Operator {
			case "..":
				lo, okLo := intConst(x.Left)
				hi, okHi := intConst(x.Right)
				switch {
				case !okLo || !okHi:
					fail(x, "a range must have integer constants as bounds, like 1..3")
				case hi-lo >= MaxRange:
					fail(x, "a range may hold at most %d numbers", MaxRange)
				}
			case "matches":
				if _, ok := x.Right.(*ast.StringNode); !ok {
					fail(x, "the pattern of matches must be a string constant")
				}
			}
		case *ast.BuiltinNode: // the parser makes every builtin call one
			switch {
			case x.Name == "keys" || x.Name == "values" || x.Name == "toPairs":
				fail(x, "%s() lists labels in no fixed order, so a replay could decide differently; use labels.<name> or \"<name>\" in labels", x.Name)
			case !allowedBuiltins[x.Name]:
				fail(x, "%s() is not allowed in a condition", x.Name)
			case x.Name == "trim" && len(x.Arguments) == 2:
				if _, ok := x.Arguments[1].(*ast.StringNode); !ok {
					fail(x, "the characters trim() removes must be a string constant")
				}
			case predicates[x.Name] && len(x.Arguments) == 2:
				if r, ok := x.Arguments[0].(*ast.BinaryNode); ok && r.Operator == ".." {
					lo, _ := intConst(r.Left)
					hi, _ := intConst(r.Right)
					if n := (hi - lo + 1) * iterationSteps(x.Arguments[1]); n > MaxSteps {
						fail(x, "%s() over %d numbers would take %d steps, more than the budget of %d", x.Name, hi-lo+1, n, MaxSteps)
					}
				}
			}
		case *ast.PredicateNode:
			body := x.Node
			ast.Walk(&body, visitorFunc(func(inner *ast.Node) {
				if _, ok := (*inner).(*ast.PredicateNode); ok {
					fail(*inner, "a predicate inside another predicate is not allowed (its cost grows with the square of the list)")
				}
			}))
		default: // CallNode, MapNode, SequenceNode, BytesNode, ...
			fail(x, "%s is not allowed in a condition", describeNode(x))
		}
	}))
	return bad
}

func describeNode(n ast.Node) string {
	switch n.(type) {
	case *ast.CallNode:
		return "calling a function other than the builtins"
	case *ast.MapNode, *ast.PairNode:
		return "a map literal"
	case *ast.SequenceNode:
		return "a sequence of expressions (;)"
	case *ast.BytesNode:
		return "a bytes literal"
	}
	return fmt.Sprintf("%T", n)
}

// iterationSteps is what one iteration of a predicate body costs in steps:
// one for the iteration and one per node of the body.
func iterationSteps(body ast.Node) int {
	n := 1
	ast.Walk(&body, visitorFunc(func(*ast.Node) { n++ }))
	return n
}

type visitorFunc func(*ast.Node)

func (f visitorFunc) Visit(n *ast.Node) { f(n) }

// intConst is the value of an integer literal (possibly negated).
func intConst(n ast.Node) (int, bool) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		return x.Value, true
	case *ast.UnaryNode:
		if v, ok := intConst(x.Node); ok && x.Operator == "-" {
			return -v, true
		}
	}
	return 0, false
}

// position turns a character offset of src into a 1-based line and column.
func position(src string, offset int) (line, col int) {
	line, col = 1, 1
	for i, r := range []rune(src) {
		if i >= offset {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}
